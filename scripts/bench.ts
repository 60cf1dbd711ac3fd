// npm run bench [-- --quick] [--json FILE] [--svg FILE]
// Measures, in one run, start-up latency of lua5.x, warmlua-cold, warmlua and
// warmlua-js over a few workloads, throughput and memory of the server, and
// checks issue 5's targets. Everything runs against the bench's own servers
// on temporary sockets; nothing touches the network.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cleanUp, cleanUpOnSignals, onCleanup } from './cleanup.js';
import { cpuSnapshot, describeMachine, onPath, otherCpuPercent } from './machine.js';
import { measureWorkload, stepsFor } from './latency.js';
import { measureMemory } from './memory.js';
import { formatReport } from './report.js';
import type { BenchResults, LatencyCell, MemoryFigures, PathInfo, ThroughputFigure } from './results.js';
import { startServer } from './server.js';
import { renderSvg } from './svg.js';
import { checkTargets } from './targets.js';
import { measureThroughput } from './throughput.js';
import { BIG_MODULE, LUA53_DEFAULT_PATH, REAL_MODULES, realModulesInstalled, writeWorkloads, type Workload } from './workloads.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = (name: string) => path.join(root, 'bin', name);

const USAGE = `usage: npm run bench -- [--quick] [--json FILE] [--svg FILE]
  --quick      a short smoke run: few runs, 1 MB files (well under a minute)
  --json FILE  where to write the figures (default bench-results/latest.json)
  --svg FILE   where to write the latency chart (default bench-results/latest.svg)`;

interface Options {
  quick: boolean;
  jsonFile: string;
  svgFile: string;
}

/** How long to spend on each path × workload, and the bounds on its runs. */
interface Effort {
  cellBudgetMs: number;
  minRuns: number;
  maxRuns: number;
  /** Latency runs are spread over this many rounds through all paths. */
  rounds: number;
  throughputSeconds: number;
  dataBytes: number;
  idleRunners: number;
}

const FULL: Effort = { cellBudgetMs: 2500, minRuns: 10, maxRuns: 300, rounds: 5, throughputSeconds: 3, dataBytes: 10 * 2 ** 20, idleRunners: 20 };
const QUICK: Effort = { cellBudgetMs: 250, minRuns: 3, maxRuns: 20, rounds: 1, throughputSeconds: 0.5, dataBytes: 2 ** 20, idleRunners: 20 };

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'string', default: path.join(root, 'bench-results/latest.json') },
      svg: { type: 'string', default: path.join(root, 'bench-results/latest.svg') },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  return { quick: values.quick, jsonFile: path.resolve(values.json), svgFile: path.resolve(values.svg) };
}

/** One line on stderr, rewritten in place on a terminal. */
class Progress {
  private done = 0;
  private readonly began = Date.now();
  constructor(private readonly total: number) {}

  step(text: string): void {
    this.done++;
    const seconds = ((Date.now() - this.began) / 1000).toFixed(0);
    this.show(`[${this.done}/${this.total}, ${seconds} s] ${text}`);
  }

  show(text: string): void {
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text.slice(0, (process.stderr.columns ?? 80) - 1)}`);
    else process.stderr.write(`${text}\n`);
  }

  clear(): void {
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  }
}

/** The caller's environment without what would change how lua starts. */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !/^(LUA_(INIT|PATH|CPATH)|WARMLUA_)/.test(key)) env[key] = value;
  }
  return { ...env, ...extra };
}

function addRatios(cells: LatencyCell[], baselineOf: Map<string, string>): void {
  const median = (workload: string, p: string) =>
    cells.find((c) => c.workload === workload && c.path === p)?.stats?.p50;
  for (const cell of cells) {
    if (!cell.stats) continue;
    const baseline = median(cell.workload, baselineOf.get(cell.workload) ?? '');
    const cold = median(cell.workload, 'warmlua-cold');
    if (baseline) cell.ratioToBaseline = cell.stats.p50 / baseline;
    if (cold) cell.ratioToCold = cell.stats.p50 / cold;
  }
}

async function run(options: Options): Promise<BenchResults> {
  const effort = options.quick ? QUICK : FULL;
  const machine = await describeMachine();
  const cpuAtStart = cpuSnapshot();
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warmlua-bench-'));
  onCleanup(() => fs.rmSync(tmpDir, { recursive: true, force: true }));

  const workloads = writeWorkloads({ dir: tmpDir, dataBytes: effort.dataBytes, bigModuleFunctions: 400 });
  const idleDir = path.join(tmpDir, 'idle');
  fs.mkdirSync(idleDir);
  const idleScript = path.join(idleDir, 'idle.lua');
  fs.writeFileSync(idleScript, 'io.read("a")\nio.write("done")\n');

  const paths: PathInfo[] = [];
  for (const lua of ['lua5.4', 'lua5.3']) if (await onPath(lua)) paths.push({ name: lua, command: [lua] });
  paths.push(
    { name: 'warmlua-cold', command: [bin('warmlua-cold')] },
    { name: 'warmlua', command: [bin('warmlua')] },
    { name: 'warmlua-js', command: [bin('warmlua-js')] },
  );
  const has = (name: string) => paths.some((p) => p.name === name);
  const baselineOf = new Map(
    workloads.map((w) => [w.name, has(w.baseline) ? w.baseline : w.baseline === 'lua5.4' ? 'lua5.3' : 'lua5.4']),
  );
  const pathsFor = (w: Workload) => paths.filter((p) => !(w.needs53Modules && p.name === 'lua5.4'));

  const latencySteps = workloads.reduce((n, w) => n + stepsFor(pathsFor(w).length, effort), 0);
  const progress = new Progress(latencySteps + 3 + 1);
  const realModules = realModulesInstalled() ? REAL_MODULES : [];
  const luaPath = `${tmpDir}/?.lua;;`;
  // warmluad's --lua-path does not expand ";;" (yet): spell out the 5.3 default.
  const serverLuaPath = `${tmpDir}/?.lua;${LUA53_DEFAULT_PATH}`;

  progress.show('starting warmluad');
  const server = await startServer({ root, dir: tmpDir, preload: [...realModules, BIG_MODULE], luaPath: serverLuaPath });
  // lua5.x and warmlua-cold find the generated module through LUA_PATH.
  const env = cleanEnv({ WARMLUA_SOCKET: server.socket, WARMLUA_FALLBACK: 'none', LUA_PATH: luaPath });

  const latency: LatencyCell[] = [];
  const latencyOptions = {
    ...effort,
    env,
    useHyperfine: machine.hyperfine !== null,
    tmpDir,
    onStep: (text: string) => progress.step(text),
  };
  for (const workload of workloads) latency.push(...(await measureWorkload(workload, pathsFor(workload), latencyOptions)));
  addRatios(latency, baselineOf);

  const throughput: ThroughputFigure[] = [];
  const helloMs = latency.find((c) => c.workload === 'hello' && c.path === 'warmlua')?.stats?.p50 ?? 10;
  const hello = workloads.find((w) => w.name === 'hello')!;
  for (const concurrency of [1, 8, 32]) {
    progress.step(`throughput · concurrency ${concurrency} · ${effort.throughputSeconds} s`);
    // A first guess from the latency; measureThroughput corrects it.
    const expectedRate = (1000 / helloMs) * Math.min(concurrency, machine.cores);
    throughput.push(
      await measureThroughput({
        shim: bin('warmlua'),
        script: hello.script,
        env,
        concurrency,
        seconds: effort.throughputSeconds,
        firstBatch: Math.round(expectedRate * effort.throughputSeconds * 0.5),
      }),
    );
  }
  await server.stop();

  // Memory gets a server of its own preloading just the three modules, as
  // the target states (the generated module only when they are missing).
  progress.step(`memory · ${effort.idleRunners} idle runners`);
  let memory: MemoryFigures | { error: string };
  const preloaded = realModules.length ? realModules : [BIG_MODULE];
  try {
    const memoryServer = await startServer({ root, dir: tmpDir, preload: preloaded, luaPath: serverLuaPath });
    memory = await measureMemory({
      server: memoryServer,
      preloaded,
      shim: bin('warmlua'),
      idleScript,
      cwd: idleDir,
      env: { ...env, WARMLUA_SOCKET: memoryServer.socket },
      runners: effort.idleRunners,
    });
    await memoryServer.stop();
  } catch (error) {
    memory = { error: (error as Error).message };
  }
  progress.clear();

  const workloadInfo = workloads.map((w) => ({
    name: w.name,
    description: w.description,
    baseline: baselineOf.get(w.name)!,
    paths: pathsFor(w).map((p) => p.name),
  }));
  machine.otherCpuPercent = otherCpuPercent(cpuAtStart, cpuSnapshot());
  const figures = { version: 1 as const, quick: options.quick, machine, paths, workloads: workloadInfo, latency, throughput, memory };
  return { ...figures, targets: checkTargets(figures) };
}

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

async function main(): Promise<void> {
  const options = parseOptions();
  cleanUpOnSignals();
  let results: BenchResults;
  try {
    results = await run(options);
  } finally {
    await cleanUp();
  }
  write(options.jsonFile, `${JSON.stringify(results, null, 1)}\n`);
  write(options.svgFile, renderSvg(results));
  process.stdout.write(formatReport(results));
  process.stdout.write(`\nfigures: ${path.relative(process.cwd(), options.jsonFile)}, chart: ${path.relative(process.cwd(), options.svgFile)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`\nbench: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
