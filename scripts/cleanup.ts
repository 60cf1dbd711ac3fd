// Everything the bench starts or creates registers its undoing here, so that
// servers, runners and temporary files go away on success, on failure and on
// Ctrl-C alike. Tasks run newest first: clients before their server, the
// server before the directory holding its socket.

type Task = () => unknown;

const tasks: Task[] = [];

export function onCleanup(task: Task): void {
  tasks.push(task);
}

export async function cleanUp(): Promise<void> {
  for (let task = tasks.pop(); task; task = tasks.pop()) {
    try {
      await task();
    } catch (error) {
      process.stderr.write(`bench: cleanup: ${(error as Error).message}\n`);
    }
  }
}

/** On SIGINT, SIGTERM or SIGHUP: clean up, then die as the shell expects.
 * The handlers stay installed (not `once`): execa's exit hook re-raises a
 * signal that nobody else listens to, which would kill the bench mid-cleanup. */
export function cleanUpOnSignals(): void {
  const codes = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;
  let cleaning = false;
  for (const [signal, code] of Object.entries(codes)) {
    process.on(signal, () => {
      if (cleaning) return;
      cleaning = true;
      process.stderr.write(`\nbench: ${signal}, cleaning up\n`);
      void cleanUp().finally(() => process.exit(code));
    });
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
