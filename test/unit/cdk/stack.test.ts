import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildApp } from '../../../cdk/main.js';
import { isArm64 } from '../../../cdk/stack.js';
import { NODEADM_DROPIN, userDataParts } from '../../../cdk/user-data.js';
import { type K8sObject, renderChart } from '../../../infra/helm/chart.js';
import { loadIpamdPolicy } from '../../../infra/iam/policy.js';
import { bundleMaxPods, calculatorSays, ROOT, run, startFakeImds } from '../deploy/helpers.js';
import { validateK8sObject } from '../deploy/k8s-validate.js';
import { flatten, type Json, resourcesOfType } from './template-tools.js';

interface Synth {
  template: Json;
  outdir: string;
  context: Record<string, unknown>;
}

let t: string;
let dist: string;
let A: Synth; // the defaults, with CDK's built-in CloudFormation validation
let B: Synth; // Graviton, 3 zones, prefix delegation, custom networking, prebuilt image

function synth(name: string, context: Record<string, unknown>, validate: boolean): Synth {
  const outdir = join(t, name);
  const app = buildApp(
    new App({ outdir, context: { distDir: dist, ...context }, builtinCloudFormationValidation: validate }),
  );
  const assembly = app.synth();
  return {
    template: Template.fromJSON(assembly.getStackByName('VpcCniTestCluster').template).toJSON(),
    outdir,
    context,
  };
}

beforeAll(async () => {
  t = mkdtempSync(join(tmpdir(), 'vpccni-cdk-'));
  dist = join(t, 'dist');
  mkdirSync(dist);
  await bundleMaxPods(dist);
  for (const f of ['aws-cni', 'ipamd', 'ipamd-probe'])
    writeFileSync(join(dist, `${f}.mjs`), `console.log('${f}');\n`);
  writeFileSync(join(dist, 'aws-cni'), '#!/bin/sh\n', { mode: 0o755 }); // stands in for the native shim
  mkdirSync(join(dist, 'ipamd-chunks'));
  writeFileSync(join(dist, 'ipamd-chunks/k8s-AAAA.mjs'), 'export {};\n');
  A = synth('a', {}, true);
  B = synth(
    'b',
    {
      instanceType: 'm6g.xlarge',
      nodeCount: '3',
      prefixDelegation: 'true',
      customNetworking: 'true',
      region: 'eu-west-1',
      availabilityZones: 'eu-west-1a,eu-west-1b,eu-west-1c',
      image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/vpc-cni:0.1.0',
    },
    false,
  );
}, 240_000);
afterAll(() => rmSync(t, { recursive: true, force: true }));

function subnetsTagged(tpl: Json, key: string): Json[] {
  return resourcesOfType(tpl, 'AWS::EC2::Subnet')
    .map(([, r]) => r.Properties)
    .filter((p) => (p.Tags ?? []).some((tag: Json) => tag.Key === key && tag.Value === '1'));
}

function manifests(
  tpl: Json,
): { id: string; objects: K8sObject[]; refs: Map<string, string>; dependsOn: string[] }[] {
  return resourcesOfType(tpl, 'Custom::AWSCDK-EKS-KubernetesResource').map(([id, r]) => {
    const refs = new Map<string, string>();
    const objects = JSON.parse(flatten(r.Properties.Manifest, tpl.Resources, refs)) as K8sObject[];
    return { id, objects, refs, dependsOn: r.DependsOn ?? [] };
  });
}

describe('synthesis', () => {
  it('passes CDK’s built-in CloudFormation validation', () => {
    const report = JSON.parse(readFileSync(join(A.outdir, 'validation-report.json'), 'utf8'));
    for (const p of report.pluginReports) {
      expect(p.violations, p.pluginName).toEqual([]);
      expect(p.conclusion).toBe('success');
    }
  });

  it('stages the node bundle and the image build context as assets', () => {
    const assets = JSON.parse(readFileSync(join(A.outdir, 'VpcCniTestCluster.assets.json'), 'utf8'));
    expect(Object.values(assets.dockerImages).map((d: Json) => d.source.dockerFile)).toEqual([
      'infra/image/Dockerfile',
    ]);
    expect(
      Object.keys(
        JSON.parse(readFileSync(join(B.outdir, 'VpcCniTestCluster.assets.json'), 'utf8')).dockerImages ?? {},
      ),
    ).toEqual([]);
  });
});

describe('the VPC', () => {
  for (const [label, s, zones] of [
    ['defaults', () => A, ['us-east-1a', 'us-east-1b']],
    ['three zones', () => B, ['eu-west-1a', 'eu-west-1b', 'eu-west-1c']],
  ] as const) {
    it(`has one tagged pod subnet per zone (${label})`, () => {
      const pods = subnetsTagged(s().template, 'kubernetes.io/role/cni');
      expect(pods.map((p) => p.AvailabilityZone).sort()).toEqual([...zones]);
      // Node and public subnets are not pod subnets.
      const all = resourcesOfType(s().template, 'AWS::EC2::Subnet');
      expect(all).toHaveLength(zones.length * 3);
      for (const p of pods) expect(Number(p.CidrBlock.split('/')[1])).toBeLessThan(20);
    });
  }
});

describe('the EKS cluster', () => {
  it('comes without the default VPC CNI (no self-managed add-ons) and gets kube-proxy and CoreDNS', () => {
    const [[, cluster]] = resourcesOfType(A.template, 'Custom::AWSCDK-EKS-Cluster') as [[string, Json]];
    expect(cluster.Properties.Config.bootstrapSelfManagedAddons).toBe(false);
    const addons = resourcesOfType(A.template, 'AWS::EKS::Addon').map(([, r]) => r.Properties.AddonName);
    expect(addons.sort()).toEqual(['coredns', 'kube-proxy']);
  });

  it('gives the node role ipamd’s policy, exactly, and not the AmazonEKS_CNI_Policy', () => {
    const policies = resourcesOfType(A.template, 'AWS::IAM::Policy').filter(([id]) =>
      id.startsWith('IpamdPolicy'),
    );
    expect(policies).toHaveLength(1);
    const doc = policies[0]![1].Properties.PolicyDocument;
    const norm = (d: Json) =>
      JSON.parse(JSON.stringify(d.Statement), (_k, v) => (Array.isArray(v) && v.length === 1 ? v[0] : v));
    expect(norm(doc)).toEqual(norm(loadIpamdPolicy()));
    const roleId = policies[0]![1].Properties.Roles[0].Ref;
    const managed = JSON.stringify(A.template.Resources[roleId].Properties.ManagedPolicyArns);
    expect(managed).toContain('AmazonEKSWorkerNodePolicy');
    expect(managed).not.toContain('AmazonEKS_CNI_Policy');
    const entries = resourcesOfType(A.template, 'AWS::EKS::AccessEntry').map(([, r]) => r.Properties);
    expect(entries.some((e) => e.Type === 'EC2_LINUX' && e.PrincipalArn['Fn::GetAtt'][0] === roleId)).toBe(
      true,
    );
  });
});

describe('the node groups', () => {
  it('spread the node count over the zones', () => {
    const sizes = (s: Synth) =>
      resourcesOfType(s.template, 'AWS::AutoScaling::AutoScalingGroup').map(([, r]) =>
        Number(r.Properties.MinSize),
      );
    expect(sizes(A)).toEqual([1, 1]);
    expect(sizes(B)).toEqual([1, 1, 1]);
  });

  it('launch the EKS AL2023 AMI of the right architecture, IMDSv2 only with hop limit 1, with the cluster tag on the primary ENI', () => {
    for (const [s, arch] of [
      [A, 'x86_64'],
      [B, 'arm64'],
    ] as const) {
      const params = JSON.stringify(s.template.Parameters);
      expect(params).toContain(
        `/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/${arch}/standard/recommended/image_id`,
      );
      for (const [, lt] of resourcesOfType(s.template, 'AWS::EC2::LaunchTemplate')) {
        const data = lt.Properties.LaunchTemplateData;
        expect(data.MetadataOptions.HttpTokens).toBe('required');
        // aws-node is in the host network: 1 is enough, and pods (one hop further) get no token.
        expect(data.MetadataOptions.HttpPutResponseHopLimit).toBe(1);
        const eniTags = data.TagSpecifications.find((x: Json) => x.ResourceType === 'network-interface').Tags;
        expect(eniTags).toContainEqual({ Key: 'cluster.k8s.amazonaws.com/name', Value: 'vpc-cni-test' });
      }
    }
    expect(isArm64('m6g.xlarge')).toBe(true);
    expect(isArm64('m5.large')).toBe(false);
  });

  it('label each node with its zone’s ENIConfig under custom networking only', () => {
    const configs = (s: Synth) =>
      resourcesOfType(s.template, 'AWS::EC2::LaunchTemplate').map(
        ([, lt]) =>
          userDataParts(flatten(lt.Properties.LaunchTemplateData.UserData, s.template.Resources))[
            'application/node.eks.aws'
          ]!,
      );
    for (const c of configs(A)) expect(c).not.toContain('--node-labels');
    expect(configs(B).map((c) => /--node-labels=k8s\.amazonaws\.com\/eniConfig=(\S+)/.exec(c)?.[1])).toEqual([
      'eu-west-1a',
      'eu-west-1b',
      'eu-west-1c',
    ]);
    for (const c of configs(A)) expect(c).toMatch(/cidr: 172\.20\.0\.0\/16/);
  });
});

describe('the user data’s max pods come from the calculator for the chosen instance type', () => {
  let root: string;
  beforeAll(() => {
    // Install the node bundle exactly as the user data does, into a scratch root.
    root = join(t, 'node-root');
    const stage = join(A.outdir, 'vpc-cni-node-bundle');
    return run(
      'sh',
      [join(stage, 'infra/ami/install.sh'), '--dist', join(stage, 'dist'), '--node', process.execPath],
      { env: { PATH: process.env.PATH, DESTDIR: root } },
    );
  }, 60_000);

  async function maxPodsOnBoot(s: Synth, instanceType: string): Promise<number[]> {
    const imds = await startFakeImds({
      'instance-type': instanceType,
      'placement/availability-zone': 'zone-x',
    });
    const calc = join(t, 'max-pods-bin');
    writeFileSync(
      calc,
      `#!/bin/sh\nexec ${process.execPath} ${join(root, 'opt/vpc-cni/lib/max-pods.mjs')} "$@"\n`,
    );
    chmodSync(calc, 0o755);
    try {
      const out: number[] = [];
      for (const [, lt] of resourcesOfType(s.template, 'AWS::EC2::LaunchTemplate')) {
        const script = userDataParts(
          flatten(lt.Properties.LaunchTemplateData.UserData, s.template.Resources),
        )['text/x-shellscript']!;
        const env = /<<'VPCCNI_ENV'\n([\s\S]*?)\nVPCCNI_ENV/.exec(script)![1]!;
        const hookLine = script.split('\n').find((l) => l.startsWith('/usr/local/bin/vpc-cni-bootstrap'))!;
        expect(hookLine).toBe(`/usr/local/bin/vpc-cni-bootstrap --output nodeconfig > ${NODEADM_DROPIN}`);
        expect(script.indexOf('install.sh')).toBeLessThan(script.indexOf(hookLine));
        const envFile = join(t, 'ipamd.env');
        writeFileSync(envFile, `${env}\n`);
        const { stdout } = await run(
          join(root, 'usr/local/bin/vpc-cni-bootstrap'),
          ['--env-file', envFile, '--output', 'nodeconfig'],
          {
            env: {
              PATH: process.env.PATH,
              MAX_PODS_BIN: calc,
              AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint,
            },
          },
        );
        const drop = parseYaml(stdout);
        expect(drop.kind).toBe('NodeConfig');
        // nodeadm sizes kubeReserved from the expression: the same number as the kubelet's maxPods.
        expect(Number(drop.spec.kubelet.maxPodsExpression)).toBe(drop.spec.kubelet.config.maxPods);
        out.push(drop.spec.kubelet.config.maxPods);
      }
      return out;
    } finally {
      await imds.close();
    }
  }

  const calculator = async (instanceType: string, flags: string[]) =>
    Number(await calculatorSays(['--instance-type', instanceType, '--cni-version', '1.19.0', ...flags]));

  it('m5.large, secondary IPs', async () => {
    const expected = await calculator('m5.large', []);
    expect(expected).toBe(29);
    expect(await maxPodsOnBoot(A, 'm5.large')).toEqual([expected, expected]);
  });

  it('m6g.xlarge, prefix delegation and custom networking', async () => {
    const expected = await calculator('m6g.xlarge', [
      '--cni-prefix-delegation-enabled',
      '--cni-custom-networking-enabled',
    ]);
    expect(await maxPodsOnBoot(B, 'm6g.xlarge')).toEqual([expected, expected, expected]);
  });
});

describe('the manifests applied', () => {
  it('are the chart’s objects: CRD, RBAC, DaemonSet; then the ENIConfigs after them', async () => {
    const [cni, ...rest] = manifests(A.template);
    expect(rest).toEqual([]);
    expect(cni!.objects.map((o) => o.kind)).toEqual(renderChart().map((o) => o.kind));
    const b = manifests(B.template);
    expect(b).toHaveLength(2);
    const eni = b.find((m) => m.objects[0]!.kind === 'ENIConfig')!;
    const base = b.find((m) => m !== eni)!;
    expect(eni.dependsOn).toContain(base.id);
    for (const m of [...manifests(A.template), ...b]) {
      expect((await Promise.all(m.objects.map(validateK8sObject))).flat()).toEqual([]);
    }
  });

  it('configure ipamd as the stack does the nodes', () => {
    const env = (s: Synth) => {
      const ds = manifests(s.template)
        .flatMap((m) => m.objects)
        .find((o) => o.kind === 'DaemonSet') as Json;
      return Object.fromEntries(
        ds.spec.template.spec.containers[0].env
          .filter((e: Json) => 'value' in e)
          .map((e: Json) => [e.name, e.value]),
      );
    };
    expect(env(A)).toMatchObject({
      ENABLE_PREFIX_DELEGATION: 'false',
      AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'false',
      CLUSTER_NAME: 'vpc-cni-test',
    });
    expect(env(A).WARM_PREFIX_TARGET).toBeUndefined();
    expect(env(B)).toMatchObject({
      ENABLE_PREFIX_DELEGATION: 'true',
      AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true',
      WARM_PREFIX_TARGET: '1',
    });
    const image = (s: Synth) =>
      (manifests(s.template)[0]!.objects.find((o) => o.kind === 'DaemonSet') as Json).spec.template.spec
        .containers[0].image;
    expect(image(B)).toBe('123456789012.dkr.ecr.eu-west-1.amazonaws.com/vpc-cni:0.1.0');
    expect(image(A)).toMatch(/container-assets.*:[0-9a-f]{64}$/);
  });

  it('point each zone’s ENIConfig at that zone’s pod subnet', () => {
    const eni = manifests(B.template).find((m) => m.objects[0]!.kind === 'ENIConfig')!;
    expect(eni.objects.map((o) => o.metadata.name)).toEqual(['eu-west-1a', 'eu-west-1b', 'eu-west-1c']);
    for (const o of eni.objects as Json[]) {
      const subnet = B.template.Resources[eni.refs.get(o.spec.subnet)!].Properties;
      expect(subnet.AvailabilityZone).toBe(o.metadata.name);
      expect(subnet.Tags).toContainEqual({ Key: 'kubernetes.io/role/cni', Value: '1' });
      expect(o.spec.securityGroups).toHaveLength(1);
    }
  });
});

describe('context parameters', () => {
  const ctx = (c: Record<string, unknown>) => () =>
    buildApp(new App({ outdir: join(t, 'bad'), context: { distDir: dist, image: 'x/y:1', ...c } }));
  it('are validated with messages that name the parameter', () => {
    expect(ctx({ instanceType: 'm5.huge' })).toThrow(
      /instanceType "m5.huge" is not a known EC2 instance type/,
    );
    expect(ctx({ nodeCount: '0' })).toThrow(/nodeCount must be a whole number from 1 to 50/);
    expect(ctx({ nodeCount: '2.5' })).toThrow(/nodeCount/);
    expect(ctx({ prefixDelegation: 'yes' })).toThrow(/prefixDelegation must be true or false/);
    expect(ctx({ instanceType: 'm4.large', prefixDelegation: true })).toThrow(
      /prefixDelegation needs a Nitro instance type/,
    );
    expect(ctx({ availabilityZones: 'us-east-1a' })).toThrow(/2 or 3 zones/);
    expect(ctx({ image: 'vpc-cni' })).toThrow(/needs a tag/);
    expect(ctx({ distDir: join(t, 'nowhere') })).toThrow(/run npm run build first/);
  });

  it('cdk.json’s defaults are the app’s defaults', () => {
    const cdkJson = JSON.parse(readFileSync(join(ROOT, 'cdk/cdk.json'), 'utf8'));
    expect(cdkJson.context).toEqual({
      instanceType: 'm5.large',
      nodeCount: 2,
      prefixDelegation: false,
      customNetworking: false,
    });
    expect(cdkJson.app).toBe('npx tsx main.ts');
  });
});
