// warmlua-js: runs `script.lua args...` through warmluad with this process's
// stdio, environment and cwd, forwards SIGINT, SIGTERM and SIGHUP to the
// runner, and exits with the runner's status (128+N after signal N).
// It never touches process.stdin/stdout: Node would make those descriptors
// non-blocking, and the runner shares them.
import fs from 'node:fs';
import os from 'node:os';
import { start, WarmluaError } from './client.js';

const forwarded = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function openStdio(): number[] {
  return [0, 1, 2].filter((fd) => {
    try {
      fs.fstatSync(fd);
      return true;
    } catch {
      return false;
    }
  });
}

async function main(): Promise<number> {
  const handle = start({ argv: ['warmlua-js', ...process.argv.slice(2)], fds: openStdio() });
  for (const name of forwarded) process.on(name, () => handle.forward(os.constants.signals[name]));
  return (await handle.result).code;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    fs.writeSync(2, `warmlua-js: ${error instanceof WarmluaError ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
