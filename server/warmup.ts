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
  const S = makeState();
  const argv = ['warmluad', file].map((a) => Buffer.from(a));
  for (let i = 0; i < runs; i++) {
    if (luaMain(S, argv) !== 0) throw new Error(`warm-up script ${file} failed (see above)`);
  }
  warmUpProtocol(argv);
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
