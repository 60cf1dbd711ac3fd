// The os library of lua5.3 (loslib.c): the C environment, C's time
// functions (natively, so TZ and locale act as in C), processes through
// /bin/sh, and os.exit leaving by _exit once every stream is flushed.
import fs from 'node:fs';
import { lua, lauxlib, to_luastring, type LuaState } from 'fengari';
import { exitProcess } from '../exit.js';
import { cPath } from './cstrings.js';
import { errnoOf, pushExecResult, pushFailure, pushFileResult } from './errors.js';
import { native, type TmFields } from './native.js';

const str = (s: string) => to_luastring(s);

function os_getenv(L: LuaState): number {
  lua.lua_pushstring(L, native.getenv(cPath(lauxlib.luaL_checkstring(L, 1))));
  return 1;
}

function os_exit(L: LuaState): number {
  const status = lua.lua_isboolean(L, 1)
    ? lua.lua_toboolean(L, 1)
      ? 0
      : 1
    : lauxlib.luaL_optinteger(L, 1, 0);
  // exitProcess flushes every stream, as C's exit() flushes every FILE;
  // closing the state (the second argument) adds nothing visible.
  return exitProcess(status);
}

function os_execute(L: LuaState): number {
  const command = lauxlib.luaL_optstring(L, 1, null);
  let end;
  try {
    end = native.system(Buffer.from(command ?? 'exit 0'));
  } catch (e) {
    return pushFailure(L, errnoOf(e));
  }
  if (command !== null) return pushExecResult(L, end);
  lua.lua_pushboolean(L, end[0] === 0 && end[1] === 0); // system(NULL): is there a shell?
  return 1;
}

function os_remove(L: LuaState): number {
  const name = lauxlib.luaL_checkstring(L, 1);
  const path = cPath(name);
  try {
    fs.unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EISDIR') return pushFailure(L, errnoOf(e), name);
    try {
      fs.rmdirSync(path); // C's remove() also removes empty directories
    } catch (e2) {
      return pushFailure(L, errnoOf(e2), name);
    }
  }
  return pushFileResult(L, 0);
}

function os_rename(L: LuaState): number {
  const from = lauxlib.luaL_checkstring(L, 1);
  const to = lauxlib.luaL_checkstring(L, 2);
  try {
    fs.renameSync(cPath(from), cPath(to));
  } catch (e) {
    return pushFailure(L, errnoOf(e));
  }
  return pushFileResult(L, 0);
}

function os_tmpname(L: LuaState): number {
  let name: Buffer;
  try {
    const [fd] = ([, name] = native.mkstemp(Buffer.from('/tmp/lua_XXXXXX')));
    fs.closeSync(fd);
  } catch {
    return lauxlib.luaL_error(L, str('unable to generate a unique filename'));
  }
  lua.lua_pushstring(L, name);
  return 1;
}

function os_clock(L: LuaState): number {
  const { user, system } = process.cpuUsage();
  lua.lua_pushnumber(L, (user + system) / 1e6);
  return 1;
}

const LOCALE_CATEGORIES = ['all', 'collate', 'ctype', 'monetary', 'numeric', 'time'].map(str);

function os_setlocale(L: LuaState): number {
  const locale = lauxlib.luaL_optstring(L, 1, null);
  const category = lauxlib.luaL_checkoption(L, 2, str('all'), LOCALE_CATEGORIES);
  lua.lua_pushstring(L, native.setlocale(category, locale === null ? null : cPath(locale)));
  return 1;
}

// ---- time ----

const now = () => Math.floor(Date.now() / 1000);

function checkTime(L: LuaState, arg: number): number {
  return lauxlib.luaL_checkinteger(L, arg);
}

function os_difftime(L: LuaState): number {
  const t1 = checkTime(L, 1);
  const t2 = checkTime(L, 2);
  lua.lua_pushnumber(L, t1 - t2);
  return 1;
}

function setField(L: LuaState, key: string, value: number): void {
  lua.lua_pushinteger(L, value);
  lua.lua_setfield(L, -2, str(key));
}

/** setallfields: the table on top gets the struct tm's fields. */
function setAllFields(L: LuaState, [sec, min, hour, mday, mon, year, wday, yday, isdst]: TmFields): void {
  setField(L, 'sec', sec);
  setField(L, 'min', min);
  setField(L, 'hour', hour);
  setField(L, 'day', mday);
  setField(L, 'month', mon + 1);
  setField(L, 'year', year + 1900);
  setField(L, 'wday', wday + 1);
  setField(L, 'yday', yday + 1);
  if (isdst < 0) return;
  lua.lua_pushboolean(L, isdst !== 0);
  lua.lua_setfield(L, -2, str('isdst'));
}

const INT_MAX = 2147483647;
const INT_MIN = -2147483648;

/** getfield: an integer field of the date table on top, minus `delta`;
 * `missing` is used for an absent field (negative: it is required). */
function getField(L: LuaState, key: string, missing: number, delta: number): number {
  const type = lua.lua_getfield(L, -1, str(key));
  const value = lua.lua_tointegerx(L, -1);
  let result: number;
  if (value === false) {
    if (type !== lua.LUA_TNIL) return lauxlib.luaL_error(L, str(`field '${key}' is not an integer`));
    if (missing < 0) return lauxlib.luaL_error(L, str(`field '${key}' missing in date table`));
    result = missing;
  } else {
    if (!(value >= 0 ? value <= INT_MAX + delta : INT_MIN + delta <= value)) {
      return lauxlib.luaL_error(L, str(`field '${key}' is out-of-bound`));
    }
    result = value - delta;
  }
  lua.lua_pop(L, 1);
  return result;
}

function getBoolField(L: LuaState, key: string): number {
  const type = lua.lua_getfield(L, -1, str(key));
  const result = type === lua.LUA_TNIL ? -1 : lua.lua_toboolean(L, -1) ? 1 : 0;
  lua.lua_pop(L, 1);
  return result;
}

const unrepresentable = (L: LuaState) =>
  lauxlib.luaL_error(L, str('time result cannot be represented in this installation'));

function os_time(L: LuaState): number {
  if (lua.lua_isnoneornil(L, 1)) {
    lua.lua_pushinteger(L, now());
    return 1;
  }
  lauxlib.luaL_checktype(L, 1, lua.LUA_TTABLE);
  lua.lua_settop(L, 1);
  const fields = [
    getField(L, 'sec', 0, 0),
    getField(L, 'min', 0, 0),
    getField(L, 'hour', 12, 0),
    getField(L, 'day', -1, 0),
    getField(L, 'month', -1, 1),
    getField(L, 'year', -1, 1900),
    getBoolField(L, 'isdst'),
  ];
  const result = native.mktime(fields);
  if (result === null) return unrepresentable(L);
  const [t, ...normalised] = result;
  setAllFields(L, normalised as TmFields);
  if (t !== (t | 0)) return unrepresentable(L); // fengari's integers have 32 bits
  lua.lua_pushinteger(L, t);
  return 1;
}

/** L_STRFTIMEC99 of lua5.3: the conversions os.date accepts, by length. */
const CONVERSIONS = [
  [...'aAbBcCdDeFgGhHIjmMnprRStTuUVwWxXyYzZ%'],
  ['Ec', 'EC', 'Ex', 'EX', 'Ey', 'EY', 'Od', 'Oe', 'OH', 'OI', 'Om', 'OM', 'OS', 'Ou', 'OU', 'OV', 'Ow', 'OW', 'Oy'],
];

/** checkoption: the length of the valid conversion at `at`, or an argument error. */
function conversionLength(L: LuaState, format: Uint8Array, at: number): number {
  for (const [index, options] of CONVERSIONS.entries()) {
    const length = index + 1;
    if (at + length > format.length) break;
    const candidate = Buffer.from(format.subarray(at, at + length)).toString('latin1');
    if (options.includes(candidate)) return length;
  }
  const nul = format.indexOf(0, at);
  const rest = format.subarray(at, nul < 0 ? format.length : nul); // C sees up to a NUL
  return lauxlib.luaL_argerror(L, 1, lua.lua_pushfstring(L, str("invalid conversion specifier '%%%s'"), rest));
}

function formatDate(L: LuaState, format: Uint8Array, t: number, utc: number): Uint8Array {
  const parts: Uint8Array[] = [];
  let literalStart = 0;
  let i = 0;
  while (i < format.length) {
    if (format[i] !== 0x25) {
      i++;
      continue;
    }
    parts.push(format.subarray(literalStart, i));
    const length = conversionLength(L, format, i + 1);
    parts.push(native.strftime(Buffer.concat([Buffer.from('%'), format.subarray(i + 1, i + 1 + length)]), t, utc)!);
    i += 1 + length;
    literalStart = i;
  }
  parts.push(format.subarray(literalStart));
  return Buffer.concat(parts);
}

function os_date(L: LuaState): number {
  let format: Uint8Array = lauxlib.luaL_optstring(L, 1, str('%c'));
  const t = lua.lua_type(L, 2) <= 0 ? now() : checkTime(L, 2);
  const utc = format[0] === 0x21 ? 1 : 0;
  if (utc) format = format.subarray(1);
  const fields = native.brokenDownTime(t, utc);
  if (fields === null) return unrepresentable(L);
  if (Buffer.from(format).equals(Buffer.from('*t'))) {
    lua.lua_createtable(L, 0, 9);
    setAllFields(L, fields);
  } else {
    lua.lua_pushstring(L, formatDate(L, format, t, utc));
  }
  return 1;
}

const osFunctions = {
  clock: os_clock,
  date: os_date,
  difftime: os_difftime,
  execute: os_execute,
  exit: os_exit,
  getenv: os_getenv,
  remove: os_remove,
  rename: os_rename,
  setlocale: os_setlocale,
  time: os_time,
  tmpname: os_tmpname,
};

/** luaopen_os: leaves the os table on the stack. */
export function openOs(L: LuaState): void {
  lauxlib.luaL_newlib(L, osFunctions);
}
