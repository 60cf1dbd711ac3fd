// bin/warmlua-cold: the same interpreter and standard library as a runner,
// in this fresh node process, with no server. The shim falls back to it.
import { createLuaState } from './warm.js';
import { luaMain } from './interpreter.js';
import { exitProcess } from './exit.js';
import { native } from './native.js';

// The shim passes its own argv[0] here (a #! wrapper loses it); the variable
// is removed before the script can see it.
const progname = process.env.WARMLUA_PROGNAME ?? 'warmlua-cold';
delete process.env.WARMLUA_PROGNAME;
const argv = [progname, ...process.argv.slice(2)].map((a) => Buffer.from(a));
// As a fresh lua would find them: Node ignores SIGPIPE, so `| head -1`
// would otherwise end in write errors instead of death by SIGPIPE.
native.resetSignals();
const L = createLuaState({ preload: [] });
exitProcess(luaMain(L, argv));
