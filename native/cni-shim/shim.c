/*
 * aws-cni: the binary the container runtime executes for every pod start and stop.
 *
 * Why it exists: starting a Node process costs ~110 ms on a small node, and the reference plugins
 * (ptp + host-local) answer in ~10 ms. ipamd already runs with the plugin's code loaded, so this
 * shim forwards the whole CNI call (the CNI_* environment and the netconf on stdin) to ipamd in
 * one round trip over its Unix socket (op "cni", lib/protocol/ipamd.ts). ipamd runs the same
 * handlers as the Node plugin (cni/run.ts) and answers with a fixed header holding the exit code,
 * then the plugin's stdout, which the shim copies out before exiting with that code.
 *
 * When ipamd cannot take the call (no socket, refused, an error line instead of the frame) the
 * shim execs the Node plugin aws-cni.mjs next to its own real path, with the same environment
 * and stdin: DEL with ipamd down still tears down what it can prove is its own, VERSION and STATUS
 * still answer.
 *
 * The pod's namespace: ipamd runs in a container of its own mount namespace, where the runtime's
 * CNI_NETNS path (a bind mount in the runtime's mount namespace) does not exist, and with only
 * NET_ADMIN/NET_RAW, so it could neither open nor enter it. The shim runs as the runtime does: it
 * opens CNI_NETNS (without blocking, checked to be a network namespace), enters it just long enough
 * to create a NETLINK_ROUTE socket there, returns, and sends that socket with the request
 * (SCM_RIGHTS, field "netnsFd":1). ipamd learns the namespace from the socket itself (SIOCGSKNS)
 * and never resolves a path a caller chose. When the namespace cannot be opened the request says
 * why ("netnsErrno"), so ipamd answers as the Node plugin would (DEL of a gone namespace succeeds).
 *
 * Kept small on purpose: no JSON parser (one scan for the top-level string "ipamdSocket"; anything
 * unusual falls back to the Node plugin, which reports config errors properly), bounded buffers,
 * every system call checked, no shell.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_IN (60 * 1024)   /* the request must fit ipamd's 64 KiB limit */
#define MAX_STDIN (1024 * 1024) /* MAX_NETCONF_BYTES in cni/netconf.ts (a test keeps them equal); over it: code 7 */
#define MAX_REQ (64 * 1024)
#define MAX_OUT (1024 * 1024)
#define ANSWER_TIMEOUT_S 60  /* ADD may wait on ipamd's checkpoint; ipamd answers 11 when it cannot */
#define DEFAULT_SOCKET "/var/run/aws-node/vpc-cni.sock"
#define FRAME "{\"v\":1,\"ok\":true,\"result\":{\"exitCode\":"

extern char **environ;
static char in[MAX_IN + 1], req[MAX_REQ], out[MAX_OUT + 1];
static size_t in_len, req_len;
static int in_none; /* stdin is a terminal: VERSION without a config */
static char **args; /* our argv, passed on to the Node plugin */
static int netns_sock = -1; /* NETLINK_ROUTE socket created inside CNI_NETNS, sent to ipamd */
static const char *netns_errno; /* why CNI_NETNS could not be opened, sent instead */

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The call was sent but no answer came: the spec's "try again later" (11), so the runtime retries. */
static void try_again(const char *details) {
  printf("{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"ipamd did not answer the CNI call\","
         "\"details\":\"%s\"}\n", details);
  exit(1);
}

/* A netconf over MAX_STDIN: refused here, as the Node plugin would, without reading the rest. */
static void too_large(void) {
  printf("{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"network configuration is too large\","
         "\"details\":\"stdin holds more than %d bytes, the most this plugin reads\"}\n",
         MAX_STDIN);
  exit(1);
}

/* Execs the Node plugin beside this binary, stdin restored from what was read. Never returns. */
static void fallback(void) {
  char self[PATH_MAX], bundle[PATH_MAX + 16];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  char *slash;
  if (n <= 0) try_again("aws-cni: cannot read /proc/self/exe to find aws-cni.mjs");
  self[n] = '\0';
  slash = strrchr(self, '/');
  if (!slash) try_again("aws-cni: unexpected /proc/self/exe");
  *slash = '\0';
  if (snprintf(bundle, sizeof bundle, "%s/aws-cni.mjs", self) >= (int)sizeof bundle)
    try_again("aws-cni: install path too long");
  if (!in_none) {
    /* A memfd holds stdin whole (a pipe could block on a large config). */
    int fd = memfd_create("cni-stdin", MFD_CLOEXEC);
    if (fd < 0 || write_all(fd, in, in_len) < 0) try_again("aws-cni: memfd for stdin failed");
    size_t total = in_len;
    for (;;) { /* stdin larger than MAX_IN: copy the rest, up to the limit */
      ssize_t r = read(0, out, MAX_OUT);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) try_again("aws-cni: reading stdin failed");
      if (r == 0) break;
      total += (size_t)r;
      if (total > MAX_STDIN) too_large();
      if (write_all(fd, out, (size_t)r) < 0) try_again("aws-cni: memfd for stdin failed");
    }
    if (lseek(fd, 0, SEEK_SET) != 0 || dup2(fd, 0) != 0) try_again("aws-cni: restoring stdin failed");
  }
  char *none[] = {bundle, NULL};
  char **a = args && args[0] ? args : none;
  a[0] = bundle;
  execv(bundle, a); /* a script: its #! line runs node (or a wrapper picks the node to use) */
  try_again("aws-cni: ipamd unreachable and exec of aws-cni.mjs failed; reinstall the plugin");
}

/* The top-level string value of "ipamdSocket": 1 found (copied to val), 0 absent, -1 unusual. */
static int socket_path(char *val, size_t cap) {
  static const char key[] = "ipamdSocket";
  int depth = 0, found = 0;
  size_t i = 0;
  while (i < in_len) {
    char c = in[i];
    if (c == '{' || c == '[') depth++;
    if (c == '}' || c == ']') depth--;
    if (c != '"') { i++; continue; }
    size_t start = ++i;
    int escaped = 0;
    while (i < in_len && in[i] != '"') {
      if (in[i] == '\\') { escaped = 1; i++; }
      i++;
    }
    if (i >= in_len) return -1;
    size_t len = i - start, j = ++i;
    while (j < in_len && strchr(" \t\r\n", in[j]) && in[j]) j++;
    if (depth != 1 || j >= in_len || in[j] != ':') continue; /* not a top-level key */
    if (escaped) return -1; /* a key spelled with escapes could be ipamdSocket */
    if (len != sizeof key - 1 || memcmp(in + start, key, len) != 0) continue;
    for (j++; j < in_len && strchr(" \t\r\n", in[j]) && in[j];) j++;
    if (found || j >= in_len || in[j] != '"') return -1;
    size_t vs = ++j;
    while (j < in_len && in[j] != '"') {
      if (in[j] == '\\' || (unsigned char)in[j] < 0x20) return -1;
      j++;
    }
    if (j >= in_len || j - vs >= cap) return -1;
    memcpy(val, in + vs, j - vs);
    val[j - vs] = '\0';
    found = 1;
    i = j + 1;
  }
  return found;
}

static int put(const char *s, size_t n) {
  if (req_len + n > sizeof req) return -1;
  memcpy(req + req_len, s, n);
  req_len += n;
  return 0;
}

/* Appends s as a JSON string; bytes >= 0x80 pass through (the UTF-8 the runtime sent). */
static int put_json(const char *s, size_t n) {
  char esc[8];
  if (put("\"", 1)) return -1;
  for (size_t k = 0; k < n; k++) {
    unsigned char c = (unsigned char)s[k];
    if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; if (put(esc, 2)) return -1; }
    else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); if (put(esc, 6)) return -1; }
    else if (put((const char *)&s[k], 1)) return -1;
  }
  return put("\"", 1);
}

static int build_request(void) {
  int first = 1;
  if (put("{\"v\":1,\"op\":\"cni\",\"env\":{", 25)) return -1;
  for (char **e = environ; *e; e++) {
    const char *eq = strchr(*e, '=');
    if (strncmp(*e, "CNI_", 4) != 0 || !eq) continue;
    if ((!first && put(",", 1)) || put_json(*e, (size_t)(eq - *e)) || put(":", 1) ||
        put_json(eq + 1, strlen(eq + 1)))
      return -1;
    first = 0;
  }
  if (put("}", 1)) return -1;
  if (!in_none && (put(",\"stdin\":", 9) || put_json(in, in_len))) return -1;
  if (netns_sock >= 0 && put(",\"netnsFd\":1", 12)) return -1;
  if (netns_errno && (put(",\"netnsErrno\":", 14) || put_json(netns_errno, strlen(netns_errno)))) return -1;
  return put("}\n", 2);
}

static const char *errno_name(int err) {
  const char *n = strerrorname_np(err);
  return n ? n : "EIO";
}

/*
 * For the commands that act in the pod's namespace: a NETLINK_ROUTE socket made inside CNI_NETNS.
 * The shim leaves the namespace before doing anything else (a fallback must run where it started);
 * if it cannot get back it stops, asking the runtime to retry.
 */
static void open_pod_netlink(void) {
  const char *cmd = getenv("CNI_COMMAND"), *path = getenv("CNI_NETNS");
  if (!cmd || (strcmp(cmd, "ADD") && strcmp(cmd, "DEL") && strcmp(cmd, "CHECK"))) return;
  if (!path || !*path) return;
  int ns = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (ns < 0) {
    netns_errno = errno_name(errno);
    return;
  }
  if (ioctl(ns, NS_GET_NSTYPE) != CLONE_NEWNET) { /* a file, a FIFO, another kind of namespace */
    netns_errno = "EINVAL";
    close(ns);
    return;
  }
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    close(ns);
    fallback();
  }
  if (setns(ns, CLONE_NEWNET) != 0) {
    netns_errno = errno_name(errno);
    close(ns);
    close(self);
    return;
  }
  netns_sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  int made = errno;
  if (setns(self, CLONE_NEWNET) != 0) try_again("aws-cni: could not return from the pod's network namespace");
  close(ns);
  close(self);
  if (netns_sock < 0) netns_errno = errno_name(made);
}

/* Sends the request, the pod's netlink socket riding on its first byte. */
static int send_request(int fd) {
  size_t sent = 0;
  if (netns_sock >= 0) {
    union { char raw[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct iovec iov = {.iov_base = req, .iov_len = req_len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.raw, .msg_controllen = sizeof control.raw};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &netns_sock, sizeof(int));
    ssize_t w;
    do w = sendmsg(fd, &m, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w <= 0) return -1;
    sent = (size_t)w;
  }
  while (sent < req_len) {
    ssize_t w = send(fd, req + sent, req_len - sent, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    sent += (size_t)w;
  }
  return 0;
}

int main(int argc, char **argv) {
  (void)argc;
  args = argv;
  struct stat st;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)] = DEFAULT_SOCKET;
  if (fstat(0, &st) == 0 && S_ISCHR(st.st_mode)) in_none = 1;
  while (!in_none) {
    ssize_t r = read(0, in + in_len, sizeof in - in_len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fallback(); /* the Node plugin reports the read error */
    if (r == 0) break;
    in_len += (size_t)r;
    if (in_len > MAX_IN) fallback(); /* too large to forward; fallback() copies the rest */
  }
  if (socket_path(path, sizeof path) < 0 || path[0] != '/') fallback();
  open_pod_netlink();
  if (build_request() < 0) fallback();

  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  memcpy(addr.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) fallback();
  if (send_request(fd) < 0) fallback(); /* ipamd runs nothing before it has the whole line */
  if (netns_sock >= 0) close(netns_sock); /* ipamd holds its own copy now */
  struct timeval tv = {.tv_sec = ANSWER_TIMEOUT_S};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) try_again("setsockopt failed");
  size_t got = 0;
  for (;;) {
    ssize_t r = read(fd, out + got, MAX_OUT - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) try_again(errno == EAGAIN ? "no answer within 60 s" : "reading the answer failed");
    if (r == 0) break;
    got += (size_t)r;
    if (got == MAX_OUT) try_again("answer larger than 1 MiB");
  }
  close(fd);
  out[got] = '\0';
  /* Anything but the frame is an error line: ipamd refused before running the call. */
  if (got < sizeof FRAME - 1 || memcmp(out, FRAME, sizeof FRAME - 1) != 0) {
    if (got == 0) try_again("ipamd closed the connection without an answer");
    fallback();
  }
  char *p = out + sizeof FRAME - 1, *end;
  errno = 0;
  long code = strtol(p, &end, 10);
  if (end == p || errno || code < 0 || code > 255 || strncmp(end, "}}\n", 3) != 0)
    try_again("ipamd sent a malformed CNI frame");
  end += 3;
  if (write_all(1, end, (size_t)(out + got - end)) < 0) return 1;
  return (int)code;
}
