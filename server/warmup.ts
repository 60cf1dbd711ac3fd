// The JIT warm-up: before serving, warmluad runs a Lua script through lua.c's
// main (luaMain) many times in a scratch state, so that V8 compiles and
// optimises fengari's lexer, parser and VM and the interpreter's own paths
// once, in the server, for every runner to inherit instead of compiling them
// again. The warm state itself is left untouched.
import path from 'node:path';
import { luaMain } from './interpreter.js';
import { projectRoot } from './native.js';
import { newState } from './warm.js';

export const BUILTIN_WARMUP = path.join(projectRoot, 'server/lua/warmup.lua');

/** Measured with the built-in script: a small script's first luaMain took
 * 5.5 ms after a warm-up that ran the chunk without luaMain, 0.3 ms from the
 * second call on; 100 runs cost about 0.8 s once, at start-up. */
export const WARMUP_RUNS = 100;

export function warmUp(file: string, runs = WARMUP_RUNS): void {
  const S = newState();
  const argv = ['warmluad', file].map((a) => Buffer.from(a));
  for (let i = 0; i < runs; i++) {
    if (luaMain(S, argv) !== 0) throw new Error(`warm-up script ${file} failed (see above)`);
  }
}
