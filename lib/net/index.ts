/**
 * lib/net: Linux networking for vpc-cni without shelling out to `ip`.
 *
 * Namespaces (netns.ts, native/netns addon):
 *   netnsPath(name)            "/var/run/netns/<name>", validating the name
 *   inNetns(nsPath, fn)        run a *synchronous* fn with the main thread inside that netns, always
 *                              switch back; sockets created inside stay in that netns
 *   netnsInode(path?)          namespace identity (inode), default: the caller's
 *
 * rtnetlink (rtnl.ts): openRtnl(nsPath?) -> Rtnl, an async handle whose socket lives in that netns
 *   links      listLinks, getLink(name|index) (ENODEV), findLink, findLinkByMac, linkIndex,
 *              createVeth({name, peerName, peerNetns, mtu, mac, peerMac}), setLink(ref, {up, mtu,
 *              mac, name, netns}), setLinkUp/Down, setMtu, setMac, moveLink, deleteLink
 *   addresses  addAddress(dev, "10.0.0.5/32", {scope}), replaceAddress, deleteAddress, listAddresses
 *   routes     addRoute / replaceRoute / deleteRoute({dst | "default", gateway, dev, table, scope,
 *              src, protocol, metric, type, onlink}), listRoutes({table, dev, family}),
 *              lookupRoute(dst, {src, oif, mark}) (`ip route get`, reports the matching table)
 *   rules      addRule / deleteRule({priority, src, dst, table, fwmark, fwmask, iif, oif, invert}),
 *              listRules
 *   neighbours addNeighbor / replaceNeighbor({ip, mac, dev}) (permanent), deleteNeighbor, listNeighbors
 *   close()
 *
 * sysctl (sysctl.ts, synchronous): readSysctl(key, nsPath?), writeSysctl(key, value, nsPath?) with
 * keys as "net.ipv4.ip_forward" or "net/ipv4/conf/eth0/rp_filter"; with nsPath the file is opened
 * inside that namespace (only net.* keys are allowed there).
 *
 * Errors: NetlinkError, message "<operation>: <reason> (<ERRNO>)", e.g.
 * "add route 10.0.0.5/32 dev eni1a2b: File exists (EEXIST)", with `.code` ("EEXIST", "ENOENT",
 * "ESRCH", "ENODEV", ...); use hasCode(err, 'EEXIST') to treat repeats as success. Bad arguments
 * (malformed CIDR, MAC, interface name) throw TypeError before anything is sent.
 *
 * Load cost: importing this module loads no native code; the addons load on first use.
 */
export type { Address, AddressFilter, AddressOptions } from './addrs.js';
export { hasCode, NetlinkError } from './errors.js';
export type { Link, LinkChanges, LinkRef, VethOptions } from './links.js';
export { validateLinkName } from './links.js';
export type { Neighbor, NeighborSpec } from './neigh.js';
export { CLONE_NEWNET, inNetns, NETNS_RUN_DIR, netnsInode, netnsPath, setns } from './netns.js';
export type { Route, RouteFilter, RouteLookup, RouteSpec } from './routes.js';
export type { RouteProtocol, RouteType, Scope, Table } from './rtnames.js';
export { openRtnl, Rtnl, type RtnlOptions } from './rtnl.js';
export type { Rule, RuleSpec } from './rules.js';
export { readSysctl, sysctlPath, writeSysctl } from './sysctl.js';
