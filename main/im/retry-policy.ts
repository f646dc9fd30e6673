/**
 * When to send a failed MESSAGE again, or whether to give up (issue #5, "Retry and offline";
 * design.md "Durability"). Pure: the outcome of an attempt, the attempt count and the time in,
 * a decision out. The outbox (main/store) keeps the decision as the message's next attempt time.
 *
 * Retryable: no response (a timeout is a 408, RFC 3261 §8.1.3.1), a transport failure (a 503,
 * same section), and the statuses that say "not now" rather than "no": 408 Request Timeout,
 * 480 Temporarily Unavailable, 500 Server Internal Error, 503 Service Unavailable and 504 Server
 * Time-out (§21.4.9, §21.4.18, §21.5.1, §21.5.4, §21.5.5). Every other 4xx and every 6xx is
 * final: sending the same request again would get the same answer (§8.1.3.2 treats an unknown
 * code as its class's x00, which is final for 4xx and 6xx).
 *
 * The delay doubles from 30 s up to 1 h (exponential backoff), except that a Retry-After in the
 * response is honoured: the next attempt is exactly that many seconds later (§20.33; for 500 and
 * 503 §21.5.1/§21.5.4, for 480 §21.4.18). After `maxAttempts` attempts the message waits for the
 * user (retry or cancel).
 */
import type { SendOutcome } from '../sip/ua/outcome.js';

/** What an attempt ended with: the fields of a SendResult the policy needs. */
export interface AttemptOutcome {
  readonly outcome: SendOutcome;
  readonly status: number;
  /** Seconds, from a Retry-After in the final response. */
  readonly retryAfter?: number;
}

export interface RetryPolicyOptions {
  /** The delay after the first failed attempt (default 30 s). */
  readonly initialDelayMs?: number;
  /** The longest backoff delay (default 1 h); a Retry-After may ask for longer. */
  readonly maxDelayMs?: number;
  /** Attempts after which a retryable failure waits for the user (default 10). */
  readonly maxAttempts?: number;
}

export type RetryDecision =
  | { readonly retry: true; readonly at: number }
  | { readonly retry: false; readonly why: 'final' | 'too-many-attempts' };

export const DEFAULT_INITIAL_RETRY_DELAY_MS = 30_000;
export const DEFAULT_MAX_RETRY_DELAY_MS = 3_600_000;
export const DEFAULT_MAX_SEND_ATTEMPTS = 10;

const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 480, 500, 503, 504]);

/** Whether sending the same MESSAGE again later may succeed. */
export function isRetryable(attempt: AttemptOutcome): boolean {
  if (attempt.outcome === 'timeout' || attempt.outcome === 'transport-error') return true;
  return RETRYABLE_STATUSES.has(attempt.status);
}

/**
 * The decision after attempt number `attempts` (1 for the first) failed with `attempt`, at
 * time `now` (ms since the epoch).
 */
export function nextRetry(attempt: AttemptOutcome, attempts: number, now: number, options: RetryPolicyOptions = {}): RetryDecision {
  if (!isRetryable(attempt)) return { retry: false, why: 'final' };
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_SEND_ATTEMPTS;
  if (attempts >= maxAttempts) return { retry: false, why: 'too-many-attempts' };
  return { retry: true, at: now + retryDelay(attempt, attempts, options) };
}

/** Retry-After when given, else 30 s · 2^(attempts − 1), at most 1 h. */
export function retryDelay(attempt: AttemptOutcome, attempts: number, options: RetryPolicyOptions = {}): number {
  if (attempt.retryAfter !== undefined && Number.isFinite(attempt.retryAfter) && attempt.retryAfter >= 0) {
    return attempt.retryAfter * 1000;
  }
  const initial = options.initialDelayMs ?? DEFAULT_INITIAL_RETRY_DELAY_MS;
  const max = options.maxDelayMs ?? DEFAULT_MAX_RETRY_DELAY_MS;
  const doublings = Math.min(Math.max(attempts - 1, 0), 52);
  return Math.min(initial * 2 ** doublings, max);
}
