// Runs per second through bin/warmlua with C clients at once. xargs -P keeps
// C runs going and starts them natively: a node load generator would spend
// as much CPU spawning as the server spends forking, on the same cores.
import { execa } from 'execa';
import type { ThroughputFigure } from './results.js';

export interface ThroughputOptions {
  shim: string;
  script: string;
  env: Record<string, string>;
  concurrency: number;
  /** Keep going, in batches, until this much time has passed. */
  seconds: number;
  /** The first batch's size; later ones follow the rate measured so far. */
  firstBatch: number;
}

interface Batch {
  seconds: number;
  failures: number;
}

async function runBatch(options: ThroughputOptions, runs: number): Promise<Batch> {
  // -I makes one run per input line; the line itself is not passed on.
  const args = ['-P', String(options.concurrency), '-I', '{}', options.shim, options.script];
  const began = process.hrtime.bigint();
  const r = await execa('xargs', args, {
    input: 'x\n'.repeat(runs),
    env: options.env,
    extendEnv: false,
    reject: false,
    timeout: 600_000,
  });
  const seconds = Number(process.hrtime.bigint() - began) / 1e9;
  // Each run writes "hello\n" in one write, so lines never interleave.
  const hellos = String(r.stdout).split('\n').filter((line) => line === 'hello').length;
  // xargs only says that some run exited non-zero, not how many.
  return { seconds, failures: Math.max(runs - hellos, r.exitCode === 0 ? 0 : 1) };
}

export async function measureThroughput(options: ThroughputOptions): Promise<ThroughputFigure> {
  let runs = 0;
  let seconds = 0;
  let failures = 0;
  // Batches of at least a few runs per client, so that the drain at the end
  // of each (fewer than C runs going) weighs little.
  let batch = Math.max(4 * options.concurrency, options.firstBatch);
  while (seconds < options.seconds) {
    const result = await runBatch(options, batch);
    runs += batch;
    seconds += result.seconds;
    failures += result.failures;
    batch = Math.max(4 * options.concurrency, Math.round((runs / seconds) * (options.seconds - seconds)));
  }
  return { concurrency: options.concurrency, runs, seconds, runsPerSecond: runs / seconds, failures };
}
