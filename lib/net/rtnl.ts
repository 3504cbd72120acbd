// An rtnetlink handle bound to one network namespace. The socket is created inside the namespace
// (inNetns), so every later request acts there, from any async context, with no further switching.
import * as addrs from './addrs.js';
import { NetlinkError } from './errors.js';
import * as links from './links.js';
import * as neigh from './neigh.js';
import { inNetns, inNetnsFd } from './netns.js';
import * as routes from './routes.js';
import * as rules from './rules.js';
import { NlSocket } from './socket.js';
import { sys } from './sys.js';

export interface RtnlOptions {
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
}

export class Rtnl {
  /** @param nsPath the namespace this handle acts in, or undefined for the caller's. */
  constructor(
    private readonly sock: NlSocket,
    readonly nsPath: string | undefined,
  ) {}

  // links
  listLinks = () => links.listLinks(this.sock);
  /** Rejects with code ENODEV when missing. */
  getLink = (ref: links.LinkRef) => links.getLink(this.sock, ref);
  /** undefined when missing. */
  findLink = (ref: links.LinkRef) => links.findLink(this.sock, ref);
  findLinkByMac = (mac: string) => links.findLinkByMac(this.sock, mac);
  linkIndex = (ref: links.LinkRef) => links.linkIndex(this.sock, ref);
  /** Creates a veth pair; `peerNetns` places the peer straight into another namespace. EEXIST if taken. */
  createVeth = (o: links.VethOptions) => links.createVeth(this.sock, o);
  setLink = (ref: links.LinkRef, changes: links.LinkChanges) => links.setLink(this.sock, ref, changes);
  setLinkUp = (ref: links.LinkRef) => links.setLink(this.sock, ref, { up: true });
  setLinkDown = (ref: links.LinkRef) => links.setLink(this.sock, ref, { up: false });
  setMtu = (ref: links.LinkRef, mtu: number) => links.setLink(this.sock, ref, { mtu });
  setMac = (ref: links.LinkRef, mac: string) => links.setLink(this.sock, ref, { mac });
  /** Moves a link into the namespace at `nsPath` (optionally renaming it on the way). */
  moveLink = (ref: links.LinkRef, ns: links.NetnsTarget, newName?: string) =>
    links.setLink(this.sock, ref, newName === undefined ? { netns: ns } : { netns: ns, name: newName });
  /** Rejects with ENODEV when missing; deleting one veth end deletes both. */
  deleteLink = (ref: links.LinkRef) => links.deleteLink(this.sock, ref);

  // addresses
  addAddress = (dev: links.LinkRef, cidr: string, o?: addrs.AddressOptions) =>
    addrs.addAddress(this.sock, dev, cidr, o);
  replaceAddress = (dev: links.LinkRef, cidr: string, o?: addrs.AddressOptions) =>
    addrs.replaceAddress(this.sock, dev, cidr, o);
  deleteAddress = (dev: links.LinkRef, cidr: string) => addrs.deleteAddress(this.sock, dev, cidr);
  listAddresses = (f?: addrs.AddressFilter) => addrs.listAddresses(this.sock, f);

  // routes
  addRoute = (r: routes.RouteSpec) => routes.addRoute(this.sock, r);
  replaceRoute = (r: routes.RouteSpec) => routes.replaceRoute(this.sock, r);
  deleteRoute = (r: routes.RouteSpec) => routes.deleteRoute(this.sock, r);
  listRoutes = (f?: routes.RouteFilter) => routes.listRoutes(this.sock, f);
  /** `ip route get`: the route (and table, via policy rules) the kernel picks for `dst`. */
  lookupRoute = (dst: string, o?: routes.RouteLookup) => routes.lookupRoute(this.sock, dst, o);

  // rules
  addRule = (r: rules.RuleSpec) => rules.addRule(this.sock, r);
  deleteRule = (r: rules.RuleSpec) => rules.deleteRule(this.sock, r);
  listRules = (family?: 'inet' | 'inet6') => rules.listRules(this.sock, family);

  // neighbours
  addNeighbor = (n: neigh.NeighborSpec) => neigh.addNeighbor(this.sock, n);
  replaceNeighbor = (n: neigh.NeighborSpec) => neigh.replaceNeighbor(this.sock, n);
  deleteNeighbor = (n: Omit<neigh.NeighborSpec, 'mac'>) => neigh.deleteNeighbor(this.sock, n);
  listNeighbors = (dev?: links.LinkRef) => neigh.listNeighbors(this.sock, dev);

  /** A new fd for the network namespace this handle acts in (SIOCGSKNS); the caller closes it. */
  netnsFd(): number {
    const fd = this.sock.descriptor;
    if (fd === undefined) throw new NetlinkError('netns of handle', 'EBADF', 9, 'netlink handle is closed');
    return sys().socketNetns(fd);
  }

  close(): void {
    this.sock.close();
  }
}

/**
 * Opens an rtnetlink handle acting in the namespace at `nsPath` (default: the caller's own).
 * Synchronous apart from its requests; remember to close() it (an idle handle does not keep the
 * process alive, but holds a file descriptor).
 */
export function openRtnl(nsPath?: string, o: RtnlOptions = {}): Rtnl {
  const sock =
    nsPath === undefined ? new NlSocket(o.timeoutMs) : inNetns(nsPath, () => new NlSocket(o.timeoutMs));
  return new Rtnl(sock, nsPath);
}

/** A handle acting in the namespace open as `nsFd` (see openNetns); needs CAP_SYS_ADMIN (setns). */
export function openRtnlInFd(nsFd: number, label: string, o: RtnlOptions = {}): Rtnl {
  return new Rtnl(
    inNetnsFd(nsFd, () => new NlSocket(o.timeoutMs), label),
    label,
  );
}

/**
 * A handle over a NETLINK_ROUTE socket another process created (and passed over SCM_RIGHTS): it acts
 * in whatever namespace that socket was made in, with no setns and so no CAP_SYS_ADMIN. Takes
 * ownership of `socketFd`; throws (code EPROTOTYPE / ENOTSOCK) when it is not such a socket.
 */
export function adoptRtnl(socketFd: number, label: string, o: RtnlOptions = {}): Rtnl {
  return new Rtnl(new NlSocket(o.timeoutMs, socketFd), label);
}
