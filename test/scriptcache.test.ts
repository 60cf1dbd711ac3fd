// Compiled scripts (server/scriptcache.ts): a script run again is loaded
// from the server's compiled copy, with lua5.3's outcome every time, and a
// changed script, or the same text under another name, is never mistaken
// for a kept one.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  bin,
  normaliseProgname,
  runLua53,
  runShim,
  serverStarter,
  statusReport,
  tempDir,
  waitFor,
  writeScript,
  type Server,
} from './harness.js';

const TEST_TIMEOUT = 60_000;

const serve = serverStarter(['--warmup', 'none']);

/** A '#!' line (skipped, but counted), arguments, the chunk's name, and an
 * error whose traceback names lines of the file. */
const script = (version: string) => `#!/usr/bin/env lua
local source = debug.getinfo(1, "S").source
print("${version}", source, select("#", ...), ...)
local function fails() error("from " .. source) end
fails()
`;

/** Through the server and through lua5.3, in `dir`: the same outcome. */
async function sameAsLua53(server: Server, dir: string, args: string[]): Promise<string> {
  const ours = normaliseProgname(await runShim(server.socket, args, { cwd: dir }), bin('warmlua'));
  const theirs = await runLua53(args, { cwd: dir });
  assert.deepEqual(ours, theirs, `${args.join(' ')} in ${dir}`);
  return ours.stdout;
}

/** Runs `args` until a run loads its script from the server's copy. */
async function runUntilKept(server: Server, dir: string, args: string[]): Promise<void> {
  const before = (await statusReport(server)).runsFromKeptScripts;
  await waitFor('a run from the compiled copy', async () => {
    await sameAsLua53(server, dir, args);
    return (await statusReport(server)).runsFromKeptScripts > before;
  });
}

describe('compiled scripts', { timeout: TEST_TIMEOUT }, () => {
  test("a script run again is loaded from the server's copy, with lua5.3's outcome every time", async () => {
    const dir = tempDir();
    writeScript(dir, 'job.lua', script('v1'));
    const server = await serve();
    const args = ['job.lua', 'a', 'b'];
    await runUntilKept(server, dir, args);
    const r = await statusReport(server);
    assert.equal(r.scriptsKept, 1);
    assert.match(server.log(), /keeping job\.lua compiled for the runs to come/);
    // Kept, it still takes its arguments, and -e chunks run before it.
    assert.equal(await sameAsLua53(server, dir, ['-e', 'print(1)', 'job.lua']), '1\nv1\t@job.lua\t0\n');
  });

  test('a changed script is run as it now reads, even with the same size and times', async () => {
    const dir = tempDir();
    const file = writeScript(dir, 'job.lua', script('v1'));
    const server = await serve();
    await runUntilKept(server, dir, ['job.lua']);
    const { atime, mtime } = fs.statSync(file);
    writeScript(dir, 'job.lua', script('v2'));
    fs.utimesSync(file, atime, mtime);
    assert.match(await sameAsLua53(server, dir, ['job.lua']), /^v2\t/);
  });

  test('the same text under another name is loaded under that name', async () => {
    const dir = tempDir();
    writeScript(dir, 'job.lua', script('v1'));
    const server = await serve();
    await runUntilKept(server, dir, ['job.lua']);
    writeScript(dir, 'other.lua', script('v1'));
    assert.match(await sameAsLua53(server, dir, ['other.lua']), /^v1\t@other\.lua\t/);
    // And through another path to the same file.
    assert.match(await sameAsLua53(server, path.dirname(dir), [path.join(path.basename(dir), 'job.lua')]), /\t@.*\/job\.lua\t/);
  });

  test('scripts kept one after another, with runs in flight: every run succeeds and the forker is never lost', async () => {
    const dir = tempDir();
    const server = await serve();
    for (let n = 1; n <= 4; n++) {
      writeScript(dir, `job${n}.lua`, script(`v${n}`));
      const runs = Array.from({ length: 6 }, (_, i) => sameAsLua53(server, dir, i % 2 ? [`job${n}.lua`] : ['-e', 'print(1)']));
      await Promise.all(runs);
      await runUntilKept(server, dir, [`job${n}.lua`]);
    }
    assert.equal((await statusReport(server)).scriptsKept, 4);
    assert.doesNotMatch(server.log(), /forker/);
  });

  test("a kept script gets the registry's globals as they are when it loads", async () => {
    const dir = tempDir();
    writeScript(dir, 'env.lua', 'print(marker, print ~= nil)\n');
    const server = await serve();
    await runUntilKept(server, dir, ['env.lua']);
    const swap = 'debug.getregistry()[2] = setmetatable({ marker = "swapped" }, { __index = _G })';
    assert.equal(await sameAsLua53(server, dir, ['-e', swap, 'env.lua']), 'swapped\ttrue\n');
  });

  test('a script longer than the limit runs as before and is not kept; a re-warm forgets the kept ones', async () => {
    const dir = tempDir();
    writeScript(dir, 'long.lua', `-- ${'x'.repeat(400 * 1024)}\nprint("long")\n`);
    writeScript(dir, 'job.lua', script('v1'));
    const server = await serve();
    for (let i = 0; i < 4; i++) assert.equal(await sameAsLua53(server, dir, ['long.lua']), 'long\n');
    await runUntilKept(server, dir, ['job.lua']);
    assert.equal((await statusReport(server)).scriptsKept, 1);
    server.process.kill('SIGHUP');
    await waitFor('the re-warm', () => /SIGHUP: re-warmed/.test(server.log()));
    assert.equal((await statusReport(server)).scriptsKept, 0);
    await runUntilKept(server, dir, ['job.lua']);
  });
});
