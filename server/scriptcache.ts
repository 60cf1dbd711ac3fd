// Compiled scripts. Every run parses its script, and fengari's parser is
// slow in a runner: the bench's 12-line module script took 0.2-0.3 ms there
// (50 us in a warm node), and allocated 83 KB, each new 4 KiB page a fault.
// So the scripts a server keeps running are kept compiled in its forker,
// and the runners forked from it inherit them. A runner whose script text
// is byte for byte a kept one's, under the same chunk name, pushes the kept
// function instead of parsing: what lua_load would have built from the
// same bytes. Nothing is looked up by path or time, so nothing can be
// stale: a changed script is parsed, as before.
//
// A runner tells the server on its line, after its exit status and off its
// client's time, how its script was loaded: from a compiled copy, or
// parsed, with its text. The server keeps a text the second time a runner
// parsed it (one run of a script costs nothing), and has the forker fork a
// successor that compiles the texts kept and forks the spares from then on
// (./pool.ts). The successor comes from the forker, not the server: its
// young generation is the one the warm-up grew, where an idle server's V8
// has shrunk its own, and runs from that collected all along.
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
  /** A forker's successor is asked for at most this often. */
  renewAfterMs: 1000,
} as const;

interface Script {
  /** The chunk name ("@name") as a byte string, and the text lua_load got. */
  chunkname: string;
  text: Buffer;
}

interface Compiled extends Script {
  /** Pushes the compiled main function (lua_toproxy). */
  push: (L: LuaState) => void;
}

/** The server's: the texts kept, and those parsed by one run so far. */
const kept: Script[] = [];
const parsedOnce: Script[] = [];
/** The forker's, inherited by every runner it forks: `kept`, compiled. */
let compiled: Compiled[] = [];

const REPORT_FROM_CACHE = 1;
const REPORT_PARSED = 2;
/** A runner's report: u32 length of the rest, u8 kind, and for PARSED the
 * script. A script: u32 chunk name length, the chunk name, u32 text length,
 * the text. The texts kept, for a successor: u32 length of the rest, then
 * the scripts. */
const LENGTH_BYTES = 4;

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

const lengthOf = (n: number): Buffer => {
  const bytes = Buffer.alloc(LENGTH_BYTES);
  bytes.writeUInt32LE(n, 0);
  return bytes;
};

/** `parts`, after the u32 length of them all. */
function framed(parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([lengthOf(body.length), body]);
}

/** The body of a frame that came whole; null for one cut short. */
function unframed(bytes: Buffer): Buffer | null {
  return bytes.length >= LENGTH_BYTES && bytes.readUInt32LE(0) === bytes.length - LENGTH_BYTES ? bytes.subarray(LENGTH_BYTES) : null;
}

const encodeScript = (s: Script): Buffer[] => {
  const name = Buffer.from(s.chunkname, 'latin1');
  return [lengthOf(name.length), name, lengthOf(s.text.length), s.text];
};

/** The scripts in `bytes` from `at`, until its end; null if one is cut short. */
function decodeScripts(bytes: Buffer, at: number): Script[] | null {
  const scripts: Script[] = [];
  const field = (): Buffer | null => {
    if (at + LENGTH_BYTES > bytes.length) return null;
    const end = at + LENGTH_BYTES + bytes.readUInt32LE(at);
    if (end > bytes.length) return null;
    const value = bytes.subarray(at + LENGTH_BYTES, end);
    at = end;
    return value;
  };
  while (at < bytes.length) {
    const name = field();
    const text = name && field();
    if (!name || !text) return null;
    scripts.push({ chunkname: name.toString('latin1'), text: Buffer.from(text) });
  }
  return scripts;
}

function encodeReport(kind: number, script?: Script): Buffer {
  return framed([Buffer.of(kind), ...(script ? encodeScript(script) : [])]);
}

/** lua_load of a script's whole text (the runner's): pushes the compiled
 * copy when its forker has one, or parses. */
export function loadScriptText(L: LuaState, text: Uint8Array, chunkname: Uint8Array): number {
  const script = { chunkname: byteString(chunkname), text: Buffer.from(text.buffer, text.byteOffset, text.length) };
  const found = find(compiled, script.chunkname, script.text);
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
  const body = unframed(bytes);
  if (body === null || body.length === 0) return null;
  if (body[0] === REPORT_FROM_CACHE) return body.length === 1 ? { fromCache: true } : null;
  const scripts = body[0] === REPORT_PARSED ? decodeScripts(body, 1) : null;
  return scripts?.length === 1 ? { fromCache: false, script: scripts[0] } : null;
}

function remember<T extends Script>(list: T[], item: T): void {
  list.push(item);
  let bytes = list.reduce((sum, s) => sum + s.text.length, 0);
  while (list.length > ScriptCacheLimits.maxScripts || bytes > ScriptCacheLimits.maxKeptBytes) bytes -= list.shift()!.text.length;
}

/** The server's: a runner parsed `script`. Keeps it if it is the second
 * time; true if it is kept now (the forker's successor is then due). */
export function scriptParsed(script: Script): boolean {
  if (find(kept, script.chunkname, script.text)) return false; // a spare forked before its successor
  const seen = find(parsedOnce, script.chunkname, script.text);
  if (!seen) {
    remember(parsedOnce, script);
    return false;
  }
  parsedOnce.splice(parsedOnce.indexOf(seen), 1);
  remember(kept, script);
  return true;
}

/** The server's: the texts kept, for the forker's successor. */
export function encodeKeptScripts(): Buffer {
  return framed(kept.flatMap(encodeScript));
}

/** The successor's: `message` (encodeKeptScripts) is what to have
 * compiled; the copies its forker had of them are kept, the others
 * dropped. A message cut short changes nothing. */
export function compileKeptScripts(L: LuaState, message: Buffer): void {
  const body = unframed(message);
  const scripts = body && decodeScripts(body, 0);
  if (!scripts) return;
  compiled = scripts.flatMap((script) => {
    const copy = find(compiled, script.chunkname, script.text);
    if (copy) return [copy];
    const top = lua.lua_gettop(L);
    const status = lua.lua_load(L, readerOf(script.text), null, Buffer.from(script.chunkname, 'latin1'), null);
    const push = status === lua.LUA_OK ? lua.lua_toproxy(L, -1) : null;
    lua.lua_settop(L, top);
    return push ? [{ ...script, push }] : [];
  });
}

/** Forgets every text and compiled copy: the server's, when it builds a new
 * warm state. Its forker has none compiled, and texts still taken for kept
 * would never reach it. */
export function forgetScripts(): void {
  kept.length = 0;
  parsedOnce.length = 0;
  compiled = [];
}

/** How many scripts the server keeps compiled. */
export function keptScripts(): number {
  return kept.length;
}
