/**
 * The names a pod attachment is made of, validated once for every way in: the plugin's CNI_* and
 * netconf parsing (cni/env.ts, cni/netconf.ts) and ipamd's socket ops (lib/protocol/ipamd.ts), so a
 * raw socket client cannot get an address under a key the CNI path would have refused.
 * No dependencies: the plugin pays nothing to load it.
 */

/** The CNI spec's container id (libcni's and the reference plugins' rule). */
export const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** The CNI spec's network name. */
export const NETWORK_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** IFNAMSIZ - 1: the kernel counts bytes, not characters. */
export const MAX_IFNAME_BYTES = 15;

/** Why `name` cannot be a Linux interface name, or undefined when it can. */
export function ifNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_IFNAME_BYTES) return `is longer than ${MAX_IFNAME_BYTES} bytes (${bytes} in UTF-8)`;
  if (name === '.' || name === '..') return 'may not be "." or ".."';
  if (/[/:\s]/.test(name)) return 'may not contain "/", ":" or whitespace';
  return undefined;
}

/** Why `path` cannot be a CNI_NETNS value, or undefined when it can. */
export function netnsPathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'must be an absolute path such as /var/run/netns/<name>';
  if (path.includes('\0')) return 'may not contain NUL';
  if (Buffer.byteLength(path) > 4095) return 'is longer than PATH_MAX';
  return undefined;
}

/** Text a person typed or a runtime copied (pod namespace and name): printable, bounded. */
export function labelProblem(text: string, max = 253): string | undefined {
  if (text.length > max) return `is longer than ${max} characters`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused.
  if (/[\u0000-\u001f\u007f\ufffd]/.test(text)) return 'contains control characters or invalid UTF-8';
  return undefined;
}
