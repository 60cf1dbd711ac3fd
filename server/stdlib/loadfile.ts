// luaL_loadfilex of lua5.3 on Streams: "=stdin" or "@name", a UTF-8 BOM
// and a first line starting with '#' skipped (the line still counts), and
// lua5.3's "cannot open/read name: reason" errors.
import fs from 'node:fs';
import { lua, lauxlib, to_luastring, type LuaState } from 'fengari';
import { cPath } from './cstrings.js';
import { errnoOf, strerror } from './errors.js';
import { noteOpen } from './opens.js';
import { loadScriptText } from '../scriptcache.js';
import { standardStreams } from './liolib.js';
import { SEEK_SET, Stream } from './stream.js';

const UTF8_BOM = [0xef, 0xbb, 0xbf];
const LUA_SIGNATURE_FIRST = 0x1b;
const NEWLINE = 10;
const READ_BLOCK = 8192; // C's BUFSIZ, what getF asks fread for

function fileError(L: LuaState, what: string, nameIndex: number, errno: number): number {
  const name = lua.lua_tostring(L, nameIndex).subarray(1);
  lua.lua_pushfstring(L, to_luastring('cannot %s %s: %s'), to_luastring(what), name, to_luastring(strerror(errno)));
  lua.lua_remove(L, nameIndex);
  return lauxlib.LUA_ERRFILE;
}

/** skipBOM: the first byte after an optional BOM; an incomplete BOM is kept in `prefix`. */
function skipBom(stream: Stream, prefix: number[]): number {
  prefix.length = 0;
  for (const expected of UTF8_BOM) {
    const c = stream.peek();
    if (c !== expected) return c;
    stream.advance();
    prefix.push(c);
  }
  prefix.length = 0;
  return stream.peek();
}

/** skipcomment: skips a BOM and a first line starting with '#'. Returns
 * the first byte to parse (-1 at end of file, not consumed) and whether a
 * line was skipped. */
function skipComment(stream: Stream, prefix: number[]): { first: number; skipped: boolean } {
  const c = skipBom(stream, prefix);
  if (c !== 0x23) return { first: c, skipped: false };
  let skipped: number;
  do {
    stream.advance();
    skipped = stream.peek();
  } while (skipped !== -1 && skipped !== NEWLINE);
  if (skipped === NEWLINE) stream.advance();
  return { first: stream.peek(), skipped: true };
}

function openForLoading(name: Uint8Array): Stream | number {
  const file = cPath(name);
  noteOpen(file, false);
  try {
    return new Stream(fs.openSync(file, fs.constants.O_RDONLY), true, false);
  } catch (e) {
    return errnoOf(e);
  }
}

/** luaL_loadfile: loads `filename` (null: stdin) as a chunk; returns the
 * status of lua_load, or LUA_ERRFILE with the message pushed. The script of
 * a run (`script`) is read whole first, so that a compiled copy of it can
 * stand in for it (../scriptcache.ts); a binary chunk is not kept. */
export function loadFile(L: LuaState, filename: Uint8Array | null, mode: Uint8Array | null = null, script = false): number {
  const nameIndex = lua.lua_gettop(L) + 1;
  let stream: Stream;
  if (filename === null) {
    lua.lua_pushstring(L, to_luastring('=stdin'));
    stream = standardStreams.stdin;
  } else {
    lua.lua_pushstring(L, Buffer.concat([Buffer.from('@'), filename]));
    const opened = openForLoading(filename);
    if (typeof opened === 'number') return fileError(L, 'open', nameIndex, opened);
    stream = opened;
  }
  const prefix: number[] = [];
  let { first, skipped } = skipComment(stream, prefix);
  if (skipped) prefix.push(NEWLINE); // keeps line numbers right
  const binary = first === LUA_SIGNATURE_FIRST;
  if (binary && filename !== null) {
    // a binary chunk: lua5.3 reopens the file and skips the comment again
    stream.seek(SEEK_SET, 0);
    ({ first } = skipComment(stream, prefix));
  }
  if (first !== -1) {
    prefix.push(first);
    stream.advance();
  }
  const chunkname = lua.lua_tostring(L, -1);
  const status =
    script && filename !== null && !binary
      ? loadWhole(L, stream, prefix, chunkname)
      : lua.lua_load(L, readerOf(stream, prefix), null, chunkname, mode);
  const readErrno = stream.errno;
  if (filename !== null) stream.close();
  if (readErrno !== 0) {
    lua.lua_settop(L, nameIndex);
    return fileError(L, 'read', nameIndex, readErrno);
  }
  lua.lua_remove(L, nameIndex);
  return status;
}

/** A script's text, `prefix` and the rest of the stream, loaded in one
 * piece; a read error is left for the caller to report. */
function loadWhole(L: LuaState, stream: Stream, prefix: number[], chunkname: Uint8Array): number {
  const rest = stream.readAll();
  if (stream.errno !== 0) return lauxlib.LUA_ERRFILE;
  const text = new Uint8Array(prefix.length + rest.length);
  text.set(prefix);
  text.set(rest, prefix.length);
  return loadScriptText(L, text, chunkname);
}

/** getF: what comes before the stream's next byte (`prefix`), then its blocks. */
function readerOf(stream: Stream, prefix: number[]): () => Uint8Array | null {
  let pending: Uint8Array | null = prefix.length > 0 ? Uint8Array.from(prefix) : null;
  return () => {
    if (pending !== null) {
      const chunk = pending;
      pending = null;
      return chunk;
    }
    const chunk = stream.eof ? null : stream.readChars(READ_BLOCK);
    return chunk !== null && chunk.length > 0 ? chunk : null;
  };
}
