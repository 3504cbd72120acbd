import { describe, expect, it } from 'vitest';
import { Datastore, type EniInfo } from '../../../../ipamd/datastore/datastore.js';

function eni(id: string, deviceNumber: number, over: Partial<EniInfo> = {}): EniInfo {
  return {
    id,
    mac: `0a:00:00:00:00:0${deviceNumber}`,
    deviceNumber,
    subnetId: 'subnet-1',
    subnetCidr: '10.0.0.0/16',
    primaryIp: `10.0.${deviceNumber}.1`,
    attachmentId: deviceNumber === 0 ? null : `eni-attach-${deviceNumber}`,
    isPrimary: deviceNumber === 0,
    forPods: true,
    ...over,
  };
}

const pod = (c: string, extra: object = {}) => ({
  network: 'aws-cni',
  containerId: c,
  ifName: 'eth0',
  ...extra,
});

function store(now = { t: 1_000_000 }) {
  const ds = new Datastore(30_000, () => now.t);
  ds.addEni(eni('eni-0', 0));
  ds.addIps('eni-0', ['10.0.0.2', '10.0.0.3', '10.0.0.4']);
  return { ds, now };
}

describe('Datastore', () => {
  it('never hands out an ENI primary address', () => {
    const ds = new Datastore(0);
    ds.addEni(eni('eni-0', 0, { primaryIp: '10.0.0.1' }));
    ds.addIps('eni-0', ['10.0.0.1', '10.0.0.2']);
    expect(ds.stats().total).toBe(1);
    expect(ds.assign(pod('a'))!.address).toBe('10.0.0.2');
  });

  it('assigns idempotently by (network, containerId, ifName) and records the pod', () => {
    const { ds } = store();
    const a = ds.assign(pod('a', { podNamespace: 'default', podName: 'web-1' }))!;
    const again = ds.assign(pod('a'))!;
    expect(again).toMatchObject({ address: a.address, fresh: false });
    const other = ds.assign({ ...pod('a'), ifName: 'eth1' })!;
    expect(other.address).not.toBe(a.address);
    expect(ds.lookup(pod('a'))!.assignment).toMatchObject({ podNamespace: 'default', podName: 'web-1' });
    expect(ds.stats()).toEqual({ total: 3, assigned: 2, cooling: 0, ready: 1 });
  });

  it('returns null when nothing is ready and treats unknown releases as done', () => {
    const { ds } = store();
    ds.assign(pod('a'));
    ds.assign(pod('b'));
    ds.assign(pod('c'));
    expect(ds.assign(pod('d'))).toBeNull();
    expect(ds.release(pod('zzz'))).toBeNull();
  });

  it('keeps a released address out of use until IP_COOLDOWN_PERIOD has passed', () => {
    const { ds, now } = store();
    ds.addEni(eni('eni-1', 1));
    const a = ds.assign(pod('a'))!;
    ds.assign(pod('b'));
    ds.assign(pod('c'));
    expect(ds.release(pod('a'))!.address).toBe(a.address);
    expect(ds.stats()).toMatchObject({ cooling: 1, ready: 0 });
    expect(ds.assign(pod('d'))).toBeNull();
    now.t += 30_001;
    expect(ds.assign(pod('d'))!.address).toBe(a.address);
  });

  it('packs pods onto the busiest ENI so free ENIs stay whole', () => {
    const ds = new Datastore(0);
    ds.addEni(eni('eni-0', 0));
    ds.addEni(eni('eni-1', 1));
    ds.addIps('eni-0', ['10.0.0.2', '10.0.0.3']);
    ds.addIps('eni-1', ['10.0.1.2', '10.0.1.3']);
    const first = ds.assign(pod('a'))!;
    const second = ds.assign(pod('b'))!;
    expect(second.eni.id).toBe(first.eni.id);
  });

  it('expands /28 prefixes into 16 addresses and removes only wholly free prefixes', () => {
    const ds = new Datastore(0);
    ds.addEni(eni('eni-1', 1));
    ds.addPrefixes('eni-1', ['10.0.16.0/28', '10.0.16.16/28']);
    expect(ds.stats().total).toBe(32);
    const a = ds.assign(pod('a'))!;
    const b = ds.assign(pod('b'))!;
    // Both land in the same prefix (packing), so the other prefix is free.
    expect(a.address.split('.')[3]! < '16' === b.address.split('.')[3]! < '16').toBe(true);
    const free = ds.freePrefixes('eni-1');
    expect(free).toHaveLength(1);
    expect(ds.removePrefixes('eni-1', ['10.0.16.0/28', '10.0.16.16/28']).kept).toHaveLength(1);
    expect(ds.stats().total).toBe(16);
  });

  it('never removes an assigned address or an ENI with assignments', () => {
    const { ds } = store();
    const a = ds.assign(pod('a'))!;
    const r = ds.removeIps('eni-0', ['10.0.0.2', '10.0.0.3', '10.0.0.4']);
    expect(r.kept).toEqual([a.address]);
    expect(ds.removeEni('eni-0')).toBe(false);
    ds.release(pod('a'));
    expect(ds.removeEni('eni-0')).toBe(true);
    expect(ds.allEnis()).toHaveLength(0);
  });

  it('gc releases what the runtime no longer knows, only in that network', () => {
    const { ds } = store();
    ds.assign(pod('a'));
    ds.assign(pod('b'));
    ds.assign({ network: 'other', containerId: 'c', ifName: 'eth0' });
    const released = ds.gc('aws-cni', [{ containerId: 'a', ifName: 'eth0' }]);
    expect(released.map((r) => r.assignment.containerId)).toEqual(['b']);
    expect(ds.stats().assigned).toBe(2);
  });

  it('the primary ENI under custom networking holds no pod addresses', () => {
    const ds = new Datastore(0);
    ds.addEni(eni('eni-0', 0, { forPods: false }));
    ds.addIps('eni-0', ['10.0.0.2']);
    expect(ds.stats().total).toBe(0);
    expect(ds.getEni('eni-0')!.secondaryIps.size).toBe(1);
  });
});

describe('Datastore: what EC2 does not (yet) show', () => {
  it('an unconfirmed ENI keeps its assignments but hands out none of its free addresses until confirmed', () => {
    const ds = new Datastore(0);
    ds.addEni(eni('eni-1', 1), { unconfirmed: true });
    ds.addIps('eni-1', ['10.0.1.2', '10.0.1.3', '10.0.1.4']);
    expect(ds.assign(pod('replayed'), '10.0.1.2')?.address).toBe('10.0.1.2');
    expect(ds.stats()).toEqual({ total: 1, assigned: 1, cooling: 0, ready: 0 });
    expect(ds.assign(pod('new'))).toBeNull();
    expect(ds.freeIps('eni-1')).toEqual([]);
    ds.confirmEni('eni-1', { attachmentId: 'eni-attach-9' });
    expect(ds.getEni('eni-1')).toMatchObject({ unconfirmed: false, attachmentId: 'eni-attach-9' });
    expect(ds.assign(pod('new'))?.address).toMatch(/^10\.0\.1\.[34]$/);
    ds.suspendEni('eni-1');
    expect(ds.assign(pod('newer'))).toBeNull();
  });

  it('forget: free addresses leave, a held one stays with its pod and leaves at its own release', () => {
    const { ds, now } = store();
    const a = ds.assign(pod('a'))!;
    const r = ds.forget('eni-0', { ips: ['10.0.0.2', '10.0.0.3', '10.0.0.4'] });
    expect(r.held).toEqual([a.address]);
    expect(r.removed).toHaveLength(2);
    expect(ds.getEni('eni-0')!.secondaryIps.size).toBe(0);
    expect(ds.lookup(pod('a'))?.address).toBe(a.address);
    expect(ds.assign(pod('b'))).toBeNull();
    expect(ds.release(pod('a'))?.address).toBe(a.address);
    expect(ds.hasAddress(a.address)).toBe(false);
    // Its cooldown survives: should EC2 give the address back, it is not handed out early.
    ds.addIps('eni-0', [a.address]);
    expect(ds.assign(pod('c'))).toBeNull();
    now.t += 30_001;
    expect(ds.assign(pod('c'))?.address).toBe(a.address);
  });

  it('a cooldown set for an address not in the pool (yet) applies when it appears', () => {
    const { ds, now } = store();
    ds.setCooldown('10.0.0.9', now.t + 10_000);
    expect(ds.cooldowns()).toEqual([{ address: '10.0.0.9', until: now.t + 10_000 }]);
    ds.addIps('eni-0', ['10.0.0.9']);
    expect(ds.stats()).toMatchObject({ cooling: 1 });
    now.t += 10_001;
    expect(ds.cooldowns()).toEqual([]);
  });

  it('hold: a replayed assignment whose address the ENI does not show is the pod only', () => {
    const { ds } = store();
    const meta = { ...pod('p'), assignedAt: '2026-01-01T00:00:00.000Z' };
    expect(ds.hold('eni-9', '10.0.0.50', meta)).toBe(false);
    expect(ds.hold('eni-0', '10.0.0.2', meta)).toBe(false);
    expect(ds.hold('eni-0', '10.0.0.50', meta)).toBe(true);
    expect(ds.hold('eni-0', '10.0.0.51', meta)).toBe(false);
    expect(ds.assign(pod('p'))).toMatchObject({ address: '10.0.0.50', fresh: false });
    expect(ds.stats()).toEqual({ total: 4, assigned: 1, cooling: 0, ready: 3 });
    expect(ds.getEni('eni-0')!.secondaryIps.has('10.0.0.50')).toBe(false);
  });
});
