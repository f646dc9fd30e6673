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

/** Where the next `bytes` unused bytes of the pool start (refilled when too few are left). */
function takeRandom(bytes: number): number {
  if (poolUsed + bytes > pool.length) {
    randomFillSync(pool);
    poolUsed = 0;
  }
  const start = poolUsed;
  poolUsed += bytes;
  return start;
}

function randomText(bytes: number, encoding: 'base64url'): string {
  const start = takeRandom(bytes);
  return pool.toString(encoding, start, start + bytes);
}

/** The character codes of the hex digits `0`-`9`, `a`-`f`. */
const HEX_DIGITS: readonly number[] = Array.from('0123456789abcdef', (digit) => digit.charCodeAt(0));

/** A Via branch, unique across space and time (§8.1.1.7). */
export function newBranch(): string {
  return BRANCH_MAGIC_COOKIE + randomText(12, 'base64url');
}

/** A From or To tag: at least 32 random bits (§19.3); we use 64, as 16 lower-case hex digits. */
export function newTag(): string {
  const at = takeRandom(8);
  // The digits of the 8 bytes straight from the pool: Buffer's hex encoder is a call into C++
  // per tag, and a UAS makes a tag for every response.
  const p = pool;
  const d = HEX_DIGITS;
  return String.fromCharCode(
    d[p[at]! >> 4]!, d[p[at]! & 15]!, d[p[at + 1]! >> 4]!, d[p[at + 1]! & 15]!,
    d[p[at + 2]! >> 4]!, d[p[at + 2]! & 15]!, d[p[at + 3]! >> 4]!, d[p[at + 3]! & 15]!,
    d[p[at + 4]! >> 4]!, d[p[at + 4]! & 15]!, d[p[at + 5]! >> 4]!, d[p[at + 5]! & 15]!,
    d[p[at + 6]! >> 4]!, d[p[at + 6]! & 15]!, d[p[at + 7]! >> 4]!, d[p[at + 7]! & 15]!,
  );
}

/** A Call-ID (§8.1.1.4): 120 random bits, with a host part for readability in traces. */
export function newCallId(host: string): string {
  return `${randomText(15, 'base64url')}@${host.replace(/^\[|\]$/g, '')}`;
}

