/**
 * The CRI API (runtime.v1) as containerd itself knows it: Go protobuf registers every compiled
 * .proto as a gzip'd FileDescriptorProto inside the binary, so the client reads the descriptors out
 * of the containerd we run instead of carrying a copy of api.proto that could drift from it.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync, constants as zc } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Go's compress/gzip header (no name, no mtime): what protoc-gen-go(go) writes for descriptors. */
const GO_GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0]);
/** Largest descriptor we look at; api.proto is ~24 KB compressed. */
const MAX_COMPRESSED = 1 << 20;

interface FileDescriptor {
  name: string;
  pkg: string;
  deps: string[];
  services: string[];
  bytes: Buffer;
}

function varint(b: Buffer, at: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = at; i < b.length; i++) {
    const c = b[i]!;
    v += (c & 0x7f) * mul;
    mul *= 128;
    if (!(c & 0x80)) return [v, i + 1];
  }
  throw new Error('truncated varint');
}

/**
 * The few FileDescriptorProto fields we need: name (1), package (2), dependency (3), service (6,
 * whose own field 1 is its name). Anything that does not parse is not a descriptor.
 */
function parseDescriptor(bytes: Buffer): FileDescriptor | undefined {
  const d: FileDescriptor = { name: '', pkg: '', deps: [], services: [], bytes };
  let i = 0;
  try {
    while (i < bytes.length) {
      const [tag, j] = varint(bytes, i);
      i = j;
      const field = Math.floor(tag / 8);
      const wire = tag & 7;
      if (wire === 2) {
        const [len, k] = varint(bytes, i);
        if (k + len > bytes.length) return undefined;
        const body = bytes.subarray(k, k + len);
        i = k + len;
        if (field === 1) d.name = body.toString();
        else if (field === 2) d.pkg = body.toString();
        else if (field === 3) d.deps.push(body.toString());
        else if (field === 6) {
          const [stag, s] = varint(body, 0);
          if (stag === 0x0a) {
            const [slen, t] = varint(body, s);
            d.services.push(body.subarray(t, t + slen).toString());
          }
        }
      } else if (wire === 0) i = varint(bytes, i)[1];
      else if (wire === 5) i += 4;
      else if (wire === 1) i += 8;
      else return undefined;
    }
  } catch {
    return undefined;
  }
  return d.name.endsWith('.proto') ? d : undefined;
}

/** Every gzip'd FileDescriptorProto embedded in a Go binary. */
export function embeddedDescriptors(binary: string): FileDescriptor[] {
  const bin = readFileSync(binary);
  const out: FileDescriptor[] = [];
  for (let at = bin.indexOf(GO_GZIP_HEADER); at >= 0; at = bin.indexOf(GO_GZIP_HEADER, at + 1)) {
    let raw: Buffer;
    try {
      // Sync flush: the slice runs past the member's end; stop there instead of failing.
      raw = gunzipSync(bin.subarray(at, at + MAX_COMPRESSED), { finishFlush: zc.Z_SYNC_FLUSH });
    } catch {
      continue;
    }
    const d = parseDescriptor(raw);
    if (d) out.push(d);
  }
  return out;
}

function lengthDelimited(field: number, body: Buffer): Buffer {
  const len: number[] = [];
  for (let n = body.length; ; n = Math.floor(n / 128)) {
    if (n < 128) {
      len.push(n);
      break;
    }
    len.push((n & 0x7f) | 0x80);
  }
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...len]), body]);
}

/**
 * A FileDescriptorSet holding `pkg`'s file that defines `service`, and the files it imports (Go
 * registers some under shorter names than the import path, e.g. gogo.proto for
 * github.com/gogo/protobuf/gogoproto/gogo.proto).
 */
export function descriptorSet(binary: string, pkg: string, service: string): Buffer {
  const all = embeddedDescriptors(binary);
  const root = all.find((d) => d.pkg === pkg && d.services.includes(service));
  if (!root) throw new Error(`${binary} embeds no descriptor of ${pkg}.${service}`);
  const chosen = new Map<string, FileDescriptor>([[root.name, root]]);
  const pending = [...root.deps];
  while (pending.length > 0) {
    const dep = pending.pop()!;
    const found = all.find((d) => d.name === dep || dep.endsWith(`/${d.name}`));
    if (!found) throw new Error(`${binary}: ${root.name} imports ${dep}, which it does not embed`);
    if (chosen.has(found.name)) continue;
    chosen.set(found.name, found);
    pending.push(...found.deps);
  }
  return Buffer.concat([...chosen.values()].map((d) => lengthDelimited(1, d.bytes)));
}

type Unary = (
  req: object,
  meta: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: grpc.requestCallback<unknown>,
) => void;

/** A CRI client of containerd's runtime.v1 RuntimeService and ImageService on a Unix socket. */
export class CriClient {
  private readonly runtime: grpc.Client & Record<string, Unary>;
  private readonly image: grpc.Client & Record<string, Unary>;

  constructor(socketPath: string, containerdBinary = '/usr/bin/containerd') {
    const def = protoLoader.loadFileDescriptorSetFromBuffer(
      descriptorSet(containerdBinary, 'runtime.v1', 'RuntimeService'),
      { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true },
    );
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      runtime: { v1: Record<string, grpc.ServiceClientConstructor> };
    };
    const target = `unix://${socketPath}`;
    const creds = grpc.credentials.createInsecure();
    const opts = { 'grpc.max_receive_message_length': 16 << 20 };
    this.runtime = new pkg.runtime.v1.RuntimeService!(target, creds, opts) as never;
    this.image = new pkg.runtime.v1.ImageService!(target, creds, opts) as never;
  }

  /** Calls one RuntimeService method; a gRPC error rejects with its details as the message. */
  call<T = Record<string, unknown>>(method: string, req: object, timeoutMs = 120_000): Promise<T> {
    return this.invoke(this.runtime, method, req, timeoutMs);
  }

  callImage<T = Record<string, unknown>>(method: string, req: object, timeoutMs = 60_000): Promise<T> {
    return this.invoke(this.image, method, req, timeoutMs);
  }

  private invoke<T>(
    client: Record<string, Unary>,
    method: string,
    req: object,
    timeoutMs: number,
  ): Promise<T> {
    const fn = client[method];
    if (typeof fn !== 'function') throw new Error(`CRI has no method ${method}`);
    return new Promise((resolve, reject) => {
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(new CriError(method, err as grpc.ServiceError));
        else resolve(res as T);
      });
    });
  }

  close(): void {
    this.runtime.close();
    this.image.close();
  }
}

export class CriError extends Error {
  readonly grpcCode: number;
  constructor(
    readonly method: string,
    err: grpc.ServiceError,
  ) {
    super(`${method}: ${err.details || err.message}`);
    this.name = 'CriError';
    this.grpcCode = err.code;
  }
}
