/**
 * A plaintext-only Messenger (no security environment: no keychain needed) and a raw UDP peer
 * on loopback playing another client: a plaintext message/cpim IM that asks for notifications
 * gets a plaintext CPIM delivery notification after the 200, and a display one when the user
 * reads the conversation, once; a bare application/im-iscomposing+xml drives the `composing`
 * event; neither a notification nor a status is stored as a message.
 */
import { describe, expect, it } from 'vitest';
import type { ApiEvent } from '../../shared/api.js';
import { buildCpim, parseCpim } from '../../main/im/cpim.js';
import { readImdnNotifications, requestImdn } from '../../main/im/imdn.js';
import { buildIsComposing } from '../../main/im/is-composing.js';
import { Messenger } from '../../main/im/messenger.js';
import { parseMessage } from '../../main/sip/message/parse.js';
import type { SipRequest } from '../../main/sip/message/sip-message.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';
import { FAST_SIP_TIMERS, peerToPeerAccount } from '../support/messenger-desk.js';
import { freePort } from '../support/processes.js';
import { RawUdpPeer } from '../support/raw-udp.js';

const cleanups = cleanupsAfterEach();

let sequence = 0;

/** A MESSAGE from the raw peer (alice) to bob. */
function message(alicePort: number, bobPort: number, contentType: string, body: Uint8Array): Buffer {
  const n = ++sequence;
  const head = [
    `MESSAGE sip:bob@127.0.0.1:${bobPort} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${alicePort};branch=z9hG4bKraw${n};rport`,
    'Max-Forwards: 70',
    `From: <sip:alice@127.0.0.1:${alicePort}>;tag=raw${n}`,
    `To: <sip:bob@127.0.0.1:${bobPort}>`,
    `Call-ID: raw-${n}@127.0.0.1`,
    'CSeq: 1 MESSAGE',
    `Content-Type: ${contentType}`,
    `Content-Length: ${body.length}`,
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body)]);
}

/** Our 200 to a request the raw peer got. */
function ok(request: SipRequest): string {
  const header = (name: string): string => `${name}: ${request.headers.get(name.toLowerCase())}`;
  return ['SIP/2.0 200 OK', ...request.headers.getAll('via').map((via) => `Via: ${via}`), header('From'), `${header('To')};tag=raw`, header('Call-ID'), header('CSeq'), 'Content-Length: 0', '', ''].join('\r\n');
}

/**
 * The next datagram matching `match` that the raw peer gets, waiting as long as needed (up to
 * `ms`); retransmissions of requests already seen are skipped by Call-ID and CSeq.
 */
async function next(peer: RawUdpPeer, seen: Set<string>, match: (sip: ReturnType<typeof parseMessage>) => boolean, ms = 5000): Promise<ReturnType<typeof parseMessage>> {
  for (let count = 1; ; count++) {
    const all = await peer.waitFor(count, ms);
    const sip = all[count - 1]!;
    const key = `${sip.kind} ${sip.headers.get('call-id')} ${sip.headers.get('cseq')}`;
    if (seen.has(key)) continue;
    if (!match(sip)) continue;
    seen.add(key);
    return sip;
  }
}

describe('notifications and isComposing with a plaintext peer', () => {
  it('answers a CPIM IM with delivery, then display on read; takes isComposing; stores neither', async () => {
    const dir = tempDir(cleanups, 'sipnote-notifications-');
    const bob = await Messenger.open({ dataDir: dir, security: false, networkPollMs: false, timers: FAST_SIP_TIMERS });
    cleanups.push(() => bob.close());
    const events: ApiEvent[] = [];
    bob.subscribe((event) => events.push(event));
    const bobPort = await freePort();
    const account = await bob.call('accounts.add', peerToPeerAccount('bob', bobPort));
    expect((await bob.call('app.info', {})).capabilities.composing).toBe(true);
    const alice = await RawUdpPeer.open();
    cleanups.push(() => alice.close());
    const aliceUri = `sip:alice@127.0.0.1:${alice.port}`;

    const request = requestImdn({ messageId: 'im-0001' });
    const im = buildCpim({ from: { uri: aliceUri }, to: [{ uri: `sip:bob@127.0.0.1:${bobPort}` }], dateTime: new Date(), ...request, contentType: 'text/plain;charset=utf-8', content: new TextEncoder().encode('read me') });
    await alice.send(message(alice.port, bobPort, 'message/cpim', im), bobPort);
    const seen = new Set<string>();
    const isRequest = (sip: ReturnType<typeof parseMessage>): boolean => sip.kind === 'request';
    expect(await next(alice, seen, (sip) => sip.kind === 'response')).toMatchObject({ status: 200 });
    const deliveryRequest = (await next(alice, seen, isRequest)) as SipRequest;
    expect(deliveryRequest.method).toBe('MESSAGE');
    expect(deliveryRequest.headers.get('content-type')).toBe('message/cpim');
    expect(readImdnNotifications(parseCpim(deliveryRequest.body))).toMatchObject([{ messageId: 'im-0001', kind: 'delivery', status: 'delivered' }]);
    await alice.send(ok(deliveryRequest), bobPort);

    const [conversation] = await bob.call('conversations.list', { accountId: account.id });
    await bob.call('conversations.markRead', { conversationId: conversation!.id });
    const display = (await next(alice, seen, isRequest)) as SipRequest;
    expect(readImdnNotifications(parseCpim(display.body))).toMatchObject([{ messageId: 'im-0001', kind: 'display', status: 'displayed' }]);
    await alice.send(ok(display), bobPort);
    await bob.call('conversations.markRead', { conversationId: conversation!.id });

    // isComposing, bare (RFC 3994 §4): active, then idle.
    await alice.send(message(alice.port, bobPort, 'application/im-iscomposing+xml', buildIsComposing({ state: 'active', refreshSeconds: 60 })), bobPort);
    expect(await next(alice, seen, (sip) => sip.kind === 'response')).toMatchObject({ status: 200 });
    await alice.send(message(alice.port, bobPort, 'application/im-iscomposing+xml', buildIsComposing({ state: 'idle' })), bobPort);
    expect(await next(alice, seen, (sip) => sip.kind === 'response')).toMatchObject({ status: 200 });
    expect(events.flatMap((event) => (event.type === 'composing' ? [[event.conversationId, event.active]] : []))).toEqual([
      [conversation!.id, true],
      [conversation!.id, false],
    ]);

    // Nothing more went to alice (no second display notification), nothing but the IM is stored.
    const requests = new Set(alice.received.map((data) => parseMessage(data)).filter(isRequest).map((sip) => sip.headers.get('call-id')));
    expect(requests.size).toBe(2);
    const history = await bob.call('conversations.history', { conversationId: conversation!.id });
    expect(history.messages.map((view) => view.text)).toEqual(['read me']);
  });
  it('sends no display notification when the user turned read receipts off (RFC 5438 §7.2.1.1 consent); delivery still goes', async () => {
    const dir = tempDir(cleanups, 'sipnote-notifications-');
    const bob = await Messenger.open({ dataDir: dir, security: false, networkPollMs: false, timers: FAST_SIP_TIMERS });
    cleanups.push(() => bob.close());
    expect((await bob.call('settings.update', { readReceipts: false })).readReceipts).toBe(false);
    const bobPort = await freePort();
    const account = await bob.call('accounts.add', peerToPeerAccount('bob', bobPort, { acceptPlaintext: true }));
    const alice = await RawUdpPeer.open();
    cleanups.push(() => alice.close());
    const aliceUri = `sip:alice@127.0.0.1:${alice.port}`;

    const request = requestImdn({ messageId: 'im-0002' });
    const im = buildCpim({ from: { uri: aliceUri }, to: [{ uri: `sip:bob@127.0.0.1:${bobPort}` }], dateTime: new Date(), ...request, contentType: 'text/plain;charset=utf-8', content: new TextEncoder().encode('private') });
    await alice.send(message(alice.port, bobPort, 'message/cpim', im), bobPort);
    const seen = new Set<string>();
    const isRequest = (sip: ReturnType<typeof parseMessage>): boolean => sip.kind === 'request';
    expect(await next(alice, seen, (sip) => sip.kind === 'response')).toMatchObject({ status: 200 });
    const deliveryRequest = (await next(alice, seen, isRequest)) as SipRequest;
    expect(readImdnNotifications(parseCpim(deliveryRequest.body))).toMatchObject([{ messageId: 'im-0002', kind: 'delivery' }]);
    await alice.send(ok(deliveryRequest), bobPort);

    const [conversation] = await bob.call('conversations.list', { accountId: account.id });
    await bob.call('conversations.markRead', { conversationId: conversation!.id });
    // A display notification would be queued by markRead, before this reply: the next request
    // alice gets must be the reply itself.
    await bob.call('messages.send', { accountId: account.id, to: aliceUri, text: 'a reply', plaintext: true });
    const after = (await next(alice, seen, isRequest)) as SipRequest;
    expect(after.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(after.body.toString('utf8')).toBe('a reply');
  });
});
