import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { imdsEndpoint, instanceTypeFromImds } from '../../../maxpods/imds.js';

describe('imdsEndpoint', () => {
  it('defaults to the IPv4 link-local address, or IPv6 when the SDK mode says so', () => {
    expect(imdsEndpoint({ env: {} })).toBe('http://169.254.169.254');
    expect(imdsEndpoint({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE: 'IPv6' } })).toBe(
      'http://[fd00:ec2::254]',
    );
    expect(() => imdsEndpoint({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE: 'ipx' } })).toThrow(
      /is not IPv4 or IPv6/,
    );
  });

  it('prefers --imds-host over the endpoint variable and keeps only the origin', () => {
    const env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:8080/' };
    expect(imdsEndpoint({ env })).toBe('http://127.0.0.1:8080');
    expect(imdsEndpoint({ env, imdsHost: '10.0.0.1:81' })).toBe('http://10.0.0.1:81');
    expect(() => imdsEndpoint({ env, imdsHost: 'a b' })).toThrow(/--imds-host "http:\/\/a b" is not a URL/);
  });
});

describe('instanceTypeFromImds timeouts', () => {
  it('gives up after the attempts when IMDS never answers', async () => {
    let seen = 0;
    // Accepts and holds every request: an IMDS that hangs.
    const server = createServer(() => {
      seen++;
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const started = Date.now();
      await expect(
        instanceTypeFromImds({
          env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: `http://127.0.0.1:${port}` },
          timeoutMs: 100,
          attempts: 2,
          retryDelayMs: 10,
        }),
      ).rejects.toThrow(/IMDS token request .* failed at .*: no reply within 100 ms/);
      expect(seen).toBe(2);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
