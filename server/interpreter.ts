// lua.c, for fengari: command-line options, the arg table, LUA_INIT,
// running the script and reporting errors exactly as lua 5.3.6 does.
// PLACEHOLDER: being written.
import type { LuaState } from 'fengari';

/** Runs lua.c's main on state L with the given argv; returns the exit status. */
export function luaMain(_L: LuaState, _argv: Buffer[]): number {
  return 0;
}
