// The warmlua wire protocol: frames, limits and the request layout.
// docs/protocol.md is the prose; this module is the only implementation in
// TypeScript, used by the server and the client alike. native/warmlua.c
// mirrors these numbers.

export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 6;

export const Limits = {
  maxPayloadBytes: 1024 * 1024,
  maxArgs: 4096,
  maxEnv: 4096,
  // SCM_MAX_FD is 253; the server adds the connection itself when it hands
  // the run to a spare runner.
  maxFds: 252,
  maxFdNumber: 1024 * 1024,
} as const;

export const FrameType = {
  run: 0x01,
  signal: 0x02,
  status: 0x03,
  started: 0x81,
  exited: 0x82,
  error: 0x83,
  statusReply: 0x84,
} as const;

export const ErrorCode = {
  version: 1,
  busy: 2,
  limit: 3,
  malformed: 4,
  refused: 5,
  internal: 6,
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface Frame {
  version: number;
  type: number;
  payload: Buffer;
}

export interface RunRequest {
  cwd: Buffer;
  argv: Buffer[];
  env: Buffer[];
  fdNumbers: number[];
}

export type RunStatus = { how: 'exited'; code: number } | { how: 'signaled'; signal: number };

/** A protocol violation; `code` is what the server answers with. */
export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCodeValue,
    message: string,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export function encodeFrame(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(payload.length, 0);
  header.writeUInt8(PROTOCOL_VERSION, 4);
  header.writeUInt8(type, 5);
  return Buffer.concat([header, payload]);
}

/** Splits a byte stream into frames; refuses oversized ones before buffering them. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  push(bytes: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, bytes]) : bytes;
  }

  /** The next whole frame, or null when more bytes are needed. */
  next(): Frame | null {
    if (this.pending.length < HEADER_BYTES) return null;
    const length = this.pending.readUInt32LE(0);
    const version = this.pending.readUInt8(4);
    const type = this.pending.readUInt8(5);
    if (version !== PROTOCOL_VERSION) {
      throw new ProtocolError(
        ErrorCode.version,
        `protocol version mismatch: this side speaks ${PROTOCOL_VERSION}, the peer sent ${version}`,
      );
    }
    if (length > Limits.maxPayloadBytes) {
      throw new ProtocolError(
        ErrorCode.limit,
        `request of ${length} bytes exceeds ${Limits.maxPayloadBytes}`,
      );
    }
    if (this.pending.length < HEADER_BYTES + length) return null;
    const payload = this.pending.subarray(HEADER_BYTES, HEADER_BYTES + length);
    this.pending = this.pending.subarray(HEADER_BYTES + length);
    return { version, type, payload };
  }

  get buffered(): number {
    return this.pending.length;
  }
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value, 0);
  return b;
}

function lengthPrefixed(s: Buffer): Buffer[] {
  return [u32(s.length), s];
}

export function encodeRun(req: RunRequest): Buffer {
  const parts: Buffer[] = [u32(req.argv.length), u32(req.env.length), u32(req.fdNumbers.length)];
  parts.push(...lengthPrefixed(req.cwd));
  for (const a of req.argv) parts.push(...lengthPrefixed(a));
  for (const e of req.env) parts.push(...lengthPrefixed(e));
  for (const fd of req.fdNumbers) parts.push(u32(fd));
  return encodeFrame(FrameType.run, Buffer.concat(parts));
}

/** Reads a RUN payload field by field, naming what is wrong. */
class PayloadCursor {
  private offset = 0;
  constructor(private readonly bytes: Buffer) {}

  /** `index` names the entry of a list for the error (argv[3]); the name is
   * only built then, not for every field of every request. */
  u32(what: string, index?: number): number {
    if (this.offset + 4 > this.bytes.length) this.truncated(what, index);
    const value = this.bytes.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }

  string(what: string, index?: number): Buffer {
    const length = this.u32(what, index);
    if (this.offset + length > this.bytes.length) this.truncated(what, index);
    const s = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return s;
  }

  private truncated(what: string, index?: number): never {
    const name = index === undefined ? what : `${what}[${index}]`;
    throw new ProtocolError(ErrorCode.malformed, `request truncated in ${name}`);
  }

  end(): void {
    if (this.offset !== this.bytes.length) {
      throw new ProtocolError(
        ErrorCode.malformed,
        `request has ${this.bytes.length - this.offset} bytes after its end`,
      );
    }
  }
}

function checkCount(count: number, max: number, what: string): void {
  if (count > max) throw new ProtocolError(ErrorCode.limit, `${count} ${what} exceed the limit of ${max}`);
}

export function decodeRun(payload: Buffer): RunRequest {
  const cursor = new PayloadCursor(payload);
  const argc = cursor.u32('argc');
  const envc = cursor.u32('envc');
  const fdc = cursor.u32('fdc');
  checkCount(argc, Limits.maxArgs, 'arguments');
  checkCount(envc, Limits.maxEnv, 'environment variables');
  checkCount(fdc, Limits.maxFds, 'file descriptors');
  const cwd = cursor.string('cwd');
  if (cwd.length === 0 || cwd[0] !== 0x2f) {
    throw new ProtocolError(ErrorCode.malformed, 'cwd is not an absolute path');
  }
  const argv = Array.from({ length: argc }, (_, i) => cursor.string('argv', i));
  if (argv.length === 0) throw new ProtocolError(ErrorCode.malformed, 'argv is empty');
  const env = Array.from({ length: envc }, (_, i) => cursor.string('env', i));
  const fdNumbers = Array.from({ length: fdc }, (_, i) => cursor.u32('fd', i));
  cursor.end();
  for (const b of [cwd, ...argv, ...env]) {
    if (b.includes(0)) throw new ProtocolError(ErrorCode.malformed, 'a string contains a NUL byte');
  }
  for (const e of env) {
    if (e.indexOf(0x3d) < 1) throw new ProtocolError(ErrorCode.malformed, 'an environment entry has no NAME=');
  }
  if (new Set(fdNumbers).size !== fdNumbers.length || fdNumbers.some((n) => n >= Limits.maxFdNumber)) {
    throw new ProtocolError(ErrorCode.malformed, 'fd numbers must be distinct and below 1048576');
  }
  return { cwd, argv, env, fdNumbers };
}

/** The script a run names, for the log and the prefault set: lua.c's
 * first non-option argument. */
export function scriptName(argv: Buffer[]): string {
  const script = argv.slice(1).find((a) => a.length > 0 && a[0] !== 0x2d);
  return script ? script.toString() : '(stdin or -e)';
}

export function encodeSignal(signal: number): Buffer {
  return encodeFrame(FrameType.signal, u32(signal));
}

export function decodeSignal(payload: Buffer): number {
  if (payload.length !== 4) throw new ProtocolError(ErrorCode.malformed, 'SIGNAL payload is not 4 bytes');
  const signal = payload.readUInt32LE(0);
  if (signal < 1 || signal > 64) throw new ProtocolError(ErrorCode.malformed, `no signal ${signal}`);
  return signal;
}

export function encodeStarted(pid: number): Buffer {
  return encodeFrame(FrameType.started, u32(pid));
}

export function decodeStarted(payload: Buffer): number {
  if (payload.length !== 4) throw new ProtocolError(ErrorCode.malformed, 'STARTED payload is not 4 bytes');
  return payload.readUInt32LE(0);
}

export function encodeExited(status: RunStatus): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt8(status.how === 'exited' ? 0 : 1, 0);
  b.writeUInt32LE(status.how === 'exited' ? status.code : status.signal, 1);
  return encodeFrame(FrameType.exited, b);
}

export function decodeExited(payload: Buffer): RunStatus {
  if (payload.length !== 5) throw new ProtocolError(ErrorCode.malformed, 'EXITED payload is not 5 bytes');
  const value = payload.readUInt32LE(1);
  return payload[0] === 0 ? { how: 'exited', code: value } : { how: 'signaled', signal: value };
}

export function encodeError(code: ErrorCodeValue, message: string): Buffer {
  return encodeFrame(FrameType.error, Buffer.concat([Buffer.of(code), Buffer.from(message)]));
}

export function decodeError(payload: Buffer): { code: number; message: string } {
  if (payload.length < 1) throw new ProtocolError(ErrorCode.malformed, 'ERROR payload is empty');
  return { code: payload[0], message: payload.subarray(1).toString() };
}

export function encodeStatus(): Buffer {
  return encodeFrame(FrameType.status);
}

/** STATUS_REPLY carries a JSON object; its fields are server/status.ts's. */
export function encodeStatusReply(report: object): Buffer {
  return encodeFrame(FrameType.statusReply, Buffer.from(JSON.stringify(report)));
}

export function decodeStatusReply(payload: Buffer): Record<string, unknown> {
  let report: unknown;
  try {
    report = JSON.parse(payload.toString());
  } catch {
    throw new ProtocolError(ErrorCode.malformed, 'STATUS_REPLY payload is not JSON');
  }
  if (typeof report !== 'object' || report === null || Array.isArray(report)) {
    throw new ProtocolError(ErrorCode.malformed, 'STATUS_REPLY payload is not a JSON object');
  }
  return report as Record<string, unknown>;
}

/** Where client and server meet when no socket is named: the user's runtime
 * directory, else a private directory in /tmp (the server makes it 0700). */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XDG_RUNTIME_DIR) return `${env.XDG_RUNTIME_DIR}/warmlua.sock`;
  return `/tmp/warmlua-${process.getuid?.() ?? 0}/warmlua.sock`;
}
