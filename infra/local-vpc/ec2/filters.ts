/**
 * EC2 Describe* filtering and pagination, as the EC2 User Guide's "Filtering considerations" (List
 * and filter your resources) describes it: up to 50 filters and 200 values per filter, filter strings
 * up to 255 characters (FilterLimitExceeded past those), case-sensitive values, `*` matching zero or
 * more characters and `?` zero or one, a backslash escaping either. Several filters AND together;
 * several values of one filter OR together.
 *
 * A resource type supplies a FilterSpec: how to read each filter from a resource. The names a request
 * may use are the ones the action's documentation lists (api-model.generated.ts); an undocumented
 * name fails with InvalidParameterValue, and a documented one the emulator cannot evaluate with
 * InvalidParameterValue saying so, rather than matching nothing.
 *
 * Exports: FilterSpec, applyFilters, paginate.
 */
import { filterNamesOf } from './api-model.js';
import { Ec2Error, invalidParameterValue } from './errors.js';
import type { Filter } from './params.js';

export const MAX_FILTERS = 50;
export const MAX_FILTER_VALUES = 200;
export const MAX_FILTER_STRING = 255;

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
    else if (c === '?') re += '.?';
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

/** True when `name` is one of the filters the action's documentation lists. */
function documented(action: string, name: string): boolean {
  const doc = filterNamesOf(action);
  if (!doc) return false;
  if (name.startsWith('tag:')) return doc.tagKeyValue && name.length > 4;
  return doc.names.includes(name);
}

export function applyFilters<T>(items: T[], filters: Filter[], spec: FilterSpec<T>): T[] {
  const tooMany = () => new Ec2Error('FilterLimitExceeded', 'The request uses too many filters or values.');
  if (filters.length > MAX_FILTERS) throw tooMany();
  for (const f of filters) {
    if (f.values.length > MAX_FILTER_VALUES) throw tooMany();
    if ([f.name, ...f.values].some((v) => v.length > MAX_FILTER_STRING)) throw tooMany();
  }
  const compiled = filters.map((f) => {
    if (!documented(spec.typeName, f.name))
      throw invalidParameterValue(`The filter '${f.name}' is invalid for ${spec.typeName}`);
    const get = valuesFor(spec, f.name);
    if (!get) {
      throw invalidParameterValue(
        `The filter '${f.name}' of ${spec.typeName} is not supported by the local VPC emulator`,
      );
    }
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
