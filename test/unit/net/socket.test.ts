// NlSocket's reply handling, with the kernel side simulated: a real socket whose addon calls
// nlSend/nlRecv are replaced, so each scenario (interrupted dump, error ack, silence) is deterministic.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NetlinkError } from '../../../lib/net/errors.js';
import { NLM_F_DUMP_INTR, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, RTM } from '../../../lib/net/nlmsg.js';
import { NlSocket } from '../../../lib/net/socket.js';
import { sys } from '../../../lib/net/sys.js';

function message(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  // nlmsg_len excludes the padding the kernel adds to align the next message to 4 bytes.
  const b = Buffer.alloc((16 + payload.length + 3) & ~3);
  b.writeUInt32LE(16 + payload.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq, 8);
  payload.copy(b, 16);
  return b;
}
const int32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
};

let sock: NlSocket | undefined;
afterEach(() => {
  vi.restoreAllMocks();
  sock?.close();
});

/** Replaces the kernel: `reply(seq, attempt)` returns the datagram answering request number `attempt`. */
function fakeKernel(
  _s: NlSocket,
  reply: (seq: number, attempt: number) => Buffer | undefined,
): { sent: number } {
  const state = { sent: 0 };
  const queue: Buffer[] = [];
  vi.spyOn(sys(), 'nlSend').mockImplementation((_fd, msg) => {
    state.sent++;
    const datagram = reply(msg.readUInt32LE(8), state.sent);
    if (datagram) queue.push(datagram);
  });
  vi.spyOn(sys(), 'nlRecv').mockImplementation(() => {
    const next = queue.shift();
    if (next) return next;
    throw Object.assign(new Error('recv(netlink): Connection timed out (ETIMEDOUT)'), {
      code: 'ETIMEDOUT',
      errno: 110,
    });
  });
  return state;
}

describe('NlSocket', () => {
  it('restarts a dump the kernel flagged as interrupted (NLM_F_DUMP_INTR)', async () => {
    sock = new NlSocket();
    const k = fakeKernel(sock, (seq, attempt) =>
      Buffer.concat([
        message(
          RTM.NEWLINK,
          NLM_F_MULTI | (attempt === 1 ? NLM_F_DUMP_INTR : 0),
          seq,
          Buffer.from([attempt]),
        ),
        message(NLMSG_DONE, NLM_F_MULTI, seq, int32(0)),
      ]),
    );
    const replies = await sock.dump(RTM.GETLINK, [Buffer.alloc(16)], 'list links');
    expect(k.sent).toBe(2);
    expect(replies.map((r) => r.payload[0])).toEqual([2]);
  });

  it('gives up with EINTR when every attempt is interrupted', async () => {
    sock = new NlSocket();
    const k = fakeKernel(sock, (seq) => message(NLMSG_DONE, NLM_F_MULTI | NLM_F_DUMP_INTR, seq, int32(0)));
    await expect(sock.dump(RTM.GETROUTE, [Buffer.alloc(12)], 'list routes')).rejects.toMatchObject({
      code: 'EINTR',
      message: expect.stringMatching(/^list routes: dump interrupted 5 times/),
    });
    expect(k.sent).toBe(5);
  });

  it('turns an error ack into a NetlinkError naming the operation and errno', async () => {
    sock = new NlSocket();
    fakeKernel(sock, (seq) => message(NLMSG_ERROR, 0, seq, Buffer.concat([int32(-17), Buffer.alloc(16)])));
    const err = await sock
      .request(RTM.NEWROUTE, 0, [Buffer.alloc(12)], 'add route 10.0.0.5/32 dev eni1a2b')
      .catch((e) => e);
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).toMatchObject({ code: 'EEXIST', errno: 17 });
    expect(err.message).toBe('add route 10.0.0.5/32 dev eni1a2b: File exists (EEXIST)');
  });

  it('resolves on a zero ack with the replies that came before it', async () => {
    sock = new NlSocket();
    fakeKernel(sock, (seq) =>
      Buffer.concat([message(RTM.NEWLINK, 0, seq, Buffer.from([7])), message(NLMSG_ERROR, 0, seq, int32(0))]),
    );
    const replies = await sock.request(RTM.GETLINK, 0, [Buffer.alloc(16)], 'get link x');
    expect(replies.map((r) => [r.type, r.payload[0]])).toEqual([[RTM.NEWLINK, 7]]);
  });

  it('ignores replies for other sequence numbers and times out when the kernel stays silent', async () => {
    sock = new NlSocket(50);
    fakeKernel(sock, (seq) => message(NLMSG_ERROR, 0, seq + 1000, int32(0)));
    await expect(sock.request(RTM.GETLINK, 0, [Buffer.alloc(16)], 'get link x')).rejects.toMatchObject({
      code: 'ETIMEDOUT',
    });
  });

  it('talks to the real kernel: a dump of links includes loopback', async () => {
    sock = new NlSocket();
    const replies = await sock.dump(RTM.GETLINK, [Buffer.alloc(16)], 'list links');
    expect(replies.some((r) => r.type === RTM.NEWLINK && r.payload.readInt32LE(4) === 1)).toBe(true);
  });
});
