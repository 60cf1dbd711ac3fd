// The bench's own warmluad, on a socket in a fresh temporary directory, so a
// server the user runs on the default socket is never touched or measured.
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { onCleanup, sleep } from './cleanup.js';

export interface ServerOptions {
  root: string;
  /** Directory for the socket (the caller's temporary directory). */
  dir: string;
  preload: string[];
  luaPath?: string;
}

export interface BenchServer {
  pid: number;
  socket: string;
  stop(): Promise<void>;
}

/** Processes whose parent is `pid`, from /proc/PID/stat (field 4). */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // The command name in parentheses may hold spaces: split after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === pid) children.push(Number(entry));
  }
  return children;
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export async function startServer(options: ServerOptions): Promise<BenchServer> {
  const socket = path.join(options.dir, `warmluad-${Date.now()}-${process.pid}.sock`);
  // It logs a line per run. To a file, not a pipe: a pipe woke the bench
  // itself at every run it measured, on the cores the run needed.
  const logFile = `${socket}.log`;
  const log = () => {
    try {
      return fs.readFileSync(logFile, 'utf8').slice(-4000);
    } catch {
      return ''; // not created yet
    }
  };
  const args = ['--socket', socket, '--drain-timeout', '2'];
  if (options.preload.length) args.push('--preload', options.preload.join(','));
  if (options.luaPath) args.push('--lua-path', options.luaPath);
  const child = execa(path.join(options.root, 'bin/warmluad'), args, {
    reject: false,
    buffer: false,
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: { file: logFile },
  });
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      const runners = child.pid ? childrenOf(child.pid) : [];
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await child;
      clearTimeout(timer);
      // Runners outlive a killed server (they have their own session).
      for (const pid of runners) killQuietly(pid, 'SIGKILL');
      fs.rmSync(socket, { force: true });
      fs.rmSync(logFile, { force: true });
    })());
  onCleanup(stop);

  const deadline = Date.now() + 30_000;
  while (!log().includes('listening on')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const tail = log();
      await stop();
      throw new Error(`warmluad did not start:\n${tail}`);
    }
    await sleep(20);
  }
  if (child.pid === undefined) throw new Error('warmluad has no pid');
  return { pid: child.pid, socket, stop };
}
