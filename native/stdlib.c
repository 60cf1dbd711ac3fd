/* Native calls the runner's Lua standard library needs (server/stdlib/):
 * what Node cannot do synchronously (pipes, fork+exec, poll, lseek) and
 * what must match C exactly (strerror, strftime, mktime, setlocale,
 * getenv on the C environment). Typed in server/stdlib/native.ts. */
#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A NUL-terminated copy of a Buffer argument (C stops at its first NUL,
 * exactly as lua5.3 passes Lua strings to libc); free() it. */
static napi_value new_buffer(napi_env env, const char *data, size_t len)
{
    napi_value result;
    napi_create_buffer_copy(env, len, data, NULL, &result);
    return result;
}

/* A C string as a Buffer, or null for NULL. */
static napi_value bytes_or_null(napi_env env, const char *s)
{
    napi_value result;
    if (s == NULL) {
        napi_get_null(env, &result);
        return result;
    }
    return new_buffer(env, s, strlen(s));
}

static napi_value new_int(napi_env env, double value)
{
    napi_value result;
    napi_create_double(env, value, &result);
    return result;
}

static napi_value int_array(napi_env env, const double *values, size_t n)
{
    napi_value array;
    napi_create_array_with_length(env, n, &array);
    for (size_t i = 0; i < n; i++)
        napi_set_element(env, array, (uint32_t)i, new_int(env, values[i]));
    return array;
}

static int arg_double(napi_env env, napi_value v, double *out)
{
    if (napi_get_value_double(env, v, out) != napi_ok) {
        napi_throw_type_error(env, NULL, "expected a number");
        return 0;
    }
    return 1;
}

/* Fills argv[0..n) (missing ones are undefined). */
static void get_args(napi_env env, napi_callback_info info, napi_value *argv, size_t n)
{
    size_t argc = n;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
}

/* strerror(errno): the exact wording lua5.3 shows. */
static napi_value js_strerror(napi_env env, napi_callback_info info)
{
    napi_value argv[1], result;
    int err;
    get_args(env, info, argv, 1);
    if (!arg_int(env, argv[0], &err))
        return NULL;
    napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &result);
    return result;
}

/* waitFd(fd, forWrite): blocks until a non-blocking fd is ready, so that
 * reads and writes on a client's O_NONBLOCK descriptor behave as blocking. */
static napi_value js_wait_fd(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    int fd, for_write;
    struct pollfd p;
    get_args(env, info, argv, 2);
    if (!arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &for_write))
        return NULL;
    p.fd = fd;
    p.events = for_write ? POLLOUT : POLLIN;
    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            return throw_errno(env, "poll");
    return NULL;
}

/* getenv(name): the value's bytes from the C environment, or null. */
static napi_value js_getenv(napi_env env, napi_callback_info info)
{
    napi_value argv[1];
    char *name = NULL, *value;
    get_args(env, info, argv, 1);
    if ((name = arg_cstring(env, argv[0])) == NULL)
        return NULL;
    value = getenv(name);
    free(name);
    return bytes_or_null(env, value);
}

/* lseek(fd, offset, whence): the new offset; Node has no lseek. */
static napi_value js_lseek(napi_env env, napi_callback_info info)
{
    napi_value argv[3];
    int fd, whence;
    double offset;
    off_t result;
    get_args(env, info, argv, 3);
    if (!arg_int(env, argv[0], &fd) || !arg_double(env, argv[1], &offset) || !arg_int(env, argv[2], &whence))
        return NULL;
    if ((result = lseek(fd, (off_t)offset, whence)) < 0)
        return throw_errno(env, "lseek");
    return new_int(env, (double)result);
}

/* Commands are started with _Fork, not fork: fork runs libuv's atfork
 * handler, which in a runner closes whatever fds now bear the numbers of
 * libuv's (closed) signal pipe, such as the new command's pipe.
 * The child side of popen/system: only async-signal-safe calls, then exec.
 * Node marks fds 0-2 close-on-exec and ignores SIGPIPE (exec keeps ignored
 * signals): the command gets them as under lua5.3. */
static void exec_shell(const char *command)
{
    for (int fd = 0; fd <= 2; fd++)
        fcntl(fd, F_SETFD, 0); /* EBADF for a closed one: nothing to inherit */
    signal(SIGPIPE, SIG_DFL);
    execl("/bin/sh", "sh", "-c", command, (char *)NULL);
    _exit(127);
}

/* popen(command, forWrite): [pid, fd], fd being the parent's end of a pipe
 * connected to the command's stdin (forWrite) or stdout. */
static napi_value js_popen(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    int for_write, ends[2];
    char *command;
    pid_t pid;
    get_args(env, info, argv, 2);
    if (!arg_int(env, argv[1], &for_write) || (command = arg_cstring(env, argv[0])) == NULL)
        return NULL;
    if (pipe2(ends, O_CLOEXEC) < 0) {
        free(command);
        return throw_errno(env, "pipe");
    }
    pid = _Fork();
    if (pid == 0) {
        int child_end = for_write ? ends[0] : ends[1], target = for_write ? 0 : 1;
        if (child_end != target && dup2(child_end, target) < 0)
            _exit(127);
        exec_shell(command);
    }
    free(command);
    close(for_write ? ends[0] : ends[1]);
    if (pid < 0) {
        int err = errno;
        close(for_write ? ends[1] : ends[0]);
        errno = err;
        return throw_errno(env, "fork");
    }
    {
        double result[2] = {pid, for_write ? ends[1] : ends[0]};
        return int_array(env, result, 2);
    }
}

/* [0, exit status] or [1, signal number], from a waitpid status. */
static napi_value decode_status(napi_env env, int status)
{
    double result[2] = {WIFSIGNALED(status), WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status)};
    return int_array(env, result, 2);
}

static int wait_for(pid_t pid, int *status)
{
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

/* waitChild(pid): how a popen'ed command ended. */
static napi_value js_wait_child(napi_env env, napi_callback_info info)
{
    napi_value argv[1];
    int pid, status;
    get_args(env, info, argv, 1);
    if (!arg_int(env, argv[0], &pid))
        return NULL;
    if (wait_for(pid, &status) < 0)
        return throw_errno(env, "waitpid");
    return decode_status(env, status);
}

/* system(command): C's system(), so that os.execute behaves as in lua5.3:
 * SIGINT and SIGQUIT are ignored and SIGCHLD blocked while the command runs. */
static napi_value js_system(napi_env env, napi_callback_info info)
{
    napi_value argv[1];
    struct sigaction ignore, old_int, old_quit;
    sigset_t child_mask, old_mask;
    char *command;
    pid_t pid;
    int status = 0, failed_errno = 0;
    get_args(env, info, argv, 1);
    if ((command = arg_cstring(env, argv[0])) == NULL)
        return NULL;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigemptyset(&child_mask);
    sigaddset(&child_mask, SIGCHLD);
    if (sigaction(SIGINT, &ignore, &old_int) < 0 || sigaction(SIGQUIT, &ignore, &old_quit) < 0 ||
        sigprocmask(SIG_BLOCK, &child_mask, &old_mask) < 0) {
        free(command);
        return throw_errno(env, "sigaction");
    }
    pid = _Fork();
    if (pid == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        exec_shell(command);
    }
    if (pid < 0 || wait_for(pid, &status) < 0)
        failed_errno = errno;
    free(command);
    /* restoring what was just saved cannot fail */
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    if (failed_errno != 0) {
        errno = failed_errno;
        return throw_errno(env, pid < 0 ? "fork" : "waitpid");
    }
    return decode_status(env, status);
}

/* The fields of a struct tm as [sec, min, hour, mday, mon, year, wday, yday, isdst]. */
static napi_value tm_array(napi_env env, const struct tm *tm)
{
    double fields[9] = {tm->tm_sec,  tm->tm_min,  tm->tm_hour, tm->tm_mday, tm->tm_mon,
                        tm->tm_year, tm->tm_wday, tm->tm_yday, tm->tm_isdst};
    return int_array(env, fields, 9);
}

/* t in local time (TZ as the C environment has it now) or UTC; NULL if not representable. */
static struct tm *broken_down(time_t t, int utc, struct tm *out)
{
    tzset();
    return utc ? gmtime_r(&t, out) : localtime_r(&t, out);
}

static int arg_time(napi_env env, napi_value tv, napi_value utcv, time_t *t, int *utc)
{
    double seconds;
    if (!arg_double(env, tv, &seconds) || !arg_int(env, utcv, utc))
        return 0;
    *t = (time_t)seconds;
    return 1;
}

/* brokenDownTime(t, utc): the struct tm fields, or null. */
static napi_value js_broken_down_time(napi_env env, napi_callback_info info)
{
    napi_value argv[2], result;
    struct tm tm;
    time_t t;
    int utc;
    get_args(env, info, argv, 2);
    if (!arg_time(env, argv[0], argv[1], &t, &utc))
        return NULL;
    if (broken_down(t, utc, &tm) == NULL) {
        napi_get_null(env, &result);
        return result;
    }
    return tm_array(env, &tm);
}

/* strftime(conversion, t, utc): one conversion ("%Ec", ...) of time t, or
 * null if t cannot be broken down. lua5.3's buffer for one conversion is 250. */
static napi_value js_strftime(napi_env env, napi_callback_info info)
{
    napi_value argv[3], result;
    char out[250], *conversion;
    struct tm tm;
    time_t t;
    int utc;
    size_t len;
    get_args(env, info, argv, 3);
    if (!arg_time(env, argv[1], argv[2], &t, &utc) || (conversion = arg_cstring(env, argv[0])) == NULL)
        return NULL;
    if (broken_down(t, utc, &tm) == NULL) {
        free(conversion);
        napi_get_null(env, &result);
        return result;
    }
    len = strftime(out, sizeof out, conversion, &tm);
    free(conversion);
    return new_buffer(env, out, len);
}

/* mktime([sec, min, hour, mday, mon, year, isdst]): [t, ...normalised tm
 * fields], or null when mktime returns -1. */
static napi_value js_mktime(napi_env env, napi_callback_info info)
{
    napi_value argv[1], v, result;
    int fields[7];
    struct tm tm;
    time_t t;
    double out[10];
    get_args(env, info, argv, 1);
    for (uint32_t i = 0; i < 7; i++)
        if (napi_get_element(env, argv[0], i, &v) != napi_ok || !arg_int(env, v, &fields[i]))
            return NULL;
    memset(&tm, 0, sizeof tm);
    tm.tm_sec = fields[0];
    tm.tm_min = fields[1];
    tm.tm_hour = fields[2];
    tm.tm_mday = fields[3];
    tm.tm_mon = fields[4];
    tm.tm_year = fields[5];
    tm.tm_isdst = fields[6];
    tzset();
    if ((t = mktime(&tm)) == (time_t)-1) {
        napi_get_null(env, &result);
        return result;
    }
    out[0] = (double)t;
    out[1] = tm.tm_sec, out[2] = tm.tm_min, out[3] = tm.tm_hour, out[4] = tm.tm_mday, out[5] = tm.tm_mon;
    out[6] = tm.tm_year, out[7] = tm.tm_wday, out[8] = tm.tm_yday, out[9] = tm.tm_isdst;
    return int_array(env, out, 10);
}

/* setlocale(categoryIndex, locale | null) with os.setlocale's category order. */
static napi_value js_setlocale(napi_env env, napi_callback_info info)
{
    static const int categories[] = {LC_ALL, LC_COLLATE, LC_CTYPE, LC_MONETARY, LC_NUMERIC, LC_TIME};
    napi_value argv[2];
    napi_valuetype type;
    char *locale = NULL;
    const char *answer;
    int index;
    get_args(env, info, argv, 2);
    if (!arg_int(env, argv[0], &index))
        return NULL;
    if (index < 0 || index >= (int)(sizeof categories / sizeof categories[0])) {
        napi_throw_range_error(env, NULL, "no such locale category");
        return NULL;
    }
    napi_typeof(env, argv[1], &type);
    if (type != napi_null && (locale = arg_cstring(env, argv[1])) == NULL)
        return NULL;
    answer = setlocale(categories[index], locale);
    free(locale);
    return bytes_or_null(env, answer);
}

/* mkstemp(template): [fd, name]. No close-on-exec, as with C's tmpfile(). */
static napi_value js_mkstemp(napi_env env, napi_callback_info info)
{
    napi_value argv[1], result, v;
    char *name;
    int fd;
    get_args(env, info, argv, 1);
    if ((name = arg_cstring(env, argv[0])) == NULL)
        return NULL;
    if ((fd = mkstemp(name)) < 0) {
        free(name);
        return throw_errno(env, "mkstemp");
    }
    napi_create_array_with_length(env, 2, &result);
    napi_set_element(env, result, 0, new_int(env, fd));
    v = new_buffer(env, name, strlen(name));
    napi_set_element(env, result, 1, v);
    free(name);
    return result;
}

void register_stdlib(napi_env env, napi_value exports)
{
    export_function(env, exports, "strerror", js_strerror);
    export_function(env, exports, "waitFd", js_wait_fd);
    export_function(env, exports, "getenv", js_getenv);
    export_function(env, exports, "lseek", js_lseek);
    export_function(env, exports, "popen", js_popen);
    export_function(env, exports, "waitChild", js_wait_child);
    export_function(env, exports, "system", js_system);
    export_function(env, exports, "brokenDownTime", js_broken_down_time);
    export_function(env, exports, "strftime", js_strftime);
    export_function(env, exports, "mktime", js_mktime);
    export_function(env, exports, "setlocale", js_setlocale);
    export_function(env, exports, "mkstemp", js_mkstemp);
}
