// What lua.c's main and its REPL share: the progname used in messages,
// output to stdout and stderr, running a chunk under lua.c's message
// handler with SIGINT turned into the error "interrupted!" (and, in the
// server, a passed deadline into another), and reporting errors. A forked
// runner must never touch the event loop: every write here is synchronous
// (the stdlib's streams use raw-fd calls).
import { lua, lauxlib, to_luastring, type LuaState } from 'fengari';
import { luaV_interruption } from 'fengari/src/lvm.js';
import { deadlinePassed } from './deadline.js';
import { INTERRUPTED_BY, native } from './native.js';
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
// SIGINT: lua.c's laction and lstop. JS cannot run in a signal handler, so
// native code raises a flag, and fengari's VM, which looks at it before each
// instruction (scripts/fix-fengari.ts), calls laction. A script runs with no
// hook until then, as under lua5.3.

/** The main state of the chunk running (lua.c's globalL). */
let globalL: LuaState = null;

/** lstop: the hook clears itself and raises the error, wherever the main
 * thread runs next (a coroutine is interrupted once control comes back). */
function lstop(L: LuaState): void {
  lua.lua_sethook(L, null, 0, 0);
  lauxlib.luaL_error(L, to_luastring('interrupted!'));
}

/** laction, past the signal handler's part (the default action is back):
 * hook the main thread at its next instruction, call or return. */
function laction(): void {
  lua.lua_sethook(globalL, lstop, lua.LUA_MASKCALL | lua.LUA_MASKRET | lua.LUA_MASKCOUNT, 1);
}

/** Called by the VM, in thread L, when a signal handler raised the flag:
 * SIGINT, or the deadline of the server's own Lua code (server/deadline.ts). */
function interruption(L: LuaState): void {
  const raised = luaV_interruption.flag[0];
  luaV_interruption.flag[0] = 0;
  if (raised & INTERRUPTED_BY.deadline) deadlinePassed(L);
  if (raised & INTERRUPTED_BY.sigint) laction();
}

luaV_interruption.flag = native.interruptFlag();
luaV_interruption.handler = interruption;

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
  globalL = L;
  native.catchInterrupt(); // signal(SIGINT, laction)
  const status = lua.lua_pcall(L, narg, nres, base);
  native.releaseInterrupt(); // a SIGINT outside Lua code ends a runner, as it ends lua5.3
  lua.lua_remove(L, base);
  return status;
}
