/* Unix stream sockets with descriptor passing, and readiness from libuv.
 * All calls are non-blocking (but connect) so that a slow or silent client
 * can never hold the server: JavaScript reads when uv_poll says readable. */
#include "addon.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define MAX_PASSED_FDS 253 /* SCM_MAX_FD; the protocol's own limit too */

static int unix_address(napi_env env, napi_value v, struct sockaddr_un *addr)
{
    size_t len;
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    if (napi_get_value_string_utf8(env, v, addr->sun_path, sizeof addr->sun_path, &len) != napi_ok) {
        napi_throw_type_error(env, NULL, "socket path must be a string");
        return 0;
    }
    if (len == 0 || len >= sizeof addr->sun_path - 1) {
        napi_throw_range_error(env, NULL, "socket path is empty or longer than 107 bytes");
        return 0;
    }
    return 1;
}

static napi_value int_value(napi_env env, int n)
{
    napi_value v;
    napi_create_int32(env, n, &v);
    return v;
}

static napi_value js_listen(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2];
    struct sockaddr_un addr;
    int backlog, fd;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (!unix_address(env, argv[0], &addr) || !arg_int(env, argv[1], &backlog))
        return NULL;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return throw_errno(env, "socket");
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, backlog) < 0) {
        napi_value error = throw_errno(env, "bind/listen");
        close(fd);
        return error;
    }
    return int_value(env, fd);
}

static napi_value js_accept(napi_env env, napi_callback_info info)
{
    int fd, conn;
    if (!fd_argument(env, info, &fd))
        return NULL;
    conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR)
            return int_value(env, -1);
        return throw_errno(env, "accept4");
    }
    return int_value(env, conn);
}

static napi_value js_connect(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    struct sockaddr_un addr;
    int fd;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (!unix_address(env, argv[0], &addr))
        return NULL;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return throw_errno(env, "socket");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        napi_value error = throw_errno(env, "connect");
        close(fd);
        return error;
    }
    return int_value(env, fd);
}

/* recv(fd, maxBytes) -> { data, fds } | null */
static napi_value js_recv(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2], result, data, fds;
    int fd, max;
    char control[CMSG_SPACE(MAX_PASSED_FDS * sizeof(int))];
    struct msghdr msg;
    struct iovec iov;
    struct cmsghdr *cmsg;
    void *bytes;
    ssize_t n;
    uint32_t nfds = 0;

    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (!arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &max))
        return NULL;
    if (max <= 0) {
        napi_throw_range_error(env, NULL, "maxBytes must be positive");
        return NULL;
    }
    bytes = malloc((size_t)max);
    if (bytes == NULL)
        return throw_errno(env, "malloc");
    iov.iov_base = bytes;
    iov.iov_len = (size_t)max;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    do
        n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        free(bytes);
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            napi_get_null(env, &result);
            return result;
        }
        return throw_errno(env, "recvmsg");
    }
    napi_create_array(env, &fds);
    for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
            size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int passed[MAX_PASSED_FDS];
            memcpy(passed, CMSG_DATA(cmsg), count * sizeof(int));
            for (size_t i = 0; i < count; i++)
                napi_set_element(env, fds, nfds++, int_value(env, passed[i]));
        }
    }
    napi_create_buffer_copy(env, (size_t)n, bytes, NULL, &data);
    free(bytes);
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "data", data);
    napi_set_named_property(env, result, "fds", fds);
    /* MSG_CTRUNC: descriptors were dropped by the kernel; say so rather
     * than run a script with some of its fds silently missing. */
    if (msg.msg_flags & MSG_CTRUNC) {
        napi_value truncated;
        napi_get_boolean(env, true, &truncated);
        napi_set_named_property(env, result, "truncated", truncated);
    }
    return result;
}

/* One sendmsg (MSG_NOSIGNAL and `flags`) of `len` bytes with `nfds` fds as
 * SCM_RIGHTS; EINTR is retried. Returns what sendmsg returns. */
ssize_t send_with_fds(int fd, const void *data, size_t len, const int *fds, uint32_t nfds, int flags)
{
    char control[CMSG_SPACE(MAX_PASSED_FDS * sizeof(int))];
    struct msghdr msg;
    struct iovec iov;
    ssize_t n;

    if (nfds > MAX_PASSED_FDS) {
        errno = EINVAL;
        return -1;
    }
    iov.iov_base = (void *)data;
    iov.iov_len = len;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds > 0) {
        struct cmsghdr *cmsg;
        memset(control, 0, sizeof control);
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
    }
    do
        n = sendmsg(fd, &msg, MSG_NOSIGNAL | flags);
    while (n < 0 && errno == EINTR);
    return n;
}

/* send(fd, data, fds, wait = true) -> bytes sent, or -1 when the socket is
 * full (without `wait`, also when a blocking one is) */
static napi_value js_send(napi_env env, napi_callback_info info)
{
    size_t argc = 4;
    napi_value argv[4];
    bool wait = true;
    int fd, passed[MAX_PASSED_FDS];
    void *data;
    size_t len;
    uint32_t nfds;
    ssize_t n;

    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (!arg_int(env, argv[0], &fd) || !arg_buffer(env, argv[1], &data, &len))
        return NULL;
    if (napi_get_array_length(env, argv[2], &nfds) != napi_ok || nfds > MAX_PASSED_FDS) {
        napi_throw_range_error(env, NULL, "fds must be an array of at most 253 descriptors");
        return NULL;
    }
    for (uint32_t i = 0; i < nfds; i++) {
        napi_value v;
        napi_get_element(env, argv[2], i, &v);
        if (!arg_int(env, v, &passed[i]))
            return NULL;
    }
    if (argc > 3 && napi_get_value_bool(env, argv[3], &wait) != napi_ok) {
        napi_throw_type_error(env, NULL, "wait must be a boolean");
        return NULL;
    }
    n = send_with_fds(fd, data, len, passed, nfds, wait ? 0 : MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return int_value(env, -1);
        return throw_errno(env, "sendmsg");
    }
    return int_value(env, (int)n);
}

/* A uv_poll watching one fd, calling a JS function when it is readable. */
typedef struct {
    uv_poll_t handle;
    napi_env env;
    napi_ref callback;
    napi_async_context context;
} poll_watch;

static void on_poll(uv_poll_t *handle, int status, int events)
{
    poll_watch *watch = handle->data;
    napi_handle_scope scope;
    napi_value callback, recv;
    (void)status;
    (void)events;
    napi_open_handle_scope(watch->env, &scope);
    napi_get_reference_value(watch->env, watch->callback, &callback);
    napi_get_global(watch->env, &recv); /* make_callback wants an object */
    /* make_callback runs microtasks afterwards and reports a throw as an
     * uncaught exception, as a Node-originated callback would. */
    if (napi_make_callback(watch->env, watch->context, recv, callback, 0, NULL, NULL) != napi_ok) {
        bool thrown = false;
        napi_is_exception_pending(watch->env, &thrown);
        if (!thrown) /* the callback never ran: polling on would spin */
            napi_fatal_error("warmlua.poll", NAPI_AUTO_LENGTH, "cannot call the poll callback",
                             NAPI_AUTO_LENGTH);
    }
    napi_close_handle_scope(watch->env, scope);
}

static void free_watch(uv_handle_t *handle)
{
    free(handle->data);
}

static napi_value js_poll_readable(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2], result, name;
    int fd, rc;
    uv_loop_t *loop;
    poll_watch *watch;

    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (!arg_int(env, argv[0], &fd))
        return NULL;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
        napi_throw_error(env, NULL, "no libuv loop");
        return NULL;
    }
    watch = calloc(1, sizeof *watch);
    if (watch == NULL)
        return throw_errno(env, "calloc");
    rc = uv_poll_init(loop, &watch->handle, fd);
    if (rc == 0)
        rc = uv_poll_start(&watch->handle, UV_READABLE | UV_DISCONNECT, on_poll);
    if (rc != 0) {
        errno = -rc;
        free(watch);
        return throw_errno(env, "uv_poll_start");
    }
    watch->handle.data = watch;
    watch->env = env;
    napi_create_reference(env, argv[1], 1, &watch->callback);
    napi_create_string_utf8(env, "warmlua.poll", NAPI_AUTO_LENGTH, &name);
    napi_async_init(env, NULL, name, &watch->context);
    napi_create_external(env, watch, NULL, NULL, &result);
    return result;
}

static napi_value js_poll_stop(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    poll_watch *watch;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (napi_get_value_external(env, argv[0], (void **)&watch) != napi_ok || watch == NULL) {
        napi_throw_type_error(env, NULL, "expected a poll handle");
        return NULL;
    }
    uv_poll_stop(&watch->handle);
    napi_delete_reference(env, watch->callback);
    napi_async_destroy(env, watch->context);
    uv_close((uv_handle_t *)&watch->handle, free_watch);
    return NULL;
}

static napi_value js_peer_credentials(napi_env env, napi_callback_info info)
{
    napi_value result;
    int fd;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (!fd_argument(env, info, &fd))
        return NULL;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return throw_errno(env, "getsockopt(SO_PEERCRED)");
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "pid", int_value(env, cred.pid));
    napi_set_named_property(env, result, "uid", int_value(env, (int)cred.uid));
    napi_set_named_property(env, result, "gid", int_value(env, (int)cred.gid));
    return result;
}

/* A connected pair of blocking stream sockets: the server's line to a spare runner. */
static napi_value js_socket_pair(napi_env env, napi_callback_info info)
{
    napi_value result;
    int pair[2];
    (void)info;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
        return throw_errno(env, "socketpair");
    napi_create_array_with_length(env, 2, &result);
    napi_set_element(env, result, 0, int_value(env, pair[0]));
    napi_set_element(env, result, 1, int_value(env, pair[1]));
    return result;
}

/* waitReadable(fd[, timeoutMs]): blocks until fd is readable or hung up
 * (true), or the timeout passes (false). For processes without a loop. */
static napi_value js_wait_readable(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2], result;
    struct pollfd pfd;
    int timeout = -1, rc;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (!arg_int(env, argv[0], &pfd.fd) || (argc > 1 && !arg_int(env, argv[1], &timeout)))
        return NULL;
    pfd.events = POLLIN;
    do
        rc = poll(&pfd, 1, timeout);
    while (rc < 0 && errno == EINTR);
    if (rc < 0)
        return throw_errno(env, "poll");
    napi_get_boolean(env, rc > 0, &result);
    return result;
}

static napi_value js_shutdown_write(napi_env env, napi_callback_info info)
{
    int fd;
    if (!fd_argument(env, info, &fd))
        return NULL;
    if (shutdown(fd, SHUT_WR) < 0)
        return throw_errno(env, "shutdown");
    return NULL;
}

/* The peer's supplementary groups (SO_PEERGROUPS), for --as-peer. */
static napi_value js_peer_groups(napi_env env, napi_callback_info info)
{
    napi_value result;
    gid_t groups[MAX_GROUPS];
    socklen_t len = sizeof groups;
    int fd;
    if (!fd_argument(env, info, &fd))
        return NULL;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
        return throw_errno(env, errno == ERANGE ? "getsockopt(SO_PEERGROUPS): more than 1024 groups"
                                                : "getsockopt(SO_PEERGROUPS)");
    napi_create_array_with_length(env, len / sizeof(gid_t), &result);
    for (size_t i = 0; i < len / sizeof(gid_t); i++)
        napi_set_element(env, result, (uint32_t)i, int_value(env, (int)groups[i]));
    return result;
}

/* notify(address, message): one datagram, as sd_notify sends it. An address
 * that starts with '@' is in the abstract namespace, and its length is exact:
 * systemd binds "\0name" without padding, and a padded name is another address
 * (node-unix-socket pads, so it cannot reach one). Never blocks: a supervisor
 * that does not read must not hold the server. */
static napi_value js_notify(napi_env env, napi_callback_info info)
{
    size_t argc = 2, len;
    napi_value argv[2];
    struct sockaddr_un addr;
    void *message;
    size_t message_len;
    ssize_t sent;
    int fd;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    if (!unix_address(env, argv[0], &addr) || !arg_buffer(env, argv[1], &message, &message_len))
        return NULL;
    len = strlen(addr.sun_path);
    if (addr.sun_path[0] == '@')
        addr.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return throw_errno(env, "socket");
    sent = sendto(fd, message, message_len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&addr,
                  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    if (sent < 0) {
        napi_value error = throw_errno(env, "sendto");
        close(fd);
        return error;
    }
    close(fd);
    return NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
    int fd;
    if (!fd_argument(env, info, &fd))
        return NULL;
    /* On Linux the descriptor is gone even when close reports EINTR. */
    if (close(fd) < 0 && errno != EINTR)
        return throw_errno(env, "close");
    return NULL;
}

void register_sockets(napi_env env, napi_value exports)
{
    export_function(env, exports, "listen", js_listen);
    export_function(env, exports, "accept", js_accept);
    export_function(env, exports, "connect", js_connect);
    export_function(env, exports, "recv", js_recv);
    export_function(env, exports, "send", js_send);
    export_function(env, exports, "pollReadable", js_poll_readable);
    export_function(env, exports, "pollStop", js_poll_stop);
    export_function(env, exports, "peerCredentials", js_peer_credentials);
    export_function(env, exports, "peerGroups", js_peer_groups);
    export_function(env, exports, "socketPair", js_socket_pair);
    export_function(env, exports, "waitReadable", js_wait_readable);
    export_function(env, exports, "shutdownWrite", js_shutdown_write);
    export_function(env, exports, "notify", js_notify);
    export_function(env, exports, "close", js_close);
}
