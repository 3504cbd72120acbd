import { afterEach, describe, expect, it } from 'vitest';
import { runMaxPods } from '../../../maxpods/main.js';
import { type FakeImds, type FakeImdsBehaviour, startFakeImds } from './imds-server.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function maxPods(args: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const argv = args.split(' ').filter((a) => a !== '');
  const code = await runMaxPods(argv, {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
    env,
  });
  return { code, stdout, stderr };
}

describe('plain output (what boot scripts parse)', () => {
  it('prints the single recommended number and nothing else', async () => {
    expect(await maxPods('--instance-type m5.large --cni-version 1.18.3')).toEqual({
      code: 0,
      stdout: '29\n',
      stderr: '',
    });
    expect((await maxPods('--instance-type m5.24xlarge --cni-version 1.18.3')).stdout).toBe('250\n');
    expect(
      (await maxPods('--instance-type m5.24xlarge --cni-version 1.18.3 --show-max-allowed')).stdout,
    ).toBe('737\n');
  });

  it('applies every AMI flag', async () => {
    const pd =
      '--instance-type m5.large --cni-version 1.9.0 --cni-prefix-delegation-enabled --show-max-allowed';
    expect((await maxPods(pd)).stdout).toBe('434\n');
    expect((await maxPods(`${pd} --cni-custom-networking-enabled`)).stdout).toBe('290\n');
    expect((await maxPods(`${pd} --cni-max-eni 1`)).stdout).toBe('146\n'); // 1 * 144 + 2
    expect((await maxPods('--instance-type m5.large --cni-version 1.9.0 --trunk')).stdout).toBe('20\n');
  });

  it('puts the non-Nitro fallback note on stderr only', async () => {
    const r = await maxPods('--instance-type m4.large --cni-version 1.18.3 --cni-prefix-delegation-enabled');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('20\n');
    expect(r.stderr).toMatch(
      /^note: prefix delegation not used for m4\.large: .*not a Nitro.*secondary-IP mode\n$/,
    );
  });

  it('refuses a recommended value it cannot know (vCPUs unknown) but gives the uncapped one', async () => {
    const r = await maxPods('--instance-type mac-m4max.metal --cni-version 1.18.3');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/vCPU count of mac-m4max\.metal is unknown.*--show-max-allowed/);
    expect(
      (await maxPods('--instance-type mac-m4max.metal --cni-version 1.18.3 --show-max-allowed')).code,
    ).toBe(0);
  });
});

describe('json and table output', () => {
  it('shows the inputs and the derivation in JSON', async () => {
    const r = await maxPods(
      '--instance-type c6in.32xlarge --cni-version v1.18.3-eksbuild.1 --cni-prefix-delegation-enabled --output json',
    );
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({
      inputs: {
        cniVersion: 'v1.18.3-eksbuild.1',
        prefixDelegation: true,
        customNetworking: false,
        maxEni: null,
      },
      instanceType: 'c6in.32xlarge',
      maxPods: 250,
      maxAllowed: 6274,
      recommended: 250,
      cap: 250,
      mode: 'prefix-delegation',
      enisForPods: 8,
      podAddressesPerEni: 784,
      formula: '8 * ((50 - 1) * 16) + 2 = 6274',
      limits: { enis: 8, ipv4PerEni: 50, vcpus: 128, hypervisor: 'nitro', defaultNetworkCardIndex: 0 },
      notes: [],
    });
    expect(j.limits.networkCards).toEqual([
      { index: 0, maxEnis: 8 },
      { index: 1, maxEnis: 8 },
    ]);
  });

  it('prints a readable derivation as a table', async () => {
    const r = await maxPods(
      '--instance-type m5.large --cni-version 1.18.3 --cni-custom-networking-enabled --output table',
    );
    expect(r.stdout).toMatch(/^instance type\s+m5\.large$/m);
    expect(r.stdout).toMatch(/^max allowed\s+2 \* \(10 - 1\) \+ 2 = 20$/m);
    expect(r.stdout).toMatch(/^recommended\s+20$/m);
  });

  it('lists a family as a table, sorted, with a header', async () => {
    const r = await maxPods('--family m5 --cni-version 1.18.3 --output table');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^INSTANCE TYPE\s+VCPUS\s+HYPERVISOR\s+ENIS\s+IPV4\/ENI\s+POD ENIS\s+MODE\s+MAX ALLOWED\s+RECOMMENDED$/,
    );
    expect(lines).toHaveLength(10);
    expect(lines.find((l) => l.startsWith('m5.large '))).toMatch(
      /^m5\.large\s+2\s+nitro\s+3\s+10\s+3\s+secondary-ip\s+29\s+29$/,
    );
  });

  it('lists several families as type<TAB>value lines in plain output', async () => {
    const r = await maxPods('--family m5,c5 --family t3 --cni-version 1.18.3 --show-max-allowed');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toContain('m5.large\t29');
    expect(lines).toContain('c5.large\t29');
    expect(lines).toContain('t3.nano\t4');
    expect(lines.every((l) => /^(m5|c5|t3)\.\S+\t\d+$/.test(l))).toBe(true);
  });

  it('sums up fallbacks in one note per kind for --all', async () => {
    const r = await maxPods('--all --cni-version 1.18.3 --cni-prefix-delegation-enabled --output json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.count).toBe(1391);
    const fellBack = j.instanceTypes.filter((t: { mode: string }) => t.mode === 'secondary-ip').length;
    expect(fellBack).toBe(241); // 80 xen + 161 without a reported hypervisor
    expect(r.stderr).toContain(`secondary-IP mode for ${fellBack} instance types`);
    expect(r.stderr.split('\n').filter((l) => l !== '')).toHaveLength(2); // fallbacks + unknown vCPUs
  });
});

describe('errors: a message on stderr and a non-zero exit', () => {
  it.each([
    ['--cni-version 1.18.3', 2, /You must specify an instance type/],
    ['--instance-type m5.large', 2, /You must specify a CNI version/],
    ['--instance-type m5.large --cni-version latest', 2, /--cni-version "latest" is not a version/],
    ['--instance-type m5.large --instance-type-from-imds --cni-version 1.9', 2, /conflict/],
    ['--all --instance-type m5.large --cni-version 1.9', 2, /--all\/--family .* conflict/],
    ['--family m5 --instance-type-from-imds --cni-version 1.9', 2, /conflict/],
    ['--instance-type m5.large --imds-host 127.0.0.1:1 --cni-version 1.9', 2, /--imds-host only applies/],
    ['--instance-type m5.large --cni-version 1.9 --cni-max-eni 0', 2, /whole number of ENIs, 1 or more/],
    ['--instance-type m5.large --cni-version 1.9 --cni-max-eni two', 2, /whole number of ENIs/],
    ['--instance-type m5.large --cni-version 1.9 --output xml', 2, /Allowed choices are plain, json, table/],
    ['--instance-type m5.large --cni-version 1.9 --frobnicate', 2, /unknown option '--frobnicate'/],
    ['--instance-type m5.large --cni-version 1.9 m5.xlarge', 2, /too many arguments/],
    [
      '--instance-type m5.lrg --cni-version 1.9',
      1,
      /unknown instance type "m5.lrg".*known m5 types: .*m5\.large/,
    ],
    ['--instance-type M5.LARGE --cni-version 1.9', 1, /did you mean m5\.large\?/],
    [
      '--instance-type zz9.large --cni-version 1.9',
      1,
      /unknown instance type "zz9.large": not among the 1391 known types$/m,
    ],
    ['--family m5,zz9 --cni-version 1.9', 1, /unknown instance family: zz9/],
  ])('%s -> exit %i', async (args, code, message) => {
    const r = await maxPods(args);
    expect(r.code).toBe(code);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });

  it('documents every flag in --help and exits 0', async () => {
    const r = await maxPods('--help');
    expect(r.code).toBe(0);
    for (const flag of [
      '--instance-type ',
      '--instance-type-from-imds',
      '--imds-host',
      '--cni-version',
      '--cni-custom-networking-enabled',
      '--cni-prefix-delegation-enabled',
      '--cni-max-eni',
      '--show-max-allowed',
      '--trunk',
      '--output',
      '--all',
      '--family',
    ]) {
      expect(r.stdout, flag).toContain(flag);
    }
    expect(r.stdout).toContain('Exit status');
  });
});

describe('--instance-type-from-imds (IMDSv2 over real HTTP)', () => {
  let imds: FakeImds | undefined;
  afterEach(async () => {
    await imds?.close();
    imds = undefined;
  });
  const start = async (b: FakeImdsBehaviour) => {
    imds = await startFakeImds(b);
    return imds;
  };

  it('PUTs a token, then GETs the instance type with it', async () => {
    const s = await start({ instanceType: 'c6in.32xlarge' });
    const r = await maxPods('--instance-type-from-imds --cni-version 1.18.3 --show-max-allowed', {
      AWS_EC2_METADATA_SERVICE_ENDPOINT: s.endpoint,
    });
    expect(r).toEqual({ code: 0, stdout: '394\n', stderr: '' });
    expect(s.requests.map((q) => `${q.method} ${q.url}`)).toEqual([
      'PUT /latest/api/token',
      'GET /latest/meta-data/instance-type',
    ]);
    expect(s.requests[0]!.ttl).toMatch(/^\d+$/);
    expect(s.requests[1]!.token).toMatch(/^tok-/);
  });

  it('takes --imds-host host:port as the AMI tool does, over the environment', async () => {
    const s = await start({ instanceType: 'm5.large' });
    const r = await maxPods(
      `--instance-type-from-imds --imds-host ${s.endpoint.slice(7)} --cni-version 1.18.3`,
      {
        AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:9',
      },
    );
    expect(r.stdout).toBe('29\n');
  });

  it('retries while IMDS answers 503', async () => {
    const s = await start({ failTokenTimes: 2 });
    const r = await maxPods('--instance-type-from-imds --cni-version 1.18.3', {
      AWS_EC2_METADATA_SERVICE_ENDPOINT: s.endpoint,
    });
    expect(r.stdout).toBe('29\n');
    expect(s.requests.filter((q) => q.url === '/latest/api/token')).toHaveLength(3);
  });

  it('fails clearly when IMDS refuses a token, without retrying a 4xx', async () => {
    const s = await start({ tokenStatus: 403 });
    const r = await maxPods('--instance-type-from-imds --cni-version 1.18.3', {
      AWS_EC2_METADATA_SERVICE_ENDPOINT: s.endpoint,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/IMDS token request \(PUT \/latest\/api\/token\) failed at .*: HTTP 403/);
    expect(s.requests).toHaveLength(1);
  });

  it('rejects a reply that is not an instance type', async () => {
    const s = await start({ instanceType: '<html>oops</html>' });
    const r = await maxPods('--instance-type-from-imds --cni-version 1.18.3', {
      AWS_EC2_METADATA_SERVICE_ENDPOINT: s.endpoint,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/returned "<html>oops<\/html>", which is not an instance type/);
  });

  it('reports an unreachable endpoint, a bad endpoint and disabled IMDS', async () => {
    const down = await maxPods('--instance-type-from-imds --cni-version 1.18.3', {
      AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:9',
    });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(
      /IMDS token request .* failed at http:\/\/127\.0\.0\.1:9\/latest\/api\/token: ECONNREFUSED/,
    );
    const bad = await maxPods('--instance-type-from-imds --cni-version 1.18.3', {
      AWS_EC2_METADATA_SERVICE_ENDPOINT: 'ftp://x',
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/AWS_EC2_METADATA_SERVICE_ENDPOINT "ftp:\/\/x" must use http or https/);
    const off = await maxPods('--instance-type-from-imds --cni-version 1.18.3', {
      AWS_EC2_METADATA_DISABLED: 'true',
    });
    expect(off.code).toBe(2);
    expect(off.stderr).toMatch(/IMDS is disabled by AWS_EC2_METADATA_DISABLED=true/);
  });
});
