/**
 * TimerQueue (main/sip/transaction/clock.ts): the timers of systemClock, one binary heap behind
 * one Node timer. Times are real but short (a few ms); every wait is bounded by a referenced
 * timeout, since the queue's own Node timer is unref()ed.
 */
import { describe, expect, it } from 'vitest';
import { TimerQueue } from '../../main/sip/transaction/clock.js';

/** Resolves when `done()` is true (polled on every macrotask), or rejects after `ms`. */
async function until(done: () => boolean, ms = 2000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done()) {
    if (performance.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

describe('TimerQueue', () => {
  it('fires timers in due order, same-time timers in the order they were set, never early', async () => {
    const queue = new TimerQueue(() => performance.now());
    const start = performance.now();
    const fired: Array<{ name: string; late: number }> = [];
    const set = (name: string, inMs: number): void => {
      const at = start + inMs;
      queue.setTimer(at, () => fired.push({ name, late: performance.now() - at }));
    };
    set('c', 12);
    set('a', 4);
    set('b1', 8);
    set('b2', 8);
    set('d', 0);
    await until(() => fired.length === 5);
    expect(fired.map((f) => f.name)).toEqual(['d', 'a', 'b1', 'b2', 'c']);
    for (const f of fired) expect(f.late).toBeGreaterThanOrEqual(0);
    expect(queue.size).toBe(0);
  });

  it('never fires a cancelled timer, and cancelling twice or after firing does nothing', async () => {
    const queue = new TimerQueue(() => performance.now());
    const now = performance.now();
    const fired: string[] = [];
    const cancelFirst = queue.setTimer(now + 2, () => fired.push('first'));
    const cancelKept = queue.setTimer(now + 4, () => fired.push('kept'));
    cancelFirst();
    cancelFirst();
    expect(queue.size).toBe(1);
    await until(() => fired.length === 1);
    cancelKept(); // after it fired
    expect(fired).toEqual(['kept']);
    expect(queue.size).toBe(0);
  });

  it('drops many cancelled timers without firing any, and still fires the live ones', async () => {
    const queue = new TimerQueue(() => performance.now());
    const now = performance.now();
    let cancelledFired = 0;
    const cancels = Array.from({ length: 1000 }, (_, i) => queue.setTimer(now + 1 + (i % 7), () => cancelledFired++));
    const live: number[] = [];
    for (let i = 0; i < 10; i++) queue.setTimer(now + 1 + i, () => live.push(i));
    for (const cancel of cancels) cancel(); // past half of the heap: it is rebuilt
    expect(queue.size).toBe(10);
    await until(() => live.length === 10);
    expect(live).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(cancelledFired).toBe(0);
  });

  it('fires a timer set from a callback in a later macrotask, even when it is already due', async () => {
    const queue = new TimerQueue(() => performance.now());
    const order: string[] = [];
    queue.setTimer(performance.now(), () => {
      order.push('outer');
      queue.setTimer(performance.now() - 1, () => order.push('inner'));
      queueMicrotask(() => order.push('microtask of outer'));
    });
    await until(() => order.length === 3);
    expect(order).toEqual(['outer', 'microtask of outer', 'inner']);
  });

  it('keeps firing the other timers when a callback throws', async () => {
    const queue = new TimerQueue(() => performance.now());
    const now = performance.now();
    const fired: string[] = [];
    const errors: unknown[] = [];
    const onError = (error: unknown): void => void errors.push(error);
    // The error escapes to the process, as from a setTimeout callback: catch it for the test.
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onError);
    try {
      queue.setTimer(now + 1, () => {
        throw new Error('boom');
      });
      queue.setTimer(now + 1, () => fired.push('same time'));
      queue.setTimer(now + 3, () => fired.push('later'));
      await until(() => fired.length === 2);
    } finally {
      process.off('uncaughtException', onError);
      for (const listener of listeners) process.on('uncaughtException', listener);
    }
    expect(fired).toEqual(['same time', 'later']);
    expect(errors).toHaveLength(1);
  });

  it('waits with a virtual clock until it says the time has come', async () => {
    let virtualNow = 0;
    const queue = new TimerQueue(() => virtualNow);
    let fired = false;
    queue.setTimer(5, () => (fired = true));
    // Its Node timer wakes it after ~5 ms of real time; the clock still says 0, so it re-arms.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(fired).toBe(false);
    virtualNow = 5;
    await until(() => fired);
  });
});
