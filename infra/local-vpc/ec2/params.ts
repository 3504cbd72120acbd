/**
 * Reads an EC2 Query-API request body (form-encoded, flattened lists `Name.N`, structures
 * `Name.N.Member`) with validation that answers like EC2: MissingParameter for an absent required
 * value, InvalidParameterValue for a malformed one.
 *
 * Exports: QueryParams (str, requiredStr, int, bool, list, structs, filters, tagSpecifications, tags).
 */
import { Ec2Error, invalidParameterValue, missingParameter } from './errors.js';
import { TAGS_PER_RESOURCE_LIMIT } from './model.js';

const MAX_TAG_KEY = 128;
const MAX_TAG_VALUE = 256;

export interface Filter {
  name: string;
  values: string[];
}

export class QueryParams {
  readonly raw: Map<string, string>;

  constructor(body: string | URLSearchParams | Map<string, string>) {
    if (body instanceof Map) this.raw = body;
    else this.raw = new Map(typeof body === 'string' ? new URLSearchParams(body) : body);
  }

  get action(): string | undefined {
    return this.raw.get('Action');
  }

  str(name: string): string | undefined {
    return this.raw.get(name);
  }

  requiredStr(name: string): string {
    const v = this.raw.get(name);
    if (v === undefined || v === '') throw missingParameter(name);
    return v;
  }

  int(name: string, range: { min?: number; max?: number } = {}): number | undefined {
    const v = this.raw.get(name);
    if (v === undefined) return undefined;
    if (!/^-?\d+$/.test(v))
      throw invalidParameterValue(`Value (${v}) for parameter ${name} is invalid. Expected an integer.`);
    const n = Number(v);
    if ((range.min !== undefined && n < range.min) || (range.max !== undefined && n > range.max)) {
      throw invalidParameterValue(
        `Value (${v}) for parameter ${name} is invalid. Expected a value between ${range.min ?? '-inf'} and ${range.max ?? 'inf'}.`,
      );
    }
    return n;
  }

  requiredInt(name: string, range: { min?: number; max?: number } = {}): number {
    const n = this.int(name, range);
    if (n === undefined) throw missingParameter(name);
    return n;
  }

  bool(name: string): boolean | undefined {
    const v = this.raw.get(name);
    if (v === undefined) return undefined;
    if (v === 'true') return true;
    if (v === 'false') return false;
    throw invalidParameterValue(`Value (${v}) for parameter ${name} is invalid. Expected 'true' or 'false'.`);
  }

  /** Values of `prefix.1`, `prefix.2`, ... in index order; undefined when none is present. */
  list(prefix: string): string[] | undefined {
    const entries: [number, string][] = [];
    const re = new RegExp(`^${escapeRe(prefix)}\\.(\\d+)$`);
    for (const [k, v] of this.raw) {
      const m = re.exec(k);
      if (m) entries.push([Number(m[1]), v]);
    }
    if (entries.length === 0) return undefined;
    return entries.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
  }

  /** Sub-parameter sets of `prefix.N.*` in index order, each as its own QueryParams. */
  structs(prefix: string): QueryParams[] {
    const groups = new Map<number, Map<string, string>>();
    const re = new RegExp(`^${escapeRe(prefix)}\\.(\\d+)\\.(.+)$`);
    for (const [k, v] of this.raw) {
      const m = re.exec(k);
      if (!m) continue;
      const n = Number(m[1]);
      if (!groups.has(n)) groups.set(n, new Map());
      groups.get(n)!.set(m[2]!, v);
    }
    return [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([, m]) => new QueryParams(m));
  }

  /** `Filter.N.Name` / `Filter.N.Value.M`. */
  filters(): Filter[] {
    return this.structs('Filter').map((f) => {
      const name = f.str('Name');
      if (!name) throw missingParameter('Filter.N.Name');
      return { name, values: f.list('Value') ?? [] };
    });
  }

  /**
   * `Tag.N.Key` / `Tag.N.Value` under `prefix` (default `Tag`), checked against the EC2 User Guide's
   * "Tag restrictions": at most 50 tags, keys of 1..128 and values of at most 256 Unicode characters,
   * no `aws:` keys (InvalidTagKey.Malformed, as the error-code list words it).
   */
  tags(prefix = 'Tag'): Record<string, string> {
    const out: Record<string, string> = {};
    const specs = this.structs(prefix);
    if (specs.length > TAGS_PER_RESOURCE_LIMIT) {
      throw new Ec2Error(
        'TagLimitExceeded',
        `The request has ${specs.length} tags; a resource can have at most ${TAGS_PER_RESOURCE_LIMIT}.`,
      );
    }
    for (const t of specs) {
      const key = t.str('Key');
      if (!key) throw new Ec2Error('InvalidTagKey.Malformed', 'Tag keys cannot be empty.');
      if ([...key].length > MAX_TAG_KEY)
        throw invalidParameterValue(
          `Tag key exceeds the maximum length of ${MAX_TAG_KEY} characters: ${key}`,
        );
      if (key.toLowerCase().startsWith('aws:')) {
        throw new Ec2Error('InvalidTagKey.Malformed', `Tag keys starting with 'aws:' are reserved: ${key}`);
      }
      const value = t.str('Value') ?? '';
      if ([...value].length > MAX_TAG_VALUE)
        throw invalidParameterValue(
          `Tag value exceeds the maximum length of ${MAX_TAG_VALUE} characters for key ${key}`,
        );
      out[key] = value;
    }
    return out;
  }

  /** Tags from `TagSpecification.N` whose ResourceType is `resourceType`; rejects other types. */
  tagSpecifications(allowed: string[]): Map<string, Record<string, string>> {
    const out = new Map<string, Record<string, string>>();
    for (const spec of this.structs('TagSpecification')) {
      const type = spec.str('ResourceType');
      if (!type) throw missingParameter('TagSpecification.N.ResourceType');
      if (!allowed.includes(type)) {
        throw new Ec2Error(
          'InvalidParameterValue',
          `'${type}' is not a valid taggable resource type for this operation.`,
        );
      }
      out.set(type, { ...(out.get(type) ?? {}), ...spec.tags('Tag') });
    }
    return out;
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
