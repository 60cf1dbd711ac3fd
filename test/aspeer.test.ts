// --as-peer: a server running as root runs each script as its client, with
// the client's uid, gid and supplementary groups. The same script run by the
// same user through lua5.3 is the reference.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { bin, root, run, startServer, tempDir, writeScript, type Outcome, type Server } from './harness.js';

const isRoot = process.getuid?.() === 0;
const dir = tempDir('warmlua-aspeer-');
fs.chmodSync(dir, 0o755); // nobody must reach the script
const rootOnly = tempDir('warmlua-rootonly-'); // 0700, root's: nobody cannot write there

const script = writeScript(
  dir,
  'whoami.lua',
  `local f = assert(io.open("/proc/self/status"))
local status = f:read("a")
f:close()
print(status:match("Uid:%s+(%d+)"), status:match("Gid:%s+(%d+)"), status:match("Groups:[ \\t]*([%d ]*)"))
print(io.open(${JSON.stringify(path.join(rootOnly, 'x'))}, "w"))
os.execute("id -u; id -G")
`,
);
fs.chmodSync(script, 0o644);

/** `command` as nobody, in group nogroup with supplementary groups 27 and 100. */
function asNobody(command: string[], env: Record<string, string> = {}): Promise<Outcome> {
  const setpriv = ['--reuid=nobody', '--regid=nogroup', '--groups=27,100'];
  return run('setpriv', [...setpriv, ...command], { cwd: dir, env, timeoutMs: 20_000 });
}

function viaServer(server: Server): Promise<Outcome> {
  fs.chmodSync(path.dirname(server.socket), 0o755);
  fs.chmodSync(server.socket, 0o666);
  return asNobody([bin('warmlua'), script], { WARMLUA_SOCKET: server.socket, WARMLUA_FALLBACK: 'none' });
}

describe('--as-peer', { skip: !isRoot && 'needs root', timeout: 60_000 }, () => {
  let server: Server;
  before(async () => {
    server = await startServer(['--as-peer', '--allow-uid', '65534']);
  });
  after(() => server.stop());

  test("runs the script with the client's uid, gid and groups, as lua5.3 run by that user", async () => {
    const expected = await asNobody(['lua5.3', script]);
    assert.match(expected.stdout, /^65534\t65534\t27 100 ?\n/);
    const actual = await viaServer(server);
    assert.deepEqual({ ...actual, stderr: actual.stderr.replaceAll(bin('warmlua'), 'lua5.3') }, expected);
  });

  test('is refused to a server that is not root', async (t) => {
    const nobody = ['--reuid=nobody', '--regid=nogroup', '--clear-groups'];
    // nobody must be able to start warmluad from this checkout at all (a
    // clone inside a 0700 directory cannot be).
    const reach = await run('setpriv', [...nobody, 'test', '-r', path.join(root, 'dist/server/warmluad.js')]);
    if (reach.status !== 0) return t.skip('nobody cannot read this checkout');
    const result = await run('setpriv', [...nobody, bin('warmluad'), '--as-peer', '--socket', path.join(dir, 'x.sock')]);
    assert.equal(result.status, 100);
    assert.match(result.stderr, /--as-peer needs the server to run as root/);
  });
});

describe('without --as-peer', { skip: !isRoot && 'needs root', timeout: 60_000 }, () => {
  test("scripts run as the server's user, whoever the client is", async () => {
    const server = await startServer(['--allow-uid', '65534']);
    try {
      const result = await viaServer(server);
      assert.match(result.stdout, /^0\t0\t/);
    } finally {
      await server.stop();
    }
  });
});
