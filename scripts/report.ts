// The terminal report: latency table, throughput, memory and the targets.
import type { BenchResults, TargetResult } from './results.js';

const ms = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const times = (v: number | undefined): string =>
  v === undefined ? '' : v >= 100 ? `${v.toFixed(0)}×` : v >= 10 ? `${v.toFixed(1)}×` : `${v.toFixed(2)}×`;

function row(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' ').trimEnd();
}

function latencyTable(results: BenchResults): string[] {
  const widths = [16, 8, 8, 8, 9, 9, 5, 0];
  const lines = [
    'Latency, ms per run (spawn to exit); ratios compare medians',
    row(['', 'p50', 'p90', 'p99', '× lua5.x', '× cold', 'runs'], widths),
  ];
  for (const workload of results.workloads) {
    lines.push(`${workload.name}: ${workload.description} (× ${workload.baseline})`);
    for (const path of workload.paths) {
      const cell = results.latency.find((c) => c.workload === workload.name && c.path === path);
      if (!cell?.stats) {
        lines.push(`  ${path.padEnd(widths[0] - 2)} FAILED: ${cell?.error ?? 'not measured'}`);
        continue;
      }
      const s = cell.stats;
      const stats = [ms(s.p50), ms(s.p90), ms(s.p99), times(cell.ratioToBaseline), times(cell.ratioToCold)];
      const failed = cell.failedRuns ? `  ${cell.failedRuns} failed` : '';
      lines.push(row([`  ${path}`, ...stats, String(cell.timesMs?.length ?? '')], widths) + failed);
    }
  }
  return lines;
}

function throughputLines(results: BenchResults): string[] {
  return [
    'Throughput, bin/warmlua hello.lua with N clients at once',
    ...results.throughput.map(
      (t) =>
        `  concurrency ${String(t.concurrency).padStart(2)}: ${t.runsPerSecond.toFixed(0).padStart(5)} runs/s` +
        `  (${t.runs} runs in ${t.seconds.toFixed(1)} s, ${t.failures} failures)`,
    ),
  ];
}

function memoryLines(results: BenchResults): string[] {
  const m = results.memory;
  if ('error' in m) return ['Memory', `  FAILED: ${m.error}`];
  const mib = (v: number) => `${v.toFixed(1)} MiB`;
  return [
    `Memory, server preloading ${m.preloaded.join(', ')}; ${m.runners} idle runners alive at once`,
    `  server RSS   ${mib(m.serverRssMiB)}`,
    `  runner USS   mean ${mib(m.ussMiB.mean)}, max ${mib(m.ussMiB.max)}  (private pages: what one more runner costs)`,
    `  runner PSS   mean ${mib(m.pssMiB.mean)}, max ${mib(m.pssMiB.max)}  (with its share of the warm heap)`,
  ];
}

export function targetLine(t: TargetResult): string {
  const verdict = t.pass === null ? 'SKIP' : t.pass ? 'PASS' : 'MISS';
  const value = t.value === null ? 'not measured' : t.unit === '×' ? times(t.value) : `${t.value.toFixed(1)} ${t.unit}`;
  const limit = t.unit === '×' ? `${t.limit}×` : `${t.limit} ${t.unit}`;
  return `  ${verdict}  ${`${t.name} ${t.comparison} ${limit}`.padEnd(58)} ${value}${t.note ? `  (${t.note})` : ''}`;
}

function otherWorkWarning(results: BenchResults): string[] {
  const percent = results.machine.otherCpuPercent;
  if (percent === undefined || percent < 5) return [];
  return [`note: other processes used ${percent.toFixed(0)}% of the machine's CPU during the run: figures are inflated and noisier`];
}

export function formatReport(results: BenchResults): string {
  const m = results.machine;
  return [
    `warmlua bench, ${m.date.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}${results.quick ? ' (--quick: few runs, small files)' : ''}`,
    `${m.cpuModel}, ${m.cores} cores, ${m.kernel}, node ${m.node}, ` +
      (m.hyperfine ? `timed by hyperfine ${m.hyperfine}` : 'timed by node (no hyperfine)'),
    ...otherWorkWarning(results),
    '',
    ...latencyTable(results),
    '',
    ...throughputLines(results),
    '',
    ...memoryLines(results),
    '',
    'Targets (issue 5)',
    ...results.targets.map(targetLine),
    '',
  ].join('\n');
}
