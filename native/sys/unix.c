/*
 * The ipamd socket's side of a connection: who called (SO_PEERCRED, taken by the kernel at connect,
 * so a caller cannot lie about it) and the request line with any descriptors sent along with it
 * (SCM_RIGHTS). Node cannot read ancillary data from a stream socket, so the server accepts with
 * pauseOnConnect and this file reads the request instead: recvRequest watches a duplicate of the
 * connection's fd with a uv_poll handle (never the thread pool, which a slow client could exhaust),
 * reads without blocking until a newline, end of stream or maxBytes, and calls back once:
 *   cb(err, { data: Buffer, fds: number[], eof: boolean })
 * Descriptors beyond maxFds are closed here; the ones returned belong to the caller. cancel() on the
 * returned object stops reading and closes what was received; the callback is then never called.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include "common.h"

napi_value js_peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {0}, out;
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!arg_int(env, argv[0], "fd", &fd)) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "pid", make_int(env, cred.pid));
  napi_set_named_property(env, out, "uid", make_int(env, cred.uid));
  napi_set_named_property(env, out, "gid", make_int(env, cred.gid));
  return out;
}

#define MAX_FDS 4

typedef struct request request_t;
/* Lives as long as the JS cancel function; lets cancel() find a request that may already be done. */
typedef struct {
  request_t *r;
} token_t;

struct request {
  uv_poll_t poll;
  token_t *token;
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
  int fd; /* our duplicate of the connection */
  char *buf;
  size_t len, max;
  int fds[MAX_FDS];
  int nfds, max_fds, eof, err, done;
};

static void free_request(uv_handle_t *h) {
  request_t *r = h->data;
  close(r->fd);
  free(r->buf);
  free(r);
}

/* Stops watching and releases the JS references; the struct is freed once libuv has closed the handle. */
static void finish(request_t *r, int deliver) {
  napi_env env = r->env;
  r->done = 1;
  if (r->token) r->token->r = NULL;
  r->token = NULL;
  uv_poll_stop(&r->poll);
  if (deliver) {
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value cb, global, argv[2], data, fds, result;
    napi_get_reference_value(env, r->cb, &cb);
    napi_get_global(env, &global);
    if (r->err) {
      napi_value code, msg;
      const char *name = strerrorname_np(r->err);
      napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
      napi_create_string_utf8(env, strerror(r->err), NAPI_AUTO_LENGTH, &msg);
      napi_create_error(env, code, msg, &argv[0]);
      napi_get_undefined(env, &argv[1]);
    } else {
      void *copy;
      napi_get_null(env, &argv[0]);
      napi_create_buffer_copy(env, r->len, r->buf ? r->buf : "", &copy, &data);
      napi_create_array_with_length(env, (size_t)r->nfds, &fds);
      for (int i = 0; i < r->nfds; i++) napi_set_element(env, fds, (uint32_t)i, make_int(env, r->fds[i]));
      napi_create_object(env, &argv[1]);
      napi_set_named_property(env, argv[1], "data", data);
      napi_set_named_property(env, argv[1], "fds", fds);
      napi_value eof;
      napi_get_boolean(env, r->eof, &eof);
      napi_set_named_property(env, argv[1], "eof", eof);
      r->nfds = 0; /* handed over */
    }
    napi_make_callback(env, r->ctx, global, cb, 2, argv, &result);
    napi_close_handle_scope(env, scope);
  }
  for (int i = 0; i < r->nfds; i++) close(r->fds[i]);
  r->nfds = 0;
  napi_delete_reference(env, r->cb);
  napi_async_destroy(env, r->ctx);
  uv_close((uv_handle_t *)&r->poll, free_request);
}

static void keep_fds(request_t *r, struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int *in = (int *)CMSG_DATA(c);
    for (int i = 0; i < n; i++) {
      if (r->nfds < r->max_fds) r->fds[r->nfds++] = in[i];
      else close(in[i]);
    }
  }
}

static void on_readable(uv_poll_t *h, int status, int events) {
  request_t *r = h->data;
  (void)events;
  if (r->done) return;
  if (status < 0) {
    r->err = -status;
    finish(r, 1);
    return;
  }
  for (;;) {
    if (r->len >= r->max) break; /* full: the caller decides what an oversized line means */
    union { char raw[CMSG_SPACE(sizeof(int) * MAX_FDS)]; struct cmsghdr align; } control;
    struct iovec iov = {.iov_base = r->buf + r->len, .iov_len = r->max - r->len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.raw, .msg_controllen = sizeof control.raw};
    ssize_t n = recvmsg(r->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return; /* wait for more */
    if (n < 0) {
      r->err = errno;
      break;
    }
    keep_fds(r, &m);
    if (n == 0) {
      r->eof = 1;
      break;
    }
    int newline = memchr(r->buf + r->len, '\n', (size_t)n) != NULL;
    r->len += (size_t)n;
    if (newline) break;
  }
  finish(r, 1);
}

static napi_value cancel(napi_env env, napi_callback_info info) {
  token_t *t;
  napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&t);
  if (t->r) finish(t->r, 0);
  return NULL;
}

static void free_token(napi_env env, void *data, void *hint) {
  token_t *t = data;
  (void)env;
  (void)hint;
  if (t->r) t->r->token = NULL;
  free(t);
}

/* recvRequest(fd, maxBytes, maxFds, cb) -> { cancel() } */
napi_value js_recv_request(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4] = {0};
  int32_t fd, max, max_fds;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!arg_int(env, argv[0], "fd", &fd) || !arg_int(env, argv[1], "maxBytes", &max) ||
      !arg_int(env, argv[2], "maxFds", &max_fds))
    return NULL;
  napi_valuetype t = napi_undefined;
  if (argv[3]) napi_typeof(env, argv[3], &t);
  if (t != napi_function || max <= 0 || max_fds < 0 || max_fds > MAX_FDS) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "recvRequest(fd, maxBytes > 0, maxFds 0-4, callback)");
    return NULL;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  request_t *r = calloc(1, sizeof *r);
  token_t *tok = calloc(1, sizeof *tok);
  if (!r || !tok) {
    free(r);
    free(tok);
    return throw_errno(env, "recvRequest", ENOMEM);
  }
  r->buf = malloc((size_t)max);
  r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (!r->buf || r->fd < 0) {
    int err = r->fd < 0 ? errno : ENOMEM;
    if (r->fd >= 0) close(r->fd);
    free(r->buf);
    free(r);
    free(tok);
    return throw_errno(env, "recvRequest", err);
  }
  r->env = env;
  r->max = (size_t)max;
  r->max_fds = max_fds;
  int rc = uv_poll_init(loop, &r->poll, r->fd);
  if (rc != 0) {
    close(r->fd);
    free(r->buf);
    free(r);
    free(tok);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  r->poll.data = r;
  napi_value name;
  napi_create_string_utf8(env, "vpccni:recvRequest", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &r->ctx);
  napi_create_reference(env, argv[3], 1, &r->cb);
  uv_poll_start(&r->poll, UV_READABLE | UV_DISCONNECT, on_readable);
  napi_value handle, fn;
  napi_create_object(env, &handle);
  tok->r = r;
  r->token = tok;
  napi_create_function(env, "cancel", NAPI_AUTO_LENGTH, cancel, tok, &fn);
  napi_add_finalizer(env, fn, tok, free_token, NULL, NULL);
  napi_set_named_property(env, handle, "cancel", fn);
  return handle;
}
