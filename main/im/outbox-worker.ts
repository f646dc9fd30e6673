/**
 * The outbox worker: sends what the store's outbox holds, in order per peer, retrying what may
 * succeed later (issue #5 "Retry and offline"; design.md "Durability").
 *
 * The store (main/store/messages.ts) owns the states and commits each transition before the
 * I/O it announces: `sending` before an attempt starts, the result when it ends. The worker
 * decides what to send when:
 *
 * - Order per peer: in each conversation only the oldest waiting message may be on its way.
 *   A later message to the same peer never overtakes an earlier one that is in flight or
 *   waiting for its retry time; only a message that waits for the user (a final failure: 404,
 *   too many attempts, cancelled) lets the next one go (RFC 3428 §8 asks for one MESSAGE at
 *   a time per destination anyway). `planOutbox` is that rule, as a pure function.
 * - Retries: transport errors, timeouts, 408, 480, 500, 503 and 504 are retried with backoff,
 *   Retry-After honoured (retry-policy.ts); every other failure is final. `resultOf` maps an
 *   attempt to the store's result, as a pure function.
 * - Identity (attempt-identity.ts): the first attempt picks a Call-ID and From tag; every
 *   attempt, including one after a crash, keeps them with a higher CSeq, 1 + 10·(attempt − 1):
 *   a retry is a new request (RFC 3261 §8.1.1.5), never the first one's CSeq on a new branch,
 *   which a receiver still holding the first transaction would answer 482 (§8.2.2.2). A
 *   receiver that got an earlier attempt recognises the message by its imdn.Message-ID, the same
 *   on every attempt (chosen when it was queued), and shows it once. Plaintext has no Message-ID
 *   and keeps CSeq 1 (its SIP identity is all the receiver can recognise); a 482 to its retry
 *   is then retried like a 503 (`isMergedRetry`).
 * - Crash recovery, on start: rows left `sending` by a killed process go back to the queue with
 *   their identity, or fail with a reason after too many interruptions
 *   (`recoverAfterCrash`).
 * - Flushes: `flush(account)` makes the waiting retries of an account due now. The Messenger
 *   calls it when the account's registration comes back and when the network changes
 *   (network-watch.ts), since the backoff then no longer says anything about the next attempt.
 *
 * Time: the store's times are wall-clock milliseconds (`now`); timers run on the injected
 * `Clock` (monotonic), so tests drive both from one manual clock.
 */
import type { Clock } from '../sip/transaction/clock.js';
import type { SendOutcome } from '../sip/ua/outcome.js';
import type { AttemptIdentity, DeliveryUpdate, Message, RecoveryReport, ResultInput } from '../store/index.js';
import { isMergedRetry, nextAttemptIdentity } from './attempt-identity.js';
import { nextRetry, type RetryPolicyOptions } from './retry-policy.js';

/** What one attempt came to, as the delivery step reports it. It never rejects. */
export type DeliveryResult =
  /** A final response, or what the transaction layer made of its absence (timeout 408, transport error 503). */
  | {
      readonly kind: 'response';
      readonly outcome: SendOutcome;
      readonly status: number;
      readonly reason: string;
      /** Seconds, from a Retry-After in the response. */
      readonly retryAfter?: number;
    }
  /** Nothing was sent: the address is bad, the message too large, the account not running. */
  | { readonly kind: 'not-sent'; readonly reason: string; readonly retryable: boolean };

/** The part of the store's message repository the worker uses. */
export interface OutboxStore {
  get(id: number): Message | undefined;
  /** Every waiting outgoing message (queued, sending, failed), oldest first. */
  outbox(account?: string): Message[];
  markSending(id: number, identity?: AttemptIdentity): DeliveryUpdate;
  markResult(id: number, result: ResultInput): DeliveryUpdate;
  recoverAfterCrash(options?: { maxAttempts?: number }): RecoveryReport;
  makeDueNow(account?: string): number;
}

export interface OutboxWorkerOptions {
  readonly messages: OutboxStore;
  /** Timers (monotonic). */
  readonly clock: Clock;
  /** Wall-clock milliseconds, the scale of the store's times. */
  readonly now: () => number;
  /** Whether the worker sends for this (canonical) account AoR; others' rows are left alone. */
  readonly handles: (account: string) => boolean;
  /** A fresh Call-ID and From tag for a message's first attempt. */
  readonly newIdentity: (message: Message) => { readonly callId: string; readonly fromTag: string };
  /** The delivery step: one attempt, with this identity. */
  readonly deliver: (message: Message, identity: AttemptIdentity) => Promise<DeliveryResult>;
  /** A message changed state (for events). */
  readonly onChange: (message: Message) => void;
  readonly retryPolicy?: RetryPolicyOptions;
  /** Interrupted attempts after which recovery fails a message instead of retrying it (store default 3). */
  readonly maxInterruptedAttempts?: number;
  readonly onDiagnostic?: (text: string) => void;
}

export class OutboxWorker {
  private readonly inFlight = new Set<number>();
  private cancelTimer: (() => void) | undefined;
  private timerAt: number | undefined;
  private pumping = false;
  private pumpAgain = false;
  private started = false;
  private stopped = false;

  constructor(private readonly options: OutboxWorkerOptions) {}

  /**
   * Crash recovery (before anything else runs): interrupted attempts back to the queue or
   * failed with a reason. Then the first pump.
   */
  start(): RecoveryReport {
    this.started = true;
    const report = this.options.messages.recoverAfterCrash(
      this.options.maxInterruptedAttempts === undefined ? {} : { maxAttempts: this.options.maxInterruptedAttempts },
    );
    for (const message of [...report.requeued, ...report.failed]) this.options.onChange(message);
    this.pump();
    return report;
  }

  /** Something may have become sendable (a new message, an account started, a user's retry). */
  kick(): void {
    this.pump();
  }

  /** Waiting retries of `account` (canonical AoR; all accounts when absent) are due now. */
  flush(account?: string): void {
    if (!this.started || this.stopped) return;
    this.options.messages.makeDueNow(account);
    this.pump();
  }

  /** No more attempts start and results of attempts still in flight are dropped (recovery finds them `sending`). */
  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  private pump(): void {
    // Nothing is sent before recovery has run (start), nor after stop.
    if (!this.started || this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        const now = this.options.now();
        const waiting = this.options.messages.outbox().filter((message) => this.options.handles(message.account));
        const plan = planOutbox(waiting, now, this.inFlight);
        for (const message of plan.due) this.begin(message);
        this.schedule(plan.wakeAt);
      } while (this.pumpAgain && !this.stopped);
    } catch (error) {
      // A row changed under us (another process, a user's cancel): the next pump sees the new state.
      this.options.onDiagnostic?.(`outbox: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      this.pumping = false;
    }
  }

  /** Wakes the pump at `wakeAt` (wall clock), keeping one timer for the earliest time. */
  private schedule(wakeAt: number | undefined): void {
    if (wakeAt === this.timerAt) return;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.timerAt = wakeAt;
    if (wakeAt === undefined) return;
    const delay = Math.max(0, wakeAt - this.options.now());
    this.cancelTimer = this.options.clock.setTimer(this.options.clock.now() + delay, () => {
      this.cancelTimer = undefined;
      this.timerAt = undefined;
      this.pump();
    });
  }

  private begin(message: Message): void {
    // Recorded before the attempt starts, so a crash leaves the attempt count that numbers the next CSeq.
    const attemptIdentity: AttemptIdentity = nextAttemptIdentity(message, () => this.options.newIdentity(message));
    const sending = this.options.messages.markSending(message.id, attemptIdentity);
    this.inFlight.add(message.id);
    const started = this.options.messages.get(message.id) ?? message;
    this.options.onChange(started);
    void this.options
      .deliver(started, attemptIdentity)
      .catch((error: unknown): DeliveryResult => ({ kind: 'not-sent', reason: `Not sent: ${error instanceof Error ? error.message : String(error)}`, retryable: false }))
      .then((result) => this.finish(message.id, sending.attempts, result));
  }

  private finish(id: number, attempts: number, result: DeliveryResult): void {
    this.inFlight.delete(id);
    if (this.stopped) return;
    const current = this.options.messages.get(id);
    // The user cannot cancel a message in flight, but an account removed meanwhile is no reason to crash.
    if (current === undefined || current.state !== 'sending') {
      this.pump();
      return;
    }
    try {
      this.options.messages.markResult(id, resultOf(result, attempts, this.options.now(), this.options.retryPolicy));
      const updated = this.options.messages.get(id);
      if (updated !== undefined) this.options.onChange(updated);
    } catch (error) {
      this.options.onDiagnostic?.(`outbox: recording the result of message ${id} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.pump();
  }
}

/** What to start now and when to look again. */
export interface OutboxPlan {
  readonly due: readonly Message[];
  /** The earliest future retry time among the heads of the queues (wall clock), if any. */
  readonly wakeAt: number | undefined;
}

/**
 * The order rule, pure: per conversation, the oldest message that is not waiting for the user
 * is the head; it starts when it is due and not already on its way. A `sending` head (ours in
 * flight, or another process's) holds its conversation; so does a head waiting for its retry
 * time, which is then when to look again.
 */
export function planOutbox(waiting: readonly Message[], now: number, inFlight: ReadonlySet<number>): OutboxPlan {
  const heads = new Map<number, Message>();
  for (const message of [...waiting].sort((a, b) => a.id - b.id)) {
    if (message.direction !== 'out' || heads.has(message.conversationId)) continue;
    if (message.state === 'failed' && message.nextAttemptAt === null) continue; // waits for the user
    if (message.state !== 'queued' && message.state !== 'sending' && message.state !== 'failed') continue;
    heads.set(message.conversationId, message);
  }
  const due: Message[] = [];
  let wakeAt: number | undefined;
  for (const head of heads.values()) {
    if (head.state === 'sending' || inFlight.has(head.id) || head.nextAttemptAt === null) continue;
    if (head.nextAttemptAt <= now) due.push(head);
    else wakeAt = wakeAt === undefined ? head.nextAttemptAt : Math.min(wakeAt, head.nextAttemptAt);
  }
  due.sort((a, b) => a.id - b.id);
  return { due, wakeAt };
}

/**
 * The store's result for attempt number `attempts` (1 for the first), pure: 2xx delivered or
 * accepted; a retryable failure with its next attempt time (retry-policy.ts); anything else
 * failed for good. The reason says which.
 */
export function resultOf(result: DeliveryResult, attempts: number, now: number, policy: RetryPolicyOptions = {}): ResultInput {
  if (result.kind === 'response' && isMergedRetry(result.status, attempts)) {
    // The receiver still holds our earlier attempt (attempt-identity.ts): it has the request.
    const decision = nextRetry({ outcome: 'failed', status: 503 }, attempts, now, policy);
    const reason = `${result.reason} (the peer still holds an earlier attempt)`;
    return decision.retry ? { state: 'failed', status: 482, reason: `${reason}; will retry`, retryAt: decision.at } : { state: 'failed', status: 482, reason: `${reason}; gave up after ${attempts} attempts` };
  }
  if (result.kind === 'not-sent') {
    if (!result.retryable) return { state: 'failed', reason: result.reason };
    const decision = nextRetry({ outcome: 'transport-error', status: 503 }, attempts, now, policy);
    return decision.retry ? { state: 'failed', reason: `${result.reason}; will retry`, retryAt: decision.at } : { state: 'failed', reason: `${result.reason}; gave up after ${attempts} attempts` };
  }
  if (result.outcome === 'delivered') return { state: 'delivered', status: result.status, reason: result.reason };
  if (result.outcome === 'accepted') return { state: 'accepted', status: result.status, reason: result.reason };
  const decision = nextRetry(
    { outcome: result.outcome, status: result.status, ...(result.retryAfter === undefined ? {} : { retryAfter: result.retryAfter }) },
    attempts,
    now,
    policy,
  );
  if (decision.retry) return { state: 'failed', status: result.status, reason: `${result.reason}; will retry`, retryAt: decision.at };
  const why = decision.why === 'too-many-attempts' ? `${result.reason}; gave up after ${attempts} attempts` : result.reason;
  return { state: 'failed', status: result.status, reason: why };
}
