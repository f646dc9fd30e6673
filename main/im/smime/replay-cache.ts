/**
 * The replay cache of the receiver (RFC 3428 §11.4; design.md, security section).
 *
 * A date under the signature stops old messages; it does not stop a message replayed inside
 * the acceptance window (up to 72 hours for store-and-forward delivery). So every accepted
 * signed message leaves a key here until its window has closed, and a message whose key is
 * present is a replay: the UAS answers 200 again (a UAC retransmission after a lost 200 must
 * stay harmless) and shows nothing.
 *
 * The key is SHA-256 of the signer's certificate and the CMS messageDigest attribute, the
 * digest of the signed MIME entity (which holds the CPIM DateTime and imdn.Message-ID). Both are
 * under the signature. Not the signature bytes: ECDSA signatures are malleable ((r, s) and
 * (r, n−s) both verify). Not the ciphertext or the Call-ID: re-encryption and every proxy
 * change those.
 *
 * The cache must survive a restart, or a restart reopens the window: `SqliteReplayCache` keeps
 * it in a small SQLite table (`replay(key PRIMARY KEY, expires_at)`) in the data directory, or
 * in the caller's own database, so that remembering a key and storing the message can be one
 * transaction.
 */
import Database from 'better-sqlite3';
import { certificateSha256Hex } from '../../security/certificates.js';

export interface ReplayCache {
  /** Whether `key` was remembered and has not been pruned. */
  seen(key: string): boolean;
  /**
   * Remembers `key` until `expiresAt`. Returns false when it was already there (a replay that
   * raced past `seen`), true when it is new. A key remembered again keeps the later expiry.
   */
  remember(key: string, expiresAt: Date): boolean;
}

/** The cache key of a verified signature: hex SHA-256 of the signer certificate, ":", hex messageDigest. */
export function replayKey(signerCertificateDer: Uint8Array, messageDigest: Uint8Array): string {
  return replayKeyOf(certificateSha256Hex(signerCertificateDer), messageDigest);
}

/** `replayKey` for a certificate whose hex SHA-256 is known already (`KnownCertificate.sha256Hex`). */
export function replayKeyOf(certificateSha256Hex: string, messageDigest: Uint8Array): string {
  return `${certificateSha256Hex}:${Buffer.from(messageDigest.buffer, messageDigest.byteOffset, messageDigest.byteLength).toString('hex')}`;
}

/** In memory only: for tests and for callers that keep the cache elsewhere. */
export class MemoryReplayCache implements ReplayCache {
  private readonly entries = new Map<string, number>();

  seen(key: string): boolean {
    return this.entries.has(key);
  }

  remember(key: string, expiresAt: Date): boolean {
    const previous = this.entries.get(key);
    this.entries.set(key, Math.max(previous ?? 0, expiresAt.getTime()));
    return previous === undefined;
  }

  /** Forgets keys that expired before `now`; returns how many. */
  prune(now: Date): number {
    let removed = 0;
    for (const [key, expiresAt] of this.entries) {
      if (expiresAt < now.getTime()) {
        this.entries.delete(key);
        removed++;
      }
    }
    return removed;
  }

  get size(): number {
    return this.entries.size;
  }
}

export interface SqliteReplayCacheOptions {
  /**
   * The clock used only to prune expired keys (on open and every `pruneEvery` inserts).
   * Pruning late is harmless: an expired key belongs to a message the freshness check refuses.
   */
  readonly now?: () => Date;
  readonly pruneEvery?: number;
}

type Db = InstanceType<typeof Database>;

/**
 * A replay cache in SQLite. `SqliteReplayCache.open(file)` owns its own database file (WAL,
 * synchronous=FULL, so that a key written before a 200 is still there after a crash or power
 * loss); `new SqliteReplayCache(db)` adds the table to a database the caller already has open
 * and leaves closing it to the caller.
 */
export class SqliteReplayCache implements ReplayCache {
  private readonly seenStatement;
  private readonly insertStatement;
  private readonly pruneStatement;
  private readonly now: () => Date;
  private readonly pruneEvery: number;
  private insertsSincePrune = 0;

  static open(file: string, options: SqliteReplayCacheOptions = {}): SqliteReplayCache {
    const db = new Database(file);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      return new SqliteReplayCache(db, options, true);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  constructor(
    private readonly db: Db,
    options: SqliteReplayCacheOptions = {},
    private readonly ownsDb = false,
  ) {
    this.now = options.now ?? (() => new Date());
    this.pruneEvery = options.pruneEvery ?? 256;
    // WITHOUT ROWID: the key is the whole row's identity; expires_at in milliseconds since 1970.
    db.exec('CREATE TABLE IF NOT EXISTS replay (key TEXT PRIMARY KEY NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID');
    db.exec('CREATE INDEX IF NOT EXISTS replay_expires_at ON replay (expires_at)');
    this.seenStatement = db.prepare<[string], { one: number }>('SELECT 1 AS one FROM replay WHERE key = ?');
    this.insertStatement = db.prepare<[string, number]>(
      'INSERT INTO replay (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)',
    );
    this.pruneStatement = db.prepare<[number]>('DELETE FROM replay WHERE expires_at < ?');
    this.prune(this.now());
  }

  seen(key: string): boolean {
    return this.seenStatement.get(key) !== undefined;
  }

  remember(key: string, expiresAt: Date): boolean {
    const isNew = !this.seen(key);
    this.insertStatement.run(key, expiresAt.getTime());
    if (++this.insertsSincePrune >= this.pruneEvery) this.prune(this.now());
    return isNew;
  }

  /** Deletes keys that expired before `now`; returns how many. */
  prune(now: Date): number {
    this.insertsSincePrune = 0;
    return this.pruneStatement.run(now.getTime()).changes;
  }

  get size(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM replay').get() as { n: number }).n;
  }

  /** Closes the database if `open` created it. */
  close(): void {
    if (this.ownsDb) this.db.close();
  }
}
