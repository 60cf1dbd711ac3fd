// The warm state: one fengari Lua state with the standard libraries open
// and the preloaded modules required. The server builds it once and every
// runner inherits it through fork; bin/warmlua-cold builds it per run.
import { lua, lauxlib, lualib, to_luastring, type LuaState } from 'fengari';
import { openStdlib } from './stdlib/index.js';

export interface WarmOptions {
  /** Modules to require once, in order. */
  preload: string[];
  /** package.path while warming, and the default a runner's LUA_PATH ";;" expands to. */
  luaPath?: string;
}

// lua5.3's defaults as Debian builds it, so package.path and package.cpath
// read the same through warmlua as through lua5.3.
export const DEFAULT_LUA_PATH =
  '/usr/local/share/lua/5.3/?.lua;/usr/local/share/lua/5.3/?/init.lua;' +
  '/usr/local/lib/lua/5.3/?.lua;/usr/local/lib/lua/5.3/?/init.lua;' +
  '/usr/share/lua/5.3/?.lua;/usr/share/lua/5.3/?/init.lua;./?.lua;./?/init.lua';
export const DEFAULT_LUA_CPATH =
  '/usr/local/lib/lua/5.3/?.so;/usr/lib/x86_64-linux-gnu/lua/5.3/?.so;' +
  '/usr/lib/lua/5.3/?.so;/usr/local/lib/lua/5.3/loadall.so;./?.so';

let warmLuaPath = DEFAULT_LUA_PATH;

function setPackageField(L: LuaState, field: string, value: string): void {
  lua.lua_getglobal(L, to_luastring('package'));
  lua.lua_pushstring(L, to_luastring(value));
  lua.lua_setfield(L, -2, to_luastring(field));
  lua.lua_pop(L, 1);
}

/** Runs `require(name)`; throws an Error carrying Lua's message on failure. */
function requireModule(L: LuaState, name: string): void {
  lua.lua_getglobal(L, to_luastring('require'));
  lua.lua_pushstring(L, to_luastring(name));
  if (lua.lua_pcall(L, 1, 0, 0) !== lua.LUA_OK) {
    const message = lua.lua_tojsstring(L, -1);
    lua.lua_pop(L, 1);
    throw new Error(`cannot preload module '${name}': ${message}`);
  }
}

export function newState(): LuaState {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  openStdlib(L);
  return L;
}

export function createLuaState(options: WarmOptions): LuaState {
  const L = newState();
  const luaPath = options.luaPath === undefined ? DEFAULT_LUA_PATH : expandDefault(options.luaPath, DEFAULT_LUA_PATH);
  setPackageField(L, 'path', luaPath);
  setPackageField(L, 'cpath', DEFAULT_LUA_CPATH);
  for (const name of options.preload) requireModule(L, name);
  // Only once the state is built: a re-warm that fails keeps the old state,
  // and the runners forked from it must keep its path.
  warmLuaPath = luaPath;
  return L;
}

/** A search path with ";;" standing for the default, as lua.c reads LUA_PATH. */
function expandDefault(value: string, defaultPath: string): string {
  return value.replaceAll(';;', ';\u0001;').replaceAll('\u0001', defaultPath);
}

/** The value lua.c's package library would compute from `envName`
 * (LUA_PATH_5_3, else LUA_PATH). */
function pathFromEnv(envName: string, defaultPath: string, env: NodeJS.ProcessEnv): string {
  const value = env[`${envName}_5_3`] ?? env[envName];
  return value === undefined ? defaultPath : expandDefault(value, defaultPath);
}

/** Sets package.path and package.cpath as lua.c would for this run's
 * environment; with `ignoreEnv` (option -E) only the defaults are used. */
export function applyRunPackagePaths(L: LuaState, ignoreEnv: boolean): void {
  const env = ignoreEnv ? {} : process.env;
  setPackageField(L, 'path', pathFromEnv('LUA_PATH', warmLuaPath, env));
  setPackageField(L, 'cpath', pathFromEnv('LUA_CPATH', DEFAULT_LUA_CPATH, env));
}
