// The JIT warm-up: before serving, warmluad runs a Lua script through lua.c's
// main (luaMain) many times in a scratch state, so that V8 compiles and
// optimises fengari's lexer, parser and VM and the interpreter's own paths
// once, in the server, for every runner to inherit instead of compiling them
// again. It decodes requests the same way, for the code both the server and
// every runner run on each request. The warm state itself is left untouched.
import path from 'node:path';
import type { LuaState } from 'fengari';
import { luaMain } from './interpreter.js';
import { projectRoot } from './native.js';
import { FrameReader, decodeRun, encodeExited, encodeRun, encodeStarted } from './protocol.js';
import { newState } from './warm.js';

export const BUILTIN_WARMUP = path.join(projectRoot, 'server/lua/warmup.lua');

/** Measured with the built-in script: a small script's first luaMain took
 * 5.5 ms after a warm-up that ran the chunk without luaMain, 0.3 ms from the
 * second call on; 100 runs cost about 1.5 s once, at start-up. */
export const WARMUP_RUNS = 100;

/** Enough requests for V8 to optimise the decoder (and the Buffer methods
 * it calls) rather than for every runner to do it: measured, a runner spent
 * 1.7 ms optimising Buffer's indexOf while decoding its job. */
const PROTOCOL_WARMUP_REQUESTS = 2000;

/** Runs `file` through luaMain in a scratch state: a fresh one, or one made
 * by `makeState` (the server's, with the same modules preloaded). */
export function warmUp(file: string, makeState: () => LuaState = newState, runs = WARMUP_RUNS): void {
  const argv = ['warmluad', file].map((a) => Buffer.from(a));
  runScript(makeState(), argv, runs);
  warmUpProtocol(argv);
  collectGarbage();
}

function runScript(S: LuaState, argv: Buffer[], runs: number): void {
  for (let i = 0; i < runs; i++) {
    if (luaMain(S, argv) !== 0) throw new Error(`warm-up script ${argv[1]} failed (see above)`);
  }
}

/** The warm-up leaves its scratch state and much of what its runs made in
 * the old generation, and every fork copies the page tables of all of it.
 * The first full collection frees it, the second compacts what is left so
 * that V8 can hand the emptied pages back. Measured with the bench's server
 * (four modules preloaded): 84 MB of anonymous memory without, 50 MB with,
 * and a fork 2.5-3.0 ms instead of 4.6-4.8. `gc` is there when node runs
 * with --expose-gc, as bin/warmluad starts it. */
function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
}

/** Decodes a request like a client's (this process's own environment) as
 * the server and each runner do. */
function warmUpProtocol(argv: Buffer[]): void {
  const env = Object.entries(process.env).map(([name, value]) => Buffer.from(`${name}=${value}`));
  const request = encodeRun({ cwd: Buffer.from(projectRoot), argv, env, fdNumbers: [0, 1, 2] });
  const reader = new FrameReader();
  for (let i = 0; i < PROTOCOL_WARMUP_REQUESTS; i++) {
    reader.push(request);
    const frame = reader.next();
    if (frame) decodeRun(frame.payload);
    encodeStarted(i);
    encodeExited({ how: 'exited', code: 0 });
  }
}
