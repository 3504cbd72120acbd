/**
 * EC2 Describe* filtering and pagination.
 *
 * A resource type supplies a FilterSpec: the filter names EC2 supports for it and how to read each
 * from a resource; an unknown name fails the request with InvalidParameterValue, as EC2 does. Filter values may use `*` and `?` wildcards.
 * Several filters AND together; several values of one filter OR together.
 *
 * Exports: FilterSpec, applyFilters, paginate.
 */
import { Ec2Error, invalidParameterValue } from './errors.js';
import type { Filter } from './params.js';

/** Filter name -> the values a resource has for it. Tag filters come from `tagsOf`. */
export interface FilterSpec<T> {
  typeName: string;
  fields: Record<string, (resource: T) => (string | undefined)[]>;
  tagsOf?: (resource: T) => ReadonlyMap<string, string>;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '\\' && i + 1 < glob.length) re += escapeRe(glob[++i]!);
    else if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`, 's');
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function valuesFor<T>(spec: FilterSpec<T>, name: string): ((r: T) => (string | undefined)[]) | undefined {
  const field = spec.fields[name];
  if (field) return field;
  const tagsOf = spec.tagsOf;
  if (!tagsOf) return undefined;
  if (name.startsWith('tag:')) return (r) => [tagsOf(r).get(name.slice(4))];
  if (name === 'tag-key') return (r) => [...tagsOf(r).keys()];
  if (name === 'tag-value') return (r) => [...tagsOf(r).values()];
  return undefined;
}

export function applyFilters<T>(items: T[], filters: Filter[], spec: FilterSpec<T>): T[] {
  if (filters.length > 50)
    throw new Ec2Error('FilterLimitExceeded', 'The request uses too many filters or values.');
  const compiled = filters.map((f) => {
    const get = valuesFor(spec, f.name);
    if (!get) throw invalidParameterValue(`The filter '${f.name}' is invalid for ${spec.typeName}`);
    if (f.values.length === 0) throw invalidParameterValue(`The filter '${f.name}' has no values.`);
    return { get, patterns: f.values.map(globToRegExp) };
  });
  return items.filter((item) =>
    compiled.every((f) => f.get(item).some((v) => v !== undefined && f.patterns.some((p) => p.test(v)))),
  );
}

interface PageToken {
  a: string;
  after: string;
}

/**
 * One page of `items` (already sorted by `key`). The token names the last key handed out, so
 * items created or deleted between pages neither repeat nor shift the rest.
 */
export function paginate<T>(
  items: T[],
  key: (t: T) => string,
  action: string,
  maxResults: number | undefined,
  nextToken: string | undefined,
): { page: T[]; nextToken: string | undefined } {
  let start = 0;
  if (nextToken !== undefined) {
    let tok: PageToken;
    try {
      tok = JSON.parse(Buffer.from(nextToken, 'base64url').toString('utf8')) as PageToken;
    } catch {
      throw invalidParameterValue(`The token '${nextToken}' is invalid.`);
    }
    if (tok?.a !== action || typeof tok.after !== 'string') {
      throw invalidParameterValue(`The token '${nextToken}' is invalid for ${action}.`);
    }
    start = items.findIndex((t) => key(t) > tok.after);
    if (start < 0) start = items.length;
  }
  if (maxResults === undefined) return { page: items.slice(start), nextToken: undefined };
  const page = items.slice(start, start + maxResults);
  const more = start + maxResults < items.length;
  const last = page[page.length - 1];
  return {
    page,
    nextToken:
      more && last !== undefined
        ? Buffer.from(JSON.stringify({ a: action, after: key(last) } satisfies PageToken)).toString(
            'base64url',
          )
        : undefined,
  };
}
