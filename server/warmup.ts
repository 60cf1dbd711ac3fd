// The JIT warm-up: warmluad runs a Lua script through lua.c's main (luaMain)
// many times in scratch states, so that V8 compiles and optimises fengari's
// lexer, parser and VM and the interpreter's own paths once, in the server,
// for every runner to inherit instead of compiling them again. It decodes
// requests the same way, for the code both the server and every runner run
// on each request. The warm state itself never runs the script.
//
// What a runner inherits is V8's state at the fork, so the order matters;
// each step below was measured with the bench's server (four modules
// preloaded), on its module script, io.lines over 10 MB and hello:
// 1. Warm up in a scratch state with the modules preloaded, before building
//    the warm state. Warming after it left the warm state's objects with
//    hidden classes older than the ones the warm-up widened, and every runner
//    threw away luaV_execute's optimised code on meeting them ("wrong map"):
//    the module script took 14 ms instead of 7-10.
// 2. Building the warm state still throws some optimised code away, so a
//    second, shorter pass follows it: io.lines 390 ms instead of 495-500,
//    the module script 7-9 ms instead of 10.7-10.9.
// 3. Collect garbage after each pass, then a few more runs. The passes leave
//    tens of MB in the old generation and every fork copies its page tables:
//    the server had 37-57 MB of anonymous memory instead of 68-84, a fork
//    took 2.5-3.0 ms instead of 4.6-4.8. But runners forked right after a
//    full collection ran hello in 14-16 ms instead of 3; a few runs after it
//    put that right.
// 4. Last, the run path: what every run does once, whatever its script
//    (decoding its job, lua.c's main, loading a file, print). The passes
//    above run lua.c's main a hundred times or so, too few for V8 to
//    optimise it, and never print.
// 5. Then the pending optimisations (compilePending).
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import type { LuaState } from 'fengari';
import { withDeadline } from './deadline.js';
import { luaMain } from './interpreter.js';
import { native, projectRoot, sendAll } from './native.js';
import { FrameReader, decodeRun, encodeExited, encodeRun, encodeStarted } from './protocol.js';
import { compileKeptScripts, decodeScriptReport, encodeKeptScripts, forgetScripts, scriptParsed, takeScriptReport } from './scriptcache.js';
import { withOutputOn } from './stdlib/index.js';
import { newState } from './warm.js';

export const BUILTIN_WARMUP = path.join(projectRoot, 'server/lua/warmup.lua');
const RUN_PATH_SCRIPT = path.join(projectRoot, 'server/lua/runpath.lua');

/** Runs of each pass. The built-in script's first luaMain took 5.5 ms after a
 * warm-up that ran the chunk without luaMain, 0.3 ms from the second call on.
 * With four modules preloaded, start-up takes about 3 s in all. */
const FIRST_PASS_RUNS = 100;
const SECOND_PASS_RUNS = 30;
const SETTLING_RUNS = 15;

/** Enough requests for V8 to optimise the decoder (and the Buffer methods
 * it calls) rather than for every runner to do it: measured, a runner spent
 * 1.7 ms optimising Buffer's indexOf while decoding its job. Also the runs
 * of the run-path pass (step 4). */
const PROTOCOL_WARMUP_REQUESTS = 2000;
/** The kinds of run of the run-path pass (see warmUpRunPath); step 5 takes
 * each once. */
const RUN_KINDS = 8;
const WARMUP_ENV_BYTES = 32 * 1024;

/** Builds the warm state with `build`, warming V8 before and after it with
 * the Lua script `file` (steps 1-3 above). `withModules` makes a scratch
 * state with the warm state's modules preloaded. */
export function warmAround<T>(file: string, withModules: () => LuaState, build: () => T): T {
  const argv = ['warmluad', file].map((a) => Buffer.from(a));
  onDevNull(() => {
    runScript(withModules(), argv, FIRST_PASS_RUNS);
    warmUpProtocol(argv, PROTOCOL_WARMUP_REQUESTS);
  });
  collectGarbage();
  const built = build();
  settle(argv);
  return built;
}

/** Steps 2 and 3 alone, after a re-warm has built a new warm state. */
export function warmAfterRebuild(file: string): void {
  settle(['warmluad', file].map((a) => Buffer.from(a)));
}

function settle(argv: Buffer[]): void {
  onDevNull(() => {
    runScript(newState(), argv, SECOND_PASS_RUNS);
    collectGarbage();
    runScript(newState(), argv, SETTLING_RUNS);
    warmUpRunPath(PROTOCOL_WARMUP_REQUESTS);
    compilePending(argv);
  });
}

/** V8's own tiering thresholds (node 20): the ticks before a function is
 * optimised, and the bytecode size under which one tick is enough. */
const V8_TIERING_FLAGS = '--ticks-before-optimization=3 --max-bytecode-size-for-early-opt=81';

/** Step 5. V8 marks a hot function for optimisation and compiles it at its
 * next call. A function marked during its last call in the warm-up is
 * compiled by every runner instead, synchronously: table.concat's C
 * function took 7 ms of each module script's run (--trace-opt), once a
 * change to the warm-up had left it so. So V8 stops marking (thresholds
 * no function reaches here, small ones included) while the warm-up script
 * and each kind of run are taken once more, which compiles what was left
 * marked. */
function compilePending(argv: Buffer[]): void {
  v8.setFlagsFromString('--ticks-before-optimization=1000 --max-bytecode-size-for-early-opt=0');
  try {
    runScript(newState(), argv, 1);
    warmUpRunPath(RUN_KINDS);
  } finally {
    v8.setFlagsFromString(V8_TIERING_FLAGS);
  }
}

/** Runs `passes` with their output on /dev/null: a --warmup script that
 * prints would otherwise print on the server's stdout (a supervisor's log,
 * say) a hundred times and more. Only the scratch states' passes: a state
 * opened meanwhile keeps that stream as its io.stdout, so the warm state is
 * built outside. */
function onDevNull(passes: () => void): void {
  withOutputOn('stdout', fs.openSync('/dev/null', 'w'), passes);
}

/** Step 4: a job decoded, then a script that prints, its output on
 * /dev/null, as many times as there are requests to decode. Both, as in a
 * runner: Buffer's subarray optimised for the script's Buffers alone was
 * thrown away by each runner on meeting the job's. About 0.4 s of start-up.
 * Against no such pass, over three restarts of both servers (interleaved
 * A/B): hellos back to back took 0.84-0.90 of the time and 0.83-0.85 of the
 * CPU, the bench's module script 0.84-0.94 of the time.
 *
 * The runs take turns with and without script arguments, and with and
 * without LUA_PATH (";;", as a client that sets it): a kind of run the
 * warm-up left out threw away optimised code in every runner of that kind
 * (pushargs, and the code that reads LUA_PATH: "insufficient type
 * feedback"). The server's own LUA_PATH comes back after. The script also
 * writes to stderr, on /dev/null too, as error messages do: every runner
 * that wrote there threw away the stream's write.
 *
 * And half of them load the script from a compiled copy, the other half
 * parse it, each run's report taken as the server takes it
 * (../scriptcache.ts), and the script compiled as a successor forker
 * compiles it: a runner that took the path the warm-up had left out threw
 * away the loader's optimised code ("wrong map"). The copies are forgotten
 * after, as they belong to a scratch state. */
function warmUpRunPath(requests: number): void {
  const withoutArgs = ['warmluad', RUN_PATH_SCRIPT].map((a) => Buffer.from(a));
  const withArgs = [...withoutArgs, Buffer.from('an argument')];
  const serversOwn = process.env.LUA_PATH;
  let run = 0;
  try {
    withOutputOn('stderr', fs.openSync('/dev/null', 'w'), () => {
      const S = newState();
      warmUpProtocol(withoutArgs, requests, () => {
        const kind = run++ % RUN_KINDS;
        if (kind & 1) process.env.LUA_PATH = ';;';
        else delete process.env.LUA_PATH;
        if (!(kind & 4)) forgetScripts(); // else kept from the second run on
        runScript(S, kind & 2 ? withArgs : withoutArgs, 1);
        const report = decodeScriptReport(takeScriptReport() ?? Buffer.alloc(0));
        if (report && !report.fromCache && scriptParsed(report.script)) compileKeptScripts(S, encodeKeptScripts());
      });
    });
  } finally {
    forgetScripts();
    if (serversOwn === undefined) delete process.env.LUA_PATH;
    else process.env.LUA_PATH = serversOwn;
  }
}

/** Each run within the warm timeout (server/deadline.ts). */
function runScript(S: LuaState, argv: Buffer[], runs: number): void {
  for (let i = 0; i < runs; i++) {
    if (withDeadline(() => luaMain(S, argv)) !== 0) throw new Error(`warm-up script ${argv[1]} failed (see above)`);
  }
}

/** Decodes a request like a client's (this process's own environment, as
 * much as a socket buffer surely holds, since one end writes both) as
 * the server and each runner do: read from a socket by native.recv, whose
 * Buffers have another hidden class than those made in JavaScript. Decoding
 * only the latter left every runner deoptimising readUInt32LE, readUInt8 and
 * subarray ("wrong map") on its job. */
function warmUpProtocol(argv: Buffer[], requests: number, afterEach = (): void => {}): void {
  const env = Object.entries(process.env).map(([name, value]) => Buffer.from(`${name}=${value}`));
  while (env.reduce((bytes, entry) => bytes + entry.length, 0) > WARMUP_ENV_BYTES) env.pop();
  const request = encodeRun({ cwd: Buffer.from(projectRoot), argv, env, fdNumbers: [0, 1, 2] });
  const [sending, receiving] = native.socketPair();
  try {
    const reader = new FrameReader();
    for (let i = 0; i < requests; i++) {
      sendAll(sending, request, []);
      let frame = reader.next();
      for (; frame === null; frame = reader.next()) {
        native.waitReadable(receiving);
        reader.push(native.recv(receiving, request.length)?.data ?? Buffer.alloc(0));
      }
      decodeRun(frame.payload);
      encodeStarted(i);
      encodeExited({ how: 'exited', code: 0 });
      afterEach();
    }
  } finally {
    native.close(sending);
    native.close(receiving);
  }
}

/** Two full collections: the first frees the passes' garbage, the second
 * compacts what is left so that V8 can hand the emptied pages back. `gc` is
 * there when node runs with --expose-gc, as bin/warmluad starts it. */
function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
}
