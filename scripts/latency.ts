// One workload's latency over every path. The runs are taken in rounds that
// go through all the paths in turn, so a burst of other work on the machine
// lands on every path alike instead of ruining one path's figures (and with
// them its ratios).
import { measure, summarise, verify, type Command } from './measure.js';
import type { LatencyCell, PathInfo } from './results.js';
import type { Workload } from './workloads.js';

export interface LatencyOptions {
  env: Record<string, string>;
  /** Time to spend per path; the run count follows from the check runs. */
  cellBudgetMs: number;
  minRuns: number;
  maxRuns: number;
  rounds: number;
  useHyperfine: boolean;
  tmpDir: string;
  /** Called before each batch of runs, for the progress line. */
  onStep(text: string): void;
}

interface Plan {
  path: PathInfo;
  command: Command;
  runs: number;
  warmup: number;
  timesMs: number[];
  failedRuns: number;
  method: string;
  error?: string;
}

/** How many batches of runs measureWorkload will report through onStep. */
export const stepsFor = (paths: number, options: Pick<LatencyOptions, 'rounds'>): number => paths * options.rounds;

export async function measureWorkload(workload: Workload, paths: PathInfo[], options: LatencyOptions): Promise<LatencyCell[]> {
  const plans: Plan[] = [];
  for (const path of paths) {
    const command: Command = {
      file: path.command[0],
      args: [...path.command.slice(1), workload.script, ...workload.args],
      env: options.env,
      stdinFile: workload.stdinFile,
    };
    const plan: Plan = { path, command, runs: 0, warmup: 0, timesMs: [], failedRuns: 0, method: options.useHyperfine ? 'hyperfine' : 'node' };
    try {
      // The check runs also tell how long a run takes, hence how many fit.
      const runMs = await verify(command, workload.expectedStdout);
      plan.runs = Math.max(options.minRuns, Math.min(options.maxRuns, Math.round(options.cellBudgetMs / runMs)));
      // Caches are warm after the check runs; a few more for the fast paths,
      // in every round since the other paths ran in between.
      plan.warmup = Math.min(3, Math.round(plan.runs / 50));
    } catch (error) {
      plan.error = (error as Error).message;
    }
    plans.push(plan);
  }

  for (let round = 0; round < options.rounds; round++) {
    for (const plan of plans) {
      options.onStep(`${workload.name} · ${plan.path.name} · round ${round + 1}/${options.rounds}`);
      const runs = Math.round((plan.runs * (round + 1)) / options.rounds) - Math.round((plan.runs * round) / options.rounds);
      if (plan.error || runs === 0) continue;
      try {
        const timings = await measure(plan.command, { warmup: plan.warmup, runs, useHyperfine: options.useHyperfine, tmpDir: options.tmpDir });
        plan.method = timings.method;
        plan.timesMs.push(...timings.timesMs);
        plan.failedRuns += timings.failedRuns;
      } catch (error) {
        plan.error = (error as Error).message;
      }
    }
  }

  return plans.map((plan) => {
    const base = { workload: workload.name, path: plan.path.name, method: plan.method, warmup: plan.warmup };
    if (plan.error) return { ...base, error: plan.error };
    if (plan.timesMs.length === 0) return { ...base, error: `all ${plan.failedRuns} runs failed` };
    return { ...base, stats: summarise(plan.timesMs), timesMs: plan.timesMs, failedRuns: plan.failedRuns };
  });
}
