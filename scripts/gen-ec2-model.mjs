// Regenerates infra/local-vpc/ec2/api-model.generated.ts from the EC2 service model that ships inside
// @aws-sdk/client-ec2: for every action the emulator serves, the query parameters EC2 accepts (names as
// the ec2Query protocol writes them, types, required members, idempotency tokens) and the filter names
// the action's documentation lists. The emulator validates each request against this table, so a
// parameter EC2 would refuse is refused here too.
//   node scripts/gen-ec2-model.mjs [--check]
// --check writes nothing and exits 1 when the generated module is not what the installed SDK gives.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const TARGET = 'infra/local-vpc/ec2/api-model.generated.ts';

/** The actions infra/local-vpc/ec2/actions.ts serves (a unit test keeps the two lists equal). */
export const SERVED_ACTIONS = [
  'AssignPrivateIpAddresses',
  'AttachNetworkInterface',
  'CreateNetworkInterface',
  'CreateTags',
  'DeleteNetworkInterface',
  'DeleteTags',
  'DescribeInstanceTypes',
  'DescribeInstances',
  'DescribeNetworkInterfaces',
  'DescribeSubnets',
  'DescribeTags',
  'DescribeVpcs',
  'DetachNetworkInterface',
  'ModifyInstanceMetadataOptions',
  'ModifyNetworkInterfaceAttribute',
  'RunInstances',
  'TerminateInstances',
  'UnassignPrivateIpAddresses',
];

/**
 * One shape as the emulator checks it: a scalar kind, a list (`list` = the item shape; EC2 flattens
 * lists as Name.1..N), a structure (`members` by query name) or a map (`Name.N.Key`/`Name.N.Value`).
 */
function shapeOf(ns, seen) {
  if (ns.isStringSchema()) return { kind: 'string' };
  if (ns.isBooleanSchema()) return { kind: 'boolean' };
  if (ns.isNumericSchema() || ns.isBigIntegerSchema() || ns.isBigDecimalSchema()) return { kind: 'number' };
  if (ns.isTimestampSchema()) return { kind: 'timestamp' };
  if (ns.isBlobSchema()) return { kind: 'blob' };
  if (ns.isListSchema()) return { kind: 'list', item: shapeOf(ns.getValueSchema(), seen) };
  if (ns.isMapSchema()) {
    return { kind: 'map', key: shapeOf(ns.getKeySchema(), seen), value: shapeOf(ns.getValueSchema(), seen) };
  }
  if (ns.isStructSchema()) return structOf(ns, seen);
  if (ns.isDocumentSchema()) return { kind: 'document' };
  throw new Error(`unsupported schema ${ns.getName(true)}`);
}

/** ec2Query key of a structure member: ec2QueryName, else the capitalised xmlName or member name. */
function queryName(memberName, traits) {
  if (traits.ec2QueryName) return traits.ec2QueryName;
  const key = traits.xmlName ?? memberName;
  return key[0].toUpperCase() + key.slice(1);
}

function structOf(ns, seen) {
  const name = ns.getName(true);
  if (seen.has(name)) throw new Error(`recursive input shape ${name}: the table cannot inline it`);
  const inner = new Set(seen).add(name);
  const raw = ns.getSchema();
  // A structure schema is [3, namespace, name, traits, memberNames, memberSchemas, requiredCount]:
  // the codegen puts required members first and records how many there are.
  const requiredCount = typeof raw[6] === 'number' ? raw[6] : 0;
  const members = {};
  let i = 0;
  for (const [memberName, member] of ns.structIterator()) {
    const entry = { member: memberName, shape: shapeOf(member, inner) };
    if (i < requiredCount) entry.required = true;
    if (member.isIdempotencyToken()) entry.idempotencyToken = true;
    members[queryName(memberName, member.getMergedTraits())] = entry;
    i++;
  }
  return { kind: 'structure', members };
}

/** The SDK's typings carry the model's documentation; the Filters member lists the filter names. */
function documentedFilters(typesDir, action) {
  const iface = `export interface ${action}Request {`;
  for (const file of readdirSync(typesDir).filter((f) => f.endsWith('.d.ts'))) {
    const text = readFileSync(join(typesDir, file), 'utf8');
    const start = text.indexOf(iface);
    if (start < 0) continue;
    const body = text.slice(start, text.indexOf('\n}', start));
    const member = /\n\s*Filters\?: /.exec(body);
    if (!member) return undefined;
    const doc = body.slice(body.lastIndexOf('/**', member.index), member.index);
    const names = new Set();
    let tagKeyValue = false;
    // Each filter is an <li> that opens with <code>name</code>. The `tag:<key>` filter is written as
    // <code>tag:<key></code>, as <code>tag</code>:<key> or, in some actions, as plain <code>tag</code>.
    for (const li of doc.split('<li>').slice(1)) {
      const m = /^[\s*]*(?:<p>[\s*]*)?<code>(tag:<key>|[^<]+)<\/code>/.exec(li);
      if (!m) continue;
      if (m[1] === 'tag' || m[1].startsWith('tag:')) tagKeyValue = true;
      else names.add(m[1]);
    }
    if (names.size === 0 && !tagKeyValue) throw new Error(`${action}: no filter names in its documentation`);
    return { names: [...names].sort(), tagKeyValue };
  }
  throw new Error(`${action}Request not found in ${typesDir}`);
}

async function buildModel() {
  const require = createRequire(import.meta.url);
  const sdk = await import('@aws-sdk/client-ec2');
  const { NormalizedSchema } = await import('@smithy/core/schema');
  const pkgJson = require.resolve('@aws-sdk/client-ec2/package.json');
  const version = JSON.parse(readFileSync(pkgJson, 'utf8')).version;
  const typesDir = join(dirname(pkgJson), 'dist-types', 'models');
  const actions = {};
  for (const action of SERVED_ACTIONS) {
    const op = sdk[`${action}$`];
    if (!Array.isArray(op) || op[0] !== 9) throw new Error(`the SDK has no operation schema for ${action}`);
    const input = NormalizedSchema.of(op[4]);
    const params = structOf(input, new Set()).members;
    const entry = { params };
    if ('Filter' in params) entry.filters = documentedFilters(typesDir, action);
    actions[action] = entry;
  }
  return { version, actions };
}

function renderModule(model) {
  return `// Generated by scripts/gen-ec2-model.mjs from @aws-sdk/client-ec2 ${model.version}; do not edit.
// The request parameters of every action the emulator serves, as the EC2 service model defines them.
import type { Ec2ApiModel } from './api-model.js';

export const SDK_VERSION = '${model.version}';
export const EC2_API_MODEL: Ec2ApiModel = ${JSON.stringify(model.actions)};
`;
}

async function main(argv) {
  const check = argv.includes('--check');
  const model = await buildModel();
  const text = renderModule(model);
  if (check) {
    let current = '';
    try {
      current = readFileSync(TARGET, 'utf8');
    } catch {}
    if (current !== text) {
      console.error(`${TARGET} is stale: run node scripts/gen-ec2-model.mjs`);
      process.exitCode = 1;
      return;
    }
    console.log(`${TARGET} is up to date (${SERVED_ACTIONS.length} actions, SDK ${model.version})`);
    return;
  }
  writeFileSync(TARGET, text);
  console.log(`wrote ${SERVED_ACTIONS.length} actions (SDK ${model.version}) to ${TARGET}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(`gen-ec2-model: ${err.message}`);
    process.exitCode = 1;
  });
}
