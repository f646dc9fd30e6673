/**
 * The OS keychain, where sipnote keeps private keys (design.md, security model: "Private keys
 * live in the OS keychain and never in the database or a log"): macOS Keychain, Windows
 * Credential Manager, and on Linux the freedesktop Secret Service (GNOME Keyring, KeePassXC,
 * KWallet's Secret Service bridge).
 *
 * Access goes through `@napi-rs/keyring` (an N-API binding of the Rust keyring crate: one
 * prebuilt binary for Node and every Electron, no rebuild; see ../shared/notes/crypto.md §2).
 * On Linux every entry is pinned to the Secret Service store: left to itself the library falls
 * back to the kernel keyutils keyring, which lives in memory and is gone after a reboot, and a
 * private key that silently disappears is worse than a clear error. Likewise, any failure of
 * the keychain becomes a `KeychainUnavailableError` that tells the user how to get one; there
 * is no fallback to a file. (A passphrase-protected key file exists, passphrase-key-file.ts, but
 * only when the user asks for it.)
 *
 * Entries are binary secrets (`setSecret`), named by service `org.sipnote.keys` and an account
 * string the caller chooses. On Linux they appear as items with the attributes `service` and
 * `username` (`secret-tool search --all service org.sipnote.keys` lists them).
 *
 * This module imports nothing from the rest of sipnote, so that a child process can load it
 * alone (the unit test runs one against an unreachable bus).
 */
import { AsyncEntry, type EntryOptions } from '@napi-rs/keyring';

/** The service name every sipnote keychain entry is filed under. */
export const KEYCHAIN_SERVICE = 'org.sipnote.keys';

/**
 * The largest secret we store, on every platform: Windows Credential Manager refuses blobs over
 * CRED_MAX_CREDENTIAL_BLOB_SIZE (2560 octets). Applying the Windows limit everywhere keeps a
 * key that works on one OS working on the others.
 */
export const MAX_SECRET_BYTES = 2560;

/** A store of small binary secrets by account name. */
export interface Keychain {
  /** Where the secrets go, for messages to the user (e.g. "the Secret Service (org.sipnote.keys)"). */
  readonly description: string;
  /** The secret of `account`, or undefined when there is none. */
  get(account: string): Promise<Uint8Array | undefined>;
  /** Stores (or replaces) the secret of `account`. At most `MAX_SECRET_BYTES` octets. */
  set(account: string, secret: Uint8Array): Promise<void>;
  /** Removes the secret of `account`; false when there was none. */
  delete(account: string): Promise<boolean>;
}

/**
 * Why the keychain could not be used:
 * - `no-service`: no keychain to talk to (Linux: no session bus, or no Secret Service on it);
 * - `no-keyring`: a Secret Service without a default collection to store into;
 * - `locked`: the keyring is locked and could not be unlocked (no prompt possible, or dismissed);
 * - `timeout`: no answer in time (an unlock dialog nobody answers, a stuck bus);
 * - `failed`: anything else the platform reported.
 */
export type KeychainFailure = 'no-service' | 'no-keyring' | 'locked' | 'timeout' | 'failed';

/** The keychain could not be used. The message says what happened and how to get a keychain. */
export class KeychainUnavailableError extends Error {
  override readonly name = 'KeychainUnavailableError';
  constructor(
    readonly reason: KeychainFailure,
    /** What the platform said, e.g. "DBus error: Failed to connect to socket …". */
    readonly detail: string,
    readonly platform: NodeJS.Platform = process.platform,
    options?: { cause?: unknown },
  ) {
    super(`the OS keychain is not available (${describeFailure(reason)}: ${detail}). ${howToGetAKeychain(platform)}`, options);
  }
}

function describeFailure(reason: KeychainFailure): string {
  switch (reason) {
    case 'no-service':
      return 'no keychain service reachable';
    case 'no-keyring':
      return 'the keychain has no default keyring to store into';
    case 'locked':
      return 'the keyring is locked';
    case 'timeout':
      return 'the keychain did not answer in time';
    case 'failed':
      return 'the keychain failed';
  }
}

/** What to do to get a working keychain, per platform. */
export function howToGetAKeychain(platform: NodeJS.Platform = process.platform): string {
  const optIn = 'Or, if this machine has no keychain, keep the key in a passphrase-protected file instead: `sipnote keys init --passphrase-key` (you are asked for the passphrase whenever the key is used).';
  switch (platform) {
    case 'darwin':
      return `sipnote keeps private keys in the macOS Keychain: log in to a user session and unlock the login keychain (Keychain Access). ${optIn}`;
    case 'win32':
      return `sipnote keeps private keys in the Windows Credential Manager: run sipnote in an interactive user session (service accounts and some remote sessions have no credential store). ${optIn}`;
    default:
      return (
        'sipnote keeps private keys in the freedesktop Secret Service: run one in your session and unlock it, ' +
        'e.g. GNOME Keyring (gnome-keyring-daemon) or KeePassXC with "Secret Service integration" enabled. ' +
        'Without a desktop (SSH, containers, CI), start a private session with an unlocked keyring: ' +
        "`dbus-run-session -- sh -c 'printf %s \"$KEYRING_PASSWORD\" | gnome-keyring-daemon --unlock --components=secrets >/dev/null && exec sipnote …'` " +
        `(the sipnote sources have it as scripts/with-secret-service.sh). ${optIn}`
      );
  }
}

export interface OsKeychainOptions {
  /** The service entries are filed under (default `org.sipnote.keys`). */
  readonly service?: string;
  /**
   * How long one operation may take before it fails with reason `timeout` (default 120 s: long
   * enough to type a keyring password into an unlock dialog, short enough not to hang forever).
   */
  readonly timeoutMs?: number;
}

/** The linux store is pinned; the option is ignored on the other platforms. */
const PINNED_TO_SECRET_SERVICE: EntryOptions = { linux: { store: 'secret-service' } };

/** The platform keychain through `@napi-rs/keyring`. */
export class OsKeychain implements Keychain {
  readonly service: string;
  readonly description: string;
  private readonly timeoutMs: number;

  constructor(options: OsKeychainOptions = {}) {
    this.service = options.service ?? KEYCHAIN_SERVICE;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    const store = process.platform === 'darwin' ? 'the macOS Keychain' : process.platform === 'win32' ? 'the Windows Credential Manager' : 'the Secret Service';
    this.description = `${store} (service ${this.service})`;
  }

  async get(account: string): Promise<Uint8Array | undefined> {
    const secret = await this.call(account, (entry, signal) => entry.getSecret(signal));
    return secret === null ? undefined : Uint8Array.from(secret);
  }

  async set(account: string, secret: Uint8Array): Promise<void> {
    if (secret.length > MAX_SECRET_BYTES) {
      throw new RangeError(`a keychain secret holds at most ${MAX_SECRET_BYTES} octets (the Windows limit), not ${secret.length}`);
    }
    await this.call(account, (entry, signal) => entry.setSecret(secret, signal));
  }

  async delete(account: string): Promise<boolean> {
    return this.call(account, (entry, signal) => entry.deleteCredential(signal));
  }

  /** Runs one operation on the entry of `account`, turning every failure into a KeychainUnavailableError. */
  private async call<T>(account: string, operation: (entry: AsyncEntry, signal: AbortSignal) => Promise<T>): Promise<T> {
    if (account.length === 0 || account.length > 512) throw new RangeError('a keychain account name has 1 to 512 characters');
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      // The constructor already connects to the Secret Service (and throws when there is none).
      const entry = new AsyncEntry(this.service, account, PINNED_TO_SECRET_SERVICE);
      return await operation(entry, signal);
    } catch (error) {
      if (signal.aborted) {
        throw new KeychainUnavailableError('timeout', `no answer within ${this.timeoutMs} ms (is an unlock dialog waiting?)`, process.platform, { cause: error });
      }
      throw classifyKeychainError(error);
    }
  }
}

/**
 * Maps what keyring-rs reports (its messages are all we have: the `code` is always
 * "GenericFailure") to a reason. The Secret Service texts were observed with gnome-keyring 42
 * (../shared/notes/crypto.md §1, failure-mode table).
 */
export function classifyKeychainError(error: unknown, platform: NodeJS.Platform = process.platform): KeychainUnavailableError {
  const detail = error instanceof Error ? error.message : String(error);
  const text = causeChain(error).join(' | ');
  let reason: KeychainFailure = 'failed';
  if (/DBus error|DBUS_SESSION_BUS_ADDRESS|Failed to connect to socket|ServiceUnknown|NoStorageAccess|No such logon session/i.test(text)) reason = 'no-service';
  else if (/locked|prompt was dismissed/i.test(text)) reason = 'locked';
  else if (/no result found|no such collection|default collection/i.test(text)) reason = 'no-keyring';
  return new KeychainUnavailableError(reason, detail, platform, { cause: error });
}

/** The messages of an error and its `cause` chain (keyring-rs nests them). */
function causeChain(error: unknown): string[] {
  const messages: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current !== undefined; depth++) {
    messages.push(current instanceof Error ? current.message : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return messages;
}
