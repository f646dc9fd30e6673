/**
 * sipnote's memory: accounts, contacts, conversations and messages in SQLite (store.ts), with
 * full-text search, a crash-safe outbox and write-before-acknowledge semantics (messages.ts).
 */
export { openStore, Store, DATABASE_FILE, type StoreOptions, type StoreSettings } from './store.js';
export { StoreError, type StoreErrorCode } from './store-error.js';
export { MIGRATIONS, migrate, type Migration, type MigrationReport } from './migrations.js';
export { toFtsQuery } from './fts-query.js';
export type { AccountRepository, AccountInput } from './accounts.js';
export type { ContactRepository, ContactInput } from './contacts.js';
export type { ConversationRepository } from './conversations.js';
export type { PreferenceRepository } from './preferences.js';
export {
  DEFAULT_HISTORY_LIMIT,
  DEFAULT_MAX_INTERRUPTED_ATTEMPTS,
  MAX_HISTORY_LIMIT,
  type MessageRepository,
} from './messages.js';
export type * from './types.js';
