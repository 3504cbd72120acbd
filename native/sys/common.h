/* Shared by the addon's files: argument reading and errors shaped like Node's own system errors. */
#ifndef VPCCNI_SYS_COMMON_H
#define VPCCNI_SYS_COMMON_H
#include <node_api.h>
#include <stdint.h>

/* Throws an Error with .code (errno name), .errno and .syscall; returns NULL for the caller to return. */
napi_value throw_errno(napi_env env, const char *syscall, int err);
/* Reads argument i as an int32; throws a TypeError naming `what` and returns 0 when it is not a number. */
int arg_int(napi_env env, napi_value v, const char *what, int32_t *out);
napi_value make_int(napi_env env, int64_t v);

napi_value js_setns(napi_env env, napi_callback_info info);
napi_value js_ns_type(napi_env env, napi_callback_info info);
napi_value js_socket_netns(napi_env env, napi_callback_info info);
napi_value js_close(napi_env env, napi_callback_info info);
napi_value js_nl_open(napi_env env, napi_callback_info info);
napi_value js_nl_adopt(napi_env env, napi_callback_info info);
napi_value js_nl_send(napi_env env, napi_callback_info info);
napi_value js_nl_recv(napi_env env, napi_callback_info info);
napi_value js_peer_cred(napi_env env, napi_callback_info info);
napi_value js_recv_request(napi_env env, napi_callback_info info);
#endif
