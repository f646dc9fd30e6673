/**
 * Application preferences: one JSON value per name (the desktop app keeps its settings under
 * `app`). Never secrets: keys that look like one are refused, as in account settings
 * (accounts.ts), because passwords and private keys belong in the OS keychain.
 */
import { refuseSecrets } from './accounts.js';
import type { Db, Statement } from './sql.js';

export class PreferenceRepository {
  private readonly select: Statement;
  private readonly upsert: Statement;

  constructor(
    db: Db,
    private readonly now: () => number,
  ) {
    this.select = db.prepare('SELECT value FROM preferences WHERE name = ?').pluck();
    this.upsert = db.prepare(
      `INSERT INTO preferences (name, value, updated_at) VALUES (@name, @value, @now)
       ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
    );
  }

  /** The value stored under `name`, parsed, or undefined. */
  get(name: string): unknown {
    const text = this.select.get(name) as string | undefined;
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  }

  /** Stores `value` (JSON-serialisable, no secret-looking keys) under `name`, committed on return. */
  set(name: string, value: unknown): void {
    refuseSecrets(value, name);
    this.upsert.run({ name, value: JSON.stringify(value), now: this.now() });
  }
}
