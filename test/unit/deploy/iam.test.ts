import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allowedEc2Actions,
  asList,
  loadIpamdPolicy,
  type PolicyStatement,
} from '../../../infra/iam/policy.js';
import { type Ec2Sdk, loadEc2Sdk, scanEc2Actions, scanEc2ActionsInFiles } from '../../../infra/iam/scan.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
// ipamd's programs; every EC2 call ipamd can make is in a source file these bundle.
const ENTRY_POINTS = ['ipamd/main.ts', 'ipamd/probe.ts'];

/** The project's source files in ipamd's bundles (what esbuild would include), or all of ipamd/. */
async function ipamdSourceFiles(): Promise<string[]> {
  const entries = ENTRY_POINTS.filter((e) => existsSync(join(ROOT, e)));
  if (!entries.includes('ipamd/main.ts')) return scanDirFiles();
  const result = await build({
    entryPoints: entries.map((e) => join(ROOT, e)),
    bundle: true,
    write: false,
    metafile: true,
    outdir: join(tmpdir(), 'vpccni-iam-scan'),
    platform: 'node',
    format: 'esm',
    packages: 'external',
    external: ['*.node'],
    logLevel: 'silent',
  });
  return Object.keys(result.metafile.inputs)
    .map((f) => join(process.cwd(), f))
    .filter((f) => f.startsWith(ROOT) && /\.ts$/.test(f));
}

function scanDirFiles(): string[] {
  return [...scanEc2Actions(ROOT, ['ipamd'], sdk).values()].flat().map((f) => join(ROOT, f));
}

let sdk: Ec2Sdk;
beforeAll(async () => {
  sdk = await loadEc2Sdk();
});

const policy = loadIpamdPolicy();

function statementsGranting(action: string): PolicyStatement[] {
  return policy.Statement.filter((s) => s.Effect === 'Allow' && asList(s.Action).includes(`ec2:${action}`));
}

describe('ipamd IAM policy vs the code', () => {
  it('allows exactly the EC2 actions ipamd calls', async () => {
    const files = await ipamdSourceFiles();
    expect(files.some((f) => f.includes('/ipamd/'))).toBe(true);
    const used = scanEc2ActionsInFiles(ROOT, files, sdk);
    expect(used.size, 'no EC2 call found in ipamd: the scan is broken or ipamd is missing').toBeGreaterThan(
      0,
    );
    const allowed = allowedEc2Actions(policy);
    const missing = [...used.keys()]
      .filter((a) => !allowed.has(a))
      .map((a) => `${a} (called in ${used.get(a)!.join(', ')})`);
    const unused = [...allowed].filter((a) => !used.has(a));
    expect(missing, 'the code calls EC2 actions infra/iam/ipamd-policy.json does not allow').toEqual([]);
    expect(unused, 'infra/iam/ipamd-policy.json allows EC2 actions the code never calls').toEqual([]);
  });

  it('every allowed action is a real EC2 API action', () => {
    for (const a of allowedEc2Actions(policy)) expect(sdk.actions.has(a), a).toBe(true);
  });
});

describe('ipamd IAM policy conditions', () => {
  it('grants no wildcard actions and uses Resource "*" only for Describe calls', () => {
    for (const s of policy.Statement) {
      for (const a of asList(s.Action)) expect(a).not.toContain('*');
      if (asList(s.Resource).includes('*')) {
        expect(
          asList(s.Action).every((a) => a.startsWith('ec2:Describe')),
          s.Sid,
        ).toBe(true);
      }
    }
  });

  it('delete, detach and modify act only on ENIs tagged with a node instance id', () => {
    for (const action of [
      'DeleteNetworkInterface',
      'DetachNetworkInterface',
      'ModifyNetworkInterfaceAttribute',
    ]) {
      const onEnis = statementsGranting(action).filter((s) =>
        asList(s.Resource).some((r) => r.includes(':network-interface/')),
      );
      expect(onEnis.length, action).toBeGreaterThan(0);
      for (const s of onEnis) {
        expect(
          s.Condition?.Null?.['ec2:ResourceTag/node.k8s.amazonaws.com/instance_id'],
          `${action} in ${s.Sid}`,
        ).toBe('false');
      }
      // The statements without the tag condition must not name ENIs at all.
      for (const s of statementsGranting(action).filter((x) => !x.Condition)) {
        expect(
          asList(s.Resource).some((r) => r.includes('network-interface') || r === '*'),
          s.Sid,
        ).toBe(false);
      }
    }
  });

  it('assign and unassign need the node tag or the cluster tag (the primary ENI carries the latter)', () => {
    for (const action of ['AssignPrivateIpAddresses', 'UnassignPrivateIpAddresses']) {
      const grants = statementsGranting(action);
      expect(grants.length).toBeGreaterThan(0);
      for (const s of grants) {
        const nulls = Object.keys(s.Condition?.Null ?? {});
        expect(
          nulls.some((k) =>
            /^ec2:ResourceTag\/(node\.k8s\.amazonaws\.com\/instance_id|cluster\.k8s\.amazonaws\.com\/name)$/.test(
              k,
            ),
          ),
          s.Sid,
        ).toBe(true);
      }
    }
  });

  it('creates ENIs only with the node tag in the request', () => {
    const create = statementsGranting('CreateNetworkInterface').filter((s) =>
      asList(s.Resource).some((r) => r.includes('network-interface')),
    );
    expect(create).toHaveLength(1);
    expect(create[0]!.Condition?.Null?.['aws:RequestTag/node.k8s.amazonaws.com/instance_id']).toBe('false');
  });

  it('tags at creation, or later only ENIs that already carry the node tag, and only with ipamd’s own keys', () => {
    const tag = statementsGranting('CreateTags');
    expect(tag.length).toBeGreaterThan(0);
    for (const s of tag) {
      const onCreate = s.Condition?.StringEquals?.['ec2:CreateAction'] === 'CreateNetworkInterface';
      const ownEni = s.Condition?.Null?.['ec2:ResourceTag/node.k8s.amazonaws.com/instance_id'] === 'false';
      expect(onCreate || ownEni, s.Sid).toBe(true);
      if (!onCreate) {
        expect(s.Condition?.['ForAllValues:StringLike']?.['aws:TagKeys']).toEqual([
          'node.k8s.amazonaws.com/*',
          'cluster.k8s.amazonaws.com/*',
        ]);
      }
    }
  });
});

describe('the EC2 call scanner', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vpccni-scan-'));
    mkdirSync(join(dir, 'src/deep'), { recursive: true });
    writeFileSync(
      join(dir, 'src/a.ts'),
      [
        "import { AttachNetworkInterfaceCommand, EC2Client, paginateDescribeSubnets } from '@aws-sdk/client-ec2';",
        '// DeleteNetworkInterfaceCommand is mentioned only in a comment',
        "const s = 'CreateTagsCommand in a string';",
        'export const c = new AttachNetworkInterfaceCommand({ NetworkInterfaceId: "x", InstanceId: "i", DeviceIndex: 1 });',
        'export const p = paginateDescribeSubnets;',
        'export const NotARealCommand = 1; export const d = s + EC2Client.name;',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'src/deep/b.ts'),
      "import { EC2 } from '@aws-sdk/client-ec2';\nconst ec2 = new EC2({});\nexport const r = ec2.unassignPrivateIpAddresses({ NetworkInterfaceId: 'x' });\nexport const q = [].map((x) => x);\n",
    );
    // ipamd's Query transport: the action is the literal first argument of send().
    writeFileSync(
      join(dir, 'src/d.ts'),
      "declare const ec2: { send(a: string, i: object): void };\nec2.send('CreateTags', {});\nec2.send('NoSuchAction', {});\nconst other = { send: (a: string) => a }; other.send(`DeleteVpc`);\nexport const t = 'DeleteSubnet';\n",
    );
    writeFileSync(join(dir, 'src/c.test.ts'), "import { DeleteVpcCommand } from '@aws-sdk/client-ec2';\n");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds Command classes, paginators, aggregated-client and transport calls, ignoring comments, strings and tests', () => {
    const found = scanEc2Actions(dir, ['src'], sdk);
    expect([...found.keys()].sort()).toEqual([
      'AttachNetworkInterface',
      'CreateTags',
      'DeleteVpc',
      'DescribeSubnets',
      'UnassignPrivateIpAddresses',
    ]);
    expect(found.get('CreateTags')).toEqual(['src/d.ts']);
    expect(found.get('UnassignPrivateIpAddresses')).toEqual(['src/deep/b.ts']);
  });

  it('returns nothing for a missing directory', () => {
    expect(scanEc2Actions(dir, ['nope'], sdk).size).toBe(0);
  });
});
