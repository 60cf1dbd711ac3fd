// lua.c's read-eval-print loop (Lua 5.3.6), reading fd 0 synchronously.
// Debian's lua5.3 reads lines with GNU readline, which also runs when stdin
// is not a terminal: it then echoes each line after the prompt, rings the
// bell on stderr for a TAB (completion finds nothing) and takes CR as the
// end of a line. This module reproduces that much, so `lua -i < file`
// prints the same bytes.
import fs from 'node:fs';
import tty from 'node:tty';
import { lua, lauxlib, to_luastring, type LuaState } from 'fengari';
import { concatBytes, docall, getProgname, l_message, report, setProgname, writeStderr, writeStdout } from './luacall.js';

const LUA_PROMPT = '> ';
const LUA_PROMPT2 = '>> ';
const EOFMARK = to_luastring('<eof>');

const NL = 0x0a;
const CR = 0x0d;
const TAB = 0x09;

/** One byte of fd 0, or null at end of input. One byte at a time, as
 * readline reads, so code run from the REPL can read the rest of stdin. */
function readByte(): number | null {
  const b = Buffer.alloc(1);
  for (;;) {
    try {
      return fs.readSync(0, b, 0, 1, null) === 1 ? b[0] : null;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      else if (code === 'EOF') return null;
      else return null; // a read error ends input, as readline's EOF does
    }
  }
}

/** lua_readline: shows the prompt and reads one line without its end;
 * null when input ends before any character of a line. */
function readline(prompt: Uint8Array): Uint8Array | null {
  writeStdout(prompt);
  const onTerminal = tty.isatty(0); // the terminal echoes; readline need not
  const line: number[] = [];
  const echo: number[] = [];
  let c: number | null;
  for (;;) {
    c = readByte();
    if (c === null || c === NL || (!onTerminal && c === CR)) break;
    if (!onTerminal && c === TAB) {
      // readline's failed completion: the bell (on stderr), no character.
      writeStdout(new Uint8Array(echo));
      echo.length = 0;
      writeStderr('\x07');
      continue;
    }
    line.push(c);
    echo.push(c);
  }
  if (c === null && line.length === 0) return null;
  if (!onTerminal) writeStdout(new Uint8Array(echo), '\n');
  return new Uint8Array(line);
}

/** get_prompt: _PROMPT or _PROMPT2 if they convert to strings. The value
 * stays pushed (lua.c pops it after reading, or leaves it on failure). */
function get_prompt(L: LuaState, firstline: boolean): Uint8Array {
  lua.lua_getglobal(L, to_luastring(firstline ? '_PROMPT' : '_PROMPT2'));
  const t = lua.lua_type(L, -1);
  if (t === lua.LUA_TSTRING || t === lua.LUA_TNUMBER) return lua.lua_tostring(L, -1);
  return to_luastring(firstline ? LUA_PROMPT : LUA_PROMPT2);
}

/** Syntax error at <eof>: the statement is incomplete (message popped). */
function incomplete(L: LuaState, status: number): boolean {
  if (status !== lua.LUA_ERRSYNTAX) return false;
  const msg: Uint8Array = lua.lua_tostring(L, -1);
  const tail = msg.subarray(msg.length - EOFMARK.length);
  if (msg.length < EOFMARK.length || !tail.every((b, i) => b === EOFMARK[i])) return false;
  lua.lua_pop(L, 1);
  return true;
}

/** Reads a line onto the stack; "=expr" on a first line becomes "return expr".
 * On end of input the prompt value is left on the stack, as in lua.c
 * (its report then prints that value: "(null)" for the default prompt). */
function pushline(L: LuaState, firstline: boolean): boolean {
  const b = readline(get_prompt(L, firstline));
  if (b === null) return false;
  lua.lua_pop(L, 1);
  if (firstline && b[0] === 0x3d /* '=' */) lua.lua_pushstring(L, concatBytes('return ', cStr(b.subarray(1))));
  else lua.lua_pushstring(L, b);
  return true;
}

/** "%s" in lua_pushfstring stops at a NUL. */
function cStr(s: Uint8Array): Uint8Array {
  const nul = s.indexOf(0);
  return nul < 0 ? s : s.subarray(0, nul);
}

/** Tries the line as "return line;" so expressions print their values. */
function addreturn(L: LuaState): number {
  const line: Uint8Array = lua.lua_tostring(L, -1);
  const retline = concatBytes('return ', cStr(line), ';');
  lua.lua_pushstring(L, retline);
  const status = lauxlib.luaL_loadbuffer(L, retline, retline.length, to_luastring('=stdin'));
  if (status === lua.LUA_OK) lua.lua_remove(L, -2);
  else lua.lua_pop(L, 2);
  return status;
}

/** Adds continuation lines while the chunk is incomplete. */
function multiline(L: LuaState): number {
  for (;;) {
    const line: Uint8Array = lua.lua_tostring(L, 1);
    const status = lauxlib.luaL_loadbuffer(L, line, line.length, to_luastring('=stdin'));
    if (!incomplete(L, status) || !pushline(L, false)) return status;
    lua.lua_pushliteral(L, '\n');
    lua.lua_insert(L, -2);
    lua.lua_concat(L, 3);
  }
}

/** Reads and compiles one statement; -1 when input is over. */
function loadline(L: LuaState): number {
  lua.lua_settop(L, 0);
  if (!pushline(L, true)) return -1;
  let status = addreturn(L);
  if (status !== lua.LUA_OK) status = multiline(L);
  lua.lua_remove(L, 1);
  return status;
}

/** Prints the chunk's results with the global print. */
function l_print(L: LuaState): void {
  const n = lua.lua_gettop(L);
  if (n === 0) return;
  lauxlib.luaL_checkstack(L, lua.LUA_MINSTACK, to_luastring('too many results to print'));
  lua.lua_getglobal(L, to_luastring('print'));
  lua.lua_insert(L, 1);
  if (lua.lua_pcall(L, n, 0, 0) !== lua.LUA_OK) {
    const t = lua.lua_type(L, -1);
    const msg = t === lua.LUA_TSTRING || t === lua.LUA_TNUMBER ? cStr(lua.lua_tostring(L, -1)) : '(null)';
    l_message(getProgname(), concatBytes("error calling 'print' (", msg, ')'));
  }
}

/** The REPL: errors are reported without the progname and do not change
 * the exit status; a newline is printed when input ends. */
export function doREPL(L: LuaState): void {
  const oldprogname = getProgname();
  setProgname(null);
  let status: number;
  while ((status = loadline(L)) !== -1) {
    if (status === lua.LUA_OK) status = docall(L, 0, lua.LUA_MULTRET);
    if (status === lua.LUA_OK) l_print(L);
    else report(L, status);
  }
  lua.lua_settop(L, 0);
  writeStdout('\n');
  setProgname(oldprogname);
}
