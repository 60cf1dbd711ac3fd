// warmluad's core contract (issue 2), against a real server on a temporary
// socket: runs match lua5.3, runs are isolated, bad input is refused without
// harm, and no runner outlives its client or stays a zombie.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { run, start } from '../client/client.js';
import {
  ErrorCode,
  FrameReader,
  FrameType,
  Limits,
  decodeError,
  encodeFrame,
  encodeRun,
} from '../server/protocol.js';
import {
  bin,
  normaliseProgname,
  runJs,
  runLua53,
  runShim,
  start as startProcess,
  startServer,
  tempDir,
  writeScript,
  type Outcome,
  type RunOptions,
  type Server,
} from './harness.js';

const dir = tempDir();
let server: Server;

const sameAsLua = async (args: string[], options: RunOptions = {}): Promise<Outcome> => {
  const expected = await runLua53(args, options);
  const actual = normaliseProgname(await runJs(server.socket, args, options), 'warmlua-js');
  assert.deepEqual(actual, expected);
  return actual;
};

/** The server's direct children: runners, live or zombie, with their state letter. */
function children(): { pid: number; state: string }[] {
  const out: { pid: number; state: string }[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === server.process.pid) out.push({ pid: Number(entry), state: fields[0] });
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

async function until(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

/** Sends raw bytes to the server and collects whatever it answers until it closes. */
function exchange(bytes: Buffer, endAfterWrite = true): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(server.socket);
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.write(bytes, () => (endAfterWrite ? socket.end() : undefined));
    setTimeout(() => socket.destroy(), 5_000);
  });
}

function errorReply(bytes: Buffer): { code: number; message: string } {
  const reader = new FrameReader();
  reader.push(bytes);
  const frame = reader.next();
  assert.ok(frame, 'the server answered with a frame');
  assert.equal(frame.type, FrameType.error);
  return decodeError(frame.payload);
}

before(async () => {
  writeScript(dir, 'counter.lua', 'local M = { count = 0 }\nfunction M.bump() M.count = M.count + 1 return M.count end\nreturn M\n');
  server = await startServer(['--lua-path', `${dir}/?.lua;;`, '--preload', 'counter']);
});
after(() => server.stop());

describe('runs match lua5.3', () => {
  test('hello with arguments: spaces, empty strings, UTF-8', async () => {
    const script = writeScript(dir, 'args.lua', 'print(#arg, ...)\nfor i = 0, #arg do io.write(i, "=[", tostring(arg[i]), "] ") end\nprint()\n');
    await sameAsLua([script, 'a b', '', 'héllo ✓', '  ']);
  });

  test('stdin is piped through, binary-safe', async () => {
    const script = writeScript(dir, 'cat.lua', 'io.write(io.read("a"))');
    const input = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256));
    const result = await sameAsLua([script], { input });
    assert.equal(Buffer.from(result.stdout, 'latin1').length > 0, true);
  });

  test('exit codes and stderr', async () => {
    for (const code of ['0', '3', '255', 'true', 'false']) {
      const script = writeScript(dir, `exit-${code}.lua`, `io.stderr:write("bye\\n") os.exit(${code})`);
      await sameAsLua([script]);
    }
    await sameAsLua([writeScript(dir, 'boom.lua', 'local t = nil\nprint(t.x)\n')]);
    await sameAsLua([path.join(dir, 'missing.lua')]);
  });

  test('environment and working directory', async () => {
    const script = writeScript(dir, 'env.lua', 'print(os.getenv("WARMLUA_TEST_VAR"), os.getenv("NOT_SET_ANYWHERE"))\nlocal f = io.open("here.txt") print(f:read("a")) f:close()');
    const cwd = tempDir();
    fs.writeFileSync(path.join(cwd, 'here.txt'), 'in the client cwd');
    const result = await sameAsLua([script], { cwd, env: { WARMLUA_TEST_VAR: 'from the client' } });
    assert.match(result.stdout, /from the client\tnil\nin the client cwd/);
  });
});

test('runs are isolated: globals and preloaded module tables start fresh', async () => {
  const script = writeScript(dir, 'mutate.lua', 'local c = require("counter")\nprint(c.bump(), rawget(_G, "leaked"))\nleaked = true\nstring.rep = nil\n');
  for (let i = 0; i < 3; i++) {
    const result = await runJs(server.socket, [script]);
    assert.deepEqual(result, { stdout: '1\tnil\n', stderr: '', status: 0 });
  }
});

test('50 concurrent clients all get their own answer', async () => {
  const script = writeScript(dir, 'echo.lua', 'local n = ... ; local s = 0 for i = 1, 20000 do s = s + i end print(n, s)');
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => runJs(server.socket, [script, String(i)])));
  results.forEach((r, i) => assert.deepEqual(r, { stdout: `${i}\t200010000\n`, stderr: '', status: 0 }));
});

describe('bad input is refused and the server keeps serving', () => {
  const hello = () => writeScript(dir, 'hello.lua', 'print("hello")');

  test('random bytes', async () => {
    for (let i = 0; i < 20; i++) {
      const noise = Buffer.from(Array.from({ length: 1 + ((i * 37) % 200) }, () => Math.floor(Math.random() * 256)));
      noise[4] = 1; // keep the version right now and then, so the frame parser is reached
      if (i % 2) noise.writeUInt32LE(noise.length - 6, 0);
      await exchange(noise);
    }
    assert.deepEqual(await runJs(server.socket, [hello()]), { stdout: 'hello\n', stderr: '', status: 0 });
  });

  test('a truncated frame', async () => {
    const frame = encodeRun({ cwd: Buffer.from('/'), argv: [Buffer.from('lua')], env: [], fdNumbers: [] });
    assert.equal((await exchange(frame.subarray(0, frame.length - 3))).length, 0);
    assert.deepEqual(await runJs(server.socket, [hello()]), { stdout: 'hello\n', stderr: '', status: 0 });
  });

  test('a version mismatch gets a clear error', async () => {
    const frame = encodeFrame(FrameType.run, Buffer.alloc(12));
    frame[4] = 99;
    const reply = errorReply(await exchange(frame));
    assert.equal(reply.code, ErrorCode.version);
    assert.match(reply.message, /version mismatch.*1.*99/);
  });

  test('each limit gets a clear error', async () => {
    const big = Buffer.alloc(6);
    big.writeUInt32LE(Limits.maxPayloadBytes + 1, 0);
    big[4] = 1;
    big[5] = FrameType.run;
    assert.deepEqual(errorReply(await exchange(big)), {
      code: ErrorCode.limit,
      message: `request of ${Limits.maxPayloadBytes + 1} bytes exceeds ${Limits.maxPayloadBytes}`,
    });
    const manyArgs = encodeRun({
      cwd: Buffer.from('/'),
      argv: Array.from({ length: Limits.maxArgs + 1 }, () => Buffer.from('x')),
      env: [],
      fdNumbers: [],
    });
    assert.deepEqual(errorReply(await exchange(manyArgs)), {
      code: ErrorCode.limit,
      message: `${Limits.maxArgs + 1} arguments exceed the limit of ${Limits.maxArgs}`,
    });
  });

  test('a request naming fds it did not send', async () => {
    const frame = encodeRun({ cwd: Buffer.from('/'), argv: [Buffer.from('lua')], env: [], fdNumbers: [0, 1] });
    assert.equal(errorReply(await exchange(frame)).code, ErrorCode.malformed);
    assert.match(server.log(), /connection closed: request names 2 fds but 0 came with it/);
    assert.deepEqual(await runJs(server.socket, [hello()]), { stdout: 'hello\n', stderr: '', status: 0 });
  });
});

test('a runner killed by a signal is reported as 128+N', async () => {
  const loop = writeScript(dir, 'loop.lua', 'while true do end');
  const devNull = fs.openSync('/dev/null', 'r+');
  const handle = start({ socket: server.socket, argv: ['lua', loop], fds: { 0: devNull, 1: devNull, 2: devNull } });
  process.kill(await handle.pid, 'SIGKILL');
  assert.deepEqual(await handle.result, { code: 137, signal: 9, pid: await handle.pid });
  fs.closeSync(devNull);
});

test('a killed client means its runner is gone within 2 s', async () => {
  // The script names its own pid (the server's children include idle spares).
  const loop = writeScript(dir, 'pidloop.lua', 'local f = io.open("/proc/self/stat")\nio.stderr:write(f:read("n"), "\\n")\nwhile true do end\n');
  const client = startProcess(bin('warmlua-js'), [loop], { env: { WARMLUA_SOCKET: server.socket } });
  let stderr = '';
  client.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  assert.ok(await until(() => stderr.includes('\n'), 5_000), 'the runner named its pid');
  const runner = Number(stderr.trim());
  assert.ok(children().some((c) => c.pid === runner), 'the runner is a child of the server');
  client.kill('SIGKILL');
  await client;
  assert.ok(await until(() => !children().some((c) => c.pid === runner), 2_000), 'the runner is gone');
});

test('no zombie children after a burst of runs', async () => {
  const script = writeScript(dir, 'quick.lua', 'io.write("")');
  await Promise.all(Array.from({ length: 30 }, () => runJs(server.socket, [script])));
  assert.ok(await until(() => !children().some((c) => c.state === 'Z'), 2_000), JSON.stringify(children()));
});

test('spares prefault what runs before them wrote, learn again when another script takes over, and every run matches lua5.3', { timeout: 120_000 }, async () => {
  // native/prefault.c: 16 runs learn the pages, later spares write them in
  // ahead of their job; once a set has served 128 runs, 16 runs in a row of
  // a script no learner ran empty it, and it is learned again.
  const scripts = {
    hello: writeScript(dir, 'prefault-hello.lua', 'print("hello")\n'),
    squares: writeScript(dir, 'prefault-squares.lua', 'local t = {}\nfor i = 1, 300 do t[i] = i * i end\nprint(#t, t[300], table.concat(t, ",", 1, 5))\n'),
  };
  const expected = { hello: await runLua53([scripts.hello]), squares: await runLua53([scripts.squares]) };
  const runs = (name: keyof typeof scripts, count: number) => Array<keyof typeof scripts>(count).fill(name);
  const order = [...runs('hello', 40), ...runs('squares', 150), ...runs('hello', 40)];
  for (const [i, name] of order.entries()) {
    assert.deepEqual(await runShim(server.socket, [scripts[name]]), expected[name], `run ${i}, ${name}`);
  }
});

test('fork stress: 2,000 allocation- and coroutine-heavy runs, no crash, no hang', { timeout: 240_000 }, async () => {
  const script = writeScript(
    dir,
    'stress.lua',
    `local kind = ...
local t = {}
if kind == "alloc" then
  for i = 1, 1000 do t[i] = { i, tostring(i), string.rep("x", i % 50) } end
  assert(#t == 1000 and t[1000][2] == "1000")
else
  local co = {}
  for i = 1, 100 do co[i] = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return a + b end) end
  local sum = 0
  for i = 1, 100 do sum = sum + co[i](i) + co[i](1) end
  assert(sum == 2 * (100 * 101 / 2 + 100))
end`,
  );
  const devNull = fs.openSync('/dev/null', 'r+');
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < 2000) {
      const i = next++;
      const argv = ['lua', script, i % 2 ? 'alloc' : 'coroutines'];
      const result = await Promise.race([
        run({ socket: server.socket, argv, fds: { 0: devNull, 1: devNull, 2: devNull } }),
        new Promise<'hang'>((resolve) => setTimeout(resolve, 10_000, 'hang')),
      ]);
      if (result === 'hang' || result.code !== 0) failures.push(`${i}: ${JSON.stringify(result)}`);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  fs.closeSync(devNull);
  assert.deepEqual(failures, []);
});
