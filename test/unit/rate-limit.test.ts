/**
 * The per-source rate limit: the token bucket on its own (time passed in, no sleeps), then
 * wired into the UserAgent on a ManualClock with a raw UDP peer: over the limit is answered
 * 503 with Retry-After, never dropped; retransmissions of a live transaction are not counted;
 * other sources are unaffected; off by default.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseMessage } from '../../main/sip/message/parse.js';
import type { SipResponse } from '../../main/sip/message/sip-message.js';
import { SourceRateLimiter } from '../../main/sip/ua/rate-limit.js';
import { UserAgent, type IncomingMessage, type UserAgentOptions } from '../../main/sip/ua/user-agent.js';
import { ManualClock } from '../support/manual-clock.js';
import { RawUdpPeer } from '../support/raw-udp.js';

describe('SourceRateLimiter', () => {
  it('allows a burst, then refuses with the time until the next token', () => {
    const limiter = new SourceRateLimiter({ perSecond: 2, burst: 3 });
    for (let i = 0; i < 3; i++) expect(limiter.take('192.0.2.1', 0)).toEqual({ allowed: true });
    // Empty: one token comes after 500 ms, rounded up to whole seconds.
    expect(limiter.take('192.0.2.1', 0)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(limiter.take('192.0.2.1', 499)).toMatchObject({ allowed: false });
    expect(limiter.take('192.0.2.1', 500)).toEqual({ allowed: true });
    expect(limiter.take('192.0.2.1', 500)).toMatchObject({ allowed: false });
  });

  it('computes Retry-After from the refill rate (slow rates give longer waits)', () => {
    const limiter = new SourceRateLimiter({ perSecond: 0.1, burst: 1 }); // one token per 10 s
    expect(limiter.take('a', 0)).toEqual({ allowed: true });
    expect(limiter.take('a', 0)).toEqual({ allowed: false, retryAfterSeconds: 10 });
    expect(limiter.take('a', 4_000)).toEqual({ allowed: false, retryAfterSeconds: 6 });
    expect(limiter.take('a', 9_999)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(limiter.take('a', 10_000)).toEqual({ allowed: true });
  });

  it('refills no further than the burst, and keeps sources apart', () => {
    const limiter = new SourceRateLimiter({ perSecond: 10, burst: 2 });
    expect(limiter.take('a', 0).allowed).toBe(true);
    expect(limiter.take('a', 0).allowed).toBe(true);
    expect(limiter.take('a', 0).allowed).toBe(false);
    expect(limiter.take('b', 0).allowed).toBe(true); // another address has its own bucket
    // A long quiet spell refills to 2, not more.
    expect([0, 1, 2].map(() => limiter.take('a', 60_000).allowed)).toEqual([true, true, false]);
  });

  it('does not mint tokens when the clock steps back', () => {
    const limiter = new SourceRateLimiter({ perSecond: 1, burst: 1 });
    expect(limiter.take('a', 5_000).allowed).toBe(true);
    expect(limiter.take('a', 0).allowed).toBe(false);
    expect(limiter.take('a', 5_999).allowed).toBe(false);
    expect(limiter.take('a', 6_000).allowed).toBe(true);
  });

  it('remembers at most maxSources, even under a flood of new source addresses', () => {
    const limiter = new SourceRateLimiter({ perSecond: 1, burst: 1 }, 3);
    limiter.take('busy', 0); // empty until t = 1000
    limiter.take('idle1', 0);
    limiter.take('idle2', 0);
    // At t = 1000 the idle ones are full again, and busy is too; at t = 500 none is.
    limiter.take('new1', 500);
    expect(limiter.size).toBeLessThanOrEqual(3);
    for (let i = 0; i < 100; i++) limiter.take(`spoofed${i}`, 500);
    expect(limiter.size).toBeLessThanOrEqual(3);
  });

  it('rejects nonsense configuration', () => {
    expect(() => new SourceRateLimiter({ perSecond: 0, burst: 1 })).toThrow(RangeError);
    expect(() => new SourceRateLimiter({ perSecond: 1, burst: 0.5 })).toThrow(RangeError);
    expect(() => new SourceRateLimiter({ perSecond: Number.NaN, burst: 1 })).toThrow(RangeError);
    expect(() => new SourceRateLimiter({ perSecond: 1, burst: 1 }, 0)).toThrow(RangeError);
  });

  it('property: over any window, one source is allowed at most burst + rate × window', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 300 }),
        (perSecond, burst, gaps) => {
          const limiter = new SourceRateLimiter({ perSecond, burst });
          let now = 0;
          let allowed = 0;
          for (const gap of gaps) {
            now += gap;
            const decision = limiter.take('x', now);
            if (decision.allowed) allowed++;
            else expect(decision.retryAfterSeconds).toBeGreaterThanOrEqual(1);
          }
          expect(allowed).toBeLessThanOrEqual(burst + (perSecond * now) / 1000 + 1e-9);
        },
      ),
    );
  });
});

// ---- Wired into the UserAgent ------------------------------------------------------------

const agents: UserAgent[] = [];
const peers: RawUdpPeer[] = [];

afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.close()));
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

async function listener(options: Partial<UserAgentOptions>): Promise<{ ua: UserAgent; port: number; received: IncomingMessage[] }> {
  const received: IncomingMessage[] = [];
  const ua = await UserAgent.start({
    aor: 'sip:bob@127.0.0.1',
    listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
    onMessage: (message) => void received.push(message),
    ...options,
  });
  agents.push(ua);
  const port = ua.listening.find((spec) => spec.transport === 'udp')?.port;
  if (port === undefined) throw new Error('no UDP listener');
  return { ua, port, received };
}

async function rawPeer(address = '127.0.0.1'): Promise<RawUdpPeer> {
  const peer = await RawUdpPeer.open(address);
  peers.push(peer);
  return peer;
}

function message(peerPort: number, n: number): string {
  const body = `message ${n}`;
  return [
    'MESSAGE sip:bob@127.0.0.1 SIP/2.0',
    `Via: SIP/2.0/UDP 127.0.0.1:${peerPort};branch=z9hG4bKrl${n};rport`,
    'Max-Forwards: 70',
    'From: <sip:flood@127.0.0.1>;tag=fl',
    'To: <sip:bob@127.0.0.1>',
    `Call-ID: rl-${peerPort}-${n}`,
    `CSeq: ${n} MESSAGE`,
    'Content-Type: text/plain',
    `Content-Length: ${body.length}`,
    '',
    body,
  ].join('\r\n');
}

/** The responses the peer got for one Call-ID, in arrival order. */
function statusOf(peer: RawUdpPeer, callId: string): Array<{ status: number; retryAfter: string | undefined }> {
  return peer.received
    .map((data) => parseMessage(data))
    .filter((reply): reply is SipResponse => reply.kind === 'response' && reply.callId === callId)
    .map((reply) => ({ status: reply.status, retryAfter: reply.headers.get('retry-after') }));
}

describe('UserAgent with rateLimit', () => {
  it('answers requests over the limit with 503 and Retry-After, and lets the source in again later', async () => {
    const clock = new ManualClock();
    const bob = await listener({ clock, rateLimit: { perSecond: 1, burst: 2 } });
    const peer = await rawPeer();
    for (let n = 1; n <= 4; n++) await peer.send(message(peer.port, n), bob.port);
    await peer.waitFor(4);
    const answers = [1, 2, 3, 4].map((n) => statusOf(peer, `rl-${peer.port}-${n}`).map((r) => r.status));
    expect(answers).toEqual([[200], [200], [503], [503]]); // every request got an answer
    expect(statusOf(peer, `rl-${peer.port}-3`)[0]?.retryAfter).toBe('1');
    expect(bob.received.map((m) => m.cseq)).toEqual([1, 2]);

    clock.advance(1_000);
    await peer.send(message(peer.port, 5), bob.port);
    await peer.waitFor(5);
    expect(statusOf(peer, `rl-${peer.port}-5`).map((r) => r.status)).toEqual([200]);
  });

  it('does not count retransmissions of a live transaction', async () => {
    const clock = new ManualClock();
    const bob = await listener({ clock, rateLimit: { perSecond: 1, burst: 1 } });
    const peer = await rawPeer();
    const first = message(peer.port, 1);
    await peer.send(first, bob.port);
    await peer.waitFor(1);
    // The same request again (same branch): the transaction resends its 200, no 503.
    for (let i = 0; i < 3; i++) await peer.send(first, bob.port);
    await peer.waitFor(4);
    expect(statusOf(peer, `rl-${peer.port}-1`).map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(bob.received).toHaveLength(1);
  });

  it('limits per source address: another address is still served while one is over', async () => {
    const clock = new ManualClock();
    const bob = await listener({ clock, rateLimit: { perSecond: 1, burst: 1 } });
    const flooder = await rawPeer('127.0.0.1');
    const second = await rawPeer('127.0.0.1'); // same address, other port: shares the bucket
    await flooder.send(message(flooder.port, 1), bob.port);
    await second.send(message(second.port, 1), bob.port);
    await flooder.waitFor(1);
    await second.waitFor(1);
    expect(statusOf(second, `rl-${second.port}-1`).map((r) => r.status)).toEqual([503]);
    // A different loopback address has a bucket of its own.
    const other = await rawPeer('127.0.0.2');
    await other.send(message(other.port, 1), bob.port);
    await other.waitFor(1);
    expect(statusOf(other, `rl-${other.port}-1`).map((r) => r.status)).toEqual([200]);
  });

  it('is off by default', async () => {
    const bob = await listener({ clock: new ManualClock() });
    const peer = await rawPeer();
    for (let n = 1; n <= 20; n++) await peer.send(message(peer.port, n), bob.port);
    await peer.waitFor(20);
    expect(peer.received.map((d) => d.toString('latin1').slice(0, 11))).toEqual(Array(20).fill('SIP/2.0 200'));
  });
});
