/*
 * Tiny N-API addon exposing setns(2), which Node cannot call on its own.
 *
 *   setns(fd: number, nstype: number): void
 *
 * Switches the *calling thread* (always Node's main thread: JS only runs there) into the namespace
 * referred to by fd. nstype is 0 (any) or a CLONE_NEW* constant (CLONE_NEWNET = 0x40000000) so the
 * kernel refuses an fd of the wrong kind. On failure it throws an Error whose `code` is the errno
 * name (e.g. "EBADF"), `errno` the number and `syscall` "setns", like Node's own system errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <node_api.h>

static const char *errno_name(int err) {
  switch (err) {
  case EBADF: return "EBADF";
  case EINVAL: return "EINVAL";
  case ENOMEM: return "ENOMEM";
  case EPERM: return "EPERM";
  case ENOSYS: return "ENOSYS";
  case EUSERS: return "EUSERS";
  default: return "EUNKNOWN";
  }
}

static napi_value throw_errno(napi_env env, int err) {
  char msg[128];
  snprintf(msg, sizeof msg, "setns: %s (%s)", strerror(err), errno_name(err));
  napi_value code, message, error, num, syscall;
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, "setns", NAPI_AUTO_LENGTH, &syscall);
  napi_set_named_property(env, error, "syscall", syscall);
  napi_throw(env, error);
  return NULL;
}

static napi_value js_setns(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd = -1, nstype = 0;
  napi_valuetype t0 = napi_undefined, t1 = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &t0);
  if (argc >= 2) napi_typeof(env, argv[1], &t1);
  if (t0 != napi_number || t1 != napi_number) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "setns(fd, nstype): both arguments must be numbers");
    return NULL;
  }
  napi_get_value_int32(env, argv[0], &fd);
  napi_get_value_int32(env, argv[1], &nstype);
  if (setns(fd, nstype) != 0) return throw_errno(env, errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "setns", NAPI_AUTO_LENGTH, js_setns, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "setns", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
