/**
 * A retry after a lost 200 (main/im/attempt-identity.ts), between two Messengers on 127.0.0.1
 * with S/MIME and the real OS keychain.
 *
 * Alice's outbound proxy is a raw UDP relay in front of bob that forwards everything except
 * bob's responses to the first MESSAGE (CSeq 1): bob stores the message and answers 200, alice
 * never hears it, her client transaction times out (Timer F, 64·T1 with T1 = 50 ms) and the
 * outbox retries. Bob runs the default timers, so his first server transaction is still alive
 * (Timer J, 32 s) when the retry arrives. The retry is a new request (same Call-ID and From
 * tag, CSeq 11), so bob answers it 200, not 482 Loop Detected (RFC 3261 §8.2.2.2), and shows
 * the message once: the same imdn.Message-ID from the same peer is a duplicate. (Alice's
 * address is a black hole, so bob's delivery notification cannot settle it instead.)
 *
 * Run with a keychain: `sh scripts/with-secret-service.sh npx vitest run test/interop/retry-identity.test.ts`
 */
import { createSocket } from 'node:dgram';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MessageView } from '../../shared/api.js';
import type { MessengerOptions } from '../../main/im/messenger.js';
import { cleanupsAfterEach } from '../support/cleanups.js';
import { FAST_SIP_TIMERS, openDesk, type Desk } from '../support/messenger-desk.js';
import { freePort } from '../support/processes.js';
import { keychainGate, type KeychainGate } from '../support/secret-service.js';
import { udpRelay } from '../support/udp-relay.js';

const cleanups = cleanupsAfterEach();

let gate: KeychainGate;
beforeAll(async () => {
  gate = await keychainGate('test/interop/retry-identity.test.ts');
});

/**
 * A Messenger with S/MIME (`options` on top). `port` is where it listens; `addressPort` the
 * port of its address of record (where others send).
 */
function side(user: string, options: Partial<MessengerOptions>, ports: { port: number; addressPort: number }): Promise<Desk> {
  return openDesk(cleanups, user, { messenger: { security: {}, ...options }, port: ports.port, account: { sipAddress: `sip:${user}@127.0.0.1:${ports.addressPort}` } });
}

/**
 * A UDP relay to `target`: datagrams from the target go back to whoever last sent one from
 * elsewhere; `drop` decides which of the target's datagrams are lost. Every forwarded
 * response's first line and CSeq are kept for the assertions.
 */
async function relay(target: number, drop: (text: string) => boolean): Promise<{ port: number; dropped: string[]; forwarded: string[] }> {
  const dropped: string[] = [];
  const forwarded: string[] = [];
  const port = await udpRelay(cleanups, target, (data, text) => {
    const summary = `${text.slice(0, text.indexOf('\r\n'))} | ${/^CSeq:\s*(.*)$/im.exec(text)?.[1]?.trim() ?? '?'}`;
    if (drop(text)) {
      dropped.push(summary);
      return undefined;
    }
    if (text.startsWith('SIP/2.0')) forwarded.push(summary);
    return data;
  });
  return { port, dropped, forwarded };
}

describe('a retry after a lost 200, while the receiver still holds the first transaction', () => {
  it('is a new request: answered 200 (not 482), delivered, and shown once by the receiver', async (context) => {
    if (gate.skip) context.skip();
    // Bob listens behind the relay: his address (and certificate) names the relay's port, so
    // alice sends to it directly (RFC 3428 §8: no proxy on the path, no 1300-byte limit).
    const bobPort = await freePort();
    const lossy = await relay(bobPort, (text) => text.startsWith('SIP/2.0 ') && /^CSeq:\s*1\s+MESSAGE\s*$/im.test(text));
    // Bob: default timers, so the first server transaction lives 32 s (Timer J) after its 200.
    const bob = await side('bob', {}, { port: bobPort, addressPort: lossy.port });
    // Alice's address names a port that swallows everything: bob's delivery notification (RFC
    // 5438), which would tell alice what the lost 200 did not, never arrives, so the retry is needed.
    const blackhole = createSocket('udp4');
    await new Promise<void>((resolve) => blackhole.bind(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => blackhole.close(() => resolve())));
    const alice = await side('alice', { timers: FAST_SIP_TIMERS, retryPolicy: { initialDelayMs: 100, maxDelayMs: 400, maxAttempts: 5 } }, { port: await freePort(), addressPort: blackhole.address().port });

    const sent = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: `sip:bob@127.0.0.1:${lossy.port}`, text: 'are you there?' });
    expect(sent.security).toBe('encrypted-signed');
    const stateOf = (): MessageView | undefined =>
      alice.events.flatMap((event) => (event.type === 'message-state' && event.message.id === sent.id ? [event.message] : [])).at(-1);
    const received = (): MessageView[] => bob.events.flatMap((event) => (event.type === 'message-received' ? [event.message] : []));

    // Bob has it at once; alice does not know.
    await bob.until(() => (received().length === 1 ? true : undefined), 10_000, 'bob received the first attempt');
    await alice.until(() => (stateOf()?.state === 'failed' ? true : undefined), 10_000, 'the first attempt timed out at alice');
    expect(stateOf()).toMatchObject({ status: 408 });
    expect(lossy.dropped.length).toBeGreaterThan(0);
    expect(lossy.dropped.every((summary) => summary.startsWith('SIP/2.0 200') && summary.endsWith('| 1 MESSAGE'))).toBe(true);

    // The retry, well within bob's 32 s.
    const delivered = await alice.until(() => (stateOf()?.state === 'delivered' ? stateOf() : stateOf()?.state === 'failed' && stateOf()!.attempts > 1 ? stateOf() : undefined), 15_000, 'the retry was answered');
    expect(delivered).toMatchObject({ state: 'delivered', status: 200, attempts: 2 });
    // (a 200 may be forwarded twice: a retransmission of the request is answered again)
    expect(new Set(lossy.forwarded.filter((summary) => summary.includes('MESSAGE')))).toEqual(new Set(['SIP/2.0 200 OK | 11 MESSAGE']));
    expect(lossy.forwarded.some((summary) => summary.startsWith('SIP/2.0 482'))).toBe(false);

    // Shown once: one event, one stored message.
    expect(received().map((message) => message.text)).toEqual(['are you there?']);
    const [conversation] = await bob.messenger.call('conversations.list', { accountId: bob.account.id });
    const history = await bob.messenger.call('conversations.history', { conversationId: conversation!.id });
    expect(history.messages.map((message) => message.text)).toEqual(['are you there?']);
  });
});
