import { describe, expect, it } from 'vitest';
import { AddressPool } from '../../../infra/local-vpc/ec2/address-pool.js';
import { Ec2Error } from '../../../infra/local-vpc/ec2/errors.js';
import { parseCidr } from '../../../infra/local-vpc/ec2/ipv4.js';
import { Ec2State } from '../../../infra/local-vpc/ec2/state.js';

function world(subnetCidr = '10.0.1.0/24') {
  const state = new Ec2State();
  const vpc = state.createVpc({ cidr: '10.0.0.0/16' });
  const subnet = state.createSubnet({ vpcId: vpc.id, cidr: subnetCidr, az: 'us-west-2a' });
  return { state, vpc, subnet };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof Ec2Error) return `${e.code}: ${e.message}`;
    throw e;
  }
  throw new Error('expected an Ec2Error');
}

describe('AddressPool', () => {
  it('reserves the first four and the last address of a subnet', () => {
    const pool = new AddressPool(parseCidr('10.0.1.0/28'));
    expect(pool.available).toBe(11);
    const got = pool.takeAny(11)!;
    expect(got[0]).toBe(parseCidr('10.0.1.4/32').base);
    expect(got.at(-1)).toBe(parseCidr('10.0.1.14/32').base);
    expect(pool.takeAny(1)).toBeUndefined();
  });

  it('hands out only aligned, fully free /28 prefixes', () => {
    const pool = new AddressPool(parseCidr('10.0.1.0/26')); // 4 blocks; first and last hold reserved addresses
    expect(pool.takeAnyPrefixes(3)).toBeUndefined();
    const two = pool.takeAnyPrefixes(2)!;
    expect(two).toEqual([parseCidr('10.0.1.16/28').base, parseCidr('10.0.1.32/28').base]);
    expect(pool.available).toBe(64 - 5 - 32);
    pool.releasePrefix(two[0]!);
    expect(pool.isPrefixFree(two[0]!)).toBe(true);
  });
});

describe('Ec2State fixtures', () => {
  it('validates VPC and subnet CIDRs', () => {
    const state = new Ec2State();
    expect(codeOf(() => state.createVpc({ cidr: '10.0.0.1/16' }))).toMatch(
      /^InvalidParameterValue: .*host bits/,
    );
    const vpc = state.createVpc({ cidr: '10.0.0.0/16' });
    expect(codeOf(() => state.createSubnet({ vpcId: vpc.id, cidr: '10.1.0.0/24' }))).toMatch(
      /^InvalidSubnet.Range/,
    );
    state.createSubnet({ vpcId: vpc.id, cidr: '10.0.0.0/24' });
    expect(codeOf(() => state.createSubnet({ vpcId: vpc.id, cidr: '10.0.0.128/25' }))).toMatch(
      /^InvalidSubnet.Conflict/,
    );
    expect(codeOf(() => state.createSubnet({ vpcId: 'vpc-0000000000000000a', cidr: '10.0.2.0/24' }))).toMatch(
      /^InvalidVpcID.NotFound/,
    );
  });

  it('launches an instance with its primary ENI at device 0 on card 0 and emits the contract events', () => {
    const { state, subnet } = world();
    const events: [string, unknown][] = [];
    for (const name of ['instance-launched', 'eni-attached']) state.on(name, (e) => events.push([name, e]));
    const i = state.runInstance({ instanceType: 'm5.large', subnetId: subnet.id });
    const eni = state.getEni(i.primaryEniId)!;
    expect(eni.attachment).toMatchObject({
      instanceId: i.id,
      deviceIndex: 0,
      networkCardIndex: 0,
      deleteOnTermination: true,
    });
    expect(eni.status).toBe('in-use');
    expect(eni.privateIps).toEqual([{ address: '10.0.1.4', primary: true }]);
    expect(eni.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect(Number.parseInt(eni.mac.slice(0, 2), 16) & 0b11).toBe(0b10); // locally administered unicast
    expect(events).toEqual([
      ['instance-launched', { instanceId: i.id }],
      [
        'eni-attached',
        {
          eniId: eni.id,
          instanceId: i.id,
          deviceIndex: 0,
          networkCardIndex: 0,
          mac: eni.mac,
          subnetId: subnet.id,
        },
      ],
    ]);
    expect(state.instanceByAddress('10.0.1.4')?.id).toBe(i.id);
  });

  it('rejects unknown instance types', () => {
    const { state, subnet } = world();
    expect(codeOf(() => state.runInstance({ instanceType: 'm5.huge', subnetId: subnet.id }))).toMatch(
      /^InvalidParameterValue/,
    );
  });

  it('gives every ENI a distinct MAC and id', () => {
    const { state, subnet } = world('10.0.0.0/20');
    const enis = Array.from({ length: 200 }, () => state.createNetworkInterface({ subnetId: subnet.id }));
    expect(new Set(enis.map((e) => e.mac)).size).toBe(200);
    expect(new Set(enis.map((e) => e.id)).size).toBe(200);
  });
});

describe('Ec2State ENI limits', () => {
  it('enforces ENIs per network card with AttachmentLimitExceeded', () => {
    const { state, subnet } = world();
    const i = state.runInstance({ instanceType: 't3.medium', subnetId: subnet.id }); // 3 ENIs
    for (const idx of [1, 2]) {
      const e = state.createNetworkInterface({ subnetId: subnet.id });
      state.attachNetworkInterface({ eniId: e.id, instanceId: i.id, deviceIndex: idx });
    }
    const extra = state.createNetworkInterface({ subnetId: subnet.id });
    expect(
      codeOf(() => state.attachNetworkInterface({ eniId: extra.id, instanceId: i.id, deviceIndex: 3 })),
    ).toBe('AttachmentLimitExceeded: Interface count 4 exceeds the limit for t3.medium');
  });

  it('counts ENIs per card separately on multi-card types', () => {
    const { state, subnet } = world('10.0.0.0/20');
    const i = state.runInstance({ instanceType: 'c6in.32xlarge', subnetId: subnet.id }); // 2 cards x 8
    for (let d = 1; d < 8; d++) {
      const e = state.createNetworkInterface({ subnetId: subnet.id });
      state.attachNetworkInterface({ eniId: e.id, instanceId: i.id, deviceIndex: d, networkCardIndex: 0 });
    }
    const onCard1 = state.createNetworkInterface({ subnetId: subnet.id });
    const r = state.attachNetworkInterface({
      eniId: onCard1.id,
      instanceId: i.id,
      deviceIndex: 1,
      networkCardIndex: 1,
    });
    expect(r.networkCardIndex).toBe(1);
    const ninth = state.createNetworkInterface({ subnetId: subnet.id });
    expect(
      codeOf(() =>
        state.attachNetworkInterface({
          eniId: ninth.id,
          instanceId: i.id,
          deviceIndex: 8,
          networkCardIndex: 0,
        }),
      ),
    ).toMatch(/^AttachmentLimitExceeded/);
    expect(
      codeOf(() =>
        state.attachNetworkInterface({
          eniId: ninth.id,
          instanceId: i.id,
          deviceIndex: 2,
          networkCardIndex: 2,
        }),
      ),
    ).toMatch(/^InvalidParameterValue: Network card index 2/);
  });

  it('rejects a device index already in use', () => {
    const { state, subnet } = world();
    const i = state.runInstance({ instanceType: 'm5.large', subnetId: subnet.id });
    const e = state.createNetworkInterface({ subnetId: subnet.id });
    expect(
      codeOf(() => state.attachNetworkInterface({ eniId: e.id, instanceId: i.id, deviceIndex: 0 })),
    ).toBe(
      `InvalidParameterValue: Instance '${i.id}' already has an interface attached at device index '0'.`,
    );
  });

  it('shares address slots between secondary IPs and prefixes (PrivateIpAddressLimitExceeded)', () => {
    const { state, subnet } = world('10.0.0.0/20');
    const i = state.runInstance({ instanceType: 'm5.large', subnetId: subnet.id }); // 10 per ENI
    const eni = i.primaryEniId;
    state.assignPrivateIpAddresses({ eniId: eni, count: 5 });
    state.assignPrivateIpAddresses({ eniId: eni, prefixCount: 4 });
    expect(state.getEni(eni)!.privateIps.length + state.getEni(eni)!.prefixes.length).toBe(10);
    expect(codeOf(() => state.assignPrivateIpAddresses({ eniId: eni, prefixCount: 1 }))).toBe(
      'PrivateIpAddressLimitExceeded: Number of private addresses will exceed limit.',
    );
    expect(codeOf(() => state.assignPrivateIpAddresses({ eniId: eni, count: 1 }))).toMatch(
      /^PrivateIpAddressLimitExceeded/,
    );
  });

  it('refuses prefixes on non-Nitro instances', () => {
    const { state, subnet } = world();
    const i = state.runInstance({ instanceType: 'c4.large', subnetId: subnet.id });
    expect(codeOf(() => state.assignPrivateIpAddresses({ eniId: i.primaryEniId, prefixCount: 1 }))).toMatch(
      /^InvalidParameterValue: Prefix delegation is not supported for instance type c4.large/,
    );
    const withPrefix = state.createNetworkInterface({ subnetId: subnet.id, prefixCount: 1 });
    expect(
      codeOf(() => state.attachNetworkInterface({ eniId: withPrefix.id, instanceId: i.id, deviceIndex: 1 })),
    ).toMatch(/not supported for instance type c4.large/);
  });

  it('never detaches the primary ENI, and refuses to delete an attached ENI', () => {
    const { state, subnet } = world();
    const i = state.runInstance({ instanceType: 'm5.large', subnetId: subnet.id });
    const primary = state.getEni(i.primaryEniId)!;
    expect(codeOf(() => state.detachNetworkInterface(primary.attachment!.attachmentId))).toMatch(
      /^OperationNotPermitted/,
    );
    expect(codeOf(() => state.deleteNetworkInterface(primary.id))).toBe(
      `InvalidParameterValue: Network interface '${primary.id}' is currently in use.`,
    );
  });
});

describe('Ec2State subnet addresses', () => {
  it('reports exhaustion with the create and the assign wording', () => {
    const { state, subnet } = world('10.0.1.0/28'); // 11 usable
    const eni = state.createNetworkInterface({ subnetId: subnet.id, secondaryCount: 9 });
    expect(state.subnetAvailable(subnet.id)).toBe(1);
    expect(codeOf(() => state.createNetworkInterface({ subnetId: subnet.id, secondaryCount: 1 }))).toBe(
      'InsufficientFreeAddressesInSubnet: The specified subnet does not have enough free addresses to satisfy the request.',
    );
    // the failed create took nothing
    expect(state.subnetAvailable(subnet.id)).toBe(1);
    expect(codeOf(() => state.assignPrivateIpAddresses({ eniId: eni.id, count: 2 }))).toBe(
      "InvalidParameterValue: There aren't sufficient free Ipv4 addresses or prefixes",
    );
  });

  it('fails prefixes with InsufficientCidrBlocks in a fragmented subnet that still has many free addresses', () => {
    const { state, subnet } = world('10.0.1.0/24');
    const holder = state.createNetworkInterface({ subnetId: subnet.id });
    // one address in every /28 block: 16 blocks, 225 free single addresses left and no free /28
    const spread = Array.from({ length: 16 }, (_, b) => `10.0.1.${b * 16 + 8}`);
    for (let k = 0; k < spread.length; k += 8) {
      state.assignPrivateIpAddresses({ eniId: holder.id, addresses: spread.slice(k, k + 8) });
    }
    expect(state.subnetAvailable(subnet.id)).toBeGreaterThan(200);
    const eni = state.createNetworkInterface({ subnetId: subnet.id });
    expect(codeOf(() => state.assignPrivateIpAddresses({ eniId: eni.id, prefixCount: 1 }))).toBe(
      'InsufficientCidrBlocks: The specified subnet does not have enough free cidr blocks to satisfy the request.',
    );
    state.unassignPrivateIpAddresses({ eniId: holder.id, addresses: ['10.0.1.40'] });
    expect(state.assignPrivateIpAddresses({ eniId: eni.id, prefixCount: 1 }).prefixes).toEqual([
      '10.0.1.32/28',
    ]);
  });

  it('rejects reserved, foreign and in-use explicit addresses', () => {
    const { state, subnet } = world();
    const a = state.createNetworkInterface({ subnetId: subnet.id, privateIpAddress: '10.0.1.50' });
    expect(codeOf(() => state.assignPrivateIpAddresses({ eniId: a.id, addresses: ['10.0.1.2'] }))).toMatch(
      /reserved/,
    );
    expect(codeOf(() => state.assignPrivateIpAddresses({ eniId: a.id, addresses: ['10.0.9.9'] }))).toMatch(
      /does not fall within the subnet/,
    );
    expect(
      codeOf(() => state.createNetworkInterface({ subnetId: subnet.id, privateIpAddress: '10.0.1.50' })),
    ).toBe('InvalidIPAddress.InUse: Address 10.0.1.50 is in use.');
  });

  it('moves a secondary address with allowReassignment and tells both ENIs', () => {
    const { state, subnet } = world();
    const a = state.createNetworkInterface({ subnetId: subnet.id });
    const b = state.createNetworkInterface({ subnetId: subnet.id });
    state.assignPrivateIpAddresses({ eniId: a.id, addresses: ['10.0.1.77'] });
    const changed: string[] = [];
    state.on('addresses-changed', (e: { eniId: string }) => changed.push(e.eniId));
    expect(codeOf(() => state.assignPrivateIpAddresses({ eniId: b.id, addresses: ['10.0.1.77'] }))).toMatch(
      /InUse/,
    );
    state.assignPrivateIpAddresses({ eniId: b.id, addresses: ['10.0.1.77'], allowReassignment: true });
    expect(state.findEniByAddress('10.0.1.77')?.id).toBe(b.id);
    expect(state.getEni(a.id)!.privateIps.map((p) => p.address)).not.toContain('10.0.1.77');
    expect(changed).toEqual([a.id, b.id]);
  });

  it('finds the ENI owning any member of a prefix', () => {
    const { state, subnet } = world();
    const e = state.createNetworkInterface({ subnetId: subnet.id, prefixes: ['10.0.1.96/28'] });
    expect(state.findEniByAddress('10.0.1.96')?.id).toBe(e.id);
    expect(state.findEniByAddress('10.0.1.111')?.id).toBe(e.id);
    expect(state.findEniByAddress('10.0.1.112')).toBeUndefined();
  });
});

describe('Ec2State termination', () => {
  it('deletes DeleteOnTermination ENIs and leaves the others available (leaked ENIs)', () => {
    const { state, subnet } = world();
    const i = state.runInstance({ instanceType: 'm5.large', subnetId: subnet.id });
    const kept = state.createNetworkInterface({ subnetId: subnet.id, secondaryCount: 2 });
    const gone = state.createNetworkInterface({ subnetId: subnet.id });
    state.attachNetworkInterface({ eniId: kept.id, instanceId: i.id, deviceIndex: 1 });
    const att = state.attachNetworkInterface({ eniId: gone.id, instanceId: i.id, deviceIndex: 2 });
    state.modifyNetworkInterface({
      eniId: gone.id,
      attachmentId: att.attachmentId,
      deleteOnTermination: true,
    });
    const events: string[] = [];
    state.on('eni-detached', (e: { eniId: string }) => events.push(`detached ${e.eniId}`));
    state.on('instance-terminated', (e: { instanceId: string }) => events.push(`terminated ${e.instanceId}`));
    const before = state.subnetAvailable(subnet.id);
    state.terminateInstance(i.id);
    expect(state.getInstance(i.id)!.state).toBe('terminated');
    expect(state.getEni(i.primaryEniId)).toBeUndefined();
    expect(state.getEni(gone.id)).toBeUndefined();
    expect(state.getEni(kept.id)).toMatchObject({ status: 'available', attachment: undefined });
    expect(state.subnetAvailable(subnet.id)).toBe(before + 2); // primary ENI's and `gone`'s address back
    expect(events).toEqual([
      `detached ${i.primaryEniId}`,
      `detached ${kept.id}`,
      `detached ${gone.id}`,
      `terminated ${i.id}`,
    ]);
    expect(
      codeOf(() => state.attachNetworkInterface({ eniId: kept.id, instanceId: i.id, deviceIndex: 1 })),
    ).toMatch(/^IncorrectInstanceState/);
  });
});

// AttachNetworkInterface returns before the attachment completes (the attachment's status is
// `attaching`, then `attached`; EC2 API Reference, NetworkInterfaceAttachment.Status).
describe('Ec2State attach delay', () => {
  it('keeps a new attachment attaching, out of the guest and IMDS view, until it completes', async () => {
    const { state, subnet } = world();
    state.setAttachDelay(60);
    const i = state.runInstance({ instanceType: 'm5.large', subnetId: subnet.id });
    const eni = state.createNetworkInterface({ subnetId: subnet.id });
    const attached: string[] = [];
    state.on('eni-attached', (e: { eniId: string }) => attached.push(e.eniId));
    state.attachNetworkInterface({ eniId: eni.id, instanceId: i.id, deviceIndex: 1 });
    expect(state.getEni(eni.id)).toMatchObject({ status: 'attaching', attachment: { status: 'attaching' } });
    expect(state.enisOfInstance(i.id).map((e) => e.id)).toContain(eni.id); // it holds its device index
    expect(state.visibleEnisOfInstance(i.id).map((e) => e.id)).not.toContain(eni.id);
    expect(attached).toEqual([]);
    await new Promise((r) => setTimeout(r, 120));
    expect(state.getEni(eni.id)).toMatchObject({ status: 'in-use', attachment: { status: 'attached' } });
    expect(state.visibleEnisOfInstance(i.id).map((e) => e.id)).toContain(eni.id);
    expect(attached).toEqual([eni.id]);
  });

  it('a detach while attaching ends the attach; dispose cancels pending ones', async () => {
    const { state, subnet } = world();
    state.setAttachDelay(60);
    const i = state.runInstance({ instanceType: 'm5.large', subnetId: subnet.id });
    const eni = state.createNetworkInterface({ subnetId: subnet.id });
    const attached: string[] = [];
    state.on('eni-attached', (e: { eniId: string }) => attached.push(e.eniId));
    const { attachmentId } = state.attachNetworkInterface({
      eniId: eni.id,
      instanceId: i.id,
      deviceIndex: 1,
    });
    state.detachNetworkInterface(attachmentId);
    const other = state.createNetworkInterface({ subnetId: subnet.id });
    state.attachNetworkInterface({ eniId: other.id, instanceId: i.id, deviceIndex: 2 });
    state.dispose();
    await new Promise((r) => setTimeout(r, 120));
    expect(state.getEni(eni.id)).toMatchObject({ status: 'available', attachment: undefined });
    expect(attached).toEqual([]);
  });
});
