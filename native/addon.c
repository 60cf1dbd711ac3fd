/* Module entry and the helpers every part of the addon shares. */
#include "addon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

napi_value throw_errno(napi_env env, const char *syscall)
{
    int err = errno;
    const char *name = strerrorname_np(err);
    napi_value msg, error, code, num, sys;
    char text[256];
    snprintf(text, sizeof text, "%s: %s", syscall, strerror(err));
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &error);
    napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
    napi_create_int32(env, err, &num);
    napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
    napi_set_named_property(env, error, "code", code);
    napi_set_named_property(env, error, "errno", num);
    napi_set_named_property(env, error, "syscall", sys);
    napi_throw(env, error);
    return NULL;
}

int arg_int(napi_env env, napi_value v, int *out)
{
    if (napi_get_value_int32(env, v, out) != napi_ok) {
        napi_throw_type_error(env, NULL, "expected an integer");
        return 0;
    }
    return 1;
}

int arg_buffer(napi_env env, napi_value v, void **data, size_t *len)
{
    if (napi_get_buffer_info(env, v, data, len) != napi_ok) {
        napi_throw_type_error(env, NULL, "expected a Buffer");
        return 0;
    }
    return 1;
}

int fd_argument(napi_env env, napi_callback_info info, int *fd)
{
    size_t argc = 1;
    napi_value argv[1];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    return arg_int(env, argv[0], fd);
}

char *arg_cstring(napi_env env, napi_value v)
{
    void *data;
    size_t len;
    char *s;
    if (!arg_buffer(env, v, &data, &len))
        return NULL;
    if ((s = malloc(len + 1)) == NULL) {
        throw_errno(env, "malloc");
        return NULL;
    }
    memcpy(s, data, len);
    s[len] = '\0';
    return s;
}

void export_function(napi_env env, napi_value exports, const char *name, napi_callback cb)
{
    napi_value fn;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
    napi_set_named_property(env, exports, name, fn);
}

static napi_value init(napi_env env, napi_value exports)
{
    register_sockets(env, exports);
    register_runner(env, exports);
    register_stdlib(env, exports);
    register_prefault(env, exports);
    register_forker(env, exports);
    register_fingerprint(env, exports);
    return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
