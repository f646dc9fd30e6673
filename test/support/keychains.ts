/**
 * Stand-ins for the OS keychain (main/security/keychain.ts) in tests that are not about it:
 * one that keeps secrets in memory, and one that is never there.
 */
import { KeychainUnavailableError, type Keychain } from '../../main/security/keychain.js';

/** Secrets in a Map; `entries` is there for assertions on what was stored. */
export class MemoryKeychain implements Keychain {
  readonly description = 'memory';
  readonly entries = new Map<string, Uint8Array>();

  async get(account: string): Promise<Uint8Array | undefined> {
    return this.entries.get(account);
  }

  async set(account: string, secret: Uint8Array): Promise<void> {
    this.entries.set(account, secret);
  }

  async delete(account: string): Promise<boolean> {
    return this.entries.delete(account);
  }
}

/**
 * A keychain that is never there (no Secret Service on the bus): every call rejects with
 * KeychainUnavailableError('no-service', `detail`, `platform`), as OsKeychain does then.
 */
export function unavailableKeychain(description: string, detail: string, platform?: NodeJS.Platform): Keychain {
  const refuse = (): Promise<never> => Promise.reject(new KeychainUnavailableError('no-service', detail, platform));
  return { description, get: refuse, set: refuse, delete: refuse };
}
