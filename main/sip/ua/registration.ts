/**
 * Keeping a binding at a registrar (RFC 3261 §10.2): REGISTER, refresh before it lapses,
 * and remove it (expires=0) on a clean exit.
 *
 * One Registration is one (AoR, registrar, Contact) binding. It uses one Call-ID for its whole
 * life and increments CSeq by one each time (§10.2.4); only one REGISTER is outstanding at a
 * time (§10.2: no new REGISTER before the previous got a final response). Challenges are
 * answered by the user agent's ChallengeAnswerer. Outcomes:
 *  - 200: the granted expiry is read from our own Contact in the response (compared by
 *    §19.1.4 URI equality), else from Expires, and a refresh is scheduled before it lapses;
 *  - 423: retried at once with the registrar's Min-Expires (§10.2.8);
 *  - a wrong password: a final failure, reported, never retried in a loop;
 *  - anything else (timeout, transport error, 3xx, 5xx, 6xx): reported, and retried after
 *    Retry-After or an exponential back-off (§10.2.7: never an immediate retry after a timeout).
 */
import { parseNameAddr } from '../header-values.js';
import { HeaderList } from '../message/header-list.js';
import { ParseError } from '../message/parse-error.js';
import { SipRequest, type SipResponse } from '../message/sip-message.js';
import type { Clock } from '../transaction/clock.js';
import { aorOf, formatUri, isSipUri, parseUri, uriEquals, type SipUri } from '../uri.js';
import { newCallId, newTag } from './identifiers.js';
import { formatTopVia, USER_AGENT, type SentBy, type SipTransportName } from './message-request.js';
import type { UserAgent } from './user-agent.js';

export interface RegistrationOptions {
  /** The registrar's URI (the REGISTER Request-URI): defaults to the AoR's domain (§10.2.6). */
  readonly registrar?: string;
  /** Seconds asked for; the registrar may grant less. */
  readonly expires?: number;
  readonly transport?: SipTransportName;
  /** Methods listed in Allow: Kamailio's msilo only dumps stored messages to a REGISTER whose Allow has MESSAGE. */
  readonly allow?: readonly string[];
  /** First and longest wait before retrying after a failure, in seconds. */
  readonly retryBackoff?: { readonly first: number; readonly max: number };
}

export type RegistrationEvent =
  | { readonly state: 'registered'; readonly registrar: string; readonly contact: string; readonly expires: number }
  | {
      readonly state: 'failed';
      readonly registrar: string;
      readonly status: number;
      readonly reason: string;
      /** Seconds until the next attempt; absent when it will not retry (wrong credentials). */
      readonly retryIn?: number;
    }
  | { readonly state: 'unregistered'; readonly registrar: string };

const DEFAULT_EXPIRES = 3600;

export class Registration {
  private readonly aor: SipUri;
  private readonly registrar: string;
  private readonly callId: string;
  private readonly fromTag = newTag();
  private nextCSeq = 1;
  private expires: number;
  private contact: string | undefined;
  private cancelTimer: (() => void) | undefined;
  private inFlight: Promise<void> | undefined;
  private backoff: number;
  private stopped = false;
  private lastRegistered = false;
  /** The connection our binding lives on, when kept alive (TCP/TLS). */
  private flow: string | undefined;

  constructor(
    private readonly ua: UserAgent,
    private readonly clock: Clock,
    private readonly options: RegistrationOptions,
    private readonly onEvent: (event: RegistrationEvent) => void,
  ) {
    const aor = ua.aor;
    if (!isSipUri(aor)) throw new TypeError('registration needs a sip: or sips: address of record');
    this.aor = aor;
    this.registrar = options.registrar ?? `${aor.scheme}:${aor.host}${aor.port === undefined ? '' : `:${aor.port}`}`;
    this.callId = newCallId(aor.host);
    this.expires = options.expires ?? DEFAULT_EXPIRES;
    this.backoff = options.retryBackoff?.first ?? 30;
  }

  /** Sends the first REGISTER; refreshes follow by themselves until `stop`. */
  start(): Promise<void> {
    return this.run(() => this.register(this.expires));
  }

  /** Removes our binding (expires=0) and stops refreshing (§10.2.2). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    await this.inFlight;
    if (!this.lastRegistered) return;
    await this.register(0);
  }

  /** Re-registers now, e.g. after the flow to the registrar was lost (RFC 5626 §4.4). */
  refreshNow(): Promise<void> {
    this.cancelTimer?.();
    return this.run(() => this.register(this.expires));
  }

  private run(task: () => Promise<void>): Promise<void> {
    const previous = this.inFlight ?? Promise.resolve();
    const next = previous.then(task, task);
    this.inFlight = next;
    return next;
  }

  private async register(expires: number): Promise<void> {
    const destinations = await this.ua.locate(parseUri(this.registrar), [], this.options.transport);
    let contact = '';
    const outcome = await this.ua.request({
      destinations,
      direct: true,
      firstCSeq: this.nextCSeq,
      build: (attempt) => {
        contact = contactFor(this.aor, attempt.sentBy);
        return this.buildRegister(attempt.sentBy, attempt.branch, attempt.cseq, contact, expires, attempt.authorization);
      },
    });
    this.nextCSeq = outcome.request.cseq.seq + 1;
    const response = outcome.response;

    if (expires === 0) {
      this.lastRegistered = false;
      this.onEvent({ state: 'unregistered', registrar: this.registrar });
      return;
    }
    if (response !== undefined && response.status >= 200 && response.status < 300) {
      const granted = grantedExpiry(response, contact) ?? expires;
      this.contact = contact;
      this.lastRegistered = granted > 0;
      this.backoff = this.options.retryBackoff?.first ?? 30;
      this.onEvent({ state: 'registered', registrar: this.registrar, contact, expires: granted });
      this.schedule(refreshDelay(granted), () => void this.run(() => this.register(this.expires)));
      this.watchFlow(outcome.connectionId, response);
      return;
    }
    if (response?.status === 423) {
      const minimum = Number(response.headers.get('min-expires'));
      if (Number.isInteger(minimum) && minimum > expires) {
        this.expires = minimum;
        return this.register(minimum);
      }
    }
    const result = outcome.result;
    if (result.authFailure !== undefined) {
      this.lastRegistered = false;
      this.onEvent({ state: 'failed', registrar: this.registrar, status: result.status, reason: `${result.reason} (${result.authFailure})` });
      return;
    }
    const retryIn = result.retryAfter ?? this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.options.retryBackoff?.max ?? 1800);
    this.lastRegistered = false;
    this.onEvent({ state: 'failed', registrar: this.registrar, status: result.status, reason: result.reason, retryIn });
    this.schedule(retryIn, () => void this.run(() => this.register(this.expires)));
  }

  /**
   * RFC 5626 §4.4.1: keep the connection the registration went over alive with CRLF pings
   * (at the registrar's Flow-Timer, else every 120 s), and register again at once when it
   * fails: inbound MESSAGEs to a client behind NAT can only come over that flow.
   */
  private watchFlow(connectionId: string | undefined, response: SipResponse): void {
    if (connectionId === undefined || connectionId === this.flow) return;
    const flowTimer = Number(response.headers.get('flow-timer'));
    const intervalMs = (Number.isInteger(flowTimer) && flowTimer > 0 ? flowTimer : 120) * 1000;
    const kept = this.ua.keepFlowAlive(connectionId, intervalMs, () => {
      this.flow = undefined;
      if (this.stopped) return;
      this.onEvent({ state: 'failed', registrar: this.registrar, status: 503, reason: 'Flow lost (connection to the registrar closed)', retryIn: 0 });
      void this.refreshNow();
    });
    if (kept) this.flow = connectionId;
  }

  private schedule(seconds: number, task: () => void): void {
    if (this.stopped) return;
    this.cancelTimer?.();
    this.cancelTimer = this.clock.setTimer(this.clock.now() + seconds * 1000, () => {
      this.cancelTimer = undefined;
      if (!this.stopped) task();
    });
  }

  private buildRegister(
    sentBy: SentBy,
    branch: string,
    cseq: number,
    contact: string,
    expires: number,
    authorization: ReadonlyArray<readonly [string, string]>,
  ): SipRequest {
    const aor = formatUri(aorOf(this.aor));
    const headers = new HeaderList();
    headers.append('Via', formatTopVia(sentBy, branch));
    headers.append('Max-Forwards', '70');
    headers.append('To', `<${aor}>`);
    headers.append('From', `<${aor}>;tag=${this.fromTag}`);
    headers.append('Call-ID', this.callId);
    headers.append('CSeq', `${cseq} REGISTER`);
    headers.append('Contact', `<${contact}>;expires=${expires}`);
    headers.append('Expires', String(expires));
    headers.append('Allow', (this.options.allow ?? ['MESSAGE', 'OPTIONS']).join(', '));
    headers.append('User-Agent', USER_AGENT);
    for (const [name, value] of authorization) headers.append(name, value);
    return new SipRequest('REGISTER', this.registrar, headers, Buffer.alloc(0));
  }

  /** The Contact of the last successful registration. */
  get currentContact(): string | undefined {
    return this.contact;
  }
}

/** Our Contact: the AoR's user at the address we listen on, with the transport named (§10.2.1). */
function contactFor(aor: SipUri, sentBy: SentBy): string {
  const user = aor.user === undefined ? '' : `${aor.user}@`;
  const transport = sentBy.transport === 'udp' ? '' : `;transport=${sentBy.transport}`;
  return `sip:${user}${sentBy.host}:${sentBy.port}${transport}`;
}

/** §10.2.4: the expiry granted to OUR binding, found by URI comparison among the Contacts. */
function grantedExpiry(response: SipResponse, contact: string): number | undefined {
  const ours = parseUri(contact);
  for (const value of response.headers.getList('contact')) {
    try {
      const entry = parseNameAddr(value);
      if (!uriEquals(entry.uri, ours)) continue;
      const expires = entry.params.get('expires');
      if (typeof expires === 'string' && /^\d{1,10}$/.test(expires)) return Number(expires);
    } catch (error) {
      if (!(error instanceof ParseError)) throw error;
    }
  }
  const header = response.headers.get('expires');
  return header !== undefined && /^\d{1,10}$/.test(header) ? Number(header) : undefined;
}

/** Refresh comfortably before the binding lapses: a minute early, or halfway for short ones. */
export function refreshDelay(expires: number): number {
  return expires > 120 ? expires - 60 : Math.max(1, expires / 2);
}
