/**
 * A place for an S/MIME identity that a test makes and must not leave behind: a data dir (not
 * yet created, below a fresh temp dir) and an address of record unique to this run, whose
 * identity record and keychain entry are forgotten after the test, keychain first.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { forgetIdentity } from '../../main/security/identity-store.js';
import type { Keychain } from '../../main/security/keychain.js';
import { tempDir, type Cleanups } from './cleanups.js';

/** `sip:NAME-XXXXXXXX@example.com` with a data dir `data` in a temp dir named after `prefix`. */
export function throwawayIdentity(cleanups: Cleanups, keychain: Keychain, name: string, prefix: string): { dataDir: string; aor: string } {
  const dataDir = join(tempDir(cleanups, prefix), 'data');
  const aor = `sip:${name}-${randomBytes(4).toString('hex')}@example.com`;
  cleanups.push(() => forgetIdentity(dataDir, aor, { keychain }).catch(() => false));
  return { dataDir, aor };
}
