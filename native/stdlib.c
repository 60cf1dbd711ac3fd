/* Native calls the runner's Lua standard library needs (server/stdlib/). */
#include "addon.h"

void register_stdlib(napi_env env, napi_value exports)
{
    (void)env;
    (void)exports;
}
