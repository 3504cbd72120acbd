/**
 * The test cluster's VPC: per zone a public subnet (NAT, load balancers), a node subnet and a pod
 * subnet. Pod subnets carry `kubernetes.io/role/cni=1`, so ipamd's subnet discovery puts secondary
 * ENIs there, and they are the ENIConfig subnets under custom networking.
 */
import { Tags } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';

export const POD_SUBNET_TAG = 'kubernetes.io/role/cni';

export interface ClusterNetworkProps {
  zones: string[];
  clusterName: string;
}

export class ClusterNetwork extends Construct {
  readonly vpc: ec2.Vpc;
  /** By zone, in the order of `zones`. */
  readonly nodeSubnets: ec2.ISubnet[];
  readonly podSubnets: ec2.ISubnet[];

  constructor(scope: Construct, id: string, props: ClusterNetworkProps) {
    super(scope, id);
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr('10.0.0.0/16'),
      availabilityZones: props.zones,
      natGateways: 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'nodes', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        // Pods outnumber nodes: the big subnets are theirs.
        { name: 'pods', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 19 },
      ],
    });
    const byZone = (group: string) =>
      props.zones.map(
        (z) => this.vpc.selectSubnets({ subnetGroupName: group, availabilityZones: [z] }).subnets[0]!,
      );
    this.nodeSubnets = byZone('nodes');
    this.podSubnets = byZone('pods');
    for (const s of this.podSubnets) Tags.of(s).add(POD_SUBNET_TAG, '1');
    for (const s of this.vpc.publicSubnets) Tags.of(s).add('kubernetes.io/role/elb', '1');
    for (const s of this.nodeSubnets) Tags.of(s).add('kubernetes.io/role/internal-elb', '1');
    Tags.of(this.vpc).add(`kubernetes.io/cluster/${props.clusterName}`, 'shared');
  }
}
