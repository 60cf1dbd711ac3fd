// The io library of lua5.3 (liolib.c) on Streams: raw fds, synchronous
// calls only, C stdio's buffering. Error values and messages are lua5.3's.
import fs from 'node:fs';
import { lua, lauxlib, to_luastring, type LuaState } from 'fengari';
import { errnoOf, pushExecResult, pushFailure, pushFileResult, strerror } from './errors.js';
import { native } from './native.js';
import { pushReadResults } from './readformats.js';
import { flushAllStreams, SEEK_CUR, SEEK_END, SEEK_SET, Stream, type BufferMode } from './stream.js';
import { formatNumber } from './numfmt.js';
import { cPath } from './cstrings.js';
import { noteOpen } from './opens.js';

const FILEHANDLE = to_luastring('FILE*');
const IO_INPUT = to_luastring('_IO_input');
const IO_OUTPUT = to_luastring('_IO_output');
const MAX_LINES_FORMATS = 250; // lua5.3's MAXARGLINE

/** The userdata of a Lua file: `closef` is null once closed (LStream in liolib.c). */
interface LuaFile {
  stream: Stream | null;
  closef: ((L: LuaState, file: LuaFile) => number) | null;
  id: number;
}

let nextFileId = 1;

export const standardStreams = {
  stdin: new Stream(0, true, false),
  stdout: new Stream(1, false, true),
  stderr: new Stream(2, false, true, 'no'),
};
standardStreams.stdout.markAsStandardOutput();

const str = (s: string) => to_luastring(s);
const TOO_MANY_ARGUMENTS = str('too many arguments');

function toLuaFile(L: LuaState): LuaFile {
  return lauxlib.luaL_checkudata(L, 1, FILEHANDLE) as LuaFile;
}

function isClosed(file: LuaFile): boolean {
  return file.closef === null;
}

/** The open stream of argument 1, or the error "attempt to use a closed file". */
function toStream(L: LuaState): Stream {
  const file = toLuaFile(L);
  if (isClosed(file)) lauxlib.luaL_error(L, str('attempt to use a closed file'));
  return file.stream!;
}

/** Pushes a new, still closed, file handle. */
function newFile(L: LuaState): LuaFile {
  const file = lua.lua_newuserdata(L, 0) as LuaFile;
  file.stream = null;
  file.closef = null;
  file.id = nextFileId++;
  lauxlib.luaL_setmetatable(L, FILEHANDLE);
  return file;
}

function closeRegular(L: LuaState, file: LuaFile): number {
  return pushFileResult(L, file.stream!.close());
}

function closeStandard(L: LuaState, file: LuaFile): number {
  file.closef = closeStandard; // it stays open
  lua.lua_pushnil(L);
  lua.lua_pushstring(L, str('cannot close standard file'));
  return 2;
}

/** aux_close: the file's own way of closing. */
function closeFile(L: LuaState): number {
  const file = toLuaFile(L);
  const close = file.closef!;
  file.closef = null;
  return close(L, file);
}

/** fopen's flags for a mode lua5.3 accepted ([rwa]+?b*). */
function openFlags(mode: string): number {
  const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND } = fs.constants;
  const update = mode[1] === '+';
  const access = update ? O_RDWR : mode[0] === 'r' ? O_RDONLY : O_WRONLY;
  if (mode[0] === 'w') return access | O_CREAT | O_TRUNC;
  if (mode[0] === 'a') return access | O_CREAT | O_APPEND;
  return access;
}

function isValidMode(mode: string): boolean {
  return /^[rwa]\+?b*$/.test(mode);
}

/** fopen: the stream, or the errno of the failure. */
function openStream(name: Uint8Array, mode: string): Stream | number {
  const file = cPath(name);
  const update = mode[1] === '+';
  const forWriting = update || mode[0] !== 'r';
  let fd: number;
  noteOpen(file, forWriting);
  try {
    fd = fs.openSync(file, openFlags(mode), 0o666);
  } catch (e) {
    return errnoOf(e);
  }
  return new Stream(fd, update || mode[0] === 'r', forWriting);
}

function io_open(L: LuaState): number {
  const name = lauxlib.luaL_checkstring(L, 1);
  const mode = Buffer.from(lauxlib.luaL_optstring(L, 2, str('r'))).toString('latin1');
  lauxlib.luaL_argcheck(L, isValidMode(mode), 2, str('invalid mode'));
  const file = newFile(L);
  const opened = openStream(name, mode);
  if (typeof opened === 'number') return pushFailure(L, opened, name);
  file.stream = opened;
  file.closef = closeRegular;
  return 1;
}

function closePipe(L: LuaState, file: LuaFile): number {
  const stream = file.stream!;
  stream.close();
  try {
    return pushExecResult(L, native.waitChild((stream as PipeStream).pid));
  } catch (e) {
    return pushFailure(L, errnoOf(e));
  }
}

class PipeStream extends Stream {
  constructor(fd: number, forWrite: boolean, readonly pid: number) {
    super(fd, !forWrite, forWrite);
  }
}

function io_popen(L: LuaState): number {
  const command = lauxlib.luaL_checkstring(L, 1);
  const mode = lauxlib.luaL_optstring(L, 2, str('r'));
  lauxlib.luaL_argcheck(L, mode.length === 1 && (mode[0] === 0x72 || mode[0] === 0x77), 2, str('invalid mode'));
  const file = newFile(L);
  const forWrite = mode[0] === 0x77;
  flushAllStreams(); // lua5.3's l_popen is (fflush(NULL), popen(c, m))
  try {
    const [pid, fd] = native.popen(Buffer.from(command), forWrite ? 1 : 0);
    file.stream = new PipeStream(fd, forWrite, pid);
  } catch (e) {
    return pushFailure(L, errnoOf(e), command);
  }
  file.closef = closePipe;
  return 1;
}

function io_tmpfile(L: LuaState): number {
  const file = newFile(L);
  try {
    const [fd, name] = native.mkstemp(Buffer.from('/tmp/tmpfXXXXXX'));
    fs.unlinkSync(name);
    file.stream = new Stream(fd, true, true);
  } catch (e) {
    return pushFailure(L, errnoOf(e));
  }
  file.closef = closeRegular;
  return 1;
}

function io_close(L: LuaState): number {
  if (lua.lua_isnone(L, 1)) lua.lua_getfield(L, lua.LUA_REGISTRYINDEX, IO_OUTPUT);
  toStream(L);
  return closeFile(L);
}

function f_gc(L: LuaState): number {
  const file = toLuaFile(L);
  if (!isClosed(file) && file.stream !== null) closeFile(L);
  return 0;
}

function f_tostring(L: LuaState): number {
  const file = toLuaFile(L);
  const text = isClosed(file) ? 'file (closed)' : `file (0x${(0x55d0c0de0000 + file.id * 0x230).toString(16)})`;
  lua.lua_pushstring(L, str(text));
  return 1;
}

function io_type(L: LuaState): number {
  lauxlib.luaL_checkany(L, 1);
  const file = lauxlib.luaL_testudata(L, 1, FILEHANDLE) as LuaFile | null;
  if (file === null) lua.lua_pushnil(L);
  else lua.lua_pushstring(L, str(isClosed(file) ? 'closed file' : 'file'));
  return 1;
}

/** The default input or output stream, or the error "standard input file is closed". */
function defaultStream(L: LuaState, key: Uint8Array): Stream {
  lua.lua_getfield(L, lua.LUA_REGISTRYINDEX, key);
  const file = lua.lua_touserdata(L, -1) as LuaFile;
  if (isClosed(file)) {
    const which = key === IO_INPUT ? 'input' : 'output';
    lauxlib.luaL_error(L, str(`standard ${which} file is closed`));
  }
  return file.stream!;
}

/** io.open that raises "cannot open file 'name' (reason)" (opencheckfile). */
function openOrRaise(L: LuaState, name: Uint8Array, mode: string): void {
  const file = newFile(L);
  const opened = openStream(name, mode);
  if (typeof opened === 'number') {
    lauxlib.luaL_error(L, str("cannot open file '%s' (%s)"), name, str(strerror(opened)));
  }
  file.stream = opened as Stream;
  file.closef = closeRegular;
}

/** io.input / io.output: set from a name or a file, and return the current one. */
function defaultFile(L: LuaState, key: Uint8Array, mode: string): number {
  if (!lua.lua_isnoneornil(L, 1)) {
    const name = lua.lua_tolstring(L, 1);
    if (name !== null) openOrRaise(L, name, mode);
    else {
      toStream(L);
      lua.lua_pushvalue(L, 1);
    }
    lua.lua_setfield(L, lua.LUA_REGISTRYINDEX, key);
  }
  lua.lua_getfield(L, lua.LUA_REGISTRYINDEX, key);
  return 1;
}

const io_input = (L: LuaState) => defaultFile(L, IO_INPUT, 'r');
const io_output = (L: LuaState) => defaultFile(L, IO_OUTPUT, 'w');

// ---- reading ----

function io_read(L: LuaState): number {
  return pushReadResults(L, defaultStream(L, IO_INPUT), 1);
}

function f_read(L: LuaState): number {
  return pushReadResults(L, toStream(L), 2);
}

/** The iterator of io.lines and file:lines (io_readline). Upvalues: the
 * file, the number of formats, whether to close at the end, the formats. */
function readLineIterator(L: LuaState): number {
  const file = lua.lua_touserdata(L, lua.lua_upvalueindex(1)) as LuaFile;
  const count = lua.lua_tointeger(L, lua.lua_upvalueindex(2));
  if (isClosed(file)) return lauxlib.luaL_error(L, str('file is already closed'));
  lua.lua_settop(L, 1);
  lauxlib.luaL_checkstack(L, count, TOO_MANY_ARGUMENTS); // a constant: this runs for every line
  for (let i = 1; i <= count; i++) lua.lua_pushvalue(L, lua.lua_upvalueindex(3 + i));
  const n = pushReadResults(L, file.stream!, 2);
  if (lua.lua_toboolean(L, -n)) return n;
  if (n > 1) return lauxlib.luaL_error(L, str('%s'), lua.lua_tostring(L, -n + 1));
  if (lua.lua_toboolean(L, lua.lua_upvalueindex(3))) {
    lua.lua_settop(L, 0);
    lua.lua_pushvalue(L, lua.lua_upvalueindex(1));
    closeFile(L);
  }
  return 0;
}

/** Pushes the lines iterator for the file at index 1 and the formats after it. */
function pushLinesIterator(L: LuaState, closeAtEnd: boolean): void {
  const count = lua.lua_gettop(L) - 1;
  lauxlib.luaL_argcheck(L, count <= MAX_LINES_FORMATS, MAX_LINES_FORMATS + 2, TOO_MANY_ARGUMENTS);
  lua.lua_pushinteger(L, count);
  lua.lua_pushboolean(L, closeAtEnd);
  lua.lua_rotate(L, 2, 2);
  lua.lua_pushcclosure(L, readLineIterator, 3 + count);
}

function f_lines(L: LuaState): number {
  toStream(L);
  pushLinesIterator(L, false);
  return 1;
}

function io_lines(L: LuaState): number {
  if (lua.lua_isnone(L, 1)) lua.lua_pushnil(L);
  if (lua.lua_isnil(L, 1)) {
    lua.lua_getfield(L, lua.LUA_REGISTRYINDEX, IO_INPUT);
    lua.lua_replace(L, 1);
    toStream(L);
    pushLinesIterator(L, false);
  } else {
    openOrRaise(L, lauxlib.luaL_checkstring(L, 1), 'r');
    lua.lua_replace(L, 1);
    pushLinesIterator(L, true);
  }
  return 1;
}

// ---- writing ----

/** g_write: numbers as C's "%d"/"%.14g", strings as they are. */
function writeArguments(L: LuaState, stream: Stream, first: number): number {
  let ok = true;
  const last = lua.lua_gettop(L) - 1; // the file was pushed on top
  for (let arg = first; arg <= last; arg++) {
    const bytes =
      lua.lua_type(L, arg) === lua.LUA_TNUMBER
        ? str(lua.lua_isinteger(L, arg) ? String(lua.lua_tointeger(L, arg)) : formatNumber(lua.lua_tonumber(L, arg)))
        : lauxlib.luaL_checklstring(L, arg);
    ok = stream.write(bytes) && ok;
  }
  if (ok) return 1; // the file is on top of the stack
  return pushFailure(L, stream.errno);
}

function io_write(L: LuaState): number {
  return writeArguments(L, defaultStream(L, IO_OUTPUT), 1);
}

function f_write(L: LuaState): number {
  const stream = toStream(L);
  lua.lua_pushvalue(L, 1);
  return writeArguments(L, stream, 2);
}

function pushFlushResult(L: LuaState, stream: Stream): number {
  return pushFileResult(L, stream.flush() ? 0 : stream.errno);
}

const io_flush = (L: LuaState) => pushFlushResult(L, defaultStream(L, IO_OUTPUT));
const f_flush = (L: LuaState) => pushFlushResult(L, toStream(L));

// ---- positioning and buffering ----

const SEEK_NAMES = ['set', 'cur', 'end'].map(str);
const SEEK_WHENCE = [SEEK_SET, SEEK_CUR, SEEK_END];

function f_seek(L: LuaState): number {
  const stream = toStream(L);
  const op = lauxlib.luaL_checkoption(L, 2, str('cur'), SEEK_NAMES);
  const offset = lauxlib.luaL_optinteger(L, 3, 0);
  const result = stream.seek(SEEK_WHENCE[op], offset);
  if (result.errno !== 0) return pushFailure(L, result.errno);
  lua.lua_pushinteger(L, result.offset);
  return 1;
}

const BUFFER_NAMES = ['no', 'full', 'line'].map(str);
const BUFFER_MODES: BufferMode[] = ['no', 'full', 'line'];

function f_setvbuf(L: LuaState): number {
  const stream = toStream(L);
  const op = lauxlib.luaL_checkoption(L, 2, null, BUFFER_NAMES);
  lauxlib.luaL_optinteger(L, 3, 1024);
  return pushFileResult(L, stream.setBuffering(BUFFER_MODES[op]) ? 0 : stream.errno);
}

// ---- opening the library ----

const ioFunctions = {
  close: io_close,
  flush: io_flush,
  input: io_input,
  lines: io_lines,
  open: io_open,
  output: io_output,
  popen: io_popen,
  read: io_read,
  tmpfile: io_tmpfile,
  type: io_type,
  write: io_write,
};

const fileMethods = {
  close: io_close,
  flush: f_flush,
  lines: f_lines,
  read: f_read,
  seek: f_seek,
  setvbuf: f_setvbuf,
  write: f_write,
  __gc: f_gc,
  __tostring: f_tostring,
};

function createFileMetatable(L: LuaState): void {
  lua.lua_pushnil(L); // fengari's own io registered a FILE* metatable: replace it
  lua.lua_setfield(L, lua.LUA_REGISTRYINDEX, FILEHANDLE);
  lauxlib.luaL_newmetatable(L, FILEHANDLE);
  lua.lua_pushvalue(L, -1);
  lua.lua_setfield(L, -2, str('__index'));
  lauxlib.luaL_setfuncs(L, fileMethods, 0);
  lua.lua_pop(L, 1);
}

function addStandardFile(L: LuaState, stream: Stream, registryKey: Uint8Array | null, name: string): void {
  const file = newFile(L);
  file.stream = stream;
  file.closef = closeStandard;
  if (registryKey !== null) {
    lua.lua_pushvalue(L, -1);
    lua.lua_setfield(L, lua.LUA_REGISTRYINDEX, registryKey);
  }
  lua.lua_setfield(L, -2, str(name));
}

/** luaopen_io: leaves the io table on the stack. */
export function openIo(L: LuaState): void {
  lauxlib.luaL_newlib(L, ioFunctions);
  createFileMetatable(L);
  addStandardFile(L, standardStreams.stdin, IO_INPUT, 'stdin');
  addStandardFile(L, standardStreams.stdout, IO_OUTPUT, 'stdout');
  addStandardFile(L, standardStreams.stderr, null, 'stderr');
}
