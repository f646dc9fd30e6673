/**
 * HistoryWorker (main/cli/history-worker.ts): the listener's history writes on a worker
 * thread with its own store connection. Each test opens a real store in a temp dir and reads it
 * back with a fresh `openStore` after `close()`: what was answered must be on disk.
 *
 * The worker runs the compiled build/main/cli/history-worker-thread.js (a worker thread has
 * no TypeScript loader): `npx tsc -b` first, as `npm test` does.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HistoryWorker } from '../../main/cli/history-worker.js';
import type { ReceivedImdn } from '../../main/im/imdn.js';
import { openStore, type IncomingInput, type Message } from '../../main/store/index.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';

const cleanups = cleanupsAfterEach();
const BOB = 'sip:bob@127.0.0.1';
const ALICE = 'sip:alice@127.0.0.1';

function incoming(index: number, overrides: Partial<IncomingInput> = {}): IncomingInput {
  return {
    account: BOB,
    peer: ALICE,
    body: `message ${index}`,
    contentType: 'text/plain',
    security: 'plaintext',
    callId: `call-${index}@127.0.0.1`,
    cseq: 1,
    fromTag: `tag-${index}`,
    receivedAt: 1_700_000_000_000 + index,
    ...overrides,
  };
}

async function openWorker(dataDir: string): Promise<HistoryWorker> {
  const history = await HistoryWorker.open(dataDir);
  cleanups.push(() => history.close());
  return history;
}

/** The bodies stored in `dataDir`, oldest first, read through a connection of their own. */
function storedBodies(dataDir: string): string[] {
  const store = openStore(dataDir);
  try {
    return store.messages
      .history({ limit: 1000 })
      .map((message: Message) => message.body)
      .reverse();
  } finally {
    store.close();
  }
}

describe('HistoryWorker', () => {
  it('stores records and answers only once they are committed: read back after close with a fresh connection', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-history-worker-');
    const history = await openWorker(dataDir);
    const sameTurn = await Promise.all([history.record(incoming(1)), history.record(incoming(2))]);
    const laterTurn = await history.record(incoming(3));
    expect([...sameTurn, laterTurn]).toEqual([true, true, true]);
    await history.close();
    expect(storedBodies(dataDir)).toEqual(['message 1', 'message 2', 'message 3']);
  });

  it('answers a duplicate false and stores it once, in the same batch or a later one', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-history-worker-');
    const history = await openWorker(dataDir);
    expect(await Promise.all([history.record(incoming(1)), history.record(incoming(1))])).toEqual([true, false]);
    expect(await history.record(incoming(1))).toBe(false);
    // Same IMDN Message-ID, new SIP identity: a store-and-forward re-delivery.
    expect(await history.record(incoming(2, { imdnMessageId: 'imdn-2' }))).toBe(true);
    expect(await history.record(incoming(22, { imdnMessageId: 'imdn-2' }))).toBe(false);
    await history.close();
    expect(storedBodies(dataDir)).toEqual(['message 1', 'message 2']);
  });

  it('fails only the bad record of a batch (a CHECK constraint), stores the others', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-history-worker-');
    const history = await openWorker(dataDir);
    const bad = incoming(2, { security: 'bogus' as IncomingInput['security'] });
    const results = await Promise.allSettled([history.record(incoming(1)), history.record(bad), history.record(incoming(3))]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: true });
    expect(results[1]?.status).toBe('rejected');
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/CHECK constraint/);
    expect(results[2]).toEqual({ status: 'fulfilled', value: true });
    await history.close();
    expect(storedBodies(dataDir)).toEqual(['message 1', 'message 3']);
  });

  it('close() waits for every write handed over, then refuses new ones', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-history-worker-');
    const history = await openWorker(dataDir);
    const writes = Array.from({ length: 500 }, (_, index) => history.record(incoming(index)));
    const closed = history.close(); // before any of them has even been posted
    await expect(history.record(incoming(1000))).rejects.toThrow(/closed/);
    expect(await Promise.all(writes)).toEqual(writes.map(() => true));
    await closed;
    expect(storedBodies(dataDir)).toHaveLength(500);
  });

  it('applies IMDN notifications to the outbox in the worker, with applyImdnNotifications’s result', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-history-worker-');
    const store = openStore(dataDir);
    const sent = store.messages.enqueueOutgoing({ account: BOB, peer: ALICE, body: 'hi', contentType: 'text/plain', security: 'plaintext', imdnMessageId: 'out-1' });
    store.close();
    const history = await openWorker(dataDir);
    const notification = (messageId: string): ReceivedImdn => ({
      kind: 'delivery',
      status: 'delivered',
      messageId,
      datetime: new Date('2026-01-01T00:00:00Z'),
      datetimeText: '2026-01-01T00:00:00Z',
    });
    const outcome = await history.applyImdnNotifications(BOB, ALICE, [notification('out-1'), notification('unknown')]);
    expect(outcome.changed.map((message) => [message.id, message.state])).toEqual([[sent.id, 'delivered']]);
    expect(outcome.ignored).toHaveLength(1);
    expect(outcome.ignored[0]).toMatch(/unknown: no such message/);
    await history.close();
    const reopened = openStore(dataDir);
    expect(reopened.messages.get(sent.id)?.state).toBe('delivered');
    reopened.close();
  });

  it('rejects the writes of a turn that cannot be copied to the worker (not plain data), and goes on', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-history-worker-');
    const history = await openWorker(dataDir);
    const notPlain = incoming(1, { body: (() => 'text') as unknown as string });
    await expect(history.record(notPlain)).rejects.toThrow(/cannot hand over/);
    expect(await history.record(incoming(2))).toBe(true);
    await history.close();
    expect(storedBodies(dataDir)).toEqual(['message 2']);
  });

  it('rejects with the store’s error when the store cannot be opened', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-history-worker-');
    const notADirectory = join(dataDir, 'file');
    writeFileSync(notADirectory, 'x');
    await expect(HistoryWorker.open(notADirectory)).rejects.toThrow(/EEXIST|ENOTDIR|not a directory/i);
  });

  it('when the worker dies (terminated through the test-only hook), pending and later records reject, and close() returns', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-history-worker-');
    const history = await openWorker(dataDir);
    expect(await history.record(incoming(1))).toBe(true);
    const pending = [history.record(incoming(2)), history.record(incoming(3))];
    await history.terminateWorkerForTesting();
    for (const write of pending) await expect(write).rejects.toThrow(/history writer exited/);
    await expect(history.record(incoming(4))).rejects.toThrow(/history writer exited/);
    await history.close();
    expect(storedBodies(dataDir)).toEqual(['message 1']);
  });
});
