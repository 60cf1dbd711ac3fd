// The shape of bench-results/latest.json: what one bench run measured, with
// enough context (machine, date, commands) to compare runs later.

export interface Machine {
  date: string;
  cpuModel: string;
  cores: number;
  kernel: string;
  node: string;
  /** hyperfine's version, or null when the bench timed runs itself. */
  hyperfine: string | null;
  /** Share of the machine's CPU time that other processes used during the
   * run, in percent: other work inflates every figure, this says how much. */
  otherCpuPercent?: number;
}

export interface PathInfo {
  name: string;
  /** argv before the script name. */
  command: string[];
}

export interface WorkloadInfo {
  name: string;
  description: string;
  /** The path every median is compared to: lua5.4 for hello, lua5.3 otherwise. */
  baseline: string;
  /** The paths that run it (lua5.4 lacks the 5.3 modules). */
  paths: string[];
}

export interface Stats {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

export interface LatencyCell {
  workload: string;
  path: string;
  /** "hyperfine" (no shell), "hyperfine-shell" (shell time subtracted) or "node" (hrtime around execa). */
  method: string;
  warmup: number;
  /** Figures in milliseconds; absent when the path failed the workload. */
  stats?: Stats;
  timesMs?: number[];
  /** Runs that exited non-zero, left out of the figures. */
  failedRuns?: number;
  /** Median over the baseline's median, and over warmlua-cold's. */
  ratioToBaseline?: number;
  ratioToCold?: number;
  error?: string;
}

export interface ThroughputFigure {
  concurrency: number;
  runs: number;
  seconds: number;
  runsPerSecond: number;
  /** Runs that did not print exactly "hello" (or, at least one, when some exited non-zero). */
  failures: number;
}

export interface MemoryFigures {
  preloaded: string[];
  /** The server's VmRSS once listening, in MiB. */
  serverRssMiB: number;
  runners: number;
  /** Private_Clean + Private_Dirty of each runner, in MiB. */
  ussMiB: { mean: number; max: number };
  pssMiB: { mean: number; max: number };
}

export interface TargetResult {
  name: string;
  value: number | null;
  limit: number;
  /** "<=" or ">=": how value must compare to limit. */
  comparison: '<=' | '>=';
  unit: string;
  /** null when the figure could not be measured here. */
  pass: boolean | null;
  note?: string;
}

export interface BenchResults {
  version: 1;
  quick: boolean;
  machine: Machine;
  paths: PathInfo[];
  workloads: WorkloadInfo[];
  latency: LatencyCell[];
  throughput: ThroughputFigure[];
  memory: MemoryFigures | { error: string };
  targets: TargetResult[];
}
