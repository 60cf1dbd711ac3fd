-- The run-path warm-up (server/warmup.ts): a short script run a couple of
-- thousand times so that V8 optimises what every run does once, whatever
-- its script: lua.c's main, loading a file, print. With one value and with
-- several, or the optimised print is thrown away by the first script that
-- prints two. And a write on stderr, unbuffered, as error messages are.
print("hello")
print("hello", 1, 2.5, true, nil)
io.stderr:write("hello\n")
