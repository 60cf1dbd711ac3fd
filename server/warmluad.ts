// warmluad: reads its configuration, builds the warm Lua state, claims the
// socket and serves until SIGTERM or SIGINT. Exit codes follow s6's
// conventions: 0 after a clean stop, 100 for a usage or configuration error,
// 111 when the system refuses (socket in use, cannot listen).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { native } from './native.js';
import { defaultSocketPath } from './protocol.js';
import { Server } from './server.js';
import { createLuaState } from './warm.js';
import { BUILTIN_WARMUP, warmUp } from './warmup.js';

const USAGE = `usage: warmluad [options]
  --socket PATH         Unix socket to listen on (default: ${defaultSocketPath()})
  --preload a,b,c       Lua modules to require once, before serving
  --lua-path PATH       package.path while preloading (";;" adds the default)
  --warmup FILE         Lua chunk run before serving so V8 compiles fengari once
                        (default: the built-in server/lua/warmup.lua; "none" to skip)
  --config FILE         JSON file with any of: socket, preload, luaPath, warmup,
                        drainTimeout, spares
  --drain-timeout SECS  on SIGTERM, how long running scripts may finish (default 10)
  --spares N            runners forked ahead of demand (default 2)
  -h, --help            this text`;

class UsageError extends Error {}

interface Config {
  socket: string;
  preload: string[];
  luaPath?: string;
  warmup: string;
  drainTimeoutMs: number;
  spares: number;
}

const configKeys = ['socket', 'preload', 'luaPath', 'warmup', 'drainTimeout', 'spares'];

function readConfigFile(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`cannot read config ${file}: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`config ${file}: expected a JSON object`);
  }
  const unknown = Object.keys(parsed).filter((k) => !configKeys.includes(k));
  if (unknown.length) throw new UsageError(`config ${file}: unknown key ${unknown.join(', ')}`);
  return parsed as Record<string, unknown>;
}

function asModuleList(value: unknown): string[] {
  const list = typeof value === 'string' ? value.split(',') : value;
  if (!Array.isArray(list) || list.some((m) => typeof m !== 'string')) {
    throw new UsageError('preload: expected a comma-separated string or an array of module names');
  }
  return list.map((m: string) => m.trim()).filter((m) => m !== '');
}

function asSeconds(value: unknown, what: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 0) throw new UsageError(`${what}: expected seconds, got ${value}`);
  return seconds * 1000;
}

function asCount(value: unknown, what: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 0 || count > 64) throw new UsageError(`${what}: expected 0 to 64, got ${value}`);
  return count;
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  throw new UsageError(`${what}: expected a string`);
}

/** Command-line options win over the config file, which wins over defaults. */
export function parseConfig(args: string[]): Config {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      options: {
        socket: { type: 'string' },
        preload: { type: 'string' },
        'lua-path': { type: 'string' },
        warmup: { type: 'string' },
        config: { type: 'string' },
        'drain-timeout': { type: 'string' },
        spares: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const cli = parsed.values;
  if (cli.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const file = cli.config ? readConfigFile(cli.config) : {};
  return {
    socket: path.resolve(optionalString(cli.socket ?? file.socket, 'socket') ?? defaultSocketPath()),
    preload: asModuleList(cli.preload ?? file.preload ?? []),
    luaPath: optionalString(cli['lua-path'] ?? file.luaPath, 'luaPath'),
    warmup: optionalString(cli.warmup ?? file.warmup, 'warmup') ?? BUILTIN_WARMUP,
    drainTimeoutMs: asSeconds(cli['drain-timeout'] ?? file.drainTimeout ?? 10, 'drain timeout'),
    spares: asCount(cli.spares ?? file.spares ?? 2, 'spares'),
  };
}

class SystemError extends Error {}

/** Makes the default directory (0700) if needed; refuses a live server's socket,
 * replaces a stale one. */
function claimSocketPath(socketPath: string): void {
  const dir = path.dirname(socketPath);
  if (!fs.existsSync(dir)) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!fs.existsSync(socketPath)) return;
  if (!fs.lstatSync(socketPath).isSocket()) {
    throw new SystemError(`${socketPath} exists and is not a socket`);
  }
  try {
    native.close(native.connect(socketPath));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ECONNREFUSED') {
      throw new SystemError(`cannot check ${socketPath}: ${(error as Error).message}`);
    }
    fs.unlinkSync(socketPath); // nobody answers: left behind by a dead server
    return;
  }
  throw new SystemError(`another warmluad is already listening on ${socketPath}`);
}

function log(line: string): void {
  fs.writeSync(2, `warmluad: ${line}\n`);
}

/** Closes the descriptors bin/warmluad held while node started. */
function releaseHeldFds(): void {
  for (const fd of (process.env.WARMLUA_HELD_FDS ?? '').split(' ').filter(Boolean)) native.close(Number(fd));
  delete process.env.WARMLUA_HELD_FDS;
}

function main(): void {
  releaseHeldFds();
  let config: Config;
  try {
    config = parseConfig(process.argv.slice(2));
  } catch (error) {
    log((error as Error).message);
    fs.writeSync(2, `${USAGE}\n`);
    process.exit(100);
  }
  const began = process.hrtime.bigint();
  let L;
  try {
    L = createLuaState({ preload: config.preload, luaPath: config.luaPath });
    if (config.warmup !== 'none') warmUp(config.warmup);
  } catch (error) {
    log((error as Error).message);
    process.exit(100);
  }
  let listenFd: number;
  try {
    claimSocketPath(config.socket);
    listenFd = native.listen(config.socket, 511);
    fs.chmodSync(config.socket, 0o600);
  } catch (error) {
    log((error as Error).message);
    process.exit(111);
  }
  const server = new Server(L, listenFd, log, config.spares);
  const warmMs = Number(process.hrtime.bigint() - began) / 1e6;
  log(
    `listening on ${config.socket} (pid ${process.pid}, warm in ${warmMs.toFixed(0)}ms, ` +
      `preloaded: ${config.preload.join(',') || 'nothing'})`,
  );

  const stop = (signal: string) => {
    log(`${signal}: no longer accepting; ${server.activeRuns} run(s) to finish`);
    fs.rmSync(config.socket, { force: true }); // a new server may start at once
    const timer = setTimeout(() => {
      log('drain timeout: killing the remaining runs');
      server.killAll();
    }, config.drainTimeoutMs);
    server.stopAccepting(() => {
      clearTimeout(timer);
      log('stopped');
      process.exit(0);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main();
