/**
 * Opening the store: one SQLite database in the data dir, private to the user, in WAL mode,
 * migrated to the current schema.
 *
 * Durability ("write before acknowledge", design.md): a 2xx tells the sender it may forget
 * the message, and `queued` tells the user it will not be lost, so a commit must survive not
 * only a killed process but a power cut or a kernel crash. In WAL mode:
 * - `synchronous = NORMAL` syncs the WAL only at checkpoints. A commit survives the process
 *   being killed (the WAL write is in the OS), but the last commits can roll back after a
 *   power loss or an OS crash: messages we acknowledged would be gone.
 * - `synchronous = FULL` also syncs the WAL at every commit. That is what we use. It costs one
 *   fsync per transaction (about 0.2 ms on the project's VM, about 4 500 commits/s measured
 *   against 90 000 with NORMAL), and the fsync blocks the thread that commits. So a writer
 *   that sees many messages at once commits them together, one transaction for all that have
 *   arrived, rather than weaken the guarantee: the busy `sipnote listen --data-dir` does its
 *   writes on a worker thread with a connection of its own (cli/history-worker.ts), where the
 *   sync blocks only that thread and one transaction takes every write that queued up while
 *   the previous one was being synced (bench/store-insert.ts measures that path). The desktop
 *   core commits each message on its own, on its main thread: it receives at a person's pace,
 *   and opening an S/MIME message takes about as long as the commit and its sync
 *   (bench/README.md "Store insert benchmark").
 *
 * Other settings: foreign keys on (cascades from accounts and conversations); a busy timeout,
 * because the CLI (`sipnote history`) may read or write while `sipnote listen` runs; a 64 MiB
 * page cache (an upper bound, filled on demand), which keeps the unique indexes of a large
 * history in memory; and a WAL size limit, so the file shrinks back after a large batch.
 */
import { chmodSync, closeSync, existsSync, fstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AccountRepository } from './accounts.js';
import { AorCanonicalizer } from './aor.js';
import { ContactRepository } from './contacts.js';
import { ConversationRepository } from './conversations.js';
import { MessageRepository } from './messages.js';
import { MIGRATIONS, migrate, schemaVersion, type MigrationReport } from './migrations.js';
import { PreferenceRepository } from './preferences.js';
import { atomically, type Db } from './sql.js';

/**
 * Page size of a new database. Larger pages make a B-tree flatter; the unique keys of
 * incoming messages are random, and with 8 KiB pages inserting into them cost about 10 % less
 * CPU at a million messages than with SQLite's default 4 KiB (bench/README.md "history").
 */
const PAGE_SIZE = 8192;

/** The database file inside the data dir (with its `-wal` and `-shm` companions). */
export const DATABASE_FILE = 'sipnote.db';

export interface StoreOptions {
  /** Wall-clock milliseconds for created/updated times and the outbox; tests inject one. */
  readonly now?: () => number;
  /** `full` (default) or `normal`; see the module comment before choosing `normal`. */
  readonly synchronous?: 'full' | 'normal';
  /** Page cache upper bound, KiB. Default 65 536 (64 MiB). */
  readonly cacheSizeKiB?: number;
  /** How long a write waits for another connection's lock. Default 5 000 ms. */
  readonly busyTimeoutMs?: number;
}

export interface StoreSettings {
  readonly journalMode: string;
  readonly synchronous: 'off' | 'normal' | 'full' | 'extra';
  readonly foreignKeys: boolean;
  readonly busyTimeoutMs: number;
}

export class Store {
  readonly accounts: AccountRepository;
  readonly contacts: ContactRepository;
  readonly conversations: ConversationRepository;
  readonly messages: MessageRepository;
  readonly preferences: PreferenceRepository;

  constructor(
    private readonly db: Db,
    /** Path of the database file. */
    readonly path: string,
    /** The schema versions before and after opening. */
    readonly migration: MigrationReport,
    now: () => number,
  ) {
    const aors = new AorCanonicalizer();
    this.accounts = new AccountRepository(db, aors, now);
    this.conversations = new ConversationRepository(db, aors, this.accounts, now);
    this.contacts = new ContactRepository(db, aors, this.accounts, now);
    this.messages = new MessageRepository(db, aors, this.conversations, now);
    this.preferences = new PreferenceRepository(db, now);
  }

  get schemaVersion(): number {
    return schemaVersion(this.db);
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  /** The connection's durability-relevant settings, for diagnostics and tests. */
  settings(): StoreSettings {
    const synchronous = ['off', 'normal', 'full', 'extra'][this.db.pragma('synchronous', { simple: true }) as number];
    return {
      journalMode: this.db.pragma('journal_mode', { simple: true }) as string,
      synchronous: (synchronous ?? 'unknown') as StoreSettings['synchronous'],
      foreignKeys: this.db.pragma('foreign_keys', { simple: true }) === 1,
      busyTimeoutMs: this.db.pragma('busy_timeout', { simple: true }) as number,
    };
  }

  /**
   * Runs `fn` (store calls only) in one transaction: one commit, one fsync, all or nothing.
   * If `fn` throws, everything it did is rolled back and the error is rethrown; do not catch
   * a store error inside `fn` and carry on (sql.ts `atomically` says why).
   */
  batch<T>(fn: () => T): T {
    return atomically(this.db, fn);
  }

  /** Problems found by SQLite's integrity check and FTS5's own (empty when all is well). */
  integrityCheck(): string[] {
    const problems = (this.db.pragma('integrity_check') as { integrity_check: string }[])
      .map((row) => row.integrity_check)
      .filter((text) => text !== 'ok');
    try {
      // rank 1: also compare the index with the content of the messages table.
      this.db.prepare(`INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)`).run();
    } catch (error) {
      problems.push(`full-text index: ${(error as Error).message}`);
    }
    return problems;
  }

  /** Copies the WAL into the database file and truncates it (for size measurements, backups). */
  checkpoint(): void {
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  /** Closes the database (idempotent). Everything committed is already durable. */
  close(): void {
    if (!this.db.open) return;
    this.db.pragma('optimize');
    this.db.close();
  }
}

/** Opens (creating if needed) the store in `dataDir` and migrates it. */
export function openStore(dataDir: string, options: StoreOptions = {}): Store {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, DATABASE_FILE);
  createPrivateFile(path);
  for (const companion of [`${path}-wal`, `${path}-shm`]) if (existsSync(companion)) makePrivate(companion);

  const db = new Database(path, { timeout: options.busyTimeoutMs ?? 5000 });
  try {
    // Only takes effect while the file is empty (a new database); must precede WAL mode.
    db.pragma(`page_size = ${PAGE_SIZE}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`store: could not switch ${path} to WAL mode (got ${String(mode)})`);
    db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    db.pragma('foreign_keys = ON');
    db.pragma(`cache_size = -${Math.trunc(options.cacheSizeKiB ?? 65_536)}`);
    db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
    const report = migrate(db, MIGRATIONS);
    const clock = options.now ?? Date.now;
    // Whole milliseconds: the time columns are STRICT INTEGER.
    return new Store(db, path, report, () => Math.trunc(clock()));
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * The history is private: the file is created 0600 (SQLite gives its -wal and -shm the same
 * mode), and an existing one readable by others is tightened. The data dir is created 0700;
 * an existing directory is left as it is (it may be a shared parent the user chose).
 */
function createPrivateFile(path: string): void {
  const fd = openSync(path, 'a', 0o600);
  try {
    if (process.platform !== 'win32' && (fstatSync(fd).mode & 0o077) !== 0) chmodSync(path, 0o600);
  } finally {
    closeSync(fd);
  }
}

function makePrivate(path: string): void {
  if (process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
}
