// What the figures were measured on: they mean little without it.
import { execa } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import type { Machine } from './results.js';

function cpuModel(): string {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  return /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
}

/** The installed hyperfine's version, or null when there is none. */
export async function hyperfineVersion(): Promise<string | null> {
  const r = await execa('hyperfine', ['--version'], { reject: false });
  return r.exitCode === 0 ? String(r.stdout).replace(/^hyperfine\s*/, '').trim() : null;
}

export async function describeMachine(): Promise<Machine> {
  return {
    date: new Date().toISOString(),
    cpuModel: cpuModel(),
    cores: os.availableParallelism(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    hyperfine: await hyperfineVersion(),
  };
}

/** Whether `command` is found on PATH (lua5.4 and lua5.3 are optional). */
export async function onPath(command: string): Promise<boolean> {
  const r = await execa('sh', ['-c', 'command -v "$1"', 'sh', command], { reject: false });
  return r.exitCode === 0;
}
