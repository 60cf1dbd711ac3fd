// The deadline of the Lua code the server runs itself: each preloaded
// module's loading, and each run of the warm-up script (--warm-timeout).
// The server is one thread, so Lua code that never ends there, a module
// that loops at load time say, would keep it from ever serving, or on a
// re-warm from serving again. Past the deadline, a timer (native/runner.c)
// raises the flag the VM polls, and again every 10 ms; each time, the
// thread running gets a hook that raises an error at its every instruction,
// so neither pcall nor a coroutine keeps the error from reaching the
// server's own call. A state that met the deadline is not used again.
// Code that runs long outside the VM (one pattern match, one system call)
// is not stopped.
import { lua, lauxlib, to_luastring, type LuaState } from 'fengari';
import { native } from './native.js';

/** setDeadline takes an int32: a longer limit waits this long, 24 days. */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/** Milliseconds each call of withDeadline may take; 0: no deadline. */
let limitMs = 0;
/** When the deadline in force passes (performance.now()); undefined: none. */
let passesAt: number | undefined;

export function setWarmTimeout(ms: number): void {
  limitMs = ms;
}

/** Runs `body`, whose Lua code gets an error once it has run limitMs. */
export function withDeadline<T>(body: () => T): T {
  if (limitMs === 0) return body();
  passesAt = performance.now() + limitMs;
  native.setDeadline(Math.min(Math.ceil(limitMs), LONGEST_TIMER_MS));
  try {
    return body();
  } finally {
    native.setDeadline(0);
    passesAt = undefined;
  }
}

/** The VM's interruption handler (server/luacall.ts) calls this in the
 * running thread when the timer fired. A SIGALRM already on its way when
 * the deadline was lifted is ignored. */
export function deadlinePassed(L: LuaState): void {
  if (passesAt === undefined || performance.now() < passesAt) return;
  lua.lua_sethook(L, overDeadline, lua.LUA_MASKCOUNT, 1);
}

/** The error, where the code was when the deadline passed (level 0: a hook
 * runs in the function it interrupts). */
function overDeadline(L: LuaState): void {
  lauxlib.luaL_where(L, 0);
  lua.lua_pushstring(L, to_luastring(`still running after ${limitMs / 1000} s (warm timeout)`));
  lua.lua_concat(L, 2);
  lua.lua_error(L);
}
