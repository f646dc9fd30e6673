/**
 * The glue of IMDN (RFC 5438) and isComposing (RFC 3994) into messaging
 * (main/im/message-notifications.ts), on a manual clock: a burst of 50 notifications is paced,
 * not sent at once; a composing conversation goes active → idle after the idle timeout and the
 * peer's indicator expires without a refresh; control bodies are told apart from IMs; received
 * notifications, negative delivery included, move our messages in a real store; what an owed
 * display notification needs goes to the store and comes back whole.
 */
import { describe, expect, it } from 'vitest';
import { buildCpim, parseCpim } from '../../main/im/cpim.js';
import { buildIsComposing, type IsComposingStatus } from '../../main/im/is-composing.js';
import { buildImdn, imdnDestination, readImdnNotifications, readImdnRequest, requestImdn, type ReceivedImdn, type ReceivedImdnRequest } from '../../main/im/imdn.js';
import { buildMessageEntity } from '../../main/im/smime/protect.js';
import {
  applyImdnNotifications,
  ComposingTracker,
  ControlBodyError,
  deliveryImdnPayload,
  displayNotificationOf,
  imdnPayload,
  imdnRequestOf,
  NotificationPacer,
  owedDisplayRequest,
  readControlBody,
  readProtectedControl,
  REQUESTED_DISPOSITIONS,
} from '../../main/im/message-notifications.js';
import { openStore } from '../../main/store/index.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';
import { ManualClock } from '../support/manual-clock.js';
import { validateCommand } from '../../shared/api-schema.js';

const cleanups = cleanupsAfterEach();

const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';

function request(messageId: string): ReceivedImdnRequest {
  const headers = requestImdn({ messageId });
  const cpim = buildCpim({ from: { uri: ALICE }, to: [{ uri: BOB }], dateTime: new Date('2026-03-01T10:00:00Z'), ...headers, contentType: 'text/plain', content: new TextEncoder().encode('hi') });
  return readImdnRequest(parseCpim(cpim))!;
}

describe('NotificationPacer', () => {
  it('turns a burst of 50 notifications to one peer into a paced stream (10 at once, then 5 a second)', () => {
    const clock = new ManualClock();
    const sent: Array<{ at: number; item: number }> = [];
    const pacer = new NotificationPacer<number>(clock, (_peer, item) => sent.push({ at: clock.now(), item }));
    for (let i = 0; i < 50; i++) pacer.enqueue(BOB, `m${i}:delivery`, i);
    expect(sent).toHaveLength(10);
    expect(pacer.queued).toBe(40);
    clock.advance(1000);
    expect(sent).toHaveLength(15);
    clock.advance(7000);
    expect(sent).toHaveLength(50);
    expect(sent.map((entry) => entry.item)).toEqual([...Array(50).keys()]);
    // Never more than the burst plus what a second refills, in any one-second window.
    for (const { at } of sent) expect(sent.filter((other) => other.at >= at && other.at < at + 1000).length).toBeLessThanOrEqual(15);
    expect(clock.pendingTimers).toBe(0);
  });

  it('sends each (message, kind) once and stops with its timer', () => {
    const clock = new ManualClock();
    const sent: string[] = [];
    const dropped: string[] = [];
    const pacer = new NotificationPacer<string>(clock, (_peer, item) => sent.push(item), { perPeerBurst: 1, perPeerPerSecond: 1 }, (_peer, key, reason) => dropped.push(`${key} ${reason}`));
    pacer.enqueue(BOB, 'a:delivery', 'a');
    pacer.enqueue(BOB, 'a:delivery', 'again');
    pacer.enqueue(BOB, 'b:delivery', 'b');
    expect(sent).toEqual(['a']);
    expect(dropped).toEqual(['a:delivery duplicate']);
    expect(clock.pendingTimers).toBe(1);
    pacer.stop();
    expect(clock.pendingTimers).toBe(0);
    clock.advance(10_000);
    expect(sent).toEqual(['a']);
  });
});

describe('NotificationPacer.finish (shutdown)', () => {
  it('keeps sending at its pace until the deadline, takes nothing new, and says how many were left', async () => {
    const clock = new ManualClock();
    const sent: string[] = [];
    const pacer = new NotificationPacer<string>(clock, (_peer, item) => sent.push(item), { perPeerBurst: 2, perPeerPerSecond: 1 });
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) pacer.enqueue(BOB, `${id}:delivery`, id);
    expect(sent).toEqual(['a', 'b']);
    const left = pacer.finish(clock.now() + 2500);
    pacer.enqueue(BOB, 'late:delivery', 'late');
    clock.advance(1000);
    expect(sent).toEqual(['a', 'b', 'c']);
    clock.advance(1000);
    expect(sent).toEqual(['a', 'b', 'c', 'd']);
    clock.advance(500); // the deadline
    await expect(left).resolves.toBe(2);
    clock.advance(10_000);
    expect(sent).toEqual(['a', 'b', 'c', 'd']);
    expect(clock.pendingTimers).toBe(0);
  });

  it('resolves as soon as the queue is empty, before the deadline', async () => {
    const clock = new ManualClock();
    const sent: string[] = [];
    const pacer = new NotificationPacer<string>(clock, (_peer, item) => sent.push(item), { perPeerBurst: 1, perPeerPerSecond: 1 });
    pacer.enqueue(BOB, 'a:delivery', 'a');
    pacer.enqueue(BOB, 'b:delivery', 'b');
    const left = pacer.finish(clock.now() + 60_000);
    clock.advance(1000);
    await expect(left).resolves.toBe(0);
    expect(sent).toEqual(['a', 'b']);
    expect(clock.pendingTimers).toBe(0);
    await expect(new NotificationPacer<string>(clock, () => undefined).finish(clock.now() + 1)).resolves.toBe(0);
  });
});

describe('ComposingTracker', () => {
  function rig(): { clock: ManualClock; sent: IsComposingStatus[]; changes: string[]; tracker: ComposingTracker; answer: { status: number } } {
    const clock = new ManualClock();
    const sent: IsComposingStatus[] = [];
    const changes: string[] = [];
    const answer = { status: 200 };
    const tracker = new ComposingTracker({
      clock,
      send: (_conversation, status) => {
        sent.push(status);
        return Promise.resolve(answer.status);
      },
      changed: (conversation, change) => changes.push(`${conversation}:${change.state}:${change.cause}`),
      sender: { idleTimeoutMs: 15_000 },
    });
    return { clock, sent, changes, tracker, answer };
  }

  it('sends active once while the user types, and idle after 15 s without typing', () => {
    const { clock, sent, tracker } = rig();
    tracker.typing(1);
    clock.advance(5000);
    tracker.typing(1);
    expect(sent.map((status) => status.state)).toEqual(['active']);
    expect(sent[0]!.refreshSeconds).toBe(60);
    clock.advance(14_999);
    expect(sent).toHaveLength(1);
    clock.advance(1);
    expect(sent.map((status) => status.state)).toEqual(['active', 'idle']);
    expect(tracker.ourState(1)).toBe('idle');
    expect(clock.pendingTimers).toBe(0);
  });

  it('refreshes active every 60 s while typing goes on, and goes idle silently when the message is sent', () => {
    const { clock, sent, tracker } = rig();
    for (let t = 0; t <= 70_000; t += 10_000) {
      tracker.typing(1);
      clock.advance(10_000);
    }
    expect(sent.map((status) => status.state)).toEqual(['active', 'active']);
    tracker.contentSent(1);
    clock.advance(60_000);
    expect(sent).toHaveLength(2);
    expect(clock.pendingTimers).toBe(0);
  });

  it('stops for good after a 415 (RFC 3994 §4)', async () => {
    const { clock, sent, tracker, answer } = rig();
    answer.status = 415;
    tracker.typing(1);
    await Promise.resolve();
    await Promise.resolve();
    expect(tracker.ourState(1)).toBe('disabled');
    clock.advance(100_000);
    tracker.typing(1);
    expect(sent).toHaveLength(1);
  });

  it('shows the peer typing until its refresh runs out, or until its message arrives', () => {
    const { clock, changes, tracker } = rig();
    tracker.status(7, { state: 'active', refreshSeconds: 60 });
    expect(changes).toEqual(['7:active:status']);
    expect(tracker.peerComposing(7)).toBe(true);
    clock.advance(59_999);
    expect(changes).toHaveLength(1);
    clock.advance(1);
    expect(changes).toEqual(['7:active:status', '7:idle:expired']);
    tracker.status(7, { state: 'active', refreshSeconds: 60 });
    tracker.content(7);
    expect(changes.at(-1)).toBe('7:idle:content');
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('control bodies', () => {
  it('tells an IMDN and an isComposing status from an IM, plaintext or protected', () => {
    const built = buildImdn({ request: request('abc123'), notification: { kind: 'delivery', status: 'delivered' }, from: { uri: BOB }, dateTime: new Date('2026-03-01T10:00:01Z') });
    const imdn = readControlBody('message/cpim', built.body);
    expect(imdn).toMatchObject({ kind: 'imdn', notifications: [{ messageId: 'abc123', kind: 'delivery', status: 'delivered' }] });
    const composing = buildIsComposing({ state: 'active', refreshSeconds: 60 });
    expect(readControlBody('application/im-iscomposing+xml', composing)).toMatchObject({ kind: 'composing', status: { state: 'active', refreshSeconds: 60 } });
    expect(readControlBody('text/plain', new TextEncoder().encode('hi'))).toBeUndefined();
    const im = buildCpim({ from: { uri: ALICE }, to: [{ uri: BOB }], dateTime: new Date(), contentType: 'text/plain', content: new TextEncoder().encode('hi') });
    expect(readControlBody('message/cpim', im)).toBeUndefined();

    const payload = imdnPayload(request('xyz'), { kind: 'display', status: 'displayed' }, BOB);
    expect(payload.contentHeaders).toEqual([['Content-Disposition', 'notification']]);
    expect(readProtectedControl(payload.contentType, payload.content)).toMatchObject({ kind: 'imdn', notifications: [{ messageId: 'xyz', kind: 'display', status: 'displayed', recipient: BOB }] });
    expect(readProtectedControl('text/plain;charset=utf-8', new TextEncoder().encode('hi'))).toBeUndefined();
  });

  it('refuses a malformed notification or status (400), never takes it for an IM', () => {
    expect(() => readControlBody('application/im-iscomposing+xml', new TextEncoder().encode('<isComposing/>'))).toThrow(ControlBodyError);
    expect(() => readProtectedControl('message/imdn+xml', new TextEncoder().encode('<imdn xmlns="urn:ietf:params:xml:ns:imdn"/>'))).toThrow(ControlBodyError);
  });

  it('reads the request of a signed IM from its envelope; none without Message-ID, DateTime or a known disposition', () => {
    const dateTime = new Date('2026-03-01T10:00:00Z');
    const read = imdnRequestOf({ from: ALICE, to: [BOB], dateTime, messageId: 'm1', dispositionNotification: ['positive-delivery', 'display', 'x-unknown'] });
    expect(read).toMatchObject({ messageId: 'm1', dateTime: '2026-03-01T10:00:00Z', from: { uri: ALICE }, to: { uri: BOB } });
    expect([...read!.dispositions]).toEqual(['positive-delivery', 'display']);
    expect(imdnRequestOf({ from: ALICE, to: [BOB], dateTime, messageId: 'm1', dispositionNotification: [] })).toBeUndefined();
    expect(imdnRequestOf({ from: ALICE, to: [BOB], dateTime, dispositionNotification: ['display'] })).toBeUndefined();
    expect(imdnRequestOf(undefined)).toBeUndefined();
  });
});

describe('the route of a protected notification (RFC 5438 §6.5, §6.6, §7.2.1, §12.1.3.1)', () => {
  const dateTime = new Date('2026-03-01T10:00:00Z');
  const ROUTE_1 = 'sip:imdn@relay-1.example.test';
  const ROUTE_2 = 'sip:imdn@relay-2.example.test';

  /** The CPIM of the protected notification for `request`, as protect.ts signs it (bob → alice). */
  function protectedNotificationCpim(request: ReceivedImdnRequest) {
    const entity = buildMessageEntity({ text: '', from: BOB, to: ALICE, now: dateTime, messageId: 'n1', payload: imdnPayload(request, { kind: 'delivery', status: 'delivered' }, BOB) });
    const text = Buffer.from(entity).toString('utf8');
    expect(text.startsWith('Content-Type: message/cpim\r\n\r\n')).toBe(true);
    return parseCpim(Buffer.from(text.slice('Content-Type: message/cpim\r\n\r\n'.length), 'utf8'));
  }
  const routes = (cpim: ReturnType<typeof parseCpim>) => cpim.headers.filter((header) => header.localName === 'IMDN-Route').map((header) => header.value);

  it('copies two IMDN-Record-Route values of a protected IM into IMDN-Route, in order, and goes to the first', () => {
    const envelope = { from: ALICE, to: [BOB], dateTime, messageId: 'm1', dispositionNotification: ['positive-delivery', 'display'], recordRoute: [ROUTE_1, ROUTE_2] };
    const request = imdnRequestOf(envelope)!;
    expect(request.recordRoute).toEqual([{ uri: ROUTE_1 }, { uri: ROUTE_2 }]);
    const cpim = protectedNotificationCpim(request);
    expect(routes(cpim)).toEqual([`<${ROUTE_1}>`, `<${ROUTE_2}>`]);
    // Still addressed (CPIM To) to the IM's sender, whom it is encrypted for; sent to the relay.
    expect(cpim.headers.find((header) => header.name === 'To')?.value).toBe(`<${ALICE}>`);
    expect(imdnDestination(request, ALICE)).toEqual({ uri: ROUTE_1, via: 'imdn-route' });
    expect(deliveryImdnPayload(envelope, BOB)).toMatchObject({ key: 'm1:delivery', via: ROUTE_1 });
    // An owed display notification keeps the route through the store (JSON) and back.
    const stored = JSON.parse(JSON.stringify(displayNotificationOf(request))) as NonNullable<ReturnType<typeof displayNotificationOf>>;
    const owed = owedDisplayRequest({ message: { imdnMessageId: 'm1' } as Parameters<typeof owedDisplayRequest>[0]['message'], request: stored });
    expect(owed.recordRoute).toEqual([{ uri: ROUTE_1 }, { uri: ROUTE_2 }]);
    expect(imdnDestination(owed, ALICE)).toEqual({ uri: ROUTE_1, via: 'imdn-route' });
    expect(routes(protectedNotificationCpim(owed))).toEqual([`<${ROUTE_1}>`, `<${ROUTE_2}>`]);
  });

  it('without IMDN-Record-Route, writes no IMDN-Route and goes to the SIP From of the IM, as before', () => {
    const envelope = { from: ALICE, to: [BOB], dateTime, messageId: 'm2', dispositionNotification: ['positive-delivery'] };
    const request = imdnRequestOf(envelope)!;
    expect(request.recordRoute).toEqual([]);
    expect(routes(protectedNotificationCpim(request))).toEqual([]);
    expect(imdnPayload(request, { kind: 'delivery', status: 'delivered' }, BOB)).not.toHaveProperty('imdnRoute');
    expect(imdnDestination(request, ALICE)).toEqual({ uri: ALICE, via: 'sip-from' });
    const delivery = deliveryImdnPayload(envelope, BOB);
    expect(delivery).toMatchObject({ key: 'm2:delivery' });
    expect(delivery).not.toHaveProperty('via');
  });
});

describe('received notifications on our outgoing messages (RFC 5438 §7.1.2)', () => {
  /** A store with one message of ours to alice, in `state`, whose imdn.Message-ID is `out-1`. */
  function storeWith(state: 'accepted' | 'delivered' | 'displayed') {
    const store = openStore(tempDir(cleanups, 'sipnote-notifications-'));
    cleanups.push(() => store.close());
    const message = store.messages.enqueueOutgoing({ account: BOB, peer: ALICE, body: 'hi', contentType: 'text/plain', security: 'plaintext', imdnMessageId: 'out-1' });
    store.messages.markSending(message.id, { callId: 'c@host', cseq: 1, fromTag: 't' });
    store.messages.markResult(message.id, state === 'accepted' ? { state, status: 202, reason: 'Accepted' } : { state: 'delivered', status: 200, reason: 'OK' });
    if (state === 'displayed') store.messages.markResult(message.id, { state });
    return { store, id: message.id };
  }

  /** A notification about `out-1` as alice's side would send it, read back from the wire format. */
  function notification(kind: 'delivery' | 'display', status: string): ReceivedImdn {
    const imdn = buildImdn({
      request: { ...request('out-1'), from: { uri: BOB }, to: { uri: ALICE } },
      notification: { kind, status } as Parameters<typeof buildImdn>[0]['notification'],
      from: { uri: ALICE },
      dateTime: new Date('2026-03-01T10:00:05Z'),
    });
    return readImdnNotifications(parseCpim(imdn.body))![0]!;
  }

  it('asks for negative delivery as well as positive delivery and display', () => {
    expect([...REQUESTED_DISPOSITIONS]).toEqual(['positive-delivery', 'negative-delivery', 'display']);
  });

  for (const status of ['failed', 'forbidden', 'error'] as const) {
    it(`fails an accepted (202) message on a negative delivery "${status}", with a reason that says so; a late positive one changes nothing`, () => {
      const { store, id } = storeWith('accepted');
      const negative = applyImdnNotifications(store.messages, BOB, ALICE, [notification('delivery', status)]);
      expect(negative.changed.map((message) => [message.id, message.state, message.negativeDelivery])).toEqual([[id, 'failed', status]]);
      expect(negative.ignored).toEqual([]);
      const failed = store.messages.get(id)!;
      expect(failed.reason).toMatch(/recipient's side reported/);
      expect(failed.reason).toContain(`"${status}"`);
      expect(failed.status).toBe(202);

      const late = applyImdnNotifications(store.messages, BOB, ALICE, [notification('delivery', 'delivered'), notification('display', 'displayed')]);
      expect(late.changed).toEqual([]);
      expect(late.ignored).toEqual([`delivery/delivered for message ${id}: kept failed`, `display/displayed for message ${id}: kept failed`]);
      expect(store.messages.get(id)).toEqual(failed);
    });
  }

  it('fails a delivered (200) message too (the recipient learnt of the failure after its 2xx, §12.1.3.1), never a displayed one', () => {
    const delivered = storeWith('delivered');
    expect(applyImdnNotifications(delivered.store.messages, BOB, ALICE, [notification('delivery', 'failed')]).changed.map((m) => m.state)).toEqual(['failed']);
    const displayed = storeWith('displayed');
    const outcome = applyImdnNotifications(displayed.store.messages, BOB, ALICE, [notification('delivery', 'failed')]);
    expect(outcome.changed).toEqual([]);
    expect(outcome.ignored).toEqual([`delivery/failed for message ${displayed.id}: kept displayed`]);
    expect(displayed.store.messages.get(displayed.id)).toMatchObject({ state: 'displayed', negativeDelivery: null });
  });

  it('takes a negative delivery only from the peer the message went to', () => {
    const { store, id } = storeWith('accepted');
    const outcome = applyImdnNotifications(store.messages, BOB, 'sip:mallory@example.test', [notification('delivery', 'failed')]);
    expect(outcome.changed).toEqual([]);
    expect(outcome.ignored).toEqual(['delivery/failed for out-1: no such message to this peer']);
    expect(store.messages.get(id)?.state).toBe('accepted');
  });
});

describe('owed display notifications', () => {
  it('keeps what the display notification needs, and builds the same request from the store', () => {
    const headers = requestImdn({ messageId: 'im-7', dispositions: ['positive-delivery', 'negative-delivery', 'display'] });
    const cpim = buildCpim({
      from: { uri: ALICE, name: 'Alice' },
      to: [{ uri: BOB }],
      dateTime: new Date('2026-03-01T10:00:00Z'),
      ...headers,
      contentType: 'text/plain',
      content: new TextEncoder().encode('hi'),
    });
    const received = readImdnRequest(parseCpim(cpim))!;
    const kept = displayNotificationOf(received)!;
    // Through JSON, as the store keeps it.
    const stored = JSON.parse(JSON.stringify(kept)) as typeof kept;
    const message = { imdnMessageId: 'im-7' } as Parameters<typeof owedDisplayRequest>[0]['message'];
    const rebuilt = owedDisplayRequest({ message, request: stored });
    expect({ ...rebuilt, dispositions: [...rebuilt.dispositions] }).toEqual({ ...received, dispositions: ['display'] });
    expect(imdnPayload(rebuilt, { kind: 'display', status: 'displayed' }, BOB)).toEqual(imdnPayload(received, { kind: 'display', status: 'displayed' }, BOB));
    // Nothing is owed when display was not asked for.
    expect(displayNotificationOf({ ...received, dispositions: new Set(['positive-delivery'] as const) })).toBeUndefined();
    expect(displayNotificationOf(undefined)).toBeUndefined();
  });
});

describe('the API of isComposing', () => {
  it('takes conversations.setComposing { conversationId, active } and refuses malformed arguments', () => {
    expect(validateCommand('conversations.setComposing', { conversationId: 1, active: true }).ok).toBe(true);
    expect(validateCommand('conversations.setComposing', { conversationId: 1, active: false }).ok).toBe(true);
    for (const args of [undefined, {}, { conversationId: 1 }, { active: true }, { conversationId: 0, active: true }, { conversationId: 1.5, active: true }, { conversationId: 1, active: 'yes' }, { conversationId: '1', active: false }, { conversationId: 1, active: true, to: 'sip:x@y' }]) {
      expect(validateCommand('conversations.setComposing', args).ok).toBe(false);
    }
  });
});
