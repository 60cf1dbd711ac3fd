// What lua.c's main and its REPL share: the progname used in messages,
// output to stdout and stderr, running a chunk under lua.c's message
// handler with SIGINT turned into the error "interrupted!", and reporting
// errors. A forked runner must never touch the event loop: every write
// here is synchronous (the stdlib's streams use raw-fd calls).
import { lua, lauxlib, to_luastring, type LuaState } from 'fengari';
import { native } from './native.js';
import { standardStreams } from './stdlib/liolib.js';
export { loadFile } from './stdlib/index.js';

/** lua.c's `progname`: the prefix of error messages; null in the REPL. */
let progname: Uint8Array | null = to_luastring('lua');

export function getProgname(): Uint8Array | null {
  return progname;
}

export function setProgname(name: Uint8Array | null): void {
  progname = name;
}

// ---------------------------------------------------------------------------
// Output through the stdlib's C-stdio-like streams, so lua.c's own messages
// interleave with the script's buffered output exactly as they would
// through C's stdout and stderr FILEs.

export function concatBytes(...parts: (Uint8Array | string)[]): Uint8Array {
  const arrays = parts.map((p) => (typeof p === 'string' ? to_luastring(p) : p));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

/** lua_writestringerror: fprintf(stderr) + fflush(stderr). */
export function writeStderr(...parts: (Uint8Array | string)[]): void {
  standardStreams.stderr.write(concatBytes(...parts));
  standardStreams.stderr.flush();
}

/** lua_writestring + fflush(stdout), and readline's prompt and echo. */
export function writeStdout(...parts: (Uint8Array | string)[]): void {
  standardStreams.stdout.write(concatBytes(...parts));
  standardStreams.stdout.flush();
}

/** C's "%s" stops at the first NUL and prints NULL as "(null)". */
export function cString(s: Uint8Array | null): Uint8Array {
  if (s === null) return to_luastring('(null)');
  const nul = s.indexOf(0);
  return nul < 0 ? s : s.subarray(0, nul);
}

/** lua.c's l_message: "progname: msg\n" on stderr (no prefix in the REPL). */
export function l_message(pname: Uint8Array | null, msg: Uint8Array | null): void {
  if (pname !== null) writeStderr(cString(pname), ': ', cString(msg), '\n');
  else writeStderr(cString(msg), '\n');
}

/** lua.c's report: prints the error on top of the stack, if any, and pops it. */
export function report(L: LuaState, status: number): number {
  if (status !== lua.LUA_OK) {
    l_message(progname, luaToCString(L, -1));
    lua.lua_pop(L, 1);
  }
  return status;
}

/** lua_tostring as C sees it: strings and numbers, else NULL. */
function luaToCString(L: LuaState, idx: number): Uint8Array | null {
  const t = lua.lua_type(L, idx);
  return t === lua.LUA_TSTRING || t === lua.LUA_TNUMBER ? lua.lua_tostring(L, idx) : null;
}

// ---------------------------------------------------------------------------
// SIGINT: lua.c's laction/lstop, with the signal turned into a flag by
// native code and polled by a count hook (JS cannot run in a signal handler).

/** Instructions between two looks at the flag. A hook costs one decrement
 * per instruction whatever the period; 1000 keeps the reaction well under
 * a millisecond. */
const HOOK_PERIOD = 1000;

let interruptFlag: Int32Array | null = null;
let hookedState: LuaState = null;

/** lstop: "interrupted!" raised where the main thread is running. lua.c
 * hooks only the main thread (globalL), so a coroutine is interrupted when
 * control comes back to it: coroutines inherit this hook, and ignore it. */
function interruptHook(L: LuaState): void {
  if (interruptFlag !== null && interruptFlag[0] !== 0 && L === hookedState) {
    interruptFlag[0] = 0;
    lauxlib.luaL_error(L, to_luastring('interrupted!'));
  }
}

function installHook(L: LuaState): void {
  lua.lua_sethook(L, interruptHook, lua.LUA_MASKCOUNT, HOOK_PERIOD);
}

/** signal(SIGINT, laction) before a call: a fresh flag, and the hook once. */
function catchInterrupt(L: LuaState): void {
  interruptFlag = native.catchInterrupt();
  if (hookedState !== L) {
    hookedState = L;
    installHook(L);
    hideHookFromDebug(L);
  }
}

/** The thread a debug.gethook/sethook call is about (db's getthread). */
function targetThread(L: LuaState): LuaState {
  return lua.lua_isthread(L, 1) ? lua.lua_tothread(L, 1) : L;
}

/** lua5.3 has no hook until a SIGINT arrives, so scripts must not see ours:
 * debug.gethook reports "no hook" for it, and when a script clears its own
 * hook on the main thread ours comes back. (While a script's hook is set,
 * SIGINT is not turned into an error: the second one kills.) The originals
 * are called directly, not through Lua, so error messages stay theirs. */
function hideHookFromDebug(L: LuaState): void {
  lauxlib.luaL_getsubtable(L, lua.LUA_REGISTRYINDEX, to_luastring('_LOADED'));
  const isTable = lua.lua_getfield(L, -1, to_luastring('debug')) === lua.LUA_TTABLE;
  if (isTable) {
    const original = (name: string): ((L: LuaState) => number) | null => {
      lua.lua_getfield(L, -1, to_luastring(name));
      const f = lua.lua_tocfunction(L, -1);
      lua.lua_pop(L, 1);
      return f;
    };
    const gethook = original('gethook');
    const sethook = original('sethook');
    if (gethook && sethook) {
      lua.lua_pushcfunction(L, (L1: LuaState) => {
        if (lua.lua_gethook(targetThread(L1)) !== interruptHook) return gethook(L1);
        lua.lua_pushnil(L1);
        lua.lua_pushliteral(L1, '');
        lua.lua_pushinteger(L1, 0);
        return 3;
      });
      lua.lua_setfield(L, -2, to_luastring('gethook'));
      lua.lua_pushcfunction(L, (L1: LuaState) => {
        const thread = targetThread(L1);
        const n = sethook(L1);
        if (thread === hookedState && lua.lua_gethook(thread) === null) installHook(thread);
        return n;
      });
      lua.lua_setfield(L, -2, to_luastring('sethook'));
    }
  }
  lua.lua_pop(L, 2);
}


// ---------------------------------------------------------------------------
// Calling chunks

/** lua.c's msghandler: a string gets a traceback; an object with a
 * __tostring that yields a string is printed as that, without traceback. */
function msghandler(L: LuaState): number {
  let msg: Uint8Array | null = luaToCString(L, 1);
  if (msg === null) {
    if (lauxlib.luaL_callmeta(L, 1, to_luastring('__tostring')) && lua.lua_type(L, -1) === lua.LUA_TSTRING)
      return 1;
    msg = lua.lua_pushstring(L, concatBytes('(error object is a ', lauxlib.luaL_typename(L, 1), ' value)'));
  }
  lauxlib.luaL_traceback(L, L, cString(msg), 1);
  lua.lua_pushstring(L, asCTraceback(lua.lua_tostring(L, -1)));
  return 1;
}

const JS_FRAME = to_luastring('\n\t[JS]:');
const C_FRAME = to_luastring('\n\t[C]:');

/** fengari names its built-in functions "[JS]" where lua5.3 says "[C]";
 * traceback lines are rewritten so error output reads as lua5.3's. */
function asCTraceback(tb: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < tb.length; i++) {
    if (tb[i] === JS_FRAME[0] && JS_FRAME.every((b, j) => tb[i + j] === b)) {
      out.push(...C_FRAME);
      i += JS_FRAME.length - 1;
    } else {
      out.push(tb[i]);
    }
  }
  return new Uint8Array(out);
}

/** lua.c's docall: pcall with msghandler below the function, SIGINT caught. */
export function docall(L: LuaState, narg: number, nres: number): number {
  const base = lua.lua_gettop(L) - narg;
  lua.lua_pushcfunction(L, msghandler);
  lua.lua_insert(L, base);
  catchInterrupt(L);
  const status = lua.lua_pcall(L, narg, nres, base);
  native.releaseInterrupt(); // a SIGINT outside Lua code ends the process, as in lua5.3
  lua.lua_remove(L, base);
  return status;
}
