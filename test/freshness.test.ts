// Fresh preloaded code (issue 6): an edit to a preloaded module, to a module
// it requires or to the config file shows in the very next run, with no wait
// in between; a client's LUA_PATH that names another file gets that file.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runShim, serverStarter, tempDir, writeScript } from './harness.js';

const TEST_TIMEOUT = 60_000;

const serve = serverStarter(['--warmup', 'none']);

/** A module directory: `mod` returns its version joined with `helper`'s. */
function modules(): string {
  const lib = tempDir();
  writeScript(lib, 'mod.lua', 'return "mod-v0/" .. require "helper"\n');
  writeScript(lib, 'helper.lua', 'return "helper-v0"\n');
  return lib;
}

/** What the warm state holds: printed without requiring anything. */
const loaded = (socket: string, name = 'mod', env: Record<string, string> = {}) =>
  runShim(socket, ['-e', `print(package.loaded["${name}"])`], { env });

describe('fresh preloaded code', { timeout: TEST_TIMEOUT }, () => {
  test('an edited module, or one it requires, shows in the very next run, every time', async () => {
    const lib = modules();
    const server = await serve(['--lua-path', `${lib}/?.lua;;`, '--preload', 'mod']);
    assert.equal((await loaded(server.socket)).stdout, 'mod-v0/helper-v0\n');
    for (let version = 1; version <= 5; version++) {
      // Same size and inode each time, and no sleep: only the check before the run can catch it.
      writeScript(lib, 'mod.lua', `return "mod-v${version}/" .. require "helper"\n`);
      assert.equal((await loaded(server.socket)).stdout, `mod-v${version}/helper-v0\n`);
    }
    writeScript(lib, 'helper.lua', 'return "helper-v1"\n');
    assert.equal((await loaded(server.socket)).stdout, 'mod-v5/helper-v1\n');
    assert.match(server.log(), /helper\.lua changed: re-warmed in \d+ms \(preloaded: mod\)/);
  });

  test("a client's LUA_PATH naming another file gets that file; the default path keeps the preloaded one", async () => {
    const lib = modules();
    const other = tempDir();
    writeScript(other, 'mod.lua', 'return "the client\'s own"\n');
    const server = await serve(['--lua-path', `${lib}/?.lua;;`, '--preload', 'mod']);
    const both = ['-e', 'print(package.loaded.mod, require "mod")'];
    const theirs = await runShim(server.socket, both, { env: { LUA_PATH: `${other}/?.lua;;` } });
    assert.deepEqual(theirs, { stdout: "nil\tthe client's own\n", stderr: '', status: 0 });
    const preloaded = 'mod-v0/helper-v0\tmod-v0/helper-v0\n';
    assert.equal((await runShim(server.socket, both)).stdout, preloaded);
    // The server's own path, as it was given (";;" repeats its first template): the same search.
    assert.equal((await runShim(server.socket, both, { env: { LUA_PATH: `${lib}/?.lua;;` } })).stdout, preloaded);
    // The same file by another name (a symlinked directory) is the same module.
    const link = path.join(tempDir(), 'link');
    fs.symlinkSync(lib, link);
    assert.equal((await runShim(server.socket, both, { env: { LUA_PATH: `${link}/?.lua` } })).stdout, preloaded);
    // A path where the module is not found at all: require fails, as in a cold lua.
    const none = await runShim(server.socket, both, { env: { LUA_PATH: `${other}/?.luac` } });
    assert.equal(none.status, 1);
    assert.match(none.stderr, /module 'mod' not found/);
  });

  test('a broken or deleted module is left out of the warm state, and comes back once fixed', async () => {
    const lib = modules();
    const server = await serve(['--lua-path', `${lib}/?.lua;;`, '--preload', 'mod']);
    const use = ['-e', 'print(package.loaded.mod) print(require "mod")'];

    writeScript(lib, 'helper.lua', 'return (\n');
    const broken = await runShim(server.socket, use);
    assert.equal(broken.stdout, 'nil\n'); // not the stale mod-v0/helper-v0
    assert.equal(broken.status, 1);
    assert.match(broken.stderr, /helper\.lua:2: unexpected symbol near <eof>/);
    assert.match(
      server.log(),
      /helper\.lua changed: re-warmed in \d+ms \(preloaded: nothing\); left out: cannot preload module 'mod': .*unexpected symbol/,
    );

    writeScript(lib, 'helper.lua', 'return "helper-v1"\n');
    assert.equal((await loaded(server.socket)).stdout, 'mod-v0/helper-v1\n');

    fs.rmSync(path.join(lib, 'mod.lua'));
    const deleted = await runShim(server.socket, use);
    assert.equal(deleted.stdout, 'nil\n');
    assert.equal(deleted.status, 1);
    assert.match(deleted.stderr, /module 'mod' not found/);

    writeScript(lib, 'mod.lua', 'return "mod-v1"\n');
    assert.equal((await loaded(server.socket)).stdout, 'mod-v1\n');
  });

  test('a file a module reads at load time (dofile, loadfile, io.open, io.lines) is watched like the module', async () => {
    const lib = tempDir();
    const data = (name: string, value: string) => writeScript(lib, name, `return "${value}"\n`);
    for (const name of ['done.lua', 'loaded.lua', 'opened.lua', 'lines.lua']) data(name, `${name}-v0`);
    const at = (name: string) => JSON.stringify(path.join(lib, name));
    writeScript(
      lib,
      'mod.lua',
      `local f = io.open(${at('opened.lua')}) local opened = f:read("a") f:close()\n` +
        `local lines = {} for line in io.lines(${at('lines.lua')}) do lines[#lines + 1] = line end\n` +
        `return table.concat({ dofile(${at('done.lua')}), loadfile(${at('loaded.lua')})(), opened, lines[1] }, " ")\n`,
    );
    const server = await serve(['--lua-path', `${lib}/?.lua;;`, '--preload', 'mod']);
    // opened.lua is read whole, lines.lua's first line only: both are the source.
    const expected = (done: number, fromLoadfile: number, opened: number, lines: number) =>
      `done.lua-v${done} loaded.lua-v${fromLoadfile} return "opened.lua-v${opened}"\n return "lines.lua-v${lines}"\n`;
    assert.equal((await loaded(server.socket)).stdout, expected(0, 0, 0, 0));
    // Each edit shows in the very next run, without a wait.
    data('done.lua', 'done.lua-v1');
    assert.equal((await loaded(server.socket)).stdout, expected(1, 0, 0, 0));
    data('loaded.lua', 'loaded.lua-v1');
    assert.equal((await loaded(server.socket)).stdout, expected(1, 1, 0, 0));
    data('opened.lua', 'opened.lua-v1');
    assert.equal((await loaded(server.socket)).stdout, expected(1, 1, 1, 0));
    data('lines.lua', 'lines.lua-v1');
    assert.equal((await loaded(server.socket)).stdout, expected(1, 1, 1, 1));
  });

  test('a module that rewrites at load time a file it read is not re-warmed for it at every run', async () => {
    const lib = tempDir();
    const count = path.join(lib, 'count');
    fs.writeFileSync(count, '0');
    const log = path.join(lib, 'log');
    writeScript(
      lib,
      'mod.lua',
      `local f = io.open(${JSON.stringify(count)}) local n = f:read("n") + 1 f:close()\n` +
        `f = io.open(${JSON.stringify(count)}, "w") f:write(n) f:close()\n` +
        `f = io.open(${JSON.stringify(log)}, "a") f:write("loaded\\n") f:close()\n` +
        'return n\n',
    );
    const server = await serve(['--lua-path', `${lib}/?.lua;;`, '--preload', 'mod']);
    const first = (await loaded(server.socket)).stdout;
    for (let i = 0; i < 3; i++) assert.equal((await loaded(server.socket)).stdout, first);
    // Only written, the log is not watched: its growth re-warms nothing either.
    fs.appendFileSync(log, 'by hand\n');
    assert.equal((await loaded(server.socket)).stdout, first);
    assert.doesNotMatch(server.log(), /re-warmed/);
    // An edit from outside is one.
    fs.writeFileSync(count, '41');
    assert.equal((await loaded(server.socket)).stdout, '42\n');
  });

  test('an edited config file changes what the next run finds preloaded', async () => {
    const lib = modules();
    writeScript(lib, 'extra.lua', 'return "extra"\n');
    const config = path.join(lib, 'warmluad.json');
    const writeConfig = (preload: string[]) => fs.writeFileSync(config, JSON.stringify({ luaPath: `${lib}/?.lua;;`, preload }));
    writeConfig(['mod']);
    const server = await serve(['--config', config]);
    assert.equal((await loaded(server.socket, 'extra')).stdout, 'nil\n');
    writeConfig(['mod', 'extra']);
    assert.equal((await loaded(server.socket, 'extra')).stdout, 'extra\n');
    writeConfig(['extra']);
    assert.equal((await loaded(server.socket, 'mod')).stdout, 'nil\n');
    // A config that no longer parses keeps the last good one.
    fs.writeFileSync(config, '{');
    assert.equal((await loaded(server.socket, 'extra')).stdout, 'extra\n');
    assert.match(server.log(), /warmluad\.json changed: cannot read config .*; keeping the old configuration/);
  });
});
