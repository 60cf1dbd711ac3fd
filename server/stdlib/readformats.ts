// The read formats of io.read, file:read and the lines iterators (g_read
// in liolib.c): "n", "l", "L", "a" (with or without a leading '*') and
// byte counts, each pushing its result or nil.
import { lua, lauxlib, to_luastring, type LuaState } from 'fengari';
import { pushsvalue2s } from 'fengari/src/lobject.js';
import { luaS_bless } from 'fengari/src/lstring.js';
import { pushFailure } from './errors.js';
import type { Stream } from './stream.js';

const MAX_NUMBER_LENGTH = 200; // lua5.3's L_MAXLENNUM
const LUA_MINSTACK = 20;
const ch = (c: string) => c.charCodeAt(0);

const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13);
const isDigit = (c: number) => c >= 48 && c <= 57;
const isHexDigit = (c: number) => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);

/** read_number: the longest prefix that can be a numeral, converted as
 * lua_stringtonumber does; nothing is unread but the look-ahead byte. */
function readNumber(L: LuaState, stream: Stream): boolean {
  const text: number[] = [];
  let tooLong = false;
  let c: number;
  while (isSpace((c = stream.peek()))) stream.advance();
  const accept = (): boolean => {
    if (text.length >= MAX_NUMBER_LENGTH) {
      tooLong = true;
      return false;
    }
    text.push(c);
    stream.advance();
    c = stream.peek();
    return true;
  };
  const acceptOneOf = (set: string) => (c === ch(set[0]) || c === ch(set[1])) && accept();
  const acceptDigits = (hex: boolean) => {
    let count = 0;
    while ((hex ? isHexDigit(c) : isDigit(c)) && accept()) count++;
    return count;
  };
  let count = 0;
  let hex = false;
  acceptOneOf('-+');
  if (acceptOneOf('00')) {
    if (acceptOneOf('xX')) hex = true;
    else count = 1;
  }
  count += acceptDigits(hex);
  if (acceptOneOf('..')) count += acceptDigits(hex);
  if (count > 0 && acceptOneOf(hex ? 'pP' : 'eE')) {
    acceptOneOf('-+');
    acceptDigits(false);
  }
  if (!tooLong && lua.lua_stringtonumber(L, Uint8Array.from(text)) !== 0) return true;
  lua.lua_pushnil(L);
  return false;
}

function readLine(L: LuaState, stream: Stream, keepNewline: boolean): boolean {
  const { line, complete } = stream.readLine(keepNewline);
  lua.lua_pushstring(L, line);
  return complete || line.length > 0;
}

/** lua_pushstring without its copy, for bytes nothing else refers to (what
 * the stream reads for "a" and counts): copying a 10 MB read("a") again
 * meant faulting in 10 MB more. */
function pushOwnedString(L: LuaState, bytes: Uint8Array): void {
  pushsvalue2s(L, luaS_bless(L, bytes));
}

function readChars(L: LuaState, stream: Stream, n: number): boolean {
  const bytes = stream.readChars(n);
  pushOwnedString(L, bytes);
  return bytes.length > 0;
}

/** test_eof: "" unless at end of file. */
function testEof(L: LuaState, stream: Stream): boolean {
  lua.lua_pushstring(L, to_luastring(''));
  return stream.peek() !== -1;
}

function readFormat(L: LuaState, stream: Stream, arg: number): boolean {
  if (lua.lua_type(L, arg) === lua.LUA_TNUMBER) {
    const n = lauxlib.luaL_checkinteger(L, arg);
    // lua5.3 turns a negative count into a huge size_t
    if (n < 0) lauxlib.luaL_error(L, to_luastring('not enough memory for buffer allocation'));
    return n === 0 ? testEof(L, stream) : readChars(L, stream, n);
  }
  const format = lauxlib.luaL_checkstring(L, arg);
  switch (format[format[0] === ch('*') ? 1 : 0]) {
    case ch('n'):
      return readNumber(L, stream);
    case ch('l'):
      return readLine(L, stream, false);
    case ch('L'):
      return readLine(L, stream, true);
    case ch('a'):
      pushOwnedString(L, stream.readAll());
      return true;
    default:
      return lauxlib.luaL_argerror(L, arg, to_luastring('invalid format'));
  }
}

/** g_read: the formats are the arguments from `first` to the one below the
 * top; returns how many results were pushed. */
export function pushReadResults(L: LuaState, stream: Stream, first: number): number {
  let formats = lua.lua_gettop(L) - 1;
  let success: boolean;
  let n: number;
  stream.clearError();
  if (formats === 0) {
    success = readLine(L, stream, false);
    n = first + 1;
  } else {
    lauxlib.luaL_checkstack(L, formats + LUA_MINSTACK, to_luastring('too many arguments'));
    success = true;
    for (n = first; formats-- > 0 && success; n++) success = readFormat(L, stream, n);
  }
  if (stream.errno !== 0) return pushFailure(L, stream.errno);
  if (!success) {
    lua.lua_pop(L, 1);
    lua.lua_pushnil(L);
  }
  return n - first;
}
