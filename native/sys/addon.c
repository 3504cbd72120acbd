/*
 * The project's one native addon (dist/sys.node): the few system calls Node cannot make and the
 * node path needs. Each function is a thin, synchronous wrapper unless it says otherwise:
 *   ns.c       setns, the type of a namespace fd, the namespace of a socket (SIOCGSKNS), close
 *   netlink.c  NETLINK_ROUTE sockets: open, adopt one passed by another process, send, receive
 *   unix.c     who is on the other end of a Unix socket (SO_PEERCRED), and reading a request line
 *              together with the descriptors sent along with it (SCM_RIGHTS; asynchronous)
 * Errors are thrown like Node's own system errors: .code is the errno name, .errno the number.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "common.h"

napi_value throw_errno(napi_env env, const char *syscall, int err) {
  const char *name = strerrorname_np(err);
  char msg[160];
  if (!name) name = "EUNKNOWN";
  snprintf(msg, sizeof msg, "%s: %s (%s)", syscall, strerror(err), name);
  napi_value code, message, error, num, sc;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  napi_throw(env, error);
  return NULL;
}

int arg_int(napi_env env, napi_value v, const char *what, int32_t *out) {
  napi_valuetype t = napi_undefined;
  if (v) napi_typeof(env, v, &t);
  if (t != napi_number) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a number", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
  }
  napi_get_value_int32(env, v, out);
  return 1;
}

napi_value make_int(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  static const struct { const char *name; napi_callback fn; } fns[] = {
    {"setns", js_setns},           {"nsType", js_ns_type},   {"socketNetns", js_socket_netns},
    {"close", js_close},           {"nlOpen", js_nl_open},   {"nlAdopt", js_nl_adopt},
    {"nlSend", js_nl_send},        {"nlRecv", js_nl_recv},   {"peerCred", js_peer_cred},
    {"recvRequest", js_recv_request},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
