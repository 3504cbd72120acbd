{
  "targets": [
    {
      "target_name": "sys",
      "sources": ["addon.c", "ns.c", "netlink.c", "unix.c"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-std=gnu11"]
    }
  ]
}
