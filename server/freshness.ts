// Fresh preloaded code: the files a warm state was built from (preloaded
// modules, the files searched before each, the config file), as each was
// just before it was read. The server compares them with the disk before it
// hands each run to a runner, and re-warms first if any changed, so no run
// sees stale preloaded code; fs.watch only makes that re-warm happen sooner.
import fs from 'node:fs';
import path from 'node:path';
import { native } from './native.js';

/** File times tick with the kernel's coarse clock (up to 10 ms, seconds on
 * some file systems): two writes that close together can leave the same
 * size and times. A file changed this recently is also compared by content
 * (git's "racy" index entries). */
const RACY_MS = 2000;

/** native.fingerprintFiles: the bytes per file, and where its times are. */
const FINGERPRINT_BYTES = 32;
const MTIME_AT = 16;
const CTIME_AT = 24;

function isMissing(fingerprint: Buffer): boolean {
  return fingerprint.every((byte) => byte === 0);
}

function isRacy(fingerprint: Buffer): boolean {
  const mtimeNs = fingerprint.readBigUInt64LE(MTIME_AT);
  const ctimeNs = fingerprint.readBigUInt64LE(CTIME_AT);
  const changedMs = Number((mtimeNs > ctimeNs ? mtimeNs : ctimeNs) / 1_000_000n);
  return Date.now() - changedMs < RACY_MS;
}

function contentOf(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch {
    return undefined; // unreadable: Lua's searcher skips it as well
  }
}

/** The files, and their fingerprints as they were just before each was
 * read. The check before each run is one native call that stats them all
 * and one comparison of the bytes, while no file is racy. */
export class Snapshot {
  private readonly files: string[] = [];
  /** Each file's path, NUL-ended, for native.fingerprintFiles. */
  private paths = Buffer.alloc(0);
  private recorded = Buffer.alloc(0);
  /** By index in `files`: the bytes, kept while its times cannot tell a change. */
  private readonly contents = new Map<number, Buffer>();

  /** Records `file` as it is now (call it before reading the file: a change
   * in between then shows as a change); true if it exists. */
  add(file: string): boolean {
    const absolute = path.resolve(file);
    // A path with a NUL in it names no file: stat("") fails, as for a missing one.
    const named = Buffer.from(`${absolute.includes('\0') ? '' : absolute}\0`);
    const fingerprint = native.fingerprintFiles(named);
    let index = this.files.indexOf(absolute);
    if (index < 0) {
      index = this.files.push(absolute) - 1;
      this.paths = Buffer.concat([this.paths, named]);
      this.recorded = Buffer.concat([this.recorded, fingerprint]);
    } else {
      fingerprint.copy(this.recorded, index * FINGERPRINT_BYTES);
    }
    const content = !isMissing(fingerprint) && isRacy(fingerprint) ? contentOf(absolute) : undefined;
    if (content) this.contents.set(index, content);
    else this.contents.delete(index);
    return !isMissing(fingerprint);
  }

  /** The first file that is not as recorded, if any. */
  changed(): string | undefined {
    const now = native.fingerprintFiles(this.paths);
    if (this.contents.size === 0 && now.equals(this.recorded)) return undefined;
    for (let index = 0; index < this.files.length; index++) {
      const at = index * FINGERPRINT_BYTES;
      const fingerprint = now.subarray(at, at + FINGERPRINT_BYTES);
      if (!fingerprint.equals(this.recorded.subarray(at, at + FINGERPRINT_BYTES))) return this.files[index];
      const content = this.contents.get(index);
      if (!content) continue;
      if (!contentOf(this.files[index])?.equals(content)) return this.files[index];
      if (!isRacy(fingerprint)) this.contents.delete(index); // from here on its times tell
    }
    return undefined;
  }

  /** The directories to watch: a file's own watch is lost when an editor
   * replaces it, and a missing file has none. */
  directories(): string[] {
    return [...new Set(this.files.map((file) => path.dirname(file)))];
  }
}

/** Calls `onChange` soon after anything changes in the snapshot's
 * directories; returns a function that stops watching. */
export function watchSnapshot(snapshot: Snapshot, onChange: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  // Editors write in several steps: one check once they are done.
  const soon = () => (timer ??= setTimeout(() => ((timer = undefined), onChange()), 20));
  const watchers = snapshot.directories().flatMap((dir) => {
    try {
      return [fs.watch(dir, soon).on('error', () => {})];
    } catch {
      return []; // no such directory, or no inotify watches left: the check before each run still holds
    }
  });
  return () => {
    clearTimeout(timer);
    for (const watcher of watchers) watcher.close();
  };
}
