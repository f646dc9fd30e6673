/**
 * A `Clock` whose time moves only when the test says so. `advance(ms)` walks virtual time
 * forward, firing each due timer in time order (ties in the order they were set) with `now()`
 * equal to the timer's due time, including timers set by a timer while firing; then time
 * stops at the target. No real waiting happens.
 */
import type { Clock } from '../../main/sip/transaction/clock.js';

interface PendingTimer {
  readonly atMs: number;
  readonly order: number;
  readonly fire: () => void;
}

export class ManualClock implements Clock {
  #now: number;
  #nextOrder = 0;
  readonly #pending = new Set<PendingTimer>();

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimer(atMs: number, fire: () => void): () => void {
    const timer: PendingTimer = { atMs, order: this.#nextOrder++, fire };
    this.#pending.add(timer);
    return () => {
      this.#pending.delete(timer);
    };
  }

  /** Number of timers set and neither fired nor cancelled. */
  get pendingTimers(): number {
    return this.#pending.size;
  }

  /** Moves time forward by `ms`, firing what falls due on the way. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`cannot advance by ${ms} ms`);
    this.advanceTo(this.#now + ms);
  }

  /**
   * Moves time to `targetMs`, firing what falls due on the way. A timer set for the past (or
   * for now) fires at the current time, as a real clock's would, but only when time is
   * advanced: like `setTimeout(…, 0)`, never synchronously inside `setTimer`.
   */
  advanceTo(targetMs: number): void {
    if (targetMs < this.#now) throw new RangeError(`cannot go back from ${this.#now} to ${targetMs}`);
    for (let timer = this.#earliest(); timer !== undefined && timer.atMs <= targetMs; timer = this.#earliest()) {
      this.#pending.delete(timer);
      this.#now = Math.max(this.#now, timer.atMs);
      timer.fire();
    }
    this.#now = targetMs;
  }

  /** Advances to the next pending timer and fires it (and any other timer due then); false if none. */
  runNext(): boolean {
    const timer = this.#earliest();
    if (timer === undefined) return false;
    this.advanceTo(Math.max(this.#now, timer.atMs));
    return true;
  }

  /** The timer to fire next: earliest due (a past due time counts as now), then earliest set. */
  #earliest(): PendingTimer | undefined {
    const dueAt = (timer: PendingTimer): number => Math.max(timer.atMs, this.#now);
    let earliest: PendingTimer | undefined;
    for (const timer of this.#pending) {
      if (
        earliest === undefined ||
        dueAt(timer) < dueAt(earliest) ||
        (dueAt(timer) === dueAt(earliest) && timer.order < earliest.order)
      ) {
        earliest = timer;
      }
    }
    return earliest;
  }
}
