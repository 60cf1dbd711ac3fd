/* The forker's loop: for each byte the server sends on the control socket,
 * fork a child and answer with its pid (u32, little-endian, pid 0 if the
 * fork failed) and, with a pid, the server's end of the child's line. The
 * child is a spare (byte 0), or the forker's successor (byte 1), which
 * takes in the scripts the server has come to keep compiled and then forks
 * the spares in its place (server/pool.ts).
 *
 * Why in C: every fork copies the forker's page tables, and every runner's
 * exit tears its copy down again, one entry per 4 KiB page of the forker's
 * memory (86 MB here). So before its first fork the forker gathers its heap
 * into 2 MiB huge pages (hugepages.c), which fork and exit handle in one
 * entry each. Those only last while the forker writes none of their pages,
 * and JavaScript running between forks did: allocation, collection. This
 * loop runs none, which also spares it the walk of its maps that undoes
 * V8's MADV_DONTFORK before each fork: one walk before the first is enough.
 * A runner's own writes still copy 4 KiB pages. */
#include "addon.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define ASK_SUCCESSOR 1

/* Forks one child on a new line. Returns, in the child, its end of the
 * line. In the forker, returns -1, with the child's pid in *pid and the
 * forker's end of the line in *line (0 and -1 if there is no child). */
static int fork_child(pid_t *pid, int *line)
{
    int pair[2];
    *pid = 0;
    *line = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
        return -1; /* EMFILE, ENOMEM: the server asks again on its next refill */
    *pid = fork_sibling_runner();
    if (*pid == 0) {
        close(pair[0]);
        return pair[1];
    }
    close(pair[1]);
    if (*pid < 0) {
        *pid = 0;
        close(pair[0]);
        return -1;
    }
    *line = pair[0];
    return -1;
}

/* Sends the spare's pid and line; the forker's end is closed either way. */
static int answer(int control, pid_t pid, int line)
{
    unsigned char reply[4] = { pid & 0xff, (pid >> 8) & 0xff, (pid >> 16) & 0xff, (pid >> 24) & 0xff };
    ssize_t sent = send_with_fds(control, reply, sizeof reply, &line, line >= 0 ? 1 : 0, 0);
    if (line >= 0)
        close(line);
    return sent == (ssize_t)sizeof reply ? 0 : -1;
}

/* What serveForks returns in a child: { line, successor }. */
static napi_value child_result(napi_env env, int line, bool successor)
{
    napi_value result, value;
    napi_create_object(env, &result);
    napi_create_int32(env, line, &value);
    napi_set_named_property(env, result, "line", value);
    napi_get_boolean(env, successor, &value);
    napi_set_named_property(env, result, "successor", value);
    return result;
}

/* serveForks(control): the forker's life. Returns only in a new child: its
 * end of its line, and whether it is the successor. When the server closes
 * the control socket (or cannot be answered), the forker leaves with
 * _exit(0): returning would run the server's own code in this process. */
static napi_value js_serve_forks(napi_env env, napi_callback_info info)
{
    int control;
    if (!fd_argument(env, info, &control))
        return NULL;
    leave_malloc_no_free_chunks();
    /* Once: no JavaScript runs here to map new DONTFORK pages. Before the
     * collapse, as it merges mappings that differed only by that flag. */
    mark_all_mappings_forkable();
    gather_into_huge_pages();
    for (;;) {
        unsigned char asked[64];
        ssize_t n = recv(control, asked, sizeof asked, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(0);
        for (ssize_t i = 0; i < n; i++) {
            pid_t pid;
            int line, child_end = fork_child(&pid, &line);
            if (child_end >= 0)
                return child_result(env, child_end, asked[i] == ASK_SUCCESSOR);
            if (answer(control, pid, line) < 0)
                _exit(0);
        }
    }
}

void register_forker(napi_env env, napi_value exports)
{
    export_function(env, exports, "serveForks", js_serve_forks);
}
