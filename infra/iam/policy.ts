/**
 * ipamd's least-privilege IAM policy (ipamd-policy.json next to this file), loaded and checked.
 * The JSON file is what users attach; the CDK app and the tests read it through this module.
 */
import { readFileSync } from 'node:fs';

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: '2012-10-17';
  Statement: PolicyStatement[];
}

export const POLICY_PATH = new URL('./ipamd-policy.json', import.meta.url);

/** Reads and structurally validates the policy document; throws naming the bad statement. */
export function loadIpamdPolicy(path: URL | string = POLICY_PATH): PolicyDocument {
  const doc = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  if (typeof doc !== 'object' || doc === null) throw new Error(`${path}: policy must be a JSON object`);
  const d = doc as Partial<PolicyDocument>;
  if (d.Version !== '2012-10-17') throw new Error(`${path}: Version must be "2012-10-17"`);
  if (!Array.isArray(d.Statement) || d.Statement.length === 0) {
    throw new Error(`${path}: Statement must be a non-empty array`);
  }
  d.Statement.forEach((s, i) => {
    const where = `${path}: Statement[${i}]${s.Sid ? ` (${s.Sid})` : ''}`;
    if (s.Effect !== 'Allow' && s.Effect !== 'Deny')
      throw new Error(`${where}: Effect must be Allow or Deny`);
    for (const a of asList(s.Action)) {
      if (!/^ec2:[A-Z][A-Za-z0-9]+$/.test(a)) throw new Error(`${where}: action ${a} is not an ec2 action`);
    }
    if (asList(s.Resource).length === 0) throw new Error(`${where}: Resource must not be empty`);
  });
  return d as PolicyDocument;
}

export function asList(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** EC2 action names (without the `ec2:` prefix) that any Allow statement grants. */
export function allowedEc2Actions(doc: PolicyDocument): Set<string> {
  const out = new Set<string>();
  for (const s of doc.Statement) {
    if (s.Effect !== 'Allow') continue;
    for (const a of asList(s.Action)) out.add(a.replace(/^ec2:/, ''));
  }
  return out;
}
