/**
 * Fresh identifiers for requests we originate (RFC 3261 §8.1.1.3, §8.1.1.4, §8.1.1.7, §19.3).
 *
 * Tags and Call-IDs must be globally unique and hard to guess (they are what stops an
 * off-path attacker from injecting responses), so all of them come from the CSPRNG.
 */
import { randomBytes } from 'node:crypto';

/** The RFC 3261 magic cookie: a branch starting with it promises §17 transaction matching. */
export const BRANCH_MAGIC_COOKIE = 'z9hG4bK';

/** A Via branch, unique across space and time (§8.1.1.7). */
export function newBranch(): string {
  return BRANCH_MAGIC_COOKIE + randomBytes(12).toString('base64url');
}

/** A From or To tag: at least 32 random bits (§19.3); we use 64. */
export function newTag(): string {
  return randomBytes(8).toString('hex');
}

/** A Call-ID (§8.1.1.4): 120 random bits, with a host part for readability in traces. */
export function newCallId(host: string): string {
  return `${randomBytes(15).toString('base64url')}@${host.replace(/^\[|\]$/g, '')}`;
}

