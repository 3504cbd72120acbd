import { describe, expect, it } from 'vitest';
import {
  checkTable,
  ec2CallsTable,
  ec2ErrorLines,
  eniTable,
  placementTable,
  renderTable,
} from '../../../infra/local-vpc/demo/report.js';
import { CallLog } from '../../../infra/local-vpc/ec2/call-log.js';

describe('renderTable', () => {
  it('pads columns to the widest cell and rules the header', () => {
    expect(
      renderTable(
        ['A', 'LONGER'],
        [
          ['xyz', '1'],
          ['q', '22'],
        ],
      ),
    ).toBe(['A    LONGER', '---  ------', 'xyz  1', 'q    22'].join('\n'));
  });
});

describe('placementTable', () => {
  it('groups by node, then device, then address in numeric order', () => {
    const row = (node: string, device: number, address: string, pod: string) => ({
      instance: `i-${node}`,
      eni: `eni-${node}${device}`,
      device,
      address,
      pod,
      node,
    });
    const out = placementTable([
      row('b', 0, '10.0.2.5', 'p4'),
      row('a', 1, '10.0.1.20', 'p3'),
      row('a', 0, '10.0.1.10', 'p2'),
      row('a', 0, '10.0.1.9', 'p1'),
    ]);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^INSTANCE\s+ENI\s+DEVICE\s+ADDRESS\s+POD\s+NODE$/);
    expect(lines.slice(2).map((l) => l.split(/\s+/).find((c) => /^p\d$/.test(c)))).toEqual([
      'p1',
      'p2',
      'p3',
      'p4',
    ]);
    expect(lines[2]).toContain('eth0 (primary)');
    expect(lines[4]).toMatch(/eth1\s/);
  });
});

describe('eniTable', () => {
  it('shows warm addresses as assigned minus used', () => {
    const out = eniTable([
      {
        instance: 'i-1',
        eni: 'eni-1',
        device: 1,
        subnet: '10.0.1.0/24',
        primaryIp: '10.0.1.14',
        secondary: 9,
        used: 2,
      },
    ]);
    expect(out.split('\n')[2]!.trim().split(/\s+/)).toEqual([
      'i-1',
      'eni-1',
      'eth1',
      '10.0.1.0/24',
      '10.0.1.14',
      '9',
      '2',
      '7',
    ]);
  });
});

describe('checkTable', () => {
  it('marks failures and checks that did not run', () => {
    const out = checkTable([
      {
        pod: 'demo-01',
        address: '10.0.1.5',
        node: 'node-1',
        device: 0,
        results: {
          'same-node': { ok: true, text: 'demo-03' },
          'cross-node': { ok: false, text: 'demo-02 (no reply)' },
        },
      },
    ]);
    const row = out.split('\n')[2]!;
    expect(row).toContain('ok   demo-03');
    expect(row).toContain('FAIL demo-02 (no reply)');
    expect(row).toMatch(/n\/a$/);
  });
});

describe('EC2 call report', () => {
  const log = new CallLog();
  const rec = (action: string, caller: string, errorCode?: string) =>
    log.record({
      time: 0,
      action,
      caller,
      httpStatus: errorCode ? 400 : 200,
      durationMs: 1,
      ...(errorCode ? { errorCode } : {}),
    });
  rec('CreateNetworkInterface', 'AKIDi-1');
  rec('AttachNetworkInterface', 'AKIDi-1');
  rec('AttachNetworkInterface', 'AKIDi-2', 'AttachmentLimitExceeded');
  rec('AttachNetworkInterface', 'AKIDi-2', 'AttachmentLimitExceeded');
  rec('DescribeSubnets', 'AKIDi-2', 'RequestLimitExceeded');

  it('counts calls per action and per node, most frequent first, with a total', () => {
    const lines = ec2CallsTable(
      log.summary(),
      new Map([
        ['AKIDi-1', 'node-1'],
        ['AKIDi-2', 'node-2'],
      ]),
    ).split('\n');
    expect(lines[0]!.split(/\s{2,}/)).toEqual([
      'EC2 ACTION',
      'CALLS',
      'node-1',
      'node-2',
      'ERRORS',
      'THROTTLED',
    ]);
    expect(lines[2]!.split(/\s+/)).toEqual(['AttachNetworkInterface', '3', '1', '2', '2', '0']);
    expect(lines.at(-1)!.split(/\s+/)).toEqual(['total', '5', '2', '3', '3', '1']);
  });

  it('lists error codes per action', () => {
    expect(ec2ErrorLines(log.entries())).toEqual([
      'AttachNetworkInterface: AttachmentLimitExceeded x2',
      'DescribeSubnets: RequestLimitExceeded x1',
    ]);
  });
});
