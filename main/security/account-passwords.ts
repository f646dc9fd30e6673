/**
 * SIP account passwords (RFC 3261 §22 digest credentials) in the OS keychain (issue #4;
 * design.md, security model: secrets never in the store, the configuration or a log).
 *
 * They are filed under their own service, `org.sipnote.passwords`, apart from the private
 * keys (`org.sipnote.keys`, keychain.ts): a user looking through the keychain sees which is
 * which, and clearing one kind never touches the other. The entry of an account is named
 * `<account id>@<data dir hash>`: the account id is random per configuration, and the data
 * dir part keeps two profiles (or test runs) on one machine from reading each other's
 * passwords. The password is stored as its UTF-8 octets.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { OsKeychain, type Keychain } from './keychain.js';

/** The keychain service account passwords are filed under (private keys use `org.sipnote.keys`). */
export const PASSWORD_KEYCHAIN_SERVICE = 'org.sipnote.passwords';

export class AccountPasswords {
  private readonly scope: string;

  constructor(
    dataDir: string,
    readonly keychain: Keychain = new OsKeychain({ service: PASSWORD_KEYCHAIN_SERVICE }),
  ) {
    this.scope = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 16);
  }

  /** The keychain entry name of `accountId`'s password. */
  entryOf(accountId: string): string {
    return `${accountId}@${this.scope}`;
  }

  /** The password of `accountId`, or undefined when none is stored. Throws KeychainUnavailableError. */
  async get(accountId: string): Promise<string | undefined> {
    const secret = await this.keychain.get(this.entryOf(accountId));
    return secret === undefined ? undefined : Buffer.from(secret).toString('utf8');
  }

  /** Stores (or replaces) the password; '' removes it. Throws KeychainUnavailableError. */
  async set(accountId: string, password: string): Promise<void> {
    if (password === '') {
      await this.delete(accountId);
      return;
    }
    await this.keychain.set(this.entryOf(accountId), new Uint8Array(Buffer.from(password, 'utf8')));
  }

  /** Removes the password; false when there was none. */
  async delete(accountId: string): Promise<boolean> {
    return this.keychain.delete(this.entryOf(accountId));
  }
}
