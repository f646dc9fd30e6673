/**
 * A plaintext-only Messenger (no security environment: no keychain needed) and a raw UDP peer
 * on loopback playing another client: a plaintext message/cpim IM that asks for notifications
 * gets a plaintext CPIM delivery notification after the 200, and a display one when the user
 * reads the conversation, once; a bare application/im-iscomposing+xml drives the `composing`
 * event; neither a notification nor a status is stored as a message. A negative delivery
 * notification fails a message of ours that a server accepted (202), for good.
 *
 * With S/MIME and the OS keychain (`sh scripts/with-secret-service.sh npx vitest run
 * test/unit/messenger-notifications.test.ts`; skipped without one, outside CI): the display
 * notification a protected IM asked for outlives a restart of the recipient's core, and is
 * sent once; the notifications of a protected IM with IMDN-Record-Route go to the top route
 * (a raw peer playing the IMDN server), still encrypted for the IM's sender.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent } from '../../shared/api.js';
import { buildCpim, parseCpim } from '../../main/im/cpim.js';
import { buildImdn, readImdnNotifications, requestImdn } from '../../main/im/imdn.js';
import { openStore } from '../../main/store/index.js';
import { buildIsComposing } from '../../main/im/is-composing.js';
import { Messenger } from '../../main/im/messenger.js';
import { parseMessage } from '../../main/sip/message/parse.js';
import type { SipRequest } from '../../main/sip/message/sip-message.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';
import { FAST_SIP_TIMERS, messageInState, messageReceived, openDesk, peerToPeerAccount, type Desk } from '../support/messenger-desk.js';
import { eventually } from '../support/eventually.js';
import { keychainGate, type KeychainGate } from '../support/secret-service.js';
import { freePort } from '../support/processes.js';
import { RawUdpPeer } from '../support/raw-udp.js';
import { routedProtectedIm } from '../support/routed-im.js';
import { SecureMessaging, securePagerPolicy } from '../../main/im/secure-messaging.js';
import { MemoryReplayCache } from '../../main/im/smime/replay-cache.js';
import { unprotectMessage } from '../../main/im/smime/unprotect.js';
import { createIdentity } from '../../main/security/certificates.js';
import { UserAgent } from '../../main/sip/ua/user-agent.js';

const cleanups = cleanupsAfterEach();

let gate: KeychainGate;
beforeAll(async () => {
  gate = await keychainGate('test/unit/messenger-notifications.test.ts');
});

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

/** Our 200 (or `status`) to a request the raw peer got. */
function ok(request: SipRequest, status = '200 OK'): string {
  const header = (name: string): string => `${name}: ${request.headers.get(name.toLowerCase())}`;
  return [`SIP/2.0 ${status}`, ...request.headers.getAll('via').map((via) => `Via: ${via}`), header('From'), `${header('To')};tag=raw`, header('Call-ID'), header('CSeq'), 'Content-Length: 0', '', ''].join('\r\n');
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

/**
 * bob: a plaintext-only Messenger with a peer-to-peer account on a free port, its events
 * collected, in a data dir of its own; alice: a raw UDP peer on loopback. Both closed after the test.
 */
async function plaintextBobAndRawAlice() {
  const dir = tempDir(cleanups, 'sipnote-notifications-');
  const bob = await Messenger.open({ dataDir: dir, security: false, networkPollMs: false, timers: FAST_SIP_TIMERS });
  cleanups.push(() => bob.close());
  const events: ApiEvent[] = [];
  bob.subscribe((event) => events.push(event));
  const bobPort = await freePort();
  const account = await bob.call('accounts.add', peerToPeerAccount('bob', bobPort));
  const alice = await RawUdpPeer.open();
  cleanups.push(() => alice.close());
  const aliceUri = `sip:alice@127.0.0.1:${alice.port}`;
  return { dir, bob, events, bobPort, account, alice, aliceUri };
}

describe('notifications and isComposing with a plaintext peer', () => {
  it('answers a CPIM IM with delivery, then display on read; takes isComposing; stores neither', async () => {
    const { bob, events, bobPort, account, alice, aliceUri } = await plaintextBobAndRawAlice();
    expect((await bob.call('app.info', {})).capabilities.composing).toBe(true);

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

describe('a negative delivery notification for a message of ours (RFC 5438)', () => {
  it('fails a message a server accepted (202) when the recipient’s side reports it undelivered; a late positive one changes nothing', async () => {
    const { dir, bob, events, bobPort, account, alice, aliceUri } = await plaintextBobAndRawAlice();
    const seen = new Set<string>();
    const isRequest = (sip: ReturnType<typeof parseMessage>): boolean => sip.kind === 'request';
    const statesOf = (id: number): string[] => events.flatMap((event) => (event.type === 'message-state' && event.message.id === id ? [event.message.state] : []));

    // Alice's side is a store-and-forward server: it takes bob's message with a 202.
    const sent = await bob.call('messages.send', { accountId: account.id, to: aliceUri, text: 'will it get there?', plaintext: true });
    const im = (await next(alice, seen, isRequest)) as SipRequest;
    await alice.send(ok(im, '202 Accepted'), bobPort);
    await eventually((listener) => bob.subscribe(listener), () => (statesOf(sent.id).includes('accepted') ? true : undefined), 5000, 'accepted');
    // Its imdn.Message-ID, as a notification quotes it (text/plain does not carry it: read from the store).
    const reader = openStore(dir);
    const messageId = reader.messages.get(sent.id)!.imdnMessageId!;
    reader.close();

    /** A plaintext CPIM notification about bob's message, from alice. */
    const notification = (status: 'failed' | 'delivered'): Uint8Array =>
      buildImdn({
        request: { messageId, dispositions: new Set(['positive-delivery', 'negative-delivery']), dateTime: '2026-03-01T10:00:00Z', from: { uri: `sip:bob@127.0.0.1:${bobPort}` }, recordRoute: [] },
        notification: { kind: 'delivery', status },
        from: { uri: aliceUri },
        dateTime: new Date(),
      }).body;
    await alice.send(message(alice.port, bobPort, 'message/cpim', notification('failed')), bobPort);
    expect(await next(alice, seen, (sip) => sip.kind === 'response')).toMatchObject({ status: 200 });
    const failed = await bob.call('conversations.history', { conversationId: sent.conversationId });
    expect(failed.messages).toHaveLength(1);
    expect(failed.messages[0]).toMatchObject({ id: sent.id, state: 'failed', status: 202 });
    expect(failed.messages[0]!.reason).toMatch(/recipient's side reported .*"failed"/);
    expect(statesOf(sent.id).at(-1)).toBe('failed');

    // A positive one after it (answered once it was acted on) changes nothing.
    const before = statesOf(sent.id).length;
    await alice.send(message(alice.port, bobPort, 'message/cpim', notification('delivered')), bobPort);
    expect(await next(alice, seen, (sip) => sip.kind === 'response')).toMatchObject({ status: 200 });
    expect(statesOf(sent.id)).toHaveLength(before);
    const after = await bob.call('conversations.history', { conversationId: sent.conversationId });
    expect(after.messages).toEqual(failed.messages);
  });
});

/** The MESSAGE requests a core sent (its SIP log, retransmissions left out), as Call-IDs, in order. */
describe('protected notifications through an IMDN server (RFC 5438 §7.2.1, §12.1.3.1)', () => {
  it('sends the delivery and the (owed) display notification of a protected IM with IMDN-Record-Route to the top route, opaque to it', async (context) => {
    if (gate.skip) context.skip();
    const bob: Desk = await openDesk(cleanups, 'bob', { messenger: { security: {}, timers: FAST_SIP_TIMERS } });
    const bobUri = `sip:bob@127.0.0.1:${bob.port}`;
    // alice: an in-memory identity; her agent only learns bob's certificate (OPTIONS), which pins hers at bob.
    const aliceAor = 'sip:alice@127.0.0.1';
    const alice = await createIdentity({ aor: aliceAor });
    const agent = await UserAgent.start({ aor: aliceAor, listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], policy: securePagerPolicy() });
    cleanups.push(() => agent.close());
    const secure = new SecureMessaging({ dataDir: tempDir(cleanups, 'sipnote-alice-'), identity: { aor: aliceAor, certificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8 } });
    cleanups.push(() => secure.close());
    const bobCertificate = await secure.discover(agent, bobUri);
    // The IMDN server: a raw peer, first of two routes; it also carries alice's IM to bob.
    const relay = await RawUdpPeer.open();
    cleanups.push(() => relay.close());
    const route1 = `sip:imdn@127.0.0.1:${relay.port}`;
    const route2 = 'sip:imdn@relay-2.example.test';

    const im = await routedProtectedIm({
      from: aliceAor,
      sender: alice,
      to: bobUri,
      recipientCertificateDer: bobCertificate,
      routes: [route1, route2],
      messageId: 'im-routed-1',
      dispositions: 'positive-delivery, display',
      text: 'routed through a relay',
      viaPort: relay.port,
    });
    await relay.send(im, bob.port);
    const seen = new Set<string>();
    expect(await next(relay, seen, (sip) => sip.kind === 'response')).toMatchObject({ status: 200 });
    await bob.next(messageReceived('routed through a relay'), 10_000);

    // The delivery notification goes to the top route (not to alice's SIP From), opaque to the relay.
    const isRequest = (sip: ReturnType<typeof parseMessage>): boolean => sip.kind === 'request';
    const delivery = (await next(relay, seen, isRequest, 10_000)) as SipRequest;
    expect(delivery.method).toBe('MESSAGE');
    expect(delivery.uri).toBe(route1);
    expect(delivery.headers.get('content-type')).toMatch(/^application\/pkcs7-mime; smime-type=authEnveloped-data/);
    expect(Buffer.from(delivery.body).includes('imdn')).toBe(false);
    await relay.send(ok(delivery), bob.port);
    // Encrypted for alice: she opens it (what the relay forwards to her).
    const opened = await unprotectMessage({
      contentType: delivery.headers.get('content-type')!,
      body: delivery.body,
      sipFrom: bobUri,
      ourAor: aliceAor,
      ourIdentity: { certificateDer: alice.certificateDer, privateKeyPkcs8: alice.privateKeyPkcs8 },
      now: new Date(),
      replayCache: new MemoryReplayCache(),
    });
    if (opened.action !== 'accept') throw new Error(`alice could not open the notification: ${opened.action}`);
    expect(opened.contentType).toBe('message/imdn+xml');
    expect(new TextDecoder().decode(opened.content)).toContain('<message-id>im-routed-1</message-id>');

    // The display notification, owed in the store until bob reads, takes the same route.
    const [conversation] = await bob.messenger.call('conversations.list', { accountId: bob.account.id });
    await bob.messenger.call('conversations.markRead', { conversationId: conversation!.id });
    const display = (await next(relay, seen, isRequest, 10_000)) as SipRequest;
    expect(display.uri).toBe(route1);
    expect(display.headers.get('content-type')).toMatch(/^application\/pkcs7-mime/);
    await relay.send(ok(display), bob.port);
  });
});

function sentMessageCallIds(events: readonly ApiEvent[]): string[] {
  const seen = new Set<string>();
  return events.flatMap((event) => {
    if (event.type !== 'sip-log' || event.entry.direction !== 'out' || !event.entry.summary.startsWith('MESSAGE ')) return [];
    const key = /^Call-ID:\s*(.*)$/im.exec(event.entry.text)?.[1] ?? '';
    if (seen.has(key)) return [];
    seen.add(key);
    return [key];
  });
}

/** The MESSAGE requests a core received (its SIP log), as Call-IDs, in order, each once. */
function receivedMessageCallIds(events: readonly ApiEvent[]): string[] {
  const seen = new Set<string>();
  return events.flatMap((event) => {
    if (event.type !== 'sip-log' || event.entry.direction !== 'in' || !event.entry.summary.startsWith('MESSAGE ')) return [];
    const key = /^Call-ID:\s*(.*)$/im.exec(event.entry.text)?.[1] ?? '';
    if (seen.has(key)) return [];
    seen.add(key);
    return [key];
  });
}

describe('owed display notifications survive a restart (S/MIME, real store on disk)', () => {
  it('sends the display notification of an IM received before the restart when it is read after it, once', async (context) => {
    if (gate.skip) context.skip();
    const options = { security: {}, timers: FAST_SIP_TIMERS };
    const bob: Desk = await openDesk(cleanups, 'bob', { messenger: options });
    const alice: Desk = await openDesk(cleanups, 'alice', { messenger: options });
    const sent = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: `sip:bob@127.0.0.1:${bob.port}`, text: 'read me after your restart' });
    await alice.next(messageInState(sent.id, 'delivered'), 10_000);
    await bob.next(messageReceived('read me after your restart'), 10_000);
    // Bob's delivery notification reaches alice (it changes nothing there: the 200 already said it).
    await alice.until(() => (receivedMessageCallIds(alice.events).length >= 1 ? true : undefined), 10_000, 'the delivery notification');

    // Bob quits without reading, and starts again on the same data dir (account, keys, pins, history).
    await bob.messenger.close();
    const events: ApiEvent[] = [];
    const reopened = await Messenger.open({ dataDir: bob.dataDir, networkPollMs: false, ...options });
    cleanups.push(() => reopened.close());
    const listeners = new Set<() => void>();
    reopened.subscribe((event) => {
      events.push(event);
      for (const listener of [...listeners]) listener();
    });
    const [account] = await reopened.call('accounts.list', {});
    const [conversation] = await reopened.call('conversations.list', { accountId: account!.id });
    expect(conversation).toMatchObject({ unread: 1 });

    await reopened.call('conversations.markRead', { conversationId: conversation!.id });
    await alice.next(messageInState(sent.id, 'displayed'), 10_000);
    // Reading again sends nothing: the reply that follows is the only other request bob sends.
    await reopened.call('conversations.markRead', { conversationId: conversation!.id });
    await reopened.call('messages.send', { accountId: account!.id, to: conversation!.target, text: 'a reply' });
    await alice.next(messageReceived('a reply'), 10_000);
    await eventually(
      (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      () => (events.some((event) => event.type === 'message-state' && event.message.text === 'a reply' && event.message.state === 'delivered') ? true : undefined),
      10_000,
      'the reply delivered',
      () => events.map((event) => event.type).join(', '),
    );
    expect(sentMessageCallIds(events)).toHaveLength(2);
    const states = alice.events.flatMap((event) => (event.type === 'message-state' && event.message.id === sent.id ? [event.message.state] : []));
    expect(states.filter((state) => state === 'displayed')).toHaveLength(1);
    const aliceConversation = (await alice.messenger.call('conversations.list', { accountId: alice.account.id }))[0]!;
    const history = await alice.messenger.call('conversations.history', { conversationId: aliceConversation.id });
    expect(history.messages.map((message) => [message.text, message.state])).toEqual([
      ['read me after your restart', 'displayed'],
      ['a reply', 'received'],
    ]);
  });
});
