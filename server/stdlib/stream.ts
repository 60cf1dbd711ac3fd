// A C stdio FILE on a raw fd, synchronous only (a runner must never touch
// the event loop). It reproduces glibc's buffering so that output reaches
// the fds in the same pieces and order as under lua5.3: a tty is line
// buffered, anything else fully buffered with st_blksize, stderr unbuffered.
import fs from 'node:fs';
import tty from 'node:tty';
import { EBADF, EINVAL, errnoOf } from './errors.js';
import { native } from './native.js';

export type BufferMode = 'no' | 'full' | 'line';

export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;

/** What a positioning call gives: the new offset, or the errno of its failure. */
export type SeekResult = { offset: number; errno: 0 } | { offset: -1; errno: number };

const NEWLINE = 10;
const DEFAULT_BUFFER_SIZE = 8192; // glibc's BUFSIZ, when fstat gives no st_blksize
const FIRST_GUESS = 64 * 1024; // room for a read whose size fstat cannot tell (a pipe's)
const MIN_ALIGNED_BLOCK = 128; // glibc writes whole blocks only of buffers this big

/** One read(2) that blocks even on an O_NONBLOCK fd (a client's may be). */
function readSome(fd: number, into: Uint8Array, offset: number, length: number): number {
  for (;;) {
    try {
      return fs.readSync(fd, into, offset, length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') native.waitFd(fd, 0);
      else if (code !== 'EINTR') throw e;
    }
  }
}

/** A copy of `bytes` in an array twice as long, or `limit` long if that is less. */
function grown(bytes: Uint8Array, limit: number): Uint8Array {
  const bigger = new Uint8Array(Math.min(bytes.length * 2, limit));
  bigger.set(bytes);
  return bigger;
}

/** write(2) until every byte is out: partial writes and EAGAIN are retried. */
function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) {
    try {
      done += fs.writeSync(fd, data, done, data.length - done);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') native.waitFd(fd, 1);
      else if (code !== 'EINTR') throw e;
    }
  }
}

/** Every stream not yet closed, oldest first (C's exit flushes them all). */
const openStreams = new Set<Stream>();
let standardOutput: Stream | null = null;

export class Stream {
  /** C's feof and ferror (the errno of the last failure, 0 if none). */
  eof = false;
  errno = 0;
  private mode: BufferMode | null;
  private size = 0;
  private pending: Buffer | null = null;
  private pendingLength = 0;
  private input: Buffer | null = null;
  private inputStart = 0;
  private inputEnd = 0;

  constructor(
    readonly fd: number,
    private readonly readable: boolean,
    private readonly writable: boolean,
    mode: BufferMode | null = null,
  ) {
    this.mode = mode;
    openStreams.add(this);
  }

  /** Makes this stream the one flushed before a line-buffered read (glibc's rule for stdout). */
  markAsStandardOutput(): void {
    standardOutput = this;
  }

  /** Forgets what was buffered or detected, for a process that inherited this stream. */
  reset(mode: BufferMode | null): void {
    this.mode = mode;
    this.pending = this.input = null;
    this.pendingLength = this.inputStart = this.inputEnd = this.size = 0;
    this.eof = false;
    this.errno = 0;
  }

  /** glibc decides at the first I/O: a tty is line buffered, the size is
   * st_blksize; an unbuffered stream gets a one-byte buffer. */
  private setUp(): void {
    if (this.size > 0) return;
    if (this.mode === 'no') {
      this.size = 1;
      return;
    }
    let blockSize = 0;
    try {
      blockSize = fs.fstatSync(this.fd).blksize;
    } catch {
      // a bad fd: the read or write itself will report it
    }
    this.size = blockSize > 0 ? blockSize : DEFAULT_BUFFER_SIZE;
    this.mode ??= tty.isatty(this.fd) ? 'line' : 'full';
  }

  private fail(errno: number): false {
    this.errno = errno;
    return false;
  }

  clearError(): void {
    this.eof = false;
    this.errno = 0;
  }

  // ---- writing ----

  /** fwrite: false (and errno set) when a write failed. */
  write(data: Uint8Array): boolean {
    if (!this.writable) return this.fail(EBADF);
    this.setUp();
    if (!this.leaveReading()) return false;
    if (this.mode === 'no') return this.writeThrough(data);
    return this.writeBuffered(data);
  }

  /** glibc's _IO_new_file_xsputn: fill the buffer; when data is left over
   * (or a line ended), flush it, write whole blocks directly, keep the rest. */
  private writeBuffered(data: Uint8Array): boolean {
    const pending = (this.pending ??= Buffer.allocUnsafe(this.size));
    let count = this.size - this.pendingLength;
    let mustFlush = false;
    if (this.mode === 'line' && count >= data.length) {
      const lastNewline = data.lastIndexOf(NEWLINE);
      if (lastNewline >= 0) {
        count = lastNewline + 1;
        mustFlush = true;
      }
    }
    count = Math.min(count, data.length);
    // All of it, the usual case, with no subarray: a string of 64 bytes or
    // less lives in V8's heap, and a subarray of it moves it out first (a
    // malloc, and a free when the collector sweeps; io.write of 200,000
    // numbers spent an eighth of its time in malloc and free).
    const whole = count === data.length;
    pending.set(whole ? data : data.subarray(0, count), this.pendingLength);
    this.pendingLength += count;
    if (whole && !mustFlush) return true;
    if (!this.flushOutput()) return false;
    if (whole) return true;
    let rest = data.subarray(count);
    const direct = rest.length - (this.size >= MIN_ALIGNED_BLOCK ? rest.length % this.size : 0);
    if (direct > 0 && !this.writeThrough(rest.subarray(0, direct))) return false;
    rest = rest.subarray(direct);
    const lineEnd = this.mode === 'line' ? rest.lastIndexOf(NEWLINE) + 1 : 0;
    if (lineEnd > 0 && !this.writeThrough(rest.subarray(0, lineEnd))) return false;
    pending.set(rest.subarray(lineEnd), 0);
    this.pendingLength = rest.length - lineEnd;
    return true;
  }

  private writeThrough(data: Uint8Array): boolean {
    try {
      writeAll(this.fd, data);
      return true;
    } catch (e) {
      return this.fail(errnoOf(e));
    }
  }

  /** Writes what is buffered for output. */
  flushOutput(): boolean {
    if (this.pendingLength === 0 || this.pending === null) return true;
    const data = this.pending.subarray(0, this.pendingLength);
    this.pendingLength = 0; // glibc drops what it could not write
    return this.writeThrough(data);
  }

  /** Before writing after reading: put the fd back where the reader is. */
  private leaveReading(): boolean {
    const unread = this.inputEnd - this.inputStart;
    this.inputStart = this.inputEnd = 0;
    if (unread === 0) return true;
    try {
      native.lseek(this.fd, -unread, SEEK_CUR);
      return true;
    } catch (e) {
      return this.fail(errnoOf(e));
    }
  }

  /** fflush: writes what is buffered; for a reader, gives back the read-ahead. */
  flush(): boolean {
    if (this.pendingLength > 0) return this.flushOutput();
    if (this.inputEnd > this.inputStart) {
      // unseekable (a pipe, a tty): the read-ahead stays, as in glibc
      const unread = this.inputEnd - this.inputStart;
      try {
        native.lseek(this.fd, -unread, SEEK_CUR);
        this.inputStart = this.inputEnd = 0;
      } catch {
        // nothing to give back on this kind of fd
      }
    }
    return true;
  }

  /** setvbuf without a buffer, as glibc does it: "no" flushes and keeps a
   * one-byte buffer, which "full" and "line" then keep too (the size
   * argument is ignored); "full" allocates st_blksize if nothing was. */
  setBuffering(mode: BufferMode): boolean {
    if (mode === 'no') {
      if (!this.flush()) return false;
      this.pending = this.input = null; // unread input of a pipe is lost, as in glibc
      this.inputStart = this.inputEnd = 0;
      this.size = 1;
    }
    this.mode = mode;
    if (mode === 'full') this.setUp();
    return true;
  }

  // ---- reading ----

  /** What glibc does before asking the fd for input; false if it must not. */
  private prepareRead(): boolean {
    if (this.eof || this.errno !== 0) return false; // sticky until clearError, as in glibc
    if (!this.readable) return this.fail(EBADF);
    this.setUp();
    if (!this.flushOutput()) return false;
    if (this.mode !== 'full') standardOutput?.flushIfLineBuffered();
    return true;
  }

  /** One read(2) into `into` at `offset`; 0 at end of file or on error (eof/errno set). */
  private readInto(into: Uint8Array, offset: number, length: number): number {
    let n: number;
    try {
      n = readSome(this.fd, into, offset, length);
    } catch (e) {
      this.fail(errnoOf(e));
      return 0;
    }
    if (n === 0) this.eof = true;
    return n;
  }

  /** Makes sure some input is buffered; false at end of file or on error. */
  private fill(): boolean {
    if (this.inputStart < this.inputEnd) return true;
    if (!this.prepareRead()) return false;
    const input = (this.input ??= Buffer.allocUnsafe(this.size));
    this.inputStart = 0;
    this.inputEnd = this.readInto(input, 0, this.size);
    return this.inputEnd > 0;
  }

  private flushIfLineBuffered(): void {
    if (this.mode === 'line') this.flushOutput();
  }

  /** getc without consuming: the next byte, or -1 at end of file or on error. */
  peek(): number {
    return this.fill() ? this.input![this.inputStart] : -1;
  }

  /** Consumes the byte peek() returned. */
  advance(): void {
    this.inputStart++;
  }

  /** Takes up to n buffered bytes (a copy: the buffer is reused). */
  private takeBuffered(n: number): Buffer {
    const end = this.inputStart + Math.min(n, this.inputEnd - this.inputStart);
    const taken = Buffer.from(this.input!.subarray(this.inputStart, end));
    this.inputStart = end;
    return taken;
  }

  /** Up to the next newline (included or not); `complete` if a newline ended it.
   * The line may be a view of the input buffer, good until the next read:
   * the caller copies it (lua_pushstring does). */
  readLine(keepNewline: boolean): { line: Uint8Array; complete: boolean } {
    // The common case, a whole line in the buffer, as a view: no copy of
    // its own, where the loop below makes two. One copy instead of two took
    // io.lines over 10 MB from 608-648 ms to 507-530; none, together with
    // fengari's faster copy (scripts/fix-fengari.ts), to 0.49-0.71 of the CPU.
    if (this.inputStart < this.inputEnd) {
      const newline = this.input!.indexOf(NEWLINE, this.inputStart);
      if (newline >= 0 && newline < this.inputEnd) {
        const line = this.input!.subarray(this.inputStart, newline + (keepNewline ? 1 : 0));
        this.inputStart = newline + 1;
        return { line, complete: true };
      }
    }
    const parts: Buffer[] = [];
    while (this.fill()) {
      const newline = this.input!.indexOf(NEWLINE, this.inputStart);
      if (newline < 0 || newline >= this.inputEnd) {
        parts.push(this.takeBuffered(Infinity));
        continue;
      }
      parts.push(this.takeBuffered(newline - this.inputStart + (keepNewline ? 1 : 0)));
      if (!keepNewline) this.inputStart++;
      return { line: Buffer.concat(parts), complete: true };
    }
    return { line: Buffer.concat(parts), complete: false };
  }

  /** Up to n bytes (fewer only at end of file or on error), in an array of
   * its own that nothing else refers to, so that the caller may hand it to
   * Lua without a copy. Like glibc's fread, what is buffered comes first; a
   * request the buffer could not hold is read straight from the fd, into
   * the result (sized, for a large one, by what a regular file has left),
   * and a smaller one fills the buffer. Read in parts, then joined and
   * copied by Lua, 10 MB took three buffers of 10 MB, each a page fault per
   * 4 KiB, and an 8 KiB block three allocations outside V8's heap. */
  readChars(n: number): Uint8Array {
    this.setUp();
    const buffered = this.inputEnd - this.inputStart;
    let result: Uint8Array = new Uint8Array(this.expectedLength(n, buffered));
    let length = 0;
    while (length < n) {
      const direct = this.inputStart === this.inputEnd && n - length >= this.size;
      if (direct ? !this.prepareRead() : !this.fill()) break;
      if (length === result.length) result = grown(result, n);
      if (direct) {
        const got = this.readInto(result, length, result.length - length);
        if (got === 0) break;
        length += got;
      } else {
        const end = this.inputStart + Math.min(result.length - length, this.inputEnd - this.inputStart);
        result.set(this.input!.subarray(this.inputStart, end), length);
        length += end - this.inputStart;
        this.inputStart = end;
      }
    }
    if (length === result.length) return result;
    // a guess far too big (a pipe's) would keep its memory for as long as the string lives
    return length < result.length / 2 ? result.slice(0, length) : result.subarray(0, length);
  }

  /** Everything up to end of file (see readChars). */
  readAll(): Uint8Array {
    return this.readChars(Infinity);
  }

  /** Room for a read of up to n bytes: n, up to a first guess's worth (no
   * fstat for each block of a loop); beyond, what is buffered and what a
   * regular file has left, + 1 to see the end without growing, and a
   * buffer's worth at least (a file in /proc says it has 0 bytes). */
  private expectedLength(n: number, buffered: number): number {
    if (n <= FIRST_GUESS) return n;
    return Math.min(n, buffered + Math.max(this.bytesLeft() + 1, this.size));
  }

  /** What a regular file has left past the fd's offset; for anything else
   * (or if asking fails), a first guess. */
  private bytesLeft(): number {
    try {
      const stat = fs.fstatSync(this.fd);
      if (stat.isFile()) return Math.max(0, stat.size - native.lseek(this.fd, 0, SEEK_CUR));
    } catch {
      // a bad fd: the read itself will report it
    }
    return FIRST_GUESS;
  }

  // ---- positioning ----

  /** fseek then ftell: the new offset of the reader/writer. */
  seek(whence: number, offset: number): SeekResult {
    this.setUp();
    if (!this.flushOutput()) return { offset: -1, errno: this.errno };
    const unread = this.inputEnd - this.inputStart;
    const target = whence === SEEK_CUR ? offset - unread : offset;
    try {
      if (whence === SEEK_CUR && native.lseek(this.fd, 0, SEEK_CUR) + target < 0) {
        return { offset: -1, errno: EINVAL };
      }
      const result = native.lseek(this.fd, target, whence);
      this.inputStart = this.inputEnd = 0;
      this.eof = false;
      return { offset: result, errno: 0 };
    } catch (e) {
      return { offset: -1, errno: errnoOf(e) };
    }
  }

  // ---- closing ----

  /** fclose: flushes, closes the fd; the errno of the first failure, or 0. */
  close(): number {
    const flushed = this.flushOutput();
    openStreams.delete(this);
    try {
      fs.closeSync(this.fd);
    } catch (e) {
      return flushed ? errnoOf(e) : this.errno;
    }
    return flushed ? 0 : this.errno;
  }
}

/** fflush(NULL), also what C's exit does: write what every open stream
 * buffered for output, the most recent stream first (input is left alone). */
export function flushAllStreams(): void {
  for (const stream of [...openStreams].reverse()) stream.flushOutput();
}
