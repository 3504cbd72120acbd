// The EC2 emulator refuses what EC2 refuses. Each test names the document it follows; every error is
// read back through the real SDK's error parsing (code as the exception name, HTTP status, message).
//   [model]       the EC2 service model shipped in @aws-sdk/client-ec2 (api-model.generated.ts)
//   [errors]      "Error codes for the Amazon EC2 API" (EC2 API Reference, errors-overview)
//   [idempotency] "Ensuring idempotency in Amazon EC2 API requests" (EC2 Developer Guide)
//   [tags]        "Tag restrictions" (EC2 User Guide, Tag your Amazon EC2 resources)
//   [DeleteTags]  DeleteTags (EC2 API Reference)
//   [filtering]   "Filtering considerations" (EC2 User Guide, List and filter your resources)
//   [DNI]         DescribeNetworkInterfaces (EC2 API Reference), its Filter.N list
//   [consistency] "Eventual consistency in the Amazon EC2 API" (EC2 Developer Guide)
import { execFileSync } from 'node:child_process';
import {
  AssignPrivateIpAddressesCommand,
  AttachNetworkInterfaceCommand,
  CreateNetworkInterfaceCommand,
  type CreateNetworkInterfaceCommandInput,
  CreateTagsCommand,
  DeleteNetworkInterfaceCommand,
  DeleteTagsCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSubnetsCommand,
  DetachNetworkInterfaceCommand,
  type EC2Client,
  ModifyNetworkInterfaceAttributeCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  UnassignPrivateIpAddressesCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ACTIONS } from '../../../infra/local-vpc/ec2/actions.js';
import { filterNamesOf, validateParams } from '../../../infra/local-vpc/ec2/api-model.js';
import { SERVED_ACTIONS } from '../../../scripts/gen-ec2-model.mjs';
import { type Ec2Fixture, errorOf, startFixture } from './helpers.js';

let f: Ec2Fixture;
let ec2: EC2Client;
let frozenAt: number | undefined;

beforeAll(async () => {
  f = await startFixture({ clock: () => frozenAt ?? Date.now() });
  ec2 = f.client();
});
afterAll(async () => {
  await f.close();
});
afterEach(() => {
  frozenAt = undefined;
  f.server.faults.reset();
});

/** A client whose requests carry extra form fields, as a misspelt or hand-built request would. */
function clientWith(extra: string): EC2Client {
  const c = f.client();
  c.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { body?: string };
      req.body = `${req.body ?? ''}&${extra}`;
      return next(args);
    },
    { step: 'serialize', priority: 'low', name: 'extraParams' },
  );
  return c;
}

async function expectEc2Error(
  fn: () => Promise<unknown>,
  code: string,
  status = 400,
  message?: RegExp,
): Promise<void> {
  const e = await errorOf(fn);
  expect(e.name).toBe(code);
  expect(e.$metadata?.httpStatusCode).toBe(status);
  if (message) expect(e.message).toMatch(message);
}

const createEni = (input: Partial<CreateNetworkInterfaceCommandInput> = {}) =>
  ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: f.subnetId, ...input }));

describe('parameters [model] [errors]', () => {
  it('the generated table is what the installed SDK gives, for exactly the actions served', () => {
    const out = execFileSync(process.execPath, ['scripts/gen-ec2-model.mjs', '--check'], {
      encoding: 'utf8',
    });
    expect(out).toContain('is up to date');
    expect([...SERVED_ACTIONS].sort()).toEqual(Object.keys(ACTIONS).sort());
  });

  it('answers UnknownParameter (400) for a parameter the action does not define', async () => {
    await expectEc2Error(
      () => clientWith('SubnetID=subnet-1').send(new DescribeSubnetsCommand({})),
      'UnknownParameter',
      400,
      /SubnetID/,
    );
    // Known at the top level, unknown inside a structure or list item.
    await expectEc2Error(
      () => clientWith('Filter.1.Valeu.1=x').send(new DescribeSubnetsCommand({})),
      'UnknownParameter',
      400,
      /Filter\.1\.Valeu/,
    );
    // A list item needs an index; a parameter of another action is unknown here.
    await expectEc2Error(
      () => clientWith('SubnetId=subnet-1').send(new DescribeSubnetsCommand({})),
      'UnknownParameter',
    );
    await expectEc2Error(
      () =>
        clientWith('Force=true').send(
          new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: 'eni-00000000' }),
        ),
      'UnknownParameter',
    );
  });

  it('answers MissingParameter for a required member and InvalidParameterValue for a wrong type', async () => {
    await expectEc2Error(
      () =>
        ec2.send(new AttachNetworkInterfaceCommand({ InstanceId: 'i-00000000', DeviceIndex: 1 } as never)),
      'MissingParameter',
      400,
      /NetworkInterfaceId/,
    );
    await expectEc2Error(
      () => ec2.send(new CreateTagsCommand({ Resources: [f.subnetId] } as never)),
      'MissingParameter',
      400,
      /Tag/,
    );
    await expectEc2Error(
      () =>
        clientWith('DeviceIndex=one').send(
          new AttachNetworkInterfaceCommand({
            NetworkInterfaceId: 'eni-00000000',
            InstanceId: 'i-00000000',
            DeviceIndex: 1,
          }),
        ),
      'InvalidParameterValue',
      400,
      /DeviceIndex/,
    );
    await expectEc2Error(
      () => clientWith('DryRun=yes').send(new DescribeSubnetsCommand({})),
      'InvalidParameterValue',
    );
  });

  it('checks parameters before DryRun, which then answers DryRunOperation (412)', async () => {
    await expectEc2Error(
      () => clientWith('Bogus=1').send(new DescribeSubnetsCommand({ DryRun: true })),
      'UnknownParameter',
    );
    await expectEc2Error(
      () => ec2.send(new DescribeSubnetsCommand({ DryRun: true })),
      'DryRunOperation',
      412,
    );
  });

  it('validates nested members and lists against the model', () => {
    expect(() =>
      validateParams('CreateNetworkInterface', [
        ['SubnetId', 's'],
        ['TagSpecification.1.ResourceType', 'network-interface'],
        ['TagSpecification.1.Tag.1.Key', 'k'],
        ['TagSpecification.1.Tag.1.Value', 'v'],
        ['PrivateIpAddresses.1.Primary', 'true'],
      ]),
    ).not.toThrow();
    expect(() =>
      validateParams('CreateNetworkInterface', [
        ['SubnetId', 's'],
        ['TagSpecification.1.Tags.1.Key', 'k'],
      ]),
    ).toThrow(/TagSpecification\.1\.Tags is not recognized/);
    expect(() =>
      validateParams('CreateNetworkInterface', [
        ['SubnetId', 's'],
        ['SecurityGroupId.0', 'sg-1'],
      ]),
    ).toThrow(/SecurityGroupId\.0/);
  });
});

describe('error codes as the error-code list spells them [errors]', () => {
  it('malformed and unknown ids', async () => {
    await expectEc2Error(
      () => ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: 'eni-zz' })),
      'InvalidNetworkInterfaceId.Malformed',
    );
    await expectEc2Error(
      () => ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: 'eni-0123456789abcdef0' })),
      'InvalidNetworkInterfaceID.NotFound',
    );
    await expectEc2Error(
      () => ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: 'eni-0123456789abcdef0' })),
      'InvalidNetworkInterfaceAttachmentId.Malformed',
    );
    await expectEc2Error(
      () => ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: 'eni-attach-0123456789abcdef0' })),
      'InvalidAttachmentID.NotFound',
    );
    await expectEc2Error(() => createEni({ SubnetId: 'subnet-x' }), 'InvalidSubnetID.Malformed');
    await expectEc2Error(() => createEni({ Groups: ['sg-x'] }), 'InvalidGroupId.Malformed');
    await expectEc2Error(
      () => ec2.send(new TerminateInstancesCommand({ InstanceIds: ['i-x'] })),
      'InvalidInstanceID.Malformed',
    );
    await expectEc2Error(
      () => ec2.send(new CreateTagsCommand({ Resources: ['xyz-1'], Tags: [{ Key: 'a', Value: 'b' }] })),
      'InvalidID',
    );
  });
});

describe('ClientToken [idempotency]', () => {
  it('a retry with the same token and parameters returns the first ENI and creates nothing', async () => {
    const before = f.state.enis().length;
    const a = await createEni({ ClientToken: 'tok-same', Description: 'd' });
    const b = await createEni({ ClientToken: 'tok-same', Description: 'd' });
    expect(b.NetworkInterface!.NetworkInterfaceId).toBe(a.NetworkInterface!.NetworkInterfaceId);
    expect(b.ClientToken).toBe('tok-same');
    expect(f.state.enis().length).toBe(before + 1);
  });

  it('the same token with other parameters is IdempotentParameterMismatch', async () => {
    await createEni({ ClientToken: 'tok-mismatch', Description: 'one' });
    await expectEc2Error(
      () => createEni({ ClientToken: 'tok-mismatch', Description: 'two' }),
      'IdempotentParameterMismatch',
    );
  });

  it('a token is at most 64 ASCII characters', async () => {
    await createEni({ ClientToken: 'x'.repeat(64) });
    await expectEc2Error(() => createEni({ ClientToken: 'x'.repeat(65) }), 'InvalidClientToken');
    await expectEc2Error(() => createEni({ ClientToken: 'tökén' }), 'InvalidClientToken');
  });

  it('RunInstances: the same token returns the same instances; once they are terminated it is refused', async () => {
    const run = () =>
      ec2.send(
        new RunInstancesCommand({
          ImageId: 'ami-1',
          InstanceType: 't3.small',
          MinCount: 1,
          MaxCount: 1,
          SubnetId: f.subnetId,
          ClientToken: 'run-1',
        }),
      );
    const first = (await run()).Instances![0]!.InstanceId!;
    expect((await run()).Instances![0]!.InstanceId).toBe(first);
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [first] }));
    await expectEc2Error(run, 'IdempotentInstanceTerminated');
  });
});

describe('tag limits [tags]', () => {
  const tags = (n: number, prefix = 'k') =>
    Array.from({ length: n }, (_, i) => ({ Key: `${prefix}${i}`, Value: 'v' }));

  it('50 user tags per resource, in CreateTags and in TagSpecification', async () => {
    const eni = (await createEni()).NetworkInterface!.NetworkInterfaceId!;
    await ec2.send(new CreateTagsCommand({ Resources: [eni], Tags: tags(49) }));
    await expectEc2Error(
      () => ec2.send(new CreateTagsCommand({ Resources: [eni], Tags: tags(2, 'new') })),
      'TagLimitExceeded',
    );
    expect(f.state.tagsOf(eni).has('new0')).toBe(false); // all or nothing
    await ec2.send(
      new CreateTagsCommand({ Resources: [eni], Tags: [...tags(49), { Key: 'last', Value: '' }] }),
    );
    expect(f.state.tagsOf(eni).size).toBe(50);
    await ec2.send(new CreateTagsCommand({ Resources: [eni], Tags: [{ Key: 'k0', Value: 'overwrite' }] }));
    await expectEc2Error(
      () => ec2.send(new CreateTagsCommand({ Resources: [f.subnetId], Tags: tags(51) })),
      'TagLimitExceeded',
    );
    await expectEc2Error(
      () => createEni({ TagSpecifications: [{ ResourceType: 'network-interface', Tags: tags(51) }] }),
      'TagLimitExceeded',
    );
  });

  it('keys of at most 128 and values of at most 256 characters, no aws: prefix', async () => {
    const tag = (Key: string, Value = 'v') =>
      ec2.send(new CreateTagsCommand({ Resources: [f.subnetId], Tags: [{ Key, Value }] }));
    await tag('k'.repeat(128), 'v'.repeat(256));
    await expectEc2Error(() => tag('k'.repeat(129)), 'InvalidParameterValue');
    await expectEc2Error(() => tag('k', 'v'.repeat(257)), 'InvalidParameterValue');
    await tag('é'.repeat(128)); // Unicode characters, not bytes
    await expectEc2Error(() => tag('aws:owner'), 'InvalidTagKey.Malformed');
    await expectEc2Error(() => tag(''), 'InvalidTagKey.Malformed');
  });
});

describe('DeleteTags [DeleteTags]', () => {
  it('a key alone deletes whatever the value, a key with a value only that value, no tags all user tags', async () => {
    const eni = (await createEni()).NetworkInterface!.NetworkInterfaceId!;
    const set = (t: Record<string, string>) =>
      ec2.send(
        new CreateTagsCommand({
          Resources: [eni],
          Tags: Object.entries(t).map(([Key, Value]) => ({ Key, Value })),
        }),
      );
    const del = (t?: { Key: string; Value?: string }[]) =>
      ec2.send(new DeleteTagsCommand({ Resources: [eni], ...(t ? { Tags: t } : {}) }));
    const now = () => Object.fromEntries(f.state.tagsOf(eni));
    await set({ a: '1', b: '2', c: '', d: 'x' });
    await del([{ Key: 'a' }]);
    await del([{ Key: 'b', Value: 'other' }]);
    await del([{ Key: 'c', Value: 'x' }]);
    expect(now()).toEqual({ b: '2', c: '', d: 'x' });
    await del([{ Key: 'c', Value: '' }]);
    expect(now()).toEqual({ b: '2', d: 'x' });
    (f.state.tagsOf(eni) as Map<string, string>).set('aws:cloudformation:stack-name', 's');
    await del();
    expect(now()).toEqual({ 'aws:cloudformation:stack-name': 's' });
  });
});

describe('filters [filtering] [DNI]', () => {
  it('accepts every filter name DescribeNetworkInterfaces documents, and no other', async () => {
    const doc = filterNamesOf('DescribeNetworkInterfaces')!;
    expect(doc.names).toEqual(expect.arrayContaining(['attachment.instance-id', 'status', 'tag-key']));
    for (const Name of [...doc.names, 'tag:Name']) {
      await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name, Values: ['*'] }] }));
    }
    for (const Name of ['tag-value', 'ipv4-prefix', 'attachment.network-card-index']) {
      await expectEc2Error(
        () => ec2.send(new DescribeNetworkInterfacesCommand({ Filters: [{ Name, Values: ['x'] }] })),
        'InvalidParameterValue',
        400,
        new RegExp(Name),
      );
    }
  });

  it('* matches zero or more characters, ? zero or one, a backslash escapes either', async () => {
    const ids: Record<string, string> = {};
    for (const d of ['database', 'databases', 'database12', 'data*base'])
      ids[d] = (await createEni({ Description: d })).NetworkInterface!.NetworkInterfaceId!;
    const match = async (...Values: string[]) => {
      const r = await ec2.send(
        new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'description', Values }] }),
      );
      return Object.keys(ids)
        .filter((d) => r.NetworkInterfaces!.some((e) => e.NetworkInterfaceId === ids[d]))
        .sort();
    };
    expect(await match('database?')).toEqual(['database', 'databases']);
    expect(await match('database??')).toEqual(['database', 'database12', 'databases']);
    expect(await match('data*')).toEqual(['data*base', 'database', 'database12', 'databases']);
    expect(await match('data\\*base')).toEqual(['data*base']);
    expect(await match('Database')).toEqual([]); // case-sensitive
  });

  it('up to 50 filters, 200 values per filter and 255 characters per string', async () => {
    const dni = (Filters: { Name: string; Values: string[] }[]) =>
      ec2.send(new DescribeNetworkInterfacesCommand({ Filters }));
    const f50 = Array.from({ length: 50 }, () => ({ Name: 'status', Values: ['*'] }));
    await dni(f50);
    await expectEc2Error(() => dni([...f50, { Name: 'status', Values: ['*'] }]), 'FilterLimitExceeded');
    const v200 = Array.from({ length: 200 }, (_, i) => `v${i}`);
    await dni([{ Name: 'description', Values: v200 }]);
    await expectEc2Error(() => dni([{ Name: 'description', Values: [...v200, 'x'] }]), 'FilterLimitExceeded');
    await dni([{ Name: 'description', Values: ['x'.repeat(255)] }]);
    await expectEc2Error(
      () => dni([{ Name: 'description', Values: ['x'.repeat(256)] }]),
      'FilterLimitExceeded',
    );
  });
});

describe('a new ENI inside its consistency window [consistency]', () => {
  it('is NotFound to every call that names it, then found', async () => {
    frozenAt = Date.now();
    f.server.faults.setConsistencyWindow(2_000);
    const instance = f.state.runInstance({ instanceType: 'm5.large', subnetId: f.subnetId });
    const eni = (await createEni()).NetworkInterface!;
    const id = eni.NetworkInterfaceId!;
    const calls: [string, () => Promise<unknown>][] = [
      ['Describe', () => ec2.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [id] }))],
      [
        'Attach',
        () =>
          ec2.send(
            new AttachNetworkInterfaceCommand({
              NetworkInterfaceId: id,
              InstanceId: instance.id,
              DeviceIndex: 1,
            }),
          ),
      ],
      [
        'CreateTags',
        () => ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'a', Value: 'b' }] })),
      ],
      ['DeleteTags', () => ec2.send(new DeleteTagsCommand({ Resources: [id] }))],
      [
        'Assign',
        () =>
          ec2.send(
            new AssignPrivateIpAddressesCommand({
              NetworkInterfaceId: id,
              SecondaryPrivateIpAddressCount: 1,
            }),
          ),
      ],
      [
        'Unassign',
        () =>
          ec2.send(
            new UnassignPrivateIpAddressesCommand({
              NetworkInterfaceId: id,
              PrivateIpAddresses: ['10.0.1.250'],
            }),
          ),
      ],
      [
        'Modify',
        () =>
          ec2.send(
            new ModifyNetworkInterfaceAttributeCommand({
              NetworkInterfaceId: id,
              Description: { Value: 'x' },
            }),
          ),
      ],
      ['Delete', () => ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: id }))],
    ];
    for (const [what, call] of calls) {
      const e = await errorOf(call);
      expect(`${what}: ${e.name}`).toBe(`${what}: InvalidNetworkInterfaceID.NotFound`);
    }
    expect(f.state.getEni(id)).toMatchObject({ status: 'available', attachment: undefined });
    frozenAt = f.state.getEni(id)!.createdAt.getTime() + 2_001;
    await ec2.send(
      new AttachNetworkInterfaceCommand({ NetworkInterfaceId: id, InstanceId: instance.id, DeviceIndex: 1 }),
    );
    await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'a', Value: 'b' }] }));
  });
});
