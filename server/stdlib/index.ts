// The runner's Lua standard library: print, io and os on raw fds with
// synchronous calls only (a forked runner must never touch the event loop),
// behaving as lua5.3's. One file per library, as in Lua's sources.
import { lua, lauxlib, to_luastring, type LuaState } from 'fengari';
import { setBaseFunctions } from './lbaselib.js';
import { openIo, standardStreams } from './liolib.js';
import { openOs } from './loslib.js';
import { Stream, flushAllStreams } from './stream.js';

export { loadFile } from './loadfile.js';

/** Sets the table on top as library `name`: global and package.loaded[name]. */
function installLibrary(L: LuaState, name: string): void {
  lauxlib.luaL_getsubtable(L, lua.LUA_REGISTRYINDEX, to_luastring('_LOADED'));
  lua.lua_pushvalue(L, -2);
  lua.lua_setfield(L, -2, to_luastring(name));
  lua.lua_pop(L, 1);
  lua.lua_setglobal(L, to_luastring(name));
}

/** Replaces fengari's print, type, io and os (and friends) in state L. */
export function openStdlib(L: LuaState): void {
  lua.lua_pushglobaltable(L);
  setBaseFunctions(L);
  lua.lua_pop(L, 1);
  openIo(L);
  installLibrary(L, 'io');
  openOs(L);
  installLibrary(L, 'os');
}

/** Writes every buffered output of every open file; called before _exit. */
export function flushAll(): void {
  flushAllStreams();
}

/** For a runner just forked from the server, once the client's fds are in
 * place: forgets stdin/stdout/stderr state inherited from the server
 * (buffered bytes, tty detection), as a fresh C process would start. */
export function resetStdio(): void {
  standardStreams.stdin.reset(null);
  standardStreams.stdout.reset(null);
  standardStreams.stderr.reset('no');
}

/** Runs `fn` with C's stdout (or stderr) on a stream of its own over `fd`,
 * which it closes after: print, io.write and error messages, and io.stdout
 * (io.stderr) in states opened meanwhile, write there. For the warm-up,
 * whose scripts must not write on the server's own stdout (a supervisor's
 * log, say). */
export function withOutputOn<T>(name: 'stdout' | 'stderr', fd: number, fn: () => T): T {
  const serverStream = standardStreams[name];
  const stream = new Stream(fd, false, true);
  // Reset as a runner resets its stdio: a field the server never assigns
  // again is taken for a constant by optimised code, which every runner
  // then threw away on its own reset (loadFile's, the Stream
  // constructor's and the reader's, at each run).
  stream.reset(name === 'stderr' ? 'no' : null);
  standardStreams[name] = stream;
  try {
    return fn();
  } finally {
    standardStreams[name] = serverStream;
    stream.close();
  }
}
