// warmluad as a service (issue 6, second slice): --max-runners and its
// queue, --max-runtime, re-warming on SIGHUP and `warmluad status`.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { run as runClient, WarmluaError } from '../client/client.js';
import { ErrorCode } from '../server/protocol.js';
import { bin, run, runShim, serverStarter, serverStatus, statusReport, tempDir, waitFor, writeScript, type Server } from './harness.js';

const TEST_TIMEOUT = 60_000;
const dir = tempDir();
const hello = writeScript(dir, 'hello.lua', 'print("hello")\n');
/** Busy for `seconds`, then prints its name: a run that holds a runner. */
const busy = (seconds: number, name: string) =>
  writeScript(dir, `busy-${name}.lua`, `local t = os.clock() while os.clock() - t < ${seconds} do end print("${name}")\n`);

const serve = serverStarter(['--warmup', 'none']);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


/** A shim run that also says when it ended. */
async function timedShim(socket: string, args: string[], env: Record<string, string> = {}) {
  const outcome = await runShim(socket, args, { env });
  return { ...outcome, endedAt: Date.now() };
}

describe('--max-runners and the queue', { timeout: TEST_TIMEOUT }, () => {
  test('a request beyond the cap waits, then runs as soon as the runner ends', async () => {
    const server = await serve(['--max-runners', '1', '--queue-timeout', '10']);
    const first = timedShim(server.socket, [busy(1, 'first')]);
    await sleep(300); // the first surely holds the only runner
    const second = await timedShim(server.socket, [hello]);
    const firstDone = await first;
    assert.deepEqual([firstDone.stdout, firstDone.status], ['first\n', 0]);
    assert.deepEqual([second.stdout, second.stderr, second.status], ['hello\n', '', 0]);
    assert.ok(second.endedAt >= firstDone.endedAt - 50, 'the queued run ended before the running one');
  });

  test('past --queue-timeout the client gets BUSY; the shim then runs the script cold', async () => {
    const server = await serve(['--max-runners', '1', '--queue-timeout', '0.5']);
    const holder = runShim(server.socket, [busy(2.5, 'holder')]);
    await sleep(300);
    const began = Date.now();
    await assert.rejects(runClient({ socket: server.socket, argv: ['lua', hello], fds: [] }), (error) => {
      assert.ok(error instanceof WarmluaError);
      assert.equal(error.code, ErrorCode.busy);
      assert.equal(error.notStarted, true);
      assert.match(error.message, /all 1 runners in use, and none came free within 0\.5 s/);
      return true;
    });
    assert.ok(Date.now() - began >= 400, 'BUSY came before the queue timeout');
    const none = await runShim(server.socket, [hello]);
    assert.equal(none.status, 1);
    assert.match(none.stderr, /cannot reach warmluad at .*: busy: all 1 runners in use/);
    // The shim's default fallback: the script still runs, cold.
    const cold = await run(bin('warmlua'), [hello], { env: { WARMLUA_SOCKET: server.socket } });
    assert.deepEqual(cold, { stdout: 'hello\n', stderr: '', status: 0 });
    assert.deepEqual(await holder, { stdout: 'holder\n', stderr: '', status: 0 });
    assert.match(server.log(), /connection closed: all 1 runners in use, and none came free within 0\.5 s/);
  });

  test('--queue-size 0: BUSY at once', async () => {
    const server = await serve(['--max-runners', '1', '--queue-size', '0']);
    const holder = runShim(server.socket, [busy(1, 'holder')]);
    await sleep(300);
    const refused = await runShim(server.socket, [hello]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /busy: all 1 runners in use and the queue is full/);
    assert.equal((await holder).status, 0);
  });
});

describe('--max-runtime', { timeout: TEST_TIMEOUT }, () => {
  test("a run past the limit has its process group killed, says so on the client's stderr and ends 137", async () => {
    const server = await serve(['--max-runtime', '1']);
    const began = Date.now();
    // The script's child is in the run's process group: it dies too.
    const [looping, sleeping] = await Promise.all([
      runShim(server.socket, ['-e', 'while true do end']),
      runShim(server.socket, ['-e', 'os.execute("sleep 30") print("not reached")']),
    ]);
    assert.ok(Date.now() - began < 10_000, 'killed late');
    for (const outcome of [looping, sleeping]) {
      assert.equal(outcome.status, 137);
      assert.equal(outcome.stdout, '');
      assert.match(outcome.stderr, /^warmluad: run pid \d+ killed after 1 s \(--max-runtime\)\n$/);
    }
    assert.equal(server.log().match(/killed after 1 s \(--max-runtime\)/g)?.length, 2);
    // A run within the limit is untouched.
    assert.deepEqual(await runShim(server.socket, [hello]), { stdout: 'hello\n', stderr: '', status: 0 });
  });
});



/** A module directory and a config file that preloads from it. */
function preloadSetup(modules: Record<string, string>, preload: string[]) {
  const modDir = tempDir('warmlua-mod-');
  for (const [name, value] of Object.entries(modules)) writeScript(modDir, `${name}.lua`, `return "${value}"\n`);
  const config = path.join(modDir, 'config.json');
  const writeConfig = (names: string[]) =>
    fs.writeFileSync(config, JSON.stringify({ preload: names, luaPath: path.join(modDir, '?.lua') }));
  writeConfig(preload);
  return { modDir, config, writeConfig };
}

const rewarms = (server: Server) => server.log().match(/SIGHUP: re-warmed/g)?.length ?? 0;

describe('SIGHUP re-warm', { timeout: TEST_TIMEOUT }, () => {
  test('runs during re-warms all succeed; an edited module shows in the next run; a broken one is left out', async () => {
    const { modDir, config } = preloadSetup({ mod: 'v1' }, ['mod']);
    const server = await serve(['--config', config]);
    // The module is read from the warm state, not required again.
    const show = ['-e', 'print(package.loaded.mod)'];
    assert.equal((await runShim(server.socket, show)).stdout, 'v1\n');

    const outcomes = [];
    for (let wave = 0; wave < 5; wave++) {
      if (wave > 0) server.process.kill('SIGHUP');
      outcomes.push(...(await Promise.all(Array.from({ length: 8 }, () => runShim(server.socket, [hello])))));
    }
    await waitFor('four re-warms', () => rewarms(server) === 4);
    for (const outcome of outcomes) assert.deepEqual(outcome, { stdout: 'hello\n', stderr: '', status: 0 });

    writeScript(modDir, 'mod.lua', 'return "v2"\n');
    server.process.kill('SIGHUP');
    await waitFor('the fifth re-warm', () => rewarms(server) === 5);
    assert.equal((await runShim(server.socket, show)).stdout, 'v2\n');

    // A module that no longer loads is left out, not kept stale (test/freshness.test.ts).
    writeScript(modDir, 'mod.lua', 'return (\n');
    server.process.kill('SIGHUP');
    await waitFor('the re-warm without it', () => /SIGHUP: re-warmed .*left out: cannot preload module 'mod'/.test(server.log()));
    assert.equal((await runShim(server.socket, show)).stdout, 'nil\n');
  });
});

describe('warmluad status', { timeout: TEST_TIMEOUT }, () => {
  test('prints runs served and active, latency, the warm state and RSS; --json parses', async () => {
    const { config, writeConfig } = preloadSetup({ mod: 'v1', other: 'o' }, ['mod']);
    const server = await serve(['--config', config]);
    const before = await statusReport(server);
    assert.equal(before.runsServed, 0);
    assert.equal(before.latencyMs, null);
    const runs = 5;
    for (let i = 0; i < runs; i++) assert.equal((await runShim(server.socket, [hello])).status, 0);
    // A client hears the runner's own EXITED, which can precede the reap that counts the run.
    await waitFor('every run counted', async () => (await statusReport(server)).runsServed === runs);
    const r = await statusReport(server);
    assert.equal(r.pid, server.process.pid);
    assert.equal(r.runsActive, 0);
    assert.equal(r.runsQueued, 0);
    assert.ok(r.latencyMs && r.latencyMs.p50 > 0 && r.latencyMs.p50 <= r.latencyMs.p99, JSON.stringify(r));
    assert.ok(r.warmStateAgeSeconds >= 0);
    assert.deepEqual(r.preload, ['mod']);
    assert.ok(r.rssBytes > 10 * 1024 * 1024);

    const text = await serverStatus(server, false);
    assert.match(text, /^runs served: +5$/m);
    assert.match(text, /^runs active: +0 \(0 queued\)$/m);
    assert.match(text, /^latency: +p50 [\d.]+ ms, p99 [\d.]+ ms$/m);
    assert.match(text, /^warm state: +\d+ s old, preloaded: mod$/m);
    assert.match(text, /^server rss: +[\d.]+ MiB$/m);
    // hello.lua, run five times, is kept compiled after the second (test/scriptcache.test.ts)
    assert.match(text, /^scripts kept: +1 compiled, \d+ runs loaded theirs from there$/m);

    // SIGHUP re-reads the config: the new preload list shows.
    writeConfig(['mod', 'other']);
    server.process.kill('SIGHUP');
    await waitFor('the re-warm', () => rewarms(server) === 1);
    assert.deepEqual((await statusReport(server)).preload, ['mod', 'other']);
    // A STATUS connection is not a run, and the server goes on serving.
    assert.equal((await statusReport(server)).runsServed, runs);
    assert.deepEqual(await runShim(server.socket, [hello]), { stdout: 'hello\n', stderr: '', status: 0 });
  });

  test('no server: exit 111 with the reason', async () => {
    const outcome = await run(bin('warmluad'), ['status', '--socket', path.join(dir, 'nobody.sock')]);
    assert.equal(outcome.status, 111);
    assert.match(outcome.stderr, /cannot get the status of warmluad at .*nobody\.sock: .*ENOENT|no such file/i);
  });
});

describe('limit options: usage errors exit 100', { timeout: TEST_TIMEOUT }, () => {
  const cases: [string[], RegExp][] = [
    [['--max-runners', '0'], /max runners: expected 1 to 65536, got 0/],
    [['--queue-size=-1'], /queue size: expected 0 to 65536/],
    [['--queue-timeout', '0'], /queue timeout: expected more than 0 seconds/],
    [['--max-runtime', 'soon'], /max runtime: expected seconds, got soon/],
    [['--warm-timeout=-1'], /warm timeout: expected seconds, got -1/],
  ];
  for (const [args, message] of cases) {
    test(args.join(' '), async () => {
      const outcome = await run(bin('warmluad'), args, { timeoutMs: 20_000 });
      assert.equal(outcome.status, 100);
      assert.match(outcome.stderr, message);
    });
  }
});

describe('--warm-timeout', { timeout: TEST_TIMEOUT }, () => {
  // Lua code that never ends while the server warms: looping, looping
  // around a pcall that catches the deadline's error, and in a coroutine.
  const spins = {
    spin: 'local n = 0\nwhile true do n = n + 1 end\n',
    spincaught: 'while true do pcall(function() while true do end end) end\n',
    spincoroutine: 'local co = coroutine.create(function() while true do end end)\nwhile true do coroutine.resume(co) end\n',
  };
  const modDir = tempDir('warmlua-spin-');
  for (const [name, source] of Object.entries(spins)) writeScript(modDir, `${name}.lua`, source);
  const socket = path.join(modDir, 'warmlua.sock');

  for (const name of Object.keys(spins)) {
    test(`a preloaded module that never ends (${name}): the start fails, exit 100, saying where it was`, async () => {
      const outcome = await run(bin('warmluad'), [
        '--socket', socket, '--warmup', 'none', '--warm-timeout', '0.5',
        '--lua-path', path.join(modDir, '?.lua'), '--preload', name,
      ], { timeoutMs: 20_000 });
      assert.equal(outcome.status, 100, outcome.stderr);
      const where = `${path.join(modDir, name)}.lua:\\d+`;
      assert.match(outcome.stderr, new RegExp(`^warmluad: cannot preload module '${name}': ${where}: still running after 0.5 s \\(warm timeout\\)\\n$`));
    });
  }

  test('a warm-up script that never ends: the start fails, exit 100', async () => {
    const outcome = await run(bin('warmluad'), ['--socket', socket, '--warmup', path.join(modDir, 'spin.lua'), '--warm-timeout', '0.5'], {
      timeoutMs: 20_000,
    });
    assert.equal(outcome.status, 100, outcome.stderr);
    assert.match(outcome.stderr, /^warmluad: \S+spin\.lua:2: still running after 0.5 s \(warm timeout\)\n/);
    assert.match(outcome.stderr, /warmluad: warm-up script \S+spin\.lua failed \(see above\)\n$/);
  });

  test('on a re-warm, a module that now never ends is left out and the warm-up given up, and the server goes on serving', async () => {
    const hangs = path.join(modDir, 'hangs-now');
    const warmup = writeScript(modDir, 'warmup.lua', `if io.open(${JSON.stringify(hangs)}) then while true do end end\n`);
    const mod = writeScript(modDir, 'mod.lua', 'return "v1"\n');
    const server = await serve([
      '--warmup', warmup, '--warm-timeout', '1', '--lua-path', path.join(modDir, '?.lua'), '--preload', 'mod',
    ]);
    const show = ['-e', 'print(package.loaded.mod)'];
    assert.equal((await runShim(server.socket, show)).stdout, 'v1\n');

    fs.writeFileSync(hangs, '');
    fs.writeFileSync(mod, spins.spin);
    server.process.kill('SIGHUP');
    // The edit may start a re-warm of its own before the SIGHUP's: either shows both.
    const leftOut = /re-warmed .*left out: cannot preload module 'mod': \S+mod\.lua:2: still running after 1 s \(warm timeout\)/;
    const givenUp = /warm-up failed, serving anyway: warm-up script \S+warmup\.lua failed/;
    await waitFor('a re-warm without the module', () => leftOut.test(server.log()), 20_000);
    await waitFor('a warm-up given up', () => givenUp.test(server.log()), 20_000);
    assert.deepEqual(await runShim(server.socket, [hello]), { stdout: 'hello\n', stderr: '', status: 0 });
    assert.equal((await runShim(server.socket, show)).stdout, 'nil\n');
  });
});
