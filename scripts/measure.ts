// Timing one command many times. hyperfine -N (no shell) is preferred: it
// spawns with less overhead and jitter than node, which matters when the
// figure is about a millisecond. Without hyperfine, the bench times each
// execa call with process.hrtime itself.
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import type { Stats } from './results.js';

export interface Command {
  file: string;
  args: string[];
  env: Record<string, string>;
  stdinFile?: string;
}

export interface Timings {
  method: 'hyperfine' | 'hyperfine-shell' | 'node';
  /** The runs that exited 0. */
  timesMs: number[];
  /** Runs that exited otherwise: counted, not timed, so one bad run does not
   * lose the others (it happens when dist/ is rebuilt under a running bench). */
  failedRuns: number;
}

/** Percentile by linear interpolation between the two nearest ranks. */
export function percentile(sorted: number[], p: number): number {
  const rank = (sorted.length - 1) * p;
  const below = Math.floor(rank);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (rank - below);
}

export function summarise(timesMs: number[]): Stats {
  const sorted = [...timesMs].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    min: sorted[0],
    max: sorted[sorted.length - 1],
  };
}

function execaOptions(command: Command) {
  return {
    env: command.env,
    extendEnv: false,
    reject: false,
    stripFinalNewline: false,
    timeout: 120_000,
    ...(command.stdinFile ? { inputFile: command.stdinFile } : { stdin: 'ignore' as const }),
  };
}

/** A path's first run finds cold caches (and a fresh server's first
 * spare): it took several times as long as the next ones, and once left
 * warmlua's hello with 60 runs instead of 300. */
const CHECK_RUNS = 2;

/** Runs the command CHECK_RUNS times and checks that each printed exactly
 * what it must; returns the fastest run's time, to size the number of runs. */
export async function verify(command: Command, expectedStdout: string): Promise<number> {
  let fastestMs = Infinity;
  for (let i = 0; i < CHECK_RUNS; i++) {
    const began = process.hrtime.bigint();
    const r = await execa(command.file, command.args, execaOptions(command));
    fastestMs = Math.min(fastestMs, Number(process.hrtime.bigint() - began) / 1e6);
    const status = r.exitCode ?? r.signal;
    if (status !== 0 || r.stdout !== expectedStdout) {
      const got = String(r.stdout).slice(0, 200);
      const err = String(r.stderr).trim().split('\n').slice(-3).join(' | ').slice(0, 300);
      throw new Error(`exit ${status}, stdout ${JSON.stringify(got)}${err ? `, stderr: ${err}` : ''}`);
    }
  }
  return fastestMs;
}

/** hyperfine -N splits its command like a shell would: quote every word. */
const quote = (word: string): string => `'${word.replace(/'/g, `'\\''`)}'`;

async function timeWithHyperfine(command: Command, warmup: number, runs: number, tmpDir: string): Promise<Timings> {
  const jsonFile = path.join(tmpDir, 'hyperfine.json');
  let line = [command.file, ...command.args].map(quote).join(' ');
  // hyperfine 1.15 cannot feed stdin from a file without a shell; it then
  // measures the shell's own start-up and subtracts it.
  const shell = command.stdinFile !== undefined;
  if (shell) line += ` < ${quote(command.stdinFile!)}`;
  const args = [
    ...(shell ? ['--shell', 'sh'] : ['-N']),
    '--ignore-failure',
    '--style', 'none',
    '--warmup', String(warmup),
    '--runs', String(runs),
    '--export-json', jsonFile,
    '--', line,
  ];
  const r = await execa('hyperfine', args, { env: command.env, extendEnv: false, reject: false, timeout: 900_000 });
  if (r.exitCode !== 0) throw new Error(`hyperfine failed: ${String(r.stderr).trim().slice(-300)}`);
  const report = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as { results: { times: number[]; exit_codes: number[] }[] };
  fs.rmSync(jsonFile);
  const { times, exit_codes: codes } = report.results[0];
  return {
    method: shell ? 'hyperfine-shell' : 'hyperfine',
    timesMs: times.filter((_, i) => codes[i] === 0).map((seconds) => seconds * 1000),
    failedRuns: codes.filter((code) => code !== 0).length,
  };
}

async function timeWithNode(command: Command, warmup: number, runs: number): Promise<Timings> {
  const options = { ...execaOptions(command), stdout: 'ignore' as const, stderr: 'ignore' as const };
  const timesMs: number[] = [];
  let failedRuns = 0;
  for (let i = 0; i < warmup + runs; i++) {
    const began = process.hrtime.bigint();
    const r = await execa(command.file, command.args, options);
    const ms = Number(process.hrtime.bigint() - began) / 1e6;
    if (i < warmup) continue;
    if (r.exitCode === 0) timesMs.push(ms);
    else failedRuns++;
  }
  return { method: 'node', timesMs, failedRuns };
}

export interface MeasureOptions {
  warmup: number;
  runs: number;
  useHyperfine: boolean;
  tmpDir: string;
}

export function measure(command: Command, options: MeasureOptions): Promise<Timings> {
  return options.useHyperfine
    ? timeWithHyperfine(command, options.warmup, options.runs, options.tmpDir)
    : timeWithNode(command, options.warmup, options.runs);
}
