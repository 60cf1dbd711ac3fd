// Who hears of each file the standard library opens by name (io.open,
// io.lines, io.input, io.output, loadfile, dofile), just before it opens
// it. The server listens while it preloads modules, so that a module that
// reads a file at load time is re-warmed when that file changes, as one it
// requires is (server/warm.ts). Runners have no listener.
export type OpenListener = (file: Buffer, forWriting: boolean) => void;

let listener: OpenListener | undefined;

export function noteOpen(file: Buffer, forWriting: boolean): void {
  listener?.(file, forWriting);
}

/** Runs `body` with `onOpen` told of each open. */
export function listeningToOpens<T>(onOpen: OpenListener, body: () => T): T {
  listener = onOpen;
  try {
    return body();
  } finally {
    listener = undefined;
  }
}
