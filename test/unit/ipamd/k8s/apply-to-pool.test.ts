// How a followed cluster change reaches the pool (the setters daemon.ts calls): a new ENIConfig
// subnet for the next ENI, new ENIs held while the named ENIConfig is missing, a changed max pods.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Ec2Api } from '../../../../ipamd/aws/ec2.js';
import { Datastore } from '../../../../ipamd/datastore/datastore.js';
import type { PoolExecutor } from '../../../../ipamd/pool/executor.js';
import { PoolManager } from '../../../../ipamd/pool/manager.js';
import { plan } from '../../../../ipamd/pool/planner.js';
import { SubnetPicker } from '../../../../ipamd/pool/subnets.js';

const A = { subnetId: 'subnet-0aaa0001', securityGroups: ['sg-0aaa0001'] };
const B = { subnetId: 'subnet-0bbb0002', securityGroups: ['sg-0bbb0002'] };

function capture() {
  const lines: Record<string, unknown>[] = [];
  return { log: pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) }), lines };
}

function picker(log = capture().log) {
  return new SubnetPicker({
    primary: { subnetId: 'subnet-0fff0000', securityGroups: ['sg-0fff0000'] },
    customSubnet: A,
    // Discovery is off under custom networking: EC2 is never asked.
    discovery: { vpcId: 'vpc-01', availabilityZone: 'us-west-2a' },
    ec2: {
      describeSubnets: () => {
        throw new Error('no DescribeSubnets under custom networking');
      },
    } as unknown as Ec2Api,
    log,
  });
}

/** A custom-networking node: the primary ENI serves no pods; eni-1 (subnet A) holds `ips` addresses. */
function pool(ips: number, maxPods: number, subnets: SubnetPicker) {
  const ds = new Datastore(0);
  const eni = (id: string, deviceNumber: number, subnetId: string, forPods: boolean) => ({
    id,
    mac: `02:00:00:00:00:0${deviceNumber}`,
    deviceNumber,
    subnetId,
    subnetCidr: '10.0.1.0/24',
    primaryIp: `10.0.1.${10 + deviceNumber}`,
    attachmentId: null,
    isPrimary: deviceNumber === 0,
    forPods,
  });
  ds.addEni(eni('eni-0', 0, 'subnet-0fff0000', false));
  ds.addEni(eni('eni-1', 1, A.subnetId, true));
  ds.addIps(
    'eni-1',
    Array.from({ length: ips }, (_, i) => `10.0.1.${100 + i}`),
  );
  // One pod: a whole ENI's worth of free addresses (WARM_ENI_TARGET=1) is then missing.
  ds.assign({ containerId: 'pod-1', ifName: 'eth0', network: 'aws-cni' });
  return new PoolManager({
    ds,
    executor: {} as PoolExecutor,
    subnets,
    log: capture().log,
    mode: 'ip',
    targets: { warmEni: 1, warmIp: 0, minIp: 0, warmPrefix: 0 },
    limits: { maxEnis: 3, slotsPerEni: 9, maxPods },
    shrinkIntervalMs: 30_000,
    disableProvisioning: false,
    unmanagedDeviceNumbers: () => [],
  });
}

describe('cluster changes applied to the pool', () => {
  it('sends the next ENI to a changed ENIConfig subnet, with its groups', async () => {
    const { log, lines } = capture();
    const p = picker(log);
    expect(p.pick()).toEqual(A);
    p.setCustomSubnet(B);
    expect(p.pick()).toEqual(B);
    expect(lines.find((l) => l.msg === 'new ENIs go to a changed subnet / security groups')).toMatchObject({
      from: A,
      to: B,
    });
    // The same settings again change nothing and log nothing.
    p.setCustomSubnet({ ...B, securityGroups: [...B.securityGroups] });
    expect(lines.filter((l) => String(l.msg).startsWith('new ENIs go'))).toHaveLength(1);
    await p.refresh(true);
    expect(p.pick()).toEqual(B);
  });

  it('holds new ENIs with the reason, and lets existing ENIs keep growing', () => {
    const p = picker();
    // eni-1 full (9 of 9): the pool wants a new ENI.
    const full = pool(9, 110, p);
    expect(plan(full.snapshot()).kind).toBe('create-enis');
    p.hold("ENIConfig 'pods-c' not found");
    expect(p.pick()).toBeNull();
    expect(plan(full.snapshot())).toMatchObject({
      kind: 'blocked',
      reason: "ENIConfig 'pods-c' not found",
      permanent: false,
    });
    // An ENI with room still gets addresses while new ENIs are held.
    expect(plan(pool(3, 110, p).snapshot()).kind).toBe('assign');
    p.hold(null);
    expect(plan(full.snapshot()).kind).toBe('create-enis');
    expect(p.pick()).toEqual(A);
  });

  it('grows again when max pods is raised', () => {
    const m = pool(3, 3, picker());
    expect(plan(m.snapshot())).toMatchObject({ kind: 'blocked', reason: 'node at max pods (3)' });
    m.setLimits({ ...m.limits, maxPods: 20 });
    expect(m.limits.maxPods).toBe(20);
    expect(plan(m.snapshot())).toMatchObject({ kind: 'assign', eniId: 'eni-1' });
  });
});
