/**
 * The store's incoming insert path as the listener drives it (many `recordIncoming` in one
 * `Store.batch` transaction, on the history worker's thread), and what it keeps in memory to be cheap
 * (conversations.ts): conversation ids remembered only once committed, unread increments
 * written once per transaction. Unread counts and conversations must stay exactly what the
 * rows say, whatever mix of batches, duplicates, reads and rollbacks; the full-text index
 * (version 4: no column sizes) must find what it found before.
 *
 * Every test gets its own data dir under the OS temp dir.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import Database from 'better-sqlite3';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATABASE_FILE, MIGRATIONS, migrate, openStore, type IncomingInput, type Store } from '../../main/store/index.js';

const ME = 'sip:alice@example.com';
const PEERS = ['sip:bob@example.org', 'sip:carol@example.net', 'sip:dave@example.net'] as const;
const T0 = 1_700_000_000_000;

let dataDir: string;
const opened: Store[] = [];

beforeEach(() => {
  dataDir = join(mkdtempSync(join(tmpdir(), 'sipnote-store-insert-')), 'data');
});

afterEach(() => {
  for (const store of opened.splice(0)) store.close();
  rmSync(join(dataDir, '..'), { recursive: true, force: true });
});

function open(): Store {
  const store = openStore(dataDir, { now: () => T0 });
  opened.push(store);
  return store;
}

let sequence = 0;
function incoming(peer: string, overrides: Partial<IncomingInput> = {}): IncomingInput {
  sequence += 1;
  return {
    account: ME,
    peer,
    body: `hello ${sequence}`,
    contentType: 'text/plain',
    security: 'plaintext',
    callId: `call-${sequence}@example.org`,
    cseq: 1,
    fromTag: `tag-${sequence}`,
    receivedAt: T0,
    ...overrides,
  };
}

/** What the rows say, read by another connection: per peer, unread incoming messages and the conversation of each message. */
function truth(): { unread: Record<string, number>; misfiled: number } {
  const db = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
  try {
    const rows = db
      .prepare(
        `SELECT c.peer, c.unread_count AS cached,
           (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in' AND m.id > c.last_read_message_id) AS counted
         FROM conversations c`,
      )
      .all() as { peer: string; cached: number; counted: number }[];
    for (const row of rows) expect(row.cached, `unread_count of ${row.peer}`).toBe(row.counted);
    // A message whose From was one peer must sit in that peer's conversation.
    const misfiled = db.prepare('SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.peer_uri <> c.peer').pluck().get() as number;
    return { unread: Object.fromEntries(rows.map((row) => [row.peer, row.counted])), misfiled };
  } finally {
    db.close();
  }
}

function unreadByPeer(store: Store): Record<string, number> {
  return Object.fromEntries(store.conversations.list().map((c) => [c.peer, c.unread]));
}

describe('conversation ids in memory', () => {
  it('does not remember a conversation whose transaction rolled back (its id goes to the next one)', () => {
    const store = open();
    const [bob, carol, dave] = PEERS;
    store.messages.recordIncoming(incoming(bob));
    expect(() =>
      store.batch(() => {
        store.messages.recordIncoming(incoming(carol));
        throw new Error('the batch fails');
      }),
    ).toThrow('the batch fails');
    // Dave's conversation is created now and takes the id Carol's had in the rolled-back batch.
    const fromDave = store.messages.recordIncoming(incoming(dave)).message;
    const fromCarol = store.messages.recordIncoming(incoming(carol)).message;
    expect(fromCarol.conversationId).not.toBe(fromDave.conversationId);
    expect(store.messages.get(fromCarol.id)).toMatchObject({ peer: carol, conversationId: fromCarol.conversationId });
    expect(store.messages.get(fromDave.id)).toMatchObject({ peer: dave });
    expect(truth()).toEqual({ unread: { [bob]: 1, [carol]: 1, [dave]: 1 }, misfiled: 0 });
  });

  it('a failed batch rolled back and retried write by write (the history worker’s rule): each message in its own conversation', () => {
    const store = open();
    const [bob, carol] = PEERS;
    const writes = [incoming(carol), incoming(bob, { signerFingerprint: 'not hex' }), incoming(carol), incoming(bob)];
    // Carol's conversation is created inside the batch, which then fails on Bob's bad row.
    expect(() => store.batch(() => writes.map((input) => store.messages.recordIncoming(input)))).toThrow();
    const outcomes = writes.map((input) => {
      try {
        return store.batch(() => store.messages.recordIncoming(input)).inserted;
      } catch {
        return 'failed';
      }
    });
    expect(outcomes).toEqual([true, 'failed', true, true]);
    expect(unreadByPeer(store)).toEqual({ [bob]: 1, [carol]: 2 });
    expect(truth()).toEqual({ unread: { [bob]: 1, [carol]: 2 }, misfiled: 0 });
  });
});

describe('unread counts written once per transaction', () => {
  it('are exact inside a batch (reads see them), after it, and unchanged by a rollback', () => {
    const store = open();
    const [bob, carol] = PEERS;
    store.batch(() => {
      const first = incoming(bob);
      store.messages.recordIncoming(first);
      store.messages.recordIncoming(first); // a duplicate counts nothing
      store.messages.recordIncoming(incoming(bob));
      store.messages.recordIncoming(incoming(carol));
      expect(unreadByPeer(store)).toEqual({ [bob]: 2, [carol]: 1 });
      const bobId = store.conversations.idsWith(bob)[0]!;
      expect(store.conversations.get(bobId)?.unread).toBe(2);
      expect(store.conversations.markRead(bobId)).toBe(0);
      store.messages.recordIncoming(incoming(bob));
    });
    expect(unreadByPeer(store)).toEqual({ [bob]: 1, [carol]: 1 });
    expect(() =>
      store.batch(() => {
        store.messages.recordIncoming(incoming(bob));
        store.messages.recordIncoming(incoming(carol));
        throw new Error('rolled back');
      }),
    ).toThrow('rolled back');
    expect(unreadByPeer(store)).toEqual({ [bob]: 1, [carol]: 1 });
    store.batch(() => store.messages.recordIncoming(incoming(carol)));
    expect(unreadByPeer(store)).toEqual({ [bob]: 1, [carol]: 2 });
    expect(truth()).toEqual({ unread: { [bob]: 1, [carol]: 2 }, misfiled: 0 });
  });

  it('match the rows after any mix of batches, duplicates, reads, marks and rollbacks', () => {
    type Step =
      | { kind: 'message'; peer: number }
      | { kind: 'duplicate'; of: number }
      | { kind: 'list' }
      | { kind: 'markRead'; peer: number };
    const step: fc.Arbitrary<Step> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('message' as const), peer: fc.integer({ min: 0, max: 2 }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), of: fc.nat() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('list' as const)}) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('markRead' as const), peer: fc.integer({ min: 0, max: 2 }) }) },
    );
    const transaction = fc.record({ steps: fc.array(step, { maxLength: 12 }), rollback: fc.boolean(), batched: fc.boolean() });
    let run = 0;
    fc.assert(
      fc.property(fc.array(transaction, { minLength: 1, maxLength: 8 }), (transactions) => {
        run += 1;
        for (const store of opened.splice(0)) store.close();
        dataDir = join(dataDir, '..', `run-${run}`);
        mkdirSync(dataDir, { recursive: true });
        const store = open();
        const sent: IncomingInput[] = [];
        for (const { steps, rollback, batched } of transactions) {
          const body = (): void => {
            for (const s of steps) {
              if (s.kind === 'message') sent.push(incoming(PEERS[s.peer]!));
              if (s.kind === 'duplicate' && sent.length > 0) store.messages.recordIncoming(sent[s.of % sent.length]!);
              if (s.kind === 'message') store.messages.recordIncoming(sent[sent.length - 1]!);
              if (s.kind === 'list') store.conversations.list();
              if (s.kind === 'markRead') {
                const id = store.conversations.idsWith(PEERS[s.peer]!)[0];
                if (id !== undefined) store.conversations.markRead(id);
              }
            }
            if (rollback) throw new Error('rollback');
          };
          if (batched || rollback) {
            try {
              store.batch(body);
            } catch (error) {
              if (!rollback) throw error;
            }
          } else {
            body();
          }
          const rows = truth();
          expect(rows.misfiled).toBe(0);
          expect(unreadByPeer(store)).toEqual(rows.unread);
        }
      }),
      { numRuns: 40 },
    );
  });
});

describe('full-text index without column sizes (version 4)', () => {
  it('rebuilds the index of a version-3 database: the same messages are found, nothing per-message is kept for ranking', () => {
    mkdirSync(dataDir, { recursive: true });
    const db = new Database(join(dataDir, DATABASE_FILE));
    db.pragma('journal_mode = WAL');
    migrate(db, MIGRATIONS.slice(0, 3));
    expect(db.prepare(`SELECT count(*) FROM sqlite_schema WHERE name = 'messages_fts_docsize'`).pluck().get()).toBe(1);
    // Rows and index entries as a version-3 sipnote wrote them.
    db.exec(`
      INSERT INTO accounts (id, aor, created_at, updated_at) VALUES (1, '${ME}', 1, 1);
      INSERT INTO conversations (id, account_id, peer, created_at) VALUES (1, 1, '${PEERS[0]}', 1);
      INSERT INTO messages (id, conversation_id, direction, peer_uri, body, content_type, security, call_id, cseq,
        from_tag, state, created_at, updated_at, received_at)
      VALUES (1, 1, 'in', '${PEERS[0]}', 'Café au lait, "the old penguins"', 'text/plain', 'plaintext', 'old-1', 1, 'x',
        'received', 1, 1, 1);
      INSERT INTO messages_fts (rowid, body, conversation_id) VALUES (1, 'Café au lait, "the old penguins"', '1');`);
    db.close();

    const store = open();
    expect(store.migration).toEqual({ from: 3, to: MIGRATIONS.length });
    store.messages.recordIncoming(incoming(PEERS[0], { body: 'new penguins' }));
    expect(store.messages.search('penguins').map((m) => m.body)).toEqual(['new penguins', 'Café au lait, "the old penguins"']);
    expect(store.messages.search('cafe').map((m) => m.id)).toEqual([1]);
    expect(store.messages.search('"the old" lait').map((m) => m.id)).toEqual([1]);
    expect(store.messages.search('penguins', { peer: PEERS[0] })).toHaveLength(2);
    expect(store.messages.search('penguins', { peer: PEERS[1] })).toEqual([]);
    expect(store.integrityCheck()).toEqual([]);
    const raw = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
    expect(raw.prepare(`SELECT count(*) FROM sqlite_schema WHERE name = 'messages_fts_docsize'`).pluck().get()).toBe(0);
    raw.close();
  });
});
