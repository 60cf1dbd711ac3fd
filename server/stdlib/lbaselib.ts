// The base functions that touch files or output (lbaselib.c): print on
// C's stdout, loadfile and dofile through loadFile, and a collectgarbage
// that accepts lua5.3's options (fengari's raises "lua_gc not implemented");
// and a type that does not allocate.
import { lua, lauxlib, to_luastring, type LuaState } from 'fengari';
import { loadFile } from './loadfile.js';
import { standardStreams } from './liolib.js';
import { flushAllStreams } from './stream.js';

const str = (s: string) => to_luastring(s);
const TAB = str('\t');
const NEWLINE = str('\n');

/** luaB_print: tostring on each argument, written to C's stdout, then fflush. */
function print(L: LuaState): number {
  const n = lua.lua_gettop(L);
  const stdout = standardStreams.stdout;
  lua.lua_getglobal(L, str('tostring'));
  for (let i = 1; i <= n; i++) {
    lua.lua_pushvalue(L, -1);
    lua.lua_pushvalue(L, i);
    lua.lua_call(L, 1, 1);
    const s = lua.lua_tolstring(L, -1);
    if (s === null) return lauxlib.luaL_error(L, str("'tostring' must return a string to 'print'"));
    if (i > 1) stdout.write(TAB);
    stdout.write(s);
    lua.lua_pop(L, 1);
  }
  stdout.write(NEWLINE);
  stdout.flush();
  return 0;
}

/** load_aux: the chunk (with `env` as its first upvalue), or nil plus the message. */
function loadResult(L: LuaState, status: number, envIndex: number): number {
  if (status !== lua.LUA_OK) {
    lua.lua_pushnil(L);
    lua.lua_insert(L, -2);
    return 2;
  }
  if (envIndex !== 0) {
    lua.lua_pushvalue(L, envIndex);
    if (!lua.lua_setupvalue(L, -2, 1)) lua.lua_pop(L, 1);
  }
  return 1;
}

function loadfile(L: LuaState): number {
  const name = lauxlib.luaL_optstring(L, 1, null);
  const mode = lauxlib.luaL_optstring(L, 2, null);
  const envIndex = lua.lua_isnone(L, 3) ? 0 : 3;
  return loadResult(L, loadFile(L, name, mode), envIndex);
}

/** What dofile returns: everything the chunk returned (also after a yield). */
const dofileResults = (L: LuaState) => lua.lua_gettop(L) - 1;

function dofile(L: LuaState): number {
  const name = lauxlib.luaL_optstring(L, 1, null);
  lua.lua_settop(L, 1);
  if (loadFile(L, name) !== lua.LUA_OK) return lua.lua_error(L);
  lua.lua_callk(L, 0, lua.LUA_MULTRET, 0, dofileResults);
  return dofileResults(L);
}

const GC_OPTIONS = ['stop', 'restart', 'collect', 'count', 'step', 'setpause', 'setstepmul', 'isrunning'];

/** What lua5.3's collector would answer; V8 collects on its own. */
const collector = { running: true, pause: 200, stepMultiplier: 200 };

function collectgarbage(L: LuaState): number {
  const option = GC_OPTIONS[lauxlib.luaL_checkoption(L, 1, str('collect'), GC_OPTIONS.map(str))];
  const argument = lauxlib.luaL_optinteger(L, 2, 0);
  let previous: number;
  switch (option) {
    case 'count':
      lua.lua_pushnumber(L, process.memoryUsage().heapUsed / 1024);
      return 1;
    case 'step':
      flushAllStreams();
      lua.lua_pushboolean(L, true);
      return 1;
    case 'isrunning':
      lua.lua_pushboolean(L, collector.running);
      return 1;
    case 'setpause':
      [previous, collector.pause] = [collector.pause, argument];
      break;
    case 'setstepmul':
      [previous, collector.stepMultiplier] = [collector.stepMultiplier, argument];
      break;
    default:
      // a full cycle would close unreachable files: their output at least is written
      if (option === 'collect') flushAllStreams();
      collector.running = option === 'stop' ? false : option === 'restart' ? true : collector.running;
      previous = 0;
  }
  lua.lua_pushinteger(L, previous);
  return 1;
}

const VALUE_EXPECTED = str('value expected');

/** luaB_type, answering with names made once (its upvalues): fengari's made
 * a new string at each call, and a runner pays for every 4 KiB it allocates
 * (scripts/fix-fengari.ts says why). argparse and inspect call it
 * hundreds of times: it was 7 % of what the bench's module script allocates. */
function type(L: LuaState): number {
  const t = lua.lua_type(L, 1);
  lauxlib.luaL_argcheck(L, t !== lua.LUA_TNONE, 1, VALUE_EXPECTED);
  lua.lua_pushvalue(L, lua.lua_upvalueindex(t + 1));
  return 1;
}

/** Sets these base functions in the table on top of the stack. */
export function setBaseFunctions(L: LuaState): void {
  lauxlib.luaL_setfuncs(L, { print, loadfile, dofile, collectgarbage }, 0);
  for (let t = 0; t < lua.LUA_NUMTAGS; t++) lua.lua_pushstring(L, lua.lua_typename(L, t));
  lauxlib.luaL_setfuncs(L, { type }, lua.LUA_NUMTAGS);
}
