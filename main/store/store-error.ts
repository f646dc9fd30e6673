/**
 * The one error the store throws on purpose. SQLite's own errors (disk full, I/O, a busy
 * database after the timeout) pass through as better-sqlite3's `SqliteError`: the caller
 * cannot fix those, only report them (and not acknowledge what was not stored).
 */
export type StoreErrorCode =
  /** The database was written by a newer sipnote (user_version above the known migrations). */
  | 'newer-schema'
  /** No row with that id (or that key). */
  | 'not-found'
  /** A state change the state machine does not allow (types.ts MessageState). */
  | 'invalid-transition'
  /** Input the store refuses: a secret in settings, a bad fingerprint, an unparsable URI. */
  | 'invalid-input';

export class StoreError extends Error {
  override readonly name = 'StoreError';

  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
  }
}
