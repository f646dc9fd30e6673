/**
 * The store (main/store): opening and migrating, write-before-acknowledge and duplicates, the
 * outbox state machine, crash recovery (including a real SIGKILL of a process in the middle of
 * a transaction), full-text search with hostile input, unread counts, contacts.
 *
 * Every test gets its own data dir under the OS temp dir and an injected clock.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  DATABASE_FILE,
  MIGRATIONS,
  migrate,
  openStore,
  StoreError,
  toFtsQuery,
  type IncomingInput,
  type Store,
  type StoreOptions,
} from '../../main/store/index.js';
import { exitWithin, REPO_ROOT, start, stopAll, waitForLine } from '../support/processes.js';

const ME = 'sip:alice@example.com';
const BOB = 'sip:bob@example.org';
const CAROL = 'sip:carol@example.net';
const T0 = 1_700_000_000_000;

let dataDir: string;
let clock: number;
const opened: Store[] = [];

beforeEach(() => {
  dataDir = join(mkdtempSync(join(tmpdir(), 'sipnote-store-')), 'data');
  clock = T0;
});

afterEach(async () => {
  await stopAll();
  for (const store of opened.splice(0)) store.close();
  rmSync(join(dataDir, '..'), { recursive: true, force: true });
});

function open(options: StoreOptions = {}): Store {
  const store = openStore(dataDir, { now: () => clock, ...options });
  opened.push(store);
  return store;
}

/** A second, independent connection: what another process (or the next start) would see. */
function rawConnection(): Database.Database {
  return new Database(join(dataDir, DATABASE_FILE));
}

/** The database file without the store, as an older sipnote would have left it. */
function newRawDatabase(): Database.Database {
  mkdirSync(dataDir, { recursive: true });
  const db = rawConnection();
  db.pragma('journal_mode = WAL');
  return db;
}

let sequence = 0;
function incoming(overrides: Partial<IncomingInput> = {}): IncomingInput {
  sequence += 1;
  return {
    account: ME,
    peer: BOB,
    body: `hello ${sequence}`,
    contentType: 'text/plain;charset=utf-8',
    security: 'plaintext',
    callId: `call-${sequence}@example.org`,
    cseq: 1,
    fromTag: `tag-${sequence}`,
    receivedAt: clock,
    ...overrides,
  };
}

function outgoing(store: Store, peer = BOB, body = 'out') {
  return store.messages.enqueueOutgoing({ account: ME, peer, body, contentType: 'text/plain', security: 'plaintext' });
}

function expectStoreError(fn: () => unknown, code: StoreError['code']): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe(code);
    return;
  }
  expect.fail(`expected a StoreError ${code}`);
}

describe('opening', () => {
  it('creates a private data dir and database in WAL mode with FULL sync and foreign keys', () => {
    const store = open();
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(store.path).mode & 0o777).toBe(0o600);
    store.messages.recordIncoming(incoming());
    expect(statSync(`${store.path}-wal`).mode & 0o777).toBe(0o600);
    expect(store.settings()).toEqual({ journalMode: 'wal', synchronous: 'full', foreignKeys: true, busyTimeoutMs: 5000 });
    expect(open({ synchronous: 'normal' }).settings().synchronous).toBe('normal');
  });

  it('tightens an existing database file that others could read', () => {
    open().close();
    const path = join(dataDir, DATABASE_FILE);
    chmodSync(path, 0o644);
    open();
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('has no column for a secret, and refuses secret-looking settings', () => {
    const store = open();
    const db = rawConnection();
    const tables = db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'messages_fts%'`).pluck().all() as string[];
    expect(tables.sort()).toEqual(['accounts', 'contacts', 'conversations', 'display_notifications_owed', 'messages', 'preferences']);
    for (const table of tables) {
      for (const { name } of db.pragma(`table_info(${table})`) as { name: string }[]) {
        expect(name).not.toMatch(/pass|secret|private|key|token|credential/i);
      }
    }
    db.close();
    expect(store.accounts.upsert({ aor: ME, settings: { theme: 'dark', registrar: 'sip:example.com' } }).settings).toEqual({
      theme: 'dark',
      registrar: 'sip:example.com',
    });
    expectStoreError(() => store.accounts.upsert({ aor: ME, settings: { sipPassword: 'hunter2' } }), 'invalid-input');
    expectStoreError(() => store.accounts.upsert({ aor: ME, settings: { tls: [{ privateKey: 'x' }] } }), 'invalid-input');
    expect(store.accounts.get(ME)?.settings).toEqual({ theme: 'dark', registrar: 'sip:example.com' });
    // Preferences: JSON per key, no secrets either.
    expect(store.preferences.get('app')).toBeUndefined();
    store.preferences.set('app', { theme: 'dark', notifications: true });
    expect(store.preferences.get('app')).toEqual({ theme: 'dark', notifications: true });
    expectStoreError(() => store.preferences.set('app', { apiKey: 'x' }), 'invalid-input');
    expect(store.preferences.get('app')).toEqual({ theme: 'dark', notifications: true });
  });
});

describe('migrations', () => {
  it('creates the schema at the latest version, and reopening changes nothing', () => {
    const first = open();
    expect(first.migration).toEqual({ from: 0, to: MIGRATIONS.length });
    expect(first.schemaVersion).toBe(MIGRATIONS.length);
    first.close();
    expect(open().migration).toEqual({ from: MIGRATIONS.length, to: MIGRATIONS.length });
  });

  it('migrates a version-1 database with history to the latest, and indexes the old messages', () => {
    const db = newRawDatabase();
    expect(migrate(db, MIGRATIONS.slice(0, 1))).toEqual({ from: 0, to: 1 });
    expect(db.pragma('user_version', { simple: true })).toBe(1);
    expect(db.prepare(`SELECT count(*) FROM sqlite_schema WHERE name = 'messages_fts'`).pluck().get()).toBe(0);
    // Rows written by a version-1 sipnote.
    db.exec(`
      INSERT INTO accounts (id, aor, created_at, updated_at) VALUES (1, '${ME}', 1, 1);
      INSERT INTO conversations (id, account_id, peer, created_at) VALUES (1, 1, '${BOB}', 1);
      INSERT INTO messages (conversation_id, direction, peer_uri, body, content_type, security, call_id, cseq,
        from_tag, state, created_at, updated_at, received_at)
      VALUES (1, 'in', '${BOB}', 'an old message about penguins', 'text/plain', 'plaintext', 'old-1', 1, 'x',
        'received', 1, 1, 1);`);
    db.close();

    const store = open();
    expect(store.migration).toEqual({ from: 1, to: MIGRATIONS.length });
    expect(store.messages.search('penguins').map((m) => m.body)).toEqual(['an old message about penguins']);
    store.messages.recordIncoming(incoming({ body: 'a new message about penguins' }));
    expect(store.messages.search('penguins')).toHaveLength(2);
    expect(store.integrityCheck()).toEqual([]);
  });

  it('migrates a version-4 database with history to version 5: old rows owe no notification and were failed by none', () => {
    const db = newRawDatabase();
    expect(migrate(db, MIGRATIONS.slice(0, 4))).toEqual({ from: 0, to: 4 });
    // Rows written by a version-4 sipnote: an unread IM that asked for display (the old core
    // kept that in memory only) and a message of ours a server accepted (202).
    db.exec(`
      INSERT INTO accounts (id, aor, created_at, updated_at) VALUES (1, '${ME}', 1, 1);
      INSERT INTO conversations (id, account_id, peer, created_at, unread_count) VALUES (1, 1, '${BOB}', 1, 1);
      INSERT INTO messages (id, conversation_id, direction, peer_uri, body, content_type, security, call_id, cseq,
        from_tag, imdn_message_id, state, created_at, updated_at, received_at)
      VALUES (1, 1, 'in', '${BOB}', 'read me later', 'text/plain', 'plaintext', 'old-1', 1, 'x', 'in-1', 'received', 1, 1, 1);
      INSERT INTO messages (id, conversation_id, direction, peer_uri, body, content_type, security, imdn_message_id,
        state, status, reason, attempts, created_at, updated_at, sent_at)
      VALUES (2, 1, 'out', '${BOB}', 'stored for later', 'text/plain', 'plaintext', 'out-1', 'accepted', 202, 'Accepted', 1, 1, 1, 1);
      INSERT INTO messages_fts (rowid, body, conversation_id) VALUES (1, 'read me later', '1'), (2, 'stored for later', '1');`);
    db.close();

    const store = open();
    expect(store.migration).toEqual({ from: 4, to: 5 });
    expect(store.schemaVersion).toBe(5);
    expect(store.messages.get(1)).toMatchObject({ body: 'read me later', negativeDelivery: null });
    expect(store.messages.get(2)).toMatchObject({ state: 'accepted', status: 202, negativeDelivery: null });
    expect(store.messages.takeDisplayNotificationsOwed(1)).toEqual([]);
    // The old rows take part in what version 5 adds.
    expect(store.messages.markUndelivered(2, 'failed', 'undelivered').state).toBe('failed');
    expect(store.messages.get(2)).toMatchObject({ state: 'failed', status: 202, reason: 'undelivered', negativeDelivery: 'failed' });
    const owing = store.messages.recordIncoming(incoming({ imdnMessageId: 'in-2', displayNotification: { messageId: 'in-2', dateTime: '2026-01-01T00:00:00Z', from: { uri: BOB }, recordRoute: [] } }));
    expect(store.messages.takeDisplayNotificationsOwed(1).map((owed) => owed.message.id)).toEqual([owing.message.id]);
    expect(store.messages.search('later')).toHaveLength(2);
    expect(store.integrityCheck()).toEqual([]);
  });

  it('rolls a failing migration back and leaves the previous version', () => {
    const db = newRawDatabase();
    migrate(db, MIGRATIONS.slice(0, 1));
    const broken = {
      description: 'fails half-way',
      up(database: Database.Database) {
        database.exec('CREATE TABLE half_done (x INTEGER)');
        throw new Error('boom');
      },
    };
    expect(() => migrate(db, [MIGRATIONS[0]!, broken])).toThrow('boom');
    expect(db.pragma('user_version', { simple: true })).toBe(1);
    expect(db.prepare(`SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'`).pluck().get()).toBe(0);
    db.close();
  });

  it('refuses a database written by a newer sipnote', () => {
    open().close();
    const db = rawConnection();
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expectStoreError(() => open(), 'newer-schema');
  });
});

describe('incoming: write before acknowledge', () => {
  it('has committed the message when recordIncoming returns', () => {
    const store = open();
    const result = store.messages.recordIncoming(incoming({ body: 'durable', signerFingerprint: 'AB:'.repeat(31) + 'AB' }));
    expect(result.inserted).toBe(true);
    expect(result.message).toMatchObject({ direction: 'in', state: 'received', peer: BOB, body: 'durable' });
    expect(result.message.signerFingerprint).toBe('ab'.repeat(32));
    // Another connection sees it at once: the transaction is over, nothing waits in memory.
    const db = rawConnection();
    expect(db.prepare('SELECT body FROM messages WHERE id = ?').pluck().get(result.message.id)).toBe('durable');
    db.close();
    expect(store.messages.get(result.message.id)).toEqual(result.message);
  });

  it('stores a retransmission (same Call-ID, CSeq and From tag) once and returns the first row', () => {
    const store = open();
    const first = store.messages.recordIncoming(incoming({ callId: 'abc@host', cseq: 7, fromTag: 'ft', body: 'once' }));
    clock += 5000;
    const again = store.messages.recordIncoming(
      incoming({ callId: 'abc@host', cseq: 7, fromTag: 'ft', body: 'a proxy re-sent it', receivedAt: clock }),
    );
    expect(again).toEqual({ inserted: false, message: first.message });
    expect(store.messages.history()).toHaveLength(1);
    expect(store.conversations.list()[0]?.unread).toBe(1);
    // A new CSeq in the same call is a new request.
    expect(store.messages.recordIncoming(incoming({ callId: 'abc@host', cseq: 8, fromTag: 'ft' })).inserted).toBe(true);
  });

  it('stores a store-and-forward re-delivery (same IMDN Message-ID, new SIP identifiers) once', () => {
    const store = open();
    const first = store.messages.recordIncoming(incoming({ imdnMessageId: 'm-42', body: 'stored offline' }));
    const redelivered = store.messages.recordIncoming(incoming({ imdnMessageId: 'm-42', body: 'stored offline' }));
    expect(redelivered.inserted).toBe(false);
    expect(redelivered.message.id).toBe(first.message.id);
    // Another peer cannot suppress Bob's messages by reusing his Message-ID.
    expect(store.messages.recordIncoming(incoming({ peer: CAROL, imdnMessageId: 'm-42' })).inserted).toBe(true);
  });

  it('keeps a message to ourselves twice: as sent and as received', () => {
    const store = open();
    const sent = store.messages.enqueueOutgoing({
      account: ME, peer: ME, body: 'note to self', contentType: 'text/plain', security: 'plaintext', imdnMessageId: 'self-1',
    });
    store.messages.markSending(sent.id, { callId: 'self@host', cseq: 1, fromTag: 'me' });
    const received = store.messages.recordIncoming(
      incoming({ peer: ME, callId: 'self@host', cseq: 1, fromTag: 'me', imdnMessageId: 'self-1', body: 'note to self' }),
    );
    expect(received.inserted).toBe(true);
    expect(store.messages.history({ peer: ME }).map((m) => m.direction)).toEqual(['in', 'out']);
  });

  it('treats peers by canonical AoR: URI parameters and host case do not split a conversation', () => {
    const store = open();
    store.messages.recordIncoming(incoming({ peer: 'sip:bob@EXAMPLE.org;transport=tcp' }));
    store.messages.recordIncoming(incoming({ peer: '  sip:bob@example.org ' }));
    const [conversation, ...others] = store.conversations.list();
    expect(others).toEqual([]);
    expect(conversation?.peer).toBe(BOB);
    expect(store.messages.history({ peer: 'sip:bob@Example.ORG' }).map((m) => m.peerUri)).toEqual([
      'sip:bob@example.org',
      'sip:bob@EXAMPLE.org;transport=tcp',
    ]);
    expectStoreError(() => store.messages.recordIncoming(incoming({ peer: 'not a uri' })), 'invalid-input');
  });

  it('stores a batch in one transaction and absorbs duplicates inside it', () => {
    const store = open();
    const a = incoming();
    const results = store.messages.recordIncomingBatch([a, incoming(), { ...a, body: 'retransmitted' }]);
    expect(results.map((r) => r.inserted)).toEqual([true, true, false]);
    expect(results[2]?.message.id).toBe(results[0]?.message.id);
    // All or nothing: a bad row rolls the whole batch back.
    expect(() =>
      store.messages.recordIncomingBatch([incoming({ body: 'would be lost' }), incoming({ signerFingerprint: 'zz' })]),
    ).toThrow(StoreError);
    expect(store.messages.search('lost')).toEqual([]);
  });
});

describe('outbox', () => {
  it('walks queued → sending → delivered, committed at each step', () => {
    const store = open();
    const queued = outgoing(store, BOB, 'hi Bob');
    expect(queued).toMatchObject({ state: 'queued', attempts: 0, nextAttemptAt: T0, callId: null });
    expect(store.messages.dueOutbox().map((m) => m.id)).toEqual([queued.id]);

    clock += 10;
    const sending = store.messages.markSending(queued.id, { callId: 'c1@host', cseq: 1, fromTag: 'f1' });
    expect(sending).toMatchObject({ state: 'sending', attempts: 1, nextAttemptAt: null, callId: 'c1@host', sentAt: T0 + 10 });
    expect(store.messages.dueOutbox()).toEqual([]);
    expect(store.messages.outbox().map((m) => m.state)).toEqual(['sending']);

    const delivered = store.messages.markResult(queued.id, { state: 'delivered', status: 200, reason: 'OK' });
    expect(delivered).toMatchObject({ state: 'delivered', status: 200, reason: 'OK' });
    expect(store.messages.outbox()).toEqual([]);
    const db = rawConnection();
    expect(db.prepare('SELECT state FROM messages WHERE id = ?').pluck().get(queued.id)).toBe('delivered');
    db.close();
  });

  it('makes an account’s waiting retries due now (makeDueNow), leaving final failures and other accounts alone', () => {
    const store = open();
    const waiting = outgoing(store, BOB, 'waiting');
    const final = outgoing(store, CAROL, 'final');
    const other = store.messages.enqueueOutgoing({ account: 'sip:dave@example.com', peer: BOB, body: 'other', contentType: 'text/plain', security: 'plaintext' });
    for (const message of [waiting, final, other]) store.messages.markSending(message.id);
    store.messages.markResult(waiting.id, { state: 'failed', status: 503, retryAt: T0 + 30_000 });
    store.messages.markResult(final.id, { state: 'failed', status: 404 });
    store.messages.markResult(other.id, { state: 'failed', status: 503, retryAt: T0 + 30_000 });
    clock += 5;
    expect(store.messages.makeDueNow(ME)).toBe(1);
    expect(store.messages.get(waiting.id)).toMatchObject({ state: 'failed', nextAttemptAt: T0 + 5 });
    expect(store.messages.get(final.id)?.nextAttemptAt).toBeNull();
    expect(store.messages.get(other.id)?.nextAttemptAt).toBe(T0 + 30_000);
    expect(store.messages.dueOutbox().map((m) => m.id)).toEqual([waiting.id]);
    expect(store.messages.makeDueNow()).toBe(1);
    expect(store.messages.get(other.id)?.nextAttemptAt).toBe(T0 + 5);
  });

  it('retries a retryable failure at its time, and leaves a final one to the user', () => {
    const store = open();
    const message = outgoing(store);
    store.messages.markSending(message.id);
    const failed = store.messages.markResult(message.id, {
      state: 'failed', status: 503, reason: 'Service Unavailable', retryAt: T0 + 30_000,
    });
    expect(failed).toMatchObject({ state: 'failed', status: 503, nextAttemptAt: T0 + 30_000 });
    expect(store.messages.dueOutbox(T0 + 29_999)).toEqual([]);
    expect(store.messages.dueOutbox(T0 + 30_000).map((m) => m.id)).toEqual([message.id]);

    store.messages.markSending(message.id, { callId: 'c2@host', cseq: 2, fromTag: 'f1' });
    const final = store.messages.markResult(message.id, { state: 'failed', status: 404, reason: 'Not Found' });
    expect(final).toMatchObject({ state: 'failed', attempts: 2, nextAttemptAt: null, status: 404 });
    expect(store.messages.dueOutbox(T0 + 10 ** 9)).toEqual([]);
    expect(store.messages.outbox().map((m) => m.id)).toEqual([message.id]);
    expectStoreError(() => store.messages.markSending(message.id), 'invalid-transition');

    clock += 60_000;
    expect(store.messages.retry(message.id)).toMatchObject({ state: 'queued', nextAttemptAt: clock, attempts: 2 });
    expect(store.messages.cancel(message.id)).toMatchObject({ state: 'cancelled', nextAttemptAt: null });
    expect(store.messages.outbox()).toEqual([]);
  });

  it('refuses transitions the state machine does not have', () => {
    const store = open();
    const message = outgoing(store);
    expectStoreError(() => store.messages.markResult(message.id, { state: 'failed', status: 500 }), 'invalid-transition');
    store.messages.markSending(message.id);
    expectStoreError(() => store.messages.markSending(message.id), 'invalid-transition');
    expectStoreError(() => store.messages.cancel(message.id), 'invalid-transition');
    expectStoreError(() => store.messages.retry(message.id), 'invalid-transition');
    expectStoreError(() => store.messages.markResult(message.id, { state: 'delivered', retryAt: 1 }), 'invalid-input');
    const received = store.messages.recordIncoming(incoming()).message;
    expectStoreError(() => store.messages.markResult(received.id, { state: 'displayed' }), 'invalid-transition');
    expectStoreError(() => store.messages.markSending(received.id), 'invalid-transition');
    expectStoreError(() => store.messages.markSending(9999), 'not-found');
  });

  it('moves success states only forward, whatever order responses and IMDNs arrive in', () => {
    const store = open();
    const message = store.messages.enqueueOutgoing({
      account: ME, peer: BOB, body: 'x', contentType: 'text/plain', security: 'plaintext', imdnMessageId: 'imdn-7',
    });
    store.messages.markSending(message.id);
    expect(store.messages.markResult(message.id, { state: 'accepted', status: 202, reason: 'Accepted' }).state).toBe('accepted');
    const found = store.messages.findOutgoingByImdnId(ME, 'sip:bob@EXAMPLE.org', 'imdn-7');
    expect(found?.id).toBe(message.id);
    expect(store.messages.markResult(message.id, { state: 'displayed' })).toMatchObject({ state: 'displayed', status: 202 });
    expect(store.messages.markResult(message.id, { state: 'delivered' }).state).toBe('displayed');
    expect(store.messages.markResult(message.id, { state: 'accepted', status: 202 }).state).toBe('displayed');
    expect(store.messages.findOutgoingByImdnId(ME, BOB, 'unknown')).toBeUndefined();

    // The notification overtook the response (the sender was still recording its 202): the state
    // stays delivered, and the response's status is kept once it is recorded.
    const overtaken = store.messages.enqueueOutgoing({ account: ME, peer: BOB, body: 'y', contentType: 'text/plain', security: 'plaintext', imdnMessageId: 'imdn-8' });
    store.messages.markSending(overtaken.id);
    expect(store.messages.markResult(overtaken.id, { state: 'delivered' })).toMatchObject({ state: 'delivered', status: null });
    expect(store.messages.markResult(overtaken.id, { state: 'accepted', status: 202, reason: 'Accepted' })).toMatchObject({ state: 'delivered', status: 202, reason: 'Accepted' });
    expect(store.messages.get(overtaken.id)).toMatchObject({ state: 'delivered', status: 202 });

    // A delivery IMDN proves delivery even when the 200 was lost and the row is queued again.
    const lost = outgoing(store);
    store.messages.markSending(lost.id);
    store.messages.markResult(lost.id, { state: 'failed', status: 408, reason: 'Request Timeout', retryAt: T0 + 1000 });
    expect(store.messages.markResult(lost.id, { state: 'delivered' })).toMatchObject({ state: 'delivered', nextAttemptAt: null });
  });

  it('keeps per-peer FIFO order: nothing overtakes an older message that must wait', () => {
    const store = open();
    const bob1 = outgoing(store, BOB, 'bob 1');
    store.messages.markSending(bob1.id);
    store.messages.markResult(bob1.id, { state: 'failed', status: 503, retryAt: T0 + 60_000 });
    const bob2 = outgoing(store, BOB, 'bob 2');
    const carol1 = outgoing(store, CAROL, 'carol 1');
    const bob3 = outgoing(store, BOB, 'bob 3');
    const carol2 = outgoing(store, CAROL, 'carol 2');
    expect(store.messages.dueOutbox(T0).map((m) => m.body)).toEqual(['carol 1', 'carol 2']);
    expect(store.messages.dueOutbox(T0 + 60_000).map((m) => m.id)).toEqual([bob1.id, bob2.id, carol1.id, bob3.id, carol2.id]);
    expect(store.messages.dueOutbox(T0 + 60_000, 2).map((m) => m.id)).toEqual([bob1.id, bob2.id]);
    // A message in flight does not block the ones behind it (the UA's destination queue orders them).
    store.messages.markSending(carol1.id);
    expect(store.messages.dueOutbox(T0).map((m) => m.body)).toEqual(['carol 2']);
  });

  it('after a crash, requeues interrupted attempts (attempts kept) and fails them after too many', () => {
    let store = open();
    const message = outgoing(store, BOB, 'interrupted');
    const untouched = outgoing(store, CAROL, 'still queued');
    store.messages.markSending(message.id, { callId: 'c@host', cseq: 1, fromTag: 'f' });
    store.close(); // the process dies here: no result is ever recorded

    for (let attempt = 1; attempt <= 3; attempt++) {
      store = open();
      expect(store.messages.outbox().map((m) => [m.id, m.state])).toEqual([
        [message.id, 'sending'],
        [untouched.id, 'queued'],
      ]);
      const report = store.messages.recoverAfterCrash({ maxAttempts: 3 });
      if (attempt < 3) {
        expect(report.failed).toEqual([]);
        expect(report.requeued.map((m) => [m.id, m.state, m.attempts, m.callId])).toEqual([[message.id, 'queued', attempt, 'c@host']]);
        expect(store.messages.dueOutbox().map((m) => m.id)).toEqual([message.id, untouched.id]);
        store.messages.markSending(message.id);
      } else {
        expect(report.requeued).toEqual([]);
        expect(report.failed.map((m) => [m.id, m.state, m.attempts, m.nextAttemptAt])).toEqual([[message.id, 'failed', 3, null]]);
        expect(report.failed[0]?.reason).toMatch(/interrupted 3 times/);
      }
      store.close();
    }
    store = open();
    expect(store.messages.recoverAfterCrash()).toEqual({ requeued: [], failed: [] });
    expect(store.messages.outbox().map((m) => m.state)).toEqual(['failed', 'queued']);
  });
});

describe('notifications: owed display notifications and negative delivery (RFC 5438)', () => {
  const request = {
    messageId: 'm-1',
    dateTime: '2026-03-01T10:00:00.250+01:00',
    from: { uri: BOB, name: 'Bob' },
    to: { uri: ME },
    originalTo: { uri: 'sip:list@example.com' },
    recordRoute: [{ uri: 'sip:imdn@example.org' }],
  };

  it('keeps an owed display notification with the IM, across a reopen, and hands it out once', () => {
    let store = open();
    const owing = store.messages.recordIncoming(incoming({ imdnMessageId: 'm-1', displayNotification: request }));
    const other = store.messages.recordIncoming(incoming({ imdnMessageId: 'm-2' }));
    const elsewhere = store.messages.recordIncoming(incoming({ peer: CAROL, imdnMessageId: 'm-3', displayNotification: request }));
    // A re-delivery of the same IM owes nothing more: the first copy owes it.
    expect(store.messages.recordIncoming(incoming({ imdnMessageId: 'm-1', displayNotification: request })).inserted).toBe(false);
    store.close();

    store = open();
    const taken = store.messages.takeDisplayNotificationsOwed(owing.message.conversationId);
    expect(taken).toEqual([{ message: owing.message, request }]);
    expect(other.message.conversationId).toBe(owing.message.conversationId);
    // Taken means gone, committed: neither a second read nor the next start hands it out again.
    expect(store.messages.takeDisplayNotificationsOwed(owing.message.conversationId)).toEqual([]);
    store.close();
    store = open();
    expect(store.messages.takeDisplayNotificationsOwed(owing.message.conversationId)).toEqual([]);
    // Another conversation's stays owed.
    expect(store.messages.takeDisplayNotificationsOwed(elsewhere.message.conversationId).map((owed) => owed.message.id)).toEqual([elsewhere.message.id]);
  });

  /** An outgoing message in `state`, through the transitions the outbox makes. */
  function outgoingIn(store: Store, state: 'queued' | 'sending' | 'accepted' | 'delivered' | 'displayed' | 'failed') {
    const message = outgoing(store);
    if (state === 'queued') return message;
    store.messages.markSending(message.id, { callId: `c-${message.id}@host`, cseq: 1, fromTag: 't' });
    if (state === 'accepted') store.messages.markResult(message.id, { state: 'accepted', status: 202, reason: 'Accepted' });
    if (state === 'delivered' || state === 'displayed') store.messages.markResult(message.id, { state: 'delivered', status: 200, reason: 'OK' });
    if (state === 'displayed') store.messages.markResult(message.id, { state: 'displayed' });
    if (state === 'failed') store.messages.markResult(message.id, { state: 'failed', status: 408, reason: 'Request Timeout', retryAt: T0 + 30_000 });
    return store.messages.get(message.id)!;
  }

  it('fails a sending, accepted or delivered message on a negative delivery notification, and nothing else', () => {
    const store = open();
    for (const state of ['sending', 'accepted', 'delivered'] as const) {
      const message = outgoingIn(store, state);
      clock += 1000;
      const update = store.messages.markUndelivered(message.id, 'forbidden', 'refused there');
      expect(update).toMatchObject({ state: 'failed', reason: 'refused there', nextAttemptAt: null, updatedAt: clock });
      expect(store.messages.get(message.id)).toMatchObject({ state: 'failed', status: message.status, reason: 'refused there', negativeDelivery: 'forbidden', nextAttemptAt: null });
    }
    // Displayed settles delivery; queued and failed have no attempt outstanding.
    for (const state of ['displayed', 'queued', 'failed'] as const) {
      const message = outgoingIn(store, state);
      expect(store.messages.markUndelivered(message.id, 'failed', 'nope').state).toBe(state);
      expect(store.messages.get(message.id)).toEqual(message);
    }
    const received = store.messages.recordIncoming(incoming());
    expectStoreError(() => store.messages.markUndelivered(received.message.id, 'failed', 'nope'), 'invalid-transition');
    expectStoreError(() => store.messages.markUndelivered(9999, 'failed', 'nope'), 'not-found');
  });

  it('keeps a message failed by a negative delivery notification whatever comes later, until the user retries it', () => {
    const store = open();
    const message = outgoingIn(store, 'accepted');
    store.messages.markUndelivered(message.id, 'failed', 'undelivered');
    const failed = store.messages.get(message.id)!;
    clock += 1000;
    // A late positive delivery, a display, a second negative one: nothing moves.
    for (const state of ['accepted', 'delivered', 'displayed'] as const) {
      expect(store.messages.markResult(message.id, { state }).state).toBe('failed');
      expect(store.messages.markResult(message.id, { state, status: 200, reason: 'OK' }).state).toBe('failed');
    }
    expect(store.messages.markUndelivered(message.id, 'error', 'again').state).toBe('failed');
    expect(store.messages.get(message.id)).toEqual(failed);
    // Not retried automatically (no retry time), so not in the due outbox; the user may retry it.
    expect(store.messages.dueOutbox(clock + 3_600_000).map((m) => m.id)).not.toContain(message.id);
    expect(store.messages.retry(message.id).state).toBe('queued');
    expect(store.messages.get(message.id)?.negativeDelivery).toBeNull();
    store.messages.markSending(message.id);
    store.messages.markResult(message.id, { state: 'delivered', status: 200, reason: 'OK' });
    expect(store.messages.get(message.id)).toMatchObject({ state: 'delivered', negativeDelivery: null });
  });
});

/**
 * A child process writes batches of incoming messages, each in one transaction, and reports
 * each commit on stdout. With `hold`, it stops inside that batch's transaction, after writing
 * its rows (with a tiny page cache, so they spill into the WAL uncommitted), and waits to be
 * killed. It also enqueues one outgoing message per batch, marks the previous one sending and
 * the one before delivered.
 */
const WRITER = String.raw`
import { writeSync } from 'node:fs';
const [, , storeUrl, dataDir, holdAt] = process.argv;
const { openStore } = await import(storeUrl);
const store = openStore(dataDir, { cacheSizeKiB: 64 });
const filler = 'lorem ipsum dolor sit amet '.repeat(40);
let queued;
let sending;
for (let batch = 0; ; batch++) {
  store.batch(() => {
    for (let row = 0; row < 50; row++) {
      store.messages.recordIncoming({
        account: 'sip:alice@example.com', peer: 'sip:bob@example.org', body: 'batch' + batch + ' row' + row + ' ' + filler,
        contentType: 'text/plain', security: 'plaintext', callId: 'b' + batch + '-' + row, cseq: 1, fromTag: 'f',
        receivedAt: Date.now(),
      });
    }
    if (sending !== undefined) store.messages.markResult(sending, { state: 'delivered', status: 200 });
    if (queued !== undefined) store.messages.markSending(queued);
    sending = queued;
    queued = store.messages.enqueueOutgoing({ account: 'sip:alice@example.com', peer: 'sip:bob@example.org',
      body: 'reply' + batch, contentType: 'text/plain', security: 'plaintext' }).id;
    if (String(batch) === holdAt) {
      writeSync(1, 'inside ' + batch + '\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20000);
    }
  });
  writeSync(1, 'committed ' + batch + '\n');
}
`;

/**
 * Frames after the last commit frame in a WAL file (https://sqlite.org/fileformat.html §4.1):
 * a 32-byte header, then frames of a 24-byte header and one page. A frame whose header has a
 * non-zero "database size" ends a transaction; frames with another salt are left over from an
 * earlier use of the file and do not count.
 */
function uncommittedWalFrames(path: string): number {
  const wal = readFileSync(path);
  if (wal.length < 32) return 0;
  const pageSize = wal.readUInt32BE(8);
  const salts = wal.subarray(16, 24);
  let frames = 0;
  let sinceCommit = 0;
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    if (!wal.subarray(at + 8, at + 16).equals(salts)) break;
    frames += 1;
    sinceCommit = wal.readUInt32BE(at + 4) !== 0 ? 0 : sinceCommit + 1;
  }
  return frames === 0 ? 0 : sinceCommit;
}

describe('a SIGKILL in the middle of writing', () => {
  const storeUrl = pathToFileURL(join(REPO_ROOT, 'build/main/store/index.js')).href;

  function startWriter(holdAt: number | 'never') {
    if (!existsSync(new URL(storeUrl))) throw new Error('build/main/store is missing: run `npx tsc -b` first');
    const script = join(dataDir, '..', 'writer.mjs');
    writeFileSync(script, WRITER);
    return start(process.execPath, [script, storeUrl, dataDir, String(holdAt)]);
  }

  function committedBatches(stdout: string): number[] {
    return [...stdout.matchAll(/^committed (\d+)$/gm)].map((m) => Number(m[1]));
  }

  function batchSizes(store: Store): Map<number, number> {
    const sizes = new Map<number, number>();
    for (let before: number | undefined; ; ) {
      const page = store.messages.history({ limit: 1000, ...(before === undefined ? {} : { before }) });
      if (page.length === 0) return sizes;
      for (const m of page) {
        const batch = /^batch(\d+) row\d+ /.exec(m.body);
        if (m.direction === 'in' && batch) sizes.set(Number(batch[1]), (sizes.get(Number(batch[1])) ?? 0) + 1);
      }
      before = page[page.length - 1]!.id;
    }
  }

  it('killed inside a transaction: every committed batch is whole, the open one left no trace', async () => {
    const writer = startWriter(5);
    await waitForLine(writer, (line) => line === 'inside 5');
    writer.child.kill('SIGKILL');
    expect(await exitWithin(writer)).toBe('SIGKILL');
    expect(committedBatches(writer.stdout())).toEqual([0, 1, 2, 3, 4]);
    // The open transaction had spilled pages into the WAL: recovery must ignore them.
    expect(uncommittedWalFrames(join(dataDir, `${DATABASE_FILE}-wal`))).toBeGreaterThan(0);

    const store = open();
    expect(store.integrityCheck()).toEqual([]);
    expect([...batchSizes(store)].sort((a, b) => a[0] - b[0])).toEqual([0, 1, 2, 3, 4].map((b) => [b, 50]));
    expect(store.messages.search('batch3 row7').map((m) => m.callId)).toEqual(['b3-7']);
    expect(store.messages.search('batch5')).toEqual([]);
    expect(store.conversations.list()[0]?.unread).toBe(250);
    // Batch 4 delivered reply2, marked reply3 sending and queued reply4; batch 5 undid nothing.
    expect(store.messages.history({ search: 'reply2' }).map((m) => m.state)).toEqual(['delivered']);
    expect(store.messages.outbox().map((m) => [m.body, m.state])).toEqual([
      ['reply3', 'sending'],
      ['reply4', 'queued'],
    ]);
    const report = store.messages.recoverAfterCrash();
    expect(report.requeued.map((m) => m.body)).toEqual(['reply3']);
    // (The writer stamped reply4 with the real clock; this store runs on the test clock.)
    expect(store.messages.dueOutbox(Date.now()).map((m) => m.body)).toEqual(['reply3', 'reply4']);
  });

  it('killed at an arbitrary moment: nothing reported committed is lost, nothing half-written appears', async () => {
    const writer = startWriter('never');
    await waitForLine(writer, (line) => line === 'committed 20');
    writer.child.kill('SIGKILL');
    await exitWithin(writer);
    const reported = committedBatches(writer.stdout());

    const store = open();
    expect(store.integrityCheck()).toEqual([]);
    const sizes = batchSizes(store);
    for (const batch of reported) expect(sizes.get(batch)).toBe(50);
    for (const size of sizes.values()) expect(size).toBe(50);
    // At most the batch whose "committed" line the kill cut off is there unreported.
    expect(sizes.size - reported.length).toBeGreaterThanOrEqual(0);
    expect(sizes.size - reported.length).toBeLessThanOrEqual(1);
  });
});

describe('search', () => {
  it('escapes user input into a query of quoted phrases', () => {
    expect(toFtsQuery('hello world')).toBe('"hello" "world"');
    expect(toFtsQuery('say "hi')).toBe('"say" """hi"');
    expect(toFtsQuery('cats AND dogs OR NOT NEAR(x y)')).toBe('"cats" "AND" "dogs" "OR" "NOT" "NEAR(x" "y)"');
    expect(toFtsQuery('pre* ^start col:value')).toBe('"pre*" "^start" "col:value"');
    expect(toFtsQuery('  * -- " ()  ')).toBeNull();
    expect(toFtsQuery('')).toBeNull();
    expect(toFtsQuery('cafe\u0301')).toBe('"café"');
  });

  it('finds words whatever the operators, quotes and case in the query', () => {
    const store = open();
    for (const body of [
      'Meet me at the café at noon',
      'cats AND dogs are welcome',
      'She said "hello" to everyone',
      'C++ or Rust? NOT sure',
      'Привет, как дела?',
      'naïve résumé',
      'e-mail me 🙂 later',
    ]) {
      store.messages.recordIncoming(incoming({ body }));
    }
    const find = (text: string) => store.messages.search(text).map((m) => m.body);
    expect(find('CAFE')).toEqual(['Meet me at the café at noon']);
    expect(find('cafe\u0301')).toEqual(['Meet me at the café at noon']); // decomposed input
    expect(find('AND')).toEqual(['cats AND dogs are welcome']);
    expect(find('NOT')).toEqual(['C++ or Rust? NOT sure']);
    expect(find('"hello')).toEqual(['She said "hello" to everyone']);
    expect(find('"hello"')).toEqual(['She said "hello" to everyone']);
    expect(find('c++')).toEqual(['C++ or Rust? NOT sure']);
    expect(find('привет')).toEqual(['Привет, как дела?']);
    expect(find('naive resume')).toEqual(['naïve résumé']);
    expect(find('e-mail')).toEqual(['e-mail me 🙂 later']);
    expect(find('dogs cats')).toEqual(['cats AND dogs are welcome']); // all words, any order
    expect(find('ca*')).toEqual([]); // no prefix search: `*` is not an operator here
    expect(find('🙂')).toEqual([]); // nothing searchable
    expect(find('NEAR(cats dogs)')).toEqual([]);
    // Only bodies are searched, not the conversation id that the index also holds.
    expect(store.messages.history({ peer: BOB }).every((m) => m.conversationId === 1)).toBe(true);
    expect(find('1')).toEqual([]);
    expect(find('conversation_id')).toEqual([]);
  });

  it('never fails on arbitrary input', () => {
    const store = open();
    store.messages.recordIncoming(incoming({ body: 'a b c "d" e*f (g) h:i ^j' }));
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => {
        store.messages.search(text);
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('AND', 'OR', 'NOT', 'NEAR', '"', '*', '(', ')', ':', '^', '-', '+', 'body', 'a', '{', '}'), {
          maxLength: 8,
        }),
        (tokens) => {
          store.messages.search(tokens.join(''));
          store.messages.search(tokens.join(' '));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('returns newest first, pages with before, and filters by peer and account', () => {
    const store = open();
    const ids: number[] = [];
    for (let i = 0; i < 7; i++) {
      clock += 1000;
      ids.push(store.messages.recordIncoming(incoming({ body: `topic number ${i}`, peer: i % 2 ? CAROL : BOB })).message.id);
    }
    const other = store.messages.recordIncoming(incoming({ account: 'sip:work@example.com', body: 'topic elsewhere' })).message;
    const first = store.messages.search('topic', { limit: 3 });
    expect(first.map((m) => m.id)).toEqual([other.id, ids[6], ids[5]]);
    expect(store.messages.search('topic', { limit: 3, before: first[2]!.id }).map((m) => m.id)).toEqual([ids[4], ids[3], ids[2]]);
    expect(store.messages.search('topic', { peer: CAROL }).map((m) => m.id)).toEqual([ids[5], ids[3], ids[1]]);
    expect(store.messages.search('topic', { account: ME }).map((m) => m.id)).toEqual([...ids].reverse());
    expect(store.messages.search('topic', { peer: BOB }).map((m) => m.id)).toEqual([other.id, ids[6], ids[4], ids[2], ids[0]]);
    expect(store.messages.search('topic', { peer: BOB, account: ME }).map((m) => m.id)).toEqual([ids[6], ids[4], ids[2], ids[0]]);
    expect(store.messages.history({ peer: CAROL, limit: 2 }).map((m) => m.id)).toEqual([ids[5], ids[3]]);
    expect(store.messages.history({ peer: 'sip:nobody@example.org' })).toEqual([]);
    expect(store.messages.history({ limit: 0 })).toHaveLength(1);
    expect(store.messages.history({ limit: 10 ** 6 })).toHaveLength(8);
  });

  it('forgets a deleted message (the delete trigger keeps the index in step)', () => {
    const store = open();
    const gone = store.messages.recordIncoming(incoming({ body: 'delete me please' })).message;
    store.messages.recordIncoming(incoming({ body: 'keep me please' }));
    const db = rawConnection();
    db.prepare('DELETE FROM messages WHERE id = ?').run(gone.id);
    db.prepare(`UPDATE messages SET body = 'edited text' WHERE body = 'keep me please'`).run();
    db.close();
    expect(store.messages.search('please')).toEqual([]);
    expect(store.messages.search('edited').map((m) => m.body)).toEqual(['edited text']);
    expect(store.integrityCheck()).toEqual([]);
  });
});

describe('conversations and unread counts', () => {
  it('counts incoming messages until read, ignores outgoing ones and duplicates', () => {
    const store = open();
    const a = incoming({ peer: BOB });
    store.messages.recordIncoming(a);
    store.messages.recordIncoming(a);
    clock += 1;
    store.messages.recordIncoming(incoming({ peer: BOB }));
    clock += 1;
    const toCarol = outgoing(store, CAROL, 'to carol');
    const bobMessage = store.messages.recordIncoming(incoming({ peer: BOB, body: 'latest from bob' })).message;

    let list = store.conversations.list();
    expect(list.map((c) => [c.peer, c.unread, c.lastMessage?.body])).toEqual([
      [BOB, 3, 'latest from bob'],
      [CAROL, 0, 'to carol'],
    ]);
    const bob = list[0]!;
    expect(store.conversations.markRead(bob.id, bobMessage.id - 1)).toBe(1);
    expect(store.conversations.markRead(bob.id, 1)).toBe(1); // never moves back
    expect(store.conversations.markRead(bob.id)).toBe(0);
    store.messages.recordIncoming(incoming({ peer: BOB }));
    list = store.conversations.list(ME);
    expect(list.find((c) => c.peer === BOB)?.unread).toBe(1);
    expect(list.find((c) => c.peer === CAROL)?.lastMessage?.id).toBe(toCarol.id);
    expect(store.conversations.list('sip:someone-else@example.com')).toEqual([]);
    expectStoreError(() => store.conversations.markRead(999), 'not-found');
  });

  it('pages a conversation by position, oldest first, and reads one summary by id', () => {
    const store = open();
    const ids = [1, 2, 3, 4, 5].map((i) => store.messages.recordIncoming(incoming({ body: `m${i}` })).message.id);
    store.messages.recordIncoming(incoming({ peer: CAROL, body: 'elsewhere' }));
    const [conversationId] = store.conversations.idsWith(BOB);
    expect(store.messages.countIn(conversationId!)).toBe(5);
    const page = store.messages.conversationPage(conversationId!, 1, 2);
    expect(page).toMatchObject({ total: 5 });
    expect(page.messages.map((m) => m.id)).toEqual(ids.slice(1, 3));
    expect(store.messages.conversationPage(conversationId!, 10, 2).messages).toEqual([]);
    expect(store.conversations.get(conversationId!)).toMatchObject({ id: conversationId, peer: BOB, unread: 5, lastMessage: { body: 'm5' } });
    expect(store.conversations.get(999)).toBeUndefined();
  });

  it('shows the contact name of a peer', () => {
    const store = open();
    store.messages.recordIncoming(incoming({ peer: BOB }));
    store.contacts.upsert({ account: ME, aor: BOB, displayName: 'Bob' });
    expect(store.conversations.list()[0]?.displayName).toBe('Bob');
  });
});

describe('contacts', () => {
  it('creates, updates, lists and removes contacts by canonical AoR', () => {
    const store = open();
    const bob = store.contacts.upsert({ account: ME, aor: 'sip:bob@EXAMPLE.org;transport=udp', displayName: 'Bob' });
    expect(bob).toMatchObject({ account: ME, aor: BOB, displayName: 'Bob', policy: 'smime', trust: 'none', certificate: null });
    clock += 1;
    const renamed = store.contacts.upsert({ account: ME, aor: BOB, displayName: 'Robert' });
    expect(renamed).toMatchObject({ id: bob.id, displayName: 'Robert', policy: 'smime', updatedAt: T0 + 1 });
    expect(store.contacts.setPolicy(bob.id, 'legacy-plaintext').policy).toBe('legacy-plaintext');
    expect(store.contacts.upsert({ account: ME, aor: BOB }).displayName).toBe('Robert');
    store.contacts.upsert({ account: ME, aor: CAROL, displayName: 'Carol' });
    expect(store.contacts.list(ME).map((c) => c.displayName)).toEqual(['Carol', 'Robert']);
    expect(store.contacts.find(ME, 'sip:bob@example.ORG')?.id).toBe(bob.id);
    expect(store.contacts.remove(bob.id)).toBe(true);
    expect(store.contacts.remove(bob.id)).toBe(false);
    expect(store.contacts.get(bob.id)).toBeUndefined();
  });

  it('pins a certificate with its SHA-256 fingerprint, and tracks trust', () => {
    const store = open();
    const bob = store.contacts.upsert({ account: ME, aor: BOB });
    expectStoreError(() => store.contacts.setTrust(bob.id, 'verified'), 'invalid-transition');
    const der = Buffer.from('30820122300d06092a864886f70d01010105000382010f00', 'hex');
    const pinned = store.contacts.pinCertificate(bob.id, der);
    expect(pinned.trust).toBe('pinned');
    expect(pinned.certificate?.equals(der)).toBe(true);
    expect(pinned.fingerprint).toBe(createHash('sha256').update(der).digest('hex'));
    expect(store.contacts.setTrust(bob.id, 'verified').trust).toBe('verified');
    expect(store.contacts.setTrust(bob.id, 'changed').trust).toBe('changed');
    const other = Buffer.from('3003020101', 'hex');
    expect(store.contacts.pinCertificate(bob.id, other, 'verified')).toMatchObject({
      trust: 'verified',
      fingerprint: createHash('sha256').update(other).digest('hex'),
    });
    expect(store.contacts.clearCertificate(bob.id)).toMatchObject({ trust: 'none', certificate: null, fingerprint: null });
    expectStoreError(() => store.contacts.pinCertificate(bob.id, new Uint8Array()), 'invalid-input');
    expectStoreError(() => store.contacts.pinCertificate(4242, der), 'not-found');
  });
});
