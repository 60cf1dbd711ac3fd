// Typed access to the addon's part for the standard library (native/stdlib.c).
// Every call is synchronous: safe in a runner. Errors are thrown as Error
// with .errno (positive) and .code, like Node's own.
import { native as addon } from '../native.js';

/** How a child ended: [0, exit status] or [1, signal number]. */
export type ChildEnd = [killed: number, value: number];

/** struct tm as [sec, min, hour, mday, mon, year, wday, yday, isdst]. */
export type TmFields = [number, number, number, number, number, number, number, number, number];

export interface StdlibNative {
  strerror(errno: number): string;
  /** Blocks until fd is readable (forWrite 0) or writable (1). */
  waitFd(fd: number, forWrite: number): void;
  getenv(name: Buffer): Buffer | null;
  lseek(fd: number, offset: number, whence: number): number;
  /** /bin/sh -c command with a pipe on its stdin (forWrite 1) or stdout; [pid, our end]. */
  popen(command: Buffer, forWrite: number): [pid: number, fd: number];
  waitChild(pid: number): ChildEnd;
  /** C's system(command). */
  system(command: Buffer): ChildEnd;
  brokenDownTime(t: number, utc: number): TmFields | null;
  /** One strftime conversion ("%F", "%Ec"...) of time t. */
  strftime(conversion: Buffer, t: number, utc: number): Buffer | null;
  /** mktime of [sec, min, hour, mday, mon, year, isdst]: [t, ...normalised TmFields]. */
  mktime(fields: number[]): [number, ...TmFields] | null;
  /** setlocale with os.setlocale's category index (all, collate, ctype, monetary, numeric, time). */
  setlocale(category: number, locale: Buffer | null): Buffer | null;
  mkstemp(template: Buffer): [fd: number, name: Buffer];
}

export const native = addon as unknown as StdlibNative;
