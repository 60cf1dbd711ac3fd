// lua.c's command-line behaviour, differentially: every case runs through
// the real lua5.3 and through bin/warmlua-cold (and through the server via
// the native shim when a server starts), and stdout, stderr and the exit
// status must be identical byte for byte.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  bin,
  normaliseProgname,
  runCold,
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

const dir = tempDir('warmlua-cli-');

// Fixture scripts, in the directory every case runs in.
writeScript(dir, 'args.lua', 'print(select("#", ...), ...)\nfor i = -3, #arg do print(i, arg[i]) end\n');
writeScript(dir, 'fail.lua', 'print("before")\nlocal function f() error("boom") end\nf()\n');
writeScript(dir, 'syntax.lua', 'print("never")\nlocal x = = 1\n');
writeScript(dir, 'shebang.lua', '#!/usr/bin/lua5.3\nprint("line", debug.getinfo(1, "l").currentline)\nerror("at 3")\n');
writeScript(dir, 'bom.lua', '\u{feff}#!/bin/lua\nprint("bom", ...)\nerror("at 3")\n');
writeScript(dir, 'bomonly.lua', '\u{feff}print("bom only")\n');
writeScript(dir, 'init.lua', 'print("init file", arg and arg[0])\n');
writeScript(dir, 'badinit.lua', 'error("init failed")\n');
writeScript(dir, 'mymod.lua', 'print("loading mymod", ...)\nreturn { answer = 42 }\n');
writeScript(dir, 'errmod.lua', 'error("module broke")\n');
writeScript(dir, 'tostr.lua', 'error(setmetatable({}, { __tostring = function() return "custom message" end }))\n');
writeScript(dir, 'run.lua', '#!/usr/bin/env lua5.3\nreturn { run = function() print("run", arg[0], #arg, arg[1]) end }\n');
writeScript(dir, 'ret.lua', 'return 1, 2, 3\n');
writeScript(dir, 'exit.lua', 'os.exit(3)\n');
fs.mkdirSync(path.join(dir, 'adir'));

interface Case {
  name: string;
  args: string[];
  input?: string;
  env?: Record<string, string>;
}

/** A clean environment: no LUA_INIT or LUA_PATH from whoever runs the tests. */
function options(c: Case, extra: Record<string, string> = {}): RunOptions {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...c.env, ...extra };
  return { input: c.input ?? '', env, extendEnv: false, cwd: dir, timeoutMs: 20_000 };
}

const cases: Case[] = [
  // Options and their errors.
  { name: '-e separate', args: ['-e', 'print(1 + 1)'] },
  { name: '-e attached', args: ['-eprint(1 + 1)'] },
  { name: '-e twice, in order', args: ['-e', 'x = 1', '-e', 'print(x + 1)'] },
  { name: '-e missing argument', args: ['-e'] },
  { name: '-e followed by an option', args: ['-e', '-v'] },
  { name: '-l missing argument', args: ['-l'] },
  { name: 'unknown option', args: ['-x'] },
  { name: 'unknown long option', args: ['--x'] },
  { name: '-E with extra characters', args: ['-Ex'] },
  { name: '-v with extra characters', args: ['-vx'] },
  { name: '-i with extra characters', args: ['-ix'] },
  { name: 'bad option after good ones', args: ['-e', 'print(1)', '-y', 'args.lua'] },
  { name: '-v', args: ['-v'] },
  { name: '-v before -e output', args: ['-e', 'print("e")', '-v'] },
  { name: '-l a module into a global', args: ['-l', 'mymod', '-e', 'print(mymod.answer)'] },
  { name: '-l attached', args: ['-lmymod', '-e', 'print(mymod.answer)'] },
  { name: '-l a module that fails', args: ['-l', 'errmod', '-e', 'print("not reached")'] },
  { name: '-l stops later options', args: ['-e', 'print(1)', '-l', 'errmod', '-e', 'print(2)'] },
  { name: '-- then a script', args: ['--', 'args.lua', '-e', 'x'] },
  { name: '-- alone', args: ['-e', 'print(1)', '--'] },
  { name: '-- then - is a file named -', args: ['--', '-'] },
  { name: 'options after the script belong to it', args: ['args.lua', '-v', '-e', 'x'] },
  { name: 'Liminix #! form: -e chunk attached with a space', args: ['-e dofile(arg[0]).run()', 'run.lua', 'a', 'b'] },
  { name: 'leading space is not an option', args: [' -e print(1)'] },

  // The arg table and the script's `...`.
  { name: 'arg with a script', args: ['args.lua', 'a', '', 'c'] },
  { name: 'arg with options and a script', args: ['-E', '-e', 'y=1', 'args.lua', 'z'] },
  { name: 'arg with no script', args: ['-e', 'for i = -3, 3 do print(i, arg[i]) end'] },
  { name: 'arg for stdin script', args: ['-', 'p', 'q'], input: 'print(...)\nprint(arg[0], arg[-1], arg[1])\n' },
  { name: 'arg replaced by a non-table', args: ['-e', 'arg = 5', 'args.lua'] },
  { name: 'arg with __len', args: ['-e', 'setmetatable(arg, { __len = function() return 1 end })', 'args.lua', 'x', 'y'] },
  { name: 'script results are ignored', args: ['ret.lua'] },

  // Errors and exit statuses.
  { name: 'runtime error with traceback', args: ['fail.lua'] },
  { name: 'syntax error in a script', args: ['syntax.lua'] },
  { name: 'syntax error in -e', args: ['-e', 'x = = 1'] },
  { name: 'error with a table', args: ['-e', 'error({})'] },
  { name: 'error with nil', args: ['-e', 'error()'] },
  { name: 'error with a number', args: ['-e', 'error(42)'] },
  { name: 'error with __tostring', args: ['tostr.lua'] },
  { name: 'error with __tostring not giving a string', args: ['-e', 'error(setmetatable({}, { __tostring = function() return 1 end }))'] },
  { name: 'error with a NUL in the message', args: ['-e', 'error("a\\0b")'] },
  { name: 'error with level 0', args: ['-e', 'error("plain", 0)'] },
  { name: 'error in a nested function', args: ['-e', 'local function f() local x = nil; return x.y end f()'] },
  { name: 'error caught by pcall', args: ['-e', 'print(pcall(error, "caught"))'] },
  { name: 'missing script', args: ['nofile.lua'] },
  { name: 'script is a directory', args: ['adir'] },
  { name: 'os.exit status', args: ['exit.lua'] },
  { name: 'os.exit(true)', args: ['-e', 'os.exit(true)'] },
  { name: 'os.exit(false)', args: ['-e', 'os.exit(false)'] },
  { name: 'os.exit(300)', args: ['-e', 'os.exit(300)'] },
  { name: 'error after output', args: ['-e', 'print("out")', '-e', 'error("err")'] },

  // Scripts start with no hook, as under lua5.3 (SIGINT needs none until it comes).
  { name: 'debug.gethook with no hook', args: ['-e', 'print(debug.gethook())'] },
  { name: 'debug.gethook in a coroutine', args: ['-e', 'print(coroutine.wrap(function() return debug.gethook() end)())'] },
  { name: 'debug.sethook then gethook', args: ['-e', 'debug.sethook(function() end, "", 10) print(select(2, debug.gethook()))'] },
  { name: 'debug.sethook cleared', args: ['-e', 'debug.sethook(print, "l") debug.sethook() print(debug.gethook())'] },
  { name: 'debug.sethook bad argument', args: ['-e', 'debug.sethook(5)'] },

  // First lines and chunk names.
  { name: '#! line skipped, line numbers kept', args: ['shebang.lua'] },
  { name: 'BOM then #! line', args: ['bom.lua', 'x'] },
  { name: 'BOM only', args: ['bomonly.lua'] },

  // LUA_INIT and -E.
  { name: 'LUA_INIT code', args: ['-e', 'print("main")'], env: { LUA_INIT: 'print("init", ...)' } },
  { name: 'LUA_INIT_5_3 wins over LUA_INIT', args: ['-e', 'print("main")'], env: { LUA_INIT: 'print("plain")', LUA_INIT_5_3: 'print("versioned")' } },
  { name: 'LUA_INIT @file', args: ['-e', 'print("main")'], env: { LUA_INIT: '@init.lua' } },
  { name: 'LUA_INIT @missing file', args: ['-e', 'print("main")'], env: { LUA_INIT: '@nope.lua' } },
  { name: 'LUA_INIT error stops everything', args: ['args.lua'], env: { LUA_INIT_5_3: 'error("init")' } },
  { name: 'LUA_INIT @file error', args: ['args.lua'], env: { LUA_INIT: '@badinit.lua' } },
  { name: 'LUA_INIT syntax error', args: ['-e', 'print(1)'], env: { LUA_INIT: 'x =' } },
  { name: 'LUA_INIT runs after -v', args: ['-v', '-e', 'print(2)'], env: { LUA_INIT: 'print(1)' } },
  { name: '-E skips LUA_INIT', args: ['-E', '-e', 'print("main")'], env: { LUA_INIT: 'print("init")' } },
  { name: 'LUA_PATH with ;;', args: ['-e', 'print(package.path)'], env: { LUA_PATH: '/x/?.lua;;' } },
  { name: 'LUA_PATH_5_3 wins', args: ['-e', 'print(package.path)'], env: { LUA_PATH: '/x/?.lua', LUA_PATH_5_3: '/y/?.lua' } },
  { name: 'LUA_CPATH', args: ['-e', 'print(package.cpath)'], env: { LUA_CPATH: '/z/?.so;;' } },
  { name: '-E ignores LUA_PATH and LUA_CPATH', args: ['-E', '-e', 'print(package.path) print(package.cpath)'], env: { LUA_PATH: '/x/?.lua', LUA_CPATH: '/z/?.so' } },

  // stdin as the script.
  { name: 'implicit stdin runs', args: [], input: 'print("from stdin", ...)\n' },
  { name: 'implicit stdin error still exits 0', args: [], input: 'print(1)\nerror("x")\n' },
  { name: 'implicit stdin syntax error exits 0', args: [], input: 'x = = 1\n' },
  { name: 'implicit stdin with #! line', args: [], input: '#!/usr/bin/lua5.3\nerror("line 2")\n' },
  { name: 'empty stdin', args: [], input: '' },
  { name: '- error exits 1', args: ['-'], input: 'print(1)\nerror("x")\n' },
  { name: '- after -e', args: ['-e', 'print("e")', '-'], input: 'print("stdin")\n' },
  { name: '-E alone runs stdin', args: ['-E'], input: 'print("E stdin")\n' },
  { name: '-e alone does not read stdin', args: ['-e', 'print(io.read and 1)'], input: 'print("no")\n' },
  { name: '-v alone does not read stdin', args: ['-v'], input: 'print("no")\n' },

  // -i with stdin piped: Debian's lua5.3 reads with readline, which echoes.
  {
    name: '-i REPL session',
    args: ['-i'],
    input: 'x = 1\n=x\nx + 1\nfor i = 1, 2 do\nprint(i)\nend\nerror("e")\nerror({})\nprint(nil, false)\nreturn\nlocal y <eof>\n=1,nil\n',
  },
  { name: '-i after a script', args: ['-i', 'args.lua', 'a'], input: '=#arg\n' },
  { name: '-i after -e', args: ['-e', 'z = 7', '-i'], input: '=z\n' },
  { name: '-i without final newline', args: ['-i'], input: '=2' },
  { name: '-i empty input', args: ['-i'], input: '' },
  { name: '-i incomplete at end of input', args: ['-i'], input: 'for i = 1, 2 do\n' },
  { name: '-i _PROMPT and _PROMPT2', args: ['-i'], input: '_PROMPT = "P "\n_PROMPT2 = 5\nif true then\nend\n_PROMPT2 = "Q"\nif x then\n' },
  { name: '-i print replaced', args: ['-i'], input: 'print = nil\n=1\nprint = function() error("p") end\n=2\n' },
  { name: '-i blank lines, CR and TAB', args: ['-i'], input: '\n\nprint(1)\r\n\tprint(2)\n' },
  { name: '-i io.read reads the rest of stdin', args: ['-i'], input: '=io.read("l")\nsome text\n=3\n' },
  { name: '-i with a script error stops before the REPL', args: ['-i', 'fail.lua'], input: '=1\n' },
];

// Cases where the order of stdout and stderr matters: both go to one pipe
// (sh -c 'exec "$@" 2>&1'), as under s6's `exec 2>&1`.
const mergedCases: Case[] = [
  { name: 'buffered io.write comes after the error message', args: ['-e', 'io.write("partial") error("late")'] },
  { name: 'print output comes before the error message', args: ['-e', 'print("line") error("after")'] },
  { name: '-v then a script error', args: ['-v', 'fail.lua'] },
  { name: 'usage after nothing', args: ['-e', 'print(1)', '-z'] },
  { name: 'REPL prompts, echo, results and errors in order', args: ['-i'], input: 'do io.write("w") end\nerror("e")\n=1\n\tx=1\n' },
  { name: 'implicit stdin error after output', args: [], input: 'io.write("a")\nprint("b")\nerror("c")\n' },
];

// ---------------------------------------------------------------------------
// The ways to run a case: the reference, the cold path, the server.

let server: Server | null = null;
let whyNoServer = '';

before(async () => {
  try {
    server = await startServer();
  } catch (e) {
    whyNoServer = (e as Error).message.split('\n')[0];
  }
});

after(async () => {
  await server?.stop();
});

interface Via {
  /** The program run in place of lua5.3, and what it needs in its environment. */
  file: string;
  env: Record<string, string>;
}

const viaLua53 = (): Via => ({ file: 'lua5.3', env: {} });
const viaCold = (): Via => ({ file: bin('warmlua-cold'), env: { WARMLUA_PROGNAME: 'lua5.3' } });
const viaShim = (): Via => ({
  file: bin('warmlua'),
  env: { WARMLUA_SOCKET: server?.socket ?? '', WARMLUA_FALLBACK: 'none' },
});

/** The shim's argv[0] is its path: it shows in messages and in arg[-n]. */
function withProgname(o: Outcome, progname: string): Outcome {
  const n = normaliseProgname(o, progname);
  return { ...n, stdout: n.stdout.split(progname).join('lua5.3') };
}

async function finish(child: ReturnType<typeof start>, via: Via): Promise<Outcome> {
  const r = await child;
  const status = r.signal ? 128 + (os.constants.signals as Record<string, number>)[r.signal] : (r.exitCode ?? -1);
  return withProgname({ stdout: String(r.stdout), stderr: String(r.stderr), status }, via.file);
}

/** Runs a case with stderr sent into stdout's pipe. */
function runMerged(via: Via, c: Case): Promise<Outcome> {
  const o = options(c, via.env);
  return finish(start('sh', ['-c', 'exec "$@" 2>&1', 'sh', via.file, ...c.args], o), via);
}

/** Skips the test when no server could be started (the reason is shown). */
function needServer(t: { skip(message: string): void }): boolean {
  if (server !== null) return true;
  t.skip(`no server: ${whyNoServer}`);
  return false;
}

// ---------------------------------------------------------------------------

describe('lua.c behaviour through bin/warmlua-cold', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const [expected, actual] = await Promise.all([
        runLua53(c.args, options(c)),
        runCold(c.args, options(c, viaCold().env)),
      ]);
      assert.deepEqual(actual, expected, `args: ${JSON.stringify(c.args)}`);
    });
  }
});

describe('lua.c behaviour through the server and the native shim', () => {
  for (const c of cases) {
    it(c.name, async (t) => {
      if (!needServer(t)) return;
      const expected = await runLua53(c.args, options(c));
      const actual = withProgname(await runShim(server!.socket, c.args, options(c)), bin('warmlua'));
      assert.deepEqual(actual, expected, `args: ${JSON.stringify(c.args)}`);
    });
  }
});

describe('stdout and stderr on one pipe', () => {
  for (const c of mergedCases) {
    it(`cold: ${c.name}`, async () => {
      const [expected, actual] = await Promise.all([runMerged(viaLua53(), c), runMerged(viaCold(), c)]);
      assert.deepEqual(actual, expected, `args: ${JSON.stringify(c.args)}`);
    });
    it(`server: ${c.name}`, async (t) => {
      if (!needServer(t)) return;
      const [expected, actual] = await Promise.all([runMerged(viaLua53(), c), runMerged(viaShim(), c)]);
      assert.deepEqual(actual, expected, `args: ${JSON.stringify(c.args)}`);
    });
  }
});

// A #! script: the kernel passes the interpreter's options as one argument.
describe('#! scripts', () => {
  async function runShebang(interpreter: string): Promise<Outcome> {
    const sub = tempDir('warmlua-shebang-');
    const file = writeScript(
      sub,
      'tool',
      `#!${interpreter} -e print("init",#arg,arg[0]~=nil)\nprint("main", arg[0], ...)\nerror("from tool")\n`,
    );
    fs.chmodSync(file, 0o755);
    const r = await start('./tool', ['x', 'y'], { cwd: sub, input: '', timeoutMs: 20_000 });
    const o = { stdout: String(r.stdout), stderr: String(r.stderr), status: r.exitCode ?? -1 };
    return normaliseProgname(o, interpreter);
  }
  it('runs the attached -e, then the script with its arguments', async () => {
    const expected = await runShebang('/usr/bin/lua5.3');
    const actual = await runShebang(bin('warmlua-cold'));
    assert.equal(expected.status, 1);
    assert.deepEqual(actual, expected);
  });
});

// With a terminal on stdin and no arguments: the version, then the REPL.
// Debian's lua5.3 draws with readline there, so this is no byte comparison.
describe('REPL on a terminal', () => {
  it('prints the version and evaluates lines (cold, through script(1))', async () => {
    const command = `WARMLUA_PROGNAME=lua5.3 '${bin('warmlua-cold')}'`;
    const r = await start('script', ['-qec', command, '/dev/null'], { input: '=1+2\n', cwd: dir, timeoutMs: 20_000 });
    const stdout = String(r.stdout);
    assert.equal(r.exitCode, 0, stdout);
    assert.match(stdout, /Lua 5\.3\.6 {2}Copyright \(C\) 1994-2020 Lua\.org, PUC-Rio\r\n> 3\r\n> \r\n$/);
  });
});

// lua.c restores SIG_DFL after each chunk, so a Ctrl-C at the prompt ends
// lua5.3 (readline passes the signal on).
describe('SIGINT at the REPL prompt', () => {
  it('kills the interpreter as it kills lua5.3', async () => {
    const command = `WARMLUA_PROGNAME=lua5.3 '${bin('warmlua-cold')}'`;
    const child = start('script', ['-qec', command, '/dev/null'], { cwd: dir, timeoutMs: 20_000 });
    let seen = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('3\r\n> ')) resolve();
      });
      child.once('exit', () => reject(new Error(`ended early: ${seen}`)));
      child.stdin?.write('=1+2\n');
    });
    child.stdin?.write('\x03');
    await new Promise((r) => setTimeout(r, 500));
    child.stdin?.end('=4\n');
    const r = await child;
    assert.equal(r.exitCode, 130, String(r.stdout));
  });
});

// SIGINT while Lua code runs: "interrupted!" like lua.c, catchable by pcall.
describe('SIGINT', () => {
  writeScript(dir, 'loop.lua', 'print("ready")\nlocal function spin() local i = 0 while true do i = i + 1 end end\nspin()\n');
  writeScript(dir, 'caught.lua', 'print("ready")\nprint(pcall(function() while true do end end))\nprint("after")\n');
  writeScript(dir, 'twice.lua', 'print("ready")\nwhile true do pcall(function() while true do end end) end\n');
  writeScript(dir, 'hooked.lua', 'debug.sethook(function() end, "", 100)\nprint("ready")\nwhile true do end\n');
  writeScript(
    dir,
    'coroutine.lua',
    'print("ready")\nprint(coroutine.wrap(function() local t = os.clock() while os.clock() - t < 0.8 do end return "done" end)())\n',
  );

  /** Starts a script, sends SIGINT `times` times once it printed "ready". */
  async function interrupt(via: Via, script: string, times: number): Promise<Outcome> {
    const child = start(via.file, [script], options({ name: script, args: [] }, via.env));
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      child.stdout?.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('ready\n')) resolve();
      });
      child.once('exit', () => reject(new Error(`ended before ready: ${seen}`)));
    });
    for (let i = 0; i < times; i++) {
      await new Promise((r) => setTimeout(r, 200));
      child.kill('SIGINT');
    }
    return finish(child, via);
  }

  for (const [script, times, what] of [
    ['loop.lua', 1, 'uncaught: progname: interrupted! with a traceback, exit 1'],
    ['caught.lua', 1, 'caught by pcall, the script goes on'],
    ['twice.lua', 2, 'the first is caught, the second kills'],
    ['hooked.lua', 1, "the script's own hook gives way, as lua.c's laction replaces it"],
    ['coroutine.lua', 1, 'a coroutine runs on, the main thread is interrupted when it returns'],
  ] as const) {
    it(`cold: ${what}`, async () => {
      const expected = await interrupt(viaLua53(), script, times);
      const actual = await interrupt(viaCold(), script, times);
      assert.deepEqual(actual, expected);
    });
    it(`server: ${what}`, async (t) => {
      if (!needServer(t)) return;
      const expected = await interrupt(viaLua53(), script, times);
      const actual = await interrupt(viaShim(), script, times);
      assert.deepEqual(actual, expected);
    });
  }
});
