// The runner: what a freshly forked child of warmluad does. It becomes the
// client's process (its fds at their numbers, its cwd, its environment), runs
// lua.c's main on the inherited warm state and leaves with _exit. It never
// returns to the event loop: the loop, its epoll fd and the server's sockets
// belong to the parent (../shared/notes/forking-node.md).
import fs from 'node:fs';
import type { LuaState } from 'fengari';
import type { RunRequest } from './protocol.js';
import { native } from './native.js';
import { luaMain } from './interpreter.js';
import { flushAll, resetStdio } from './stdlib/index.js';

function report(message: string): void {
  try {
    fs.writeSync(2, `warmlua: ${message}\n`);
  } catch {
    // stderr is the client's; if it is gone there is nobody left to tell
  }
}

/** Takes on the client's identity: fds, cwd, environment. */
function specialise(request: RunRequest, receivedFds: number[]): void {
  // installFds also closes everything else, so a stray use of the server's
  // epoll fd or sockets fails with EBADF instead of corrupting the server.
  native.installFds(receivedFds, request.fdNumbers);
  resetStdio(); // fd 1 is the client's now: a pipe where the server had a tty
  try {
    native.chdir(request.cwd);
  } catch (error) {
    throw new Error(`cannot change to directory ${request.cwd}: ${(error as Error).message}`);
  }
  native.replaceEnv(request.env);
}

/** Runs the request in this (child) process. Never returns. */
export function runRunner(L: LuaState, request: RunRequest, receivedFds: number[]): never {
  let status = 1;
  try {
    specialise(request, receivedFds);
    status = luaMain(L, request.argv);
  } catch (error) {
    report((error as Error).message);
  }
  try {
    flushAll();
  } catch (error) {
    report(`cannot flush output: ${(error as Error).message}`);
  }
  return native.exit(status);
}
