// lua.c (Lua 5.3.6) for fengari: command-line options, the arg table,
// LUA_INIT, running the script and reporting errors exactly as lua5.3 does.
// The shim forwards its whole argv here unchanged, so every command-line
// behaviour of `lua` lives in this module. Structure follows lua.c: pmain
// runs as a function called in protected mode, so tracebacks end in
// "[C]: in ?" as lua5.3's do.
import tty from 'node:tty';
import { lua, lauxlib, to_luastring, type LuaState } from 'fengari';
import { applyRunPackagePaths } from './warm.js';
import { docall, getProgname, loadFile, report, setProgname, writeStderr, writeStdout } from './luacall.js';
import { doREPL } from './repl.js';

const LUA_COPYRIGHT = 'Lua 5.3.6  Copyright (C) 1994-2020 Lua.org, PUC-Rio';

// Bits of collectargs' result.
const has_error = 1; // bad option
const has_i = 2; // -i
const has_v = 4; // -v
const has_e = 8; // -e
const has_E = 16; // -E

const DASH = 0x2d;

/** argv[i][j] as C reads it: 0 past the end of the string. */
function charAt(arg: Uint8Array | undefined, j: number): number {
  return arg !== undefined && j < arg.length ? arg[j] : 0;
}

const is = (c: number, ch: string): boolean => c === ch.charCodeAt(0);

function print_usage(badoption: Uint8Array): void {
  const pname = getProgname() ?? to_luastring('lua');
  const c = charAt(badoption, 1);
  const what = is(c, 'e') || is(c, 'l') ? ["'", badoption, "' needs argument\n"] : ["unrecognized option '", badoption, "'\n"];
  writeStderr(pname, ': ', ...what);
  writeStderr(
    'usage: ', pname, ' [options] [script [args]]\n' +
      'Available options are:\n' +
      "  -e stat  execute string 'stat'\n" +
      "  -i       enter interactive mode after executing 'script'\n" +
      "  -l name  require library 'name' into global 'name'\n" +
      '  -v       show version information\n' +
      '  -E       ignore environment variables\n' +
      '  --       stop handling options\n' +
      '  -        stop handling options and execute stdin\n',
  );
}

function print_version(): void {
  writeStdout(LUA_COPYRIGHT, '\n');
}

/** Global `arg`: the script at index 0, its arguments at 1.., the
 * interpreter and options at negative indices; with no script, argv[0]
 * is at index 0. */
function createargtable(L: LuaState, argv: Uint8Array[], script: number): void {
  const argc = argv.length;
  if (script === argc) script = 0;
  lua.lua_createtable(L, argc - (script + 1), script + 1);
  for (let i = 0; i < argc; i++) {
    lua.lua_pushstring(L, argv[i]);
    lua.lua_rawseti(L, -2, i - script);
  }
  lua.lua_setglobal(L, to_luastring('arg'));
}

/** Runs a loaded chunk (or reports the load error). */
function dochunk(L: LuaState, status: number): number {
  if (status === lua.LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

function dofile(L: LuaState, name: Uint8Array | null): number {
  return dochunk(L, loadFile(L, name));
}

function dostring(L: LuaState, s: Uint8Array, name: string): number {
  return dochunk(L, lauxlib.luaL_loadbuffer(L, s, s.length, to_luastring(name)));
}

/** -l name: global[name] = require(name). */
function dolibrary(L: LuaState, name: Uint8Array): number {
  lua.lua_getglobal(L, to_luastring('require'));
  lua.lua_pushstring(L, name);
  const status = docall(L, 1, 1);
  if (status === lua.LUA_OK) lua.lua_setglobal(L, name);
  return report(L, status);
}

/** Pushes arg[1..#arg] for the script's `...`; raises if arg was replaced
 * by something that is not a table (an -e chunk can do that). */
function pushargs(L: LuaState): number {
  if (lua.lua_getglobal(L, to_luastring('arg')) !== lua.LUA_TTABLE)
    lauxlib.luaL_error(L, to_luastring("'arg' is not a table"));
  const n = lauxlib.luaL_len(L, -1);
  lauxlib.luaL_checkstack(L, n + 3, to_luastring('too many arguments to script'));
  let i: number;
  for (i = 1; i <= n; i++) lua.lua_rawgeti(L, -i, i);
  lua.lua_remove(L, -i);
  return n;
}

/** The script is argv[script]; "-" means stdin unless it follows "--". */
function handle_script(L: LuaState, argv: Uint8Array[], script: number): number {
  const fname = argv[script];
  const isDash = fname.length === 1 && fname[0] === DASH;
  const prev = argv[script - 1];
  const afterDashDash = prev.length === 2 && prev[0] === DASH && prev[1] === DASH;
  let status = loadFile(L, isDash && !afterDashDash ? null : fname, null, true);
  if (status === lua.LUA_OK) {
    const n = pushargs(L);
    status = docall(L, n, lua.LUA_MULTRET);
  }
  return report(L, status);
}

/** Scans options; returns the has_* bits and the index of the script (or
 * of the bad option, or argc when there is no script). */
function collectargs(argv: Uint8Array[]): { args: number; first: number } {
  let args = 0;
  let i: number;
  for (i = 1; i < argv.length; i++) {
    const first = i;
    const a = argv[i];
    if (charAt(a, 0) !== DASH) return { args, first }; // not an option: the script
    const opt = String.fromCharCode(charAt(a, 1));
    const alone = charAt(a, 2) === 0;
    switch (opt) {
      case '-': // "--"
        if (!alone) return { args: has_error, first };
        return { args, first: i + 1 };
      case '\0': // "-": the script is stdin
        return { args, first };
      case 'E':
        if (!alone) return { args: has_error, first };
        args |= has_E;
        break;
      case 'i':
      case 'v': // -i implies -v
        if (!alone) return { args: has_error, first };
        args |= opt === 'i' ? has_i | has_v : has_v;
        break;
      case 'e':
      case 'l': // both need an argument: attached, or the next word
        if (opt === 'e') args |= has_e;
        if (alone) {
          i++;
          if (i >= argv.length || charAt(argv[i], 0) === DASH) return { args: has_error, first };
        }
        break;
      default:
        return { args: has_error, first };
    }
  }
  return { args, first: i };
}

/** Runs -e and -l in command-line order; false on the first failure. */
function runargs(L: LuaState, argv: Uint8Array[], n: number): boolean {
  for (let i = 1; i < n; i++) {
    const option = String.fromCharCode(charAt(argv[i], 1));
    if (option !== 'e' && option !== 'l') continue;
    let extra = argv[i].subarray(2);
    if (extra.length === 0) extra = argv[++i];
    const status = option === 'e' ? dostring(L, extra, '=(command line)') : dolibrary(L, extra);
    if (status !== lua.LUA_OK) return false;
  }
  return true;
}

/** LUA_INIT_5_3, else LUA_INIT: "@file" runs a file, anything else is code. */
function handle_luainit(L: LuaState): number {
  let name = 'LUA_INIT_5_3';
  let init = process.env[name];
  if (init === undefined) {
    name = 'LUA_INIT';
    init = process.env[name];
  }
  if (init === undefined) return lua.LUA_OK;
  if (init.startsWith('@')) return dofile(L, to_luastring(init.slice(1)));
  return dostring(L, to_luastring(init), `=${name}`);
}

/** lua.c's pmain, called in protected mode: returns with `true` on the
 * stack when everything went well; a false or missing result means exit 1. */
function pmain(L: LuaState): number {
  const argv = lua.lua_touserdata(L, 1) as Uint8Array[];
  lua.lua_settop(L, 0);
  const { args, first: script } = collectargs(argv);
  if (argv[0].length > 0) setProgname(argv[0]);
  if (args === has_error) {
    print_usage(argv[script]);
    return 0;
  }
  if (args & has_v) print_version();
  // -E: package.path/cpath from the defaults only (lua.c sets LUA_NOENV
  // for the package library, which in a warm state has already run).
  if (args & has_E) {
    lua.lua_pushboolean(L, 1);
    lua.lua_setfield(L, lua.LUA_REGISTRYINDEX, to_luastring('LUA_NOENV'));
  }
  applyRunPackagePaths(L, (args & has_E) !== 0);
  createargtable(L, argv, script);
  if (!(args & has_E) && handle_luainit(L) !== lua.LUA_OK) return 0;
  if (!runargs(L, argv, script)) return 0;
  if (script < argv.length && handle_script(L, argv, script) !== lua.LUA_OK) return 0;
  if (args & has_i) {
    doREPL(L);
  } else if (script === argv.length && !(args & (has_e | has_v))) {
    // No script, no -e, no -v: a terminal gets the REPL, anything else
    // is run as a script, and (lua.c's quirk) its failure leaves status 0.
    if (tty.isatty(0)) {
      print_version();
      doREPL(L);
    } else {
      dofile(L, null);
    }
  }
  lua.lua_pushboolean(L, 1);
  return 1;
}

/** Runs lua.c's main on state L with the given argv (argv[0] is the
 * progname); returns the exit status. */
export function luaMain(L: LuaState, argv: Buffer[]): number {
  const args = argv.map((a) => new Uint8Array(a));
  if (args.length === 0) args.push(new Uint8Array(0));
  const top = lua.lua_gettop(L);
  lua.lua_pushcfunction(L, pmain);
  lua.lua_pushlightuserdata(L, args);
  let status: number;
  try {
    status = lua.lua_pcall(L, 1, 1, 0);
  } catch (e) {
    // A JS exception fengari could not turn into a Lua error (a bug in
    // fengari or in a JS library): report it as lua.c reports errors.
    writeStderr(getProgname() ?? 'lua', ': ', String((e as Error)?.message ?? e), '\n');
    return 1;
  }
  const result = lua.lua_toboolean(L, -1);
  report(L, status);
  lua.lua_settop(L, top);
  return result && status === lua.LUA_OK ? 0 : 1;
}
