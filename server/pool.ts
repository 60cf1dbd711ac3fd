// Spare runners: children forked ahead of demand that wait, blocked, for a
// job (the idea of Android's USAP pool). A connection takes one, so neither
// the fork nor the runner's first steps are on its path; the pool refills
// right after, on a later turn of the loop.
import type { LuaState } from 'fengari';
import { native } from './native.js';
import { serveAsSpare } from './runner.js';
import { flushAll } from './stdlib/index.js';

export interface Spare {
  pid: number;
  /** The server's end of the line the job goes down. */
  line: number;
}

export class SparePool {
  private spares: Spare[] = [];
  private refillQueued = false;
  private retired = false;

  constructor(
    private readonly L: LuaState,
    private readonly size: number,
    /** Runners become their client's user (--as-peer). */
    private readonly asPeer: boolean,
  ) {}

  /** A waiting spare, or a new one when the pool is empty. */
  take(): Spare {
    const spare = this.spares.shift() ?? this.fork();
    this.refillSoon();
    return spare;
  }

  /** Forks spares up to the pool's size, after the current turn of the loop. */
  refillSoon(): void {
    if (this.refillQueued || this.retired) return;
    this.refillQueued = true;
    setImmediate(() => {
      this.refillQueued = false;
      while (this.spares.length < this.size) this.spares.push(this.fork());
    });
  }

  /** Forgets a spare that ended while waiting; false if pid was not one. */
  forget(pid: number): boolean {
    const index = this.spares.findIndex((s) => s.pid === pid);
    if (index < 0) return false;
    native.close(this.spares[index].line);
    this.spares.splice(index, 1);
    this.refillSoon();
    return true;
  }

  /** Closes every waiting spare's line (each reads the end and exits) and
   * forks no more. */
  retireAll(): void {
    this.retired = true;
    for (const spare of this.spares.splice(0)) native.close(spare.line);
  }

  private fork(): Spare {
    const [line, spareEnd] = native.socketPair();
    flushAll(); // a runner must not inherit (and repeat) buffered server output
    const pid = native.forkWarm();
    if (pid === 0) serveAsSpare(this.L, spareEnd, this.asPeer);
    native.close(spareEnd);
    return { pid, line };
  }
}
