/**
 * Where the Messenger keeps its configuration: the accounts (without passwords) and the
 * application settings.
 *
 * A JSON file in the data dir for now (`config.json`, mode 0600, replaced atomically by
 * rename so a crash mid-write leaves the old file). When the SQLite store (main/store) lands,
 * its accounts table can implement `ConfigStore` instead. Secrets never go here: the password
 * of an account lives in the OS keychain (main/security, issue #4) or, until then, only in
 * memory for the session.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as v from 'valibot';
import type { AccountSettings, AppSettings } from '../../shared/api.js';
import { ACCOUNT_SETTINGS_SCHEMA, APP_SETTINGS_SCHEMA } from '../../shared/api-schema.js';

export interface StoredAccount extends AccountSettings {
  readonly id: string;
}

export interface StoredConfig {
  readonly accounts: readonly StoredAccount[];
  readonly settings: AppSettings;
}

export interface ConfigStore {
  /** The saved configuration, or undefined on first run. Throws when the file is unreadable or malformed. */
  load(): Promise<StoredConfig | undefined>;
  save(config: StoredConfig): Promise<void>;
}

export const DEFAULT_SETTINGS: AppSettings = {
  theme: 'system',
  notifications: true,
  startAtLogin: false,
  quickSendShortcut: 'CommandOrControl+Shift+M',
};

/** Nothing survives the process (tests, and `sipnote ui` without --data-dir). */
export class MemoryConfigStore implements ConfigStore {
  private saved: StoredConfig | undefined;

  constructor(initial?: StoredConfig) {
    this.saved = initial;
  }

  async load(): Promise<StoredConfig | undefined> {
    return this.saved;
  }

  async save(config: StoredConfig): Promise<void> {
    this.saved = structuredClone(config);
  }
}

const FILE_SCHEMA = v.object({
  version: v.literal(1),
  accounts: v.array(v.strictObject({ id: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/)), ...ACCOUNT_SETTINGS_SCHEMA.entries })),
  settings: v.partial(APP_SETTINGS_SCHEMA),
});

export class JsonFileConfigStore implements ConfigStore {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, 'config.json');
  }

  async load(): Promise<StoredConfig | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const parsed = v.safeParse(FILE_SCHEMA, JSON.parse(text));
    if (!parsed.success) throw new Error(`${this.path} is not a sipnote configuration: ${v.summarize(parsed.issues)}`);
    return { accounts: parsed.output.accounts, settings: { ...DEFAULT_SETTINGS, ...parsed.output.settings } };
  }

  async save(config: StoredConfig): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const temporary = `${this.path}.${randomBytes(6).toString('hex')}.tmp`;
    const accounts = config.accounts.map((account) => pickAccount(account));
    await writeFile(temporary, `${JSON.stringify({ version: 1, accounts, settings: config.settings }, null, 2)}\n`, { mode: 0o600 });
    await rename(temporary, this.path);
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
  };
}
