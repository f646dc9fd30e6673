/**
 * Accounts: our own addresses of record, with a display name and free-form settings.
 *
 * Credentials are not settings. The SIP password and the private key live in the OS keychain
 * (design.md "Security"); the database has no column for them, and settings whose keys look
 * like a secret are refused so that one cannot slip in through the JSON either.
 */
import type { AorCanonicalizer } from './aor.js';
import { atomically, type Db, type Statement } from './sql.js';
import { StoreError } from './store-error.js';
import type { Account } from './types.js';

/** Key names that smell of a secret, anywhere in the settings object. */
const SECRET_KEY = /pass(word|phrase)?|secret|private.?key|credential|token|api.?key/i;

export interface AccountInput {
  readonly aor: string;
  readonly displayName?: string | null;
  /** Replaces the stored settings when given. */
  readonly settings?: Readonly<Record<string, unknown>>;
}

interface AccountRow {
  id: number;
  aor: string;
  display_name: string | null;
  settings: string;
  created_at: number;
  updated_at: number;
}

export class AccountRepository {
  private readonly selectByAor: Statement;
  private readonly selectAll: Statement;
  private readonly insertRow: Statement;
  private readonly updateRow: Statement;

  constructor(
    private readonly db: Db,
    private readonly aors: AorCanonicalizer,
    private readonly now: () => number,
  ) {
    this.selectByAor = db.prepare('SELECT * FROM accounts WHERE aor = ?');
    this.selectAll = db.prepare('SELECT * FROM accounts ORDER BY id');
    this.insertRow = db.prepare(
      `INSERT INTO accounts (aor, display_name, settings, created_at, updated_at)
       VALUES (@aor, @displayName, @settings, @now, @now)`,
    );
    this.updateRow = db.prepare(
      'UPDATE accounts SET display_name = @displayName, settings = @settings, updated_at = @now WHERE id = @id',
    );
  }

  get(aor: string): Account | undefined {
    const row = this.selectByAor.get(this.aors.canonical(aor)) as AccountRow | undefined;
    return row && toAccount(row);
  }

  list(): Account[] {
    return (this.selectAll.all() as AccountRow[]).map(toAccount);
  }

  /** Creates the account or updates the fields given. */
  upsert(input: AccountInput): Account {
    const aor = this.aors.canonical(input.aor);
    if (input.settings !== undefined) refuseSecrets(input.settings, 'settings');
    return atomically(this.db, () => {
      const existing = this.selectByAor.get(aor) as AccountRow | undefined;
      const fields = {
        displayName: input.displayName !== undefined ? input.displayName : (existing?.display_name ?? null),
        settings: input.settings !== undefined ? JSON.stringify(input.settings) : (existing?.settings ?? '{}'),
        now: this.now(),
      };
      if (existing) this.updateRow.run({ ...fields, id: existing.id });
      else this.insertRow.run({ ...fields, aor });
      return toAccount(this.selectByAor.get(aor) as AccountRow);
    });
  }

  /** The id of the account, created bare if it does not exist yet (the first message names it). */
  idOf(canonicalAor: string): number {
    const row = this.selectByAor.get(canonicalAor) as AccountRow | undefined;
    if (row) return row.id;
    const now = this.now();
    return Number(this.insertRow.run({ aor: canonicalAor, displayName: null, settings: '{}', now }).lastInsertRowid);
  }
}

export function refuseSecrets(value: unknown, path: string): void {
  if (Array.isArray(value)) {
    value.forEach((item, index) => refuseSecrets(item, `${path}[${index}]`));
  } else if (value !== null && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      if (SECRET_KEY.test(key)) {
        throw new StoreError('invalid-input', `${path}.${key}: secrets belong in the keychain, not in the database`);
      }
      refuseSecrets(inner, `${path}.${key}`);
    }
  }
}

function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    aor: row.aor,
    displayName: row.display_name,
    settings: JSON.parse(row.settings) as Record<string, unknown>,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
