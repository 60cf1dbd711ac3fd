// What lua.c's main and its REPL share: the progname used in messages,
// synchronous output to fds 1 and 2, running a chunk under lua.c's message
// handler with SIGINT turned into the error "interrupted!", and reporting
// errors. A forked runner must never touch the event loop, so every read
// and write here is a plain synchronous call on a raw fd.
import fs from 'node:fs';
import { lua, lauxlib, to_luastring, type LuaState } from 'fengari';
import { native } from './native.js';
import * as stdlib from './stdlib/index.js';

/** lua.c's `progname`: the prefix of error messages; null in the REPL. */
let progname: Uint8Array | null = to_luastring('lua');

export function getProgname(): Uint8Array | null {
  return progname;
}

export function setProgname(name: Uint8Array | null): void {
  progname = name;
}

// ---------------------------------------------------------------------------
// Raw fd output

/** Sleeps a little without the event loop (for fds left non-blocking). */
function pause(): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
}

/** Writes all of `bytes` to fd. Errors (EPIPE, EBADF) are dropped as C's
 * stdio drops them; EAGAIN from a non-blocking fd is waited out. */
function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) {
    try {
      done += fs.writeSync(fd, bytes, done, bytes.length - done);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      pause();
    }
  }
}

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

/** lua_writestringerror: stderr is unbuffered in C, so write at once. */
export function writeStderr(...parts: (Uint8Array | string)[]): void {
  writeAll(2, concatBytes(...parts));
}

/** lua_writestring + fflush(stdout): whatever the script buffered on
 * stdout goes first, as it would through C's shared stdout buffer. */
export function writeStdout(...parts: (Uint8Array | string)[]): void {
  stdlib.flushAll();
  writeAll(1, concatBytes(...parts));
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
// Loading files

type LoadFile = (L: LuaState, filename: Uint8Array | null) => number;

/** The stdlib's luaL_loadfile (lua5.3's wording, raw fds) once it exists. */
const stdlibLoadFile = (stdlib as Record<string, unknown>).loadFile as LoadFile | undefined;

/** Reads fd 0 to its end with plain read(2) calls. */
function readAllStdin(): Uint8Array {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        pause();
        continue;
      }
      if (code === 'EOF') n = 0;
      else throw e;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** luaL_loadfile(L, NULL) until the stdlib's loadFile lands: fengari's own
 * reads stdin through process.stdin, which a forked runner must not touch.
 * Skips a UTF-8 BOM and a first '#' line, keeping line numbers. */
function loadStdinFallback(L: LuaState): number {
  let data: Uint8Array;
  try {
    data = readAllStdin();
  } catch (e) {
    lua.lua_pushstring(L, to_luastring(`cannot read stdin: ${(e as Error).message}`));
    return lauxlib.LUA_ERRFILE;
  }
  let p = data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf ? 3 : 0;
  let prefix = '';
  if (data[p] === 0x23 /* '#' */) {
    while (p < data.length && data[p] !== 0x0a) p++;
    p++; // the newline itself; the prefix below stands for it
    prefix = '\n';
  }
  const chunk = concatBytes(prefix, data.subarray(Math.min(p, data.length)));
  return lauxlib.luaL_loadbuffer(L, chunk, chunk.length, to_luastring('=stdin'));
}

/** luaL_loadfile: "@name" for a file, "=stdin" for NULL. */
export function loadFile(L: LuaState, filename: Uint8Array | null): number {
  if (stdlibLoadFile) return stdlibLoadFile(L, filename);
  if (filename === null) return loadStdinFallback(L);
  return lauxlib.luaL_loadfilex(L, filename, null);
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

/** signal(SIGINT, laction) before a call: a fresh flag, and the hook once. */
function catchInterrupt(L: LuaState): void {
  interruptFlag = native.catchInterrupt();
  if (hookedState !== L) {
    hookedState = L;
    lua.lua_sethook(L, interruptHook, lua.LUA_MASKCOUNT, HOOK_PERIOD);
  }
}

/** signal(SIGINT, SIG_DFL) after a call, when the addon offers it, so a
 * SIGINT outside Lua code ends the process as it ends lua5.3. */
function releaseInterrupt(): void {
  const release = (native as unknown as Record<string, unknown>).releaseInterrupt;
  if (typeof release === 'function') release.call(native);
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
  releaseInterrupt();
  lua.lua_remove(L, base);
  return status;
}
