/**
 * A per-source rate limit for incoming requests: one token bucket per source address, sans
 * I/O (the caller passes the time in), so a flood from one host cannot starve everyone else.
 *
 * A request over the limit is never dropped silently: the caller answers it 503 (Service
 * Unavailable) with Retry-After (RFC 3261 §21.5.4, §20.33). The Retry-After given here is the
 * time until the bucket holds a whole token again, rounded up to whole seconds (delta-seconds
 * cannot be smaller than 1), so a sender that honours it is let in when it comes back.
 *
 * The bucket is keyed by address only, not by port: a flooding host gains nothing by opening
 * more sockets or TCP connections. Only new requests are counted; retransmissions matched to a
 * live transaction are absorbed by it before this check (RFC 3261 §17.2.3).
 *
 * Memory is bounded: at most `maxSources` buckets are kept. A full bucket is the same as no
 * bucket, so those go first; if every bucket is in use, the oldest sources' buckets are
 * forgotten (that source gets a fresh burst, the cost of staying bounded under a spoofed-source
 * flood).
 */

export interface RateLimitConfig {
  /** Sustained requests per second allowed from one source address. */
  readonly perSecond: number;
  /** Requests one source may send at once after being quiet (the bucket's size, ≥ 1). */
  readonly burst: number;
}

export type RateDecision =
  | { readonly allowed: true }
  /** `retryAfterSeconds` is whole seconds (≥ 1) until the source has a token again. */
  | { readonly allowed: false; readonly retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  /** Time of the last refill, ms on the caller's monotonic scale. */
  at: number;
}

const ALLOWED: RateDecision = { allowed: true };

/** Default bound on remembered sources. */
export const DEFAULT_MAX_SOURCES = 10_000;

export class SourceRateLimiter {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #maxSources: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(config: RateLimitConfig, maxSources = DEFAULT_MAX_SOURCES) {
    if (!(config.perSecond > 0) || !Number.isFinite(config.perSecond)) throw new RangeError(`perSecond must be a positive number, not ${config.perSecond}`);
    if (!(config.burst >= 1) || !Number.isFinite(config.burst)) throw new RangeError(`burst must be at least 1, not ${config.burst}`);
    if (!Number.isInteger(maxSources) || maxSources < 1) throw new RangeError(`maxSources must be a positive integer, not ${maxSources}`);
    this.#perMs = config.perSecond / 1000;
    this.#burst = config.burst;
    this.#maxSources = maxSources;
  }

  /** Sources currently remembered (for tests and diagnostics). */
  get size(): number {
    return this.#buckets.size;
  }

  /** Takes one token for a new request from `source` at `nowMs`. */
  take(source: string, nowMs: number): RateDecision {
    let bucket = this.#buckets.get(source);
    if (bucket === undefined) {
      this.#makeRoom(nowMs);
      bucket = { tokens: this.#burst, at: nowMs };
      this.#buckets.set(source, bucket);
    } else {
      this.#refill(bucket, nowMs);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return ALLOWED;
    }
    const waitMs = (1 - bucket.tokens) / this.#perMs;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  #refill(bucket: Bucket, nowMs: number): void {
    // A clock that steps back (it should not) must not mint tokens or lose them.
    const elapsed = Math.max(0, nowMs - bucket.at);
    bucket.tokens = Math.min(this.#burst, bucket.tokens + elapsed * this.#perMs);
    bucket.at = Math.max(bucket.at, nowMs);
  }

  #makeRoom(nowMs: number): void {
    if (this.#buckets.size < this.#maxSources) return;
    for (const [source, bucket] of this.#buckets) {
      this.#refill(bucket, nowMs);
      if (bucket.tokens >= this.#burst) this.#buckets.delete(source);
    }
    // Map iteration is insertion order: the first keys are the oldest sources. Evicting down to
    // 90 % keeps the sweep above amortised: it runs once per tenth of the bound, not per request.
    const target = Math.min(this.#maxSources - 1, Math.floor(this.#maxSources * 0.9));
    while (this.#buckets.size > target) {
      const oldest = this.#buckets.keys().next();
      if (oldest.done === true) break;
      this.#buckets.delete(oldest.value);
    }
  }
}
