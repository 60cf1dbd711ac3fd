// Spare runners: children forked ahead of demand that wait, blocked, for a
// job (the idea of Android's USAP pool). A connection takes one, so neither
// the fork nor the runner's first steps are on its path.
//
// The pool refills through a forker: a child forked once, from the finished
// warm state, that does nothing but fork spares when asked and hand back
// their lines. So the server's loop never stops for a fork (2-3 ms here,
// during which no client could be accepted), its own pages are no longer
// shared with every new spare (it paid a copy-on-write fault on each page it
// wrote after every fork), and each fork copies the forker's page tables,
// which stay as small as at warm-up while the server's grow as it serves.
// Spares are still the server's children (CLONE_PARENT): it reaps them.
// Without a forker (it could not start, or died) the server forks itself.
// When the server has come to keep a script compiled (./scriptcache.ts),
// the forker forks its successor, which compiles the scripts kept and forks
// the spares from then on, and the forker leaves.
import type { LuaState } from 'fengari';
import { native, sendAll, type PollHandle } from './native.js';
import { serveAsSpare, setRunnerFlags } from './runner.js';
import { compileKeptScripts, encodeKeptScripts } from './scriptcache.js';
import { flushAll } from './stdlib/index.js';

export interface Spare {
  pid: number;
  /** The server's end of the line the job goes down. */
  line: number;
}

/** The server's side of the forker: each byte sent asks for one spare (0)
 * or for the forker's successor (1); each answer is the child's pid (u32
 * LE) with its line as SCM_RIGHTS, or pid 0 and no fd when the fork failed. */
interface Forker {
  control: number;
  poll: PollHandle;
  /** What each answer not yet come is for, oldest first. */
  due: Child[];
  /** Answer bytes not yet a whole pid, and lines not yet matched to one. */
  partial: Buffer;
  lines: number[];
  /** Pids reaped while answers were due: maybe spares that died before
   * their answer came, which must then not be taken for live ones. */
  reaped: Set<number>;
}

type Child = 'spare' | 'successor';
const ASK: Record<Child, number> = { spare: 0, successor: 1 }; // native/forker.c
const ANSWER_BYTES = 4; // native/forker.c sends them

export class SparePool {
  private spares: Spare[] = [];
  private refillQueued = false;
  private retired = false;
  private forker: Forker | null;

  constructor(
    private readonly L: LuaState,
    private readonly size: number,
    /** Runners become their client's user (--as-peer). */
    private readonly asPeer: boolean,
    /** Called when `ready` may have become true. */
    private readonly onReady: () => void,
    /** Told when the forker cannot start or ends, for the server's log. */
    private readonly onForkerLost: (message: string) => void,
  ) {
    native.sharePrefaultSet(); // native/prefault.c: what the spares of this pool learn
    this.forker = size > 0 ? this.startForker() : null;
  }

  /** A spare can be taken without the server forking: one is waiting, or
   * there is no forker to wait for. Otherwise a request had better wait for
   * the forker than have the server fork too: under load, forks of both
   * outran the demand and their surplus cost the CPU the runs needed
   * (measured at 8 clients: 154 runs/s instead of 250). */
  get ready(): boolean {
    return this.spares.length > 0 || this.forker === null;
  }

  /** A waiting spare, or a new one when the pool is empty. */
  take(): Spare {
    const spare = this.spares.shift() ?? this.fork();
    this.refillSoon();
    return spare;
  }

  /** Asks for spares up to the pool's size, after the current turn of the loop. */
  refillSoon(): void {
    if (this.refillQueued || this.retired) return;
    this.refillQueued = true;
    setImmediate(() => {
      this.refillQueued = false;
      if (this.retired) return;
      const forker = this.forker;
      const missing = this.size - this.spares.length - (forker?.due.filter((c) => c === 'spare').length ?? 0);
      if (missing <= 0) return;
      try {
        if (forker) {
          this.ask(forker, Array(missing).fill('spare'));
        } else {
          for (let i = 0; i < missing; i++) this.spares.push(this.fork());
        }
      } catch {
        // The forker died (EPIPE): fork here from now on. A fork failed
        // (EAGAIN): take() tries again, and a run it fails for says why.
        if (forker) this.forkerGone();
      }
    });
  }

  /** Forgets a spare that ended while waiting; false if pid was not one.
   * Called for every ended child that was not running a script. */
  forget(pid: number): boolean {
    const index = this.spares.findIndex((s) => s.pid === pid);
    if (index < 0) {
      if (this.forker && this.forker.due.length > 0) this.forker.reaped.add(pid);
      return false;
    }
    native.close(this.spares[index].line);
    this.spares.splice(index, 1);
    this.refillSoon();
    return true;
  }

  /** Has the forker fork its successor, which takes in the scripts kept
   * compiled (./scriptcache.ts) and forks the spares from then on; the
   * spares waiting then are taken first (they only parse what the new ones
   * would not). False without a forker, or with a successor due already
   * (it will take in the scripts kept by then). */
  renewForker(): boolean {
    const forker = this.forker;
    if (!forker || forker.due.includes('successor')) return false;
    try {
      this.ask(forker, ['successor']);
    } catch {
      this.forkerGone();
      return false;
    }
    return true;
  }

  /** Closes every waiting spare's line (each reads the end and exits), and
   * the forker's, and forks no more. */
  retireAll(): void {
    this.retired = true;
    this.stopForker();
    for (const spare of this.spares.splice(0)) native.close(spare.line);
  }

  /** Forks a spare from the server itself. */
  private fork(): Spare {
    flushAll(); // a runner must not inherit (and repeat) buffered server output
    return forkWithLine(native.forkWarm, (end) => serveAsSpare(this.L, end, this.asPeer));
  }

  private startForker(): Forker | null {
    let control: number;
    try {
      flushAll();
      control = forkWithLine(native.forkWarm, (end) => serveAsForker(this.L, end, this.asPeer)).line;
    } catch (error) {
      this.onForkerLost(`cannot start the forker: ${(error as Error).message}; the server forks spares itself`);
      return null;
    }
    return this.watchForker(control);
  }

  private watchForker(control: number): Forker {
    const poll = native.pollReadable(control, () => this.readAnswers());
    return { control, poll, due: [], partial: Buffer.alloc(0), lines: [], reaped: new Set() };
  }

  private ask(forker: Forker, children: Child[]): void {
    native.send(forker.control, Buffer.from(children.map((c) => ASK[c])), []);
    forker.due.push(...children);
  }

  /** The successor answered: it gets the scripts to compile and becomes the
   * forker. The spares the old one still owes are dropped (their lines,
   * unread, close with its control socket); those waiting serve on. */
  private succeed(line: number): void {
    try {
      sendAll(line, encodeKeptScripts(), []);
    } catch {
      native.close(line); // it died already: the old forker goes on
      return;
    }
    this.stopForker();
    this.forker = this.watchForker(line);
    this.refillSoon();
  }

  private readAnswers(): void {
    const forker = this.forker;
    if (!forker) return;
    for (;;) {
      let received;
      try {
        received = native.recv(forker.control, 64 * ANSWER_BYTES);
      } catch {
        return this.forkerGone(); // ECONNRESET: it died with requests unread
      }
      if (received === null) return;
      if (received.data.length === 0) return this.forkerGone();
      forker.lines.push(...received.fds);
      let successor: { line: number } | null = null;
      let answers = Buffer.concat([forker.partial, received.data]);
      for (; answers.length >= ANSWER_BYTES; answers = answers.subarray(ANSWER_BYTES)) {
        const pid = answers.readUInt32LE(0);
        const child = forker.due.shift();
        const line = pid > 0 ? forker.lines.shift() : undefined;
        if (line === undefined) continue;
        if (forker.reaped.delete(pid)) {
          native.close(line); // dead already: ask for another
          this.refillSoon();
        } else if (child === 'successor') {
          successor = { line };
        } else {
          this.spares.push({ pid, line });
        }
      }
      if (forker.due.length === 0) forker.reaped.clear();
      forker.partial = answers;
      if (successor) return this.succeed(successor.line);
      if (this.spares.length > 0) this.onReady();
    }
  }

  /** The forker died: the server forks its spares itself from now on. */
  private forkerGone(): void {
    this.onForkerLost('the forker ended; the server forks spares itself from now on');
    this.stopForker();
    this.refillSoon();
    this.onReady();
  }

  private stopForker(): void {
    const forker = this.forker;
    if (!forker) return;
    this.forker = null;
    native.pollStop(forker.poll);
    native.close(forker.control);
    for (const line of forker.lines) native.close(line);
  }
}

/** The forker's life: for each byte the server sends, fork a spare (the
 * server's child too) and send back its pid and line. The loop is native
 * (native/forker.c says why); it returns only in a new child, and the
 * forker leaves with _exit when the server closes the control socket. A
 * successor first compiles the scripts the server sends it, and has its
 * spares learn their pages anew (native/prefault.c). */
function serveAsForker(L: LuaState, controlFd: number, asPeer: boolean, successor = false): never {
  let child;
  try {
    const [control] = native.installFds([], [], [controlFd]);
    if (successor) {
      compileKeptScripts(L, readMessage(control));
      native.sharePrefaultSet();
    }
    // Every spare starts with an empty young generation. At the forker's fork
    // it was 5.6 of its 8 MB full, and a run that allocated the rest first had
    // to copy all of that, in pages shared with the forker (the bench's
    // generated-module script: 24 ms, 17 ms after this; see bin/warmluad for
    // --expose-gc). A minor collection: a full one there made runners slower.
    // Not in a successor, which compiling leaves little in it: V8 shrank the
    // young generation at that collection, as it does after little
    // allocation, and runners collected all along (the generated-module
    // script kept: 255-295 page faults; 40 without the collection, and 71
    // on a server that keeps no scripts).
    if (!successor) (globalThis as { gc?: (options: { type: string }) => void }).gc?.({ type: 'minor' });
    setRunnerFlags();
    child = native.serveForks(control);
  } catch {
    // EMFILE and the like: the server sees the forker end and forks spares
    // itself. Throwing on would run the server's own code in this process.
    return native.exit(1);
  }
  return child.successor ? serveAsForker(L, child.line, asPeer, true) : serveAsSpare(L, child.line, asPeer);
}

/** The message the server sends a successor first (a u32 length, then as
 * many bytes), read blocking, and not a byte more: requests for spares
 * follow it on the same socket. */
function readMessage(fd: number): Buffer {
  let bytes = Buffer.alloc(0);
  for (;;) {
    const whole = bytes.length < 4 ? 4 : 4 + bytes.readUInt32LE(0);
    if (bytes.length === whole) return bytes;
    native.waitReadable(fd);
    const received = native.recv(fd, whole - bytes.length);
    if (received === null) continue;
    if (received.data.length === 0) return native.exit(0); // the server is gone
    bytes = Buffer.concat([bytes, received.data]);
  }
}

/** Forks (with `fork`) a child that lives `life` on its end of a new socket
 * pair: the child's pid, and the caller's end as its line. */
function forkWithLine(fork: () => number, life: (childEnd: number) => never): Spare {
  const [line, childEnd] = native.socketPair();
  let pid: number;
  try {
    pid = fork();
  } catch (error) {
    native.close(line);
    native.close(childEnd);
    throw error;
  }
  if (pid === 0) life(childEnd);
  native.close(childEnd);
  return { pid, line };
}
