// The s6 example (docs/examples/s6/warmluad) under a real s6-supervise:
// readiness through the notification fd, a run through bin/warmlua, a
// re-warm with s6-svc -h, and a clean stop with s6-svc -d (exit 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { bin, root, run, runShim, tempDir, writeScript } from './harness.js';

const haveS6 = ['s6-supervise', 's6-svwait', 's6-svc', 's6-svstat'].every((tool) =>
  (process.env.PATH ?? '').split(':').some((d) => d && fs.existsSync(path.join(d, tool))),
);
const example = path.join(root, 'docs/examples/s6/warmluad');

/** A copy of the example service directory with the two EDIT lines pointing
 * at this checkout and a socket in a temporary directory. */
function serviceDir(socket: string): string {
  const service = path.join(tempDir('warmlua-s6-'), 'warmluad');
  fs.cpSync(example, service, { recursive: true });
  const runFile = path.join(service, 'run');
  const original = fs.readFileSync(runFile, 'utf8');
  const edited = original
    .replace(/^WARMLUA_HOME=.*$/m, `WARMLUA_HOME=${root}`)
    .replace(/^WARMLUA_SOCKET=.*$/m, `WARMLUA_SOCKET=${socket}`);
  assert.equal(edited.split('\n').filter((l, i) => l !== original.split('\n')[i]).length, 2, 'both EDIT lines replaced');
  fs.writeFileSync(runFile, edited);
  return service;
}

const s6 = (tool: string, args: string[]) => run(tool, args, { timeoutMs: 30_000 });

/** `s6-svstat -o` fields, as strings. */
async function svstat(service: string, fields: string[]): Promise<string[]> {
  const r = await s6('s6-svstat', ['-o', fields.join(','), service]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split(/\s+/);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie is dead: only its parent has not reaped it yet.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

test('the s6 service directory: ready, serves, re-warms, stops cleanly', {
  skip: !haveS6 && 's6 is not installed (apt-get install s6)',
  timeout: 90_000,
}, async () => {
  const dir = tempDir();
  const socket = path.join(dir, 'sock', 'warmlua.sock');
  const service = serviceDir(socket);
  const supervisor = execa('s6-supervise', [service], {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    all: true,
    buffer: false,
    reject: false,
    cleanup: true,
  });
  let log = '';
  supervisor.all?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  let serverPid = 0;
  try {
    // s6-svwait needs the event fifodir s6-supervise makes as it starts.
    const deadline = Date.now() + 10_000;
    while (!fs.existsSync(path.join(service, 'event'))) {
      assert.ok(Date.now() < deadline && supervisor.exitCode === null, `s6-supervise did not start:\n${log}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const ready = await s6('s6-svwait', ['-U', '-t', '20000', service]);
    assert.equal(ready.status, 0, `not up and ready within 20 s: ${ready.stderr}\n${log}`);
    const [up, isReady, pid] = await svstat(service, ['up', 'ready', 'pid']);
    assert.deepEqual([up, isReady], ['true', 'true']);
    serverPid = Number(pid);
    assert.ok(serverPid > 0);
    // The supervised pid is the server itself: run and bin/warmluad exec it.
    assert.match(fs.readFileSync(`/proc/${serverPid}/cmdline`, 'utf8'), /warmluad\.js/);

    // Ready means serving: a run right away, without a fallback. The runner
    // is the server's child, so this surely went through it.
    const script = writeScript(dir, 'parent.lua', [
      'local stat = io.open("/proc/self/stat"):read("a")',
      'print("ppid", stat:match("%) %a (%d+)"), ...)',
    ].join('\n'));
    const first = await runShim(socket, [script, 'a b']);
    assert.deepEqual(first, { stdout: `ppid\t${serverPid}\ta b\n`, stderr: '', status: 0 });

    // s6-svc -h: SIGHUP re-warms; same server, still serving.
    assert.equal((await s6('s6-svc', ['-h', service])).status, 0);
    const deadlineHup = Date.now() + 20_000;
    while (!log.includes('SIGHUP: re-warmed')) {
      assert.ok(Date.now() < deadlineHup, `no re-warm in the log:\n${log}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(await runShim(socket, [script]), { stdout: `ppid\t${serverPid}\n`, stderr: '', status: 0 });
    assert.equal((await svstat(service, ['pid']))[0], String(serverPid));

    // s6-svc -d: SIGTERM, then the server exits 0 and stays down.
    assert.equal((await s6('s6-svc', ['-d', service])).status, 0);
    const down = await s6('s6-svwait', ['-D', '-t', '20000', service]);
    assert.equal(down.status, 0, `not down within 20 s: ${down.stderr}\n${log}`);
    assert.deepEqual(await svstat(service, ['up', 'wantedup', 'exitcode', 'signal']), ['false', 'false', '0', 'NA']);
    assert.ok(!alive(serverPid));
    assert.ok(!fs.existsSync(socket), 'the socket file is removed');
    assert.match(log, /warmluad: listening on /);
    assert.match(log, /warmluad: stopped$/m);

    // s6-svc -x: s6-supervise itself exits.
    assert.equal((await s6('s6-svc', ['-x', service])).status, 0);
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      supervisor.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 10_000))),
    ]);
    clearTimeout(timer);
    assert.ok(exited, 's6-supervise did not exit within 10 s of s6-svc -x');
    assert.equal(supervisor.exitCode, 0);

    // With no server, a run falls back to the cold interpreter.
    const cold = await run(bin('warmlua'), ['-e', 'print("cold")'], { env: { WARMLUA_SOCKET: socket } });
    assert.deepEqual(cold, { stdout: 'cold\n', stderr: '', status: 0 });
  } finally {
    // Failed half way: the server first (it holds s6-supervise's output
    // pipe, which execa waits for), then its supervisor.
    if (supervisor.exitCode === null && !serverPid) {
      serverPid = Number((await svstat(service, ['pid']).catch(() => ['0']))[0]) || 0;
    }
    if (serverPid > 0 && alive(serverPid)) process.kill(serverPid, 'SIGKILL');
    if (supervisor.exitCode === null) supervisor.kill('SIGKILL');
    await supervisor;
  }
});
