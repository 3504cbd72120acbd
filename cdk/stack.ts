/**
 * A test cluster for vpc-cni: EKS without the default VPC CNI, self-managed nodes whose kubelet
 * max pods come from the calculator at boot, the node role with ipamd's least-privilege policy, and
 * the aws-node DaemonSet, CRD and per-zone ENIConfigs from the Helm chart.
 */

import { readFileSync } from 'node:fs';
import { KubectlV33Layer } from '@aws-cdk/lambda-layer-kubectl-v33';
import { CfnOutput, IgnoreMode, Stack, type StackProps, Stage, Tags } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as eks from 'aws-cdk-lib/aws-eks';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import type { Construct } from 'constructs';
import { type K8sObject, renderChart } from '../infra/helm/chart.js';
import { loadIpamdPolicy } from '../infra/iam/policy.js';
import { ClusterNetwork } from './network.js';
import { stageNodeBundle } from './node-bundle.js';
import { type ClusterParams, nodesPerZone } from './params.js';
import { nodeUserData } from './user-data.js';

export const SERVICE_CIDR = '172.20.0.0/16';
const REPO_ROOT = new URL('..', import.meta.url).pathname;
/** The ENIConfig a node uses under custom networking: named after its zone. */
export const ENI_CONFIG_LABEL = 'k8s.amazonaws.com/eniConfig';

/** Graviton types (m6g, c7gn, t4g, a1, ...) need the arm64 AMI and image. */
export function isArm64(instanceType: string): boolean {
  return new ec2.InstanceType(instanceType).architecture === ec2.InstanceArchitecture.ARM_64;
}

export interface VpcCniTestClusterProps extends StackProps {
  params: ClusterParams;
}

export class VpcCniTestClusterStack extends Stack {
  readonly cluster: eks.Cluster;
  readonly nodeRole: iam.Role;
  readonly nodeGroups: autoscaling.AutoScalingGroup[] = [];

  constructor(scope: Construct, id: string, props: VpcCniTestClusterProps) {
    super(scope, id, props);
    const p = props.params;
    const arm = isArm64(p.instanceType);
    const net = new ClusterNetwork(this, 'Network', { zones: p.zones, clusterName: p.clusterName });

    this.cluster = new eks.Cluster(this, 'Cluster', {
      clusterName: p.clusterName,
      version: eks.KubernetesVersion.of(p.kubernetesVersion),
      kubectlLayer: new KubectlV33Layer(this, 'KubectlLayer'),
      vpc: net.vpc,
      vpcSubnets: [{ subnetGroupName: 'nodes' }],
      defaultCapacity: 0,
      // No aws-node, kube-proxy or CoreDNS from EKS: this CNI replaces the first, add-ons bring the others.
      bootstrapSelfManagedAddons: false,
      authenticationMode: eks.AuthenticationMode.API_AND_CONFIG_MAP,
      serviceIpv4Cidr: SERVICE_CIDR,
    });

    this.nodeRole = new iam.Role(this, 'NodeRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description:
        'vpc-cni test cluster nodes: kubelet, image pulls, SSM, and ipamd (no AmazonEKS_CNI_Policy)',
      managedPolicies: [
        'AmazonEKSWorkerNodePolicy',
        'AmazonEC2ContainerRegistryReadOnly',
        'AmazonSSMManagedInstanceCore',
      ].map((n) => iam.ManagedPolicy.fromAwsManagedPolicyName(n)),
    });
    new iam.Policy(this, 'IpamdPolicy', {
      document: iam.PolicyDocument.fromJson(loadIpamdPolicy()),
      roles: [this.nodeRole],
    });
    new eks.AccessEntry(this, 'NodeAccess', {
      cluster: this.cluster,
      principal: this.nodeRole.roleArn,
      accessEntryType: eks.AccessEntryType.EC2_LINUX,
      accessPolicies: [],
    });

    const bundle = new s3assets.Asset(this, 'NodeBundle', {
      path: stageNodeBundle(p.distDir, Stage.of(this)!.outdir),
    });
    bundle.grantRead(this.nodeRole);

    const ipamdEnv = {
      ENABLE_PREFIX_DELEGATION: String(p.prefixDelegation),
      AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: String(p.customNetworking),
    };
    const ami = ec2.MachineImage.fromSsmParameter(
      `/aws/service/eks/optimized-ami/${p.kubernetesVersion}/amazon-linux-2023/${arm ? 'arm64' : 'x86_64'}/standard/recommended/image_id`,
    );
    const counts = nodesPerZone(p);
    p.zones.forEach((zone, i) => {
      if (counts[i] === 0) return;
      const userData = nodeUserData({
        clusterName: this.cluster.clusterName,
        apiServerEndpoint: this.cluster.clusterEndpoint,
        certificateAuthority: this.cluster.clusterCertificateAuthorityData,
        serviceCidr: SERVICE_CIDR,
        region: this.region,
        bundleS3Url: bundle.s3ObjectUrl,
        ipamdEnv,
        nodeLabels: p.customNetworking ? { [ENI_CONFIG_LABEL]: zone } : {},
      });
      const template = new ec2.LaunchTemplate(this, `NodeTemplate-${zone}`, {
        machineImage: ami,
        instanceType: new ec2.InstanceType(p.instanceType),
        role: this.nodeRole,
        securityGroup: this.cluster.clusterSecurityGroup,
        userData: ec2.UserData.custom(userData),
        // IMDSv2 only, and its tokens reach only the node itself: aws-node runs in the host network
        // and needs no more than 1; 2 (the AL2023 AMI's own default) would let every pod take the
        // node role's credentials. ipamd also drops pod traffic to IMDS (IPAMD_BLOCK_POD_IMDS).
        requireImdsv2: true,
        httpPutResponseHopLimit: 1,
        blockDevices: [
          {
            deviceName: '/dev/xvda',
            volume: ec2.BlockDeviceVolume.ebs(30, {
              volumeType: ec2.EbsDeviceVolumeType.GP3,
              encrypted: true,
            }),
          },
        ],
      });
      // The primary ENI carries the cluster tag: ipamd's policy lets it assign addresses only on
      // ENIs with that tag or with the node tag it puts on the ENIs it creates.
      const cfn = template.node.defaultChild as ec2.CfnLaunchTemplate;
      cfn.addPropertyOverride('LaunchTemplateData.TagSpecifications', [
        {
          ResourceType: 'instance',
          Tags: [
            { Key: `kubernetes.io/cluster/${p.clusterName}`, Value: 'owned' },
            { Key: 'Name', Value: `${p.clusterName}-node` },
          ],
        },
        {
          ResourceType: 'network-interface',
          Tags: [{ Key: 'cluster.k8s.amazonaws.com/name', Value: p.clusterName }],
        },
      ]);
      const group = new autoscaling.AutoScalingGroup(this, `Nodes-${zone}`, {
        vpc: net.vpc,
        vpcSubnets: { subnets: [net.nodeSubnets[i]!] },
        launchTemplate: template,
        minCapacity: counts[i],
        maxCapacity: counts[i],
      });
      Tags.of(group).add(`kubernetes.io/cluster/${p.clusterName}`, 'owned');
      this.nodeGroups.push(group);
    });

    const values = {
      image: this.imageValues(p, arm),
      env: { ...ipamdEnv, CLUSTER_NAME: p.clusterName, WARM_PREFIX_TARGET: p.prefixDelegation ? '1' : '' },
      eniConfigs: p.customNetworking
        ? Object.fromEntries(
            p.zones.map((z, i) => [
              z,
              { subnet: net.podSubnets[i]!.subnetId, securityGroups: [this.cluster.clusterSecurityGroupId] },
            ]),
          )
        : {},
    };
    const objects = renderChart({ values });
    // The CRD must be established before ENIConfigs are applied: two manifests, in order.
    const isCustom = (o: K8sObject) => o.kind === 'ENIConfig';
    const cni = this.cluster.addManifest('VpcCni', ...objects.filter((o) => !isCustom(o)));
    const eniConfigs = objects.filter(isCustom);
    if (eniConfigs.length > 0) this.cluster.addManifest('EniConfigs', ...eniConfigs).node.addDependency(cni);

    // kube-proxy and CoreDNS as managed add-ons; CoreDNS needs nodes that are Ready, so pods networking first.
    new eks.Addon(this, 'KubeProxy', { cluster: this.cluster, addonName: 'kube-proxy' });
    const coredns = new eks.Addon(this, 'CoreDns', { cluster: this.cluster, addonName: 'coredns' });
    coredns.node.addDependency(cni, ...this.nodeGroups);

    new CfnOutput(this, 'NodeBundleUrl', { value: bundle.s3ObjectUrl });
    new CfnOutput(this, 'InstanceType', { value: p.instanceType });
  }

  private imageValues(p: ClusterParams, arm: boolean): { repository: string; tag: string } {
    if (p.image) {
      const at = p.image.lastIndexOf(':');
      if (at <= p.image.lastIndexOf('/')) throw new Error(`image ${p.image} needs a tag (repository:tag)`);
      return { repository: p.image.slice(0, at), tag: p.image.slice(at + 1) };
    }
    const ignore = readFileSync(new URL('../infra/image/Dockerfile.dockerignore', import.meta.url), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const asset = new ecrAssets.DockerImageAsset(this, 'Image', {
      directory: REPO_ROOT,
      file: 'infra/image/Dockerfile',
      exclude: [...ignore, 'cdk/cdk.out'],
      ignoreMode: IgnoreMode.DOCKER,
      platform: arm ? ecrAssets.Platform.LINUX_ARM64 : ecrAssets.Platform.LINUX_AMD64,
    });
    return { repository: asset.repository.repositoryUri, tag: asset.imageTag };
  }
}
