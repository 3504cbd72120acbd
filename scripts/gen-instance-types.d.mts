// Types for scripts/gen-instance-types.mjs, so TypeScript tests and scripts can import it.
export interface InstanceTypeJsonEntry {
  bareMetal: boolean;
  defaultNetworkCardIndex: number;
  enis: number;
  hypervisor: 'nitro' | 'xen' | 'unknown';
  ipv4PerEni: number;
  networkCards: { maximumNetworkInterfaces: number; networkCardIndex: number }[];
  vcpus: number | null;
  vcpusSource?: string;
}
export type InstanceTypeJson = Record<string, InstanceTypeJsonEntry>;
export function validateInstanceTypes(raw: unknown): asserts raw is InstanceTypeJson;
export function renderDataModule(raw: InstanceTypeJson, sourceName: string): string;
