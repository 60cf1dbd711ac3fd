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
  runs: number;
}

export async function measureThroughput(options: ThroughputOptions): Promise<ThroughputFigure> {
  const { concurrency, runs } = options;
  // -I makes one run per input line; the line itself is not passed on.
  const args = ['-P', String(concurrency), '-I', '{}', options.shim, options.script];
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
  const failures = Math.max(runs - hellos, r.exitCode === 0 ? 0 : 1);
  return { concurrency, runs, seconds, runsPerSecond: runs / seconds, failures };
}
