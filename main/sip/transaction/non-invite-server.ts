/**
 * The non-INVITE server transaction of RFC 3261 §17.2.2 (Figure 8), with the RFC 4320 §4
 * rules on provisional and 408 responses, sans-I/O.
 *
 * Transitions, after Figure 8:
 *
 *   state              event                   -> state        action
 *   (new)              request from transport  -> Trying       (the caller hands the request to the TU)
 *   Trying             request retransmission  -> Trying       absorbed
 *   Trying/Proceeding  1xx from TU             -> Proceeding   send it
 *   Proceeding         request retransmission  -> Proceeding   resend the last 1xx
 *   Trying/Proceeding  200-699 from TU         -> Completed    send it; J = 64*T1 (unreliable) or 0
 *   Completed          request retransmission  -> Completed    resend the final response
 *   Completed          response from TU        -> Completed    discarded
 *   any but Terminated transport error         -> Terminated   inform TU (§17.2.4)
 *   Completed          Timer J                 -> Terminated
 *
 * RFC 4320 (which updates §17.2.2 for non-INVITE requests) adds:
 * - §4.1: no provisional other than 100 may be sent; a 100 MUST NOT go over an unreliable
 *   transport before the client's Timer E would have reached T2 (3.5 s with default timers),
 *   and MUST be sent if no final response is ready by then;
 * - §4.2: a 408 MUST NOT be sent to a non-INVITE request (the client times out by itself).
 * Handing the transaction a response that breaks these rules is a TU bug and throws a
 * `TransactionUsageError`. Give `receivedAt` and `createTrying` and the transaction sends the
 * due 100 (Trying) itself, so the TU never has to time it.
 *
 * Like the client, the machine does no I/O, reads no clock and never looks inside a message;
 * matching a retransmitted request to this transaction (§17.2.3) is the caller's job.
 * Guarantee: at most one final response is ever sent (re-sent identically on retransmissions).
 */
import { assertStatusCode, isProvisional } from './status-code.js';
import {
  DEFAULT_TIMERS,
  assertValidTimers,
  timeUntilTimerEReachesT2,
  transactionLifetime,
  type TimerConfig,
} from './timer-config.js';
import { TransactionUsageError } from './usage-error.js';

export type NonInviteServerState = 'trying' | 'proceeding' | 'completed' | 'terminated';

export type ServerEvent<Res> =
  /** Pass this response to the transport (first transmission or retransmission). */
  | { readonly type: 'send'; readonly response: Res }
  /**
   * The TU handed over a response the transaction will not send, because a final response was
   * already sent (`completed`, §17.2.2) or the transaction is gone (`terminated`).
   */
  | { readonly type: 'response-discarded'; readonly response: Res; readonly reason: 'completed' | 'terminated' }
  /** Sending a response failed (§17.2.4); the transaction terminates. */
  | { readonly type: 'transport-error' }
  /** The transaction is gone; the caller may forget it (and its matching key). */
  | { readonly type: 'terminated' };

export interface NonInviteServerOptions<Res> {
  /** TCP, TLS, SCTP, WebSocket: Timer J is 0, so Completed ends at once (§17.2.2). */
  readonly reliable: boolean;
  /** Defaults to RFC 3261 Table 4 (`DEFAULT_TIMERS`). */
  readonly timers?: TimerConfig;
  /**
   * When the request arrived (same time scale as every `now`). Lets the transaction enforce
   * the RFC 4320 §4.1 earliest time for a 100 over an unreliable transport.
   */
  readonly receivedAt?: number;
  /**
   * Builds a 100 (Trying) for the request (§8.2.6.1: copy Timestamp). With `receivedAt`, the
   * transaction sends it itself when RFC 4320 §4.1 makes it due and no response was sent yet.
   */
  readonly createTrying?: () => Res;
}

type ServerTimer = 'J' | 'trying';

export class NonInviteServerTransaction<Req, Res> {
  readonly request: Req;
  readonly reliable: boolean;
  readonly timers: TimerConfig;

  #state: NonInviteServerState = 'trying';
  #lastProvisional: Res | undefined;
  #final: Res | undefined;
  /** Earliest time a 100 may go over an unreliable transport, when `receivedAt` is known. */
  readonly #tryingAllowedAt: number | undefined;
  readonly #createTrying: (() => Res) | undefined;
  /** Absolute due times; undefined when the timer is not running. */
  #timerJ: number | undefined;
  #timerTrying: number | undefined;

  constructor(request: Req, options: NonInviteServerOptions<Res>) {
    this.request = request;
    this.reliable = options.reliable;
    this.timers = options.timers ?? DEFAULT_TIMERS;
    assertValidTimers(this.timers);
    if (options.receivedAt !== undefined) {
      this.#tryingAllowedAt = options.receivedAt + timeUntilTimerEReachesT2(this.timers);
    }
    if (options.createTrying !== undefined) {
      if (this.#tryingAllowedAt === undefined) {
        throw new TransactionUsageError('createTrying needs receivedAt to know when the 100 is due');
      }
      this.#createTrying = options.createTrying;
      this.#timerTrying = this.#tryingAllowedAt;
    }
  }

  get state(): NonInviteServerState {
    return this.#state;
  }

  /**
   * A retransmission of the request arrived (§17.2.2): absorbed in Trying; answered with the
   * last provisional in Proceeding and with the final response in Completed.
   */
  receiveRequestRetransmission(_now: number): ServerEvent<Res>[] {
    switch (this.#state) {
      case 'proceeding':
        return this.#lastProvisional === undefined ? [] : [{ type: 'send', response: this.#lastProvisional }];
      case 'completed':
        return this.#final === undefined ? [] : [{ type: 'send', response: this.#final }];
      case 'trying':
      case 'terminated':
        return [];
    }
  }

  /**
   * The TU's response. A 100 moves Trying to Proceeding; a final response moves to Completed
   * and starts Timer J (64*T1 on unreliable transports; 0, i.e. Terminated at once, on
   * reliable ones). After a final response, further responses are discarded (§17.2.2).
   *
   * @throws TransactionUsageError for responses RFC 4320 forbids: a 101–199, a 408, or a 100
   *   over an unreliable transport earlier than `receivedAt` + the time Timer E takes to reach T2.
   */
  respond(status: number, response: Res, now: number): ServerEvent<Res>[] {
    assertStatusCode(status);
    if (this.#state === 'completed' || this.#state === 'terminated') {
      return [{ type: 'response-discarded', response, reason: this.#state }];
    }
    if (isProvisional(status)) {
      this.#assertProvisionalAllowed(status, now);
      return this.#sendProvisional(response);
    }
    if (status === 408) {
      throw new TransactionUsageError('RFC 4320 §4.2: a 408 must not be sent to a non-INVITE request');
    }
    this.#final = response;
    this.#lastProvisional = undefined;
    this.#timerTrying = undefined;
    const events: ServerEvent<Res>[] = [{ type: 'send', response }];
    if (this.reliable) {
      events.push(...this.#terminate()); // Timer J is 0 (§17.2.2)
    } else {
      this.#state = 'completed';
      this.#timerJ = now + transactionLifetime(this.timers);
    }
    return events;
  }

  /** Sending a response failed (§17.2.4): inform the TU and terminate. */
  transportError(_now: number): ServerEvent<Res>[] {
    if (this.#state === 'terminated') return [];
    return [{ type: 'transport-error' }, ...this.#terminate()];
  }

  /** Absolute time of the next running timer, or undefined when none runs. */
  pollTimeout(): number | undefined {
    const next = this.#nextTimer();
    return next === undefined ? undefined : this.#dueTime(next);
  }

  /** Fire every timer due at `now`, earliest first; calling early or late is safe. */
  handleTimeout(now: number): ServerEvent<Res>[] {
    const events: ServerEvent<Res>[] = [];
    for (let due = this.#nextTimer(); due !== undefined && this.#dueTime(due) <= now; due = this.#nextTimer()) {
      if (due === 'J') {
        events.push(...this.#terminate());
      } else {
        // RFC 4320 §4.1: still no response when Timer E would reach T2, so a 100 is now owed.
        this.#timerTrying = undefined;
        if (this.#state === 'trying' && this.#createTrying !== undefined) {
          events.push(...this.#sendProvisional(this.#createTrying()));
        }
      }
    }
    return events;
  }

  #assertProvisionalAllowed(status: number, now: number): void {
    if (status !== 100) {
      throw new TransactionUsageError(
        `RFC 4320 §4.1: only 100 may be sent as a provisional response to a non-INVITE request, got ${status}`,
      );
    }
    if (!this.reliable && this.#tryingAllowedAt !== undefined && now < this.#tryingAllowedAt) {
      throw new TransactionUsageError(
        'RFC 4320 §4.1: a 100 to a non-INVITE must not be sent over an unreliable transport ' +
          `before the client's Timer E reaches T2 (at ${this.#tryingAllowedAt}, now ${now})`,
      );
    }
  }

  #sendProvisional(response: Res): ServerEvent<Res>[] {
    this.#state = 'proceeding';
    this.#lastProvisional = response;
    this.#timerTrying = undefined; // a provisional went out, so the RFC 4320 100 is no longer owed
    return [{ type: 'send', response }];
  }

  /**
   * The running timer due first (J on a tie), or undefined. Asked after every input (the driver
   * re-arms from `pollTimeout`), so it allocates nothing.
   */
  #nextTimer(): ServerTimer | undefined {
    const j = this.#timerJ;
    const trying = this.#timerTrying;
    if (j === undefined) return trying === undefined ? undefined : 'trying';
    return trying !== undefined && trying < j ? 'trying' : 'J';
  }

  /** When a running timer is due. */
  #dueTime(timer: ServerTimer): number {
    return (timer === 'J' ? this.#timerJ : this.#timerTrying) as number;
  }

  #terminate(): ServerEvent<Res>[] {
    this.#state = 'terminated';
    this.#timerJ = undefined;
    this.#timerTrying = undefined;
    this.#lastProvisional = undefined;
    return [{ type: 'terminated' }];
  }
}
