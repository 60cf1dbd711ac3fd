// C's errno for the Lua standard library: Node's and the addon's syscall
// errors carry the number (Node's negated); the wording is strerror's.
import { lua, to_luastring, type LuaState } from 'fengari';
import { native, type ChildEnd } from './native.js';

export const EBADF = 9;
export const EINVAL = 22;

/** The errno of a failed system call; anything else is a bug and rethrown. */
export function errnoOf(e: unknown): number {
  const errno = (e as { errno?: unknown }).errno;
  if (typeof errno !== 'number') throw e;
  return Math.abs(errno);
}

export function strerror(errno: number): string {
  return native.strerror(errno);
}

/** luaL_fileresult for a failure: nil, "[name: ]strerror", errno. */
export function pushFailure(L: LuaState, errno: number, name: Uint8Array | null = null): number {
  lua.lua_pushnil(L);
  const message = to_luastring(strerror(errno));
  if (name === null) lua.lua_pushstring(L, message);
  else lua.lua_pushstring(L, concatBytes([name, to_luastring(': '), message]));
  lua.lua_pushinteger(L, errno);
  return 3;
}

/** luaL_fileresult: true, or the failure triple. */
export function pushFileResult(L: LuaState, errno: number, name: Uint8Array | null = null): number {
  if (errno !== 0) return pushFailure(L, errno, name);
  lua.lua_pushboolean(L, true);
  return 1;
}

export function concatBytes(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/** luaL_execresult for how a child ended: true|nil, "exit"|"signal", n. */
export function pushExecResult(L: LuaState, [killed, value]: ChildEnd): number {
  if (!killed && value === 0) lua.lua_pushboolean(L, true);
  else lua.lua_pushnil(L);
  lua.lua_pushstring(L, to_luastring(killed ? 'signal' : 'exit'));
  lua.lua_pushinteger(L, value);
  return 3;
}
