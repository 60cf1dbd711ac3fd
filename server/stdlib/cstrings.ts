// Lua strings handed to libc: C sees them up to their first NUL byte.

/** A Lua string as the path C would see (Node rejects paths with NUL bytes). */
export function cPath(name: Uint8Array): Buffer {
  const nul = name.indexOf(0);
  return Buffer.from(nul < 0 ? name : name.subarray(0, nul));
}
