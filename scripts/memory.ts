// Memory: the server's RSS once warm, and what each runner costs on top of
// it while many sit idle at once. A runner is a copy-on-write fork, so RSS
// would count the shared warm heap in every runner; USS (its private pages)
// is what one more runner really costs, PSS its fair share of the rest.
import { execa, type ResultPromise } from 'execa';
import fs from 'node:fs';
import { sleep } from './cleanup.js';
import type { MemoryFigures } from './results.js';
import { childrenOf, type BenchServer } from './server.js';

const KIB_PER_MIB = 1024;

function statusKiB(pid: number, field: string): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]);
}

function smapsRollupKiB(pid: number): Record<string, number> {
  const fields: Record<string, number> = {};
  for (const line of fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n')) {
    const match = /^(\w+):\s+(\d+) kB/.exec(line);
    if (match) fields[match[1]] = Number(match[2]);
  }
  return fields;
}

const cwdOf = (pid: number): string | undefined => {
  try {
    return fs.readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return undefined; // gone meanwhile
  }
};

const meanAndMax = (values: number[]) => ({
  mean: values.reduce((a, b) => a + b, 0) / values.length,
  max: Math.max(...values),
});

export interface MemoryOptions {
  server: BenchServer;
  preloaded: string[];
  shim: string;
  /** A script that blocks reading stdin until the bench closes it. */
  idleScript: string;
  /** A directory of its own, for the idle clients to run in. */
  cwd: string;
  env: Record<string, string>;
  runners: number;
}

export async function measureMemory(options: MemoryOptions): Promise<MemoryFigures> {
  const { server } = options;
  const serverRssMiB = statusKiB(server.pid, 'VmRSS') / KIB_PER_MIB;
  const clients: ResultPromise[] = [];
  try {
    for (let i = 0; i < options.runners; i++) {
      clients.push(
        execa(options.shim, [options.idleScript], {
          cwd: options.cwd,
          env: options.env,
          extendEnv: false,
          stdin: 'pipe',
          reject: false,
          timeout: 60_000,
        }),
      );
    }
    // A runner takes its client's working directory: that tells the runners
    // serving these clients from spare or unrelated children of the server.
    const deadline = Date.now() + 20_000;
    let runners: number[] = [];
    while (Date.now() < deadline) {
      runners = childrenOf(server.pid).filter((pid) => cwdOf(pid) === options.cwd);
      if (runners.length >= options.runners) break;
      await sleep(50);
    }
    if (runners.length < options.runners) {
      throw new Error(`only ${runners.length} of ${options.runners} runners started`);
    }
    await sleep(300); // let them finish starting and settle into the read
    const rollups = runners.map(smapsRollupKiB);
    return {
      preloaded: options.preloaded,
      serverRssMiB,
      runners: runners.length,
      ussMiB: meanAndMax(rollups.map((r) => (r.Private_Clean + r.Private_Dirty) / KIB_PER_MIB)),
      pssMiB: meanAndMax(rollups.map((r) => r.Pss / KIB_PER_MIB)),
    };
  } finally {
    for (const client of clients) client.stdin?.end();
    const outcomes = await Promise.all(clients);
    const failed = outcomes.filter((r) => r.exitCode !== 0 || r.stdout !== 'done');
    if (failed.length) process.stderr.write(`bench: ${failed.length} idle runner(s) did not end cleanly\n`);
  }
}
