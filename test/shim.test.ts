// The native shim bin/warmlua against real lua5.3: same stdout, stderr and
// status, through a real warmluad, and through its fallbacks when the
// server is gone. Scripts live in directories whose names do not contain
// "warmlua", so that normaliseProgname only touches the progname.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ResultPromise } from 'execa';
import {
  assertSameOutcome,
  bin,
  normaliseProgname,
  runLua53,
  runShim,
  start,
  startServer,
  tempDir,
  writeScript,
  type Outcome,
  type RunOptions,
  type Server,
} from './harness.js';

const shim = bin('warmlua');
const signals = os.constants.signals as Record<string, number>;

async function settle(child: ResultPromise): Promise<Outcome> {
  const r = await child;
  const status = r.signal ? 128 + signals[r.signal] : (r.exitCode ?? -1);
  return { stdout: String(r.stdout), stderr: String(r.stderr), status };
}

/** The environment that sends the shim to `socket` with no fallback. */
const warmEnv = (socket: string, extra: Record<string, string> = {}) => ({
  WARMLUA_SOCKET: socket,
  WARMLUA_FALLBACK: 'none',
  ...extra,
});

/** Runs `file args`, waits for "ready" on its stderr and `delayMs` more,
 * sends `signal`, and returns how it ended. */
async function signalWhenReady(
  file: string,
  args: string[],
  signal: NodeJS.Signals,
  o: RunOptions = {},
  delayMs = 0,
): Promise<Outcome> {
  const child = start(file, args, o);
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes('ready')) resolve();
    });
    child.once('exit', () => reject(new Error(`exited before ready; stderr: ${seen}`)));
  });
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  child.kill(signal);
  return settle(child);
}

/** bash -c SCRIPT with the command appended as "$@". */
const bash = (script: string, command: string[], o?: RunOptions) =>
  settle(start('bash', ['-c', script, 'bash', ...command], o));

/** A script printing the numbers of its open descriptors: opening
 * /proc/self/fd/N fails with ENOENT exactly when N is not open (a socket
 * gives ENXIO). It opens nothing else, so it sees the caller's set. */
function fdLister(): string {
  return writeScript(
    dir,
    'fdlist.lua',
    'local open = {}\nfor n = 0, 1100 do\n' +
      '  local f, err = io.open("/proc/self/fd/" .. n, "r")\n' +
      '  if f then f:close() end\n' +
      '  if f or not err:find("No such file", 1, true) then open[#open + 1] = n end\n' +
      'end\nprint(table.concat(open, " "))\n',
  );
}

let server: Server;
let dir: string;

before(async () => {
  server = await startServer();
  dir = tempDir('shim-test-');
});

after(async () => {
  await server?.stop();
});

describe('warm runs match lua5.3', () => {
  test('hello with arguments', async () => {
    const file = writeScript(dir, 'hello.lua', 'print("hello", ...)\nprint(#arg, arg[0], arg[1], arg[-1] ~= nil)\n');
    const args = [file, 'a b', '', 'c'];
    assertSameOutcome(await runShim(server.socket, args), await runLua53(args));
  });

  test('exit codes and errors', async () => {
    const cases: Record<string, string> = {
      'exit3.lua': 'os.exit(3)',
      'exittrue.lua': 'os.exit(true)',
      'exitfalse.lua': 'os.exit(false)',
      'exit300.lua': 'os.exit(300)',
      'error.lua': 'io.write("partial ")\nerror("boom")',
    };
    for (const [name, source] of Object.entries(cases)) {
      const file = writeScript(dir, name, source + '\n');
      const warm = normaliseProgname(await runShim(server.socket, [file]), shim);
      assertSameOutcome(warm, await runLua53([file]), name);
    }
  });

  test('environment, working directory and stdin are the caller\'s', async () => {
    const file = writeScript(
      dir,
      'context.lua',
      'print(os.getenv("SHIM_TEST_VAR"))\nprint(io.open("relative.txt"):read("a"))\nfor l in io.lines() do print(#l) end\n',
    );
    fs.writeFileSync(path.join(dir, 'relative.txt'), 'here');
    const o = { cwd: dir, input: 'one\nthree\n', env: { SHIM_TEST_VAR: 'x y=z' } };
    assertSameOutcome(await runShim(server.socket, [file], o), await runLua53([file], o));
  });

  test('descriptors beyond 0-2 (fd 7, s6 notification-fd 10) reach the script', async () => {
    const file = writeScript(
      dir,
      'fds.lua',
      'for _, n in ipairs{7, 10} do\n' +
        '  local f = assert(io.open("/proc/self/fd/" .. n, "w"))\n' +
        '  f:write("fd ", n, "\\n")\n  f:close()\nend\n',
    );
    const outputs = async (command: string[], env?: Record<string, string>) => {
      const f7 = path.join(dir, 'fd7.txt');
      const f10 = path.join(dir, 'fd10.txt');
      const r = await bash(`exec 7>"${f7}" 10>"${f10}"; "$@"`, command, { env });
      return { ...r, fd7: fs.readFileSync(f7, 'utf8'), fd10: fs.readFileSync(f10, 'utf8') };
    };
    const warm = await outputs([shim, file], warmEnv(server.socket));
    assert.deepEqual(warm, await outputs(['lua5.3', file]));
    assert.equal(warm.fd7, 'fd 7\n');
  });

  // A runner keeps a few close-on-exec descriptors of its own (its connection,
  // its line to the server, stand-ins for the loop's eventfds): the script can
  // see them in /proc/self/fd, the commands it runs cannot (docs/differences.md).
  test('the caller\'s descriptors reach the script, and exactly those reach its commands', async () => {
    const script = `exec 7>"${path.join(dir, 'warm7.txt')}" 10</dev/null; "$@"`;
    const warm = await bash(script, [shim, fdLister()], { env: warmEnv(server.socket) });
    const cold = await bash(script, ['lua5.3', fdLister()]);
    const [warmFds, coldFds] = [warm, cold].map((r) => r.stdout.trim().split(' ').map(Number));
    assert.deepEqual(coldFds.filter((fd) => !warmFds.includes(fd)), []);
    assert.match(warm.stdout, /^0 1 2 .*\b7 10\b/);
    // The runner's own are above the caller's, so that a file the script
    // opens gets the number it would get under lua5.3.
    const own = warmFds.filter((fd) => !coldFds.includes(fd));
    assert.ok(own.every((fd) => fd > 10), `the runner's own descriptors ${own} among the caller's`);
    const commandFds = writeScript(dir, 'cmdfds.lua', 'os.execute("exec ls /proc/self/fd")\n');
    assertSameOutcome(
      await bash(script, [shim, commandFds], { env: warmEnv(server.socket) }),
      await bash(script, ['lua5.3', commandFds]),
    );
  });

  test('descriptors above the server\'s soft file limit reach the script; above its hard one, an error says so', async () => {
    const socket = path.join(tempDir('warmlua-nofile-'), 's.sock');
    const limited = start('prlimit', ['--nofile=256:2048', bin('warmluad'), '--socket', socket, '--warmup', 'none']);
    try {
      for (let i = 0; i < 500 && !fs.existsSync(socket); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      const probe = writeScript(dir, 'fdprobe.lua', 'print(io.open("/proc/self/fd/" .. arg[1], "w") ~= nil)\n');
      const withFd = (n: number, command: string[]) =>
        bash(`ulimit -n 4096; exec ${n}>/dev/null; "$@"`, [...command, probe, String(n)], { env: warmEnv(socket) });
      const warm = await withFd(1500, [shim]);
      assertSameOutcome(warm, await withFd(1500, ['lua5.3']));
      assert.equal(warm.stdout, 'true\n');
      const tooHigh = await withFd(3000, [shim]);
      assert.equal(tooHigh.status, 1);
      assert.match(tooHigh.stderr, /^warmlua: cannot give the script its descriptors \(up to 3000\): .*Too many open files\n$/);
    } finally {
      limited.kill('SIGTERM');
      await limited.catch(() => {});
    }
  });

  test('a symlink named lua runs warm and says lua in errors', async () => {
    const linkDir = tempDir('shim-link-');
    const lua = path.join(linkDir, 'lua');
    fs.symlinkSync(shim, lua);
    const file = writeScript(dir, 'link.lua', 'print(...)\nerror("via link")\n');
    const warm = await settle(start(lua, [file, 'x'], { env: warmEnv(server.socket) }));
    assertSameOutcome(normaliseProgname(warm, lua), await runLua53([file, 'x']));
  });

  test('#!/usr/bin/env warmlua scripts', async () => {
    const envDir = tempDir('shim-env-');
    const body = 'print("shebang", ...)\nprint(arg[0])\n';
    const warmFile = path.join(envDir, 'w.lua');
    const coldFile = path.join(envDir, 'c.lua');
    fs.writeFileSync(warmFile, '#!/usr/bin/env warmlua\n' + body, { mode: 0o755 });
    fs.writeFileSync(coldFile, '#!/usr/bin/env lua5.3\n' + body, { mode: 0o755 });
    const PATH = `${path.dirname(shim)}:${process.env.PATH}`;
    const warm = await settle(start(warmFile, ['a'], { env: warmEnv(server.socket, { PATH }) }));
    const real = await runLua53([coldFile, 'a']);
    assertSameOutcome(warm, { ...real, stdout: real.stdout.replace(coldFile, warmFile) });
  });

  test('Liminix #! line: the -e chunk arrives as one argument', async () => {
    const linkDir = tempDir('shim-liminix-');
    const lua = path.join(linkDir, 'lua');
    fs.symlinkSync(shim, lua);
    const body = 'local M = {}\nfunction M.run(...) print("run", arg[0] ~= nil, ...) end\nreturn M\n';
    const warmFile = path.join(linkDir, 'w.lua');
    const coldFile = path.join(linkDir, 'c.lua');
    fs.writeFileSync(warmFile, `#!${lua} -e dofile(arg[0]).run()\n` + body, { mode: 0o755 });
    fs.writeFileSync(coldFile, '#!/usr/bin/lua5.3 -e dofile(arg[0]).run()\n' + body, { mode: 0o755 });
    const warm = await settle(start(warmFile, ['p'], { env: warmEnv(server.socket) }));
    assertSameOutcome(warm, await settle(start(coldFile, ['p'])));
  });
});

describe('signals and endings', () => {
  const loop = 'io.stderr:write("ready\\n")\nwhile true do end\n';

  test('SIGTERM kills the shim as it kills lua5.3', async () => {
    const file = writeScript(dir, 'term.lua', loop);
    const warm = await signalWhenReady(shim, [file], 'SIGTERM', { env: warmEnv(server.socket) });
    assertSameOutcome(warm, await signalWhenReady('lua5.3', [file], 'SIGTERM'));
    assert.equal(warm.status, 128 + signals.SIGTERM);
  });

  test('SIGHUP and SIGUSR1 are forwarded too', async () => {
    const file = writeScript(dir, 'hup.lua', loop);
    for (const signal of ['SIGHUP', 'SIGUSR1'] as const) {
      const warm = await signalWhenReady(shim, [file], signal, { env: warmEnv(server.socket) });
      assertSameOutcome(warm, await signalWhenReady('lua5.3', [file], signal), signal);
    }
  });

  test('SIGINT: "interrupted!" and status 1, as lua5.3', async () => {
    const file = writeScript(dir, 'int.lua', loop);
    // The delay puts both in the loop, not in write: the traceback says where.
    const warm = await signalWhenReady(shim, [file], 'SIGINT', { env: warmEnv(server.socket) }, 200);
    const real = await signalWhenReady('lua5.3', [file], 'SIGINT', {}, 200);
    assert.match(real.stderr, /^ready\nlua5\.3: .*interrupted!\n/);
    assertSameOutcome(normaliseProgname(warm, shim), real);
  });

  test('^Z (SIGTSTP) stops the script and the shim, SIGCONT resumes both, as with lua5.3', async () => {
    // CPU time, which does not pass while stopped: the script outlasts the stop.
    const file = writeScript(
      dir,
      'tstp.lua',
      'io.stderr:write("ready ", io.open("/proc/self/stat"):read("n"), "\\n")\n' +
        'local t = os.clock() while os.clock() - t < 0.3 do end\nprint("done")\n',
    );
    const state = (pid: number) => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1][0];
    const stopAndGo = async (command: string[], o: RunOptions = {}) => {
      // In a process group of its own, as a shell puts a job: SIGTSTP stops
      // a process there (in an orphaned group the kernel would drop it).
      const inOwnGroup = 'import os, sys; os.setpgid(0, 0); os.execvp(sys.argv[1], sys.argv[1:])';
      const child = start('python3', ['-c', inOwnGroup, ...command], o);
      let seen = '';
      const scriptPid = await new Promise<number>((resolve, reject) => {
        child.stderr?.on('data', (chunk: Buffer) => {
          seen += chunk.toString();
          const m = /ready (\d+)\n/.exec(seen);
          if (m) resolve(Number(m[1]));
        });
        child.once('exit', () => reject(new Error(`exited before ready; stderr: ${seen}`)));
      });
      child.kill('SIGTSTP');
      let stopped = false;
      for (let i = 0; i < 200 && !stopped; i++) {
        stopped = state(child.pid!) === 'T' && state(scriptPid) === 'T';
        if (!stopped) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      child.kill('SIGCONT');
      const { stdout, stderr, status } = await settle(child);
      return { stdout, stderr: stderr.replace(/\d+/, 'PID'), status, stopped };
    };
    const warm = await stopAndGo([shim, file], { env: warmEnv(server.socket) });
    assert.deepEqual(warm, await stopAndGo(['lua5.3', file]));
    assert.deepEqual(warm, { stdout: 'done\n', stderr: 'ready PID\n', status: 0, stopped: true });
  });

  test('SIGPIPE: `script | head -1` ends with 141', async () => {
    const file = writeScript(dir, 'yes.lua', 'while true do io.write("y\\n") end\n');
    const pipeline = 'set -o pipefail; "$@" | head -1';
    const warm = await bash(pipeline, [shim, file], { env: warmEnv(server.socket) });
    assertSameOutcome(warm, await bash(pipeline, ['lua5.3', file]));
    assert.equal(warm.status, 141);
  });

  test('a server killed mid-run: one line and status 111', async () => {
    const doomed = await startServer();
    const file = writeScript(dir, 'orphan.lua', loop);
    const child = start(shim, [file], { env: warmEnv(doomed.socket) });
    await new Promise<void>((resolve) => child.stderr?.on('data', (c: Buffer) => c.includes('ready') && resolve()));
    doomed.process.kill('SIGKILL');
    const r = await settle(child);
    await doomed.stop();
    assert.equal(r.status, 111);
    assert.match(r.stderr, new RegExp(`^ready\\n${shim}: lost connection to warmluad: .+\\n$`));
  });
});

describe('fallback when the server is unavailable', () => {
  test('a stopped server: warmlua-cold gives the same output', async () => {
    const stopped = await startServer();
    await stopped.stop();
    const file = writeScript(dir, 'cold.lua', 'print("cold", ...)\nos.exit(5)\n');
    const linkDir = tempDir('shim-cold-');
    const lua = path.join(linkDir, 'lua'); // warmlua-cold is found through /proc/self/exe
    fs.symlinkSync(shim, lua);
    const env = { WARMLUA_SOCKET: stopped.socket, WARMLUA_FALLBACK: '' };
    assertSameOutcome(await settle(start(lua, [file, 'a'], { env })), await runLua53([file, 'a']));
    const failing = writeScript(dir, 'coldfail.lua', 'error("cold boom")\n');
    const cold = await settle(start(lua, [failing], { env }));
    assertSameOutcome(normaliseProgname(cold, lua), await runLua53([failing]));
  });

  test('fallback keeps every descriptor and leaks none of its own', async () => {
    const r = await bash(`exec 7>"${path.join(dir, 'cold7.txt')}"; "$@"`, [shim, fdLister()], {
      env: { WARMLUA_SOCKET: path.join(dir, 'no.sock'), WARMLUA_FALLBACK: 'lua5.3' },
    });
    const real = await bash(`exec 7>"${path.join(dir, 'cold7.txt')}"; "$@"`, ['lua5.3', fdLister()]);
    assertSameOutcome(r, real);
    assert.match(r.stdout, /^0 1 2 .*\b7\b/);
  });

  test('WARMLUA_FALLBACK names an interpreter: it gets the same argv', async () => {
    const file = writeScript(dir, 'named.lua', 'print(...)\nerror("named")\n');
    const env = { WARMLUA_SOCKET: path.join(dir, 'no.sock'), WARMLUA_FALLBACK: 'lua5.3' };
    const r = await settle(start(shim, [file, 'q'], { env }));
    assertSameOutcome(normaliseProgname(r, shim), await runLua53([file, 'q']));
  });

  test('WARMLUA_FALLBACK=none: one line and status 1', async () => {
    const socket = path.join(dir, 'absent.sock');
    const r = await runShim(socket, [writeScript(dir, 'never.lua', 'print("ran")\n')]);
    assertSameOutcome(r, {
      stdout: '',
      stderr: `${shim}: cannot reach warmluad at ${socket}: No such file or directory\n`,
      status: 1,
    });
  });

  test('a fallback that does not exist: status 127', async () => {
    const env = { WARMLUA_SOCKET: path.join(dir, 'no.sock'), WARMLUA_FALLBACK: 'no-such-lua-here' };
    const r = await settle(start(shim, ['x.lua'], { env }));
    assert.equal(r.status, 127);
    assert.match(r.stderr, /cannot run no-such-lua-here: No such file or directory\n$/);
  });

  test('WARMLUA_TRACE=1 prints the phases on one line', async () => {
    const file = writeScript(dir, 'trace.lua', 'io.write("t")\n');
    const r = await runShim(server.socket, [file], { env: { WARMLUA_TRACE: '1' } });
    assert.equal(r.stdout, 't');
    assert.match(
      r.stderr,
      /^.*: trace: connected [\d.]+ ms, request sent [\d.]+ ms, runner started [\d.]+ ms, exit received [\d.]+ ms\n$/,
    );
  });
});
