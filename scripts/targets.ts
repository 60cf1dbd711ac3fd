// Issue 5's targets, checked against one run's figures. A figure that could
// not be measured here (no lua5.4, no Debian modules) is neither PASS nor MISS.
import type { BenchResults, LatencyCell, TargetResult } from './results.js';

type Figures = Omit<BenchResults, 'targets'>;

function cell(results: Figures, workload: string, path: string): LatencyCell | undefined {
  return results.latency.find((c) => c.workload === workload && c.path === path && c.stats);
}

function ratio(results: Figures, workload: string, path: string, baseline: string): number | null {
  const a = cell(results, workload, path)?.stats?.p50;
  const b = cell(results, workload, baseline)?.stats?.p50;
  return a !== undefined && b !== undefined ? a / b : null;
}

function target(
  name: string,
  value: number | null,
  comparison: '<=' | '>=',
  limit: number,
  unit: string,
  note?: string,
): TargetResult {
  const pass = value === null ? null : comparison === '<=' ? value <= limit : value >= limit;
  return { name, value, comparison, limit, unit, pass, ...(note ? { note } : {}) };
}

export function checkTargets(results: Figures): TargetResult[] {
  const c8 = results.throughput.find((t) => t.concurrency === 8);
  const memory = 'error' in results.memory ? undefined : results.memory;
  // Says the file's size, which --quick makes smaller than the target's 10 MB.
  const describe = (workload: string) => results.workloads.find((w) => w.name === workload)?.description ?? workload;
  const threeModules = ['dkjson', 'inspect', 'argparse'].every((m) => memory?.preloaded.includes(m));
  return [
    target('hello.lua via warmlua vs lua5.4', ratio(results, 'hello', 'warmlua', 'lua5.4'), '<=', 2.0, '×'),
    target('dkjson+inspect+argparse via warmlua vs lua5.3', ratio(results, 'modules', 'warmlua', 'lua5.3'), '<=', 1.0, '×'),
    target('warmlua-cold / warmlua on hello.lua', ratio(results, 'hello', 'warmlua-cold', 'warmlua'), '>=', 40, '×'),
    target(
      'throughput at concurrency 8, zero failures',
      c8 && c8.failures === 0 ? c8.runsPerSecond : null,
      '>=',
      300,
      'runs/s',
      c8 && c8.failures > 0 ? `${c8.failures} failures` : undefined,
    ),
    target('USS per concurrent idle runner (mean)', memory?.ussMiB.mean ?? null, '<=', 4, 'MiB'),
    target(
      'server RSS with the three modules preloaded',
      threeModules ? memory!.serverRssMiB : null,
      '<=',
      120,
      'MiB',
      memory && !threeModules ? 'the Debian modules are not installed' : undefined,
    ),
    target(`${describe('readall')} via warmlua vs lua5.3`, ratio(results, 'readall', 'warmlua', 'lua5.3'), '<=', 3, '×'),
    target(`${describe('lines')} via warmlua vs lua5.3`, ratio(results, 'lines', 'warmlua', 'lua5.3'), '<=', 15, '×'),
  ];
}
