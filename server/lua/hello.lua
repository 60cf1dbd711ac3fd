-- The run-path warm-up (server/warmup.ts): the simplest script there is,
-- run a couple of thousand times so that V8 optimises what every run does
-- once, whatever its script: lua.c's main, loading a file, print.
print("hello")
