/*
 * Namespaces: setns(2) for the calling thread (always Node's main thread), the kind of namespace an
 * fd refers to (NS_GET_NSTYPE: a FIFO, a file or a directory is refused without blocking), and the
 * network namespace a socket belongs to (SIOCGSKNS), which is how ipamd learns a pod's namespace
 * from the netlink socket the CNI shim created inside it, without resolving any path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <linux/sockios.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "common.h"

napi_value js_setns(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2] = {0};
  int32_t fd, nstype;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!arg_int(env, argv[0], "fd", &fd) || !arg_int(env, argv[1], "nstype", &nstype)) return NULL;
  if (setns(fd, nstype) != 0) return throw_errno(env, "setns", errno);
  return NULL;
}

/* nsType(fd): the CLONE_NEW* constant of the namespace fd refers to; ENOTTY when it is no namespace. */
napi_value js_ns_type(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {0};
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!arg_int(env, argv[0], "fd", &fd)) return NULL;
  int t = ioctl(fd, NS_GET_NSTYPE);
  if (t < 0) return throw_errno(env, "ioctl(NS_GET_NSTYPE)", errno);
  return make_int(env, t);
}

/* socketNetns(fd): a new close-on-exec fd for the network namespace socket fd belongs to. */
napi_value js_socket_netns(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {0};
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!arg_int(env, argv[0], "fd", &fd)) return NULL;
  int ns = ioctl(fd, SIOCGSKNS);
  if (ns < 0) return throw_errno(env, "ioctl(SIOCGSKNS)", errno);
  if (fcntl(ns, F_SETFD, FD_CLOEXEC) != 0) {
    int err = errno;
    close(ns);
    return throw_errno(env, "fcntl", err);
  }
  return make_int(env, ns);
}

napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1] = {0};
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!arg_int(env, argv[0], "fd", &fd)) return NULL;
  if (close(fd) != 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}
