// The warm state: one fengari Lua state with the standard libraries open
// and the preloaded modules required. The server builds it once and every
// runner inherits it through fork; bin/warmlua-cold builds it per run.
import fs from 'node:fs';
import { lua, lauxlib, lualib, to_luastring, type LuaState } from 'fengari';
import { withDeadline } from './deadline.js';
import { openStdlib } from './stdlib/index.js';
import { listeningToOpens } from './stdlib/opens.js';

export interface WarmOptions {
  /** Modules to require once, in order. */
  preload: string[];
  /** package.path while warming, and the default a runner's LUA_PATH ";;" expands to. */
  luaPath?: string;
  /** Called with each file Lua's searcher will look at while preloading, in
   * order, and each file a module opens to read, before it is read; returns
   * whether the file exists. */
  watch?: (file: string) => boolean;
}

/** Thrown when a preloaded module (or one it requires) does not load. */
export class PreloadError extends Error {
  constructor(
    readonly module: string,
    message: string,
  ) {
    super(`cannot preload module '${module}': ${message}`);
  }
}

/** What a warm state was built with, for the runs forked from it. */
interface Warmed {
  /** package.path while warming: what a run's LUA_PATH ";;" expands to. */
  luaPath: string;
  /** Every module the Lua-file searcher loaded, with its file's real path. */
  modules: { name: string; file: string }[];
  /** Some module came through a relative template ("./?.lua"): which file
   * it names depends on the run's cwd. */
  relative: boolean;
}

const warmed = new WeakMap<LuaState, Warmed>();

// lua5.3's defaults as Debian builds it, so package.path and package.cpath
// read the same through warmlua as through lua5.3.
export const DEFAULT_LUA_PATH =
  '/usr/local/share/lua/5.3/?.lua;/usr/local/share/lua/5.3/?/init.lua;' +
  '/usr/local/lib/lua/5.3/?.lua;/usr/local/lib/lua/5.3/?/init.lua;' +
  '/usr/share/lua/5.3/?.lua;/usr/share/lua/5.3/?/init.lua;./?.lua;./?/init.lua';
export const DEFAULT_LUA_CPATH =
  '/usr/local/lib/lua/5.3/?.so;/usr/lib/x86_64-linux-gnu/lua/5.3/?.so;' +
  '/usr/lib/lua/5.3/?.so;/usr/local/lib/lua/5.3/loadall.so;./?.so';

function setPackageField(L: LuaState, field: string, value: string): void {
  lua.lua_getglobal(L, to_luastring('package'));
  lua.lua_pushstring(L, to_luastring(value));
  lua.lua_setfield(L, -2, to_luastring(field));
  lua.lua_pop(L, 1);
}

/** Runs `require(name)` within the warm timeout; throws an Error carrying
 * Lua's message on failure. */
function requireModule(L: LuaState, name: string): void {
  lua.lua_getglobal(L, to_luastring('require'));
  lua.lua_pushstring(L, to_luastring(name));
  if (withDeadline(() => lua.lua_pcall(L, 1, 0, 0)) !== lua.LUA_OK) {
    const message = lua.lua_tojsstring(L, -1);
    lua.lua_pop(L, 1);
    throw new PreloadError(name, message);
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
  const info: Warmed = { luaPath, modules: [], relative: false };
  const watch = options.watch ?? (() => false);
  withRecordingSearcher(
    L,
    (name, searchPath) => {
      // package.searchpath's walk, so that a file that appears ahead of the
      // one loaded (it would shadow it) counts as a change too.
      for (const file of searchCandidates(name, searchPath)) if (watch(file)) return;
    },
    (name, file) => {
      info.modules.push({ name, file: realPath(file) ?? file });
      info.relative ||= !file.startsWith('/');
    },
    () => watchingOpens(watch, () => {
      for (const name of options.preload) requireModule(L, name);
    }),
  );
  warmed.set(L, info);
  return L;
}

/** Runs `body` with each file it reads through the standard library (a
 * module's dofile, loadfile or io.open at load time) given to `watch` before
 * it is opened. A file it also writes is given again at the end, as the
 * module left it: a module that rewrites at load time what it read (a
 * cache, say) would otherwise look changed at once, and be re-warmed for
 * every run. Files it only writes are not watched. */
function watchingOpens(watch: (file: string) => boolean, body: () => void): void {
  const read = new Set<string>();
  const written = new Set<string>();
  listeningToOpens(
    (file, forWriting) => {
      const name = file.toString();
      if (forWriting) return void written.add(name);
      read.add(name);
      watch(name);
    },
    body,
  );
  for (const name of read) if (written.has(name)) watch(name);
}

/** The file names package.searchpath tries for `name`, in order. */
function searchCandidates(name: string, searchPath: string): string[] {
  const file = name.replaceAll('.', '/');
  return searchPath
    .split(';')
    .filter((template) => template !== '')
    .map((template) => template.replaceAll('?', file));
}

/** Wraps the Lua-file searcher (package.searchers[2]) while `body` runs, so
 * that every require, the preloaded modules' own included, is recorded. The
 * wrapper is a C function, so the searcher's errors read as in plain Lua. */
function withRecordingSearcher(
  L: LuaState,
  searching: (name: string, searchPath: string) => void,
  loaded: (name: string, file: string) => void,
  body: () => void,
): void {
  lua.lua_getglobal(L, to_luastring('package'));
  lua.lua_getfield(L, -1, to_luastring('searchers'));
  lua.lua_rawgeti(L, -1, 2);
  lua.lua_pushvalue(L, -1);
  const recording = (S: LuaState): number => {
    const name = lauxlib.luaL_checkstring(S, 1);
    lua.lua_getglobal(S, to_luastring('package'));
    lua.lua_getfield(S, -1, to_luastring('path'));
    searching(lua.lua_tojsstring(S, 1), lua.lua_tojsstring(S, -1));
    lua.lua_settop(S, 1);
    lua.lua_pushvalue(S, lua.lua_upvalueindex(1));
    lua.lua_pushstring(S, name);
    lua.lua_call(S, 1, 2);
    if (lua.lua_type(S, -2) === lua.LUA_TFUNCTION) loaded(lua.lua_tojsstring(S, 1), lua.lua_tojsstring(S, -1));
    return 2;
  };
  lua.lua_pushcclosure(L, recording, 1);
  lua.lua_rawseti(L, -3, 2);
  try {
    body();
  } finally {
    // Runs search as plain Lua does.
    lua.lua_rawseti(L, -2, 2);
    lua.lua_pop(L, 2);
  }
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
  const info = warmed.get(L);
  const runPath = pathFromEnv('LUA_PATH', info?.luaPath ?? DEFAULT_LUA_PATH, env);
  setPackageField(L, 'path', runPath);
  setPackageField(L, 'cpath', pathFromEnv('LUA_CPATH', DEFAULT_LUA_CPATH, env));
  if (info && (!searchesAlike(runPath, info.luaPath) || info.relative)) dropMisresolved(L, runPath, info.modules);
}

/** Whether two search paths find every module in the same file: the same
 * templates in the same order, once repeats (a later one finds nothing an
 * earlier one did not) and empty ones (skipped by the searcher) are dropped.
 * A client whose LUA_PATH is the server's own, "/dir/?.lua;;", runs with
 * "/dir/?.lua;/dir/?.lua;..." since ";;" stands for the server's path:
 * checking each warm module's file again for that took 0.1-0.3 ms of every
 * such run (the bench's, for one). */
function searchesAlike(a: string, b: string): boolean {
  const templates = (searchPath: string) => [...new Set(searchPath.split(';'))].filter((t) => t !== '').join(';');
  return a === b || templates(a) === templates(b);
}

/** Drops from package.loaded each warm module that `runPath` would find in
 * another file, or not at all, so that the run's require reads its own (or
 * fails) as a cold lua would. Modules that kept a reference to it keep it. */
function dropMisresolved(L: LuaState, runPath: string, modules: Warmed['modules']): void {
  for (const { name, file } of modules) {
    if (realPath(searchPath(name, runPath)) === file) continue;
    lua.lua_getglobal(L, to_luastring('package'));
    lua.lua_getfield(L, -1, to_luastring('loaded'));
    lua.lua_pushnil(L);
    lua.lua_setfield(L, -2, to_luastring(name));
    lua.lua_pop(L, 2);
  }
}

/** package.searchpath's answer, with a stat for its open: fengari's open
 * throws on every missing file, and an exception costs far more. */
function searchPath(name: string, runPath: string): string | undefined {
  return searchCandidates(name, runPath).find((file) => {
    try {
      return fs.statSync(file, { throwIfNoEntry: false }) !== undefined;
    } catch {
      return false; // EACCES: unreadable for the searcher too
    }
  });
}

/** The file's real path, from the process's real cwd (a runner's is the
 * client's, set by chdir(2), which path.resolve would not see). */
function realPath(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    return fs.realpathSync.native(file);
  } catch {
    return undefined;
  }
}
