/* warmlua: the client of warmluad, installed as `lua` and used in #! lines.
 *
 * It sends its cwd, whole argv, environment and every open descriptor to
 * warmluad in one RUN frame (docs/protocol.md), forwards the signals it
 * receives to the runner, and ends exactly as the runner ended. When the
 * server cannot take the run, it execs a cold interpreter instead, so a
 * script never notices whether the server was there. It parses no Lua
 * option: the runner is lua.c, and argv[0] is lua.c's progname.
 *
 * Contract, as the caller (shell, supervisor) sees it:
 *  - runner exited with N: exit N;
 *  - runner killed by signal N: killed by N (SIG_DFL, unblocked, raised;
 *    no core file of its own: the runner's core, if any, is the real one);
 *  - the run could not start (connect failed; ERROR, a foreign protocol
 *    version or end of stream before STARTED; a request over a protocol
 *    limit; no /proc/self/fd; cwd unknown): exec $WARMLUA_FALLBACK with the
 *    same argv (execvp), or by default warmlua-cold next to this executable
 *    with argv[1..] and WARMLUA_PROGNAME=argv[0]. The socket and signalfd
 *    are close-on-exec and the signal mask is restored, so the fallback
 *    starts as if it had been exec'd instead of us. With
 *    WARMLUA_FALLBACK=none: "PROG: cannot reach warmluad at PATH: REASON",
 *    exit 1. A fallback that cannot be exec'd: exit 127 (not found) or 126.
 *    End of stream before STARTED counts as "did not start": a server dies
 *    or restarts with requests in its backlog far more often than in the
 *    microseconds between forking a runner and sending STARTED;
 *  - the connection ends after STARTED without EXITED (server killed) or
 *    brings an ERROR then: "PROG: lost connection to warmluad: REASON",
 *    exit EXIT_LOST (111, skarnet's "temporary failure": distinct from a
 *    script's own 1, and the runner may still be running).
 * Descriptors: after STARTED the shim closes its copies of every passed
 * descriptor but 2 (kept for its own messages), so a script that closes
 * stdout or stdin is seen to close it, as with lua.
 * Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are
 * forwarded once the runner has started (earlier ones wait, pending), except
 * those the shim inherited ignored or blocked: lua would never see those
 * (nohup, `cmd &`). SIGINT is forwarded even when ignored, because lua.c
 * installs its SIGINT handler whatever the inherited disposition.
 * Job control: SIGTSTP (^Z) stops the runner, then the shim, where it would
 * stop lua; SIGCONT (fg, bg) continues the runner. The runner gets SIGSTOP,
 * not SIGTSTP: in a session of its own, its process group is orphaned, and
 * the kernel discards SIGTSTP there. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* From server/protocol.ts; keep in step. */
#define PROTOCOL_VERSION 1
#define HEADER_BYTES 6
#define MAX_PAYLOAD (1024 * 1024)
#define MAX_ARGS 4096
#define MAX_ENV 4096
#define MAX_FDS 252 /* SCM_MAX_FD (253) less the connection the server hands on */
#define MAX_FD_NUMBER (1024 * 1024)
enum { F_RUN = 0x01, F_SIGNAL = 0x02, F_STARTED = 0x81, F_EXITED = 0x82, F_ERROR = 0x83 };

#define EXIT_LOST 111

extern char **environ;

static const char *progname = "warmlua";
static struct sockaddr_un addr = { .sun_family = AF_UNIX };
static char reason[512];      /* why the warm path failed, for messages */
static int fds[MAX_FDS], nfds;
/* Until the descriptors are listed no socket exists, so fd 2 is safe to
 * write to; after, only if it was open at start (else it may be ours). */
static int have_stderr = 1;
static sigset_t oldmask;
/* The whole request: in BSS, so only the pages it uses are ever touched. */
static unsigned char req[HEADER_BYTES + MAX_PAYLOAD];
static size_t reqlen;

/* WARMLUA_TRACE=1: phase times since main(), printed once at the end so
 * that they never interleave with the script's own stderr. */
enum { T_MAIN, T_CONNECTED, T_SENT, T_STARTED, T_END, T_COUNT };
static const char *const phase[T_COUNT] = { "main", "connected", "request sent", "runner started", "" };
static long long stamp[T_COUNT];
static int tracing;

static long long now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return 0; /* cannot fail for CLOCK_MONOTONIC; a 0 shows if it does */
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void mark(int i)
{
    if (tracing)
        stamp[i] = now_ns();
}

/* One line on stderr, in one write(2): unbuffered, no stdio state. */
static void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;
    if (!have_stderr)
        return; /* fd 2 was closed: it may now be our socket */
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    while (write(2, line, (size_t)n) < 0 && errno == EINTR)
        ;
}

static void because(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(reason, sizeof reason, fmt, ap) < 0)
        strcpy(reason, "unknown reason");
    va_end(ap);
}

static void trace_end(const char *how)
{
    char line[300];
    size_t len = 0;
    if (!tracing)
        return;
    stamp[T_END] = now_ns();
    for (int i = T_CONNECTED; i < T_COUNT && len < sizeof line; i++) {
        int n;
        if (stamp[i] == 0)
            continue;
        n = snprintf(line + len, sizeof line - len, "%s%s %.3f ms", len ? ", " : "",
                     i == T_END ? how : phase[i], (stamp[i] - stamp[T_MAIN]) / 1e6);
        if (n > 0)
            len += (size_t)n;
    }
    say("%s: trace: %s", progname, line);
}

/* Block the forwarded signals now, so that none is lost or kills us between
 * sending the request and reading STARTED; returns the set to forward. */
static sigset_t block_signals(void)
{
    static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGTSTP, SIGCONT };
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) {
        struct sigaction sa;
        if (forwarded[i] != SIGINT && sigaction(forwarded[i], NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
            continue;
        sigaddset(&set, forwarded[i]);
    }
    if (sigprocmask(SIG_BLOCK, &set, &oldmask) < 0) {
        sigemptyset(&set); /* cannot happen with valid arguments: forward nothing */
        return set;
    }
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&set, sig) == 1 && sigismember(&oldmask, sig) == 1)
            sigdelset(&set, sig); /* already blocked: lua would not see it either */
    return set;
}

/* Every open descriptor, from /proc/self/fd (the directory's own fd left
 * out). Returns -1 with the reason set when they cannot all be passed. */
static int list_fds(void)
{
    /* the kernel's record for getdents64, called raw: glibc and musl (1.2.4
     * on) do not declare struct dirent64 alike */
    struct linux_dirent64 {
        uint64_t d_ino;
        int64_t d_off;
        unsigned short d_reclen;
        unsigned char d_type;
        char d_name[];
    };
    _Alignas(8) char buf[4096];
    ssize_t n;
    int seen_stderr = 0, dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        because("cannot list open descriptors: /proc/self/fd: %s", strerror(errno));
        return -1;
    }
    while ((n = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
            char *end;
            long fd = strtol(d->d_name, &end, 10);
            off += d->d_reclen;
            if (d->d_name[0] < '0' || d->d_name[0] > '9' || *end != '\0' || fd == dir)
                continue;
            if (nfds == MAX_FDS || fd >= MAX_FD_NUMBER) {
                if (nfds == MAX_FDS)
                    because("more than %d open descriptors", MAX_FDS);
                else
                    because("descriptor %ld is beyond the protocol's limit", fd);
                close(dir);
                return -1;
            }
            if (fd == 2)
                seen_stderr = 1;
            fds[nfds++] = (int)fd;
        }
    }
    if (n < 0)
        because("cannot list open descriptors: %s", strerror(errno));
    close(dir); /* read-only directory: nothing to lose if close complains */
    if (n < 0)
        return -1;
    have_stderr = seen_stderr;
    return 0;
}

static void put_u32_at(size_t at, uint32_t v)
{
    req[at] = v & 0xff;
    req[at + 1] = v >> 8 & 0xff;
    req[at + 2] = v >> 16 & 0xff;
    req[at + 3] = v >> 24 & 0xff;
}

static int put_bytes(const char *s, size_t n)
{
    if (n > MAX_PAYLOAD || 4 + n > sizeof req - reqlen) {
        because("request exceeds %d bytes", MAX_PAYLOAD);
        return -1;
    }
    put_u32_at(reqlen, (uint32_t)n);
    memcpy(req + reqlen + 4, s, n);
    reqlen += 4 + n;
    return 0;
}

/* The RUN frame, in req[0..reqlen). */
static int build_request(int argc, char **argv)
{
    uint32_t envc = 0;
    char *cwd = (char *)req + HEADER_BYTES + 16;
    if (argc > MAX_ARGS) {
        because("%d arguments exceed the limit of %d", argc, MAX_ARGS);
        return -1;
    }
    /* getcwd writes the string in place, behind its length prefix. */
    if (getcwd(cwd, sizeof req - (HEADER_BYTES + 16)) == NULL) {
        because("cannot pass the working directory: %s", strerror(errno));
        return -1;
    }
    put_u32_at(HEADER_BYTES + 12, (uint32_t)strlen(cwd));
    reqlen = HEADER_BYTES + 16 + strlen(cwd);
    for (int i = 0; i < argc; i++)
        if (put_bytes(argv[i], strlen(argv[i])) < 0)
            return -1;
    for (char **e = environ; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || eq == *e)
            continue; /* no NAME=: the server refuses it, and getenv never finds it */
        if (++envc > MAX_ENV) {
            because("more than %d environment variables", MAX_ENV);
            return -1;
        }
        if (put_bytes(*e, strlen(*e)) < 0)
            return -1;
    }
    if (4 * (size_t)nfds > sizeof req - reqlen) {
        because("request exceeds %d bytes", MAX_PAYLOAD);
        return -1;
    }
    for (int i = 0; i < nfds; i++, reqlen += 4)
        put_u32_at(reqlen, (uint32_t)fds[i]);
    put_u32_at(0, (uint32_t)(reqlen - HEADER_BYTES));
    req[4] = PROTOCOL_VERSION;
    req[5] = F_RUN;
    put_u32_at(HEADER_BYTES, (uint32_t)argc);
    put_u32_at(HEADER_BYTES + 4, envc);
    put_u32_at(HEADER_BYTES + 8, (uint32_t)nfds);
    return 0;
}

static int socket_path(void)
{
    const char *env = getenv("WARMLUA_SOCKET");
    int n;
    if (env != NULL && *env != '\0')
        n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s", env);
    else if ((env = getenv("XDG_RUNTIME_DIR")) != NULL && *env != '\0')
        n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/warmlua.sock", env);
    else
        n = snprintf(addr.sun_path, sizeof addr.sun_path, "/tmp/warmlua-%u/warmlua.sock", (unsigned)getuid());
    if (n < 0 || (size_t)n >= sizeof addr.sun_path) {
        because("socket path is longer than %zu bytes", sizeof addr.sun_path - 1);
        return -1;
    }
    return 0;
}

/* Non-blocking connect: a full backlog (EAGAIN) means a busy server, and
 * the cold path beats waiting for it. The socket then blocks again. */
static int connect_server(void)
{
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        because("socket: %s", strerror(errno));
        return -1;
    }
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0 || fcntl(sock, F_SETFL, O_RDWR) < 0) {
        because("%s", strerror(errno));
        close(sock); /* never connected: no half-request can be behind it */
        return -1;
    }
    return sock;
}

/* One sendmsg for the whole request in the usual case; the descriptors ride
 * on the first byte. Returns 0, or -1 with errno. */
static int send_request(int sock)
{
    union {
        char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { req, reqlen };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    size_t done = 0;
    if (nfds > 0) {
        struct cmsghdr *c;
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    while (done < reqlen) {
        ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue; /* nothing was sent, descriptors included */
            return -1;
        }
        done += (size_t)n;
        iov.iov_base = req + done;
        iov.iov_len = reqlen - done;
        msg.msg_control = NULL; /* they went with the first byte */
        msg.msg_controllen = 0;
    }
    return 0;
}

/* The run did not start: run the script another way, as if we had never
 * been here. Pending forwarded signals are delivered as the mask is
 * restored, with their inherited dispositions, before the exec. */
static void fallback(char **argv)
{
    const char *with = getenv("WARMLUA_FALLBACK");
    char cold[4096];
    ssize_t n;
    trace_end("fallback");
    if (with != NULL && strcmp(with, "none") == 0) {
        say("%s: cannot reach warmluad at %s: %s", progname, addr.sun_path, reason);
        _exit(1);
    }
    if (sigprocmask(SIG_SETMASK, &oldmask, NULL) < 0)
        say("%s: cannot restore the signal mask: %s", progname, strerror(errno));
    if (with != NULL && *with != '\0') {
        execvp(with, argv); /* argv[0] kept: it is the progname */
    } else {
        /* /proc/self/exe, not argv[0]: a symlink named lua in PATH works. */
        n = readlink("/proc/self/exe", cold, sizeof cold - sizeof "warmlua-cold");
        if (n < 0) {
            say("%s: cannot find warmlua-cold: /proc/self/exe: %s", progname, strerror(errno));
            _exit(127);
        }
        while (n > 0 && cold[n - 1] != '/')
            n--;
        memcpy(cold + n, "warmlua-cold", sizeof "warmlua-cold");
        with = cold;
        if (setenv("WARMLUA_PROGNAME", progname, 1) < 0) {
            say("%s: setenv: %s", progname, strerror(errno));
            _exit(EXIT_LOST);
        }
        argv[0] = cold;
        execv(cold, argv);
    }
    n = errno;
    say("%s: warmluad unavailable (%s), and cannot run %s: %s", progname, reason, with, strerror((int)n));
    _exit(n == ENOENT ? 127 : 126); /* as env(1) and shells */
}

static void lost(void)
{
    trace_end("lost");
    say("%s: lost connection to warmluad: %s", progname, reason);
    _exit(EXIT_LOST);
}

/* End as the runner ended. */
static void end_as(unsigned how, uint32_t value)
{
    trace_end(how == 0 ? "exit received" : "signal received");
    if (how == 0)
        _exit((int)(value & 0xff));
    if (how == 1 && value >= 1 && value < NSIG) {
        int sig = (int)value;
        struct rlimit nocore = { 0, 0 };
        sigset_t set;
        if (setrlimit(RLIMIT_CORE, &nocore) < 0)
            say("%s: setrlimit: %s", progname, strerror(errno)); /* a core file of ours, at worst */
        /* SIGKILL and SIGSTOP refuse SIG_DFL: they have no other action */
        if (signal(sig, SIG_DFL) == SIG_ERR && sig != SIGKILL && sig != SIGSTOP)
            say("%s: signal %d: %s", progname, sig, strerror(errno));
        sigemptyset(&set);
        sigaddset(&set, sig);
        if (sigprocmask(SIG_UNBLOCK, &set, NULL) < 0 || raise(sig) != 0)
            say("%s: cannot raise signal %d: %s", progname, sig, strerror(errno));
        /* still here: a signal whose default is to ignore; as a shell would say */
        _exit(128 + sig);
    }
    because("malformed EXITED frame");
    lost();
}

/* Asks the server to send `sig` to the runner's process group. Returns -1
 * if the connection failed: the read side will see the end of the stream. */
static int send_signal(int sock, uint32_t sig)
{
    unsigned char frame[HEADER_BYTES + 4] = { 4, 0, 0, 0, PROTOCOL_VERSION, F_SIGNAL };
    unsigned char *p = frame;
    size_t left = sizeof frame;
    frame[6] = sig & 0xff;
    frame[7] = sig >> 8 & 0xff;
    while (left > 0) {
        ssize_t w = send(sock, p, left, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        left -= (size_t)w;
    }
    return 0;
}

/* SIGTSTP (^Z): the runner is asked to stop, then the shim takes SIGTSTP's
 * default action, which the kernel applies as it would to lua: a stop, or
 * nothing in an orphaned process group, in which case the runner is let go
 * on. After a stop, the shell's "fg" or "bg" sends SIGCONT, which is
 * forwarded like any other. */
static void stop_as_lua_would(int sock)
{
    sigset_t tstp, pending;
    if (send_signal(sock, SIGSTOP) < 0)
        return;
    sigemptyset(&tstp);
    sigaddset(&tstp, SIGTSTP);
    if (sigprocmask(SIG_UNBLOCK, &tstp, NULL) < 0 || raise(SIGTSTP) != 0 ||
        sigprocmask(SIG_BLOCK, &tstp, NULL) < 0)
        say("%s: cannot stop: %s", progname, strerror(errno));
    /* Continued, SIGCONT is pending (it is blocked); not stopped, it is not. */
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGCONT) != 1)
        send_signal(sock, SIGCONT);
}

/* Read the forwarded signals pending on sigfd and send them on. */
static void forward_signals(int sigfd, int sock)
{
    struct signalfd_siginfo si[8];
    ssize_t n;
    while ((n = read(sigfd, si, sizeof si)) > 0) {
        for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++) {
            if (si[i].ssi_signo == SIGTSTP)
                stop_as_lua_would(sock);
            else if (send_signal(sock, si[i].ssi_signo) < 0)
                return;
        }
    }
}

/* Once the runner has its descriptors, ours only keep pipes open. */
static void drop_passed_fds(void)
{
    for (int i = 0; i < nfds; i++)
        if (fds[i] != 2)
            close(fds[i]); /* our copy only: nothing to lose if close complains */
}

static uint32_t get_u32(const unsigned char *p)
{
    return p[0] | p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Is a whole frame at the start of in[0..have)? 1 yes (*len is its
 * payload length), 0 not yet, -1 never (reason set). */
static int whole_frame(const unsigned char *in, size_t have, size_t room, uint32_t *len)
{
    if (have < HEADER_BYTES)
        return 0;
    *len = get_u32(in);
    if (in[4] != PROTOCOL_VERSION) {
        because("protocol version mismatch: client speaks %d, server speaks %u", PROTOCOL_VERSION, in[4]);
        return -1;
    }
    if (*len > room - HEADER_BYTES) {
        if (in[5] != F_ERROR) {
            because("reply frame of %u bytes is too large", *len);
            return -1;
        }
        if (have < room)
            return 0;
        *len = (uint32_t)(room - HEADER_BYTES); /* a long message: its start will do */
    }
    return have >= HEADER_BYTES + *len;
}

/* Waits for the socket to be readable, forwarding signals meanwhile.
 * Before STARTED (sigfd < 0) signals stay pending: there is no runner. */
static int wait_readable(int sock, int sigfd)
{
    struct pollfd pf[2] = { { sock, POLLIN, 0 }, { sigfd, POLLIN, 0 } };
    if (sigfd < 0)
        return 0; /* a blocking read waits as well as poll would */
    for (;;) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            because("poll: %s", strerror(errno));
            return -1;
        }
        if (pf[1].revents & POLLIN)
            forward_signals(sigfd, sock);
        if (pf[0].revents != 0)
            return 0;
    }
}

/* Frames from the server until the run ends; never returns. Before
 * STARTED any failure means fallback, after it means lost. */
static void await_run(int sock, const sigset_t *forward, char **argv)
{
    static const char *const code[] = { "error", "version", "busy", "limit", "malformed", "refused", "internal" };
    static unsigned char in[4096];
    size_t have = 0;
    int started = 0, sigfd = -1, whole;
    uint32_t len;
    for (;;) {
        while ((whole = whole_frame(in, have, sizeof in, &len)) == 1) {
            const unsigned char *p = in + HEADER_BYTES;
            if (in[5] == F_STARTED && len == 4 && !started) {
                mark(T_STARTED);
                started = 1;
                sigfd = signalfd(-1, forward, SFD_NONBLOCK | SFD_CLOEXEC);
                if (sigfd < 0)
                    say("%s: signalfd: %s: signals will not be forwarded", progname, strerror(errno));
                drop_passed_fds();
            } else if (in[5] == F_EXITED && len == 5 && started) {
                end_as(p[0], get_u32(p + 1));
            } else if (in[5] == F_ERROR && len >= 1) {
                because("%s: %.*s", code[p[0] < 7 ? p[0] : 0], (int)len - 1, (const char *)p + 1);
                goto failed;
            } else {
                because("unexpected frame 0x%02x of %u bytes", in[5], len);
                goto failed;
            }
            have -= HEADER_BYTES + len;
            memmove(in, in + HEADER_BYTES + len, have);
        }
        if (whole < 0 || wait_readable(sock, sigfd) < 0)
            goto failed;
        ssize_t n = read(sock, in + have, sizeof in - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                because("%s", strerror(errno));
            else
                because("connection closed before %s", started ? "EXITED" : "STARTED");
            goto failed;
        }
        have += (size_t)n;
    }
failed:
    if (started)
        lost();
    fallback(argv);
}

int main(int argc, char **argv)
{
    static char *noargs[] = { "warmlua", NULL };
    sigset_t forward;
    int sock;
    const char *trace = getenv("WARMLUA_TRACE");
    tracing = trace != NULL && strcmp(trace, "1") == 0;
    mark(T_MAIN);
    if (argc < 1) { /* execve with an empty argv: lua.c's progname is then NULL too */
        argc = 1;
        argv = noargs;
    }
    progname = argv[0];
    forward = block_signals();
    if (socket_path() < 0 || list_fds() < 0 || build_request(argc, argv) < 0)
        fallback(argv);
    sock = connect_server();
    if (sock < 0)
        fallback(argv);
    mark(T_CONNECTED);
    /* EPIPE or ECONNRESET: the server may have said why before closing;
     * await_run reads that, or the end of stream, and falls back. */
    if (send_request(sock) < 0 && errno != EPIPE && errno != ECONNRESET) {
        because("sendmsg: %s", strerror(errno));
        fallback(argv);
    }
    mark(T_SENT);
    await_run(sock, &forward, argv);
    return EXIT_LOST; /* not reached */
}
