// Typed access to the N-API addon built from native/ (build/Release).
// Every call is synchronous; errors are thrown as Error with .code = "EXXX".
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export interface Received {
  /** Bytes read; empty at end of stream. */
  data: Buffer;
  /** Descriptors that came as SCM_RIGHTS with these bytes (close-on-exec). */
  fds: number[];
  /** The kernel dropped descriptors (MSG_CTRUNC): more than one message can carry. */
  truncated?: boolean;
}

/** A reaped child: `how` 0 = exited with `value`, 1 = killed by signal `value`. */
export type Reaped = [pid: number, how: number, value: number];

export interface PollHandle {
  readonly __poll: unique symbol;
}

export interface Native {
  // sockets.c
  /** socket+bind+listen on a Unix stream socket; non-blocking, close-on-exec. */
  listen(socketPath: string, backlog: number): number;
  /** accept4, non-blocking; -1 when no connection is waiting. */
  accept(fd: number): number;
  /** A blocking connect to a Unix stream socket; the fd is close-on-exec. */
  connect(socketPath: string): number;
  /** One recvmsg (MSG_DONTWAIT); null when nothing is ready. */
  recv(fd: number, maxBytes: number): Received | null;
  /** One sendmsg (MSG_NOSIGNAL), with `fds` as SCM_RIGHTS; -1 when it would
   * block. Without `wait` (MSG_DONTWAIT), it never does. */
  send(fd: number, data: Buffer, fds: number[], wait?: boolean): number;
  /** Calls `onReady` whenever fd is readable (or hung up), through libuv's uv_poll. */
  pollReadable(fd: number, onReady: () => void): PollHandle;
  pollStop(handle: PollHandle): void;
  /** The peer's pid, uid and gid (SO_PEERCRED). */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  /** The peer's supplementary groups (SO_PEERGROUPS). */
  peerGroups(fd: number): number[];
  /** One datagram to a Unix datagram socket, sd_notify's way: '@' starts an
   * abstract address. Never blocks (EAGAIN when the receiver is full). */
  notify(address: string, message: Buffer): void;
  close(fd: number): void;
  /** socketpair(AF_UNIX, SOCK_STREAM), both ends blocking and close-on-exec. */
  socketPair(): [number, number];
  /** Blocks (poll) until fd is readable or hung up (true), or `timeoutMs`
   * passes (false). Only for processes without a loop. */
  waitReadable(fd: number, timeoutMs?: number): boolean;
  shutdownWrite(fd: number): void;

  // runner.c
  /** fork() that works on a warm V8 heap (pages re-marked MADV_DOFORK first).
   * In the child: new session, all signals default and unblocked, and
   * SIGKILL when the parent dies. Returns the pid, or 0 in the child. */
  forkWarm(): number;
  /** Reaps every child that has ended (waitpid -1, WNOHANG). */
  reapChildren(): Reaped[];
  /** Installs fds[i] at number targets[i], moves the (at most two) `keep` fds
   * above every target, and closes every other descriptor (unless closeRest
   * is false). Returns the kept fds' new numbers. libuv's eventfds get
   * private stand-ins instead of being closed. */
  installFds(fds: number[], targets: number[], keep: number[], closeRest?: boolean): number[];
  chdir(dir: Buffer): void;
  /** Replaces the whole C environment (what os.getenv and children see). */
  replaceEnv(entries: Buffer[]): void;
  /** Every signal to its default action and unblocked (a runner gets this from forkWarm). */
  resetSignals(): void;
  /** _exit(status): no Node teardown, no flushing. */
  exit(status: number): never;
  /** A view of the flag fengari's VM polls before each instruction (the
   * same array each time): bits of INTERRUPTED_BY, set by signal handlers. */
  interruptFlag(): Int32Array;
  /** Installs lua.c's SIGINT handler, with the SIGINT bit lowered, unless
   * the process handles SIGINT itself (the server): the first SIGINT raises
   * the bit and restores the default action, so a second one kills. */
  catchInterrupt(): void;
  /** setgroups, setgid, setuid, each checked: the runner becomes the client (--as-peer). */
  becomeUser(uid: number, gid: number, groups: number[]): void;
  /** SIGINT back to its default action, as lua.c leaves it between chunks
   * (if catchInterrupt installed its handler), and the SIGINT bit lowered. */
  releaseInterrupt(): void;
  /** Raises the DEADLINE bit `ms` milliseconds from now, and every 10 ms
   * after, until called with 0 (SIGALRM, setitimer). */
  setDeadline(ms: number): void;

  // forker.c
  /** The forker's loop: for each byte read on `control`, fork a child (the
   * server's child too, CLONE_PARENT): a spare for 0, the forker's
   * successor for 1; answer its pid (u32 LE, 0 if the fork failed) with its
   * line as SCM_RIGHTS. Returns only in a child: its end of the line, and
   * which it is. _exit(0) when `control` ends. */
  serveForks(control: number): { line: number; successor: boolean };

  // prefault.c
  /** A new, empty set of learned pages, shared with the children forked
   * from now on (none if there is no memory for it). */
  sharePrefaultSet(): void;
  /** In a spare that has waited a while for its job on `line`: writes in
   * the learned pages until the job comes (in the first runners of a set,
   * notes which pages are its own already instead). */
  prefaultLearned(line: number): void;
  /** What this runner runs (its script's name), for learnFromRun. */
  noteRunScript(script: string): void;
  /** After the status is reported: the pages a learning runner made its own
   * during its job join the set; another runner's script tells whether the
   * set still fits the scripts run, or is to be learned again. */
  learnFromRun(): void;

  // fingerprint.c
  /** stat(2) of each NUL-ended path in `paths`: per file, u64 LE inode,
   * size, mtime and ctime in ns (32 bytes); all zero if stat fails. */
  fingerprintFiles(paths: Buffer): Buffer;
}

/** The bits of interruptFlag, as native/runner.c raises them. */
export const INTERRUPTED_BY = { sigint: 1, deadline: 2 } as const;

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

export const native: Native = createRequire(import.meta.url)(
  path.join(projectRoot, 'build/Release/warmlua_native.node'),
);
export { projectRoot };

/** Sends all of `bytes` on a blocking socket; `fds` ride on the first byte. */
export function sendAll(fd: number, bytes: Buffer, fds: number[]): void {
  let sent = native.send(fd, bytes, fds);
  while (sent < bytes.length) sent += native.send(fd, bytes.subarray(sent), []);
}
