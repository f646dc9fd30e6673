/**
 * Walking the list of server-location targets when one fails (RFC 3263 §4.3).
 *
 * "For SIP requests, failure occurs if the transaction layer reports a 503 error response or a
 * transport failure of some sort (generally, due to fatal ICMP errors in UDP or connection
 * failures in TCP). Failure also occurs if the transaction layer times out without ever
 * having received any response, provisional or final (i.e., timer B or timer F in RFC 3261
 * fires)." Then the client "SHOULD create a new request, which is identical to the previous,
 * but has a different value of the Via branch ID" and send it to the next target.
 *
 * `Failover` serves one request: `next()` gives the target for the next attempt, `report()`
 * takes how that attempt ended and says whether to go on. New branch, new transaction, same
 * everything else: that is the UA's part.
 *
 * `TargetHealth` is the optional memory across requests: a target that just failed is tried
 * after the others for a while (the Retry-After of a 503, RFC 3261 §21.5.4, or
 * `quarantineMs`), so that each new MESSAGE does not wait out Timer F on a dead server first.
 * A quarantined target is never dropped, only moved to the back: when every server failed a
 * moment ago, trying them again still beats failing without trying.
 */
import { targetKey } from './server-target.js';
import type { ServerTarget } from './server-target.js';

/** How one attempt (one client transaction) ended, as far as failover cares. */
export type AttemptOutcome =
  /** The transport could not send (TCP connect refused/reset, no socket for the family, ...). */
  | { readonly kind: 'transport-error' }
  /** Timer B/F fired. `gotResponse`: a provisional response had arrived before. */
  | { readonly kind: 'timeout'; readonly gotResponse: boolean }
  /** A final response arrived. `retryAfterSeconds` from its Retry-After header, if any. */
  | { readonly kind: 'response'; readonly status: number; readonly retryAfterSeconds?: number };

export type FailureReason = 'transport-error' | 'timeout' | 'service-unavailable';

/** RFC 3263 §4.3: a 503, a transport failure, or a timeout with no response at all. */
export function failureReason(outcome: AttemptOutcome): FailureReason | undefined {
  switch (outcome.kind) {
    case 'transport-error':
      return 'transport-error';
    case 'timeout':
      return outcome.gotResponse ? undefined : 'timeout';
    case 'response':
      return outcome.status === 503 ? 'service-unavailable' : undefined;
  }
}

export interface TargetHealthOptions {
  /** Milliseconds on a monotonic scale. Default performance.now(). */
  now?: () => number;
  /** How long a failed target goes to the back of the list, without a Retry-After. Default 32 s (64*T1). */
  quarantineMs?: number;
}

/** Which targets failed recently, shared by the requests of one UA. */
export class TargetHealth {
  private readonly now: () => number;
  private readonly quarantineMs: number;
  /** targetKey -> time until which the target is tried last. */
  private readonly until = new Map<string, number>();

  constructor(options: TargetHealthOptions = {}) {
    this.now = options.now ?? (() => performance.now());
    this.quarantineMs = options.quarantineMs ?? 32_000;
  }

  recordFailure(target: ServerTarget, retryAfterSeconds?: number): void {
    const ms = retryAfterSeconds !== undefined ? retryAfterSeconds * 1000 : this.quarantineMs;
    this.until.set(targetKey(target), this.now() + ms);
  }

  /** The target answered: forget any earlier failure. */
  recordSuccess(target: ServerTarget): void {
    this.until.delete(targetKey(target));
  }

  isQuarantined(target: ServerTarget): boolean {
    const key = targetKey(target);
    const until = this.until.get(key);
    if (until === undefined) return false;
    if (this.now() < until) return true;
    this.until.delete(key);
    return false;
  }
}

export class Failover {
  private readonly targets: readonly ServerTarget[];
  private readonly health: TargetHealth | undefined;
  private readonly triedKeys = new Set<string>();
  private readonly attempts: ServerTarget[] = [];

  constructor(targets: readonly ServerTarget[], options: { health?: TargetHealth } = {}) {
    this.targets = targets;
    this.health = options.health;
  }

  /**
   * The target for the next attempt: the first one not yet tried that is not quarantined,
   * else the first one not yet tried. Undefined when every target has been tried.
   */
  next(): ServerTarget | undefined {
    const untried = this.targets.filter((target) => !this.triedKeys.has(targetKey(target)));
    const chosen = untried.find((target) => !this.health?.isQuarantined(target)) ?? untried[0];
    if (chosen !== undefined) {
      this.triedKeys.add(targetKey(chosen));
      this.attempts.push(chosen);
    }
    return chosen;
  }

  /**
   * How the attempt on `target` ended. True when it is a failure in the sense of RFC 3263
   * §4.3 and another target remains: send a copy of the request, with a new branch, to
   * `next()`. False when the outcome stands (any final response but 503, or a timeout after a
   * provisional response) or nothing is left to try.
   */
  report(target: ServerTarget, outcome: AttemptOutcome): boolean {
    const reason = failureReason(outcome);
    if (reason === undefined) {
      this.health?.recordSuccess(target);
      return false;
    }
    this.health?.recordFailure(target, outcome.kind === 'response' ? outcome.retryAfterSeconds : undefined);
    return this.remaining > 0;
  }

  /** Targets not tried yet. */
  get remaining(): number {
    return this.targets.filter((target) => !this.triedKeys.has(targetKey(target))).length;
  }

  /** The targets handed out by `next()`, in order. */
  get tried(): readonly ServerTarget[] {
    return this.attempts;
  }
}
