/**
 * The outbox worker (main/im/outbox-worker.ts) on a real store in a temp dir, with a manual
 * clock and a delivery step the test answers by hand: order per peer, backoff, Retry-After,
 * final failures, flushes (registration or network back), crash recovery with the same SIP
 * identity, and the pure rules `planOutbox` and `resultOf`.
 */
import { describe, expect, it } from 'vitest';
import { OutboxWorker, planOutbox, resultOf, type DeliveryResult } from '../../main/im/outbox-worker.js';
import { addressesOf, watchNetwork } from '../../main/im/network-watch.js';
import { openStore, type AttemptIdentity, type Message, type Store } from '../../main/store/index.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';
import { ManualClock } from '../support/manual-clock.js';

const EPOCH = 1_800_000_000_000;
const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';
const CAROL = 'sip:carol@example.test';

const cleanups = cleanupsAfterEach();

interface Call {
  readonly message: Message;
  readonly identity: AttemptIdentity;
  answer(result: DeliveryResult): Promise<void>;
}

const OK: DeliveryResult = { kind: 'response', outcome: 'delivered', status: 200, reason: 'OK' };
const UNAVAILABLE: DeliveryResult = { kind: 'response', outcome: 'failed', status: 503, reason: 'Service Unavailable' };
const NOT_FOUND: DeliveryResult = { kind: 'response', outcome: 'failed', status: 404, reason: 'Not Found' };
const TIMEOUT: DeliveryResult = { kind: 'response', outcome: 'timeout', status: 408, reason: 'Request Timeout (no response)' };

/** Lets the promise callbacks of finished attempts run (one turn of the event loop, no timer). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Rig {
  readonly store: Store;
  readonly clock: ManualClock;
  readonly calls: Call[];
  readonly changes: Message[];
  worker: OutboxWorker;
  /** A new worker on the same store (a restart). */
  restart(): OutboxWorker;
  enqueue(peer: string, body: string, account?: string): Message;
  state(id: number): Message;
}

function rig(options: { handles?: (account: string) => boolean } = {}): Rig {
  const dir = tempDir(cleanups, 'sipnote-outbox-');
  const clock = new ManualClock();
  const now = (): number => EPOCH + clock.now();
  const store = openStore(dir, { now, synchronous: 'normal' });
  cleanups.push(() => store.close());
  const calls: Call[] = [];
  const changes: Message[] = [];
  let identities = 0;
  const makeWorker = (): OutboxWorker =>
    new OutboxWorker({
      messages: store.messages,
      clock,
      now,
      handles: options.handles ?? (() => true),
      newIdentity: () => ({ callId: `call-${++identities}@example.test`, fromTag: `tag-${identities}` }),
      deliver: (message, identity) =>
        new Promise<DeliveryResult>((resolve) => {
          calls.push({
            message,
            identity,
            answer: async (result) => {
              resolve(result);
              await settle();
            },
          });
        }),
      onChange: (message) => changes.push(message),
    });
  const result: Rig = {
    store,
    clock,
    calls,
    changes,
    worker: makeWorker(),
    restart() {
      result.worker.stop();
      result.worker = makeWorker();
      return result.worker;
    },
    enqueue: (peer, body, account = ALICE) => store.messages.enqueueOutgoing({ account, peer, body, contentType: 'text/plain', security: 'plaintext' }),
    state: (id) => store.messages.get(id) as Message,
  };
  cleanups.push(() => result.worker.stop());
  return result;
}

const bodies = (calls: readonly Call[]): string[] => calls.map((call) => call.message.body);

describe('OutboxWorker', () => {
  it('sends one message per peer at a time, in order; a later one never overtakes an earlier one waiting for its retry', async () => {
    const r = rig();
    const first = r.enqueue(BOB, 'bob 1');
    const second = r.enqueue(BOB, 'bob 2');
    r.enqueue(CAROL, 'carol 1');
    r.worker.start();
    expect(bodies(r.calls)).toEqual(['bob 1', 'carol 1']);
    expect(r.state(first.id).state).toBe('sending');
    expect(r.state(second.id).state).toBe('queued');

    await r.calls[0]!.answer(UNAVAILABLE);
    expect(r.state(first.id)).toMatchObject({ state: 'failed', status: 503, nextAttemptAt: EPOCH + 30_000 });
    expect(r.state(first.id).reason).toMatch(/will retry$/);
    // bob 2 waits behind bob 1's retry; carol's queue is independent.
    expect(bodies(r.calls)).toEqual(['bob 1', 'carol 1']);
    await r.calls[1]!.answer(OK);
    expect(bodies(r.calls)).toEqual(['bob 1', 'carol 1']);

    r.clock.advance(29_999);
    expect(r.calls).toHaveLength(2);
    r.clock.advance(1);
    expect(bodies(r.calls)).toEqual(['bob 1', 'carol 1', 'bob 1']);
    // The retry is the same request to the receiver: same Call-ID, From tag and CSeq.
    expect(r.calls[2]!.identity).toEqual(r.calls[0]!.identity);
    expect(r.calls[2]!.identity).toEqual({ callId: 'call-1@example.test', fromTag: 'tag-1', cseq: 1 });
    await r.calls[2]!.answer(OK);
    expect(r.state(first.id)).toMatchObject({ state: 'delivered', status: 200, attempts: 2 });
    expect(bodies(r.calls)).toEqual(['bob 1', 'carol 1', 'bob 1', 'bob 2']);
    await r.calls[3]!.answer(OK);
    expect(r.state(second.id)).toMatchObject({ state: 'delivered', attempts: 1 });
    expect(r.clock.pendingTimers).toBe(0);
  });

  it('backs off 30 s, 60 s, 120 s … on timeouts and transport errors, and gives up after the policy’s attempts', async () => {
    const r = rig();
    r.worker = new OutboxWorker({ ...workerOptions(r), retryPolicy: { maxAttempts: 3 } });
    const message = r.enqueue(BOB, 'hello?');
    r.worker.start();
    await r.calls[0]!.answer(TIMEOUT);
    expect(r.state(message.id).nextAttemptAt).toBe(EPOCH + 30_000);
    r.clock.advance(30_000);
    await r.calls[1]!.answer({ kind: 'not-sent', reason: 'Unreachable: no route', retryable: true });
    expect(r.state(message.id).nextAttemptAt).toBe(EPOCH + 30_000 + 60_000);
    r.clock.advance(59_999);
    expect(r.calls).toHaveLength(2);
    r.clock.advance(1);
    await r.calls[2]!.answer(TIMEOUT);
    expect(r.state(message.id)).toMatchObject({ state: 'failed', status: 408, nextAttemptAt: null, attempts: 3 });
    expect(r.state(message.id).reason).toMatch(/gave up after 3 attempts$/);
    r.clock.advance(10 * 3_600_000);
    expect(r.calls).toHaveLength(3);
  });

  it('honours Retry-After exactly', async () => {
    const r = rig();
    const message = r.enqueue(BOB, 'busy server');
    r.worker.start();
    await r.calls[0]!.answer({ ...UNAVAILABLE, retryAfter: 5 });
    expect(r.state(message.id).nextAttemptAt).toBe(EPOCH + 5000);
    r.clock.advance(4999);
    expect(r.calls).toHaveLength(1);
    r.clock.advance(1);
    expect(r.calls).toHaveLength(2);
  });

  it('does not retry a final failure, and lets the next message to that peer go', async () => {
    const r = rig();
    const first = r.enqueue(BOB, 'to a wrong address');
    const second = r.enqueue(BOB, 'next');
    r.worker.start();
    await r.calls[0]!.answer(NOT_FOUND);
    expect(r.state(first.id)).toMatchObject({ state: 'failed', status: 404, reason: 'Not Found', nextAttemptAt: null });
    expect(bodies(r.calls)).toEqual(['to a wrong address', 'next']);
    await r.calls[1]!.answer(OK);
    expect(r.state(second.id).state).toBe('delivered');
    await r.calls.at(-1)!.answer(OK);
    r.clock.advance(3_600_000);
    expect(r.calls).toHaveLength(2);
    // Something that could not be sent at all (a bad address) is final too.
    const third = r.enqueue(CAROL, 'x');
    r.worker.kick();
    await r.calls[2]!.answer({ kind: 'not-sent', reason: 'Bad address: no such host', retryable: false });
    expect(r.state(third.id)).toMatchObject({ state: 'failed', reason: 'Bad address: no such host', nextAttemptAt: null });
  });

  it('sends waiting retries at once on a flush (the registration or the network is back), only for that account', async () => {
    const r = rig();
    const mine = r.enqueue(BOB, 'from alice');
    const other = r.enqueue(BOB, 'from carol', CAROL);
    r.worker.start();
    await r.calls[0]!.answer(TIMEOUT);
    await r.calls[1]!.answer(TIMEOUT);
    expect(r.calls).toHaveLength(2);
    r.clock.advance(1000);
    r.worker.flush(ALICE);
    expect(bodies(r.calls.slice(2))).toEqual(['from alice']);
    expect(r.calls[2]!.identity).toEqual(r.calls[0]!.identity);
    await r.calls[2]!.answer(OK);
    expect(r.state(mine.id).state).toBe('delivered');
    expect(r.state(other.id)).toMatchObject({ state: 'failed', nextAttemptAt: EPOCH + 30_000 });
    r.worker.flush();
    expect(bodies(r.calls.slice(3))).toEqual(['from carol']);
  });

  it('recovers after a crash: an interrupted attempt is sent again with its identity, or failed after too many interruptions', async () => {
    const r = rig();
    const interrupted = r.enqueue(BOB, 'was in flight');
    const behind = r.enqueue(BOB, 'queued behind it');
    const hopeless = r.enqueue(CAROL, 'interrupted three times');
    // Earlier processes: killed three times while sending to carol, then once while sending to bob.
    for (let i = 0; i < 3; i++) {
      r.store.messages.markSending(hopeless.id, { callId: 'c@example.test', cseq: 1, fromTag: 'c' });
      if (i < 2) r.store.messages.recoverAfterCrash();
    }
    r.store.messages.markSending(interrupted.id, { callId: 'before-crash@example.test', cseq: 1, fromTag: 'crashed' });
    expect(r.state(hopeless.id)).toMatchObject({ state: 'sending', attempts: 3 });

    const report = r.worker.start();
    expect(report.requeued.map((message) => message.id)).toEqual([interrupted.id]);
    expect(report.failed.map((message) => message.id)).toEqual([hopeless.id]);
    expect(r.state(hopeless.id)).toMatchObject({ state: 'failed', nextAttemptAt: null });
    expect(r.state(hopeless.id).reason).toMatch(/interrupted 3 times/);
    expect(r.changes.map((message) => [message.id, message.state])).toContainEqual([hopeless.id, 'failed']);

    expect(bodies(r.calls)).toEqual(['was in flight']);
    expect(r.calls[0]!.identity).toEqual({ callId: 'before-crash@example.test', cseq: 1, fromTag: 'crashed' });
    await r.calls[0]!.answer(OK);
    expect(r.state(interrupted.id)).toMatchObject({ state: 'delivered', attempts: 2 });
    expect(bodies(r.calls)).toEqual(['was in flight', 'queued behind it']);
    await r.calls[1]!.answer(OK);
    expect(r.state(behind.id).state).toBe('delivered');
  });

  it('sends each retry of an S/MIME message as a new request: same Call-ID and From tag, CSeq 1, 11, 21, also after a crash (attempt-identity.ts)', async () => {
    const r = rig();
    const message = r.store.messages.enqueueOutgoing({ account: ALICE, peer: BOB, body: 'secret', contentType: 'text/plain', security: 'encrypted-signed', imdnMessageId: 'm-1' });
    r.worker.start();
    await r.calls[0]!.answer(TIMEOUT);
    r.clock.advance(30_000);
    expect(r.calls.map((call) => call.identity)).toEqual([
      { callId: 'call-1@example.test', fromTag: 'tag-1', cseq: 1 },
      { callId: 'call-1@example.test', fromTag: 'tag-1', cseq: 11 },
    ]);
    // Killed while attempt 2 was in flight: attempt 3 follows from the count alone.
    const next = r.restart();
    r.store.messages.recoverAfterCrash();
    next.start();
    expect(r.calls[2]!.identity).toEqual({ callId: 'call-1@example.test', fromTag: 'tag-1', cseq: 21 });
    await r.calls[2]!.answer(OK);
    expect(r.state(message.id)).toMatchObject({ state: 'delivered', cseq: 21, attempts: 3, imdnMessageId: 'm-1' });
  });

  it('retries a plaintext message whose retry got 482 (the peer still holds the earlier attempt), but not a first attempt’s 482', async () => {
    const r = rig();
    const LOOP: DeliveryResult = { kind: 'response', outcome: 'failed', status: 482, reason: 'Loop Detected' };
    const message = r.enqueue(BOB, 'plain');
    r.worker.start();
    await r.calls[0]!.answer(TIMEOUT);
    r.clock.advance(30_000);
    expect(r.calls[1]!.identity).toEqual(r.calls[0]!.identity);
    await r.calls[1]!.answer(LOOP);
    expect(r.state(message.id)).toMatchObject({ state: 'failed', status: 482, nextAttemptAt: EPOCH + 30_000 + 60_000 });
    expect(r.state(message.id).reason).toBe('Loop Detected (the peer still holds an earlier attempt); will retry');
    r.clock.advance(60_000);
    await r.calls[2]!.answer(OK);
    expect(r.state(message.id)).toMatchObject({ state: 'delivered', attempts: 3 });
    expect(resultOf(LOOP, 1, EPOCH)).toEqual({ state: 'failed', status: 482, reason: 'Loop Detected' });
  });

  it('drops results after stop (the row stays sending for the next start) and leaves other accounts’ rows alone', async () => {
    const r = rig({ handles: (account) => account === ALICE });
    const mine = r.enqueue(BOB, 'mine');
    const foreign = r.enqueue(BOB, 'not mine', CAROL);
    r.worker.start();
    expect(bodies(r.calls)).toEqual(['mine']);
    r.worker.stop();
    await r.calls[0]!.answer(OK);
    expect(r.state(mine.id).state).toBe('sending');
    expect(r.state(foreign.id).state).toBe('queued');
    const next = r.restart();
    next.start();
    expect(bodies(r.calls)).toEqual(['mine', 'mine']);
    expect(r.calls[1]!.identity).toEqual(r.calls[0]!.identity);
  });
});

/** The options of `r`'s worker, to build a variant. */
function workerOptions(r: Rig): ConstructorParameters<typeof OutboxWorker>[0] {
  let identities = 0;
  return {
    messages: r.store.messages,
    clock: r.clock,
    now: () => EPOCH + r.clock.now(),
    handles: () => true,
    newIdentity: () => ({ callId: `variant-${++identities}@example.test`, fromTag: `v${identities}` }),
    deliver: (message, identity) =>
      new Promise<DeliveryResult>((resolve) => {
        r.calls.push({
          message,
          identity,
          answer: async (result) => {
            resolve(result);
            await settle();
          },
        });
      }),
    onChange: (message) => r.changes.push(message),
  };
}

describe('planOutbox', () => {
  const row = (id: number, conversationId: number, state: Message['state'], nextAttemptAt: number | null): Message =>
    ({ id, conversationId, direction: 'out', state, nextAttemptAt }) as Message;

  it('starts the due head of each conversation and wakes for the earliest waiting head', () => {
    const plan = planOutbox(
      [
        row(5, 2, 'queued', 100),
        row(1, 1, 'failed', 500), // head of 1, waiting: holds 3
        row(3, 1, 'queued', 100),
        row(2, 2, 'failed', null), // waits for the user: skipped
        row(4, 3, 'sending', null), // in flight: holds 6
        row(6, 3, 'queued', 100),
        row(7, 4, 'queued', 900),
      ],
      200,
      new Set(),
    );
    expect(plan.due.map((message) => message.id)).toEqual([5]);
    expect(plan.wakeAt).toBe(500);
    expect(planOutbox([row(5, 2, 'queued', 100)], 200, new Set([5])).due).toEqual([]);
  });
});

describe('resultOf', () => {
  it('maps 2xx, retryable and final failures to the store’s result', () => {
    expect(resultOf(OK, 1, EPOCH)).toEqual({ state: 'delivered', status: 200, reason: 'OK' });
    expect(resultOf({ kind: 'response', outcome: 'accepted', status: 202, reason: 'Accepted' }, 1, EPOCH)).toMatchObject({ state: 'accepted', status: 202 });
    expect(resultOf({ ...UNAVAILABLE, retryAfter: 120 }, 4, EPOCH)).toEqual({ state: 'failed', status: 503, reason: 'Service Unavailable; will retry', retryAt: EPOCH + 120_000 });
    expect(resultOf(TIMEOUT, 2, EPOCH)).toMatchObject({ retryAt: EPOCH + 60_000 });
    expect(resultOf(NOT_FOUND, 1, EPOCH)).toEqual({ state: 'failed', status: 404, reason: 'Not Found' });
    expect(resultOf({ kind: 'response', outcome: 'refused', status: 603, reason: 'Decline' }, 1, EPOCH)).not.toHaveProperty('retryAt');
  });
});

describe('watchNetwork', () => {
  it('reports a change in the external addresses, polled on the clock, and stops', () => {
    const clock = new ManualClock();
    const lo = { address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' } as const;
    const wifi = { ...lo, address: '192.0.2.7', internal: false, cidr: '192.0.2.7/24' };
    let current: NodeJS.Dict<(typeof lo | typeof wifi)[]> = { lo: [lo] };
    let changes = 0;
    const stop = watchNetwork(clock, () => changes++, { intervalMs: 1000, interfaces: () => current });
    clock.advance(5000);
    expect(changes).toBe(0);
    current = { lo: [lo], wlan0: [wifi] };
    clock.advance(1000);
    expect(changes).toBe(1);
    clock.advance(3000);
    expect(changes).toBe(1);
    current = { lo: [{ ...lo, address: '127.0.0.2' }] }; // loopback only: the network is gone, a change too
    clock.advance(1000);
    expect(changes).toBe(2);
    stop();
    expect(clock.pendingTimers).toBe(0);
    expect(addressesOf({ lo: [lo] })).toBe('');
  });
});
