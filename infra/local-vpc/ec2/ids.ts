/**
 * Resource ids and MAC addresses shaped like EC2's: `eni-` + 17 hex digits, and locally administered
 * unicast MACs (first octet has bit 1 set and bit 0 clear, as AWS's 0a:/02:/06: MACs do).
 *
 * Exports: IdGenerator (unique within one model), ID_PATTERNS (prefix -> regexp for validation).
 */
import { randomBytes } from 'node:crypto';

export const ID_PATTERNS = {
  vpc: /^vpc-[0-9a-f]{8,17}$/,
  subnet: /^subnet-[0-9a-f]{8,17}$/,
  instance: /^i-[0-9a-f]{8,17}$/,
  eni: /^eni-[0-9a-f]{8,17}$/,
  attachment: /^eni-attach-[0-9a-f]{8,17}$/,
  securityGroup: /^sg-[0-9a-f]{8,17}$/,
} as const;

export class IdGenerator {
  private readonly used = new Set<string>();

  /** A fresh id such as `eni-0a1b2c3d4e5f60718`, never repeated by this generator. */
  next(prefix: string): string {
    for (;;) {
      const id = `${prefix}-0${randomBytes(8).toString('hex')}`;
      if (!this.used.has(id)) {
        this.used.add(id);
        return id;
      }
    }
  }

  /** A fresh locally administered unicast MAC, never repeated by this generator. */
  mac(): string {
    for (;;) {
      const b = randomBytes(6);
      b[0] = ((b[0] ?? 0) & 0xfc) | 0x02;
      const mac = [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
      if (!this.used.has(mac)) {
        this.used.add(mac);
        return mac;
      }
    }
  }

  reqId(): string {
    const h = randomBytes(16).toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
}
