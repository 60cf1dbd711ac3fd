/* Forking the warm server into a runner, and the runner's process set-up.
 * ../shared/notes/forking-node.md explains each step: V8 marks its heap
 * MADV_DONTFORK, only the forking thread survives, and the runner must
 * leave with _exit. */
#include "addon.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static void mark_forkable(const struct mapping *m, void *context)
{
    (void)context;
    if (strcmp(m->name, "[vsyscall]") != 0 && strcmp(m->name, "[vvar]") != 0 && strcmp(m->name, "[vdso]") != 0)
        madvise((void *)m->start, m->end - m->start, MADV_DOFORK); /* failures are harmless */
}

/* V8 allocates its pages MADV_DONTFORK, and keeps allocating while
 * JavaScript runs: undo it on every mapping right before every fork, or the
 * child has no heap. If the maps cannot be read, the fork still happens: a
 * child without heap dies loudly. */
void mark_all_mappings_forkable(void)
{
    for_each_mapping(mark_forkable, NULL);
}

static void runner_fail(const char *what)
{
    char text[200];
    int n = snprintf(text, sizeof text, "warmlua runner: %s: %s\n", what, strerror(errno));
    if (n > 0 && write(2, text, (size_t)n) < 0)
        _exit(127);
    _exit(127);
}

int reset_all_signals(void)
{
    struct sigaction dfl;
    sigset_t all;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL); /* EINVAL for glibc's reserved signals: fine */
    sigfillset(&all);
    return sigprocmask(SIG_UNBLOCK, &all, NULL);
}

/* The server's pid, as the runner saw it at fork. */
static pid_t server_pid;

/* Die with the server: a runner must not outlive it. Checked after arming,
 * in case the server died just before. */
static int die_with_server(void)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        return -1;
    if (getppid() != server_pid)
        _exit(127);
    return 0;
}

/* The child's first steps, before any JavaScript runs in it. */
static void become_runner(pid_t server)
{
    if (reset_all_signals() < 0)
        runner_fail("sigprocmask");
    if (setsid() < 0)
        runner_fail("setsid");
    server_pid = server;
    if (die_with_server() < 0)
        runner_fail("prctl(PR_SET_PDEATHSIG)");
}

/* Forks with `do_fork`; the child becomes a runner that dies with `server`.
 * Returns what do_fork returns. */
static pid_t fork_runner(pid_t (*do_fork)(void), pid_t server)
{
    pid_t pid = do_fork();
    if (pid == 0)
        become_runner(server);
    return pid;
}

static napi_value js_fork_warm(napi_env env, napi_callback_info info)
{
    napi_value result;
    pid_t pid;
    (void)info;
    mark_all_mappings_forkable();
    pid = fork_runner(fork, getpid());
    if (pid < 0)
        return throw_errno(env, "fork");
    napi_create_int32(env, pid, &result);
    return result;
}

/* For the forker, a child of the server that does nothing but fork spares:
 * a spare whose parent is the server itself (CLONE_PARENT), so that the
 * server reaps it, sees how it died, and is the parent its PDEATHSIG
 * watches. glibc's fork() cannot ask for that, hence the raw clone; it skips
 * fork()'s atfork handlers, which the single-threaded forker, blocked in its
 * own loop and holding no lock, does not need. */
static pid_t clone_sibling(void)
{
    return (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, NULL);
}

pid_t fork_sibling_runner(void)
{
    return fork_runner(clone_sibling, getppid());
}

static napi_value js_reap_children(napi_env env, napi_callback_info info)
{
    napi_value list;
    uint32_t count = 0;
    int status;
    pid_t pid;
    (void)info;
    napi_create_array(env, &list);
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        napi_value entry, v;
        int signaled = WIFSIGNALED(status);
        if (!signaled && !WIFEXITED(status))
            continue; /* stopped or continued: not an end */
        napi_create_array_with_length(env, 3, &entry);
        napi_create_int32(env, pid, &v);
        napi_set_element(env, entry, 0, v);
        napi_create_int32(env, signaled, &v);
        napi_set_element(env, entry, 1, v);
        napi_create_int32(env, signaled ? WTERMSIG(status) : WEXITSTATUS(status), &v);
        napi_set_element(env, entry, 2, v);
        napi_set_element(env, list, count++, entry);
    }
    if (pid < 0 && errno != ECHILD)
        return throw_errno(env, "waitpid");
    return list;
}

static int read_int_array(napi_env env, napi_value array, int *out, uint32_t max, uint32_t *count)
{
    if (napi_get_array_length(env, array, count) != napi_ok || *count > max) {
        napi_throw_range_error(env, NULL, "expected an array of integers, not too long");
        return 0;
    }
    for (uint32_t i = 0; i < *count; i++) {
        napi_value v;
        napi_get_element(env, array, i, &v);
        if (!arg_int(env, v, &out[i]))
            return 0;
    }
    return 1;
}

static int is_kept(int fd, const int *kept, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (kept[i] == fd)
            return 1;
    return 0;
}

/* V8 posts tasks to the loop even in a runner (GC does), and libuv wakes the
 * loop by writing to an eventfd; on EBADF it aborts. So each eventfd becomes
 * a private stand-in: the write succeeds, nobody reads it, and the server's
 * own loop is never woken by a runner. */
static int is_eventfd(int fd)
{
    char path[64], target[64];
    ssize_t n;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    n = readlink(path, target, sizeof target - 1);
    if (n < 0)
        return 0;
    target[n] = '\0';
    return strcmp(target, "anon_inode:[eventfd]") == 0;
}

static int replace_with_private_eventfd(int fd)
{
    int fresh = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fresh < 0)
        return -1;
    if (dup3(fresh, fd, O_CLOEXEC) < 0) {
        close(fresh);
        return -1;
    }
    return close(fresh);
}

/* Closes every descriptor but the `n` in `kept` (the epoll fd, the listening
 * socket, the connection...), so a stray use of the server's resources fails
 * loudly instead of corrupting the server. */
static int close_all_but(const int *kept, uint32_t n)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *entry;
    int *open_fds = NULL, count = 0, capacity = 0, dir_fd, rc = 0;
    if (dir == NULL)
        return -1;
    dir_fd = dirfd(dir);
    while ((entry = readdir(dir)) != NULL) {
        int fd;
        if (entry->d_name[0] == '.')
            continue;
        fd = atoi(entry->d_name);
        if (fd == dir_fd || is_kept(fd, kept, n))
            continue;
        if (count == capacity) {
            int *grown = realloc(open_fds, (size_t)(capacity = capacity * 2 + 64) * sizeof *grown);
            if (grown == NULL) {
                free(open_fds);
                closedir(dir);
                return -1;
            }
            open_fds = grown;
        }
        open_fds[count++] = fd;
    }
    closedir(dir);
    for (int i = 0; i < count && rc == 0; i++) {
        if (is_eventfd(open_fds[i]))
            rc = replace_with_private_eventfd(open_fds[i]);
        else
            close(open_fds[i]); /* EBADF for one closed meanwhile is fine */
    }
    free(open_fds);
    return rc;
}

/* A client may pass a descriptor numbered above this process's soft
 * RLIMIT_NOFILE (its own limit was higher): raise the soft limit to make
 * room, as far as the hard limit allows. -1 with errno EMFILE if it cannot. */
static int make_room_for_fds(rlim_t needed)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) < 0)
        return -1;
    if (limit.rlim_cur >= needed)
        return 0;
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
        errno = EMFILE;
        return -1;
    }
    limit.rlim_cur = needed;
    return setrlimit(RLIMIT_NOFILE, &limit);
}

/* installFds(fds, targets, keep[, closeRest]): fds[i] becomes descriptor
 * targets[i], the fds in `keep` move above every target, and (unless
 * closeRest is false) all else is closed. Returns the kept fds' new numbers. */
static napi_value js_install_fds(napi_env env, napi_callback_info info)
{
    size_t argc = 4;
    napi_value argv[4], result;
    int fds[253 + 2], targets[253], moved[253 + 2], base = 3;
    bool close_rest = true;
    uint32_t n, nt, nkeep;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (!read_int_array(env, argv[0], fds, 253, &n) || !read_int_array(env, argv[1], targets, 253, &nt) ||
        !read_int_array(env, argv[2], fds + n, 2, &nkeep))
        return NULL;
    if (argc > 3 && napi_get_value_bool(env, argv[3], &close_rest) != napi_ok) {
        napi_throw_type_error(env, NULL, "closeRest must be a boolean");
        return NULL;
    }
    if (n != nt) {
        napi_throw_range_error(env, NULL, "fds and targets differ in length");
        return NULL;
    }
    /* Move every fd above all targets first, so no dup2 below can overwrite
     * a descriptor that is still to be installed or kept. */
    for (uint32_t i = 0; i < n; i++)
        if (targets[i] >= base)
            base = targets[i] + 1;
    if (make_room_for_fds((rlim_t)base + n + nkeep) < 0)
        return throw_errno(env, "raising RLIMIT_NOFILE to the client's descriptor numbers");
    for (uint32_t i = 0; i < n + nkeep; i++) {
        moved[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, base);
        if (moved[i] < 0)
            return throw_errno(env, "fcntl(F_DUPFD)");
    }
    /* The originals are duplicates now (EBADF: one listed twice). */
    for (uint32_t i = 0; i < n + nkeep; i++)
        close(fds[i]);
    if (close_rest && close_all_but(moved, n + nkeep) < 0)
        return throw_errno(env, "closing inherited descriptors");
    for (uint32_t i = 0; i < n; i++) {
        if (dup2(moved[i], targets[i]) < 0)
            return throw_errno(env, "dup2");
        if (close(moved[i]) < 0)
            return throw_errno(env, "close");
    }
    napi_create_array_with_length(env, nkeep, &result);
    for (uint32_t i = 0; i < nkeep; i++) {
        napi_value v;
        napi_create_int32(env, moved[n + i], &v);
        napi_set_element(env, result, i, v);
    }
    return result;
}

static napi_value js_chdir(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    char *dir;
    int rc;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if ((dir = arg_cstring(env, argv[0])) == NULL)
        return NULL;
    rc = chdir(dir);
    free(dir);
    if (rc < 0)
        return throw_errno(env, "chdir");
    return NULL;
}

static napi_value js_replace_env(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    uint32_t n;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (napi_get_array_length(env, argv[0], &n) != napi_ok) {
        napi_throw_type_error(env, NULL, "expected an array of NAME=value Buffers");
        return NULL;
    }
    if (clearenv() != 0)
        return throw_errno(env, "clearenv");
    for (uint32_t i = 0; i < n; i++) {
        napi_value v;
        char *entry;
        napi_get_element(env, argv[0], i, &v);
        if ((entry = arg_cstring(env, v)) == NULL)
            return NULL;
        if (putenv(entry) != 0) /* the environment owns `entry` from now on */
            return throw_errno(env, "putenv");
    }
    return NULL;
}

static napi_value js_reset_signals(napi_env env, napi_callback_info info)
{
    (void)info;
    if (reset_all_signals() < 0)
        return throw_errno(env, "sigprocmask");
    return NULL;
}

static napi_value js_exit(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    int status = 1;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    arg_int(env, argv[0], &status);
    _exit(status);
}

/* lua.c's SIGINT handling: the first SIGINT raises a flag, which fengari's
 * VM looks at before each instruction and, finding it raised, sets lua.c's
 * hook (luacall.ts); the handler restores the default action, so that a
 * second SIGINT ends a script stuck outside Lua code. The flag is raised
 * only between catchInterrupt and releaseInterrupt.
 * The server runs chunks through lua.c's main too (its warm-up, again on
 * each re-warm), where node already handles SIGINT with a graceful stop.
 * There it is left alone: lua.c's handler took the signal for the warm-up
 * script's, and the default action put back after the chunk killed the
 * server at the next SIGINT, without a drain. A runner starts with every
 * action at its default (reset_all_signals), so scripts get lua.c's. */
static volatile sig_atomic_t interrupted;
static int catching; /* whether catchInterrupt installed on_interrupt */

/* What raised the flag: bits, as server/native.ts names them. */
enum { INTERRUPTED_BY_SIGINT = 1, INTERRUPTED_BY_DEADLINE = 2 };

static void on_interrupt(int sig)
{
    signal(sig, SIG_DFL);
    interrupted |= INTERRUPTED_BY_SIGINT;
}

/* interruptFlag(): an Int32Array viewing the flag, the same one each time
 * (V8 accepts one external buffer per address). */
static napi_value js_interrupt_flag(napi_env env, napi_callback_info info)
{
    static napi_ref flag_view;
    napi_value buffer, view;
    (void)info;
    _Static_assert(sizeof interrupted == sizeof(int32_t), "flag is viewed as an Int32Array");
    if (flag_view != NULL && napi_get_reference_value(env, flag_view, &view) == napi_ok)
        return view;
    if (napi_create_external_arraybuffer(env, (void *)&interrupted, sizeof interrupted, NULL, NULL,
                                         &buffer) != napi_ok ||
        napi_create_typedarray(env, napi_int32_array, 1, buffer, 0, &view) != napi_ok ||
        napi_create_reference(env, view, 1, &flag_view) != napi_ok) {
        napi_throw_error(env, NULL, "cannot share the interrupt flag");
        return NULL;
    }
    return view;
}

static napi_value set_interrupt_action(napi_env env, void (*handler)(int))
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGINT, &action, NULL) < 0)
        return throw_errno(env, "sigaction(SIGINT)");
    return NULL;
}

/* lua.c's signal(SIGINT, laction) before a chunk, with the flag lowered,
 * unless the process has a handler of its own (the server's node). */
static napi_value js_catch_interrupt(napi_env env, napi_callback_info info)
{
    struct sigaction current;
    (void)info;
    interrupted &= ~INTERRUPTED_BY_SIGINT;
    if (sigaction(SIGINT, NULL, &current) < 0)
        return throw_errno(env, "sigaction(SIGINT)");
    catching = current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN;
    return catching ? set_interrupt_action(env, on_interrupt) : NULL;
}

/* The default action again after the chunk, as lua.c leaves it; a SIGINT
 * that came too late to be seen is forgotten, so that no later Lua code
 * takes it for its own. */
static napi_value js_release_interrupt(napi_env env, napi_callback_info info)
{
    napi_value result = catching ? set_interrupt_action(env, SIG_DFL) : NULL;
    (void)info;
    catching = 0;
    interrupted &= ~INTERRUPTED_BY_SIGINT;
    return result;
}

/* The deadline of the server's own Lua code (server/deadline.ts): once it
 * passes, SIGALRM raises the flag, and again every 10 ms until it is lifted,
 * since the code may catch the first error. The handler stays installed: a
 * SIGALRM already on its way when the deadline is lifted must not kill the
 * server. Runners reset it, and fork does not pass the timer on. */
static void on_alarm(int sig)
{
    (void)sig;
    interrupted |= INTERRUPTED_BY_DEADLINE;
}

/* setDeadline(ms): arms the deadline `ms` milliseconds from now; 0 lifts it. */
static napi_value js_set_deadline(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    int ms = 0;
    struct sigaction action;
    struct itimerval timer;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (!arg_int(env, argv[0], &ms))
        return NULL;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_alarm;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (ms > 0 && sigaction(SIGALRM, &action, NULL) < 0)
        return throw_errno(env, "sigaction(SIGALRM)");
    memset(&timer, 0, sizeof timer);
    if (ms > 0) {
        timer.it_value.tv_sec = ms / 1000;
        timer.it_value.tv_usec = (ms % 1000) * 1000;
        timer.it_interval.tv_usec = 10000;
    }
    if (setitimer(ITIMER_REAL, &timer, NULL) < 0)
        return throw_errno(env, "setitimer");
    return NULL;
}

/* becomeUser(uid, gid, groups): the runner takes on the client's identity
 * (--as-peer) for good: groups, then gid, then uid, each checked, before any
 * of the client's code runs. A failure must stop the run, never let it go on
 * as the server's user. */
static napi_value js_become_user(napi_env env, napi_callback_info info)
{
    size_t argc = 3;
    napi_value argv[3];
    int uid, gid, groups[MAX_GROUPS];
    gid_t gids[MAX_GROUPS];
    uint32_t n;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (!arg_int(env, argv[0], &uid) || !arg_int(env, argv[1], &gid) ||
        !read_int_array(env, argv[2], groups, MAX_GROUPS, &n))
        return NULL;
    for (uint32_t i = 0; i < n; i++)
        gids[i] = (gid_t)groups[i];
    if (setgroups(n, gids) < 0)
        return throw_errno(env, "setgroups");
    if (setgid((gid_t)gid) < 0)
        return throw_errno(env, "setgid");
    if (setuid((uid_t)uid) < 0)
        return throw_errno(env, "setuid");
    if (getuid() != (uid_t)uid || geteuid() != (uid_t)uid || getgid() != (gid_t)gid) {
        errno = EPERM;
        return throw_errno(env, "becoming the client's user");
    }
    /* A change of credentials clears the parent-death signal: arm it again. */
    if (die_with_server() < 0)
        return throw_errno(env, "prctl(PR_SET_PDEATHSIG)");
    return NULL;
}

void register_runner(napi_env env, napi_value exports)
{
    export_function(env, exports, "forkWarm", js_fork_warm);
    export_function(env, exports, "reapChildren", js_reap_children);
    export_function(env, exports, "installFds", js_install_fds);
    export_function(env, exports, "chdir", js_chdir);
    export_function(env, exports, "replaceEnv", js_replace_env);
    export_function(env, exports, "resetSignals", js_reset_signals);
    export_function(env, exports, "exit", js_exit);
    export_function(env, exports, "interruptFlag", js_interrupt_flag);
    export_function(env, exports, "catchInterrupt", js_catch_interrupt);
    export_function(env, exports, "releaseInterrupt", js_release_interrupt);
    export_function(env, exports, "setDeadline", js_set_deadline);
    export_function(env, exports, "becomeUser", js_become_user);
}
