// fengari ships no types. Its API mirrors Lua's C API one to one (lua_*,
// luaL_*, luaopen_*), so the modules are typed loosely here; the Lua manual
// is the reference for each function.
declare module 'fengari' {
  export type LuaState = any;
  export const lua: any;
  export const lauxlib: any;
  export const lualib: any;
  export const luaconf: any;
  export function to_luastring(s: string, cache?: boolean): Uint8Array;
  export function to_jsstring(s: Uint8Array, from?: number, to?: number, replacement_char?: boolean): string;
  export function luastring_of(...bytes: number[]): Uint8Array;
  export function luastring_eq(a: Uint8Array, b: Uint8Array): boolean;
  export function luastring_indexOf(s: Uint8Array, v: number, i?: number): number;
  export const FENGARI_VERSION: string;
}

// What scripts/fix-fengari.ts adds to fengari's VM: a flag it looks at before
// each instruction, and what it calls when it finds the flag raised.
declare module 'fengari/src/lvm.js' {
  export const luaV_interruption: { flag: Int32Array; handler: (L: any) => void };
}

// fengari's own string objects, for a string made without lua_pushstring's
// copy (server/stdlib/readformats.ts).
declare module 'fengari/src/lstring.js' {
  export function luaS_bless(L: any, bytes: Uint8Array): any;
}
declare module 'fengari/src/lobject.js' {
  export function pushsvalue2s(L: any, ts: any): void;
}
