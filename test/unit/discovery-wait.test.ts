/**
 * The first message to someone whose certificate is unknown (issue #4, item 5), in the desktop
 * core: two Messengers with S/MIME and the real OS keychain on 127.0.0.1.
 *
 * Alice writes to bob while bob is not running: his port has a UDP socket that takes every
 * datagram and answers none. Alice has no certificate pinned for bob, so the outbox's attempt
 * is a signed OPTIONS (secure-messaging.ts, discovery) that gets no answer; timer F (64·T1,
 * RFC 3261 §17.1.2.2) turns that into a 408, which account-security.ts `deliver` hands to the
 * outbox as a retryable failure (retry-policy.ts). The message stays in the outbox (`failed`
 * with a next attempt), no MESSAGE leaves, and its reason tells the user that bob's
 * certificate could not be obtained and that it will be tried again. A second message to bob
 * written meanwhile waits behind it (outbox-worker.ts, order per peer). Then bob starts on that
 * port; when the backoff ends (alice's manual clock: no real waiting) the outbox discovers bob's
 * certificate, pins it, and delivers both messages encrypted-signed, in order.
 *
 * Run with a keychain: `sh scripts/with-secret-service.sh npx vitest run test/unit/discovery-wait.test.ts`
 */
import { createSocket, type Socket } from 'node:dgram';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent } from '../../shared/api.js';
import type { MessengerOptions } from '../../main/im/messenger.js';
import { DEFAULT_INITIAL_RETRY_DELAY_MS } from '../../main/im/retry-policy.js';
import { cleanupsAfterEach } from '../support/cleanups.js';
import { ManualClock } from '../support/manual-clock.js';
import { messageInState, messageReceived, openDesk, type Desk } from '../support/messenger-desk.js';
import { freePort } from '../support/processes.js';
import { keychainGate, type KeychainGate } from '../support/secret-service.js';

const T1 = 50;
const TIMERS = { t1: T1, t2: 400, t4: 500 };

const cleanups = cleanupsAfterEach();

let gate: KeychainGate;
beforeAll(async () => {
  gate = await keychainGate('test/unit/discovery-wait.test.ts');
});

/** A Messenger with S/MIME (keys in the OS keychain) and one peer-to-peer account on `port`. */
function desk(user: string, port: number, options: Pick<MessengerOptions, 'clock' | 'now'> = {}): Promise<Desk> {
  return openDesk(cleanups, user, { messenger: { timers: TIMERS, security: {}, ...options }, port, nextTimeoutMs: 8000 });
}

/** A UDP socket on bob's port that takes everything and answers nothing: bob is away. */
class SilentPort {
  readonly datagrams: Buffer[] = [];
  private waiters: Array<() => void> = [];

  private constructor(private readonly socket: Socket) {
    socket.on('message', (data) => {
      this.datagrams.push(data);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async open(port: number): Promise<SilentPort> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, '127.0.0.1', () => resolve());
    });
    return new SilentPort(socket);
  }

  /** The request methods that arrived, in order. */
  get methods(): string[] {
    return this.datagrams.map((data) => data.toString('latin1').split(' ', 1)[0] ?? '');
  }

  /** Resolves once a datagram starting with `method` has arrived; rejects after `ms`. */
  async waitFor(method: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.methods.includes(method)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${method} within ${ms} ms; got ${this.methods.join(', ') || 'nothing'}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** The states `id` went through, in the order the events told them. */
function statesOf(events: readonly ApiEvent[], id: number): string[] {
  return events.flatMap((event) => (event.type === 'message-state' && event.message.id === id ? [event.message.state] : []));
}

/** Position of the first event matching `match` (-1: none). */
function indexOf(events: readonly ApiEvent[], match: (event: ApiEvent) => boolean): number {
  return events.findIndex(match);
}

describe('the first message to a peer whose certificate is unknown, while the peer is away', () => {
  it('waits in the outbox with the reason, keeps a later message behind it, and is delivered encrypted-signed once the peer answers the OPTIONS', async (context) => {
    if (gate.skip) context.skip();
    // Alice's SIP timers and outbox timers run on a manual clock; her wall clock follows it.
    const clock = new ManualClock();
    const wallStart = Date.now();
    const alice = await desk('alice', await freePort(), { clock, now: () => wallStart + clock.now() });
    const bobPort = await freePort();
    const bobAddress = `sip:bob@127.0.0.1:${bobPort}`;
    const away = await SilentPort.open(bobPort);
    let awayOpen = true;
    cleanups.push(() => (awayOpen ? away.close() : undefined));

    const first = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bobAddress, text: 'first, while bob is away' });
    expect(first).toMatchObject({ state: 'queued', security: 'encrypted-signed' });

    // The attempt is a discovery: a signed OPTIONS asking for bob's certificate. Nobody answers;
    // timer F (64·T1) ends it as a 408.
    await away.waitFor('OPTIONS');
    clock.advance(64 * T1 + 1);
    const failed = (await alice.next(messageInState(first.id, 'failed'))).message;
    expect(failed).toMatchObject({ status: 408, attempts: 1, security: 'encrypted-signed' });
    // The user is told why it waits: bob's certificate is not known and asking for it got no
    // answer; and that it will be tried again (not a final failure).
    expect(failed.reason).toMatch(new RegExp(`^no certificate is pinned for ${bobAddress}, and asking ${bobAddress} for it \\(OPTIONS\\) got no answer`));
    expect(failed.reason).toMatch(/; will retry$/);
    // Nothing but the OPTIONS (and its retransmissions) left: no MESSAGE without bob's certificate.
    expect(new Set(away.methods)).toEqual(new Set(['OPTIONS']));
    expect(await alice.messenger.call('contacts.list', { accountId: alice.account.id })).not.toContainEqual(expect.objectContaining({ aor: bobAddress, trust: 'pinned' }));

    // A second message written meanwhile waits behind the first: queued, not tried.
    const second = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bobAddress, text: 'second, behind the first' });
    expect(second).toMatchObject({ state: 'queued', attempts: 0 });
    const [conversation] = await alice.messenger.call('conversations.list', { accountId: alice.account.id });
    const waiting = (await alice.messenger.call('conversations.history', { conversationId: conversation!.id })).messages;
    expect(waiting.map((message) => [message.id, message.state, message.attempts])).toEqual([
      [first.id, 'failed', 1],
      [second.id, 'queued', 0],
    ]);
    expect(statesOf(alice.events, second.id)).toEqual(['queued']);

    // Bob starts on his port. Alice's backoff ends (the first retry delay of retry-policy.ts).
    await away.close();
    awayOpen = false;
    const bob = await desk('bob', bobPort);
    expect(bob.account.sipAddress).toBe(bobAddress);
    clock.advance(DEFAULT_INITIAL_RETRY_DELAY_MS);

    const delivered = (await alice.next(messageInState(first.id, 'delivered'))).message;
    expect(delivered).toMatchObject({ status: 200, attempts: 2, security: 'encrypted-signed' });
    expect((await alice.next(messageInState(second.id, 'delivered'))).message).toMatchObject({ status: 200, attempts: 1, security: 'encrypted-signed' });
    const firstIn = (await bob.next(messageReceived('first, while bob is away'))).message;
    const secondIn = (await bob.next(messageReceived('second, behind the first'))).message;
    expect(firstIn).toMatchObject({ direction: 'in', security: 'encrypted-signed', peer: alice.account.sipAddress });
    expect(secondIn).toMatchObject({ direction: 'in', security: 'encrypted-signed', peer: alice.account.sipAddress });
    expect(firstIn.id).toBeLessThan(secondIn.id);

    // Order: the second message left only after the first was delivered.
    const firstDelivered = indexOf(alice.events, messageInState(first.id, 'delivered'));
    const secondSending = indexOf(alice.events, messageInState(second.id, 'sending'));
    expect(firstDelivered).toBeGreaterThanOrEqual(0);
    expect(secondSending).toBeGreaterThan(firstDelivered);
    expect(statesOf(alice.events, first.id).slice(0, 5)).toEqual(['queued', 'sending', 'failed', 'sending', 'delivered']);
    expect(statesOf(alice.events, second.id).slice(0, 3)).toEqual(['queued', 'sending', 'delivered']);

    // Bob's certificate is pinned by alice on first use: the one bob's account shows.
    const contacts = await alice.messenger.call('contacts.list', { accountId: alice.account.id });
    expect(contacts).toContainEqual(expect.objectContaining({ aor: bobAddress, trust: 'pinned', fingerprint: bob.account.certificateFingerprint }));
    // Bob learned alice's from the signed OPTIONS and her signature.
    const atBob = await bob.messenger.call('contacts.list', { accountId: bob.account.id });
    expect(atBob).toContainEqual(expect.objectContaining({ aor: alice.account.sipAddress, fingerprint: alice.account.certificateFingerprint }));
  }, 30_000);
});
