import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isRetryable, nextRetry, retryDelay, type AttemptOutcome } from '../../main/im/retry-policy.js';
import { outcomeOfStatus } from '../../main/sip/ua/outcome.js';

const NOW = 1_700_000_000_000;
const status = (code: number, retryAfter?: number): AttemptOutcome => ({
  outcome: outcomeOfStatus(code),
  status: code,
  ...(retryAfter === undefined ? {} : { retryAfter }),
});

describe('retry policy', () => {
  it('retries timeouts, transport failures, 408, 480, 500, 503 and 504', () => {
    expect(isRetryable({ outcome: 'timeout', status: 408 })).toBe(true);
    expect(isRetryable({ outcome: 'transport-error', status: 503 })).toBe(true);
    for (const code of [408, 480, 500, 503, 504]) expect(isRetryable(status(code))).toBe(true);
  });

  it('gives up at once on other 4xx, 5xx and every 6xx', () => {
    for (const code of [400, 403, 404, 413, 415, 486, 488, 501, 502, 505, 513, 600, 603, 604, 606, 699]) {
      expect(nextRetry(status(code), 1, NOW)).toEqual({ retry: false, why: 'final' });
    }
  });

  it('backs off from 30 s, doubling, up to 1 h', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((attempts) => {
      const decision = nextRetry({ outcome: 'timeout', status: 408 }, attempts, NOW);
      if (!decision.retry) throw new Error('expected a retry');
      return decision.at - NOW;
    });
    expect(delays).toEqual([30_000, 60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000, 3_600_000]);
  });

  it('honours Retry-After, shorter or longer than the backoff', () => {
    expect(nextRetry(status(503, 5), 4, NOW)).toEqual({ retry: true, at: NOW + 5_000 });
    expect(nextRetry(status(480, 7200), 1, NOW)).toEqual({ retry: true, at: NOW + 7_200_000 });
    expect(nextRetry(status(500, 0), 1, NOW)).toEqual({ retry: true, at: NOW });
  });

  it('does not let Retry-After make a final status retryable', () => {
    expect(nextRetry(status(486, 60), 1, NOW)).toEqual({ retry: false, why: 'final' });
    expect(nextRetry(status(600, 60), 1, NOW)).toEqual({ retry: false, why: 'final' });
  });

  it('gives up after maxAttempts attempts', () => {
    expect(nextRetry(status(503), 9, NOW, { maxAttempts: 10 }).retry).toBe(true);
    expect(nextRetry(status(503), 10, NOW, { maxAttempts: 10 })).toEqual({ retry: false, why: 'too-many-attempts' });
    expect(nextRetry(status(503), 10, NOW)).toEqual({ retry: false, why: 'too-many-attempts' });
    expect(nextRetry(status(503), 2, NOW, { maxAttempts: 2 })).toEqual({ retry: false, why: 'too-many-attempts' });
  });

  it('never schedules in the past nor beyond the cap without a Retry-After, and never shrinks', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), (attempts) => {
        const delay = retryDelay({ outcome: 'transport-error', status: 503 }, attempts);
        const next = retryDelay({ outcome: 'transport-error', status: 503 }, attempts + 1);
        return delay >= 30_000 && delay <= 3_600_000 && next >= delay;
      }),
    );
  });
});
