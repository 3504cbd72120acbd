/**
 * Address bookkeeping for one subnet: which addresses are reserved, held as single IPs, or held as
 * part of a /28 prefix. Mirrors EC2: the first four addresses and the last one are reserved, single
 * addresses are handed out lowest-first, prefixes must be /28-aligned blocks whose 16 addresses are
 * all free (so a subnet fragmented by single addresses can have many free addresses and no prefix).
 *
 * Exports: AddressPool, PREFIX_SIZE. The pool answers "free?" and takes/releases; it raises no EC2
 * errors itself (the model decides which code applies).
 */
import { type Cidr, cidrContains } from './ipv4.js';

/** Addresses in one delegated IPv4 prefix (/28). */
export const PREFIX_SIZE = 16;
export const PREFIX_LENGTH = 28;

const FREE = 0;
const RESERVED = 1;
const SINGLE = 2;
const IN_PREFIX = 3;

export class AddressPool {
  private readonly slots: Uint8Array;
  private freeCount: number;

  constructor(readonly cidr: Cidr) {
    if (cidr.prefixLength > 28 || cidr.prefixLength < 16) {
      throw new Error('a subnet must be between /16 and /28');
    }
    this.slots = new Uint8Array(cidr.size);
    for (const off of [0, 1, 2, 3, cidr.size - 1]) this.slots[off] = RESERVED;
    this.freeCount = cidr.size - 5;
  }

  /** Free addresses, the figure EC2 reports as AvailableIpAddressCount. */
  get available(): number {
    return this.freeCount;
  }

  contains(ip: number): boolean {
    return cidrContains(this.cidr, ip);
  }

  isReserved(ip: number): boolean {
    return this.contains(ip) && this.slots[ip - this.cidr.base] === RESERVED;
  }

  isFree(ip: number): boolean {
    return this.contains(ip) && this.slots[ip - this.cidr.base] === FREE;
  }

  /** Takes `count` free single addresses, lowest first; undefined (nothing taken) when too few. */
  takeAny(count: number): number[] | undefined {
    if (count > this.freeCount) return undefined;
    const out: number[] = [];
    for (let off = 0; off < this.slots.length && out.length < count; off++) {
      if (this.slots[off] === FREE) out.push(this.cidr.base + off);
    }
    for (const ip of out) this.take(ip);
    return out;
  }

  /** Marks one specific free address as held. The caller checks isFree first. */
  take(ip: number): void {
    const off = ip - this.cidr.base;
    if (this.slots[off] !== FREE) throw new Error(`address offset ${off} is not free`);
    this.slots[off] = SINGLE;
    this.freeCount--;
  }

  release(ip: number): void {
    const off = ip - this.cidr.base;
    if (this.slots[off] !== SINGLE) throw new Error(`address offset ${off} is not held as a single address`);
    this.slots[off] = FREE;
    this.freeCount++;
  }

  /** True when `base` starts an aligned /28 inside the subnet whose addresses are all free. */
  isPrefixFree(base: number): boolean {
    if (base % PREFIX_SIZE !== 0 || !this.contains(base)) return false;
    const off = base - this.cidr.base;
    for (let i = 0; i < PREFIX_SIZE; i++) if (this.slots[off + i] !== FREE) return false;
    return true;
  }

  /** Takes `count` free aligned /28s, lowest first; undefined (nothing taken) when too few. */
  takeAnyPrefixes(count: number): number[] | undefined {
    const out: number[] = [];
    for (let off = 0; off < this.slots.length && out.length < count; off += PREFIX_SIZE) {
      if (this.isPrefixFree(this.cidr.base + off)) out.push(this.cidr.base + off);
    }
    if (out.length < count) return undefined;
    for (const base of out) this.takePrefix(base);
    return out;
  }

  takePrefix(base: number): void {
    if (!this.isPrefixFree(base)) throw new Error('prefix is not free');
    this.slots.fill(IN_PREFIX, base - this.cidr.base, base - this.cidr.base + PREFIX_SIZE);
    this.freeCount -= PREFIX_SIZE;
  }

  releasePrefix(base: number): void {
    const off = base - this.cidr.base;
    if (this.slots[off] !== IN_PREFIX) throw new Error('prefix is not held');
    this.slots.fill(FREE, off, off + PREFIX_SIZE);
    this.freeCount += PREFIX_SIZE;
  }
}
