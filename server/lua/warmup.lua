-- warmluad runs this chunk several times before serving, in a scratch Lua
-- state, so that V8 has compiled (and optimised) fengari's lexer, parser, VM
-- and standard library before any runner is forked: every runner inherits
-- that code instead of compiling it again. It writes only to /dev/null.
local sink = assert(io.open("/dev/null", "w"))

local Point = {}
Point.__index = Point
Point.__add = function(a, b) return Point.new(a.x + b.x, a.y + b.y) end
Point.__tostring = function(p) return string.format("(%d, %g)", p.x, p.y) end
function Point.new(x, y) return setmetatable({ x = x, y = y }, Point) end
function Point:norm() return math.sqrt(self.x * self.x + self.y * self.y) end

local function words(text)
  local list = {}
  for word in text:gmatch("%a+") do list[#list + 1] = word:lower() end
  table.sort(list)
  return list
end

local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end

local function sum(...)
  local total = 0
  for i = 1, select("#", ...) do total = total + (select(i, ...)) end
  return total
end

local counts, text = {}, "The quick brown fox jumps over the lazy dog; the dog sleeps."
for _, w in ipairs(words(text)) do counts[w] = (counts[w] or 0) + 1 end
local keys = {}
for k, v in pairs(counts) do keys[#keys + 1] = k .. "=" .. tostring(v) end
table.sort(keys, function(a, b) return a > b end)

local p = Point.new(3, 4) + Point.new(1, 2.5)
local producer = coroutine.wrap(function()
  for i = 1, 20 do coroutine.yield(i * i) end
end)
local squares = {}
for _ = 1, 20 do squares[#squares + 1] = producer() end

local ok, err = pcall(function() error({ code = 42 }) end)
local ok2, err2 = pcall(error, "plain message")
local n = 0
repeat n = n + 1 until n >= 10
while n > 0 do n = n // 2 end

sink:write(table.concat(keys, ","), tostring(p), p:norm(), fib(15), sum(1, 2, 3.5),
  table.concat(squares, " "), tostring(ok), type(err), tostring(ok2), err2,
  string.rep("ab", 3, "-"), ("%5.2f|%-5s|%x|%q"):format(math.pi, "x", 255, "q\n"),
  text:gsub("dog", "cat"), text:find("fox", 1, true), text:sub(5, 9):upper(),
  string.byte("A"), string.char(72, 105), tonumber("0x10"), tonumber("1e3"),
  math.floor(3.7), math.max(1, 9, 4), 7 % 3, 2 ^ 10, 1 << 4, os.time() > 0 and "t" or "f",
  #table.pack(table.unpack({ 1, 2, 3 })), utf8.char(233), "\n")
sink:close()
