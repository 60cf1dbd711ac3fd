// The TypeScript client: runs one Lua script through warmluad and resolves
// to its status. `run()` is the whole API for most callers; `start()` also
// gives the runner's pid and a way to forward signals to it.
import { native, sendAll } from '../server/native.js';
import {
  FrameReader,
  FrameType,
  decodeError,
  decodeExited,
  decodeStarted,
  defaultSocketPath,
  encodeRun,
  encodeSignal,
  type RunStatus,
} from '../server/protocol.js';

export interface RunOptions {
  /** The server's socket (default: $WARMLUA_SOCKET, else the server's default). */
  socket?: string;
  /** The whole command line, argv[0] included: it is lua's progname. */
  argv: string[];
  /** The script's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** The script's working directory (default: this process's). */
  cwd?: string;
  /** Descriptors to hand over: an array keeps each number (default [0, 1, 2]);
   * an object maps the runner's number to this process's fd, e.g. {1: logFd}. */
  fds?: number[] | Record<number, number>;
}

export interface RunResult {
  /** Exit status as a shell reports it: the exit code, or 128+N after signal N. */
  code: number;
  /** The signal that ended the runner, or null. */
  signal: number | null;
  pid: number;
}

/** A run that could not start or whose server went away; says which socket and why. */
export class WarmluaError extends Error {
  constructor(
    message: string,
    readonly socket: string,
    /** A protocol error code (docs/protocol.md) or a system one such as ECONNREFUSED. */
    readonly code: number | string | undefined,
    /** True when the script surely did not run, so running it another way is safe. */
    readonly notStarted: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WarmluaError';
  }
}

export interface RunHandle {
  /** Resolves once the server has forked the runner. */
  readonly pid: Promise<number>;
  readonly result: Promise<RunResult>;
  /** Sends signal N to the runner's process group (ignored once the run has ended). */
  forward(signal: number): void;
}

function envEntries(env: NodeJS.ProcessEnv): Buffer[] {
  return Object.entries(env)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => Buffer.from(`${name}=${value}`));
}

function connect(socket: string): number {
  try {
    return native.connect(socket);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new WarmluaError(`cannot reach warmluad at ${socket}: ${e.message}`, socket, e.code, true, { cause: e });
  }
}

function toResult(status: RunStatus, pid: number): RunResult {
  return status.how === 'exited'
    ? { code: status.code, signal: null, pid }
    : { code: 128 + status.signal, signal: status.signal, pid };
}

export function start(options: RunOptions): RunHandle {
  const socket = options.socket ?? process.env.WARMLUA_SOCKET ?? defaultSocketPath();
  const given = options.fds ?? [0, 1, 2];
  const pairs = Array.isArray(given) ? given.map((fd) => [fd, fd]) : Object.entries(given).map(([n, fd]) => [Number(n), fd]);
  const fds = pairs.map(([, fd]) => fd);
  const request = encodeRun({
    cwd: Buffer.from(options.cwd ?? process.cwd()),
    argv: options.argv.map((a) => Buffer.from(a)),
    env: envEntries(options.env ?? process.env),
    fdNumbers: pairs.map(([n]) => n),
  });
  const fd = connect(socket);
  try {
    sendAll(fd, request, fds);
  } catch (error) {
    native.close(fd);
    throw new WarmluaError(`cannot send the request to ${socket}: ${(error as Error).message}`, socket,
      (error as NodeJS.ErrnoException).code, true, { cause: error });
  }

  let pid = 0;
  let finished = false;
  let onPid!: (pid: number) => void;
  const pidPromise = new Promise<number>((resolve) => (onPid = resolve));
  const result = new Promise<RunResult>((resolve, reject) => {
    const reader = new FrameReader();
    const finish = (outcome: () => void) => {
      finished = true;
      native.pollStop(poll);
      native.close(fd);
      outcome();
    };
    const fail = (message: string, code?: number | string) =>
      finish(() => reject(new WarmluaError(message, socket, code, pid === 0)));
    const onReadable = () => {
      try {
        for (let received = native.recv(fd, 4096); received; received = native.recv(fd, 4096)) {
          if (received.data.length === 0) return fail(`lost connection to warmluad at ${socket}`);
          reader.push(received.data);
          for (let frame = reader.next(); frame; frame = reader.next()) {
            if (frame.type === FrameType.started) onPid((pid = decodeStarted(frame.payload)));
            else if (frame.type === FrameType.exited) return finish(() => resolve(toResult(decodeExited(frame.payload), pid)));
            else if (frame.type === FrameType.error) {
              const { code, message } = decodeError(frame.payload);
              return fail(`warmluad at ${socket}: ${message}`, code);
            } else return fail(`warmluad at ${socket} sent an unknown frame type ${frame.type}`);
          }
        }
      } catch (error) {
        fail(`warmluad at ${socket}: ${(error as Error).message}`);
      }
    };
    const poll = native.pollReadable(fd, onReadable);
  });
  pidPromise.catch(() => {});
  return {
    pid: pidPromise,
    result,
    forward(signal: number) {
      // The server reads frames in order: a signal sent before STARTED
      // still reaches the runner, right after the fork.
      if (finished) return;
      try {
        sendAll(fd, encodeSignal(signal), []);
      } catch {
        // the connection is closing: the run is over
      }
    },
  };
}

/** Like start(), but every failure, a refused connection too, is a rejection. */
export async function run(options: RunOptions): Promise<RunResult> {
  return start(options).result;
}
