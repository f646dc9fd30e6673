/**
 * Time as an injected dependency. The transaction machines only take `now` as a number;
 * whatever runs them (`driver.ts`) gets time and timers from a `Clock`, so the product uses
 * `systemClock` and tests use a manual clock that jumps through virtual time with no sleeps.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale (only differences matter). */
  now(): number;
  /**
   * Calls `fire` once, as soon as `now() >= atMs` (at once, asynchronously, if that is already
   * so). Returns a function that cancels the timer; calling it again, or after the timer
   * fired, does nothing.
   */
  setTimer(atMs: number, fire: () => void): () => void;
}

/** Node caps setTimeout delays at 2^31-1 ms; longer waits are done in steps. */
const MAX_TIMEOUT_DELAY = 2 ** 31 - 1;

interface QueuedTimer {
  readonly at: number;
  /** Insertion order, so timers due at the same time fire in the order they were set. */
  readonly seq: number;
  /** Dropped on cancel, so a cancelled timer holds nothing while it waits to be discarded. */
  fire: (() => void) | undefined;
}

/**
 * All timers of a clock in one binary min-heap (by due time, then insertion order), behind a
 * single Node timer armed for the earliest. A busy UAS has one running timer per transaction,
 * Timer J keeping each completed UDP transaction for 32 s (RFC 3261 §17.2.2): tens of
 * thousands at once. One Node timeout each would cost its object, closures and a native
 * call to unref it; here a timer is one small heap entry.
 *
 * Cancelling only drops the entry's callback; the entry leaves the heap when it comes due, or
 * earlier when cancelled entries are over half of the heap (then the heap is rebuilt).
 */
export class TimerQueue {
  readonly #now: () => number;
  readonly #heap: QueuedTimer[] = [];
  #cancelled = 0;
  #seq = 0;
  #handle: NodeJS.Timeout | undefined;
  /** When the armed Node timer is due (undefined when none is armed). */
  #armedFor: number | undefined;

  constructor(now: () => number) {
    this.#now = now;
  }

  /** How many timers are waiting (cancelled ones not counted). */
  get size(): number {
    return this.#heap.length - this.#cancelled;
  }

  setTimer(atMs: number, fire: () => void): () => void {
    const timer: QueuedTimer = { at: atMs, seq: this.#seq++, fire };
    this.#push(timer);
    if (this.#heap[0] === timer) this.#arm();
    return () => {
      if (timer.fire === undefined) return; // fired or cancelled already
      timer.fire = undefined;
      if (++this.#cancelled > 64 && this.#cancelled * 2 > this.#heap.length) this.#rebuild();
    };
  }

  /**
   * Fires every timer that is due, earliest first, then re-arms for the next one. Timers set
   * by these callbacks wait for the next run, even when already due: like setTimeout(0), never
   * in the same macrotask as the code that set them.
   */
  #run(): void {
    this.#handle = undefined;
    this.#armedFor = undefined;
    const now = this.#now();
    const setBefore = this.#seq;
    try {
      for (let first = this.#heap[0]; first !== undefined; first = this.#heap[0]) {
        if (first.fire !== undefined && (first.at > now || first.seq >= setBefore)) break;
        this.#pop();
        const fire = first.fire;
        if (fire === undefined) {
          this.#cancelled--;
          continue;
        }
        first.fire = undefined;
        fire();
      }
    } finally {
      // Also after a throwing callback: the remaining timers must still fire (the error itself
      // goes on to the process, as it would from a setTimeout callback).
      this.#arm();
    }
  }

  /** Arms the Node timer for the earliest entry, unless it is armed for that time already. */
  #arm(): void {
    const first = this.#heap[0];
    if (first === undefined) {
      if (this.#handle !== undefined) clearTimeout(this.#handle);
      this.#handle = undefined;
      this.#armedFor = undefined;
      return;
    }
    if (this.#armedFor !== undefined && this.#armedFor <= first.at) return;
    if (this.#handle !== undefined) clearTimeout(this.#handle);
    // A fraction of a millisecond early (timer granularity) or a capped step: #run finds
    // nothing due and arms again.
    const delay = Math.min(Math.max(Math.ceil(first.at - this.#now()), 0), MAX_TIMEOUT_DELAY);
    this.#armedFor = first.at;
    this.#handle = setTimeout(() => this.#run(), delay);
    // A pending retransmission or Timer K must not keep the process alive on its own.
    this.#handle.unref();
  }

  #rebuild(): void {
    const live = this.#heap.filter((timer) => timer.fire !== undefined);
    this.#heap.length = 0;
    this.#cancelled = 0;
    for (const timer of live) this.#push(timer);
    this.#arm();
  }

  #push(timer: QueuedTimer): void {
    const heap = this.#heap;
    let i = heap.push(timer) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = heap[parent]!;
      if (!earlier(timer, above)) break;
      heap[i] = above;
      i = parent;
    }
    heap[i] = timer;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && earlier(heap[right]!, heap[left]!) ? right : left;
      if (!earlier(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }
}

function earlier(a: QueuedTimer, b: QueuedTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

const systemTimers = new TimerQueue(() => performance.now());

/**
 * The real clock: `performance.now()` (monotonic, unlike `Date.now()`, so a wall-clock change
 * does not fire or stall retransmissions) and one shared TimerQueue, whose Node timer is
 * `unref()`ed: a pending retransmission or Timer K must not keep the process alive on its own.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (atMs, fire) => systemTimers.setTimer(atMs, fire),
};
