/**
 * Versioned schema migrations.
 *
 * The schema version is SQLite's `user_version` (a number in the database header, written in
 * the same transaction as the change). Migration i (0-based) takes the database from version
 * i to version i+1; each runs in its own IMMEDIATE transaction, so a crash or an error leaves
 * the database at the previous version, never half-migrated, and two processes opening the
 * same data dir at once migrate it once (the second waits for the write lock, then sees the
 * new version). Migrations are append-only: a released one is never edited.
 *
 * A database from a newer sipnote (a version above the list) is refused rather than used:
 * an older build could silently misread rows it does not know.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { StoreError } from './store-error.js';

type Db = BetterSqlite3.Database;

/**
 * `(column = 'a' OR column = 'b' …)`. The lists are literals at each call site, so a
 * migration's SQL never changes after release.
 */
function oneOf(column: string, values: readonly string[]): string {
  return `(${values.map((value) => `${column} = '${value}'`).join(' OR ')})`;
}

export interface Migration {
  /** One line for logs and the report of what ran. */
  readonly description: string;
  readonly up: (db: Db) => void;
}

/**
 * Version 1: accounts, contacts, conversations, messages.
 *
 * - Every table is STRICT (a value of the wrong type is an error, not silently stored).
 * - `messages.id` is the rowid and grows with arrival, so "newest first" is `id DESC` and
 *   needs no timestamp index (performance.md §5: the FTS index streams in rowid order).
 * - Incoming duplicates are refused by two unique keys: (Call-ID, CSeq, From tag) for a
 *   retransmitted or re-sent request (RFC 3261 §8.2.2.2, §17.2.3; design.md "Durability"),
 *   and the IMDN Message-ID (RFC 5438 §6.3) for a store-and-forward server re-delivering with
 *   new SIP identifiers. The IMDN key includes the conversation (account + peer) and the
 *   direction: one peer cannot suppress another's messages by reusing their Message-ID, and a
 *   message to ourselves is stored once as sent and once as received.
 * - The outbox index is partial: it holds only outgoing rows that still wait (queued,
 *   sending, failed), so it stays tiny however long the history grows.
 * - CHECK constraints carry the state machine's invariants: incoming rows are `received`
 *   and carry their SIP key; `next_attempt_at` is set exactly for rows the outbox will send.
 * - Enumerations are written `(x = 'a' OR x = 'b')`, never `x IN ('a', 'b')`: SQLite builds a
 *   temporary b-tree for an IN list each time a statement runs, and with the IN-list CHECKs and
 *   partial index an insert cost about 7 µs more (bench/README.md "history").
 */
const v1Tables: Migration = {
  description: 'accounts, contacts, conversations, messages',
  up(db) {
    db.exec(`
      CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        aor TEXT NOT NULL UNIQUE,
        display_name TEXT,
        settings TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings) AND json_type(settings) = 'object'),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) STRICT;

      CREATE TABLE contacts (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        aor TEXT NOT NULL,
        display_name TEXT,
        certificate BLOB,
        certificate_sha256 BLOB CHECK (certificate_sha256 IS NULL OR length(certificate_sha256) = 32),
        policy TEXT NOT NULL DEFAULT 'smime' CHECK (${oneOf('policy', ['smime', 'legacy-plaintext'])}),
        trust TEXT NOT NULL DEFAULT 'none' CHECK (${oneOf('trust', ['none', 'pinned', 'verified', 'changed'])}),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (account_id, aor),
        CHECK ((certificate IS NULL) = (certificate_sha256 IS NULL)),
        CHECK ((certificate IS NULL) = (trust = 'none'))
      ) STRICT;

      CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        peer TEXT NOT NULL,
        last_read_message_id INTEGER NOT NULL DEFAULT 0,
        unread_count INTEGER NOT NULL DEFAULT 0 CHECK (unread_count >= 0),
        created_at INTEGER NOT NULL,
        UNIQUE (account_id, peer)
      ) STRICT;

      CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        direction TEXT NOT NULL CHECK (${oneOf('direction', ['in', 'out'])}),
        peer_uri TEXT NOT NULL,
        body TEXT NOT NULL,
        content_type TEXT NOT NULL,
        security TEXT NOT NULL CHECK (${oneOf('security', ['encrypted-signed', 'encrypted', 'signed', 'plaintext'])}),
        signer_sha256 BLOB CHECK (signer_sha256 IS NULL OR length(signer_sha256) = 32),
        call_id TEXT,
        cseq INTEGER,
        from_tag TEXT,
        imdn_message_id TEXT,
        state TEXT NOT NULL CHECK (${oneOf('state', [
          'queued', 'sending', 'accepted', 'delivered', 'displayed', 'failed', 'cancelled', 'received',
        ])}),
        status INTEGER CHECK (status IS NULL OR status BETWEEN 100 AND 699),
        reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        sent_at INTEGER,
        received_at INTEGER,
        late INTEGER NOT NULL DEFAULT 0 CHECK (late = 0 OR late = 1),
        CHECK ((direction = 'in') = (state = 'received')),
        CHECK (direction = 'out' OR (call_id IS NOT NULL AND cseq IS NOT NULL AND from_tag IS NOT NULL)),
        CHECK (next_attempt_at IS NULL OR ${oneOf('state', ['queued', 'failed'])}),
        CHECK (state <> 'queued' OR next_attempt_at IS NOT NULL)
      ) STRICT;

      CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
      CREATE UNIQUE INDEX messages_incoming_sip_key ON messages (call_id, cseq, from_tag)
        WHERE direction = 'in';
      CREATE UNIQUE INDEX messages_imdn_id ON messages (conversation_id, direction, imdn_message_id)
        WHERE imdn_message_id IS NOT NULL;
      CREATE INDEX messages_outbox ON messages (conversation_id, id)
        WHERE direction = 'out' AND ${oneOf('state', ['queued', 'sending', 'failed'])};
    `);
  },
};

/**
 * Version 2: full-text search over message bodies (FTS5, external content).
 *
 * The index stores no copy of the text (`content='messages'`): FTS5 reads bodies from the
 * messages table when it needs them. The tokenizer folds case and, with
 * `remove_diacritics 2`, accents ("café" finds "cafe").
 *
 * The conversation id is indexed as a second column (one token per message), so a search
 * within one conversation is an intersection inside the index (`conversation_id : "17" AND
 * {body} : (…)`) instead of a walk through every match of a common word checking each
 * message's conversation. Queries always restrict the words to `{body}` (messages.ts).
 *
 * New rows are indexed by the insert path itself (messages.ts `insertRow`), not by an AFTER
 * INSERT trigger: a trigger that writes to a virtual table makes every INSERT inside a
 * transaction open a statement savepoint, and FTS5 flushes its pending terms to disk at each
 * savepoint (sqlite3.c `fts5SavepointMethod`). That turned each batch into one tiny segment
 * per row and made bulk inserts about 3× slower (measured; bench/README.md "history").
 * Updates of a body and deletions are rare and keep their triggers: an external-content index
 * must be told the old text to remove it.
 *
 * It is its own step because the index is derived data: `rebuild` fills it from whatever
 * messages exist, which is also what a database created at version 1 needs.
 */
const v2Search: Migration = {
  description: 'full-text search over message bodies',
  up(db) {
    db.exec(`
      CREATE VIRTUAL TABLE messages_fts USING fts5(
        body,
        conversation_id,
        content = 'messages',
        content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
      );
      CREATE TRIGGER messages_fts_after_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body, conversation_id)
          VALUES ('delete', old.id, old.body, old.conversation_id);
      END;
      CREATE TRIGGER messages_fts_after_update AFTER UPDATE OF body, conversation_id ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body, conversation_id)
          VALUES ('delete', old.id, old.body, old.conversation_id);
        INSERT INTO messages_fts (rowid, body, conversation_id) VALUES (new.id, new.body, new.conversation_id);
      END;
      INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
    `);
  },
};

/**
 * Version 3: application preferences (the desktop app's theme, notifications, shortcuts),
 * one JSON value per name. Like account settings they are never secrets (preferences.ts
 * refuses secret-looking keys).
 */
const v3Preferences: Migration = {
  description: 'application preferences',
  up(db) {
    db.exec(`
      CREATE TABLE preferences (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL CHECK (json_valid(value)),
        updated_at INTEGER NOT NULL
      ) STRICT;
    `);
  },
};

/**
 * Version 4: the full-text index without per-message column sizes (`columnsize = 0`).
 *
 * FTS5 keeps, by default, a `messages_fts_docsize` row per message (the token count of each
 * column) for relevance ranking (bm25). Search here is newest first, never ranked
 * (messages.ts `history`), and highlighting is done in JavaScript, so those rows were written
 * and never read: one more B-tree insert per message and one more page per commit in the WAL.
 * Without them an incoming message costs about 8 % less CPU in a group commit of 8
 * (bench/store-insert.ts). The terms and positions indexed, and therefore what a search finds
 * (words, prefixes, phrases, per conversation), are unchanged.
 *
 * FTS5 options cannot be altered in place: the index is dropped and built again from the
 * messages (derived data, as in version 2). The triggers on `messages` name the table and keep
 * working with the new one. On a large history this takes a while, once: about 5 s per million
 * messages on the project's VM.
 */
const v4SearchWithoutColumnSizes: Migration = {
  description: 'full-text search without column sizes',
  up(db) {
    db.exec(`
      DROP TABLE messages_fts;
      CREATE VIRTUAL TABLE messages_fts USING fts5(
        body,
        conversation_id,
        content = 'messages',
        content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2',
        columnsize = 0
      );
      INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
    `);
  },
};

/**
 * Version 5: notifications (RFC 5438) that outlive a restart.
 *
 * - `display_notifications_owed`: one row per received IM whose display notification is still
 *   owed (it asked for `display`, §7.2), written in the transaction that stores the IM and
 *   deleted when the user reads its conversation (messages.ts `takeDisplayNotificationsOwed`).
 *   `request` holds, as a JSON object, what the notification quotes that the message row does
 *   not (types.ts `DisplayNotificationRequest`: the DateTime as written, the CPIM From and To,
 *   imdn.Original-To, IMDN-Record-Route). A side table rather than a column: it holds only the
 *   few unread IMs that asked, it empties as they are read, and storing a message that owes
 *   nothing (every message `sipnote listen` stores) costs nothing more. Rows go with their
 *   message (ON DELETE CASCADE).
 * - `messages.negative_delivery`: the status of the negative-delivery notification that failed
 *   an outgoing message (§7.2.1.1, §11: failed, forbidden, error), so that a later response or
 *   notification does not move it again (messages.ts `markUndelivered`).
 *
 * Rows written before this version owe nothing (the in-memory list of owed notifications of the
 * sipnote that wrote them is gone anyway) and were never failed by a notification (earlier
 * versions only logged negative ones): the table starts empty and the column NULL.
 */
const v5Notifications: Migration = {
  description: 'owed display notifications, negative delivery',
  up(db) {
    db.exec(`
      CREATE TABLE display_notifications_owed (
        message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
        request TEXT NOT NULL CHECK (json_valid(request) AND json_type(request) = 'object')
      ) STRICT;
      ALTER TABLE messages ADD COLUMN negative_delivery TEXT
        CHECK (negative_delivery IS NULL OR ${oneOf('negative_delivery', ['failed', 'forbidden', 'error'])});
    `);
  },
};

/** Every migration, in order. Append only. */
export const MIGRATIONS: readonly Migration[] = [v1Tables, v2Search, v3Preferences, v4SearchWithoutColumnSizes, v5Notifications];

export interface MigrationReport {
  readonly from: number;
  readonly to: number;
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Brings the database to the last version of `migrations` (by default all of them; tests
 * pass a prefix to build an old database). Safe to call on every start.
 */
export function migrate(db: Db, migrations: readonly Migration[] = MIGRATIONS): MigrationReport {
  const from = schemaVersion(db);
  if (from > migrations.length) {
    throw new StoreError(
      'newer-schema',
      `the database is at schema version ${from}, this sipnote knows up to ${migrations.length}: use a newer sipnote`,
    );
  }
  migrations.forEach((migration, index) => {
    const target = index + 1;
    db.transaction(() => {
      // Read again under the write lock: another process may have migrated meanwhile.
      if (schemaVersion(db) >= target) return;
      migration.up(db);
      // user_version takes no bound parameter; `target` is an integer from this module.
      db.pragma(`user_version = ${target}`);
    }).immediate();
  });
  return { from, to: Math.max(from, migrations.length) };
}
