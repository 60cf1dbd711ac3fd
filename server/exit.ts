// How a Lua process ends, whatever ends it (the script's end, os.exit, an
// error): flush every stream, tell whoever waits for the status, then _exit.
// A runner tells its client before _exit, whose page-table teardown of a
// large address space the client then need not wait for.
import fs from 'node:fs';
import { native } from './native.js';
import { flushAllStreams } from './stdlib/stream.js';

let reportStatus: ((status: number) => void) | undefined;

/** Who learns the exit status just before _exit (the runner's client). */
export function setStatusReporter(report: (status: number) => void): void {
  reportStatus = report;
}

function attempt(what: string, action: () => void): void {
  try {
    action();
  } catch (error) {
    try {
      fs.writeSync(2, `warmlua: cannot ${what}: ${(error as Error).message}\n`);
    } catch {
      // stderr is gone too: nobody is left to tell
    }
  }
}

export function exitProcess(status: number): never {
  attempt('flush output', flushAllStreams);
  if (reportStatus) attempt('report the exit status', () => reportStatus?.(status & 0xff));
  native.learnFromRun(); // a runner's client need not wait for this (native/prefault.c)
  return native.exit(status & 0xff);
}
