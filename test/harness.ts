// What every test needs: a real warmluad on a temporary socket, and ways to
// run one script through lua5.3, the native shim, the JS client and the
// cold path, so that outputs can be compared byte for byte.
import { execa, type ResultPromise } from 'execa';
import { after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StatusReport } from '../server/status.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Until `predicate` holds, or fails the test after `ms`. */
export async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const bin = (name: string): string => path.join(root, 'bin', name);

export interface Outcome {
  stdout: string;
  stderr: string;
  /** Exit status as a shell reports it: 128+N for a death by signal N. */
  status: number;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: Record<string, string>;
  cwd?: string;
  /** Keep the caller's environment (default) or start from `env` alone. */
  extendEnv?: boolean;
  timeoutMs?: number;
}

/** A fresh temporary directory, removed when the process exits. */
export function tempDir(prefix = 'warmlua-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function writeScript(dir: string, name: string, source: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, source);
  return file;
}

const signalNumbers = os.constants.signals as Record<string, number>;

async function outcome(child: ResultPromise): Promise<Outcome> {
  const r = await child;
  const status = r.signal ? 128 + signalNumbers[r.signal] : (r.exitCode ?? -1);
  return { stdout: String(r.stdout), stderr: String(r.stderr), status };
}

/** Starts `file args` with the test's options; outputs are not decoded as lines. */
export function start(file: string, args: string[], options: RunOptions = {}): ResultPromise {
  return execa(file, args, {
    input: options.input,
    env: options.env,
    extendEnv: options.extendEnv ?? true,
    cwd: options.cwd,
    reject: false,
    stripFinalNewline: false,
    timeout: options.timeoutMs ?? 30_000,
  });
}

export const runLua53 = (args: string[], o?: RunOptions) => outcome(start('lua5.3', args, o));
export const runCold = (args: string[], o?: RunOptions) => outcome(start(bin('warmlua-cold'), args, o));

/** Through the native shim, with no fallback, so a server failure shows. */
export function runShim(socket: string, args: string[], o: RunOptions = {}): Promise<Outcome> {
  const env = { WARMLUA_SOCKET: socket, WARMLUA_FALLBACK: 'none', ...o.env };
  return outcome(start(bin('warmlua'), args, { ...o, env }));
}

export function runJs(socket: string, args: string[], o: RunOptions = {}): Promise<Outcome> {
  return outcome(start(bin('warmlua-js'), args, { ...o, env: { WARMLUA_SOCKET: socket, ...o.env } }));
}

/** lua.c prints its progname (argv[0]) in errors; make them comparable. */
export function normaliseProgname(o: Outcome, progname: string): Outcome {
  return { ...o, stderr: o.stderr.split(progname).join('lua5.3') };
}

export function assertSameOutcome(actual: Outcome, expected: Outcome, what = ''): void {
  assert.deepEqual(actual, expected, what);
}

export interface Server {
  socket: string;
  process: ResultPromise;
  /** Lines the server logged on stderr so far. */
  log(): string;
  /** What the server wrote on its stdout so far (it should write nothing). */
  stdout(): string;
  stop(): Promise<void>;
}

/** Starts a real bin/warmluad on a fresh socket and waits until it accepts. */
export async function startServer(args: string[] = [], env: Record<string, string> = {}): Promise<Server> {
  const socket = path.join(tempDir('warmlua-sock-'), 'warmlua.sock');
  const child = execa(bin('warmluad'), ['--socket', socket, ...args], {
    env,
    reject: false,
    buffer: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  let log = '';
  let stdout = '';
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const deadline = Date.now() + 20_000;
  while (!log.includes('listening on')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`warmluad did not start:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    socket,
    process: child,
    log: () => log,
    stdout: () => stdout,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await child;
      clearTimeout(timer);
    },
  };
}

/** Any command, with the same options and outcome as the runners above. */
export const run = (file: string, args: string[], o?: RunOptions) => outcome(start(file, args, o));

/** `warmluad status` of a running server: its text, or (`json`) its JSON. */
export async function serverStatus(server: Server, json = true): Promise<string> {
  const outcome = await run(bin('warmluad'), ['status', '--socket', server.socket, ...(json ? ['--json'] : [])]);
  assert.equal(outcome.status, 0, outcome.stderr);
  return outcome.stdout;
}

export const statusReport = async (server: Server) => JSON.parse(await serverStatus(server)) as StatusReport;

/** A startServer whose servers are all stopped once the calling test file's
 * tests are done; call it at the file's top level. `defaultArgs` come first. */
export function serverStarter(
  defaultArgs: string[] = [],
): (args?: string[], env?: Record<string, string>) => Promise<Server> {
  const servers: Server[] = [];
  after(async () => {
    const running = servers.filter((s) => s.process.exitCode === null && s.process.signalCode === null);
    await Promise.all(running.map((s) => s.stop()));
  });
  return async (args = [], env = {}) => {
    const server = await startServer([...defaultArgs, ...args], env);
    servers.push(server);
    return server;
  };
}
