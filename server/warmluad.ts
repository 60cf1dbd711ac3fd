// warmluad: reads its configuration, builds the warm Lua state, claims the
// socket and serves until SIGTERM or SIGINT; SIGHUP, or a change to any
// file read while warming (server/freshness.ts), re-reads the configuration
// and re-warms. `warmluad status` asks a running server
// instead (server/status.ts). Exit codes follow s6's
// conventions: 0 after a clean stop, 100 for a usage or configuration error,
// 111 when the system refuses (socket in use or another user's, cannot listen).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { native } from './native.js';
import { defaultSocketPath } from './protocol.js';
import { Server, type LogEntry, type ServerOptions, type WarmState } from './server.js';
import { Snapshot, watchSnapshot } from './freshness.js';
import { statusMain } from './status.js';
import { setWarmTimeout } from './deadline.js';
import { PreloadError, createLuaState } from './warm.js';
import { BUILTIN_WARMUP, warmAfterRebuild, warmAround } from './warmup.js';

const USAGE = `usage: warmluad [options]
       warmluad status [--socket PATH] [--json]   (ask a running server)
  --socket PATH         Unix socket to listen on (default: ${defaultSocketPath()})
  --preload a,b,c       Lua modules to require once, before serving
  --lua-path PATH       package.path while preloading (";;" adds the default)
  --warmup FILE         Lua chunk run before serving so V8 compiles fengari once
                        (default: the built-in server/lua/warmup.lua; "none" to skip)
  --warm-timeout SECS   stop, with an error, a preloaded module's loading or a run
                        of the warm-up that takes longer (default 30; 0: no limit)
  --config FILE         JSON file with any of: socket, preload, luaPath, warmup,
                        warmTimeout, drainTimeout, spares, allowUid, allowGid,
                        requestTimeout, notifyFd, logFormat, maxRunners, queueSize,
                        queueTimeout, maxRuntime, asPeer; SIGHUP or an edit re-reads it
                        (options given here win)
  --drain-timeout SECS  on SIGTERM, how long running scripts may finish (default 10)
  --spares N            runners forked ahead of demand (default 4)
  --max-runners N       runs at once (default 64); more wait in the queue
  --queue-size N        requests that may wait for a runner (default 256); beyond,
                        the client gets BUSY and the shim runs the script cold
  --queue-timeout SECS  how long a request may wait before BUSY (default 5)
  --max-runtime SECS    kill a run's process group (SIGKILL) after this long and
                        say so on its stderr; the client ends as killed by
                        signal 9, 137 (default: no limit)
  --allow-uid N[,N]     also serve clients with these uids (default: only the
                        server's own uid)
  --allow-gid N[,N]     also serve clients with one of these gids, primary or
                        supplementary
  --as-peer             (root only) run each script as its client: the peer's
                        uid, gid and supplementary groups
  --request-timeout SECS  drop a client that has not sent its request by then
                        (default 10)
  --notify-fd N         once serving, write a newline to fd N and close it (s6);
                        with NOTIFY_SOCKET set, READY=1 goes there too (systemd)
  --log-format FORMAT   text (default) or json: one JSON object per line
  -h, --help            this text`;

class UsageError extends Error {}

interface Config extends ServerOptions {
  socket: string;
  preload: string[];
  luaPath?: string;
  warmup: string;
  warmTimeoutMs: number;
  drainTimeoutMs: number;
  notifyFd?: number;
  logFormat: LogFormat;
}

type LogFormat = 'text' | 'json';

const configKeys = [
  'socket',
  'preload',
  'luaPath',
  'warmup',
  'warmTimeout',
  'drainTimeout',
  'spares',
  'allowUid',
  'allowGid',
  'requestTimeout',
  'notifyFd',
  'logFormat',
  'maxRunners',
  'queueSize',
  'queueTimeout',
  'maxRuntime',
  'asPeer',
];

function readConfigFile(file: string, snapshot?: Snapshot): Record<string, unknown> {
  snapshot?.add(file);
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

/** A timeout of 0 would drop every client before it could speak. */
function asPositiveSeconds(value: unknown, what: string): number {
  const ms = asSeconds(value, what);
  if (ms === 0) throw new UsageError(`${what}: expected more than 0 seconds`);
  return ms;
}

function asInteger(value: unknown, what: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${what}: expected ${min} to ${max}, got ${value}`);
  return n;
}

function asIdList(value: unknown, what: string): number[] {
  const list = typeof value === 'string' ? value.split(',') : typeof value === 'number' ? [value] : value;
  if (!Array.isArray(list)) throw new UsageError(`${what}: expected numeric ids, got ${value}`);
  return list.map((item) => {
    const id = typeof item === 'string' && item.trim() !== '' ? Number(item) : item;
    if (!Number.isInteger(id) || id < 0 || id > 0xfffffffe) {
      throw new UsageError(`${what}: expected numeric ids, got ${item}`);
    }
    return id as number;
  });
}

/** A supervisor's fd: not stdin, stdout or stderr. Whether it is open is
 * checked at start only (checkNotifyFd): a re-read after SIGHUP finds it
 * closed, as readiness left it. */
function asNotifyFd(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const fd = Number(value);
  if (!Number.isInteger(fd) || fd < 3) throw new UsageError(`notify fd: expected a number of 3 or more, got ${value}`);
  return fd;
}

function checkNotifyFd(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    fs.fstatSync(fd);
  } catch {
    throw new UsageError(`notify fd: ${fd} is not open`);
  }
}

function asLogFormat(value: unknown): LogFormat {
  if (value === 'text' || value === 'json') return value;
  throw new UsageError(`log format: expected text or json, got ${value}`);
}

/** Abstract sockets have no owner or mode, so anyone could connect or squat. */
function asSocketPath(value: unknown): string | undefined {
  const socket = optionalString(value, 'socket');
  if (socket?.startsWith('@') || socket?.startsWith('\0')) {
    throw new UsageError(`socket ${JSON.stringify(socket)}: abstract sockets are not used; give a file path`);
  }
  return socket;
}

function optionalPositiveSeconds(value: unknown, what: string): number | undefined {
  return value === undefined ? undefined : asPositiveSeconds(value, what);
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  throw new UsageError(`${what}: expected a string`);
}

/** Command-line options win over the config file, which wins over defaults.
 * The config file goes in `snapshot`, as it was just before it was read. */
export function parseConfig(args: string[], snapshot?: Snapshot): Config {
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
        'warm-timeout': { type: 'string' },
        config: { type: 'string' },
        'drain-timeout': { type: 'string' },
        spares: { type: 'string' },
        'allow-uid': { type: 'string' },
        'allow-gid': { type: 'string' },
        'request-timeout': { type: 'string' },
        'notify-fd': { type: 'string' },
        'log-format': { type: 'string' },
        'max-runners': { type: 'string' },
        'queue-size': { type: 'string' },
        'queue-timeout': { type: 'string' },
        'max-runtime': { type: 'string' },
        'as-peer': { type: 'boolean' },
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
  const file = cli.config ? readConfigFile(cli.config, snapshot) : {};
  return {
    socket: path.resolve(asSocketPath(cli.socket ?? file.socket) ?? defaultSocketPath()),
    preload: asModuleList(cli.preload ?? file.preload ?? []),
    luaPath: optionalString(cli['lua-path'] ?? file.luaPath, 'luaPath'),
    warmup: optionalString(cli.warmup ?? file.warmup, 'warmup') ?? BUILTIN_WARMUP,
    warmTimeoutMs: asSeconds(cli['warm-timeout'] ?? file.warmTimeout ?? 30, 'warm timeout'),
    drainTimeoutMs: asSeconds(cli['drain-timeout'] ?? file.drainTimeout ?? 10, 'drain timeout'),
    spares: asInteger(cli.spares ?? file.spares ?? 4, 'spares', 0, 64),
    allowUid: asIdList(cli['allow-uid'] ?? file.allowUid ?? [], 'allow uid'),
    allowGid: asIdList(cli['allow-gid'] ?? file.allowGid ?? [], 'allow gid'),
    requestTimeoutMs: asPositiveSeconds(cli['request-timeout'] ?? file.requestTimeout ?? 10, 'request timeout'),
    notifyFd: asNotifyFd(cli['notify-fd'] ?? file.notifyFd),
    logFormat: asLogFormat(cli['log-format'] ?? file.logFormat ?? 'text'),
    maxRunners: asInteger(cli['max-runners'] ?? file.maxRunners ?? 64, 'max runners', 1, 65536),
    queueSize: asInteger(cli['queue-size'] ?? file.queueSize ?? 256, 'queue size', 0, 65536),
    queueTimeoutMs: asPositiveSeconds(cli['queue-timeout'] ?? file.queueTimeout ?? 5, 'queue timeout'),
    maxRuntimeMs: optionalPositiveSeconds(cli['max-runtime'] ?? file.maxRuntime, 'max runtime'),
    asPeer: asPeerMode(cli['as-peer'] ?? file.asPeer ?? false),
  };
}

/** --as-peer changes user per run, which only root can do. */
function asPeerMode(value: unknown): boolean {
  if (typeof value !== 'boolean') throw new UsageError(`asPeer: expected true or false, got ${value}`);
  if (value && process.getuid!() !== 0) throw new UsageError('--as-peer needs the server to run as root');
  return value;
}

class SystemError extends Error {}

/** Refuses a directory or socket another user could swap or listen on. Root
 * may own the directory (it controls everything anyway, and owns /run). */
function checkOwner(file: string, stat: fs.Stats, rootToo: boolean): void {
  const uid = process.getuid!();
  if (stat.uid === uid || (rootToo && stat.uid === 0)) return;
  throw new SystemError(`${file} is owned by uid ${stat.uid}, not by this server's uid ${uid}: refusing to use it`);
}

/** Makes the default directory (0700) if needed; refuses a live server's socket,
 * replaces a stale one. */
function claimSocketPath(socketPath: string): void {
  const dir = path.dirname(socketPath);
  if (!fs.existsSync(dir)) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkOwner(dir, fs.statSync(dir), true);
  if (!fs.existsSync(socketPath)) return;
  const stat = fs.lstatSync(socketPath);
  if (!stat.isSocket()) {
    throw new SystemError(`${socketPath} exists and is not a socket`);
  }
  checkOwner(socketPath, stat, false);
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

let logFormat: LogFormat = 'text';

function log(entry: LogEntry | string): void {
  const e = typeof entry === 'string' ? { event: 'error', message: entry } : entry;
  if (logFormat === 'text') return void fs.writeSync(2, `warmluad: ${e.message}\n`);
  const { event, pid = null, script = null, ms = null, status = null, message } = e;
  const time = new Date().toISOString();
  fs.writeSync(2, `${JSON.stringify({ time, event, pid, script, ms, status, message })}\n`);
}

/** Tells the supervisor the socket accepts: s6's notification fd, systemd's
 * NOTIFY_SOCKET. Runs before the first spare is forked, and the datagram
 * socket is closed at once, so no runner inherits either. */
function notifyReady(notifyFd: number | undefined): void {
  if (notifyFd !== undefined) {
    try {
      fs.writeSync(notifyFd, '\n');
      fs.closeSync(notifyFd);
    } catch (error) {
      log({ event: 'notify', message: `cannot notify fd ${notifyFd}: ${(error as Error).message}` });
    }
  }
  const notifySocket = process.env.NOTIFY_SOCKET;
  delete process.env.NOTIFY_SOCKET; // for this server only, not the scripts it starts
  if (!notifySocket) return;
  try {
    native.notify(notifySocket, Buffer.from('READY=1'));
  } catch (error) {
    log({ event: 'notify', message: `cannot notify ${notifySocket}: ${(error as Error).message}` });
  }
}

/** Undoes what bin/warmluad set up for node alone: closes the descriptors it
 * held while node started, and puts the caller's LD_PRELOAD back. */
function releaseLauncherState(): void {
  for (const fd of (process.env.WARMLUA_HELD_FDS ?? '').split(' ').filter(Boolean)) native.close(Number(fd));
  delete process.env.WARMLUA_HELD_FDS;
  const callerPreload = process.env.WARMLUA_CALLER_LD_PRELOAD;
  if (callerPreload === undefined) return; // not started by bin/warmluad
  if (callerPreload) process.env.LD_PRELOAD = callerPreload;
  else delete process.env.LD_PRELOAD;
  delete process.env.WARMLUA_CALLER_LD_PRELOAD;
}

/** The Lua state runners are forked from, with every file read to build it
 * in `files`. On a re-warm (`leftOut` given), a module that no longer loads
 * is left out, its error in `leftOut`, rather than kept from the old state:
 * a run that requires it meets its error as a cold lua would, and never its
 * stale code. */
function buildWarm(config: Config, files: Snapshot, leftOut?: string[]): WarmState {
  let preload = config.preload;
  for (;;) {
    try {
      const L = createLuaState({ preload, luaPath: config.luaPath, watch: (file) => files.add(file) });
      return { L, preload, builtAt: Date.now() };
    } catch (error) {
      if (!leftOut || !(error instanceof PreloadError)) throw error;
      leftOut.push(error.message.replace(/\s*\n\s*/g, ' ')); // for a one-line log
      preload = preload.filter((name) => name !== error.module);
    }
  }
}

/** What the serving warm state was built from, and its watch. */
let inForce: Config;
let snapshot: Snapshot;
let stopWatching = () => {};

function watchFiles(server: Server, args: string[]): void {
  stopWatching();
  stopWatching = watchSnapshot(snapshot, () => freshen(server, args));
}

/** Re-reads the config and re-warms. A config that no longer parses leaves
 * the old one in force, but the modules are still read afresh. Socket and
 * notify fd are bound at start and stay. The V8 warm-up's later passes run
 * again (server/warmup.ts), since building a state throws some of its
 * optimised code away. */
function rewarm(server: Server, args: string[], why: string): void {
  const began = process.hrtime.bigint();
  const next = new Snapshot();
  try {
    inForce = parseConfig(args, next);
  } catch (error) {
    log({ event: 'rewarm-failed', message: `${why}: ${(error as Error).message}; keeping the old configuration` });
  }
  snapshot = next; // even after a failure: the next change gets the next try
  setWarmTimeout(inForce.warmTimeoutMs);
  let warm: WarmState;
  const leftOut: string[] = [];
  try {
    warm = buildWarm(inForce, snapshot, leftOut);
  } catch (error) {
    log({ event: 'rewarm-failed', message: `${why}: re-warm failed, keeping the old state: ${(error as Error).message}` });
    return watchFiles(server, args);
  }
  if (inForce.warmup !== 'none') {
    try {
      warmAfterRebuild(inForce.warmup);
    } catch (error) {
      log({ event: 'rewarm-failed', message: `${why}: warm-up failed, serving anyway: ${(error as Error).message}` });
    }
  }
  logFormat = inForce.logFormat;
  server.rewarm(warm, inForce);
  watchFiles(server, args);
  const ms = Number(process.hrtime.bigint() - began) / 1e6;
  log({
    event: 'rewarmed',
    message:
      `${why}: re-warmed in ${ms.toFixed(0)}ms (preloaded: ${warm.preload.join(',') || 'nothing'})` +
      leftOut.map((failure) => `; left out: ${failure}`).join(''),
  });
}

/** Called before each run is handed to a runner, and when a watched
 * directory changes: re-warms if a file the warm state was built from has. */
function freshen(server: Server, args: string[]): void {
  const file = snapshot.changed();
  if (file !== undefined) rewarm(server, args, `${file} changed`);
}

function main(): void {
  releaseLauncherState();
  const args = process.argv.slice(2);
  if (args[0] === 'status') process.exit(statusMain(args.slice(1)));
  snapshot = new Snapshot();
  let config: Config;
  try {
    config = parseConfig(args, snapshot);
    checkNotifyFd(config.notifyFd);
  } catch (error) {
    log((error as Error).message);
    fs.writeSync(2, `${USAGE}\n`);
    process.exit(100);
  }
  logFormat = config.logFormat;
  inForce = config;
  setWarmTimeout(config.warmTimeoutMs);
  const began = process.hrtime.bigint();
  let warm: WarmState;
  try {
    warm =
      config.warmup === 'none'
        ? buildWarm(config, snapshot)
        : warmAround(
            config.warmup,
            () => createLuaState({ preload: config.preload, luaPath: config.luaPath }),
            () => buildWarm(config, snapshot),
          );
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
  let stopping = false;
  notifyReady(config.notifyFd); // the listening socket queues connections already
  const server = new Server(warm, listenFd, log, config, () => {
    if (!stopping) freshen(server, args);
  });
  watchFiles(server, args);
  const warmMs = Number(process.hrtime.bigint() - began) / 1e6;
  log({
    event: 'listening',
    message: `listening on ${config.socket} (pid ${process.pid}, warm in ${warmMs.toFixed(0)}ms, ` +
      `preloaded: ${config.preload.join(',') || 'nothing'})`,
  });

  const stop = (signal: string) => {
    stopping = true;
    stopWatching();
    log({ event: 'stopping', message: `${signal}: no longer accepting; ${server.activeRuns} run(s) to finish` });
    fs.rmSync(config.socket, { force: true }); // a new server may start at once
    const timer = setTimeout(() => {
      log({ event: 'drain-timeout', message: 'drain timeout: killing the remaining runs' });
      server.killAll();
    }, config.drainTimeoutMs);
    server.stopAccepting(() => {
      clearTimeout(timer);
      log({ event: 'stopped', message: 'stopped' });
      process.exit(0);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // Handled even while stopping, where it does nothing: its default would kill the server mid-drain.
  process.on('SIGHUP', () => {
    if (!stopping) rewarm(server, args, 'SIGHUP');
  });
}

main();
