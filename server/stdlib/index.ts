// The runner's Lua standard library: print, io and os on raw fds with
// synchronous calls only (a forked runner must never touch the event loop).
// PLACEHOLDER: being written; see issue 4.
import type { LuaState } from 'fengari';

/** Replaces fengari's print, io and os (and friends) in state L. */
export function openStdlib(_L: LuaState): void {}

/** Writes every buffered output of every open file; called before _exit. */
export function flushAll(): void {}
