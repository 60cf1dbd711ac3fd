// The built-in warm-up (server/lua/warmup.lua) against real Lua 5.3. Its
// breadth is what keeps runners from deoptimising and recompiling fengari's
// VM: an instruction it never executes has no type feedback, and the first
// script that executes one throws the VM's optimised code away (the bench's
// module script took 10.8 ms instead of 8.6 while "if x then", TEST, was
// missing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import v8 from 'node:v8';
import { execa } from 'execa';
import { lauxlib, lua, lualib, to_luastring } from 'fengari';
import { root, runShim, startServer, tempDir, waitFor, writeScript } from './harness.js';

const warmup = path.join(root, 'server/lua/warmup.lua');

/** Lua 5.3's instructions (lopcodes.h). LOADKX and EXTRAARG only appear
 * past 2^18 constants or in huge table constructors. */
const INSTRUCTIONS = `MOVE LOADK LOADBOOL LOADNIL GETUPVAL GETTABUP GETTABLE SETTABUP SETUPVAL
  SETTABLE NEWTABLE SELF ADD SUB MUL MOD POW DIV IDIV BAND BOR BXOR SHL SHR UNM BNOT NOT LEN
  CONCAT JMP EQ LT LE TEST TESTSET CALL TAILCALL RETURN FORLOOP FORPREP TFORCALL TFORLOOP
  SETLIST CLOSURE VARARG`.split(/\s+/);

test('the built-in warm-up runs under lua5.3 as it does in warmluad', async () => {
  const r = await execa('lua5.3', [warmup], { reject: false });
  assert.deepEqual({ stdout: r.stdout, stderr: r.stderr, status: r.exitCode }, { stdout: '', stderr: '', status: 0 });
});

test('the built-in warm-up has every Lua 5.3 instruction but LOADKX and EXTRAARG', async () => {
  const listing = (await execa('luac5.3', ['-l', '-p', warmup])).stdout;
  // Instruction lines read "\t12\t[34]\tGETTABUP \t0 0 -1\t; _ENV "print"".
  const present = new Set([...listing.matchAll(/^\t\d+\t\[\d+\]\t([A-Z]+)/gm)].map((m) => m[1]));
  assert.deepEqual(INSTRUCTIONS.filter((name) => !present.has(name)), []);
});

/** Starts a server with `args`, re-warms it with SIGHUP, checks that a run
 * still prints, stops it: everything the server wrote on its stdout, and
 * its log (stderr). */
async function outputThroughRewarm(args: string[] = []): Promise<{ stdout: string; log: string }> {
  const server = await startServer(args);
  try {
    server.process.kill('SIGHUP');
    await waitFor('the re-warm', () => server.log().includes('SIGHUP: re-warmed'), 20_000);
    const runPath = path.join(root, 'server/lua/runpath.lua');
    const expected = { stdout: 'hello\nhello\t1\t2.5\ttrue\tnil\n', stderr: 'hello\n', status: 0 };
    assert.deepEqual(await runShim(server.socket, [runPath]), expected);
  } finally {
    await server.stop();
  }
  assert.equal(server.process.exitCode, 0);
  return { stdout: server.stdout(), log: server.log() };
}

test('the warm-up writes nothing on the server\'s stdout or log, at start or on a re-warm, and runs still print', async () => {
  // The last passes run server/lua/runpath.lua, which prints and writes to
  // stderr, a couple of thousand times: to /dev/null.
  const { stdout, log } = await outputThroughRewarm();
  assert.equal(stdout, '');
  assert.doesNotMatch(log, /^hello$/m);
});

test('nor does a --warmup script that prints', async () => {
  const script = writeScript(tempDir(), 'loud.lua', 'print("warming") io.write("up\\n") io.stdout:write("more\\n")\n');
  assert.equal((await outputThroughRewarm(['--warmup', script])).stdout, '');
});

test('a --warmup script can run the built-in one first, as the README suggests', async () => {
  // The built-in script reads its own source back: from its own path, not arg[0].
  const script = writeScript(tempDir(), 'site.lua', `dofile(${JSON.stringify(warmup)})\nlocal t = {}\nfor i = 1, 10 do t[i] = ("%d"):format(i) end\n`);
  assert.equal((await outputThroughRewarm(['--warmup', script])).stdout, '');
});

test("fengari pops its Lua stack without `delete`, which turns a warm state's stack into a dictionary (scripts/fix-fengari.ts)", () => {
  const sources = path.dirname(createRequire(import.meta.url).resolve('fengari'));
  const pops = fs
    .readdirSync(sources)
    .filter((name) => name.endsWith('.js'))
    .flatMap((name) => fs.readFileSync(path.join(sources, name), 'utf8').match(/delete \w+\.stack\[/g) ?? []);
  assert.deepEqual(pops, []);
});

test('every CallInfo has one hidden class, even one whose pcall a coroutine yielded across (scripts/fix-fengari.ts)', () => {
  // A second class made runners throw away the code optimised for the first
  // (luaD_precall's among it) as soon as a script yielded across a pcall.
  v8.setFlagsFromString('--allow-natives-syntax');
  const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  const script = 'co = coroutine.create(function() pcall(coroutine.yield) end) assert(coroutine.resume(co))';
  assert.equal(lauxlib.luaL_dostring(L, to_luastring(script)), 0);
  lua.lua_getglobal(L, to_luastring('co'));
  const thread = lua.lua_tothread(L, -1);
  const callInfos = [];
  for (let ci = thread.base_ci; ci !== null; ci = ci.next) callInfos.push(ci);
  assert.ok(callInfos.length >= 3, 'the coroutine is suspended in pcall');
  for (const ci of callInfos) assert.ok(haveSameMap(ci, L.base_ci));
});

test('fengari keeps a returned call\'s CallInfo and stack values for the next call (scripts/fix-fengari.ts)', () => {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  assert.equal(lauxlib.luaL_dostring(L, to_luastring('local function f(a, b, c) return a end f(1)')), 0);
  assert.notEqual(L.ci.next, null, 'the CallInfo of the call that returned');
  assert.notEqual(L.stack[L.top], undefined, 'the slot above the top');
});
