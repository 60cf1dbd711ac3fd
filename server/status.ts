// `warmluad status`: what a running server reports about itself over its
// socket (a STATUS frame, answered by one STATUS_REPLY), and the latency
// record the server keeps for it.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { native, sendAll } from './native.js';
import {
  FrameReader,
  FrameType,
  decodeError,
  decodeStatusReply,
  defaultSocketPath,
  encodeStatus,
} from './protocol.js';

/** The STATUS_REPLY payload. */
export interface StatusReport {
  pid: number;
  runsServed: number;
  runsActive: number;
  runsQueued: number;
  /** Percentiles of the runs' durations (fork to reap) since start; null before the first run. */
  latencyMs: { p50: number; p99: number } | null;
  warmStateAgeSeconds: number;
  preload: string[];
  rssBytes: number;
  /** Scripts the server keeps compiled (../scriptcache.ts), and the runs
   * that loaded theirs from there. */
  scriptsKept: number;
  runsFromKeptScripts: number;
}

// Bucket i holds durations up to FIRST_BOUND_MS * GROWTH^i: percentiles are
// within 5 % and the record stays a few kilobytes however many runs it sees.
const FIRST_BOUND_MS = 0.01;
const GROWTH = 1.05;
const BUCKETS = 512; // up to about 7 days

/** Every run's duration since start, as a log-scale histogram. */
export class LatencyRecord {
  private readonly counts = new Float64Array(BUCKETS);
  private total = 0;

  add(ms: number): void {
    const bucket = ms <= FIRST_BOUND_MS ? 0 : Math.ceil(Math.log(ms / FIRST_BOUND_MS) / Math.log(GROWTH));
    this.counts[Math.min(bucket, BUCKETS - 1)]++;
    this.total++;
  }

  get count(): number {
    return this.total;
  }

  /** The upper bound of the bucket holding the q-th quantile (0 < q <= 1). */
  quantile(q: number): number {
    let seen = 0;
    let bucket = 0;
    for (; bucket < BUCKETS - 1; bucket++) {
      seen += this.counts[bucket];
      if (seen >= q * this.total) break;
    }
    return Number((FIRST_BOUND_MS * GROWTH ** bucket).toFixed(2));
  }
}

const USAGE = `usage: warmluad status [--socket PATH] [--json]
  --socket PATH   the server's socket (default: ${defaultSocketPath()})
  --json          print the report as one JSON object`;

/** Sends STATUS and blocks until the reply; a server's ERROR becomes an Error. */
function askStatus(socket: string): Record<string, unknown> {
  const fd = native.connect(socket);
  try {
    sendAll(fd, encodeStatus(), []);
    const reader = new FrameReader();
    for (;;) {
      const frame = reader.next();
      if (frame?.type === FrameType.statusReply) return decodeStatusReply(frame.payload);
      if (frame?.type === FrameType.error) throw new Error(decodeError(frame.payload).message);
      if (frame) throw new Error(`unexpected frame type ${frame.type}`);
      native.waitReadable(fd);
      const received = native.recv(fd, 64 * 1024);
      if (received?.data.length === 0) throw new Error('the server closed the connection without a reply');
      if (received) reader.push(received.data);
    }
  } finally {
    native.close(fd);
  }
}

function formatReport(r: StatusReport): string {
  const latency = r.latencyMs ? `p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms` : 'no runs yet';
  return [
    `pid:          ${r.pid}`,
    `runs served:  ${r.runsServed}`,
    `runs active:  ${r.runsActive} (${r.runsQueued} queued)`,
    `latency:      ${latency}`,
    `warm state:   ${r.warmStateAgeSeconds} s old, preloaded: ${r.preload.join(', ') || 'nothing'}`,
    `server rss:   ${(r.rssBytes / 1024 / 1024).toFixed(1)} MiB`,
    `scripts kept: ${r.scriptsKept} compiled, ${r.runsFromKeptScripts} runs loaded theirs from there`,
  ].join('\n');
}

/** `warmluad status`: exit 0 with the report, 100 for a usage error, 111
 * when no server answers (as warmluad's own exit codes). */
export function statusMain(args: string[]): number {
  let options;
  try {
    options = parseArgs({
      args,
      strict: true,
      options: { socket: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }).values;
  } catch (error) {
    fs.writeSync(2, `warmluad status: ${(error as Error).message}\n${USAGE}\n`);
    return 100;
  }
  if (options.help) {
    fs.writeSync(1, `${USAGE}\n`);
    return 0;
  }
  const socket = options.socket ?? defaultSocketPath();
  let report;
  try {
    report = askStatus(socket);
  } catch (error) {
    fs.writeSync(2, `warmluad status: cannot get the status of warmluad at ${socket}: ${(error as Error).message}\n`);
    return 111;
  }
  const text = options.json ? JSON.stringify(report) : formatReport(report as unknown as StatusReport);
  fs.writeSync(1, `${text}\n`);
  return 0;
}
