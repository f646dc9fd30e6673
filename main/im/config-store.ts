/**
 * Where the Messenger keeps its configuration: the accounts (without passwords) and the
 * application settings, in the SQLite store of the data dir (main/store), next to the history.
 *
 * - An account is a row of the store's `accounts` table (its address of record) whose
 *   settings hold a `desktop` object: the Messenger's id for it and what the user configured
 *   (shared/api.ts `AccountSettings`). The table also has rows for addresses that only
 *   appear in history (`sipnote listen` in the same data dir creates them): those without a
 *   `desktop` object are not accounts of the app. Removing an account drops the object and
 *   keeps the row, so its history stays searchable and comes back if the account does.
 * - The application settings are the store preference `app`.
 *
 * Secrets never go here: the store refuses secret-looking keys (accounts.ts), and only the
 * known fields of an account are written (`pickAccount`), so a password that slipped into an
 * object cannot reach the disk. A password lives in the OS keychain or, until that is wired,
 * only in memory for the session.
 *
 * A `config.json` left in the data dir by an earlier build (accounts and settings as JSON) is
 * imported once, when the store has no account yet.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import type { AccountSettings, AppSettings } from '../../shared/api.js';
import { ACCOUNT_SETTINGS_SCHEMA, APP_SETTINGS_SCHEMA } from '../../shared/api-schema.js';
import type { Store } from '../store/index.js';

export interface StoredAccount extends AccountSettings {
  readonly id: string;
}

export interface StoredConfig {
  readonly accounts: readonly StoredAccount[];
  readonly settings: AppSettings;
}

export const DEFAULT_SETTINGS: AppSettings = {
  theme: 'system',
  notifications: true,
  startAtLogin: false,
  quickSendShortcut: 'CommandOrControl+Shift+M',
  readReceipts: true,
};

/** The key of the Messenger's part of an account's settings in the store. */
const DESKTOP_KEY = 'desktop';
/** The store preference holding the application settings. */
const APP_PREFERENCE = 'app';
/** The configuration file of builds before the store (imported once). */
export const LEGACY_CONFIG_FILE = 'config.json';

const ACCOUNT_ID = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/));
const DESKTOP_ACCOUNT_SCHEMA = v.strictObject({ id: ACCOUNT_ID, ...ACCOUNT_SETTINGS_SCHEMA.entries });
const LEGACY_FILE_SCHEMA = v.object({
  version: v.literal(1),
  accounts: v.array(DESKTOP_ACCOUNT_SCHEMA),
  settings: v.partial(APP_SETTINGS_SCHEMA),
});

export class ConfigStore {
  constructor(private readonly store: Store) {}

  /**
   * The accounts, in the order they were first stored, and the settings (defaults filled in).
   * An account whose stored object does not validate (edited by hand, a newer build) is
   * skipped and reported through `onProblem` rather than started half-understood.
   */
  load(onProblem: (text: string) => void = () => undefined): StoredConfig {
    const accounts: StoredAccount[] = [];
    for (const row of this.store.accounts.list()) {
      const desktop = row.settings[DESKTOP_KEY];
      if (desktop === undefined) continue;
      const parsed = v.safeParse(DESKTOP_ACCOUNT_SCHEMA, desktop);
      if (parsed.success) accounts.push(parsed.output);
      else onProblem(`the stored account ${row.aor} is not usable: ${v.summarize(parsed.issues)}`);
    }
    const saved = v.safeParse(v.partial(APP_SETTINGS_SCHEMA), this.store.preferences.get(APP_PREFERENCE) ?? {});
    if (!saved.success) onProblem(`the stored settings are not usable, using the defaults: ${v.summarize(saved.issues)}`);
    return { accounts, settings: { ...DEFAULT_SETTINGS, ...(saved.success ? saved.output : {}) } };
  }

  /** Creates or replaces the account (keyed by its address of record). */
  saveAccount(account: StoredAccount): void {
    const existing = this.store.accounts.get(account.sipAddress);
    this.store.accounts.upsert({
      aor: account.sipAddress,
      displayName: account.displayName === '' ? null : account.displayName,
      settings: { ...(existing?.settings ?? {}), [DESKTOP_KEY]: pickAccount(account) },
    });
  }

  /** The account is no longer the app's; its history stays in the store. */
  removeAccount(account: StoredAccount): void {
    const existing = this.store.accounts.get(account.sipAddress);
    if (existing === undefined) return;
    const { [DESKTOP_KEY]: _removed, ...rest } = existing.settings;
    this.store.accounts.upsert({ aor: account.sipAddress, settings: rest });
  }

  saveSettings(settings: AppSettings): void {
    this.store.preferences.set(APP_PREFERENCE, settings);
  }

  /**
   * Imports `dataDir/config.json` of an earlier build when the store has no account and no
   * settings yet. Returns what was imported, or undefined. The file is left in place.
   */
  importLegacyFile(dataDir: string): StoredConfig | undefined {
    if (this.load().accounts.length > 0 || this.store.preferences.get(APP_PREFERENCE) !== undefined) return undefined;
    let text: string;
    try {
      text = readFileSync(join(dataDir, LEGACY_CONFIG_FILE), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const parsed = v.safeParse(LEGACY_FILE_SCHEMA, JSON.parse(text));
    if (!parsed.success) return undefined;
    const config: StoredConfig = { accounts: parsed.output.accounts, settings: { ...DEFAULT_SETTINGS, ...parsed.output.settings } };
    this.store.batch(() => {
      for (const account of config.accounts) this.saveAccount(account);
      this.saveSettings(config.settings);
    });
    return config;
  }
}

/** Only the known fields: nothing else (a password that slipped into an object) is written. */
function pickAccount(account: StoredAccount): StoredAccount {
  return {
    id: account.id,
    sipAddress: account.sipAddress,
    displayName: account.displayName,
    registrar: account.registrar,
    outboundProxy: account.outboundProxy,
    transport: account.transport,
    register: account.register,
    authUser: account.authUser,
    localAddress: account.localAddress,
    localPort: account.localPort,
    ...(account.acceptPlaintext === undefined ? {} : { acceptPlaintext: account.acceptPlaintext }),
    ...(account.congestionSafePath === undefined ? {} : { congestionSafePath: account.congestionSafePath }),
  };
}
