/**
 * IMDN (RFC 5438) and isComposing (RFC 3994) between two Messengers on 127.0.0.1, S/MIME with
 * the real OS keychain.
 *
 * Bob sits behind a raw UDP relay that plays a store-and-forward server: it answers alice's
 * MESSAGEs 202 Accepted (it rewrites bob's 200), so alice's messages become `accepted`, and only
 * bob's notifications, sent straight back to alice, make them `delivered` and, once bob reads the
 * conversation, `displayed`. Notifications are signed and encrypted like the IMs and are never
 * stored as messages; a burst of IMs gives paced notifications; isComposing goes active, then
 * idle after the idle timeout, and is never stored either; to a legacy-plaintext contact it goes
 * bare (RFC 3994 §4), and a peer that answers 415 gets no more.
 *
 * Run with a keychain: `sh scripts/with-secret-service.sh npx vitest run test/interop/imdn-messenger.test.ts`
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, MessageState, MessageView } from '../../shared/api.js';
import type { MessengerOptions } from '../../main/im/messenger.js';
import { cleanupsAfterEach } from '../support/cleanups.js';
import { FAST_SIP_TIMERS, openDesk, type Desk } from '../support/messenger-desk.js';
import { freePort } from '../support/processes.js';
import { keychainGate, type KeychainGate } from '../support/secret-service.js';
import { acceptedFor200, udpRelay } from '../support/udp-relay.js';

const cleanups = cleanupsAfterEach();

let gate: KeychainGate;
beforeAll(async () => {
  gate = await keychainGate('test/interop/imdn-messenger.test.ts');
});

/** A Messenger with S/MIME and fast SIP timers (`options` on top); `ports` when others must send through a relay. */
function side(user: string, options: Partial<MessengerOptions>, ports?: { port: number; addressPort: number }): Promise<Desk> {
  return openDesk(cleanups, user, {
    messenger: { security: {}, timers: FAST_SIP_TIMERS, ...options },
    ...(ports === undefined ? {} : { port: ports.port, account: { sipAddress: `sip:${user}@127.0.0.1:${ports.addressPort}` } }),
  });
}

/** Alice, and bob behind a store-and-forward relay that turns his 200s into 202s (his address names the relay's port). */
async function pair(bobOptions: Partial<MessengerOptions> = {}, aliceOptions: Partial<MessengerOptions> = {}): Promise<{ alice: Desk; bob: Desk; bobAddress: string }> {
  const bobPort = await freePort();
  const relayPort = await udpRelay(cleanups, bobPort, acceptedFor200);
  const bob = await side('bob', bobOptions, { port: bobPort, addressPort: relayPort });
  const alice = await side('alice', aliceOptions);
  return { alice, bob, bobAddress: `sip:bob@127.0.0.1:${relayPort}` };
}

function statesOf(side: Desk, id: number): MessageState[] {
  const states = side.events.flatMap((event) => (event.type === 'message-state' && event.message.id === id ? [event.message.state] : []));
  return states.filter((state, i) => states[i - 1] !== state);
}

function lastState(side: Desk, id: number): MessageView | undefined {
  return side.events.flatMap((event) => (event.type === 'message-state' && event.message.id === id ? [event.message] : [])).at(-1);
}

function received(side: Desk): MessageView[] {
  return side.events.flatMap((event) => (event.type === 'message-received' ? [event.message] : []));
}

/** The MESSAGE requests `side` sent (its SIP log, retransmissions left out), with the time each first left. */
function sentMessages(side: Desk): Array<{ time: number; text: string }> {
  const seen = new Set<string>();
  return side.events.flatMap((event) => {
    if (event.type !== 'sip-log' || event.entry.direction !== 'out' || !event.entry.summary.startsWith('MESSAGE ')) return [];
    const key = `${/^Call-ID:\s*(.*)$/im.exec(event.entry.text)?.[1]} ${/^CSeq:\s*(.*)$/im.exec(event.entry.text)?.[1]}`;
    if (seen.has(key)) return [];
    seen.add(key);
    return [{ time: event.entry.time, text: event.entry.text }];
  });
}

describe('IMDN between two Messengers, through a server that answers 202', () => {
  it('accepted by the server, delivered by bob’s notification, displayed when bob reads; notifications protected and never stored', async (context) => {
    if (gate.skip) context.skip();
    const { alice, bob, bobAddress } = await pair();
    const sent = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bobAddress, text: 'did you get this?' });
    await alice.until(() => (lastState(alice, sent.id)?.state === 'delivered' ? true : undefined), 10_000, `delivered by IMDN; states ${statesOf(alice, sent.id).join(' → ')}`);
    expect(statesOf(alice, sent.id)).toEqual(['queued', 'sending', 'accepted', 'delivered']);
    // The server's answer stays the status; the notification moved the state on.
    expect(lastState(alice, sent.id)).toMatchObject({ status: 202 });
    expect(received(bob).map((message) => message.text)).toEqual(['did you get this?']);

    // Bob reads the conversation: the display notification.
    const [conversation] = await bob.messenger.call('conversations.list', { accountId: bob.account.id });
    await bob.messenger.call('conversations.markRead', { conversationId: conversation!.id });
    await alice.until(() => (lastState(alice, sent.id)?.state === 'displayed' ? true : undefined), 10_000, 'displayed by IMDN');
    // Reading again sends nothing more.
    await bob.messenger.call('conversations.markRead', { conversationId: conversation!.id });

    // Bob's notifications went signed and encrypted (RFC 5438 §14), nothing in the clear.
    const notifications = sentMessages(bob);
    expect(notifications).toHaveLength(2);
    for (const { text } of notifications) {
      expect(text).toMatch(/^Content-Type: application\/pkcs7-mime/im);
      expect(text).not.toMatch(/imdn\+xml|<delivered|<displayed/);
    }
    // Neither side stored a notification as a message.
    const bobHistory = await bob.messenger.call('conversations.history', { conversationId: conversation!.id });
    expect(bobHistory.messages.map((message) => message.text)).toEqual(['did you get this?']);
    const [aliceConversation] = await alice.messenger.call('conversations.list', { accountId: alice.account.id });
    const aliceHistory = await alice.messenger.call('conversations.history', { conversationId: aliceConversation!.id });
    expect(aliceHistory.messages.map((message) => [message.text, message.state])).toEqual([['did you get this?', 'displayed']]);
    expect(received(alice)).toEqual([]);
  });

  it('answers a burst of IMs with paced notifications, not all at once', async (context) => {
    if (gate.skip) context.skip();
    // 5 at once, then 10 a second, per peer.
    const { alice, bob, bobAddress } = await pair({ imdnPacing: { perPeerBurst: 5, perPeerPerSecond: 10 } });
    const count = 50;
    const ids: number[] = [];
    for (let i = 0; i < count; i++) ids.push((await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bobAddress, text: `burst ${i}` })).id);
    await alice.until(() => (ids.every((id) => lastState(alice, id)?.state === 'delivered') ? true : undefined), 25_000, `all delivered by IMDN; ${ids.filter((id) => lastState(alice, id)?.state === 'delivered').length} of ${count}`);
    expect(received(bob)).toHaveLength(count);
    const times = sentMessages(bob).map((entry) => entry.time);
    expect(times).toHaveLength(count);
    // Within any second: at most the burst plus a second's refill, and what half a second of
    // jitter adds. These are the times each MESSAGE left, after its own signing and encryption,
    // which on a loaded machine delays some more than others and bunches them (17 in one second
    // was seen once); the pacer's exact timing is checked on a manual clock in
    // unit/message-notifications.test.ts ("turns a burst of 50 notifications … into a paced stream").
    for (const at of times) expect(times.filter((time) => time >= at && time < at + 1000).length).toBeLessThanOrEqual(5 + 10 * 1.5 + 1);
    // 45 after the burst at 10 a second: at least 4.4 s from the first to the last.
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(4400);
  });
});

describe('isComposing between two Messengers', () => {
  it('shows bob that alice is typing, then idle after her idle timeout; nothing is stored', async (context) => {
    if (gate.skip) context.skip();
    const { alice, bob, bobAddress } = await pair({}, { composing: { idleTimeoutMs: 400 } });
    const first = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bobAddress, text: 'hello' });
    await alice.until(() => (lastState(alice, first.id)?.state === 'delivered' ? true : undefined), 10_000, 'first message delivered');
    const [aliceConversation] = await alice.messenger.call('conversations.list', { accountId: alice.account.id });
    const [bobConversation] = await bob.messenger.call('conversations.list', { accountId: bob.account.id });
    const composing = (): boolean[] => bob.events.flatMap((event) => (event.type === 'composing' && event.conversationId === bobConversation!.id ? [event.active] : []));

    const typedAt = Date.now();
    await alice.messenger.call('conversations.setComposing', { conversationId: aliceConversation!.id, active: true });
    await alice.messenger.call('conversations.setComposing', { conversationId: aliceConversation!.id, active: true });
    await bob.until(() => (composing().length >= 1 ? true : undefined), 10_000, 'bob sees alice typing');
    expect(composing()).toEqual([true]);
    await bob.until(() => (composing().length >= 2 ? true : undefined), 10_000, 'alice idle');
    expect(composing()).toEqual([true, false]);
    expect(Date.now() - typedAt).toBeGreaterThanOrEqual(400);

    // Status messages went protected, and neither side stored one.
    for (const { text } of sentMessages(alice)) expect(text).toMatch(/^Content-Type: application\/pkcs7-mime/im);
    const bobHistory = await bob.messenger.call('conversations.history', { conversationId: bobConversation!.id });
    expect(bobHistory.messages.map((message) => message.text)).toEqual(['hello']);
    const aliceHistory = await alice.messenger.call('conversations.history', { conversationId: aliceConversation!.id });
    expect(aliceHistory.messages.map((message) => message.text)).toEqual(['hello']);
  });

  it('goes in plaintext to and from a legacy-plaintext contact; a peer that refuses it (415) is never sent another', async (context) => {
    if (gate.skip) context.skip();
    const { alice, bob, bobAddress } = await pair();
    const first = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bobAddress, text: 'hello' });
    await alice.until(() => (lastState(alice, first.id)?.state === 'delivered' ? true : undefined), 10_000, 'first message delivered');
    const [aliceConversation] = await alice.messenger.call('conversations.list', { accountId: alice.account.id });
    const [bobConversation] = await bob.messenger.call('conversations.list', { accountId: bob.account.id });
    const [bobAtAlice] = await alice.messenger.call('contacts.list', { accountId: alice.account.id });
    const [aliceAtBob] = await bob.messenger.call('contacts.list', { accountId: bob.account.id });
    await alice.messenger.call('contacts.setPolicy', { contactId: bobAtAlice!.id, policy: 'legacy-plaintext' });
    const composing = (): boolean[] => bob.events.flatMap((event) => (event.type === 'composing' ? [event.active] : []));
    const bareStatuses = (): string[] => sentMessages(alice).filter(({ text }) => /^Content-Type: application\/im-iscomposing\+xml/im.test(text)).map(({ text }) => text);
    const answers = (): string[] => alice.events.flatMap((event) => (event.type === 'sip-log' && event.entry.direction === 'in' && /^CSeq: \d+ MESSAGE/m.test(event.entry.text) ? [event.entry.summary] : []));

    // Bob takes plaintext from alice: her status is shown.
    await bob.messenger.call('contacts.setPolicy', { contactId: aliceAtBob!.id, policy: 'legacy-plaintext' });
    await alice.messenger.call('conversations.setComposing', { conversationId: aliceConversation!.id, active: true });
    await bob.until(() => (composing().length === 1 ? true : undefined), 10_000, 'bob sees alice typing (plaintext)');
    expect(bareStatuses()).toHaveLength(1);
    await alice.messenger.call('conversations.setComposing', { conversationId: aliceConversation!.id, active: false });
    await bob.until(() => (composing().length === 2 ? true : undefined), 10_000, 'alice stopped');
    expect(composing()).toEqual([true, false]);

    // Bob wants S/MIME from alice again: her next plaintext status gets 415, and she stops for good.
    await bob.messenger.call('contacts.setPolicy', { contactId: aliceAtBob!.id, policy: 'smime' });
    const before = answers().length;
    await alice.messenger.call('conversations.setComposing', { conversationId: aliceConversation!.id, active: true });
    await alice.until(() => (answers().slice(before).some((summary) => summary.startsWith('SIP/2.0 415')) ? true : undefined), 10_000, 'the 415');
    await alice.messenger.call('conversations.setComposing', { conversationId: aliceConversation!.id, active: false });
    await alice.messenger.call('conversations.setComposing', { conversationId: aliceConversation!.id, active: true });
    expect(bareStatuses()).toHaveLength(3);
    expect(composing()).toEqual([true, false]);
    const bobHistory = await bob.messenger.call('conversations.history', { conversationId: bobConversation!.id });
    expect(bobHistory.messages.map((message) => message.text)).toEqual(['hello']);
  });
});
