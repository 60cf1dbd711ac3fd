// Fresh preloaded code: the files a warm state was built from (preloaded
// modules, the files searched before each, the config file), as each was
// just before it was read. The server compares them with the disk before it
// hands each run to a runner, and re-warms first if any changed, so no run
// sees stale preloaded code; fs.watch only makes that re-warm happen sooner.
import fs from 'node:fs';
import path from 'node:path';

/** File times tick with the kernel's coarse clock (up to 10 ms, seconds on
 * some file systems): two writes that close together can leave the same
 * size and times. A file changed this recently is also compared by content
 * (git's "racy" index entries). */
const RACY_MS = 2000;

interface Version {
  /** ino, size, mtime and ctime in ns; "missing" when the file is not there. */
  stat: string;
  /** Changed within RACY_MS of now. */
  racy: boolean;
}

function versionOf(file: string): Version {
  let s;
  try {
    s = fs.statSync(file, { bigint: true, throwIfNoEntry: false });
  } catch {
    // EACCES and the like: Lua's searcher cannot read it either
  }
  if (!s) return { stat: 'missing', racy: false };
  const changedMs = Number((s.mtimeNs > s.ctimeNs ? s.mtimeNs : s.ctimeNs) / 1_000_000n);
  return { stat: `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`, racy: Date.now() - changedMs < RACY_MS };
}

function contentOf(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch {
    return undefined; // unreadable: Lua's searcher skips it as well
  }
}

interface Recorded {
  stat: string;
  /** The bytes, kept while its times cannot tell a change. */
  content?: Buffer;
}

export class Snapshot {
  private readonly files = new Map<string, Recorded>();

  /** Records `file` as it is now (call it before reading the file: a change
   * in between then shows as a change); true if it exists. */
  add(file: string): boolean {
    const absolute = path.resolve(file);
    const { stat, racy } = versionOf(absolute);
    this.files.set(absolute, { stat, content: racy ? contentOf(absolute) : undefined });
    return stat !== 'missing';
  }

  /** The first file that is not as recorded, if any. */
  changed(): string | undefined {
    for (const [file, recorded] of this.files) {
      const now = versionOf(file);
      if (now.stat !== recorded.stat) return file;
      if (!recorded.content) continue;
      if (!contentOf(file)?.equals(recorded.content)) return file;
      if (!now.racy) recorded.content = undefined; // from here on its times tell
    }
    return undefined;
  }

  /** The directories to watch: a file's own watch is lost when an editor
   * replaces it, and a missing file has none. */
  directories(): string[] {
    return [...new Set([...this.files.keys()].map((file) => path.dirname(file)))];
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
