{
  "targets": [
    {
      "target_name": "warmlua_native",
      "sources": ["native/addon.c", "native/sockets.c", "native/runner.c", "native/stdlib.c", "native/prefault.c", "native/forker.c", "native/maps.c", "native/hugepages.c", "native/fingerprint.c", "native/mallocbins.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["_GNU_SOURCE"],
      "ldflags": ["-Wl,-z,now"]
    }
  ]
}
