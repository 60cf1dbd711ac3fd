// warmluad's serving loop: accept connections on the listening socket, read
// one RUN request each, fork a runner for it, relay signals to it and report
// its status. Every socket is non-blocking and driven by uv_poll, so a slow
// or silent client never holds up anyone else.
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
  type RunRequest,
  type RunStatus,
} from './protocol.js';

/** How long a runner whose client went away has between SIGHUP and SIGKILL. */
export const CLIENT_GONE_GRACE_MS = 1000;
const RECV_CHUNK = 64 * 1024;

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

interface Run {
  pid: number;
  /** The server's end of the runner's line: the runner reports its exit there first. */
  line: number;
  script: string;
  startedAt: bigint;
  killTimer?: NodeJS.Timeout;
}

/** One client connection: its bytes, the fds it passed and, once forked, its run. */
class Connection {
  readonly reader = new FrameReader();
  receivedFds: number[] = [];
  run?: Run;
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
    this.poll = native.pollReadable(fd, () => this.onReadable());
    this.requestTimer = setTimeout(() => server.requestTimedOut(this), requestTimeoutMs);
    this.requestTimer.unref();
  }

  /** The request came: no more deadline. */
  gotRequest(): void {
    clearTimeout(this.requestTimer);
  }

  private onReadable(): void {
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

function describeStatus(status: RunStatus): string {
  return status.how === 'exited' ? `exit ${status.code}` : `signal ${status.signal}`;
}

/** The script a run names, for the log: lua.c's first non-option argument. */
function scriptName(argv: Buffer[]): string {
  const script = argv.slice(1).find((a) => a.length > 0 && a[0] !== 0x2d);
  return script ? script.toString() : '(stdin or -e)';
}

export class Server {
  private readonly listenPoll: PollHandle;
  private readonly runs = new Map<number, Connection>();
  private readonly pool: SparePool;
  private accepting = true;
  private onIdle?: () => void;

  constructor(
    private readonly L: LuaState,
    private readonly listenFd: number,
    private readonly log: Log,
    spares: number,
    private readonly access: AccessOptions,
  ) {
    this.pool = new SparePool(L, spares);
    this.pool.refillSoon();
    this.listenPoll = native.pollReadable(listenFd, () => this.acceptAll());
    process.on('SIGCHLD', () => this.reap());
  }

  get activeRuns(): number {
    return this.runs.size;
  }

  private acceptAll(): void {
    for (let fd = native.accept(this.listenFd); fd >= 0; fd = native.accept(this.listenFd)) {
      const conn = new Connection(fd, this, this.access.requestTimeoutMs);
      this.checkPeer(conn);
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
    const { allowUid, allowGid } = this.access;
    if (peer.uid === ownUid || allowUid.includes(peer.uid) || allowGid.includes(peer.gid)) return;
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
    if (conn.closed || conn.run) return;
    if (conn.refused) return conn.close();
    const seconds = this.access.requestTimeoutMs / 1000;
    this.onConnectionError(conn, new ProtocolError(ErrorCode.malformed, `no request within ${seconds} s`));
  }

  onFrame(conn: Connection, type: number, payload: Buffer): void {
    if (conn.refused) return conn.closeReceivedFds();
    if (type === FrameType.run && !conn.run) return this.startRun(conn, decodeRun(payload), payload);
    if (type === FrameType.signal && conn.run) return this.forwardSignal(conn.run, decodeSignal(payload));
    throw new ProtocolError(
      ErrorCode.malformed,
      conn.run ? `unexpected frame type ${type} during a run` : `expected a RUN frame, got type ${type}`,
    );
  }

  /** Hands the request, the client's fds and the connection to a spare runner. */
  private startRun(conn: Connection, request: RunRequest, payload: Buffer): void {
    if (conn.receivedFds.length !== request.fdNumbers.length) {
      throw new ProtocolError(
        ErrorCode.malformed,
        `request names ${request.fdNumbers.length} fds but ${conn.receivedFds.length} came with it`,
      );
    }
    let spare;
    try {
      spare = this.pool.take();
    } catch (error) {
      throw new ProtocolError(ErrorCode.internal, `cannot start a runner: ${(error as Error).message}`);
    }
    // STARTED goes out before the job: a spare can finish a short script, and
    // report its exit to the client, before this function returns.
    conn.gotRequest();
    conn.run = { pid: spare.pid, line: spare.line, script: scriptName(request.argv), startedAt: process.hrtime.bigint() };
    this.runs.set(spare.pid, conn);
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
    conn.closeReceivedFds();
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
      if (this.pool.forget(pid)) {
        this.log({
          event: 'spare-ended',
          pid,
          status: describeStatus(status),
          message: `spare runner pid=${pid} ended while waiting: ${describeStatus(status)}`,
        });
        continue;
      }
      const conn = this.runs.get(pid);
      if (!conn?.run) continue;
      this.runs.delete(pid);
      clearTimeout(conn.run.killTimer);
      native.close(conn.run.line);
      const ms = Number(process.hrtime.bigint() - conn.run.startedAt) / 1e6;
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
    if (this.runs.size === 0) this.onIdle?.();
  }

  /** The client closed its end. A live runner gets SIGHUP, then SIGKILL;
   * one that has reported its exit on its line is left to end. */
  clientGone(conn: Connection): void {
    const run = conn.run;
    conn.close();
    if (!run || !this.runs.has(run.pid) || native.recv(run.line, 4)?.data.length) return;
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
      native.pollStop(this.listenPoll);
      native.close(this.listenFd);
    }
    this.pool.retireAll();
    this.onIdle = onIdle;
    if (this.runs.size === 0) onIdle();
  }

  /** Kills every runner's process group (drain timed out). */
  killAll(): void {
    for (const conn of this.runs.values()) if (conn.run) this.forwardSignal(conn.run, 9);
  }
}
