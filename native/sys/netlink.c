/*
 * NETLINK_ROUTE sockets, used synchronously: nlSend hands a request to the kernel, which handles it
 * inside sendmsg and queues every reply (or the first part of a dump, the rest being produced as the
 * reader drains it) before returning; nlRecv then reads one datagram. Because a whole request/answer
 * runs without returning to the event loop, two calls in one process can never interleave on one
 * socket (no EBUSY from a second dump, no reply read by the wrong caller). nlRecv waits at most
 * timeoutMs, so a socket that is not answered by the kernel cannot hang the daemon.
 * nlAdopt takes a socket another process made (the CNI shim, inside a pod's namespace) after checking
 * it really is a NETLINK_ROUTE socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"

#define RCVBUF (1 << 20)

static napi_value prepared(napi_env env, int fd) {
  int size = RCVBUF, one = 1;
  /* Best effort: a small buffer only splits dumps into more datagrams. */
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  /* Extended acks carry the kernel's reason text; harmless where unsupported. */
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  return make_int(env, fd);
}

/* nlOpen(): a NETLINK_ROUTE socket in the calling thread's network namespace. */
napi_value js_nl_open(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return throw_errno(env, "socket(AF_NETLINK)", errno);
  struct sockaddr_nl addr = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "bind(AF_NETLINK)", err);
  }
  return prepared(env, fd);
}

static int sockopt(int fd, int opt) {
  int v = -1;
  socklen_t len = sizeof v;
  return getsockopt(fd, SOL_SOCKET, opt, &v, &len) == 0 ? v : -1;
}

/* nlAdopt(fd): fd itself once it is proven a raw NETLINK_ROUTE socket; EPROTOTYPE otherwise. */
napi_value js_nl_adopt(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {0};
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!arg_int(env, argv[0], "fd", &fd)) return NULL;
  int domain = sockopt(fd, SO_DOMAIN);
  if (domain < 0 && errno == ENOTSOCK) return throw_errno(env, "nlAdopt", ENOTSOCK);
  if (domain != AF_NETLINK || sockopt(fd, SO_PROTOCOL) != NETLINK_ROUTE || sockopt(fd, SO_TYPE) != SOCK_RAW)
    return throw_errno(env, "nlAdopt", EPROTOTYPE);
  return prepared(env, fd);
}

/* nlSend(fd, buffer): one request to the kernel (never to a peer the socket may be connected to). */
napi_value js_nl_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2] = {0};
  int32_t fd;
  void *data;
  size_t len;
  bool isbuf = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!arg_int(env, argv[0], "fd", &fd)) return NULL;
  if (argv[1]) napi_is_buffer(env, argv[1], &isbuf);
  if (!isbuf) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "nlSend(fd, buffer): buffer must be a Buffer");
    return NULL;
  }
  napi_get_buffer_info(env, argv[1], &data, &len);
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t n;
  do n = sendto(fd, data, len, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, "sendto(netlink)", errno);
  return NULL;
}

/* nlRecv(fd, timeoutMs): the next datagram from the kernel as a Buffer; ETIMEDOUT when none comes. */
napi_value js_nl_recv(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2] = {0};
  int32_t fd, timeout;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!arg_int(env, argv[0], "fd", &fd) || !arg_int(env, argv[1], "timeoutMs", &timeout)) return NULL;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, timeout);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return throw_errno(env, "poll(netlink)", errno);
    if (r == 0) return throw_errno(env, "recv(netlink)", ETIMEDOUT);
    char probe;
    struct sockaddr_nl from;
    struct iovec iov = {.iov_base = &probe, .iov_len = 1};
    struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t size = recvmsg(fd, &m, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    if (size < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (size < 0) return throw_errno(env, "recvmsg(netlink)", errno);
    void *data;
    napi_value buf;
    if (napi_create_buffer(env, (size_t)size, &data, &buf) != napi_ok) return NULL;
    iov.iov_base = data;
    iov.iov_len = (size_t)size;
    m.msg_namelen = sizeof from;
    ssize_t got = recvmsg(fd, &m, MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got < 0) return throw_errno(env, "recvmsg(netlink)", errno);
    if (from.nl_pid != 0) continue; /* only the kernel answers requests; drop anything else */
    if (got != size) return throw_errno(env, "recvmsg(netlink)", EMSGSIZE);
    return buf;
  }
}
