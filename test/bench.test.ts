// npm run bench --quick end to end: it must finish and report every figure
// for every path and workload. Speed is never asserted here (a loaded CI
// machine would fail it); the targets are for people to read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type { BenchResults } from '../scripts/results.js';
import { root, tempDir } from './harness.js';

const isFigure = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;

test('bench --quick reports every path, workload and figure', { timeout: 180_000 }, async () => {
  const dir = tempDir('warmlua-bench-test-');
  const jsonFile = path.join(dir, 'results.json');
  const svgFile = path.join(dir, 'chart.svg');
  const r = await execa('node', ['dist/scripts/bench.js', '--quick', '--json', jsonFile, '--svg', svgFile], {
    cwd: root,
    reject: false,
    timeout: 170_000,
  });
  assert.equal(r.exitCode, 0, String(r.stderr));
  const results = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as BenchResults;

  assert.ok(results.machine.cpuModel && results.machine.cores > 0 && results.machine.node && results.machine.date);
  const paths = results.paths.map((p) => p.name);
  for (const name of ['warmlua-cold', 'warmlua', 'warmlua-js']) assert.ok(paths.includes(name), name);
  const workloads = results.workloads.map((w) => w.name);
  for (const name of ['hello', 'bigmodule', 'stdin', 'readall', 'lines']) assert.ok(workloads.includes(name), name);
  if (fs.existsSync('/usr/share/lua/5.3/dkjson.lua')) assert.ok(workloads.includes('modules'));

  for (const workload of results.workloads) {
    for (const p of workload.paths) {
      const cell = results.latency.find((c) => c.workload === workload.name && c.path === p);
      assert.ok(cell?.stats, `${workload.name} via ${p}: ${cell?.error ?? 'missing'}`);
      for (const figure of ['p50', 'p90', 'p99'] as const) assert.ok(isFigure(cell.stats[figure]), `${workload.name} ${p} ${figure}`);
      assert.ok(cell.timesMs && cell.timesMs.length > 0);
      assert.ok(isFigure(cell.ratioToCold));
      if (paths.includes(workload.baseline)) assert.ok(isFigure(cell.ratioToBaseline));
    }
  }

  assert.deepEqual(results.throughput.map((t) => t.concurrency), [1, 8, 32]);
  for (const t of results.throughput) assert.ok(isFigure(t.runsPerSecond) && isFigure(t.failures), `concurrency ${t.concurrency}`);

  assert.ok(!('error' in results.memory), 'error' in results.memory ? results.memory.error : '');
  const memory = results.memory;
  assert.equal(memory.runners, 20);
  for (const figure of [memory.serverRssMiB, memory.ussMiB.mean, memory.ussMiB.max, memory.pssMiB.mean, memory.pssMiB.max]) {
    assert.ok(isFigure(figure) && figure > 0);
  }

  assert.equal(results.targets.length, 8);
  assert.match(String(r.stdout), /Targets/);
  assert.match(fs.readFileSync(svgFile, 'utf8'), /^<svg [^]*<\/svg>\n$/);
});
