// The runner: what a child of warmluad does. Forked ahead of demand as a
// spare, it closes the server's descriptors and waits, blocked, for a job on
// its line to the server. Then it becomes the client's process (its fds at
// their numbers, its cwd, its environment), runs lua.c's main on the
// inherited warm state, reports its status and leaves with _exit. It never
// returns to the event loop: the loop belongs to the parent
// (../shared/notes/forking-node.md).
import fs from 'node:fs';
import v8 from 'node:v8';
import type { LuaState } from 'fengari';
import { exitProcess, setStatusReporter } from './exit.js';
import { native } from './native.js';
import { luaMain } from './interpreter.js';
import { FrameReader, decodeRun, encodeExited, scriptName, type RunRequest } from './protocol.js';
import { takeScriptReport } from './scriptcache.js';
import { resetStdio } from './stdlib/index.js';

const RECV_CHUNK = 64 * 1024;

/** V8's default is 3 ticks (a tick: a function ran about 66 KB of its
 * bytecode). A function the warm-up left just short of that got optimised
 * in every runner, synchronously: TurboFan compiling table.concat's C
 * function took most of a module-heavy script's 13 ms (perf). Runners wait
 * longer, so short scripts run on the server's optimised code and long ones
 * still get their own: the bench's module script 8.2 ms instead of 13.1,
 * its generated module 9.6 instead of 16.1, io.lines over 10 MB and a
 * 3.5 s CPU-bound script unchanged (interleaved A/B; 6 and 20 did as 10).
 * Small functions (under 81 bytes of bytecode) wait as long: V8 optimises
 * them at their first tick, and a script calling string.format 200 times
 * had its runner compile luaL_pushresult for 4 ms (--trace-opt). */
const RUNNER_TIERING_FLAGS = '--ticks-before-optimization=10 --max-bytecode-size-for-early-opt=0';

let runnerFlagsSet = false;

/** Gives this process the runners' V8 flags, once: the forker sets them
 * before its first fork, so its spares inherit them and skip the call (50
 * us, its first in a process). */
export function setRunnerFlags(): void {
  if (runnerFlagsSet) return;
  v8.setFlagsFromString(RUNNER_TIERING_FLAGS);
  runnerFlagsSet = true;
}

/** How long a spare waits before it prefaults (see awaitJob). Long enough
 * that under load, where spares are taken at once, none does; short enough
 * that one does between runs back to back (a few ms apart). At 2 ms rather
 * than 20, hellos back to back took 476 page faults each instead of 650
 * (the whole system, perf stat), and less CPU (7.05-7.70 ms against
 * 7.90-7.95 per run, one client), in 0-0.8 ms less time; the module script
 * 0.3-1.4 ms less; 8 clients got as many runs/s. */
const PREFAULT_AFTER_IDLE_MS = 2;

/** What the server sends down a spare's line: the RUN frame as the client
 * sent it, with the client's fds and, last, the client's connection. */
interface Job {
  request: RunRequest;
  clientFds: number[];
  connection: number;
}

function report(message: string): void {
  try {
    fs.writeSync(2, `warmlua: ${message}\n`);
  } catch {
    // stderr is the client's; if it is gone there is nobody left to tell
  }
}

/** Blocks until the server sends a job; a closed line means retire. A spare
 * left waiting takes the page faults earlier runs took on their client's
 * time (native/prefault.c). Only then: prefaulting every spare cost more CPU
 * than the faults it saved (0.25 ms per hello), so under load, where spares
 * are taken at once, it would take CPU from the runs. */
function awaitJob(line: number): Job {
  if (!native.waitReadable(line, PREFAULT_AFTER_IDLE_MS)) native.prefaultLearned(line);
  const reader = new FrameReader();
  const fds: number[] = [];
  for (;;) {
    const frame = reader.next();
    if (frame) {
      const connection = fds.pop();
      if (connection === undefined) throw new Error('job came without its connection');
      return { request: decodeRun(frame.payload), clientFds: fds, connection };
    }
    native.waitReadable(line);
    const received = native.recv(line, RECV_CHUNK);
    if (received === null) continue;
    if (received.data.length === 0) native.exit(0);
    fds.push(...received.fds);
    reader.push(received.data);
  }
}

/** Tells the server, then the client, how the script ended. The server hears
 * first, so that a client leaving at once is not taken for one that left a
 * live runner behind (which would get SIGHUP). Then, off the client's time,
 * the server hears how the script was loaded (../scriptcache.ts): if the
 * line is full, not at all, rather than wait for a server that reads it
 * once this runner has ended. */
function reportTo(line: number, connection: number, status: number): void {
  const code = Buffer.alloc(4);
  code.writeUInt32LE(status, 0);
  native.send(line, code, []);
  native.send(connection, encodeExited({ how: 'exited', code: status }), []);
  native.shutdownWrite(connection); // the server's own EXITED would only repeat it
  const scriptReport = takeScriptReport();
  try {
    if (scriptReport) native.send(line, scriptReport, [], false);
  } catch {
    // the server is gone: nobody to keep the script for
  }
}

/** The client's descriptors at their numbers; returns the connection's
 * and the line's new numbers. If they cannot be installed (a number beyond
 * this server's hard RLIMIT_NOFILE), the client's stderr is told, and the
 * run ends with status 1. */
function installClientFds(job: Job, line: number): number[] {
  const { fdNumbers } = job.request;
  try {
    return native.installFds(job.clientFds, fdNumbers, [job.connection, line], false);
  } catch (error) {
    const message = `cannot give the script its descriptors (up to ${Math.max(...fdNumbers)}): ${(error as Error).message}`;
    const clientStderr = job.clientFds[fdNumbers.indexOf(2)];
    try {
      fs.writeSync(clientStderr ?? 2, `warmlua: ${message}\n`);
    } catch {
      report(message);
    }
    return native.exit(1);
  }
}

/** Takes on the client's identity: fds, (with --as-peer) user, cwd, environment. */
function specialise(job: Job, line: number, asPeer: boolean): void {
  // Nothing else to close: the spare closed the server's descriptors when it
  // started (serveAsSpare), and has opened none since. Looking again through
  // /proc/self/fd took 0.1 ms of the run.
  const [connection, ownLine] = installClientFds(job, line);
  setStatusReporter((status) => reportTo(ownLine, connection, status));
  resetStdio(); // fd 1 is the client's now: a pipe where the server had a tty
  // Before the chdir, so that the client's own permissions decide it; after
  // the fds, so that a failure is reported on the client's stderr.
  if (asPeer) becomeClientUser(connection);
  try {
    native.chdir(job.request.cwd);
  } catch (error) {
    throw new Error(`cannot change to directory ${job.request.cwd}: ${(error as Error).message}`);
  }
  native.replaceEnv(job.request.env);
}

/** --as-peer: the client's uid, gid and groups, read from its connection,
 * before anything of the client's runs. */
function becomeClientUser(connection: number): void {
  const { uid, gid } = native.peerCredentials(connection);
  native.becomeUser(uid, gid, native.peerGroups(connection));
}

/** The life of a spare runner, from fork to _exit. Never returns. */
export function serveAsSpare(L: LuaState, lineFd: number, asPeer: boolean): never {
  let status = 1;
  try {
    // Drop the server's descriptors now, while nobody waits for this runner.
    const [line] = native.installFds([], [], [lineFd]);
    setRunnerFlags();
    const job = awaitJob(line);
    native.noteRunScript(scriptName(job.request.argv));
    takeScriptReport(); // the warm-up's, if it ran a script: not this run's
    specialise(job, line, asPeer);
    status = luaMain(L, job.request.argv);
  } catch (error) {
    report((error as Error).message);
  }
  return exitProcess(status);
}
