/**
 * GroupCommit with a `sync` function (main/store/group-commit.ts): the listener's store commits
 * without syncing and an fsync of the WAL, off the event loop, makes the commits durable. A
 * write must resolve only after a sync that began after its commit. The store here is a fake
 * Batcher that logs, and flushes and syncs are driven by hand: no disk, no timing.
 */
import { describe, expect, it } from 'vitest';
import { GroupCommit, MAX_HELD_WRITES, type Batcher } from '../../main/store/group-commit.js';

class LoggingStore implements Batcher {
  readonly log: string[] = [];
  failNextBatch = false;

  batch<T>(fn: () => T): T {
    if (this.failNextBatch) {
      this.failNextBatch = false;
      throw new Error('batch failed');
    }
    const result = fn();
    this.log.push('commit');
    return result;
  }
}

/** A sync whose completion the test decides. */
function manualSync(log: string[]): { sync: () => Promise<void>; finish: (error?: Error) => void; running: () => number } {
  const waiting: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  return {
    sync: () => {
      log.push('sync');
      return new Promise<void>((resolve, reject) => waiting.push({ resolve, reject }));
    },
    finish: (error) => {
      const next = waiting.shift();
      if (next === undefined) throw new Error('no sync is running');
      if (error === undefined) next.resolve();
      else next.reject(error);
    },
    running: () => waiting.length,
  };
}

/** Lets promise callbacks run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('GroupCommit with sync', () => {
  it('resolves a write only after a sync that began after its commit, one sync at a time', async () => {
    const store = new LoggingStore();
    const { sync, finish, running } = manualSync(store.log);
    let flush: (() => void) | undefined;
    const group = new GroupCommit(store, (f) => (flush = f), sync);
    const done: string[] = [];
    const write = (name: string): Promise<void> => group.run(() => name).then((value) => void done.push(value));

    const first = [write('a'), write('b')];
    flush!();
    expect(store.log).toEqual(['commit', 'sync']);
    await settle();
    expect(done).toEqual([]); // committed, not yet synced

    // Written while the first sync runs: held, then committed together when it has finished,
    // and covered by a second sync.
    const second = [write('c')];
    flush!();
    const third = [write('d')];
    flush!();
    expect(store.log).toEqual(['commit', 'sync']);
    expect(running()).toBe(1);

    finish();
    await Promise.all(first);
    expect(done).toEqual(['a', 'b']);
    await settle();
    expect(store.log).toEqual(['commit', 'sync', 'commit', 'sync']); // one commit and one sync for both turns
    expect(done).toEqual(['a', 'b']);

    finish();
    await Promise.all([...second, ...third]);
    expect(done).toEqual(['a', 'b', 'c', 'd']);
    expect(running()).toBe(0);
  });

  it('commits at once, while a sync runs, when MAX_HELD_WRITES writes are waiting', async () => {
    const store = new LoggingStore();
    const { sync, finish, running } = manualSync(store.log);
    let flush: (() => void) | undefined;
    const group = new GroupCommit(store, (f) => (flush = f), sync);
    const first = group.run(() => 'first');
    flush!();
    const held = Array.from({ length: MAX_HELD_WRITES - 1 }, (_, i) => group.run(() => i));
    flush!();
    expect(store.log).toEqual(['commit', 'sync']);
    const many = [...held, group.run(() => 'one too many')];
    flush!();
    expect(store.log).toEqual(['commit', 'sync', 'commit']); // committed, but not yet synced
    expect(running()).toBe(1);
    let resolved = 0;
    for (const write of many) void write.then(() => (resolved += 1));
    finish();
    await first;
    await settle();
    expect(resolved).toBe(0); // the first sync began before their commit
    expect(store.log).toEqual(['commit', 'sync', 'commit', 'sync']);
    finish();
    await Promise.all(many);
    expect(resolved).toBe(MAX_HELD_WRITES);
  });

  it('commits the writes held during a failed sync, and syncs them again', async () => {
    const store = new LoggingStore();
    const { sync, finish } = manualSync(store.log);
    let flush: (() => void) | undefined;
    const group = new GroupCommit(store, (f) => (flush = f), sync);
    const lost = group.run(() => 'lost');
    flush!();
    const held = group.run(() => 'held');
    flush!();
    finish(new Error('EIO'));
    await expect(lost).rejects.toThrow('EIO');
    await settle();
    expect(store.log).toEqual(['commit', 'sync', 'commit', 'sync']);
    finish();
    await expect(held).resolves.toBe('held');
  });

  it('rejects the writes a failed sync was to cover, and goes on with later ones', async () => {
    const store = new LoggingStore();
    const { sync, finish } = manualSync(store.log);
    let flush: (() => void) | undefined;
    const group = new GroupCommit(store, (f) => (flush = f), sync);
    const lost = group.run(() => 'lost');
    flush!();
    finish(new Error('EIO'));
    await expect(lost).rejects.toThrow('EIO');

    const kept = group.run(() => 'kept');
    flush!();
    finish();
    await expect(kept).resolves.toBe('kept');
  });

  it('retries each write alone when the shared commit fails, and still syncs before resolving', async () => {
    const store = new LoggingStore();
    const { sync, finish } = manualSync(store.log);
    let flush: (() => void) | undefined;
    const group = new GroupCommit(store, (f) => (flush = f), sync);
    const writes = [
      group.run(() => 'one'),
      group.run(() => {
        throw new Error('bad row');
      }),
      group.run(() => 'two'),
    ];
    store.failNextBatch = true;
    flush!();
    expect(store.log).toEqual(['commit', 'commit', 'sync']);
    await expect(writes[1]).rejects.toThrow('bad row'); // at once: nothing of it was committed
    finish();
    const settled = await Promise.allSettled(writes);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });

  it('without sync, a write resolves right after its commit', async () => {
    const store = new LoggingStore();
    let flush: (() => void) | undefined;
    const group = new GroupCommit(store, (f) => (flush = f));
    const write = group.run(() => 'now');
    flush!();
    await expect(write).resolves.toBe('now');
    expect(store.log).toEqual(['commit']);
  });

  it('turns a sync that throws into rejected writes, not a stuck queue', async () => {
    const store = new LoggingStore();
    let calls = 0;
    let flush: (() => void) | undefined;
    const group = new GroupCommit(store, (f) => (flush = f), () => {
      if (++calls === 1) throw new Error('cannot open the WAL');
      return Promise.resolve();
    });
    const first = group.run(() => 1);
    flush!();
    await expect(first).rejects.toThrow('cannot open the WAL');
    const second = group.run(() => 2);
    flush!();
    await expect(second).resolves.toBe(2);
  });
});
