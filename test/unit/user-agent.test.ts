/**
 * The RFC 3428 user agent over real sockets on loopback: two UAs talking, and raw UDP peers
 * playing the odd behaviour real peers show. Time-driven behaviour (retransmission, Timer F)
 * runs on a ManualClock, so nothing here sleeps.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseMessage } from '../../main/sip/message/parse.js';
import type { SipRequest, SipResponse } from '../../main/sip/message/sip-message.js';
import { MessageTooLargeError } from '../../main/sip/ua/errors.js';
import { UserAgent, type IncomingMessage, type MessageDecision, type SipTrace, type UserAgentOptions } from '../../main/sip/ua/user-agent.js';
import { formatUri, parseUri } from '../../main/sip/uri.js';
import { ManualClock } from '../support/manual-clock.js';
import { RawUdpPeer } from '../support/raw-udp.js';

const agents: UserAgent[] = [];
const peers: RawUdpPeer[] = [];

afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.close()));
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

async function agent(aor: string, options: Partial<UserAgentOptions> = {}, host = '127.0.0.1'): Promise<UserAgent> {
  const ua = await UserAgent.start({
    aor,
    listen: [
      { transport: 'udp', host, port: 0 },
      { transport: 'tcp', host, port: 0 },
    ],
    ...options,
  });
  agents.push(ua);
  return ua;
}

async function rawPeer(address = '127.0.0.1'): Promise<RawUdpPeer> {
  const peer = await RawUdpPeer.open(address);
  peers.push(peer);
  return peer;
}

function portOf(ua: UserAgent, transport: 'udp' | 'tcp' = 'udp'): number {
  const spec = ua.listening.find((s) => s.transport === transport);
  if (spec === undefined) throw new Error('no listener');
  return spec.port;
}

function inbox(): { messages: IncomingMessage[]; handler: (m: IncomingMessage) => void } {
  const messages: IncomingMessage[] = [];
  return { messages, handler: (m) => void messages.push(m) };
}

/** A request as a peer would write it, sent from `peerPort`. */
function rawRequest(opts: { method?: string; peerPort: number; branch?: string; callId?: string; cseq?: number; toTag?: string; contentType?: string; body?: string; extra?: string[] }): string {
  const method = opts.method ?? 'MESSAGE';
  const body = opts.body ?? 'hello';
  return [
    `${method} sip:bob@127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${opts.peerPort};branch=${opts.branch ?? 'z9hG4bKraw1'};rport`,
    'Max-Forwards: 70',
    `From: <sip:raw@127.0.0.1>;tag=rawtag`,
    `To: <sip:bob@127.0.0.1>${opts.toTag === undefined ? '' : `;tag=${opts.toTag}`}`,
    `Call-ID: ${opts.callId ?? 'raw-call-1'}`,
    `CSeq: ${opts.cseq ?? 1} ${method}`,
    ...(body.length > 0 ? [`Content-Type: ${opts.contentType ?? 'text/plain'}`] : []),
    ...(opts.extra ?? []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

describe('sending and receiving MESSAGE', () => {
  it.each(['udp', 'tcp'] as const)('delivers a text/plain MESSAGE over %s and reports 200 as delivered', async (transport) => {
    const box = inbox();
    const bob = await agent('sip:bob@127.0.0.1', { onMessage: box.handler });
    const traces: SipTrace[] = [];
    const alice = await agent('sip:alice@127.0.0.1', { onTrace: (t) => traces.push(t) });
    const result = await alice.sendMessage({
      to: `sip:bob@127.0.0.1:${portOf(bob, transport)}`,
      transport,
      contentType: 'text/plain;charset=utf-8',
      body: Buffer.from('Grüße ✓'),
    });
    expect(result).toMatchObject({ outcome: 'delivered', status: 200, transport });
    expect(box.messages).toHaveLength(1);
    const got = box.messages[0] as IncomingMessage;
    expect(got.body.toString('utf8')).toBe('Grüße ✓');
    expect(got.from).toBe('sip:alice@127.0.0.1');
    expect(got.transport).toBe(transport);
    expect(got.callId).toBe(result.callId);

    // What went on the wire follows RFC 3428 §4 and RFC 3261 §8.1.1.
    const sent = parseMessage(traces.find((t) => t.direction === 'out')?.data ?? Buffer.alloc(0)) as SipRequest;
    expect(sent.method).toBe('MESSAGE');
    expect(sent.headers.has('contact')).toBe(false);
    expect(sent.headers.get('max-forwards')).toBe('70');
    expect(sent.to.params.has('tag')).toBe(false);
    expect(sent.from.params.get('tag')).toMatch(/^[0-9a-f]{16}$/);
    expect(sent.topVia.params.get('branch')).toMatch(/^z9hG4bK/);
    expect(sent.topVia.params.has('rport')).toBe(true);
    expect(sent.topVia.transport).toBe(transport.toUpperCase());
    expect(sent.headers.get('date')).toMatch(/GMT$/);
    const response = parseMessage(traces.find((t) => t.direction === 'in')?.data ?? Buffer.alloc(0)) as SipResponse;
    expect(response.status).toBe(200);
    expect(response.headers.has('contact')).toBe(false);
    expect(response.body.length).toBe(0);
    expect(response.to.params.get('tag')).toBeTruthy();
  });

  it('works over IPv6 loopback', async () => {
    const box = inbox();
    const bob = await agent('sip:bob@[::1]', { onMessage: box.handler }, '::1');
    const alice = await agent('sip:alice@[::1]', {}, '::1');
    const result = await alice.sendMessage({ to: `sip:bob@[::1]:${portOf(bob)}`, contentType: 'text/plain', body: Buffer.from('v6') });
    expect(result.outcome).toBe('delivered');
    expect(box.messages[0]?.remote.address).toBe('::1');
  });

  it.each([
    [202, 'accepted'],
    [480, 'failed'],
    [603, 'refused'],
  ] as const)('reports a %i from the application as %s', async (status, outcome) => {
    const bob = await agent('sip:bob@127.0.0.1', { onMessage: (): MessageDecision => ({ status }) });
    const alice = await agent('sip:alice@127.0.0.1');
    const result = await alice.sendMessage({ to: `sip:bob@127.0.0.1:${portOf(bob)}`, contentType: 'text/plain', body: Buffer.from('x') });
    expect(result).toMatchObject({ status, outcome });
  });

  it('answers 500 when the application fails to take the message, never 200', async () => {
    const bob = await agent('sip:bob@127.0.0.1', {
      onMessage: () => {
        throw new Error('disk full');
      },
    });
    const alice = await agent('sip:alice@127.0.0.1');
    const result = await alice.sendMessage({ to: `sip:bob@127.0.0.1:${portOf(bob)}`, contentType: 'text/plain', body: Buffer.from('x') });
    expect(result).toMatchObject({ status: 500, outcome: 'failed' });
  });

  it('answers 415 with Accept for a body type it cannot take (RFC 3261 §8.2.3, RFC 8591 §7.3)', async () => {
    const bob = await agent('sip:bob@127.0.0.1');
    const peer = await rawPeer();
    await peer.send(rawRequest({ peerPort: peer.port, contentType: 'application/json', body: '{}' }), portOf(bob));
    const [response] = (await peer.waitFor(1)) as SipResponse[];
    expect(response?.status).toBe(415);
    expect(response?.headers.get('accept')).toContain('text/plain');
  });

  it('answers 413 for a body over the configured limit', async () => {
    const bob = await agent('sip:bob@127.0.0.1', { policy: { allowedMethods: ['MESSAGE', 'OPTIONS'], acceptedTypes: ['text/plain'], maxBodyBytes: 10, supportedExtensions: [] } });
    const alice = await agent('sip:alice@127.0.0.1');
    const result = await alice.sendMessage({ to: `sip:bob@127.0.0.1:${portOf(bob)}`, contentType: 'text/plain', body: Buffer.from('more than ten bytes') });
    expect(result).toMatchObject({ status: 413, outcome: 'failed' });
  });

  it('answers OPTIONS with its capabilities and INVITE with 405 and Allow', async () => {
    const bob = await agent('sip:bob@127.0.0.1');
    const peer = await rawPeer();
    await peer.send(rawRequest({ method: 'OPTIONS', peerPort: peer.port, body: '', branch: 'z9hG4bKopt' }), portOf(bob));
    await peer.send(rawRequest({ method: 'INVITE', peerPort: peer.port, body: '', branch: 'z9hG4bKinv', callId: 'inv' }), portOf(bob));
    const responses = (await peer.waitFor(2)) as SipResponse[];
    const byMethod = new Map(responses.map((r) => [r.cseq.method, r]));
    expect(byMethod.get('OPTIONS')?.status).toBe(200);
    expect(byMethod.get('OPTIONS')?.headers.getList('allow')).toEqual(['MESSAGE', 'OPTIONS']);
    expect(byMethod.get('OPTIONS')?.headers.getList('accept')).toContain('message/cpim');
    expect(byMethod.get('INVITE')?.status).toBe(405);
    expect(byMethod.get('INVITE')?.headers.getList('allow')).toEqual(['MESSAGE', 'OPTIONS']);
  });

  it('answers 481 to a MESSAGE inside a dialog it does not have, and 400 to a malformed one', async () => {
    const bob = await agent('sip:bob@127.0.0.1');
    const peer = await rawPeer();
    await peer.send(rawRequest({ peerPort: peer.port, toTag: 'dialog', branch: 'z9hG4bKa' }), portOf(bob));
    await peer.send(rawRequest({ peerPort: peer.port, branch: 'z9hG4bKb', callId: 'bad', extra: ['Max-Forwards: many'] }), portOf(bob));
    const responses = (await peer.waitFor(2)) as SipResponse[];
    const byCall = new Map(responses.map((r) => [r.callId, r.status]));
    expect(byCall.get('raw-call-1')).toBe(481);
    expect(byCall.get('bad')).toBe(400);
  });

  it('absorbs a retransmitted request: one message for the application, the same 200 twice (§17.2.2)', async () => {
    const box = inbox();
    const bob = await agent('sip:bob@127.0.0.1', { onMessage: box.handler });
    const peer = await rawPeer();
    const request = rawRequest({ peerPort: peer.port });
    await peer.send(request, portOf(bob));
    await peer.waitFor(1);
    await peer.send(request, portOf(bob));
    const [first, second] = (await peer.waitFor(2)) as SipResponse[];
    expect(box.messages).toHaveLength(1);
    expect(first?.status).toBe(200);
    expect(second?.to.params.get('tag')).toBe(first?.to.params.get('tag'));
  });

  it('answers every message waiting for the same promise with what it settles to, and each other promise on its own', async () => {
    // The listener returns one promise for every message it prints in one write: each message
    // waiting for it is answered, in order, with what it settles to (user-agent.ts deliver).
    let settle: { resolve: (decision: MessageDecision | void) => void; reject: (error: Error) => void } | undefined;
    let shared: Promise<MessageDecision | void> | undefined;
    const seen: string[] = [];
    let seenMore: (() => void) | undefined;
    const bob = await agent('sip:bob@127.0.0.1', {
      onMessage: (message) => {
        seen.push(message.callId);
        seenMore?.();
        // Call-IDs starting with "own" get a promise of their own, already resolved with 202.
        if (message.callId.startsWith('own')) return Promise.resolve({ status: 202 });
        shared ??= new Promise((resolve, reject) => {
          settle = { resolve, reject };
        });
        return shared;
      },
    });
    const peer = await rawPeer();
    const send = (callId: string): Promise<void> => peer.send(rawRequest({ peerPort: peer.port, callId, branch: `z9hG4bK${callId}` }), portOf(bob));
    /** Resolves once the handler has seen `count` messages in all. */
    const arrived = async (count: number): Promise<void> => {
      while (seen.length < count) await new Promise<void>((resolve) => (seenMore = resolve));
      seenMore = undefined;
    };
    for (const callId of ['s1', 'own1', 's2', 's3']) await send(callId);
    await arrived(4);
    const own = (await peer.waitFor(1)) as SipResponse[];
    expect(own.map((r) => [r.callId, r.status])).toEqual([['own1', 202]]);
    settle?.resolve({ status: 299, reason: 'Fine' });
    const all = (await peer.waitFor(4)) as SipResponse[];
    expect(all.slice(1).map((r) => [r.callId, r.status, r.reason])).toEqual([
      ['s1', 299, 'Fine'],
      ['s2', 299, 'Fine'],
      ['s3', 299, 'Fine'],
    ]);
    // The same promise, settled already: a later message reacts to it on its own.
    await send('s4');
    expect(((await peer.waitFor(5)) as SipResponse[])[4]).toMatchObject({ callId: 's4', status: 299 });
    // A new shared promise that rejects: 500 for each message waiting for it.
    shared = undefined;
    await send('s5');
    await send('s6');
    await arrived(7);
    settle?.reject(new Error('store failed'));
    const failed = ((await peer.waitFor(7)) as SipResponse[]).slice(5);
    expect(failed.map((r) => [r.callId, r.status])).toEqual([
      ['s5', 500],
      ['s6', 500],
    ]);
  });

  it('fills received and rport in the Via of its response (RFC 3581 §4)', async () => {
    const bob = await agent('sip:bob@127.0.0.1');
    const peer = await rawPeer();
    const request = rawRequest({ peerPort: peer.port }).replace(`127.0.0.1:${peer.port}`, 'client.invalid:5999');
    await peer.send(request, portOf(bob));
    const [response] = (await peer.waitFor(1)) as SipResponse[];
    expect(response?.topVia.params.get('received')).toBe('127.0.0.1');
    expect(response?.topVia.params.get('rport')).toBe(String(peer.port));
  });

  it('answers 482 to the same request arriving again on another branch while the first is pending (§8.2.2.2)', async () => {
    let release: () => void = () => undefined;
    const pending = new Promise<void>((resolve) => (release = resolve));
    const bob = await agent('sip:bob@127.0.0.1', { onMessage: () => pending });
    const peer = await rawPeer();
    await peer.send(rawRequest({ peerPort: peer.port, branch: 'z9hG4bKfirst' }), portOf(bob));
    await peer.send(rawRequest({ peerPort: peer.port, branch: 'z9hG4bKfork' }), portOf(bob));
    const [loop] = (await peer.waitFor(1)) as SipResponse[];
    expect(loop?.status).toBe(482);
    release();
    const [, ok] = (await peer.waitFor(2)) as SipResponse[];
    expect(ok?.status).toBe(200);
  });

  it('drops stray responses and garbage without disturbing real traffic', async () => {
    const box = inbox();
    const bob = await agent('sip:bob@127.0.0.1', { onMessage: box.handler });
    const peer = await rawPeer();
    await peer.send('SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKnone\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nContent-Length: 0\r\n\r\n', portOf(bob));
    await peer.send(Buffer.from([0, 1, 2, 3, 255]), portOf(bob));
    await peer.send(rawRequest({ peerPort: peer.port }), portOf(bob));
    const [response] = (await peer.waitFor(1)) as SipResponse[];
    expect(response?.status).toBe(200);
    expect(box.messages).toHaveLength(1);
  });

  it('gives each MESSAGE its own From and To, whatever the one before it carried', async () => {
    // The UA remembers the last From/To URI it formatted (consecutive requests repeat them).
    const box = inbox();
    const bob = await agent('sip:bob@127.0.0.1', { onMessage: box.handler });
    const peer = await rawPeer();
    const sequence: Array<[string, string]> = [
      ['sip:alice@127.0.0.1', 'sip:bob@127.0.0.1'],
      ['sip:alice@127.0.0.1', 'sip:bob@127.0.0.1'],
      ['sip:%63arol@127.0.0.1;transport=udp', 'sip:bob@127.0.0.1'],
      ['sip:alice@127.0.0.1', 'SIP:bob@127.0.0.1:5060'],
      ['sip:alice@127.0.0.1', 'sip:bob@127.0.0.1'],
    ];
    const expected = sequence.map(([from, to]) => [formatUri(parseUri(from)), formatUri(parseUri(to))]);
    for (const [index, [from, to]] of sequence.entries()) {
      const request = rawRequest({ peerPort: peer.port, branch: `z9hG4bKseq${index}`, callId: `seq-${index}` })
        .replace('From: <sip:raw@127.0.0.1>', `From: <${from}>`)
        .replace('To: <sip:bob@127.0.0.1>', `To: <${to}>`);
      await peer.send(request, portOf(bob));
      await peer.waitFor(index + 1);
    }
    expect(box.messages.map((m) => [m.from, m.to])).toEqual(expected);
  });
});

describe('UAC rules', () => {
  it('keeps one MESSAGE pending per destination (RFC 3428 §8)', async () => {
    const releases: Array<() => void> = [];
    const seen: string[] = [];
    const bob = await agent('sip:bob@127.0.0.1', {
      onMessage: (m) => {
        seen.push(m.body.toString());
        return new Promise<void>((resolve) => releases.push(resolve));
      },
    });
    const alice = await agent('sip:alice@127.0.0.1');
    const to = `sip:bob@127.0.0.1:${portOf(bob)}`;
    const first = alice.sendMessage({ to, contentType: 'text/plain', body: Buffer.from('one'), transport: 'tcp' });
    const second = alice.sendMessage({ to, contentType: 'text/plain', body: Buffer.from('two'), transport: 'tcp' });
    while (releases.length === 0) await new Promise((r) => setImmediate(r));
    // A full round trip to another destination meanwhile proves alice is not stalled, and
    // that the second MESSAGE to bob still waits for the first to be answered.
    const carol = await agent('sip:carol@127.0.0.1');
    expect((await alice.sendMessage({ to: `sip:carol@127.0.0.1:${portOf(carol)}`, contentType: 'text/plain', body: Buffer.from('c'), transport: 'tcp' })).status).toBe(200);
    expect(seen).toEqual(['one']);
    releases[0]?.();
    expect((await first).status).toBe(200);
    while (releases.length < 2) await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(['one', 'two']);
    releases[1]?.();
    expect((await second).status).toBe(200);
  });

  it('sends a request over 1300 bytes by TCP even when UDP was asked for, where the path MTU is unknown (§18.1.1)', async () => {
    const box = inbox();
    const bob = await agent('sip:bob@127.0.0.1', { onMessage: box.handler });
    const alice = await agent('sip:alice@127.0.0.1', { pathMtu: () => undefined });
    const body = Buffer.from('x'.repeat(1500));
    const result = await alice.sendMessage({ to: `sip:bob@127.0.0.1:${portOf(bob)}`, transport: 'udp', contentType: 'text/plain', body });
    expect(result).toMatchObject({ status: 200, transport: 'tcp' });
    expect(box.messages[0]?.transport).toBe('tcp');
  });

  it('keeps a request over 1300 bytes on UDP when it stays 200 bytes below a known path MTU (loopback)', async () => {
    const box = inbox();
    const bob = await agent('sip:bob@127.0.0.1', { onMessage: box.handler });
    const alice = await agent('sip:alice@127.0.0.1', { pathMtu: () => 9000 });
    const result = await alice.sendMessage({ to: `sip:bob@127.0.0.1:${portOf(bob)}`, transport: 'udp', contentType: 'text/plain', body: Buffer.from('m'.repeat(5000)) });
    expect(result).toMatchObject({ status: 200, transport: 'udp' });
    const tooBig = await alice.sendMessage({ to: `sip:bob@127.0.0.1:${portOf(bob)}`, transport: 'udp', contentType: 'text/plain', body: Buffer.from('m'.repeat(8900)) });
    expect(tooBig).toMatchObject({ status: 200, transport: 'tcp' });
  });

  it('refuses a MESSAGE over 1300 bytes on a path not known to be congestion-controlled (RFC 3428 §8)', async () => {
    const bob = await agent('sip:bob@127.0.0.1');
    const alice = await agent('sip:alice@127.0.0.1', { pathMtu: () => undefined });
    // Bob's own address stands in for an outbound proxy: a loose route makes the path indirect.
    const input = { to: `sip:bob@127.0.0.1:${portOf(bob)}`, contentType: 'text/plain', body: Buffer.from('y'.repeat(1400)), route: [`<sip:127.0.0.1:${portOf(bob)};lr>`] };
    await expect(alice.sendMessage(input)).rejects.toBeInstanceOf(MessageTooLargeError);
    await expect(alice.sendMessage(input)).rejects.toThrow(/1300/);
    const asserted = await agent('sip:carol@127.0.0.1', { congestionSafePath: true, pathMtu: () => undefined });
    expect((await asserted.sendMessage(input)).status).toBe(200);
  });

  it('retransmits over UDP at T1, 2T1, … capped at T2, then reports a timeout as 408 (§17.1.2.2)', async () => {
    const clock = new ManualClock();
    const alice = await agent('sip:alice@127.0.0.1', { clock });
    const silent = await rawPeer();
    const result = alice.sendMessage({ to: `sip:bob@127.0.0.1:${silent.port}`, contentType: 'text/plain', body: Buffer.from('anyone?') });
    await silent.waitFor(1);
    clock.advance(31_999);
    const copies = await silent.waitFor(11);
    expect(new Set(copies.map((m) => (m.kind === 'request' ? m.topVia.params.get('branch') : ''))).size).toBe(1);
    clock.advance(1);
    expect(await result).toMatchObject({ outcome: 'timeout', status: 408 });
    expect(silent.received.length).toBe(11);
  });

  it('reports a TCP connection refusal as a transport error (503)', async () => {
    const alice = await agent('sip:alice@127.0.0.1');
    const closed = await rawPeer(); // a UDP port; nobody listens on TCP there
    const result = await alice.sendMessage({ to: `sip:bob@127.0.0.1:${closed.port}`, transport: 'tcp', contentType: 'text/plain', body: Buffer.from('x') });
    expect(result).toMatchObject({ outcome: 'transport-error', status: 503 });
  });
});
