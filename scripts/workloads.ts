// The scripts the bench runs, written to a temporary directory with the data
// they read, and the exact output each must print (a run that prints
// anything else is a failure, not a figure).
import fs from 'node:fs';
import path from 'node:path';

export interface Workload {
  name: string;
  description: string;
  script: string;
  args: string[];
  /** Fed as stdin (redirected from the file, so its own cost is the read). */
  stdinFile?: string;
  expectedStdout: string;
  /** Prefer this baseline; the other lua5.x when it is missing. */
  baseline: 'lua5.4' | 'lua5.3';
  /** Needs Lua 5.3's module directory, which lua5.4 does not search. */
  needs53Modules?: boolean;
}

/** Debian's lua-dkjson, lua-inspect and lua-argparse, when installed. */
export const REAL_MODULES = ['dkjson', 'inspect', 'argparse'];
const LUA53_SHARE = '/usr/share/lua/5.3';
/** Where Debian's lua5.3 looks for modules by default. */
export const LUA53_DEFAULT_PATH =
  '/usr/local/share/lua/5.3/?.lua;/usr/local/share/lua/5.3/?/init.lua;' +
  `${LUA53_SHARE}/?.lua;${LUA53_SHARE}/?/init.lua`;
export const BIG_MODULE = 'warmbench_big';

export function realModulesInstalled(): boolean {
  return REAL_MODULES.every((m) => fs.existsSync(path.join(LUA53_SHARE, `${m}.lua`)));
}

/** A few thousand lines of functions and tables, so that loading it costs
 * about what a real library does; returns what summing it must give. */
function writeBigModule(dir: string, functions: number): { sum: number } {
  const lines = ['local M = {}', ''];
  let sum = 0;
  for (let i = 1; i <= functions; i++) {
    lines.push(
      `function M.f${i}(x)`,
      `  local t = { ${i}, ${i * 2}, ${i * 3} }`,
      `  local acc = 0`,
      `  for _, v in ipairs(t) do acc = acc + v end`,
      `  if acc < 0 then error("negative") end`,
      `  return x + acc - ${i * 5}`,
      `end`,
      `M.item${i} = { name = "item ${i}", value = ${i}, tags = { "a", "b", "c${i % 7}" }, nested = { depth = ${i % 5} } }`,
      '',
    );
    sum += 1 + i * 6 - i * 5 + i; // f_i(1) + item_i.value
  }
  lines.push(`M.count = ${functions}`, 'return M', '');
  fs.writeFileSync(path.join(dir, `${BIG_MODULE}.lua`), lines.join('\n'));
  return { sum };
}

/** Lines of printable text, like a log file, up to `bytes` bytes. */
function writeTextFile(file: string, bytes: number): { lines: number; bytesWithoutNewlines: number } {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789 ';
  const parts: string[] = [];
  let size = 0;
  let lines = 0;
  while (size < bytes) {
    const line = `line ${String(lines).padStart(7, '0')} ${alphabet.slice(0, (lines * 7) % alphabet.length)}`;
    parts.push(line, '\n');
    size += line.length + 1;
    lines++;
  }
  fs.writeFileSync(file, parts.join(''));
  return { lines, bytesWithoutNewlines: size - lines };
}

export interface WorkloadOptions {
  dir: string;
  dataBytes: number;
  bigModuleFunctions: number;
}

export function writeWorkloads(options: WorkloadOptions): Workload[] {
  const { dir } = options;
  const script = (name: string, source: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, source);
    return file;
  };
  const big = writeBigModule(dir, options.bigModuleFunctions);
  const dataFile = path.join(dir, 'data.txt');
  const data = writeTextFile(dataFile, options.dataBytes);
  const dataSize = fs.statSync(dataFile).size;
  const mb = (options.dataBytes / 2 ** 20).toFixed(0);

  const workloads: Workload[] = [
    {
      name: 'hello',
      description: 'print "hello"',
      script: script('hello.lua', 'print("hello")\n'),
      args: [],
      expectedStdout: 'hello\n',
      baseline: 'lua5.4',
    },
  ];
  if (realModulesInstalled()) {
    workloads.push({
      name: 'modules',
      description: 'require dkjson, inspect, argparse and use each',
      script: script(
        'modules.lua',
        [
          'local json = require("dkjson")',
          'local inspect = require("inspect")',
          'local argparse = require("argparse")',
          'local parser = argparse("modules", "bench script")',
          'parser:argument("input")',
          'parser:option("-n --count"):convert(tonumber)',
          'local args = parser:parse({ "data.json", "-n", "3" })',
          'local text = json.encode({ name = "warmlua", list = { 1, 2, 3 } }, { keyorder = { "name", "list" } })',
          'local back = json.decode(text)',
          'print(text, back.list[3], args.input, args.count)',
          'print(inspect({ ok = true, n = 2 }, { newline = " ", indent = "" }))',
          '',
        ].join('\n'),
      ),
      args: [],
      expectedStdout: '{"name":"warmlua","list":[1,2,3]}\t3\tdata.json\t3\n{ n = 2, ok = true }\n',
      baseline: 'lua5.3',
      needs53Modules: true,
    });
  }
  workloads.push(
    {
      name: 'bigmodule',
      description: `require a generated ${options.bigModuleFunctions * 9}-line module`,
      script: script(
        'bigmodule.lua',
        [
          `local M = require("${BIG_MODULE}")`,
          'local sum = 0',
          'for i = 1, M.count do sum = sum + M["f" .. i](1) + M["item" .. i].value end',
          'print(M.count, sum)',
          '',
        ].join('\n'),
      ),
      args: [],
      expectedStdout: `${options.bigModuleFunctions}\t${big.sum}\n`,
      baseline: 'lua5.3',
    },
    {
      name: 'stdin',
      description: `io.read("a") of ${mb} MB on stdin`,
      script: script('stdin.lua', 'local s = io.read("a")\nprint(#s)\n'),
      args: [],
      stdinFile: dataFile,
      expectedStdout: `${dataSize}\n`,
      baseline: 'lua5.3',
    },
    {
      name: 'readall',
      description: `f:read("a") of a ${mb} MB file`,
      script: script('readall.lua', 'local f = assert(io.open(arg[1], "rb"))\nlocal s = f:read("a")\nf:close()\nprint(#s)\n'),
      args: [dataFile],
      expectedStdout: `${dataSize}\n`,
      baseline: 'lua5.3',
    },
    {
      name: 'lines',
      description: `io.lines over a ${mb} MB file`,
      script: script('lines.lua', 'local n, b = 0, 0\nfor l in io.lines(arg[1]) do n = n + 1; b = b + #l end\nprint(n, b)\n'),
      args: [dataFile],
      expectedStdout: `${data.lines}\t${data.bytesWithoutNewlines}\n`,
      baseline: 'lua5.3',
    },
  );
  return workloads;
}
