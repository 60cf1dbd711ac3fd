// warmluad's serving loop: accept connections on the listening socket, read
// one RUN request each, fork a runner for it (or queue it while
// --max-runners are running), relay signals to it and report its status.
// Every socket is non-blocking and driven by uv_poll, so a slow or silent
// client never holds up anyone else.
import fs from 'node:fs';
import type { LuaState } from 'fengari';
import { native, sendAll, type PollHandle } from './native.js';
import { SparePool } from './pool.js';
import {
  ErrorCode,
  FrameReader,
  FrameType,
  ProtocolError,
  decodeRun,
  decodeSignal,
  encodeError,
  encodeExited,
  encodeFrame,
  encodeStarted,
  encodeStatusReply,
  scriptName,
  type RunRequest,
  type RunStatus,
} from './protocol.js';
import { ScriptCacheLimits, decodeScriptReport, forgetScripts, keptScripts, scriptParsed } from './scriptcache.js';
import { LatencyRecord, type StatusReport } from './status.js';

/** How long a runner whose client went away has between SIGHUP and SIGKILL. */
export const CLIENT_GONE_GRACE_MS = 1000;
const RECV_CHUNK = 64 * 1024;
const ACCEPT_PAUSE_MS = 100;

/** One log line: `message` is the text format's whole line; the other
 * fields repeat its facts for the JSON format. */
export interface LogEntry {
  event: string;
  message: string;
  pid?: number;
  script?: string;
  ms?: number;
  status?: string;
}

export type Log = (entry: LogEntry) => void;

/** Who may connect, and how long a client has to send its request. */
export interface AccessOptions {
  /** Peer uids served besides the server's own. */
  allowUid: number[];
  /** Peer gids (the peer's primary group, as SO_PEERCRED reports it) served. */
  allowGid: number[];
  requestTimeoutMs: number;
}

export interface ServerOptions extends AccessOptions {
  /** Runners forked ahead of demand. */
  spares: number;
  /** Runs at once; more wait in the queue. */
  maxRunners: number;
  queueSize: number;
  /** How long a request waits in the queue before it gets BUSY. */
  queueTimeoutMs: number;
  /** A run still alive after this long has its process group killed. */
  maxRuntimeMs?: number;
  /** Runners become their client's user (the server runs as root). */
  asPeer: boolean;
}

/** The state every runner is forked from, and what status reports of it. */
export interface WarmState {
  L: LuaState;
  preload: string[];
  /** Date.now() when it was built. */
  builtAt: number;
}

interface Run {
  pid: number;
  /** The server's end of the runner's line: the runner reports its exit there first. */
  line: number;
  script: string;
  startedAt: bigint;
  killTimer?: NodeJS.Timeout;
  runtimeTimer?: NodeJS.Timeout;
  /** The runner wrote its exit status on its line (read once, remembered). */
  reported?: boolean;
  /** The server's copy of the client's fd 2, held under --max-runtime to say why the run was killed. */
  stderr?: number;
}

/** A request waiting for a runner to end. */
interface Queued {
  request: RunRequest;
  payload: Buffer;
  /** SIGNAL frames that came while it waited: forwarded once it runs. */
  signals: number[];
  timer: NodeJS.Timeout;
}

/** One client connection: its bytes, the fds it passed and, once forked, its run. */
class Connection {
  readonly reader = new FrameReader();
  receivedFds: number[] = [];
  run?: Run;
  queued?: Queued;
  closed = false;
  /** Refused: it got its ERROR; what it sends is read and dropped until it
   * leaves, so that its own write does not fail before it reads the ERROR. */
  refused = false;
  private readonly poll: PollHandle;
  private readonly requestTimer: NodeJS.Timeout;

  constructor(
    readonly fd: number,
    private readonly server: Server,
    requestTimeoutMs: number,
  ) {
    this.poll = native.pollReadable(fd, () => this.readAvailable());
    this.requestTimer = setTimeout(() => server.requestTimedOut(this), requestTimeoutMs);
    this.requestTimer.unref();
  }

  /** The request came: no more deadline. */
  gotRequest(): void {
    clearTimeout(this.requestTimer);
  }

  /** Reads and handles what the client has sent so far. */
  readAvailable(): void {
    try {
      for (;;) {
        const received = native.recv(this.fd, RECV_CHUNK);
        if (received === null) return;
        this.receivedFds.push(...received.fds);
        if (received.truncated) {
          throw new ProtocolError(ErrorCode.limit, 'too many file descriptors: some were dropped');
        }
        if (received.data.length === 0) return this.server.clientGone(this);
        this.reader.push(received.data);
        for (let frame = this.reader.next(); frame && !this.closed; frame = this.reader.next()) {
          this.server.onFrame(this, frame.type, frame.payload);
        }
        if (this.closed) return; // answered (STATUS): the fd is gone
      }
    } catch (error) {
      this.server.onConnectionError(this, error);
    }
  }

  send(bytes: Buffer): void {
    if (this.closed) return;
    // Replies are a few bytes on an otherwise idle socket; a full send buffer
    // means the client is not reading at all, which counts as gone.
    const sent = native.send(this.fd, bytes, []);
    if (sent !== bytes.length) throw new Error('client is not reading its replies');
  }

  closeReceivedFds(): void {
    for (const fd of this.receivedFds.splice(0)) native.close(fd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.requestTimer);
    native.pollStop(this.poll);
    native.close(this.fd);
    this.closeReceivedFds();
  }
}

/** Writes to the client's stderr from a child forked for just that: the
 * client's stderr may be a pipe or socket nobody reads (a supervisor's log
 * socket, say), and a write to it must never block the server. The child is
 * reaped, unnamed, like a retired spare. */
function tellClient(stderrFd: number, message: string): void {
  let pid;
  try {
    pid = native.forkWarm();
  } catch {
    return; // the log line still says why the run died
  }
  if (pid !== 0) return;
  try {
    fs.writeSync(stderrFd, message);
  } catch {
    // the client's stderr is gone: nobody left to tell
  }
  native.exit(0);
}

function describeStatus(status: RunStatus): string {
  return status.how === 'exited' ? `exit ${status.code}` : `signal ${status.signal}`;
}

/** The peer's supplementary groups; none if the kernel will not say. As
 * for a file's group, membership through any of them counts. */
function supplementaryGroups(fd: number): number[] {
  try {
    return native.peerGroups(fd);
  } catch {
    return [];
  }
}

export class Server {
  /** Null while accepting is paused after an error. */
  private listenPoll: PollHandle | null;
  private readonly runs = new Map<number, Connection>();
  /** Requests waiting for a runner, oldest first. */
  private queue: Connection[] = [];
  private pool: SparePool;
  private accepting = true;
  private onIdle?: () => void;
  private runsServed = 0;
  private runsFromKeptScripts = 0;
  private readonly latency = new LatencyRecord();
  /** When the current forker was asked for, and its successor when due. */
  private forkerStartedAt = 0;
  private renewal: NodeJS.Timeout | null = null;

  constructor(
    private warm: WarmState,
    private readonly listenFd: number,
    private readonly log: Log,
    private options: ServerOptions,
    /** Re-warms (through rewarm) if a file the warm state was built from
     * changed: called before each run is handed to a runner. */
    private readonly freshen: () => void,
  ) {
    this.pool = this.newPool();
    this.listenPoll = native.pollReadable(listenFd, () => this.acceptAll());
    process.on('SIGCHLD', () => this.reap());
  }

  get activeRuns(): number {
    return this.runs.size;
  }

  private acceptAll(): void {
    try {
      for (let fd = native.accept(this.listenFd); fd >= 0; fd = native.accept(this.listenFd)) {
        const conn = new Connection(fd, this, this.options.requestTimeoutMs);
        this.checkPeer(conn);
        // A client sends its request as soon as it connects: it is usually
        // there already, and need not wait for another turn of the loop.
        if (!conn.closed) this.readNewConnection(conn);
      }
    } catch (error) {
      // EMFILE, ENOMEM...: the server must not die of it. The client waits in
      // the backlog; accepting pauses briefly, as the socket stays readable
      // and would otherwise spin (and flood the log) until the cause passes.
      this.log({ event: 'error', message: `cannot accept, pausing ${ACCEPT_PAUSE_MS} ms: ${(error as Error).message}` });
      if (this.listenPoll) native.pollStop(this.listenPoll);
      this.listenPoll = null;
      setTimeout(() => {
        if (this.accepting && !this.listenPoll) this.listenPoll = native.pollReadable(this.listenFd, () => this.acceptAll());
      }, ACCEPT_PAUSE_MS);
    }
  }

  /** Reads what a new connection has sent. Its own errors are handled; one
   * from handling them ends this connection only, and says so, rather than
   * pass for a failure to accept. */
  private readNewConnection(conn: Connection): void {
    try {
      conn.readAvailable();
    } catch (error) {
      this.log({ event: 'connection-error', message: `connection closed: ${(error as Error).message}` });
      conn.close();
    }
  }

  /** Serves the server's own uid and the allowed uids and gids; anyone else
   * gets a REFUSED error, and its connection ends when it leaves or its
   * request time is up. */
  private checkPeer(conn: Connection): void {
    let peer;
    try {
      peer = native.peerCredentials(conn.fd);
    } catch (error) {
      const message = `connection closed: cannot read its credentials: ${(error as Error).message}`;
      this.log({ event: 'connection-error', message });
      return conn.close();
    }
    const ownUid = process.getuid!();
    const { allowUid, allowGid } = this.options;
    if (peer.uid === ownUid || allowUid.includes(peer.uid) || allowGid.includes(peer.gid)) return;
    if (allowGid.length > 0 && supplementaryGroups(conn.fd).some((gid) => allowGid.includes(gid))) return;
    const message =
      `uid ${peer.uid} (gid ${peer.gid}) is not allowed: this server serves uid ${ownUid} ` +
      'and whom --allow-uid or --allow-gid name';
    conn.refused = true;
    // The client's pid goes in the text only: the JSON pid field is a runner's.
    this.log({ event: 'refused', message: `refused client pid=${peer.pid}: ${message}` });
    try {
      conn.send(encodeError(ErrorCode.refused, message));
      native.shutdownWrite(conn.fd);
    } catch {
      conn.close(); // it left already
    }
  }

  requestTimedOut(conn: Connection): void {
    if (conn.closed || conn.run || conn.queued) return;
    if (conn.refused) return conn.close();
    const seconds = this.options.requestTimeoutMs / 1000;
    this.onConnectionError(conn, new ProtocolError(ErrorCode.malformed, `no request within ${seconds} s`));
  }

  onFrame(conn: Connection, type: number, payload: Buffer): void {
    if (conn.refused) return conn.closeReceivedFds();
    const first = !conn.run && !conn.queued;
    if (type === FrameType.run && first) return this.requestRun(conn, decodeRun(payload), payload);
    if (type === FrameType.status && first) return this.answerStatus(conn);
    if (type === FrameType.signal && conn.queued) return void conn.queued.signals.push(decodeSignal(payload));
    if (type === FrameType.signal && conn.run) return this.forwardSignal(conn.run, decodeSignal(payload));
    throw new ProtocolError(
      ErrorCode.malformed,
      first ? `expected a RUN or STATUS frame, got type ${type}` : `unexpected frame type ${type} during a run`,
    );
  }

  /** Starts the run now, or queues it while --max-runners are running or
   * the forker has yet to deliver a spare. */
  private requestRun(conn: Connection, request: RunRequest, payload: Buffer): void {
    if (conn.receivedFds.length !== request.fdNumbers.length) {
      throw new ProtocolError(
        ErrorCode.malformed,
        `request names ${request.fdNumbers.length} fds but ${conn.receivedFds.length} came with it`,
      );
    }
    conn.gotRequest();
    const { maxRunners, queueSize, queueTimeoutMs } = this.options;
    // With a runner free but no spare ready, the request waits for the
    // forker while the queue has room; otherwise the server forks one itself.
    const runnerFree = this.runs.size < maxRunners;
    if (runnerFree && (this.pool.ready || this.queue.length >= queueSize)) {
      return this.startRun(conn, request, payload, []);
    }
    if (this.queue.length >= queueSize) {
      throw new ProtocolError(ErrorCode.busy, `${this.waitReason()} and the queue is full`);
    }
    const timer = setTimeout(() => {
      this.unqueue(conn);
      const message = `${this.waitReason()}, and none came free within ${queueTimeoutMs / 1000} s`;
      this.onConnectionError(conn, new ProtocolError(ErrorCode.busy, message));
    }, queueTimeoutMs);
    conn.queued = { request, payload, signals: [], timer };
    this.queue.push(conn);
  }

  /** Why requests wait: --max-runners, or the forker's next spare. */
  private waitReason(): string {
    return this.runs.size >= this.options.maxRunners ? `all ${this.runs.size} runners in use` : 'no spare runner is ready';
  }

  private unqueue(conn: Connection): void {
    if (!conn.queued) return;
    clearTimeout(conn.queued.timer);
    this.queue = this.queue.filter((c) => c !== conn);
  }

  /** A pool of spares for the current warm state, filling at once; a
   * spare it gets ready may start a queued request. */
  private newPool(): SparePool {
    this.forkerStartedAt = Date.now();
    const pool = new SparePool(
      this.warm.L,
      this.options.spares,
      this.options.asPeer,
      () => this.startQueued(),
      (message) => this.log({ event: 'forker', message }),
    );
    pool.refillSoon();
    return pool;
  }

  /** Starts queued requests while runners are free and a spare is ready. */
  private startQueued(): void {
    while (this.accepting && this.runs.size < this.options.maxRunners && this.pool.ready && this.queue.length) {
      const conn = this.queue.shift()!;
      const { request, payload, signals, timer } = conn.queued!;
      clearTimeout(timer);
      try {
        this.startRun(conn, request, payload, signals);
      } catch (error) {
        this.onConnectionError(conn, error);
      }
    }
  }

  private answerStatus(conn: Connection): void {
    const report: StatusReport = {
      pid: process.pid,
      runsServed: this.runsServed,
      runsActive: this.runs.size,
      runsQueued: this.queue.length,
      latencyMs: this.latency.count ? { p50: this.latency.quantile(0.5), p99: this.latency.quantile(0.99) } : null,
      warmStateAgeSeconds: Math.round((Date.now() - this.warm.builtAt) / 1000),
      preload: this.warm.preload,
      rssBytes: process.memoryUsage.rss(),
      scriptsKept: keptScripts(),
      runsFromKeptScripts: this.runsFromKeptScripts,
    };
    conn.send(encodeStatusReply(report));
    conn.close();
  }

  /** Hands the request, the client's fds and the connection to a spare
   * runner, then the signals the client sent while it was queued. */
  private startRun(conn: Connection, request: RunRequest, payload: Buffer, signals: number[]): void {
    conn.queued = undefined;
    this.freshen();
    let spare;
    try {
      spare = this.pool.take();
    } catch (error) {
      throw new ProtocolError(ErrorCode.internal, `cannot start a runner: ${(error as Error).message}`);
    }
    // STARTED goes out before the job: a spare can finish a short script, and
    // report its exit to the client, before this function returns.
    const run: Run = { pid: spare.pid, line: spare.line, script: scriptName(request.argv), startedAt: process.hrtime.bigint() };
    conn.run = run;
    this.runs.set(spare.pid, conn);
    const { maxRuntimeMs } = this.options;
    if (maxRuntimeMs !== undefined) {
      const index = request.fdNumbers.indexOf(2);
      if (index >= 0) run.stderr = conn.receivedFds[index];
      run.runtimeTimer = setTimeout(() => this.runtimeExceeded(run, maxRuntimeMs), maxRuntimeMs);
    }
    conn.send(encodeStarted(spare.pid));
    try {
      sendAll(spare.line, encodeFrame(FrameType.run, payload), [...conn.receivedFds, conn.fd]);
    } catch (error) {
      process.kill(spare.pid, 'SIGKILL'); // its status reaches the client as a death by signal
      this.log({
        event: 'error',
        pid: spare.pid,
        message: `cannot hand run pid=${spare.pid} to its runner: ${(error as Error).message}`,
      });
    }
    if (run.stderr !== undefined) conn.receivedFds.splice(conn.receivedFds.indexOf(run.stderr), 1);
    conn.closeReceivedFds();
    for (const signal of signals) this.forwardSignal(run, signal);
  }

  /** --max-runtime: SIGKILL for the whole process group at once (a Lua
   * script cannot catch SIGTERM anyway), and a line on the client's stderr
   * saying why, since the status alone (137) does not. */
  private runtimeExceeded(run: Run, maxRuntimeMs: number): void {
    if (!this.runs.has(run.pid) || this.hasReported(run)) return;
    const seconds = maxRuntimeMs / 1000;
    const message = `run pid ${run.pid} killed after ${seconds} s (--max-runtime)`;
    if (run.stderr !== undefined) tellClient(run.stderr, `warmluad: ${message}\n`);
    this.log({ event: 'max-runtime', pid: run.pid, script: run.script, message: `${message}: ${run.script}` });
    this.forwardSignal(run, 9);
  }

  /** Has the runner written its exit status on its line? It is ending then. */
  private hasReported(run: Run): boolean {
    if (run.reported) return true;
    try {
      run.reported = Boolean(native.recv(run.line, 4)?.data.length);
    } catch {
      // ECONNRESET: the runner closed its line with the job still unread
      // (killed before reading it). It has ended; reap() says how. Thrown
      // from here, this killed the whole server (found by the fuzz test).
      run.reported = true;
    }
    return run.reported;
  }

  /** How the runner's script was loaded, which it wrote on its line after
   * its status (../scriptcache.ts): read once it has ended, all there. */
  private readScriptReport(run: Run): void {
    const parts: Buffer[] = [];
    for (;;) {
      let received;
      try {
        received = native.recv(run.line, ScriptCacheLimits.maxTextBytes + 4096);
      } catch {
        return; // ECONNRESET: it ended with its job unread
      }
      if (received === null || received.data.length === 0) break;
      parts.push(received.data);
    }
    const bytes = Buffer.concat(parts);
    const report = decodeScriptReport(run.reported ? bytes : bytes.subarray(4));
    if (report === null) return;
    if (report.fromCache) {
      this.runsFromKeptScripts++;
    } else if (scriptParsed(report.script)) {
      this.log({ event: 'script-kept', script: run.script, message: `keeping ${run.script} compiled for the runs to come` });
      this.renewForker();
    }
  }

  /** The forker's spares would parse a script kept since it started: it is
   * replaced by its successor (./pool.ts), at most once per
   * ScriptCacheLimits.renewAfterMs. */
  private renewForker(): void {
    if (this.renewal !== null || !this.accepting) return;
    const wait = Math.max(0, this.forkerStartedAt + ScriptCacheLimits.renewAfterMs - Date.now());
    this.renewal = setTimeout(() => {
      this.renewal = null;
      if (this.accepting && this.pool.renewForker()) this.forkerStartedAt = Date.now();
    }, wait);
  }

  private cancelRenewal(): void {
    clearTimeout(this.renewal ?? undefined);
    this.renewal = null;
  }

  private forwardSignal(run: Run, signal: number): void {
    try {
      process.kill(-run.pid, signal);
    } catch {
      // the group is already gone: its status is on the way
    }
  }

  private reap(): void {
    for (const [pid, how, value] of native.reapChildren()) {
      const status: RunStatus = how === 0 ? { how: 'exited', code: value } : { how: 'signaled', signal: value };
      const conn = this.runs.get(pid);
      if (!conn?.run) {
        if (this.pool.forget(pid)) {
          this.log({
            event: 'spare-ended',
            pid,
            status: describeStatus(status),
            message: `spare runner pid=${pid} ended while waiting: ${describeStatus(status)}`,
          });
        }
        continue;
      }
      this.runs.delete(pid);
      clearTimeout(conn.run.killTimer);
      clearTimeout(conn.run.runtimeTimer);
      this.readScriptReport(conn.run);
      native.close(conn.run.line);
      if (conn.run.stderr !== undefined) native.close(conn.run.stderr);
      const ms = Number(process.hrtime.bigint() - conn.run.startedAt) / 1e6;
      this.runsServed++;
      this.latency.add(ms);
      const { script } = conn.run;
      this.log({
        event: 'run',
        pid,
        script,
        ms: Number(ms.toFixed(1)),
        status: describeStatus(status),
        message: `run pid=${pid} script=${script} ${describeStatus(status)} ${ms.toFixed(1)}ms`,
      });
      try {
        conn.send(encodeExited(status));
      } catch {
        // the client left, or the runner told it already and shut the socket
      }
      conn.close();
    }
    this.startQueued();
    if (this.runs.size === 0) this.onIdle?.();
  }

  /** The client closed its end. A live runner gets SIGHUP, then SIGKILL;
   * one that has reported its exit on its line is left to end. */
  clientGone(conn: Connection): void {
    const run = conn.run;
    this.unqueue(conn);
    conn.close();
    if (!run || !this.runs.has(run.pid) || this.hasReported(run)) return;
    const message = `client of pid=${run.pid} went away: hanging up its runner`;
    this.log({ event: 'client-gone', pid: run.pid, message });
    this.forwardSignal(run, 1);
    run.killTimer = setTimeout(() => this.forwardSignal(run, 9), CLIENT_GONE_GRACE_MS);
  }

  onConnectionError(conn: Connection, error: unknown): void {
    if (conn.refused) return conn.close(); // its one log line is written
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof ProtocolError && !conn.run) {
      try {
        conn.send(encodeError(error.code, message));
      } catch {
        // the client cannot hear it; the log line below still says why
      }
    }
    this.log({ event: 'connection-error', message: `connection closed: ${message}` });
    this.clientGone(conn);
  }

  /** Stops accepting; `onIdle` runs once no runner is left. */
  stopAccepting(onIdle: () => void): void {
    if (this.accepting) {
      this.accepting = false;
      if (this.listenPoll) native.pollStop(this.listenPoll);
      this.listenPoll = null;
      native.close(this.listenFd);
    }
    this.cancelRenewal();
    this.pool.retireAll();
    // Queued requests never ran: BUSY lets their clients run them another way.
    for (const conn of this.queue.slice()) {
      this.unqueue(conn);
      this.onConnectionError(conn, new ProtocolError(ErrorCode.busy, 'the server is stopping'));
    }
    this.onIdle = onIdle;
    if (this.runs.size === 0) onIdle();
  }

  /** Serves from a new warm state with new options from now on. The old
   * spares hold the old state, so they are all retired; runs in flight are
   * separate processes and go on untouched. */
  rewarm(warm: WarmState, options: ServerOptions): void {
    forgetScripts();
    this.cancelRenewal();
    this.pool.retireAll();
    this.warm = warm;
    this.options = options;
    this.pool = this.newPool();
    // --max-runners may have grown. Not at once: a re-warm can come from
    // startRun, whose run has not taken its runner yet.
    setImmediate(() => this.startQueued());
  }

  /** Kills every runner's process group (drain timed out). */
  killAll(): void {
    for (const conn of this.runs.values()) if (conn.run) this.forwardSignal(conn.run, 9);
  }
}
