/* Shared declarations of the warmlua N-API addon.
 * One file per concern: sockets.c (listening, fd passing, polling),
 * runner.c (fork and the runner's process set-up), forker.c (the forker's
 * loop), maps.c (walking /proc/self/maps), stdlib.c (what the Lua
 * standard library needs: processes, time), prefault.c (learned prefaulting
 * in spares), hugepages.c and mallocbins.c (the forker's memory, made
 * cheap to fork), fingerprint.c (the freshness check's stat calls).
 * addon.c only registers them. */
#ifndef WARMLUA_ADDON_H
#define WARMLUA_ADDON_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Throws a JS Error with .code (e.g. "ENOENT"), .errno and .syscall set,
 * from the current errno. Returns NULL so callers can `return throw_errno(..)`. */
napi_value throw_errno(napi_env env, const char *syscall);

/* Argument helpers: each throws a TypeError and returns 0 on a bad value. */
int arg_int(napi_env env, napi_value v, int *out);
int arg_buffer(napi_env env, napi_value v, void **data, size_t *len);
/* A NUL-terminated malloc'd copy of a Buffer argument (free it), or NULL
 * with an exception pending. */
char *arg_cstring(napi_env env, napi_value v);

/* For calls whose only argument is a descriptor: reads it into *fd. */
int fd_argument(napi_env env, napi_callback_info info, int *fd);

/* Adds a function to `exports`. */
void export_function(napi_env env, napi_value exports, const char *name, napi_callback cb);

/* One line of /proc/self/maps. */
struct mapping {
    unsigned long start, end;
    char perms[5];       /* "rw-p" */
    unsigned long inode; /* 0: anonymous */
    const char *name;    /* path, "[heap]", or "" */
    const char *flags;   /* smaps' VmFlags (" rd wr mr mw me ac"); "" from maps */
};

/* Calls `visit` for each of this process's mappings (maps.c). Returns -1
 * if /proc/self/maps could not be read whole (a line too long for the
 * walk's buffer is skipped, and counts as such). */
int for_each_mapping(void (*visit)(const struct mapping *m, void *context), void *context);

/* The same from /proc/self/smaps, with each mapping's flags. */
int for_each_mapping_with_flags(void (*visit)(const struct mapping *m, void *context), void *context);

/* Before the forker's first fork (hugepages.c): its private memory, the V8
 * heap above all, into 2 MiB huge pages where it can be. */
void gather_into_huge_pages(void);

/* Before the forker's first fork (mallocbins.c): malloc's free chunks
 * taken, so that runners allocate from the top of the heap. */
void leave_malloc_no_free_chunks(void);

/* One sendmsg (MSG_NOSIGNAL) of `len` bytes with `nfds` fds as SCM_RIGHTS;
 * EINTR is retried. Returns what sendmsg returns (sockets.c). */
ssize_t send_with_fds(int fd, const void *data, size_t len, const int *fds, uint32_t nfds, int flags);

/* Undoes V8's MADV_DONTFORK on every mapping (runner.c): needed before a
 * fork whenever JavaScript has run since the last one. */
void mark_all_mappings_forkable(void);

/* fork for the forker (runner.c): the child is a runner, and the server's
 * child too, a sibling of the caller. Returns what fork returns. The caller
 * has made its mappings forkable. */
pid_t fork_sibling_runner(void);

/* The most supplementary groups --as-peer carries over (the kernel allows
 * 65536; a few hundred is already rare). */
#define MAX_GROUPS 1024

void register_sockets(napi_env env, napi_value exports);
void register_runner(napi_env env, napi_value exports);
void register_stdlib(napi_env env, napi_value exports);
void register_prefault(napi_env env, napi_value exports);
void register_forker(napi_env env, napi_value exports);
void register_fingerprint(napi_env env, napi_value exports);

/* Every signal to its default action and unblocked, as a fresh lua would
 * find them (Node ignores SIGPIPE and handles others). Returns -1 on error. */
int reset_all_signals(void);

#endif
