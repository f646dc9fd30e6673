/**
 * Fresh identifiers for requests we originate (RFC 3261 §8.1.1.3, §8.1.1.4, §8.1.1.7, §19.3).
 *
 * Tags and Call-IDs must be globally unique and hard to guess (they are what stops an
 * off-path attacker from injecting responses), so all of them come from the CSPRNG.
 */
import { randomFillSync } from 'node:crypto';

/** The RFC 3261 magic cookie: a branch starting with it promises §17 transaction matching. */
export const BRANCH_MAGIC_COOKIE = 'z9hG4bK';

/**
 * CSPRNG output fetched 4 KiB at a time: a UAS under load makes a To tag for every response,
 * and one call into the CSPRNG per 8 bytes costs more than the rest of building the response.
 * Each byte is handed out once.
 */
const pool = Buffer.alloc(4096);
let poolUsed = pool.length;

function randomText(bytes: number, encoding: 'hex' | 'base64url'): string {
  if (poolUsed + bytes > pool.length) {
    randomFillSync(pool);
    poolUsed = 0;
  }
  const start = poolUsed;
  poolUsed += bytes;
  return pool.toString(encoding, start, poolUsed);
}

/** A Via branch, unique across space and time (§8.1.1.7). */
export function newBranch(): string {
  return BRANCH_MAGIC_COOKIE + randomText(12, 'base64url');
}

/** A From or To tag: at least 32 random bits (§19.3); we use 64. */
export function newTag(): string {
  return randomText(8, 'hex');
}

/** A Call-ID (§8.1.1.4): 120 random bits, with a host part for readability in traces. */
export function newCallId(host: string): string {
  return `${randomText(15, 'base64url')}@${host.replace(/^\[|\]$/g, '')}`;
}

