// Fault and load tests (issue 6): 200 concurrent clients, the server killed
// with SIGKILL mid-run, a SIGTERM or SIGINT drain, and 10,000 fuzzed frames. Each is
// bounded in time and kills whatever it started, also when it fails.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { run as runClient, WarmluaError } from '../client/client.js';
import { FrameType, encodeFrame, encodeRun, encodeSignal } from '../server/protocol.js';
import { bin, run, runShim, start, serverStarter, tempDir, waitFor, writeScript, type Outcome } from './harness.js';

const dir = tempDir();
const hello = writeScript(dir, 'hello.lua', 'print("hello")\n');
const ok = { stdout: 'hello\n', stderr: '', status: 0 };

const serve = serverStarter();
/** Pids this file must not leave behind: clients and runners it made. */
const started = new Set<number>();
after(() => {
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


/** Fields of /proc/PID/stat after the command name; null once it is gone. */
function stat(pid: number): string[] | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Running, or stopped: not gone and not a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  const fields = stat(pid);
  return fields !== null && fields[0] !== 'Z';
}

/** The server's direct children: its spares and runners. */
function childrenOf(parent: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => Number(stat(pid)?.[1]) === parent);
}

function rssKiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(match, `no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

/** A script that writes its own pid (from /proc/self/stat, so the runner's
 * real pid) to the file named by its first argument, then stays busy for
 * `seconds` and prints "done". */
const pidThenBusy = (seconds: number) =>
  writeScript(
    dir,
    `pid-busy-${seconds}.lua`,
    [
      'local pid = io.open("/proc/self/stat"):read("a"):match("^%d+")',
      'local f = assert(io.open(arg[1], "w")) f:write(pid) f:close()',
      `local t = os.clock() while os.clock() - t < ${seconds} do end`,
      'print("done")',
    ].join('\n'),
  );

const readPid = (file: string): number => (fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8')) || 0 : 0);

describe('load', { timeout: 90_000 }, () => {
  test('200 concurrent clients, half native shims, half the TypeScript client in-process: all correct', async () => {
    const server = await serve();
    const script = writeScript(
      dir,
      'load.lua',
      [
        'local id = tonumber(arg[1])',
        'local input = io.read("a")',
        'local sum = 0 for i = 1, id * 100 do sum = sum + i end',
        'io.write(id, " ", sum, " ", #input, "\\n")',
        'io.stderr:write("stderr ", id, "\\n")',
        'os.exit(id % 7)',
      ].join('\n'),
    );
    const expected = (id: number): Outcome => ({
      stdout: `${id} ${(id * 100 * (id * 100 + 1)) / 2} ${id % 2 ? id : 0}\n`,
      stderr: `stderr ${id}\n`,
      status: id % 7,
    });
    const out = tempDir('warmlua-load-');
    const devNull = fs.openSync('/dev/null', 'r');
    const viaShim = async (id: number) => runShim(server.socket, [script, String(id)], { input: 'x'.repeat(id), timeoutMs: 60_000 });
    const viaClient = async (id: number): Promise<Outcome> => {
      const stdout = path.join(out, `${id}.out`);
      const stderr = path.join(out, `${id}.err`);
      const fds = { 0: devNull, 1: fs.openSync(stdout, 'w'), 2: fs.openSync(stderr, 'w') };
      try {
        const result = await runClient({ socket: server.socket, argv: ['lua', script, String(id)], fds });
        return { stdout: fs.readFileSync(stdout, 'utf8'), stderr: fs.readFileSync(stderr, 'utf8'), status: result.code };
      } finally {
        fs.closeSync(fds[1]);
        fs.closeSync(fds[2]);
      }
    };
    const ids = Array.from({ length: 200 }, (_, i) => i + 1);
    const began = Date.now();
    try {
      // Odd ids through the shim (they get stdin), even ids in-process.
      const outcomes = await Promise.all(ids.map((id) => (id % 2 ? viaShim(id) : viaClient(id))));
      const wrong = ids.filter((id, i) => JSON.stringify(outcomes[i]) !== JSON.stringify(expected(id)));
      assert.deepEqual(
        wrong.slice(0, 3).map((id) => [id, outcomes[id - 1]]),
        [],
        `${wrong.length} of 200 runs wrong (in ${Date.now() - began} ms)`,
      );
    } finally {
      fs.closeSync(devNull);
    }
    await waitFor('every run in the log', () => (server.log().match(/ run pid=/g) ?? []).length === 200);
  });
});

describe('the server killed with SIGKILL mid-run', { timeout: 60_000 }, () => {
  test('clients exit 111 with one clear line, no runner survives, a new server serves on the same path', async () => {
    const server = await serve(['--warmup', 'none']);
    const script = pidThenBusy(30);
    const pidFiles = [1, 2, 3].map((i) => path.join(dir, `killed-${i}.pid`));
    const clients = pidFiles.map((file) =>
      start(bin('warmlua'), [script, file], {
        env: { WARMLUA_SOCKET: server.socket, WARMLUA_FALLBACK: 'none' },
        timeoutMs: 40_000,
      }),
    );
    for (const client of clients) if (client.pid) started.add(client.pid);
    await waitFor('every runner to write its pid', () => pidFiles.every((f) => readPid(f) > 0), 20_000);
    const runners = pidFiles.map(readPid);
    for (const pid of runners) started.add(pid);
    const serverPid = server.process.pid!;
    // Runners, and the spares waiting beside them, are the server's children.
    const children = childrenOf(serverPid);
    for (const pid of runners) assert.ok(children.includes(pid), `runner ${pid} is not the server's child`);
    for (const pid of children) started.add(pid);

    server.process.kill('SIGKILL');
    await server.process;
    const killedAt = Date.now();
    const outcomes = await Promise.all(clients);
    for (const o of outcomes) {
      assert.equal(o.exitCode, 111, String(o.stderr));
      assert.equal(o.stdout, '');
      assert.match(String(o.stderr), /^\S*\/warmlua: lost connection to warmluad: [^\n]+\n$/);
    }
    assert.ok(Date.now() - killedAt < 5_000, 'clients took more than 5 s to notice');
    // PR_SET_PDEATHSIG: every runner and spare dies with the server.
    await waitFor('no runner or spare left', () => children.every((pid) => !alive(pid)), 2_000);

    // The dead server's socket file is still there; a new server replaces it.
    assert.ok(fs.existsSync(server.socket));
    const again = await serve(['--warmup', 'none', '--socket', server.socket]); // the last --socket wins
    assert.match(again.log(), new RegExp(`listening on ${server.socket}`));
    assert.deepEqual(await runShim(server.socket, [hello]), ok);
  });
});

describe('the forker killed', { timeout: 30_000 }, () => {
  test('the server says so, forks its spares itself, keeps serving and leaves no zombie', async () => {
    const server = await serve(['--warmup', 'none']);
    const serverPid = server.process.pid!;
    await waitFor('the forker and two spares', () => childrenOf(serverPid).length >= 3);
    // The forker is the server's first child: it forks the spares that follow.
    const startTime = (pid: number) => Number(stat(pid)?.[19]);
    const [forker] = childrenOf(serverPid).sort((a, b) => startTime(a) - startTime(b) || a - b);
    process.kill(forker, 'SIGKILL');
    await waitFor('the forker reaped', () => stat(forker) === null);
    await waitFor('the log line', () => server.log().includes('the forker ended; the server forks spares itself'));
    for (let i = 0; i < 5; i++) assert.deepEqual(await runShim(server.socket, [hello]), ok);
    await waitFor('two spares again', () => childrenOf(serverPid).filter(alive).length >= 2);
    // A run that just ended is a zombie until the server's next turn reaps it.
    await waitFor('no zombie children', () => childrenOf(serverPid).every(alive), 2_000);
  });
});

describe('SIGTERM and SIGINT drain', { timeout: 60_000 }, () => {
  test('a running script finishes (exit 0), new clients are turned away, the server exits 0', async () => {
    const server = await serve(['--warmup', 'none']);
    const pidFile = path.join(dir, 'drain.pid');
    const client = start(bin('warmlua'), [pidThenBusy(2), pidFile], {
      env: { WARMLUA_SOCKET: server.socket, WARMLUA_FALLBACK: 'none' },
    });
    if (client.pid) started.add(client.pid);
    await waitFor('the runner to start', () => readPid(pidFile) > 0);
    started.add(readPid(pidFile));

    server.process.kill('SIGTERM');
    await waitFor('the drain to begin', () => server.log().includes('SIGTERM: no longer accepting; 1 run(s) to finish'));
    // During the drain: nobody answers on the socket.
    const refused = await runShim(server.socket, [hello]);
    assert.equal(refused.stdout, '');
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /^\S*\/warmlua: cannot reach warmluad at .*\n$/);
    // run() throws at once when it cannot connect; async turns that into the rejection.
    await assert.rejects(async () => runClient({ socket: server.socket, argv: ['lua', hello], fds: [] }), (error) => {
      assert.ok(error instanceof WarmluaError);
      assert.equal(error.notStarted, true);
      return true;
    });
    assert.equal(server.process.exitCode, null, 'the server did not wait for its run');
    // The shim's default fallback runs the script cold instead.
    const cold = await run(bin('warmlua'), [hello], { env: { WARMLUA_SOCKET: server.socket } });
    assert.deepEqual(cold, ok);

    const outcome = await client;
    assert.deepEqual([outcome.stdout, outcome.stderr, outcome.exitCode], ['done\n', '', 0]);
    await server.process;
    assert.equal(server.process.exitCode, 0, server.log());
    assert.match(server.log(), /run pid=\d+ script=\S+pid-busy-2\.lua exit 0 .*\n(.*\n)*warmluad: stopped\n$/);
  });

  test('SIGINT stops it the same way, also once a re-warm has run the warm-up script again', async () => {
    // The warm-up runs chunks through lua.c's main, whose SIGINT handling
    // once took the signal over: after a re-warm, SIGINT killed the server
    // outright, its socket left behind.
    const server = await serve();
    server.process.kill('SIGHUP');
    await waitFor('the re-warm', () => server.log().includes('SIGHUP: re-warmed'), 20_000);
    server.process.kill('SIGINT');
    await server.process;
    assert.equal(server.process.exitCode, 0, server.log());
    assert.match(server.log(), /SIGINT: no longer accepting; 0 run\(s\) to finish\n(.*\n)*warmluad: stopped\n$/);
    assert.equal(fs.existsSync(server.socket), false);
  });
});

/** A small seeded PRNG (mulberry32), so that a failing fuzz run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fuzzer(seed: number) {
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: T[]): T => items[int(items.length)];
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const request = (fdNumbers: number[]) =>
    encodeRun({
      cwd: Buffer.from('/'),
      argv: ['lua', '-e', 'os.exit(0)'].map((a) => Buffer.from(a)),
      env: [Buffer.from('FUZZ=1'), Buffer.from('PATH=/usr/bin:/bin')],
      fdNumbers,
    });
  // Names three fds but passes none: valid bytes the server must still refuse.
  const base = request([0, 1, 2]);
  // Fully valid (no fds at all): a few of these really run.
  const runnable = request([]);
  const huge = () => pick([0xffffffff, 0x80000000, 1024 * 1024 + 1, 4097, 253, 1 << 20, int(0x100000000)]);
  const mutations: (() => Buffer)[] = [
    () => {
      const b = Buffer.from(base);
      for (let n = 1 + int(4); n > 0; n--) b[int(b.length)] ^= 1 + int(255);
      return b;
    },
    () => base.subarray(0, int(base.length)),
    () => {
      const b = Buffer.from(base);
      b.writeUInt32LE(pick([huge(), Math.max(0, b.length - 6 + int(21) - 10)]), 0);
      return b;
    },
    () => {
      const b = Buffer.from(base);
      b[5] = int(256);
      return b;
    },
    () => {
      const b = Buffer.from(base);
      b[4] = pick([0, 2, 255, int(256)]);
      return b;
    },
    () => {
      const b = Buffer.from(base);
      b.writeUInt32LE(huge(), pick([6, 10, 14]));
      return b;
    },
    () => {
      const b = Buffer.from(base);
      // A string length: cwd's, or somewhere inside argv and env.
      b.writeUInt32LE(pick([huge(), int(64)]), pick([18, 23, 30]));
      return b;
    },
    () => bytes(int(200)),
    () => {
      const b = Buffer.concat([Buffer.alloc(6), bytes(int(64))]);
      b.writeUInt32LE(b.length - 6, 0);
      b[4] = 1;
      b[5] = pick([FrameType.run, FrameType.signal, FrameType.status, FrameType.started, FrameType.exited, int(256)]);
      return b;
    },
    () => pick([encodeSignal(int(70)), encodeFrame(FrameType.status, bytes(int(4))), encodeFrame(FrameType.signal, bytes(int(8)))]),
    () => Buffer.concat([base, bytes(int(32))]),
    () => (random() < 0.3 ? runnable : base),
  ];
  /** One connection's bytes: one to four frames back to back. */
  return () => {
    const frames = Array.from({ length: 1 + int(4) }, () => pick(mutations)());
    return { frames: frames.length, bytes: Buffer.concat(frames) };
  };
}

/** Writes the bytes, half-closes, and waits (at most 5 s) for the server to close. */
function fire(socket: string, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const connection = net.createConnection(socket);
    const timer = setTimeout(() => connection.destroy(), 5_000);
    connection.on('error', () => {}); // the server may close before it has read all
    connection.on('data', () => {});
    connection.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    connection.end(bytes);
  });
}

/** Sends `count` frames over as many connections as it takes, `parallel` at a time. */
async function fuzz(socket: string, next: () => { frames: number; bytes: Buffer }, count: number, parallel = 16) {
  let sent = 0;
  let connections = 0;
  const worker = async () => {
    while (sent < count) {
      const { frames, bytes } = next();
      sent += frames;
      connections++;
      await fire(socket, bytes);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return { sent, connections };
}

describe('protocol fuzzing', { timeout: 90_000 }, () => {
  test('10,000 random and mutated frames: the server stays up, its RSS stays flat, the next run succeeds', async (t) => {
    const seed = Number(process.env.WARMLUA_FUZZ_SEED ?? Date.now() % 0x100000000);
    const next = fuzzer(seed);
    const server = await serve(['--warmup', 'none']);
    const pid = server.process.pid!;
    const context = () =>
      `seed ${seed} (WARMLUA_FUZZ_SEED replays it); server exit ${server.process.exitCode} ` +
      `signal ${server.process.signalCode}; its log ends:\n${server.log().slice(-1500)}`;

    // The warm-up batch: the server's heap grows to its working size over
    // the first few thousand connections (about 58 to 63 MiB here), and
    // then stays there.
    await fuzz(server.socket, next, 5_000);
    assert.deepEqual(await runShim(server.socket, [hello]), ok, context());
    await sleep(500);
    const rssBefore = rssKiB(pid);
    const fdsBefore = fs.readdirSync(`/proc/${pid}/fd`).length;

    const began = Date.now();
    const { sent, connections } = await fuzz(server.socket, next, 10_000);
    const ms = Date.now() - began;
    assert.ok(alive(pid) && server.process.exitCode === null, `the server died: ${context()}\n${server.log().slice(-2000)}`);
    assert.deepEqual(await runShim(server.socket, [hello]), ok, context());
    await sleep(500);
    const rssAfter = rssKiB(pid);
    const fdsAfter = fs.readdirSync(`/proc/${pid}/fd`).length;
    const growth = (rssAfter - rssBefore) / rssBefore;
    assert.ok(
      Math.abs(growth) <= 0.1,
      `RSS went from ${rssBefore} to ${rssAfter} KiB (${(growth * 100).toFixed(1)} %) over ${sent} frames, ` +
        `${connections} connections, ${ms} ms; ${context()}`,
    );
    // Spares come and go, each with one line to the server; nothing else may pile up.
    assert.ok(fdsAfter <= fdsBefore + 4, `the server's fds went from ${fdsBefore} to ${fdsAfter}: ${context()}`);
    const malformed = (server.log().match(/connection closed: /g) ?? []).length;
    const runs = (server.log().match(/ run pid=/g) ?? []).length;
    t.diagnostic(
      `${sent} frames, ${connections} connections in ${ms} ms; ${malformed} refused, ${runs} ran; ` +
        `RSS ${rssBefore} -> ${rssAfter} KiB; fds ${fdsBefore} -> ${fdsAfter}; ${context()}`,
    );
    assert.ok(malformed > connections / 2, `only ${malformed} connections refused in the log: ${context()}`);
  });
});
