/**
 * Hands subnet addresses and /28 prefixes to ENIs and remembers who holds what, with EC2's rules and
 * error codes: explicit addresses must lie in the subnet, not be reserved and be free (or, with
 * AllowReassignment, be another ENI's secondary); counted requests take the lowest free ones; every
 * request is all-or-nothing. The caller (Ec2State) checks slot limits and instance-type rules first.
 *
 * Exports: AddressBook, cidrParam.
 */
import { PREFIX_LENGTH, PREFIX_SIZE } from './address-pool.js';
import { Ec2Error, invalidParameterValue } from './errors.js';
import { type Cidr, formatIpv4, isIpv4, parseCidr, parseIpv4 } from './ipv4.js';
import type { Eni, Subnet } from './model.js';

/** Parses a CIDR request parameter, answering InvalidParameterValue as EC2 does. */
export function cidrParam(text: string, param: string): Cidr {
  try {
    return parseCidr(text);
  } catch (e) {
    throw invalidParameterValue(
      `Value (${text}) for parameter ${param} is invalid. ${(e as Error).message}.`,
    );
  }
}

export interface AddressRequest {
  explicit?: string[];
  count: number;
  /** Which exhaustion error applies: CreateNetworkInterface's or AssignPrivateIpAddresses'. */
  op: 'create' | 'assign';
  allowReassignment?: boolean;
}

export class AddressBook {
  /** Single address -> owning ENI id. */
  private readonly addressOwner = new Map<number, string>();
  /** /28 base -> owning ENI id. */
  private readonly prefixOwner = new Map<number, string>();

  constructor(private readonly eniById: (id: string) => Eni | undefined) {}

  /** The ENI id holding `ip` as an address or inside one of its prefixes. */
  ownerOf(ip: string): string | undefined {
    if (!isIpv4(ip)) return undefined;
    const n = parseIpv4(ip);
    return this.addressOwner.get(n) ?? this.prefixOwner.get(n - (n % PREFIX_SIZE));
  }

  /**
   * Gives `eni` the explicit addresses or `count` free ones (as secondaries). Returns what it took
   * and the ENIs an address was moved away from (AllowReassignment).
   */
  takeAddresses(eni: Eni, subnet: Subnet, req: AddressRequest): { taken: string[]; movedFrom: Eni[] } {
    if (req.explicit) return this.takeExplicit(eni, subnet, req.explicit, req.allowReassignment ?? false);
    if (!Number.isInteger(req.count) || req.count < 0) {
      throw invalidParameterValue(
        `Value (${req.count}) for parameter SecondaryPrivateIpAddressCount is invalid.`,
      );
    }
    if (req.count === 0) return { taken: [], movedFrom: [] };
    const got = subnet.pool.takeAny(req.count);
    if (!got) {
      if (req.op === 'create') {
        throw new Ec2Error(
          'InsufficientFreeAddressesInSubnet',
          'The specified subnet does not have enough free addresses to satisfy the request.',
        );
      }
      throw invalidParameterValue("There aren't sufficient free Ipv4 addresses or prefixes");
    }
    const taken = got.map((ip) => {
      const text = formatIpv4(ip);
      this.addressOwner.set(ip, eni.id);
      eni.privateIps.push({ address: text, primary: false });
      return text;
    });
    return { taken, movedFrom: [] };
  }

  private takeExplicit(
    eni: Eni,
    subnet: Subnet,
    explicit: string[],
    allowReassignment: boolean,
  ): { taken: string[]; movedFrom: Eni[] } {
    const nums = explicit.map((a) => {
      if (!isIpv4(a)) {
        throw invalidParameterValue(
          `Value (${a}) for parameter PrivateIpAddress is invalid. Not a valid IPv4 address.`,
        );
      }
      return parseIpv4(a);
    });
    if (new Set(nums).size !== nums.length)
      throw invalidParameterValue('The same address is given more than once.');
    const moves: { from: Eni; address: string }[] = [];
    for (const [i, ip] of nums.entries()) {
      const text = explicit[i]!;
      if (!subnet.pool.contains(ip)) {
        throw invalidParameterValue(`Address ${text} does not fall within the subnet's address range`);
      }
      if (subnet.pool.isReserved(ip)) {
        throw invalidParameterValue(`Address ${text} is reserved by AWS in subnet ${subnet.id}`);
      }
      if (subnet.pool.isFree(ip)) continue;
      const ownerId = this.ownerOf(text);
      const owner = ownerId ? this.eniById(ownerId) : undefined;
      const held = owner?.privateIps.find((p) => p.address === text);
      // Only another ENI's secondary address can move; a primary or a prefix member never does.
      if (allowReassignment && owner && owner !== eni && held && !held.primary) {
        moves.push({ from: owner, address: text });
        continue;
      }
      throw new Ec2Error('InvalidIPAddress.InUse', `Address ${text} is in use.`);
    }
    for (const m of moves) this.releaseAddress(m.from, subnet, m.address);
    for (const [i, ip] of nums.entries()) {
      subnet.pool.take(ip);
      this.addressOwner.set(ip, eni.id);
      eni.privateIps.push({ address: explicit[i]!, primary: false });
    }
    return { taken: [...explicit], movedFrom: [...new Set(moves.map((m) => m.from))] };
  }

  /** Gives `eni` the explicit /28 prefixes or `count` free aligned ones. */
  takePrefixes(eni: Eni, subnet: Subnet, req: { explicit?: string[]; count: number }): string[] {
    if (!Number.isInteger(req.count) || req.count < 0) {
      throw invalidParameterValue(`Value (${req.count}) for parameter Ipv4PrefixCount is invalid.`);
    }
    let bases: number[];
    if (req.explicit) {
      bases = req.explicit.map((p) => {
        const c = cidrParam(p, 'Ipv4Prefix');
        if (c.prefixLength !== PREFIX_LENGTH) {
          throw invalidParameterValue(
            `Value (${p}) for parameter Ipv4Prefix is invalid. Only /28 prefixes can be assigned.`,
          );
        }
        if (!subnet.pool.contains(c.base)) {
          throw invalidParameterValue(`Prefix ${p} does not fall within the subnet's address range`);
        }
        if (!subnet.pool.isPrefixFree(c.base)) {
          throw invalidParameterValue(`Prefix ${p} overlaps addresses that are reserved or in use.`);
        }
        return c.base;
      });
      if (new Set(bases).size !== bases.length)
        throw invalidParameterValue('The same prefix is given more than once.');
      for (const b of bases) subnet.pool.takePrefix(b);
    } else {
      const got = subnet.pool.takeAnyPrefixes(req.count);
      if (!got) {
        throw new Ec2Error(
          'InsufficientCidrBlocks',
          'The specified subnet does not have enough free cidr blocks to satisfy the request.',
        );
      }
      bases = got;
    }
    return bases.map((b) => {
      const text = `${formatIpv4(b)}/${PREFIX_LENGTH}`;
      this.prefixOwner.set(b, eni.id);
      eni.prefixes.push(text);
      return text;
    });
  }

  releaseAddress(eni: Eni, subnet: Subnet, text: string): void {
    const ip = parseIpv4(text);
    subnet.pool.release(ip);
    this.addressOwner.delete(ip);
    eni.privateIps = eni.privateIps.filter((p) => p.address !== text);
  }

  releasePrefix(eni: Eni, subnet: Subnet, text: string): void {
    const base = parseCidr(text).base;
    subnet.pool.releasePrefix(base);
    this.prefixOwner.delete(base);
    eni.prefixes = eni.prefixes.filter((p) => p !== text);
  }

  /** Returns everything `eni` holds to its subnet. */
  releaseAll(eni: Eni, subnet: Subnet): void {
    for (const p of [...eni.prefixes]) this.releasePrefix(eni, subnet, p);
    for (const ip of [...eni.privateIps]) this.releaseAddress(eni, subnet, ip.address);
  }
}
