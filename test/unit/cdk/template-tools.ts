/** Reading a synthesized CloudFormation template back into plain text and objects for assertions. */

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation templates are untyped JSON
export type Json = any;

/**
 * Flattens intrinsic functions into a string. References become placeholders: subnets and security
 * groups get ids of the right shape (so Kubernetes objects still validate), everything else
 * `${LogicalId}` / `${LogicalId.Attr}`. `refs` records placeholder -> logical id.
 */
export function flatten(
  value: Json,
  resources: Record<string, Json>,
  refs = new Map<string, string>(),
): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const [fn] = Object.keys(value ?? {});
  const arg = value?.[fn!];
  const placeholder = (id: string, attr?: string): string => {
    const type = resources[id]?.Type;
    const hex = [...id].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7).toString(16);
    const p =
      type === 'AWS::EC2::Subnet'
        ? `subnet-${hex}`
        : attr === 'ClusterSecurityGroupId'
          ? `sg-${hex}`
          : `\${${id}${attr ? `.${attr}` : ''}}`;
    refs.set(p, id);
    return p;
  };
  switch (fn) {
    case 'Ref':
      return placeholder(arg);
    case 'Fn::GetAtt':
      return placeholder(arg[0], arg[1]);
    case 'Fn::Join':
      return (arg[1] as Json[]).map((p) => flatten(p, resources, refs)).join(arg[0]);
    case 'Fn::Base64':
      return flatten(arg, resources, refs);
    case 'Fn::Sub':
      return typeof arg === 'string' ? arg : arg[0];
    case 'Fn::Select':
      return `\${Select${arg[0]}}`;
    default:
      throw new Error(`cannot flatten ${JSON.stringify(value).slice(0, 200)}`);
  }
}

export function resourcesOfType(template: Json, type: string): [string, Json][] {
  return Object.entries(template.Resources as Record<string, Json>).filter(([, r]) => r.Type === type);
}
