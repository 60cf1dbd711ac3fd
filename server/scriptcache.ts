// Compiled scripts. Every run parses its script, and fengari's parser is
// slow in a runner: the bench's 12-line module script took 0.2-0.3 ms there
// (50 us in a warm node), and allocated 83 KB, each new 4 KiB page a fault.
// So the server keeps the main chunks of the scripts it keeps running,
// compiled, and the runners forked from it inherit them. A runner whose
// script text is byte for byte a kept one's, under the same chunk name,
// pushes the kept function instead of parsing: what lua_load would have
// built from the same bytes. Nothing is looked up by path or time, so
// nothing can be stale: a changed script is parsed, as before.
//
// A runner tells the server on its line, after its exit status and off its
// client's time, how its script was loaded: from the server's copy, or
// parsed, with its text. The server compiles a text the second time a
// runner parsed it (one run of a script costs the server nothing), keeps
// it, and has the spares of the pool renewed so that later runs inherit it.
import { lua, type LuaState } from 'fengari';

export const ScriptCacheLimits = {
  /** Longer texts are neither reported nor kept. A report goes down a
   * socket's buffer (200 KiB by default) without blocking, or not at all. */
  maxTextBytes: 64 * 1024,
  /** Scripts kept, and their texts' bytes in all: a compiled script takes
   * about 18 times its text in the heap (argparse.lua: 58 KB, 1 MB). The
   * same bounds hold the texts parsed once. The oldest go first. */
  maxScripts: 32,
  maxKeptBytes: 512 * 1024,
  /** Spares are renewed at most this often for newly kept scripts. */
  renewAfterMs: 1000,
} as const;

interface Script {
  /** The chunk name ("@name") as a byte string, and the text lua_load got. */
  chunkname: string;
  text: Buffer;
}

interface Kept extends Script {
  /** Pushes the compiled main function (lua_toproxy). */
  push: (L: LuaState) => void;
}

/** Compiled in the server, inherited by every runner forked after. */
const kept: Kept[] = [];
/** The server's: texts parsed by one run so far, not yet kept. */
const parsedOnce: Script[] = [];

const REPORT_FROM_CACHE = 1;
const REPORT_PARSED = 2;
/** u32 length of the rest, u8 kind; for PARSED, u32 chunk name length, the
 * chunk name and the text. */
const REPORT_HEADER_BYTES = 5;

/** What this runner tells the server at its end, if anything. */
let report: Buffer | null = null;

const byteString = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');

function find<T extends Script>(list: T[], chunkname: string, text: Buffer): T | undefined {
  return list.find((s) => s.chunkname === chunkname && s.text.equals(text));
}

/** A reader for lua_load that gives `text` in one piece. */
function readerOf(text: Uint8Array): () => Uint8Array | null {
  let given = false;
  return () => {
    if (given) return null;
    given = true;
    return text;
  };
}

function encodeReport(kind: number, script?: Script): Buffer {
  const name = script ? Buffer.from(script.chunkname, 'latin1') : Buffer.alloc(0);
  const rest = script ? 1 + 4 + name.length + script.text.length : 1;
  const out = Buffer.alloc(4 + rest);
  out.writeUInt32LE(rest, 0);
  out.writeUInt8(kind, 4);
  if (script) {
    out.writeUInt32LE(name.length, REPORT_HEADER_BYTES);
    name.copy(out, REPORT_HEADER_BYTES + 4);
    script.text.copy(out, REPORT_HEADER_BYTES + 4 + name.length);
  }
  return out;
}

/** lua_load of a script's whole text (the runner's): pushes the kept
 * function when the server has one for it, or parses. */
export function loadScriptText(L: LuaState, text: Uint8Array, chunkname: Uint8Array): number {
  const script = { chunkname: byteString(chunkname), text: Buffer.from(text.buffer, text.byteOffset, text.length) };
  const found = find(kept, script.chunkname, script.text);
  if (found) {
    found.push(L);
    // lua_load gives the chunk the registry's globals as its first upvalue,
    // as it is now (an -e chunk may have replaced it)
    lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, lua.LUA_RIDX_GLOBALS);
    lua.lua_setupvalue(L, -2, 1);
    report = encodeReport(REPORT_FROM_CACHE);
    return lua.LUA_OK;
  }
  const status = lua.lua_load(L, readerOf(text), null, chunkname, null);
  if (status === lua.LUA_OK && text.length <= ScriptCacheLimits.maxTextBytes) report = encodeReport(REPORT_PARSED, script);
  return status;
}

/** The runner's report, once, for its line; null if it loaded no script. */
export function takeScriptReport(): Buffer | null {
  const taken = report;
  report = null;
  return taken;
}

/** What a runner reported (the bytes after its exit status); null for
 * nothing, or a report cut short. */
export function decodeScriptReport(bytes: Buffer): { fromCache: true } | { fromCache: false; script: Script } | null {
  if (bytes.length < REPORT_HEADER_BYTES || bytes.readUInt32LE(0) !== bytes.length - 4) return null;
  const kind = bytes.readUInt8(4);
  if (kind === REPORT_FROM_CACHE) return { fromCache: true };
  if (kind !== REPORT_PARSED || bytes.length < REPORT_HEADER_BYTES + 4) return null;
  const nameEnd = REPORT_HEADER_BYTES + 4 + bytes.readUInt32LE(REPORT_HEADER_BYTES);
  if (nameEnd > bytes.length) return null;
  const chunkname = bytes.subarray(REPORT_HEADER_BYTES + 4, nameEnd).toString('latin1');
  return { fromCache: false, script: { chunkname, text: Buffer.from(bytes.subarray(nameEnd)) } };
}

function remember<T extends Script>(list: T[], item: T): void {
  list.push(item);
  let bytes = list.reduce((sum, s) => sum + s.text.length, 0);
  while (list.length > ScriptCacheLimits.maxScripts || bytes > ScriptCacheLimits.maxKeptBytes) bytes -= list.shift()!.text.length;
}

/** The server's: a runner parsed `script`. Compiles and keeps it if it is
 * the second time; true if it is kept now (the spares are then to be
 * renewed). */
export function scriptParsed(L: LuaState, script: Script): boolean {
  if (find(kept, script.chunkname, script.text)) return false; // a spare forked before it was kept
  const seen = find(parsedOnce, script.chunkname, script.text);
  if (!seen) {
    remember(parsedOnce, script);
    return false;
  }
  parsedOnce.splice(parsedOnce.indexOf(seen), 1);
  const top = lua.lua_gettop(L);
  const status = lua.lua_load(L, readerOf(script.text), null, Buffer.from(script.chunkname, 'latin1'), null);
  if (status === lua.LUA_OK) remember(kept, { ...script, push: lua.lua_toproxy(L, -1) });
  lua.lua_settop(L, top);
  return status === lua.LUA_OK;
}

/** The server's, when it builds a new warm state: functions compiled in
 * the old one are not for runners of the new. */
export function forgetScripts(): void {
  kept.length = 0;
  parsedOnce.length = 0;
}

/** How many scripts the server keeps compiled. */
export function keptScripts(): number {
  return kept.length;
}
