-- warmluad runs this chunk many times before serving, in a scratch Lua
-- state, so that V8 has compiled and optimised fengari's lexer, parser, VM
-- and standard library before any runner is forked: every runner inherits
-- that code instead of compiling it again.
--
-- Breadth matters more than depth. Optimised code that meets a kind of value
-- or a path it has not seen here is thrown away (deoptimised) in the runner,
-- which then compiles it again, on every run: a module-heavy script took
-- 14 ms with a narrow warm-up and 7.5 ms with one that covered its paths.
-- So each section below touches one area with every kind of operand, and
-- together they hold every Lua 5.3 instruction but LOADKX and EXTRAARG
-- (test/warmup.test.ts checks).
-- It writes only to /dev/null, and reads only its own source.
local sink = assert(io.open("/dev/null", "w"))
local out = {}
local function emit(...)
  for i = 1, select("#", ...) do out[#out + 1] = tostring((select(i, ...))) end
end

-- Arithmetic, comparison and concatenation on integers, floats and strings.
local function arithmetic()
  local i, f, s = 7, 2.5, "10"
  emit(i + 1, i - f, i * f, i / 2, i // 2, f // 1, i % 3, f % 1, -i, -f, 2 ^ 10)
  emit(i & 3, i | 8, i ~ 5, ~i, i << 2, i >> 1, s + 1, s * f, "0x10" + 0)
  emit(i < f, f <= i, s < "9", i == 7.0, f ~= i, math.type(i), math.type(f), math.type(s))
  emit(i .. "", f .. "|" .. s, 1e300 * 1e10, -(0 / 0) ~= -(0 / 0), math.maxinteger + 0.0)
  emit(math.floor(f), math.ceil(f), math.abs(-i), math.max(1, f, i), math.min(3, f), math.sqrt(16))
  emit(math.fmod(7, 3), math.modf(3.7), math.tointeger(3.0), math.ult(1, 2), math.huge, math.pi)
  emit(math.sin(1), math.cos(1), math.exp(1), math.log(8, 2), math.log(10), math.random(1, 6) > 0)
end

-- Equality and order between every pair of kinds of value.
local function comparisons()
  local f, g = function() end, function() end
  local t, u = {}, {}
  local co = coroutine.create(f)
  local long = string.rep("long string ", 5)
  local values = { nil, true, false, 1, 1.0, 2.5, "s", long, long .. "", f, g, print, type, t, u, co, io.stdout }
  local equal = 0
  for i = 1, 17 do
    for j = 1, 17 do
      if values[i] == values[j] then equal = equal + 1 end
      if values[i] ~= values[j] then equal = equal - 1 end
    end
  end
  emit(equal, 1 < 2.5, 2.5 <= 2, "a" < "b", "abc" >= "abd", rawequal(f, f), rawequal(t, u))
  emit(("abc"):sub(5), table.concat({}), ("x"):rep(0), string.format(""), ("abc"):match("()"), tostring(""))
end

-- Conditions: "if x", "not x", "a and b", "a or b" on a local of every kind
-- of value (the TEST, TESTSET and NOT instructions), as module code tests
-- options, results and defaults all the time.
local function conditions()
  local values = { nil, false, true, 0, 1.5, "", "s", {}, print, function() end, coroutine.create(print) }
  local truthy = 0
  for i = 1, 11 do
    local v = values[i]
    if v then truthy = truthy + 1 end
    if not v then truthy = truthy - 1 end
    local w = v or "default"
    local x = v and "set"
    local y = v and v ~= false or nil
    local z = not v
    if v and w then truthy = truthy + 1 elseif v or x then truthy = truthy + 2 else truthy = truthy + 3 end
    while v and truthy < 0 do truthy = truthy + 1 end
    emit(w, x, y, z, type(v) == "table" and #v or -1)
  end
  local function option(opts, name, default)
    opts = opts or {}
    local value = opts[name]
    if value == nil then value = default end
    return value, not value
  end
  emit(option(nil, "a", 1), option({ a = false }, "a", true), option({ b = 2 }, "b"), truthy)
end

-- Tables: array and hash parts, length, every library function.
local function tables()
  local list, map = {}, {}
  for n = 1, 40 do list[#list + 1] = n * 3 % 17 end
  for n = 1, 20 do map["k" .. n] = n; map[n + 0.5] = n; map[n % 2 == 0] = n end
  table.insert(list, 1, 99)
  table.insert(list, 5)
  emit(table.remove(list), table.remove(list, 1), #list, rawlen(list), rawget(map, "k3"))
  table.sort(list)
  table.sort(list, function(a, b) return a > b end)
  local names = { "pear", "apple", "fig", "kiwi" }
  table.sort(names)
  -- Past 100 elements, the sort looks at how to choose its pivots.
  local many, words = {}, {}
  for n = 1, 101 do many[n] = n * 7919 % 1000; words[n] = tostring(many[n]) end
  table.sort(many)
  table.sort(words)
  emit(table.concat(list, ","), table.concat(names, " ", 2, 3), select("#", table.unpack(list)))
  local packed = table.pack(1, nil, 3)
  emit(packed.n, next({}), next(map) ~= nil, table.move({ 1, 2, 3 }, 1, 3, 2)[3])
  local count = 0
  for _, v in ipairs(list) do count = count + v end
  for k, v in pairs(map) do if type(k) == "string" then count = count + v end end
  -- The steps the VM leaves to a call (scripts/fix-fengari.ts #9): ipairs
  -- through __index, next after a key removed while traversing, and an
  -- iterator of Lua's own.
  for _, v in ipairs(setmetatable({ 1 }, { __index = function(_, n) if n < 4 then return n end end })) do
    count = count + v
  end
  local cleared = { a = 1, b = 2, c = 3, 4 }
  for k in pairs(cleared) do cleared[k] = nil end
  for n in function(_, n) if n < 3 then return n + 1 end end, nil, 0 do count = count + n end
  rawset(map, "raw", true)
  emit(count, rawequal(map, map), #"length", map.raw)
end

-- Strings: every pattern feature, every format specifier, every method.
local function strings()
  local text = "The quick brown Fox, 42 jumps; over 3.5 lazy dogs! key=value [x] (y)"
  for word in text:gmatch("%a+") do out[#out + 1] = word:lower() end
  for k, v in text:gmatch("(%w+)=(%w+)") do emit(k, v) end
  for line in ("one\ntwo\n\nthree"):gmatch("[^\n]+") do out[#out + 1] = line end
  emit(text:find("quick"), text:find("o", 1, true), text:find("%d+"), text:find("^The"), text:find("s!$"))
  emit(text:match("(%d+)%.(%d+)"), text:match("%[(.-)%]"), text:match("%b()"), text:match("()jumps()"))
  emit(text:match("%f[%a]%a+"), text:match("[%u][%l]*"), text:match("[^%s]+$"), text:match("%s*(%S+)"))
  emit(text:match("[A-Z]%w-,"), text:match("%p"), text:match("%x+"), text:match("%c") == nil)
  emit(text:match("[%w_%-%.]+"), text:match("[%[%]%(%)]"), text:match("%;%s"), ("a%b"):gsub("%%", "%%%%"))
  emit(("a\0b\1"):gsub("[%z\1-\31\"\\\127]", "?"), ("a\0"):find("%z"), ("x"):find(""), ("x"):match("()", 2))
  emit(text:gsub("o", "0"), text:gsub("(%w+)", "<%1>", 3), text:gsub("%s+", " "))
  emit(text:gsub("%a+", { quick = "slow", lazy = false }), text:gsub("%d", function(d) return d * 2 end))
  emit(text:gsub("", "-", 2), ("x"):rep(5), ("ab"):rep(3, ","), text:sub(5, 9), text:sub(-4), text:len())
  emit(text:upper(), text:reverse(), text:byte(1, 3), string.char(72, 105, 0, 255), ("%d"):len())
  emit(string.format("%d %5d %-5d|%05.1f %g %e %x %X %o %c %s %10.3s %q %a %%", 42, 7, 3, math.pi,
    1e20, 12345.678, 255, 255, 8, 65, "str", "truncate", 'q "uoted"\n\0', 1.0))
  emit(string.format("%i %u %5.2s %q %q %.14g", -3, 3, "abc", 42, 2.5, 0.1),
    tostring(12), tostring(1.5), tostring(nil), tostring(true), tonumber("  12  "), tonumber("z", 36),
    tonumber("1e2"), tonumber("0x1p4"), tonumber("nope"), tonumber(7), tonumber("10", 2))
  emit(string.pack("i4 s1 z d", 7, "ab", "cd", 1.5):len(), string.unpack("i4", string.pack("i4", 9)))
  emit(utf8.char(72, 233, 8364), utf8.len("h\xC3\xA9"), utf8.codepoint("\xC3\xA9"), utf8.offset("abc", 2))
  for _, c in utf8.codes("h\xC3\xA9") do emit(c) end
end

-- Metatables: every metamethod, with tables and functions as handlers.
local Vec = {}
Vec.__index = Vec
local function vec(x, y) return setmetatable({ x = x, y = y }, Vec) end
Vec.__add = function(a, b) return vec(a.x + b.x, a.y + b.y) end
Vec.__sub = function(a, b) return vec(a.x - b.x, a.y - b.y) end
Vec.__mul = function(a, k) return vec(a.x * k, a.y * k) end
Vec.__unm = function(a) return vec(-a.x, -a.y) end
Vec.__eq = function(a, b) return a.x == b.x and a.y == b.y end
Vec.__lt = function(a, b) return a.x < b.x end
Vec.__le = function(a, b) return a.x <= b.x end
Vec.__len = function(a) return 2 end
Vec.__concat = function(a, b) return tostring(a) .. tostring(b) end
Vec.__tostring = function(a) return "(" .. a.x .. "," .. a.y .. ")" end
Vec.__call = function(a, k) return a.x * k end
function Vec:norm() return math.sqrt(self.x ^ 2 + self.y ^ 2) end

local function metatables()
  local a, b = vec(3, 4), vec(1, 2.5)
  emit(a + b, a - b, a * 2, -a, a == b, a < b, a <= b, #a, a .. b, a(3), a:norm(), getmetatable(a) == Vec)
  local defaults = setmetatable({}, { __index = function(_, k) return k .. "?" end })
  local log = {}
  local guarded = setmetatable({}, { __newindex = function(t, k, v) log[#log + 1] = k; rawset(t, k, v) end })
  guarded.one, guarded.two = 1, 2
  local Base = { kind = "base" }
  local Derived = setmetatable({ extra = true }, { __index = Base })
  local object = setmetatable({}, { __index = Derived })
  emit(defaults.missing, #log, object.kind, object.extra, rawget(object, "kind"))
  local weak = setmetatable({}, { __mode = "k", __metatable = "locked" })
  emit(getmetatable(weak), getmetatable("s").__index == string)
end

-- Functions: varargs, multiple results, closures, recursion, tail calls.
local function functions()
  local function sum(...)
    local total = 0
    for i = 1, select("#", ...) do total = total + (select(i, ...)) end
    return total
  end
  local function many() return 1, "two", 3.0, nil, false end
  local function three(...) local a, b, c = ... return a, b, c end
  -- Fixed parameters before "...", some of them missing (fengari's adjust_varargs).
  local function fixedAndRest(a, b, ...) return a, b, select("#", ...) end
  local function counter()
    local n = 0
    return function(step) n = n + (step or 1); return n end
  end
  local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
  local function loop(n, acc) if n == 0 then return acc end return loop(n - 1, acc + n) end
  local tick = counter()
  tick(); tick(5)
  local t = { many() }
  emit(sum(1, 2, 3.5), sum(), select("#", many()), select(-1, many()), #t, tick(), fib(12), loop(200, 0))
  emit((many()), table.unpack({ 1, 2, 3 }, 2), string.format("%s %s", many()), three(1), three(1, 2, 3, 4))
  emit(fixedAndRest(1), fixedAndRest(1, 2, 3))
  local n = 0
  repeat n = n + 1 until n >= 10
  while n > 0 do n = n // 2 end
  for i = 10, 1, -3 do n = n + i end
  for x = 0.5, 2.5, 0.5 do n = n + x end
  do
    local k = 0
    ::again::
    k = k + 1
    if k < 3 then goto again end
    n = n + k
  end
  emit(n)
end

-- Errors and protected calls, with every kind of error value.
local function errors()
  emit(pcall(error, "plain message"), pcall(error, { code = 42 }), pcall(error, "at level", 2))
  emit(pcall(function() local x = nil; return x.field end), pcall(function() return 1 + {} end))
  emit(pcall(function() return #nil end), pcall(string.rep), pcall(setmetatable, 1, {}))
  emit(xpcall(function() error("traced") end, debug.traceback), xpcall(function(...) return ... end, print, 1, 2))
  emit(select(2, pcall(error)), select(2, pcall(error, setmetatable({}, { __tostring = function() return "E" end }))))
  emit(assert(1 == 1, "fine"), pcall(assert, false, "failed"), pcall(assert, nil))
end

-- Coroutines: wrap, resume with values both ways, status, errors inside.
local function coroutines()
  local producer = coroutine.wrap(function(a)
    for i = 1, 10 do a = coroutine.yield(i * a) end
    return "done"
  end)
  for i = 1, 11 do emit(producer(i)) end
  local co = coroutine.create(function(x, y)
    local z = coroutine.yield(x + y)
    error("inside " .. z)
  end)
  emit(coroutine.resume(co, 1, 2), coroutine.status(co), coroutine.resume(co, "z"), coroutine.status(co))
  emit(coroutine.isyieldable(), coroutine.running(), coroutine.resume(coroutine.create(function() end)))
  -- A pcall yielded across, and errors caught inside a coroutine.
  local guarded = coroutine.wrap(function()
    for i = 1, 4 do
      emit(pcall(function()
        if i == 2 then error("two") end
        return coroutine.yield(i)
      end))
    end
    return "end"
  end)
  for i = 1, 4 do emit(guarded(i)) end
end

-- Files: this script's own source read back in each way, and numbers
-- written, as scripts read their input and write their results.
local function files()
  -- This file, also when a site's --warmup script runs it with dofile.
  local here = debug.getinfo(1, "S").source:sub(2)
  local lines, bytes, text = 0, 0, ("lorem ipsum "):rep(6)
  for line in io.lines(here) do lines = lines + 1; bytes = bytes + #line end
  -- Numbers to read back: 12 3.5e1 0x1F -7 .5 z
  local f = assert(io.open(here))
  emit(f:read("l"), f:read("L"), f:read(5), f:read("n"), f:seek("cur") > 0, io.type(f))
  local at = f:seek("cur")
  local source = f:read("a")
  f:seek("set", at + source:find("read back: ", 1, true) + 10)
  emit(f:read("n", "n", "n", "n", "n", "n"))
  f:seek("end")
  emit(f:read("a"), f:read("l"), f:read(1))
  f:close()
  -- Small writes past the end of the buffer, as a loop of f:write makes.
  for n = 1, 50 do sink:write(n, " ", n / 4, " ", text, "\n") end
  sink:write(lines, " ", bytes / 2, "\n")
  -- And unbuffered, as io.stderr is.
  local raw = assert(io.open("/dev/null", "w"))
  raw:setvbuf("no")
  raw:write(lines, " ", bytes / 2, "\n")
  raw:close()
end

-- Chunks: load from strings and functions, with environments and errors.
local function chunks()
  local f = load("local a, b = ... return a * b, _ENV ~= nil")
  local parts, i = { "return ", "1 ", "+ 2" }, 0
  local g = load(function() i = i + 1; return parts[i] end, "=pieces")
  local env = { x = 5 }
  local h = load("x = x * 2 return x", "env chunk", "t", env)
  emit(f(6, 7), g(), h(), env.x, load("syntax error here"), load("return ...", "=v")(1, 2))
  emit(load(string.dump(f))(2, 3), load(string.dump(g, true), "=binary", "b")())
  emit(type(require), package.loaded.string == string, type(os.getenv("HOME")))
  emit(os.time({ year = 2020, month = 1, day = 2, hour = 3 }), os.date("!%Y-%m-%d %H:%M:%S", 86400))
  emit(os.date("!*t", 0).year, type(os.clock()), os.difftime(10, 4), collectgarbage("count") > 0)
end

arithmetic()
comparisons()
conditions()
tables()
strings()
metatables()
functions()
errors()
coroutines()
files()
chunks()
sink:write(table.concat(out, "\t"), "\n")
sink:close()
