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

/**
 * The real clock: `performance.now()` (monotonic, unlike `Date.now()`, so a wall-clock change
 * does not fire or stall retransmissions) and `setTimeout`. Timers are `unref()`ed: a pending
 * retransmission or Timer K must not keep the process alive on its own.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(atMs: number, fire: () => void): () => void {
    let handle: NodeJS.Timeout | undefined;
    const wait = (): void => {
      const delay = Math.min(Math.max(Math.ceil(atMs - performance.now()), 0), MAX_TIMEOUT_DELAY);
      handle = setTimeout(() => {
        // Woke from a capped step, or a fraction of a millisecond early (timer granularity).
        if (performance.now() < atMs) return wait();
        handle = undefined;
        fire();
      }, delay);
      handle.unref();
    };
    wait();
    return () => {
      if (handle !== undefined) clearTimeout(handle);
      handle = undefined;
    };
  },
};
