/**
 * Install-time fixes to fengari, run by `npm ci` (the `prepare` script).
 * Each one keeps fengari's behaviour as lua5.3's and changes what V8 and a
 * forked runner pay for it; the third also mends a wrong answer, and the
 * fourth two differences from lua5.3.
 *
 * 1. fengari pops values off a Lua stack with `delete L.stack[i]`. V8 turns
 *    an array into a dictionary when a delete leaves it mostly holes, once it
 *    has 64 slots or more and lives in the old generation. A warm state's
 *    stack always does, so every stack access of every runner was a hash
 *    lookup: the bench's module script took 1/0.855 of the time it takes with
 *    this fix. Storing `undefined` instead reads the same to fengari (no code
 *    of it tells a hole from `undefined`) and keeps the array's fast elements.
 *
 * 2. Every call allocated a new CallInfo, and a new value object for each
 *    slot of the callee's frame and again for the caller's when it came back:
 *    half of what the module script allocates. In a runner, each 4 KiB of
 *    young generation it fills is a page shared with the forker, copied at
 *    the first write (about 4 us), so allocation costs there what it never
 *    costs in a lone process. C Lua keeps its CallInfo list and its stack
 *    slots from call to call, and so does fengari now: a CallInfo past the
 *    current one (a tail call's too) is used again, and a slot a frame gives
 *    back keeps its value object, set to nil, for the next frame to use.
 *    That is safe where a slot's object is in use only while the slot is:
 *    fengari already writes into live slots' objects in place, and closures,
 *    which do keep a slot's object, are given new ones when their frame
 *    closes its upvalues (luaF_close), before the frame returns. What stays
 *    after a deep recursion (a CallInfo and a nil value per level) is freed
 *    when the thread is, or by the stack's shrinking after an error.
 *
 * 3. A string's key in fengari's tables (luaS_hash) was its bytes in hex
 *    without padding, so "\1#" (1, 0x23) and "\18\3" (0x12, 3) were the same
 *    key: `t["\18\3"]` read what was stored at `t["\1#"]`. Each byte is now one
 *    character, which no two strings share, built in one call rather than a
 *    small string per byte (keys of the module script: half the time).
 *
 * 4. lua.c turns SIGINT into the error "interrupted!" by setting a hook from
 *    its signal handler. JS cannot run in one: native code raises a flag
 *    instead, and the VM now looks at it before each instruction and calls
 *    `luaV_interruption.handler` when it is raised (server/luacall.ts sets
 *    the hook there). Polling it with a count hook, as before, meant a
 *    hook in every script, which lua5.3 does not have, and a call per
 *    instruction (a table loop in a plain node took 1.15 times as long).
 *
 * 5. fengari copies every string it makes from JS bytes (lua_pushstring,
 *    lua_getfield's key, the lexer's names) with Uint8Array.from, which
 *    walks its source as an iterable: 0.11 us for a 30-byte line in a
 *    plain node, against 0.03 us for `new Uint8Array(source)`, the same
 *    copy (an iterable source is iterated the same way).
 *
 * 6. The length of a table (`#t`, table.insert) was a binary search among
 *    its keys, each probe a Map lookup: 18 of them for `t[#t + 1] = v`, Lua's
 *    usual append, on a table of 200,000. A table whose keys are 1 to n,
 *    the usual case, has n keys, so the count of keys is tried first: a
 *    border if t[n] is there and t[n + 1] is not, and any border is a valid
 *    length. Other tables are searched as before.
 *
 * 7. luaL_addlstring (table.concat's and string.format's pieces) took a
 *    subarray of each string it added, whole or not. V8 keeps an array of
 *    64 bytes or less in its heap, and must move it out to make a subarray
 *    of it: a malloc, and a free when the collector sweeps. A whole string
 *    is now copied as it is.
 *
 * 8. A CallInfo got its `extra` (where a pcall that can be yielded across
 *    keeps its function's place) only when a pcall in a coroutine first
 *    needed one, which gives the CallInfo so changed a second hidden class.
 *    The warm-up's coroutines did, so the server's code knew both classes,
 *    and its full collections threw away every function that had met the
 *    second (42 of the 178 they threw away) once no such CallInfo was left;
 *    a runner whose script then yielded across a pcall made the second class
 *    anew and threw away code that had known only the first, luaD_precall
 *    and the rest of the call path among it, to run on in the interpreter.
 *    C Lua's CallInfo has the field from the start, and fengari's does now.
 *
 * 9. A generic for over `pairs` or `ipairs` called `next` or ipairs'
 *    iterator for each step: a JavaScript function's call, a CallInfo and
 *    the moving of its results, about 0.5 us in a plain node where the
 *    table lookup takes a few hundredths of that. The VM now takes the step
 *    itself when the iterator is one of these two and nothing can tell the
 *    difference: no hook is set, ipairs' table has no metatable (whose
 *    __index it would have to call) and its index is an integer below the
 *    largest, and next's key is nil or a live key of the table (not one to
 *    look up among the dead, nor to raise an error for). Otherwise the call
 *    is made as before. Like C Lua's, a step leaves the registers above the
 *    loop's variables as they were instead of setting them to nil.
 *
 * Running it again is harmless: a fixed file has nothing left to replace.
 * If fengari's source no longer has the shape these fixes expect, it fails
 * loudly rather than install a fengari that silently lacks them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const POP = /delete (\w+)\.stack\[([^\]]+)\];/g;
const FIXED_POP = /\w+\.stack\[[^\]]+\] = undefined;/g;

/** Exact replacements, applied after the pops are fixed. */
interface Rewrite {
  file: string;
  before: string;
  after: string;
}

const REWRITES: Rewrite[] = [
  {
    file: 'ldo.js',
    before: `        while (L.top < newtop)
            L.stack[L.top++] = new lobject.TValue(LUA_TNIL, null);
    } else {
        while (L.top > newtop)
            L.stack[--L.top] = undefined;
    }`,
    after: `        for (; L.top < newtop; L.top++) {
            if (L.stack[L.top] === undefined)
                L.stack[L.top] = new lobject.TValue(LUA_TNIL, null);
            else
                L.stack[L.top].setnilvalue();
        }
    } else {
        while (L.top > newtop)
            L.stack[--L.top]?.setnilvalue();
    }`,
  },
  {
    file: 'ldo.js',
    before: `            for (let i=L.top; i>=(res + nres); i--)
                L.stack[i] = undefined;`,
    after: `            for (let i=L.top; i>=(res + nres); i--)
                L.stack[i]?.setnilvalue();`,
  },
  {
    file: 'ldo.js',
    before: `    for (let i=L.top; i>=newtop; i--)
        L.stack[i] = undefined;`,
    after: `    for (let i=L.top; i>=newtop; i--)
        L.stack[i]?.setnilvalue();`,
  },
  {
    file: 'ldo.js',
    before: `    L.ci = ci.previous;
    L.ci.next = null;
    return moveresults(`,
    after: `    L.ci = ci.previous;
    return moveresults(`,
  },
  {
    file: 'lstring.js',
    before: `    let len = str.length;
    let s = "|";
    for (let i=0; i<len; i++)
        s += str[i].toString(16);
    return s;`,
    after: `    let s = "|";
    for (let i = 0; i < str.length; i += 8192)
        s += String.fromCharCode.apply(null, str.length <= 8192 ? str : str.subarray(i, i + 8192));
    return s;`,
  },
  {
    file: 'lvm.js',
    before: `                    oci.callstatus |= lstate.CIST_TAIL;
                    oci.next = null;
                    ci = L.ci = oci;`,
    after: `                    oci.callstatus |= lstate.CIST_TAIL;
                    ci = L.ci = oci;`,
  },
  {
    file: 'lstate.js',
    before: `const luaE_extendCI = function(L) {
    let ci = new CallInfo();
    L.ci.next = ci;
    ci.previous = L.ci;
    ci.next = null;
    L.ci = ci;
    return ci;
};`,
    after: `const luaE_extendCI = function(L) {
    let ci = L.ci.next;
    if (ci === null) {
        ci = new CallInfo();
        L.ci.next = ci;
        ci.previous = L.ci;
    }
    L.ci = ci;
    return ci;
};`,
  },
  {
    file: 'lvm.js',
    before: `const luaV_execute = function(L) {`,
    after: `/* warmlua: what a SIGINT handler raises, and what sees to it (lua.c's laction). */
const luaV_interruption = { flag: new Int32Array(1), handler: function(L) {} };

const luaV_execute = function(L) {`,
  },
  {
    file: 'lvm.js',
    before: `        let i = ci.l_code[ci.l_savedpc++];

        if (L.hookmask & (LUA_MASKLINE | LUA_MASKCOUNT)) {`,
    after: `        let i = ci.l_code[ci.l_savedpc++];

        if (luaV_interruption.flag[0] !== 0)
            luaV_interruption.handler(L);
        if (L.hookmask & (LUA_MASKLINE | LUA_MASKCOUNT)) {`,
  },
  {
    file: 'defs.js',
    before: `    luastring_from = Uint8Array.from.bind(Uint8Array);`,
    after: `    luastring_from = function(a) { return new Uint8Array(a); };`,
  },
  {
    file: 'ltable.js',
    before: `const luaH_getn = function(t) {
    let i = 0;`,
    after: `const luaH_getn = function(t) {
    let n = t.strong.size;
    if (n > 0 && !luaH_getint(t, n).ttisnil() && luaH_getint(t, n + 1).ttisnil())
        return n; /* warmlua: a sequence, its keys counted */
    let i = 0;`,
  },
  {
    file: 'lauxlib.js',
    before: `        b.set(s.subarray(0, l));`,
    after: `        b.set(l === s.length ? s : s.subarray(0, l));`,
  },
  {
    file: 'lstate.js',
    before: `        this.nresults = NaN;
        this.callstatus = NaN;
    }`,
    after: `        this.nresults = NaN;
        this.callstatus = NaN;
        this.extra = NaN; /* warmlua: one hidden class for every CallInfo */
    }`,
  },
  {
    file: 'lvm.js',
    before: `module.exports.tonumber         = tonumber;`,
    after: `module.exports.tonumber         = tonumber;
module.exports.luaV_interruption = luaV_interruption;
module.exports.luaV_iterators   = luaV_iterators;`,
  },
  {
    file: 'lvm.js',
    before: `const RA = function(L, base, i) {`,
    after: `/* warmlua: next and ipairs' iterator (lbaselib.js sets them), whose steps
   in a generic for luaV_forstep takes without a call. */
const luaV_iterators = { next: null, ipairsaux: null };

/* warmlua: the results of a generic for's step, the iterator's call over
   (nil from 'first' on): 'nresults' of them from the call base 'cb'. */
const setforresults = function(L, cb, first, nresults) {
    for (let j = first; j < nresults; j++)
        L.stack[cb + j].setnilvalue();
};

/* warmlua: one step of the generic for at 'ra' when its iterator is next or
   ipairs' and the step cannot differ from the call's; false if the call is
   to be made. */
const luaV_forstep = function(L, ra, nresults) {
    let f = L.stack[ra];
    let t = L.stack[ra + 1];
    let control = L.stack[ra + 2];
    let cb = ra + 3;
    if (f.type !== LUA_TLCF || !t.ttistable() || L.top !== L.ci.top)
        return false;
    if (f.value === luaV_iterators.ipairsaux) {
        if (t.value.metatable !== null || !control.ttisinteger() || control.value >= LUA_MAXINTEGER)
            return false;
        let n = control.value + 1;
        let v = ltable.luaH_getint(t.value, n);
        if (v.ttisnil())
            return setforresults(L, cb, 0, nresults), true;
        L.stack[cb].setivalue(n);
        if (nresults > 1)
            L.stack[cb + 1].setfrom(v);
        return setforresults(L, cb, 2, nresults), true;
    }
    if (f.value === luaV_iterators.next) {
        let entry = ltable.luaH_nextentry(L, t.value, control);
        if (entry === undefined)
            return false;
        if (entry === null)
            return setforresults(L, cb, 0, nresults), true;
        L.stack[cb].setfrom(entry.key);
        if (nresults > 1)
            L.stack[cb + 1].setfrom(entry.value);
        return setforresults(L, cb, 2, nresults), true;
    }
    return false;
};

const RA = function(L, base, i) {`,
  },
  {
    file: 'lvm.js',
    before: `                let cb = ra + 3; /* call base */
                lobject.setobjs2s(L, cb+2, ra+2);
                lobject.setobjs2s(L, cb+1, ra+1);
                lobject.setobjs2s(L, cb, ra);
                ldo.adjust_top(L, cb+3);  /* func. + 2 args (state and index) */
                ldo.luaD_call(L, cb, i.C);
                ldo.adjust_top(L, ci.top);`,
    after: `                let cb = ra + 3; /* call base */
                if (L.hookmask !== 0 || !luaV_forstep(L, ra, i.C)) {
                    lobject.setobjs2s(L, cb+2, ra+2);
                    lobject.setobjs2s(L, cb+1, ra+1);
                    lobject.setobjs2s(L, cb, ra);
                    ldo.adjust_top(L, cb+3);  /* func. + 2 args (state and index) */
                    ldo.luaD_call(L, cb, i.C);
                    ldo.adjust_top(L, ci.top);
                }`,
  },
  {
    file: 'ltable.js',
    before: `module.exports.luaH_next    = luaH_next;`,
    after: `module.exports.luaH_next    = luaH_next;
module.exports.luaH_nextentry = luaH_nextentry;`,
  },
  {
    file: 'ltable.js',
    before: `const luaH_next = function(L, table, keyI) {`,
    after: `/* warmlua: the entry after key 'keyO' in 'table' for a generic for's step
   (lvm.js), null past the last; undefined when the key is not a live one
   (luaH_next then looks among the dead, or raises the error). */
const luaH_nextentry = function(L, table, keyO) {
    if (keyO.type === LUA_TNIL)
        return table.f || null;
    if (keyO.type === LUA_TNUMFLT && isNaN(keyO.value))
        return undefined;
    let entry = table.strong.get(table_hash(L, keyO));
    return entry ? entry.n || null : undefined;
};

const luaH_next = function(L, table, keyI) {`,
  },
  {
    file: 'lbaselib.js',
    before: `const luaB_ipairs = function(L) {`,
    after: `/* warmlua: a generic for takes these two's steps itself (lvm.js). */
require('./lvm.js').luaV_iterators.next = luaB_next;
require('./lvm.js').luaV_iterators.ipairsaux = ipairsaux;

const luaB_ipairs = function(L) {`,
  },
];

const sources = path.dirname(createRequire(import.meta.url).resolve('fengari'));

function fixPops(): void {
  let replaced = 0;
  let fixedBefore = 0;
  for (const name of fs.readdirSync(sources).filter((file) => file.endsWith('.js'))) {
    const file = path.join(sources, name);
    const text = fs.readFileSync(file, 'utf8');
    fixedBefore += text.match(FIXED_POP)?.length ?? 0;
    const fixed = text.replace(POP, (_pop, stack: string, slot: string) => {
      replaced += 1;
      return `${stack}.stack[${slot}] = undefined;`;
    });
    if (fixed !== text) fs.writeFileSync(file, fixed);
  }
  if (replaced === 0 && fixedBefore === 0) fail('no `delete L.stack[...]` in fengari');
}

function rewrite({ file, before, after }: Rewrite): void {
  const where = path.join(sources, file);
  const text = fs.readFileSync(where, 'utf8');
  if (text.includes(after)) return;
  if (!text.includes(before)) fail(`${file} lacks the code to rewrite:\n${before}`);
  fs.writeFileSync(where, text.replace(before, after));
}

function fail(what: string): never {
  console.error(`fix-fengari: ${what}\nHas fengari's source changed shape?`);
  process.exit(1);
}

fixPops();
for (const change of REWRITES) rewrite(change);
