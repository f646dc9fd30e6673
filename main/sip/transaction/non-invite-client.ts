/**
 * The non-INVITE client transaction of RFC 3261 §17.1.2 (Figure 6), sans-I/O.
 *
 * Transitions, after Figure 6:
 *
 *   state              event            -> state        action
 *   (new)              start            -> Trying       send request; F = 64*T1; E = T1 (unreliable only)
 *   Trying             Timer E          -> Trying       resend; E = min(2*E, T2)
 *   Proceeding         Timer E          -> Proceeding   resend; E = T2
 *   Trying/Proceeding  1xx              -> Proceeding   1xx to TU
 *   Trying/Proceeding  200-699          -> Completed    final to TU; K = T4 (unreliable) or 0
 *   Trying/Proceeding  Timer F          -> Terminated   timeout to TU (the TU acts as on a 408)
 *   Trying/Proceeding  transport error  -> Terminated   error to TU (the TU acts as on a 503)
 *   Completed          any response     -> Completed    absorbed
 *   Completed          Timer K          -> Terminated
 *
 * The machine does no I/O and reads no clock: every input carries `now` (milliseconds on any
 * monotonic scale), and every output is an event the caller acts on (send the request, hand
 * a response to the TU, …). `pollTimeout()` says when the next timer is due and
 * `handleTimeout(now)` fires what is due; `driver.ts` glues this to a real or manual clock.
 *
 * The machine never looks inside a message: the request is carried as an opaque `Req`, and a
 * response is an opaque `Res` plus its status code. Matching a response to this transaction
 * (top Via branch + CSeq method, §17.1.3) is the caller's job.
 *
 * Outcome guarantee: after `start`, exactly one of `final`, `timeout` or `transport-error`
 * is reported, followed (at once or after Timer K) by exactly one `terminated`; nothing is
 * sent after that.
 */
import { assertStatusCode, isProvisional } from './status-code.js';
import { DEFAULT_TIMERS, assertValidTimers, transactionLifetime, type TimerConfig } from './timer-config.js';
import { TransactionUsageError } from './usage-error.js';

export type NonInviteClientState = 'trying' | 'proceeding' | 'completed' | 'terminated';

export type ClientEvent<Req, Res> =
  /** Pass the request to the transport: the first transmission and every retransmission. */
  | { readonly type: 'send'; readonly request: Req }
  /** A 1xx for the TU (§17.1.2.2). */
  | { readonly type: 'provisional'; readonly response: Res }
  /** The first 200–699 for the TU; later retransmissions of it are absorbed. */
  | { readonly type: 'final'; readonly response: Res }
  /** Timer F fired before any final response: the TU treats it as 408 (§8.1.3.1, §17.1.2.2). */
  | { readonly type: 'timeout' }
  /** The transport could not send the request: the TU treats it as 503 (§8.1.3.1, §17.1.4). */
  | { readonly type: 'transport-error' }
  /** The transaction is gone; the caller may forget it (and its matching key). */
  | { readonly type: 'terminated' };

export interface NonInviteClientOptions {
  /** TCP, TLS, SCTP, WebSocket: no retransmissions, and Timer K is 0 (§17.1.2.2). */
  readonly reliable: boolean;
  /** Defaults to RFC 3261 Table 4 (`DEFAULT_TIMERS`). */
  readonly timers?: TimerConfig;
}

type ClientTimer = 'F' | 'K' | 'E';

export class NonInviteClientTransaction<Req, Res> {
  readonly request: Req;
  readonly reliable: boolean;
  readonly timers: TimerConfig;

  #state: NonInviteClientState = 'trying';
  #started = false;
  /** Absolute due times; undefined when the timer is not running. */
  #timerE: number | undefined;
  #timerF: number | undefined;
  #timerK: number | undefined;
  /** The value Timer E was last set to: T1, then doubled up to T2 (§17.1.2.2). */
  #retransmitInterval: number;

  constructor(request: Req, options: NonInviteClientOptions) {
    this.request = request;
    this.reliable = options.reliable;
    this.timers = options.timers ?? DEFAULT_TIMERS;
    assertValidTimers(this.timers);
    this.#retransmitInterval = this.timers.t1;
  }

  get state(): NonInviteClientState {
    return this.#state;
  }

  /**
   * Enter "Trying" (§17.1.2.2): pass the request to the transport, start Timer F = 64*T1,
   * and on an unreliable transport Timer E = T1.
   */
  start(now: number): ClientEvent<Req, Res>[] {
    if (this.#started) throw new TransactionUsageError('client transaction already started');
    this.#started = true;
    this.#timerF = now + transactionLifetime(this.timers);
    if (!this.reliable) this.#timerE = now + this.#retransmitInterval;
    return [{ type: 'send', request: this.request }];
  }

  /**
   * A response matched to this transaction (§17.1.3). 1xx in Trying/Proceeding go to the TU
   * and leave the machine in (or move it to) Proceeding; the first 200–699 goes to the TU and
   * moves it to Completed, where retransmissions of the final response are absorbed until
   * Timer K (T4 on UDP, 0 on reliable transports) ends the transaction.
   */
  receiveResponse(status: number, response: Res, now: number): ClientEvent<Req, Res>[] {
    this.#assertStarted();
    assertStatusCode(status);
    if (this.#state !== 'trying' && this.#state !== 'proceeding') return []; // absorbed / too late
    if (isProvisional(status)) {
      // Timer E keeps running as armed; when it next fires in Proceeding it is reset to T2.
      this.#state = 'proceeding';
      return [{ type: 'provisional', response }];
    }
    this.#timerE = undefined;
    this.#timerF = undefined;
    const events: ClientEvent<Req, Res>[] = [{ type: 'final', response }];
    if (this.reliable) {
      // Timer K is 0: Completed is left at once (§17.1.2.2).
      events.push(...this.#terminate());
    } else {
      this.#state = 'completed';
      this.#timerK = now + this.timers.t4;
    }
    return events;
  }

  /**
   * The transport failed to send the request (§17.1.4): inform the TU and terminate. Ignored
   * once a final response has been reported, since nothing is sent after that.
   */
  transportError(_now: number): ClientEvent<Req, Res>[] {
    this.#assertStarted();
    if (this.#state !== 'trying' && this.#state !== 'proceeding') return [];
    return [{ type: 'transport-error' }, ...this.#terminate()];
  }

  /** Absolute time of the next running timer, or undefined when none runs. */
  pollTimeout(): number | undefined {
    return this.#nextTimer()?.at;
  }

  /**
   * Fire every timer due at `now`, earliest first. Calling early does nothing; calling late
   * fires each overdue timer once and re-arms Timer E from `now`, so a stalled event loop
   * does not turn into a burst of retransmissions.
   */
  handleTimeout(now: number): ClientEvent<Req, Res>[] {
    const events: ClientEvent<Req, Res>[] = [];
    for (let due = this.#nextTimer(); due !== undefined && due.at <= now; due = this.#nextTimer()) {
      events.push(...this.#fire(due.timer, now));
    }
    return events;
  }

  #fire(timer: ClientTimer, now: number): ClientEvent<Req, Res>[] {
    switch (timer) {
      case 'F':
        // Timer F in Trying or Proceeding: the request timed out (§17.1.2.2).
        return [{ type: 'timeout' }, ...this.#terminate()];
      case 'K':
        return this.#terminate();
      case 'E':
        // In Trying the interval doubles up to T2; in Proceeding it is T2 (§17.1.2.2).
        this.#retransmitInterval =
          this.#state === 'trying' ? Math.min(2 * this.#retransmitInterval, this.timers.t2) : this.timers.t2;
        this.#timerE = now + this.#retransmitInterval;
        return [{ type: 'send', request: this.request }];
    }
  }

  /** The earliest running timer; on a tie F wins over K over E (a timeout is never preceded by a useless resend). */
  #nextTimer(): { timer: ClientTimer; at: number } | undefined {
    let next: { timer: ClientTimer; at: number } | undefined;
    for (const [timer, at] of [['F', this.#timerF], ['K', this.#timerK], ['E', this.#timerE]] as const) {
      if (at !== undefined && (next === undefined || at < next.at)) next = { timer, at };
    }
    return next;
  }

  #terminate(): ClientEvent<Req, Res>[] {
    this.#state = 'terminated';
    this.#timerE = undefined;
    this.#timerF = undefined;
    this.#timerK = undefined;
    return [{ type: 'terminated' }];
  }

  #assertStarted(): void {
    if (!this.#started) throw new TransactionUsageError('client transaction not started: call start(now) first');
  }
}
