/**
 * Transaction timer base values and the non-INVITE timers derived from them.
 *
 * RFC 3261 Appendix A, Table 4 (the rows a non-INVITE transaction uses):
 *
 * | Timer   | Value                         | Section    | Meaning                                          |
 * |---------|-------------------------------|------------|--------------------------------------------------|
 * | T1      | 500 ms default                | 17.1.1.1   | RTT estimate                                     |
 * | T2      | 4 s                           | 17.1.2.2   | Maximum retransmit interval for non-INVITE requests |
 * | T4      | 5 s                           | 17.1.2.2   | Maximum duration a message will remain in the network |
 * | Timer E | initially T1                  | 17.1.2.2   | Non-INVITE request retransmit interval, UDP only |
 * | Timer F | 64*T1                         | 17.1.2.2   | Non-INVITE transaction timeout timer             |
 * | Timer J | 64*T1 for UDP, 0 for TCP/SCTP | 17.2.2     | Wait time for non-INVITE request retransmits     |
 * | Timer K | T4 for UDP, 0 for TCP/SCTP    | 17.1.2.2   | Wait time for response retransmits               |
 *
 * All values are milliseconds. T1 MAY be changed (e.g. when the RTT is known), T2 and T4 are
 * normally left alone (§17.1.2.2); the machines take the whole set so tests can shrink them.
 */
export interface TimerConfig {
  /** Round-trip time estimate (RFC 3261 §17.1.1.1). */
  readonly t1: number;
  /** Cap on the non-INVITE request retransmission interval (RFC 3261 §17.1.2.2). */
  readonly t2: number;
  /** How long a message may stay in the network (RFC 3261 §17.1.2.2). */
  readonly t4: number;
}

/** The defaults of RFC 3261 Table 4. */
export const DEFAULT_TIMERS: TimerConfig = Object.freeze({ t1: 500, t2: 4000, t4: 5000 });

/** Timer F, and Timer J on unreliable transports: 64*T1 (RFC 3261 §17.1.2.2, §17.2.2). */
export function transactionLifetime(timers: TimerConfig): number {
  return 64 * timers.t1;
}

/**
 * How long after sending a request the client's Timer E is first reset to T2: the sum of
 * the doubling intervals T1, 2*T1, 4*T1, … that are still below T2 (3500 ms with the defaults).
 *
 * RFC 4320 §4.1 uses this instant on the server side: a 100 (Trying) to a non-INVITE MUST NOT
 * be sent over an unreliable transport before it, and MUST be sent if no final response is
 * ready by then.
 */
export function timeUntilTimerEReachesT2(timers: TimerConfig): number {
  let elapsed = 0;
  for (let interval = timers.t1; interval < timers.t2; interval *= 2) elapsed += interval;
  return elapsed;
}

/** Throws a RangeError unless every base value is a finite number above zero. */
export function assertValidTimers(timers: TimerConfig): void {
  for (const name of ['t1', 't2', 't4'] as const) {
    const value = timers[name];
    if (!Number.isFinite(value) || value <= 0) {
      throw new RangeError(`timer ${name} must be a finite number of milliseconds above 0, got ${value}`);
    }
  }
}
