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

export interface CpuSnapshot {
  /** All CPUs' time, busy or idle, in clock ticks. */
  total: number;
  busy: number;
  /** This process's and its waited-for descendants' time (servers, once
   * stopped, bring their runners' time with them). */
  ours: number;
}

export function cpuSnapshot(): CpuSnapshot {
  // cpu  user nice system idle iowait irq softirq steal ...
  const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  // utime stime cutime cstime are fields 14-17; count after the ')' of the name.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
  const ours = fields[11] + fields[12] + fields[13] + fields[14];
  return { total, busy: total - cpu[3] - cpu[4], ours };
}

export function otherCpuPercent(before: CpuSnapshot, after: CpuSnapshot): number {
  const others = after.busy - before.busy - (after.ours - before.ours);
  return (100 * Math.max(0, others)) / (after.total - before.total);
}

/** Whether `command` is found on PATH (lua5.4 and lua5.3 are optional). */
export async function onPath(command: string): Promise<boolean> {
  const r = await execa('sh', ['-c', 'command -v "$1"', 'sh', command], { reject: false });
  return r.exitCode === 0;
}
