/**
 * Runs one sans-I/O transaction on a `Clock`: every input is applied at `clock.now()`, its
 * events go to a callback, and exactly one timer stays armed at the transaction's
 * `pollTimeout()` (none once it has no running timer, i.e. after it terminated). The UA uses
 * it with `systemClock`; tests use it with a manual clock.
 *
 *   const driver = new TransactionDriver(new NonInviteClientTransaction(request, { reliable: false }),
 *     systemClock, (event) => { ... });
 *   driver.feed((tx, now) => tx.start(now));
 *   // later, for a matching response:
 *   driver.feed((tx, now) => tx.receiveResponse(status, response, now));
 */
import type { Clock } from './clock.js';

/** What the driver needs from a transaction machine. */
export interface TimedTransaction<Event> {
  pollTimeout(): number | undefined;
  handleTimeout(now: number): Event[];
}

/** The event type of a transaction machine, read off its `handleTimeout`. */
export type EventOf<T extends TimedTransaction<unknown>> = ReturnType<T['handleTimeout']>[number];

export class TransactionDriver<T extends TimedTransaction<unknown>> {
  readonly transaction: T;
  readonly #clock: Clock;
  readonly #onEvent: (event: EventOf<T>) => void;
  #armedAt: number | undefined;
  #cancelTimer: (() => void) | undefined;
  #disposed = false;

  constructor(transaction: T, clock: Clock, onEvent: (event: EventOf<T>) => void) {
    this.transaction = transaction;
    this.#clock = clock;
    this.#onEvent = onEvent;
    this.#rearm(); // a server transaction may start with a timer running (the RFC 4320 100)
  }

  /**
   * Applies one input to the transaction at the clock's current time, delivers the events it
   * returns in order, then re-arms the timer. Re-entrant: an event handler may feed again.
   */
  feed(input: (transaction: T, now: number) => readonly EventOf<T>[]): void {
    if (this.#disposed) return;
    const events = input(this.transaction, this.#clock.now());
    try {
      for (const event of events) this.#onEvent(event);
    } finally {
      this.#rearm();
    }
  }

  /** Cancels the armed timer and ignores further input (e.g. when the UA shuts down). */
  dispose(): void {
    this.#disposed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#armedAt = undefined;
  }

  #rearm(): void {
    if (this.#disposed) return;
    const at = this.transaction.pollTimeout();
    if (at === this.#armedAt) return;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#armedAt = at;
    if (at !== undefined) this.#cancelTimer = this.#clock.setTimer(at, () => this.#onTimer());
  }

  #onTimer(): void {
    this.#armedAt = undefined;
    this.#cancelTimer = undefined;
    this.feed((transaction, now) => transaction.handleTimeout(now) as EventOf<T>[]);
  }
}
