// warmluad as a service (issue 6, first slice): who may connect, readiness for
// s6 and systemd, silent clients, JSON logs and the socket path checks.
// The credential tests run a client as nobody, so they need root.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ErrorCode, FrameReader, FrameType, decodeError } from '../server/protocol.js';
import { bin, run, runShim, serverStarter, tempDir, writeScript, type Outcome, type Server } from './harness.js';

const TEST_TIMEOUT = 60_000;
const isRoot = process.getuid!() === 0;
const dir = tempDir();
fs.chmodSync(dir, 0o755); // nobody must reach the scripts' directory
const hello = writeScript(dir, 'hello.lua', 'print("hello")\n');
fs.chmodSync(hello, 0o644);

const serve = serverStarter();

/** Until `predicate` holds, or fails the test after `ms`. */
async function waitFor(what: string, predicate: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The native shim as nobody. The socket is opened to everyone for this, so
 * that the server's own credential check is what decides. */
function runAsNobody(server: Server, args: string[], groups = '--clear-groups'): Promise<Outcome> {
  fs.chmodSync(path.dirname(server.socket), 0o755);
  fs.chmodSync(server.socket, 0o666);
  return run('setpriv', ['--reuid=nobody', '--regid=nogroup', groups, bin('warmlua'), ...args], {
    env: { WARMLUA_SOCKET: server.socket, WARMLUA_FALLBACK: 'none' },
    timeoutMs: 20_000,
  });
}

const refusedLines = (server: Server) => server.log().split('\n').filter((l) => l.includes('refused client'));

describe('who may connect', { skip: !isRoot && 'needs root to run a client as nobody', timeout: TEST_TIMEOUT }, () => {
  test('a client with another uid is refused, with a clear error and one log line', async () => {
    const server = await serve();
    const outcome = await runAsNobody(server, [hello]);
    assert.notEqual(outcome.status, 0);
    assert.equal(outcome.stdout, '');
    assert.match(outcome.stderr, /refused: uid 65534 \(gid 65534\) is not allowed/);
    await waitFor('the refusal in the log', () => refusedLines(server).length > 0);
    assert.equal(refusedLines(server).length, 1, server.log());
    // The server's own uid is still served.
    const own = await runShim(server.socket, [hello]);
    assert.deepEqual(own, { stdout: 'hello\n', stderr: '', status: 0 });
  });

  for (const option of ['--allow-uid', '--allow-gid']) {
    test(`${option} lets it in`, async () => {
      const server = await serve([option, '1234,65534']);
      const outcome = await runAsNobody(server, [hello]);
      assert.deepEqual(outcome, { stdout: 'hello\n', stderr: '', status: 0 });
      assert.deepEqual(refusedLines(server), []);
    });
  }

  test('--allow-gid counts supplementary groups too', async () => {
    const server = await serve(['--allow-gid', '1234']);
    const member = await runAsNobody(server, [hello], '--groups=1234');
    assert.deepEqual(member, { stdout: 'hello\n', stderr: '', status: 0 });
    const outsider = await runAsNobody(server, [hello], '--groups=4321');
    assert.match(outsider.stderr, /refused: uid 65534 \(gid 65534\) is not allowed/);
  });

  test('a socket directory or socket owned by another user is refused (exit 111)', async () => {
    const theirs = tempDir('warmlua-theirs-');
    fs.chownSync(theirs, 65534, 65534);
    const inTheirDir = await run(bin('warmluad'), ['--warmup', 'none', '--socket', path.join(theirs, 's.sock')]);
    assert.equal(inTheirDir.status, 111);
    assert.match(inTheirDir.stderr, /is owned by uid 65534, not by this server's uid 0: refusing to use it/);

    // Their socket in our directory: a stale socket file made by nobody.
    const ours = tempDir('warmlua-ours-');
    const socket = path.join(ours, 's.sock');
    const squatter = net.createServer().listen(socket);
    await new Promise((resolve) => squatter.once('listening', resolve));
    fs.lchownSync(socket, 65534, 65534);
    const theirSocket = await run(bin('warmluad'), ['--warmup', 'none', '--socket', socket]);
    squatter.close();
    assert.equal(theirSocket.status, 111);
    assert.match(theirSocket.stderr, /s\.sock is owned by uid 65534/);
  });
});

describe('usage errors exit 100', { timeout: TEST_TIMEOUT }, () => {
  // execa refuses a NUL in arguments; a config file carries that one.
  const nulConfig = path.join(dir, 'nul-socket.json');
  fs.writeFileSync(nulConfig, JSON.stringify({ socket: '\0warmlua' }));
  const cases: [string[], RegExp][] = [
    [['--socket', '@warmlua'], /abstract sockets are not used/],
    [['--config', nulConfig], /abstract sockets are not used/],
    [['--allow-uid', 'alice'], /allow uid: expected numeric ids/],
    [['--allow-gid', '1,-2'], /allow gid: expected numeric ids/],
    [['--request-timeout', '0'], /request timeout: expected more than 0 seconds/],
    [['--notify-fd', '77'], /notify fd: 77 is not open/],
    [['--log-format', 'xml'], /log format: expected text or json/],
  ];
  for (const [args, message] of cases) {
    test(args.join(' '), async () => {
      const outcome = await run(bin('warmluad'), args, { timeoutMs: 20_000 });
      assert.equal(outcome.status, 100);
      assert.match(outcome.stderr, message);
    });
  }
});

describe('readiness', { timeout: TEST_TIMEOUT }, () => {
  test('--notify-fd: a newline once the socket accepts, then the fd is closed', async () => {
    const socket = path.join(tempDir('warmlua-sock-'), 's.sock');
    const child = execa(bin('warmluad'), ['--socket', socket, '--notify-fd', '3'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      reject: false,
      buffer: false,
    });
    try {
      const notifyPipe = child.stdio[3] as NodeJS.ReadableStream;
      let notified = '';
      let closed = false;
      notifyPipe.on('data', (chunk: Buffer) => (notified += chunk.toString()));
      notifyPipe.on('end', () => (closed = true));
      await waitFor('the notification', () => notified !== '' || child.exitCode !== null, 20_000);
      assert.equal(notified, '\n');
      // Ready means ready: a run succeeds at once.
      assert.deepEqual(await runShim(socket, [hello]), { stdout: 'hello\n', stderr: '', status: 0 });
      await waitFor('the notification fd to close', () => closed);
      assert.equal(notified, '\n');
    } finally {
      child.kill('SIGTERM');
      await child;
    }
    assert.equal(child.exitCode, 0);
  });

  for (const kind of ['path', 'abstract']) {
    test(`NOTIFY_SOCKET (${kind}): one READY=1 datagram`, async () => {
      const address =
        kind === 'path' ? path.join(tempDir('warmlua-notify-'), 'notify.sock') : `@warmlua-test-${process.pid}`;
      const receiver = notifyReceiver(address);
      try {
        await waitFor('the receiver to bind', () => receiver.datagrams !== null);
        const server = await serve([], { NOTIFY_SOCKET: address });
        await waitFor('READY=1', () => receiver.datagrams!.length > 0);
        assert.deepEqual(receiver.datagrams, ['READY=1']);
        assert.deepEqual(await runShim(server.socket, [hello]), { stdout: 'hello\n', stderr: '', status: 0 });
        assert.deepEqual(receiver.datagrams, ['READY=1']);
        if (kind === 'abstract') assert.ok(!fs.existsSync(address), 'an abstract address became a file');
      } finally {
        receiver.process.kill();
        await receiver.process.catch(() => {});
      }
    });
  }
});

/** A datagram socket bound at `address` the way systemd binds its own: by
 * Python, which gives an abstract ('@') name its exact length. `datagrams` is
 * null until it is bound, then lists what arrived. */
function notifyReceiver(address: string) {
  const program = [
    'import socket, sys',
    'address = sys.argv[1]',
    "address = '\\0' + address[1:] if address.startswith('@') else address",
    'receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    'receiver.bind(address)',
    "print('bound', flush=True)",
    'while True: print(receiver.recv(4096).hex(), flush=True)',
  ].join('\n');
  const child = execa('python3', ['-c', program, address], { buffer: false });
  const receiver: { process: typeof child; datagrams: string[] | null } = { process: child, datagrams: null };
  let pending = '';
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (line === 'bound') receiver.datagrams = [];
      else receiver.datagrams!.push(Buffer.from(line, 'hex').toString());
    }
  });
  return receiver;
}

/** Connects and sends nothing; resolves with what the server sent before it
 * closed the connection, and how long that took. */
function silentClient(socket: string): Promise<{ frames: { type: number; payload: Buffer }[]; ms: number }> {
  return new Promise((resolve, reject) => {
    const began = Date.now();
    const reader = new FrameReader();
    const connection = net.createConnection(socket);
    connection.on('data', (chunk) => reader.push(chunk));
    connection.on('error', reject);
    connection.on('close', () => {
      const frames = [];
      for (let frame = reader.next(); frame; frame = reader.next()) frames.push(frame);
      resolve({ frames, ms: Date.now() - began });
    });
  });
}

describe('silent clients', { timeout: TEST_TIMEOUT }, () => {
  test('a client that sends nothing is dropped after --request-timeout; the server goes on', async () => {
    const server = await serve(['--request-timeout', '1']);
    const [silent, other] = await Promise.all([
      silentClient(server.socket),
      // A run that lasts longer than the request timeout is not cut short.
      runShim(server.socket, ['-e', 'local t = os.clock() while os.clock() - t < 1.5 do end print("done")']),
    ]);
    assert.deepEqual(other, { stdout: 'done\n', stderr: '', status: 0 });
    assert.ok(silent.ms >= 900 && silent.ms < 5_000, `dropped after ${silent.ms} ms`);
    assert.equal(silent.frames.length, 1);
    assert.equal(silent.frames[0].type, FrameType.error);
    assert.deepEqual(decodeError(silent.frames[0].payload), {
      code: ErrorCode.malformed,
      message: 'no request within 1 s',
    });
    assert.match(server.log(), /connection closed: no request within 1 s/);
    assert.deepEqual(await runShim(server.socket, [hello]), { stdout: 'hello\n', stderr: '', status: 0 });
  });
});

describe('logs', { timeout: TEST_TIMEOUT }, () => {
  test('--log-format json: one object per line, one per run', async () => {
    const server = await serve(['--log-format', 'json']);
    const failing = writeScript(dir, 'fails.lua', 'os.exit(3)\n');
    assert.equal((await runShim(server.socket, [hello])).status, 0);
    assert.equal((await runShim(server.socket, [failing])).status, 3);
    await server.stop();
    const lines = server.log().trimEnd().split('\n');
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const entry of entries) {
      assert.deepEqual(Object.keys(entry), ['time', 'event', 'pid', 'script', 'ms', 'status', 'message']);
      assert.ok(!Number.isNaN(Date.parse(entry.time as string)));
    }
    const runs = entries.filter((e) => e.event === 'run');
    assert.deepEqual(
      runs.map((e) => [e.script, e.status]),
      [
        [hello, 'exit 0'],
        [failing, 'exit 3'],
      ],
    );
    for (const e of runs) {
      assert.ok(Number.isInteger(e.pid) && (e.pid as number) > 0);
      assert.ok(typeof e.ms === 'number' && e.ms >= 0);
    }
    assert.deepEqual(
      entries.map((e) => e.event).filter((e) => e !== 'run'),
      ['listening', 'stopping', 'stopped'],
    );
  });

  test('text stays as it was', async () => {
    const server = await serve();
    assert.equal((await runShim(server.socket, [hello])).status, 0);
    await waitFor('the run line', () => server.log().includes('run pid='));
    assert.match(server.log(), /^warmluad: run pid=\d+ script=\S+hello\.lua exit 0 \d+\.\dms$/m);
  });
});
