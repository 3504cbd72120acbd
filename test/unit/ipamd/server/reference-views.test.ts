// The introspection documents in the AWS VPC CNI v1.23's JSON shapes (pkg/ipamd/introspect.go,
// datastore.ENIInfos, networkutils/ipamd GetConfigForDebug), built from a real datastore and config.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../../ipamd/config.js';
import { Datastore } from '../../../../ipamd/datastore/datastore.js';
import {
  ipamdEnvSettings,
  networkutilsEnvSettings,
  referenceEnis,
} from '../../../../ipamd/server/reference-views.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function pool() {
  const now = { t: T0 };
  const ds = new Datastore(30_000, () => now.t);
  const base = { subnetCidr: '10.0.0.0/16', attachmentId: null, mac: '0a:00:00:00:00:01' };
  ds.addEni({
    ...base,
    id: 'eni-0',
    deviceNumber: 0,
    subnetId: 'subnet-a',
    primaryIp: '10.0.1.10',
    isPrimary: true,
    forPods: true,
  });
  ds.addIps('eni-0', ['10.0.1.11', '10.0.1.12']);
  ds.addEni({
    ...base,
    id: 'eni-1',
    deviceNumber: 1,
    subnetId: 'subnet-b',
    primaryIp: '10.0.2.10',
    isPrimary: false,
    forPods: true,
  });
  ds.addPrefixes('eni-1', ['10.0.2.32/28']);
  return { ds, now };
}

describe('the reference introspection shapes', () => {
  it('/v1/enis: per network card, per ENI, per CIDR, the addresses in use or cooling, ids blanked', () => {
    const { ds, now } = pool();
    const a = ds.assign({
      network: 'aws-cni',
      containerId: 'c1',
      ifName: 'eth0',
      podNamespace: 'default',
      podName: 'web',
    })!;
    const b = ds.assign({ network: 'aws-cni', containerId: 'c2', ifName: 'eth0' })!;
    now.t += 5_000;
    ds.release({ network: 'aws-cni', containerId: 'c2', ifName: 'eth0' });
    const doc = referenceEnis(ds, { cooldownMs: 30_000 });
    expect(Object.keys(doc)).toEqual(['0']);
    expect(doc['0'].TotalIPs).toBe(2 + 16);
    expect(doc['0'].AssignedIPs).toBe(1);
    const eni0 = doc['0'].ENIs['eni-0'] as Record<string, unknown>;
    expect(Object.keys(eni0)).toEqual([
      'ID',
      'IsPrimary',
      'IsTrunk',
      'IsEFA',
      'DeviceNumber',
      'AvailableIPv4Cidrs',
      'IPv6Cidrs',
      'IsExcludedForPodIPs',
      'RouteTableID',
      'SubnetID',
    ]);
    expect(eni0).toMatchObject({
      ID: 'eni-0',
      IsPrimary: true,
      DeviceNumber: 0,
      RouteTableID: 254,
      SubnetID: 'subnet-a',
    });
    const cidrs = eni0.AvailableIPv4Cidrs as Record<string, Record<string, unknown>>;
    expect(Object.keys(cidrs).sort()).toEqual(['10.0.1.11/32', '10.0.1.12/32']);
    const mine = cidrs[`${a.address}/32`]!;
    expect(mine.Cidr).toEqual({ IP: a.address, Mask: '/////w==' }); // Go's IPMask: base64 bytes
    expect(mine.IsPrefix).toBe(false);
    expect(mine.IPAddresses).toEqual({
      [a.address]: {
        Address: a.address,
        IPAMKey: { networkName: 'aws-cni', containerID: '', ifName: '' },
        IPAMMetadata: { k8sPodNamespace: 'default', k8sPodName: 'web' },
        AssignedTime: expect.stringMatching(/^2026-01-01T00:00:00/),
        UnassignedTime: '0001-01-01T00:00:00Z',
      },
    });
    // The released one is listed cooling, with when it was released.
    const released = cidrs[`${b.address}/32`]!.IPAddresses as Record<string, Record<string, unknown>>;
    expect(released[b.address]!.UnassignedTime).toBe('2026-01-01T00:00:05.000Z');
    const eni1 = doc['0'].ENIs['eni-1'] as Record<string, unknown>;
    expect(eni1.RouteTableID).toBe(2);
    const prefix = (eni1.AvailableIPv4Cidrs as Record<string, Record<string, unknown>>)['10.0.2.32/28']!;
    expect(prefix.Cidr).toEqual({ IP: '10.0.2.32', Mask: '////8A==' });
    expect(prefix.IsPrefix).toBe(true);
    expect(prefix.IPAddresses).toEqual({});
  });

  it('/v1/networkutils-env-settings and /v1/ipamd-env-settings: the reference keys and value types', () => {
    const cfg = loadConfig({
      AWS_VPC_K8S_CNI_CONNMARK: '0x100',
      AWS_VPC_K8S_CNI_RANDOMIZESNAT: 'hashrandom',
      AWS_EXTERNAL_SERVICE_CIDRS: '192.0.2.0/24',
      WARM_IP_TARGET: '3',
      AWS_MANAGE_ENIS_NON_SCHEDULABLE: 'true',
    });
    expect(networkutilsEnvSettings(cfg)).toEqual({
      AWS_VPC_K8S_CNI_CONNMARK: 256,
      AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS: null,
      AWS_VPC_K8S_CNI_EXTERNALSNAT: false,
      AWS_EXTERNAL_SERVICE_CIDRS: ['192.0.2.0/24'],
      AWS_VPC_ENI_MTU: 9001,
      AWS_VPC_K8S_CNI_VETHPREFIX: 'eni',
      AWS_VPC_CNI_NODE_PORT_SUPPORT: true,
      AWS_VPC_K8S_CNI_RANDOMIZESNAT: 1,
    });
    expect(ipamdEnvSettings(cfg)).toEqual({
      WARM_IP_TARGET: 3,
      WARM_ENI_TARGET: 1,
      AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: false,
      AWS_MANAGE_ENIS_NON_SCHEDULABLE: true,
      ENABLE_SUBNET_DISCOVERY: true,
    });
  });
});
