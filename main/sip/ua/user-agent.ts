/**
 * The RFC 3428 pager user agent: the transaction user above the transport and transaction
 * layers (RFC 3261 §8, §17, §18; RFC 3428; RFC 3581).
 *
 * Outgoing: `sendMessage` composes a MESSAGE (message-request.ts), queues it behind any
 * MESSAGE still pending to the same destination (RFC 3428 §8), applies the size rules
 * (§18.1.1 switches large requests to TCP; RFC 3428 §8 refuses what could go over a
 * congestion-unsafe hop), runs a NonInviteClientTransaction and resolves with the outcome.
 * `exchangeOptions` sends an out-of-dialog OPTIONS the same way (RFC 3261 §11), e.g. to learn a
 * peer's certificate from its 200 (RFC 3261 §23.2).
 *
 * Incoming: bytes are parsed; responses go to the client transaction they match (§17.1.3);
 * requests get `received`/`rport` filled in (§18.2.1, RFC 3581 §4), are matched to a server
 * transaction (§17.2.3) so retransmissions are absorbed, judged (request-policy.ts), and
 * MESSAGE bodies are handed to the application's handler, whose promise decides the final
 * response: the handler can store the message first (write before acknowledge). OPTIONS get a
 * 200 with our capabilities (§11.2), which the application's `onOptions` handler may extend
 * with headers and a body (our certificate, RFC 3261 §23.2).
 */
import { formatVia, parseNameAddr, parseVia, splitHeaderList, type ParsedNameAddr, type Via } from '../header-values.js';
import { parseMessage, type ParseOptions } from '../message/parse.js';
import { ParseError } from '../message/parse-error.js';
import { serializeMessage } from '../message/serialize.js';
import { SipRequest, type SipMessage, type SipResponse } from '../message/sip-message.js';
import { systemClock, type Clock } from '../transaction/clock.js';
import { TransactionDriver } from '../transaction/driver.js';
import { NonInviteClientTransaction, type ClientEvent } from '../transaction/non-invite-client.js';
import { DEFAULT_TIMERS, type TimerConfig } from '../transaction/timer-config.js';
import { clientTransactionKey, serverTransactionKey } from '../transaction/transaction-keys.js';
import { chooseTransport, MTU_HEADROOM } from '../transport/choose-transport.js';
import { knownPathMtu } from '../transport/path-mtu.js';
import { TransportLayer, type InboundMessage, type ListenSpec, type TlsOptions, type TransportLimits } from '../transport/transport-layer.js';
import { aorOf, formatUri, parseUri, type Uri } from '../uri.js';
import { Failover, TargetHealth, type AttemptOutcome } from '../dns/failover.js';
import type { DnsResolver } from '../dns/dns-resolver.js';
import { locateDestinations, type Destination } from './destination.js';
import { DestinationQueue } from './destination-queue.js';
import type { ChallengeAnswerer, AuthRequestView } from './authentication.js';
import { DestinationError, MessageTooLargeError } from './errors.js';
import { newBranch, newCallId, newTag } from './identifiers.js';
import { buildMessageRequest, type MessageRequestInput, type SentBy, type SipTransportName } from './message-request.js';
import { outcomeOfStatus, type SendResult } from './outcome.js';
import { DEFAULT_REQUEST_POLICY, judgeRequest, judgeResponse, type RequestPolicy } from './request-policy.js';
import { SourceRateLimiter, type RateLimitConfig } from './rate-limit.js';
import { createResponse, type ResponseOptions } from './responses.js';
import { isSimpleResponse, simpleResponseText } from './response-bytes.js';
import { ResponseStore } from './response-store.js';
import { ServerTransaction, ServerTransactions, type ResponseRoute } from './server-transactions.js';

/** The options of a response that has none: shared rather than made per response. */
const NO_RESPONSE_OPTIONS: Readonly<ResponseOptions> = Object.freeze({});

/** How messages are framed (§18.3), as parse options: made once rather than per message. */
const DATAGRAM_FRAMING: ParseOptions = { framing: 'datagram' };
const STREAM_FRAMING: ParseOptions = { framing: 'stream' };

/** RFC 3428 §8: the largest MESSAGE request allowed over a path not known to be congestion-controlled. */
export const MESSAGE_SIZE_LIMIT = 1300;

export interface IncomingMessage {
  readonly from: string;
  readonly fromDisplayName?: string;
  readonly to: string;
  readonly callId: string;
  readonly cseq: number;
  readonly fromTag: string;
  /** `type/subtype` with parameters, as sent. */
  readonly contentType: string;
  readonly body: Buffer;
  readonly transport: SipTransportName;
  readonly remote: { readonly address: string; readonly port: number };
  /** The request's Date header, when present and valid. */
  readonly date?: Date;
  /** When the content stops being valid (RFC 3428 §7: Expires from Date, else from receipt). */
  readonly expiresAt?: Date;
  readonly receivedAt: Date;
  readonly request: SipRequest;
}

/** What the application answers to a MESSAGE; nothing (undefined) means 200 OK. */
export interface MessageDecision {
  readonly status: number;
  readonly reason?: string;
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  readonly body?: Buffer;
  readonly contentType?: string;
}

export type MessageHandler = (message: IncomingMessage) => Promise<MessageDecision | void> | MessageDecision | void;

/**
 * What the application adds to our 200 to an OPTIONS (RFC 3261 §11.2): headers that replace the
 * capability headers of the same name (e.g. an Accept listing S/MIME types, RFC 8591 §6) or are
 * added, and a body (e.g. our certificate as certs-only, RFC 3261 §23.2).
 */
export interface OptionsAnswer {
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  readonly body?: Buffer;
  readonly contentType?: string;
}

/** Looks at an OPTIONS request (its body may carry the sender's certificate) and shapes our 200. */
export type OptionsHandler = (request: SipRequest) => Promise<OptionsAnswer | undefined> | OptionsAnswer | undefined;

export interface SipTrace {
  readonly direction: 'in' | 'out';
  readonly transport: SipTransportName;
  readonly remote: { readonly address: string; readonly port: number };
  readonly data: Buffer;
}

export interface UserAgentOptions {
  /** Our address of record, e.g. `sip:bob@example.com`. */
  readonly aor: string;
  readonly displayName?: string;
  readonly listen: readonly ListenSpec[];
  readonly timers?: TimerConfig;
  readonly clock?: Clock;
  readonly policy?: RequestPolicy;
  /**
   * The path MTU toward an address, where known (RFC 3261 §18.1.1): by default the loopback
   * interface's for loopback destinations, unknown elsewhere.
   */
  readonly pathMtu?: (address: string) => number | undefined;
  /** The user asserts every hop to their peers is congestion-controlled (RFC 3428 §8). */
  readonly congestionSafePath?: boolean;
  readonly onMessage?: MessageHandler;
  /** Shapes the 200 to an OPTIONS; without one the 200 carries the capability headers only. */
  readonly onOptions?: OptionsHandler;
  /** Answers 401/407 challenges (digest credentials); without one a challenge is a final failure. */
  readonly authenticator?: ChallengeAnswerer;
  /** Our TLS certificate and key (for `tls:` listeners) and certificates trusted beyond the system CAs. */
  readonly tls?: TlsOptions;
  /** DNS for RFC 3263 server location; the system's resolvers by default. */
  readonly resolver?: DnsResolver;
  /** Outbound proxy URIs, used as a pre-loaded route set with loose routing (§8.1.1.1). */
  readonly outboundProxy?: readonly string[];
  /** Every SIP message in and out, for a SIP log. */
  readonly onTrace?: (trace: SipTrace) => void;
  /** Things dropped or failed that have no other reporter (unparseable input, stray responses). */
  readonly onDiagnostic?: (text: string) => void;
  /**
   * Per-source-address limit on new incoming requests (off by default): a request over it is
   * answered 503 with Retry-After, statelessly, never dropped (rate-limit.ts).
   */
  readonly rateLimit?: RateLimitConfig;
  /** Connection limits and timeouts of the transport layer; its defaults where not given. */
  readonly transportLimits?: TransportLimits;
}

export interface SendMessageInput {
  readonly to: string;
  readonly body: Buffer;
  readonly contentType: string;
  /** Force a transport; otherwise the URI's `transport` parameter, else UDP (RFC 3263 §4.1). */
  readonly transport?: SipTransportName;
  readonly expires?: number;
  readonly route?: readonly string[];
  readonly extraHeaders?: ReadonlyArray<readonly [string, string]>;
  /**
   * The Date header; default: now. A signed body passes its protected time, so that the
   * unprotected Date and the date under the signature agree (RFC 3428 §11.4).
   */
  readonly date?: Date;
  /**
   * The Call-ID and From tag to use instead of fresh ones, so a caller can file the request
   * under them before it is sent (a stored outbox row). Never reuse them for another request
   * with the same CSeq: a retry of a stored message is a new request with a higher `cseq`
   * (RFC 3261 §8.1.1.5, §8.2.2.2); the UA numbers auth retries from there.
   */
  readonly identity?: { readonly callId: string; readonly fromTag: string; readonly cseq?: number };
}

/** An out-of-dialog OPTIONS (RFC 3261 §11.1): the same headers as a MESSAGE, without Expires. */
export type SendOptionsInput = Omit<SendMessageInput, 'expires'>;

/** How many challenges one request may answer: a proxy's 407 and then a registrar's 401, with room for one stale nonce. */
const MAX_AUTH_ATTEMPTS = 3;

/** What a caller of `UserAgent.request` describes; the UA adds branch, CSeq, Via and credentials. */
export interface RequestPlan {
  /** Where to send it, in order of preference (RFC 3263); later ones are for failover. */
  readonly destinations: readonly Destination[];
  /** No pre-loaded route: the first hop is the target itself (RFC 3428 §8 "directly"). */
  readonly direct: boolean;
  /** RFC 3428 §8 applies (MESSAGE). */
  readonly sizeLimited?: boolean;
  readonly firstCSeq?: number;
  build(attempt: AttemptParameters): SipRequest;
}

export interface AttemptParameters {
  readonly branch: string;
  readonly cseq: number;
  readonly sentBy: SentBy;
  /** Authorization / Proxy-Authorization headers to include. */
  readonly authorization: ReadonlyArray<readonly [string, string]>;
}

export interface RequestOutcome {
  readonly result: SendResult;
  readonly response?: SipResponse;
  /** The last request sent (its CSeq tells the next one where to continue). */
  readonly request: SipRequest;
  /** The TCP/TLS connection it went over: the flow a REGISTER creates (RFC 5626). */
  readonly connectionId?: string;
}

type ClientDriver = TransactionDriver<NonInviteClientTransaction<SipRequest, SipResponse>>;

export class UserAgent {
  readonly aor: Uri;
  private readonly clock: Clock;
  private readonly timers: TimerConfig;
  private readonly policy: RequestPolicy;
  private readonly queue = new DestinationQueue();
  private readonly clients = new Map<string, ClientDriver>();
  /**
   * Server transactions, filed under their keys with their merged-request identities (§8.2.2.2).
   * Each keeps its response as the bytes sent: over UDP a completed transaction lives 64*T1 =
   * 32 s (Timer J, §17.2.2) to absorb retransmissions, so at thousands of requests a second what
   * it keeps is what the heap holds: the wire bytes to resend, not the parsed request and response.
   */
  private readonly servers: ServerTransactions;
  /** Servers that failed recently go to the back of the list for a while (RFC 3263 §4.3). */
  private readonly health = new TargetHealth();
  private messageHandler: MessageHandler | undefined;
  private optionsHandler: OptionsHandler | undefined;
  private readonly rateLimiter: SourceRateLimiter | undefined;
  /** The bytes of the final responses server transactions keep for retransmissions. */
  private readonly responseStore = new ResponseStore();
  private closed = false;

  private constructor(
    private readonly transport: TransportLayer,
    private readonly options: UserAgentOptions,
  ) {
    this.aor = parseUri(options.aor);
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? DEFAULT_TIMERS;
    this.policy = options.policy ?? DEFAULT_REQUEST_POLICY;
    this.messageHandler = options.onMessage;
    this.optionsHandler = options.onOptions;
    this.rateLimiter = options.rateLimit === undefined ? undefined : new SourceRateLimiter(options.rateLimit);
    this.servers = new ServerTransactions(this.clock, this.timers, (transaction, response) => this.sendServerResponse(transaction, response));
  }

  static async start(options: UserAgentOptions): Promise<UserAgent> {
    const aor = parseUri(options.aor);
    if (aor.scheme !== 'sip' && aor.scheme !== 'sips') throw new TypeError(`the address of record must be a sip: URI, not ${options.aor}`);
    let agent: UserAgent | undefined;
    const transport = await TransportLayer.listen(options.listen, {
      ...options.transportLimits,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
      onMessage: (inbound) => agent?.receive(inbound),
      onError: (reason) => options.onDiagnostic?.(`transport: ${reason}`),
    });
    agent = new UserAgent(transport, options);
    return agent;
  }

  /** The addresses actually bound (ports filled in where 0 was asked for). */
  get listening(): ListenSpec[] {
    return this.transport.localAddresses();
  }

  setMessageHandler(handler: MessageHandler | undefined): void {
    this.messageHandler = handler;
  }

  setOptionsHandler(handler: OptionsHandler | undefined): void {
    this.optionsHandler = handler;
  }

  /**
   * Sends one MESSAGE and resolves with what became of it. Rejects only when it could not even
   * be tried (MessageTooLargeError, DestinationError); network failures are outcomes.
   */
  async sendMessage(input: SendMessageInput): Promise<SendResult> {
    return (await this.exchangeMessage(input)).result;
  }

  /** `sendMessage`, resolving with the final response too (a 493's certificate, say). */
  exchangeMessage(input: SendMessageInput): Promise<RequestOutcome> {
    const target = parseUri(input.to);
    return this.queue.run(formatUri(aorOf(target)), () => this.sendNow('MESSAGE', input, target));
  }

  /**
   * Sends an out-of-dialog OPTIONS (RFC 3261 §11) and resolves with the outcome and the final
   * response. Not queued behind MESSAGEs and not under the RFC 3428 §8 size limit.
   */
  exchangeOptions(input: SendOptionsInput): Promise<RequestOutcome> {
    return this.sendNow('OPTIONS', input, parseUri(input.to));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const driver of this.clients.values()) driver.dispose();
    this.clients.clear();
    this.servers.close();
    await this.transport.close();
  }

  // ---- UAC ---------------------------------------------------------------------------

  private async sendNow(method: 'MESSAGE' | 'OPTIONS', input: SendMessageInput, target: Uri): Promise<RequestOutcome> {
    const route = input.route ?? this.options.outboundProxy?.map((uri) => `<${uri}>`) ?? [];
    const destinations = await this.locate(target, route, input.transport);
    const destination = destinations[0] as Destination;
    const message: MessageRequestInput = {
      from: this.options.aor,
      ...(this.options.displayName === undefined ? {} : { fromDisplayName: this.options.displayName }),
      to: input.to,
      contentType: input.contentType,
      body: input.body,
      ...(input.expires === undefined ? {} : { expires: input.expires }),
      ...(route.length === 0 ? {} : { route }),
      ...(input.extraHeaders === undefined ? {} : { extraHeaders: input.extraHeaders }),
    };
    const callId = input.identity?.callId ?? newCallId(this.sentByFor(destination).host);
    const fromTag = input.identity?.fromTag ?? newTag();
    const date = input.date ?? new Date();
    return this.request({
      destinations,
      direct: route.length === 0,
      sizeLimited: method === 'MESSAGE',
      ...(input.identity?.cseq === undefined ? {} : { firstCSeq: input.identity.cseq }),
      build: (attempt) => {
        const request = buildMessageRequest(
          { ...message, extraHeaders: [...(message.extraHeaders ?? []), ...attempt.authorization] },
          attempt.sentBy,
          { branch: attempt.branch, callId, fromTag, cseq: attempt.cseq, date },
        );
        return method === 'MESSAGE' ? request : withMethod(request, method, attempt.cseq);
      },
    });
  }

  /**
   * Runs one client request to completion with the retries RFC 3261 allows: each attempt is a
   * new transaction (new branch) with CSeq + 1 and the same Call-ID; a 401/407 is answered by
   * the ChallengeAnswerer (§8.1.3.5, §22.2). The size rules of §18.1.1 and RFC 3428 §8 are
   * applied to every attempt, since credentials make a request longer.
   */
  async request(plan: RequestPlan): Promise<RequestOutcome> {
    let authorization: Array<readonly [string, string]> = [];
    const failover = new Failover(plan.destinations, { health: this.health });
    let destination = failover.next();
    if (destination === undefined) throw new DestinationError('no server to send to');
    let cseq = plan.firstCSeq ?? 1;
    for (let attempt = 0; ; attempt++) {
      let target: Destination = destination;
      const parameters = (): AttemptParameters => ({
        branch: newBranch(),
        cseq,
        sentBy: this.sentByFor(target),
        authorization,
      });
      let request = plan.build(parameters());
      if (attempt === 0 && this.options.authenticator?.preemptive !== undefined) {
        authorization = [...this.options.authenticator.preemptive(authView(request))];
        if (authorization.length > 0) request = plan.build(parameters());
      }
      let bytes = serializeMessage(request);
      // §18.1.1: a request over 1300 bytes (or near a known path MTU) goes over a
      // congestion-controlled transport.
      const pathMtu = (this.options.pathMtu ?? knownPathMtu)(target.address);
      const transport = chooseTransport(target.transport, bytes.length, pathMtu === undefined ? {} : { pathMtu });
      if (transport !== target.transport) {
        target = { ...target, transport };
        request = plan.build(parameters());
        bytes = serializeMessage(request);
      }
      // RFC 3428 §8: over 1300 octets only where every hop is known to be congestion-controlled,
      // or 200 octets below a known path MTU.
      if (plan.sizeLimited === true && bytes.length > MESSAGE_SIZE_LIMIT) {
        const belowKnownMtu = plan.direct && pathMtu !== undefined && bytes.length <= pathMtu - MTU_HEADROOM;
        const knownSafe = this.options.congestionSafePath === true || belowKnownMtu || (plan.direct && target.transport !== 'udp');
        if (!knownSafe) throw new MessageTooLargeError(bytes.length, MESSAGE_SIZE_LIMIT);
      }

      const { result, response, provisional, connectionId } = await this.runClientTransaction(request, bytes, target);

      // RFC 3263 §4.3: a transport error, a silent timeout or a 503 moves on to the next server.
      if (failover.report(destination, attemptOutcome(result, response, provisional))) {
        const next = failover.next();
        if (next !== undefined) {
          this.options.onDiagnostic?.(`${result.status} from ${target.address}:${target.port}; trying ${next.address}:${next.port}`);
          destination = next;
          continue;
        }
      }

      const status = response?.status;
      const answerer = this.options.authenticator;
      if ((status === 401 || status === 407) && response !== undefined && answerer !== undefined && attempt < MAX_AUTH_ATTEMPTS) {
        const challenges = response.headers.getAll(status === 401 ? 'www-authenticate' : 'proxy-authenticate');
        const answer = await answerer.answer({ status, challenges }, authView(request));
        if (answer.action === 'retry') {
          authorization =
            answer.headers !== undefined
              ? answer.headers.map((header) => [header.name, header.value] as const)
              : [...authorization.filter(([name]) => name.toLowerCase() !== answer.headerName.toLowerCase()), [answer.headerName, answer.headerValue]];
          cseq++;
          continue;
        }
        return { result: { ...result, authFailure: answer.reason }, response, request };
      }
      if ((status === 401 || status === 407) && response !== undefined) {
        const why = answerer === undefined ? 'no credentials configured' : 'too many challenges';
        return { result: { ...result, authFailure: why }, response, request };
      }
      if (response !== undefined && status !== undefined && status >= 200 && status < 300 && authorization.length > 0) {
        const info = response.headers.get('authentication-info');
        if (info !== undefined) answerer?.acceptAuthenticationInfo?.(authView(request), info, response.body);
      }
      const flow = connectionId === undefined ? {} : { connectionId };
      return response === undefined ? { result, request, ...flow } : { result, response, request, ...flow };
    }
  }

  /** The servers for a request: the first Route's when a route set is pre-loaded (a loose router, §8.1.2), else the target's. */
  async locate(target: Uri, route: readonly string[] = [], transport?: SipTransportName): Promise<Destination[]> {
    const firstRoute = route[0];
    const hop = firstRoute === undefined ? target : parseNameAddr(firstRoute).uri;
    return locateDestinations(hop, {
      supportedTransports: ['udp', 'tcp', 'tls'],
      ...(transport === undefined ? {} : { preferred: transport }),
      ...(this.options.resolver === undefined ? {} : { resolver: this.options.resolver }),
    });
  }

  private runClientTransaction(
    request: SipRequest,
    bytes: Buffer,
    destination: Destination,
  ): Promise<{ result: SendResult; response?: SipResponse; provisional: boolean; connectionId?: string }> {
    return new Promise((resolve) => {
      const key = clientTransactionKey(request);
      let provisional = false;
      let connectionId: string | undefined;
      const settle = (status: number, reason: string, outcome: SendResult['outcome'], response?: SipResponse): void => {
        const retryAfter = response === undefined ? undefined : parseRetryAfter(response.headers.get('retry-after'));
        const result: SendResult = {
          outcome,
          status,
          reason,
          callId: request.callId,
          transport: destination.transport,
          ...(retryAfter === undefined ? {} : { retryAfter }),
        };
        const base = connectionId === undefined ? { result, provisional } : { result, provisional, connectionId };
        resolve(response === undefined ? base : { ...base, response });
      };
      const transaction = new NonInviteClientTransaction<SipRequest, SipResponse>(request, {
        reliable: destination.transport !== 'udp',
        timers: this.timers,
      });
      const driver: ClientDriver = new TransactionDriver(transaction, this.clock, (event: ClientEvent<SipRequest, SipResponse>) => {
        switch (event.type) {
          case 'send':
            this.sendBytes(bytes, destination).then(
              (id) => {
                connectionId = id;
              },
              (error: unknown) => {
                this.options.onDiagnostic?.(`send to ${destination.address}:${destination.port} failed: ${describe(error)}`);
                driver.feed((tx, now) => tx.transportError(now));
              },
            );
            break;
          case 'provisional':
            provisional = true;
            break;
          case 'final':
            settle(event.response.status, event.response.reason, outcomeOfStatus(event.response.status), event.response);
            break;
          case 'timeout':
            settle(408, 'Request Timeout (no response)', 'timeout');
            break;
          case 'transport-error':
            settle(503, 'Service Unavailable (transport error)', 'transport-error');
            break;
          case 'terminated':
            this.clients.delete(key);
            driver.dispose();
            break;
        }
      });
      this.clients.set(key, driver);
      driver.feed((tx, now) => tx.start(now));
    });
  }

  /** Our Via sent-by for a destination: the listening address of that transport and family. */
  private sentByFor(destination: Destination): SentBy {
    const specs = this.transport.localAddresses();
    const family = (host: string): 4 | 6 => (host.includes(':') ? 6 : 4);
    const match =
      specs.find((s) => s.transport === destination.transport && family(s.host) === destination.family) ??
      specs.find((s) => family(s.host) === destination.family) ??
      specs[0];
    if (match === undefined) throw new Error('the user agent has no listening socket');
    const host = isUnspecified(match.host) ? (destination.family === 6 ? '::1' : '127.0.0.1') : match.host;
    return { transport: destination.transport, host: host.includes(':') ? `[${host}]` : host, port: match.port };
  }

  private async sendBytes(data: Buffer, destination: Destination, connectionId?: string): Promise<string | undefined> {
    const transport = destination.transport;
    this.options.onTrace?.({ direction: 'out', transport, remote: { address: destination.address, port: destination.port }, data });
    const sent = await this.transport.send(data, {
      transport,
      address: destination.address,
      port: destination.port,
      // RFC 5922: a TLS server is checked against the domain the request was addressed to.
      ...(transport === 'tls' ? { serverName: destination.host } : {}),
      ...(connectionId === undefined ? {} : { connectionId }),
    });
    return sent.connectionId;
  }

  /**
   * Keeps a client flow (the connection a REGISTER went over) alive with RFC 5626 §4.4.1 CRLF
   * pings, and calls `onLost` once if it fails or closes: the registration must then be
   * renewed over a new flow (RFC 5626 §4.5). Returns false when the connection is already gone.
   */
  keepFlowAlive(connectionId: string, intervalMs: number, onLost: () => void): boolean {
    if (!this.transport.startKeepalive(connectionId, { intervalMs })) return false;
    const listener = (event: { connection: { connectionId: string } }): void => {
      if (event.connection.connectionId !== connectionId) return;
      this.transport.off('flow-failed', listener);
      if (!this.closed) onLost();
    };
    this.transport.on('flow-failed', listener);
    return true;
  }

  // ---- Incoming bytes ------------------------------------------------------------------

  private receive(inbound: InboundMessage): void {
    if (this.closed) return;
    this.options.onTrace?.({ direction: 'in', transport: inbound.transport, remote: inbound.remote, data: inbound.data });
    let message: SipMessage;
    try {
      message = parseMessage(inbound.data, inbound.transport === 'udp' ? DATAGRAM_FRAMING : STREAM_FRAMING);
    } catch (error) {
      if (!(error instanceof ParseError)) throw error;
      this.options.onDiagnostic?.(`unparseable message from ${inbound.remote.address}:${inbound.remote.port}: ${error.message}`);
      // A request we could read far enough still deserves its 400 (§8.2, RFC 3261 §18.3).
      if (error.partial?.kind === 'request') this.rejectMalformed(error.partial, inbound, error);
      return;
    }
    if (message.kind === 'response') this.receiveResponse(message);
    else this.receiveRequest(message, inbound);
  }

  private receiveResponse(response: SipResponse): void {
    const verdict = judgeResponse(response);
    if (verdict.action === 'ignore') {
      this.options.onDiagnostic?.(`dropped ${verdict.why}`);
      return;
    }
    const key = clientTransactionKey(response);
    const driver = this.clients.get(key);
    if (driver === undefined) {
      this.options.onDiagnostic?.(`dropped a stray ${response.status} response (no matching transaction)`);
      return;
    }
    driver.feed((tx, now) => tx.receiveResponse(response.status, response, now));
  }

  // ---- UAS -----------------------------------------------------------------------------

  private receiveRequest(request: SipRequest, inbound: InboundMessage): void {
    let key: string;
    try {
      stampReceived(request, inbound);
      key = serverTransactionKey(request);
    } catch (error) {
      if (!(error instanceof ParseError)) throw error;
      this.rejectMalformed(request, inbound, error);
      return;
    }
    if (this.servers.absorbRetransmission(key)) return;
    if (request.method === 'ACK') return; // never answered (§17.1.1.3); no INVITE transactions here
    if (this.rateLimiter !== undefined) {
      const decision = this.rateLimiter.take(inbound.remote.address, this.clock.now());
      if (!decision.allowed) {
        this.rejectOverload(request, inbound, decision.retryAfterSeconds);
        return;
      }
    }

    // §8.2.2.2: the same request reaching us twice by different paths (a fork) gets 482.
    // Nothing the transaction keeps refers to `request` or `inbound` (see server-transactions.ts).
    const transaction = this.servers.create(key, mergeIdentity(request), inbound.transport, inbound.remote.address, responsePort(request, inbound), inbound.connectionId);
    if (!transaction.ownsIdentity) {
      this.respondIn(transaction, request, 482);
      return;
    }

    const verdict = judgeRequest(request, this.policy);
    if (verdict.action === 'ignore') {
      this.options.onDiagnostic?.(`ignored ${request.method}: ${verdict.why}`);
      return;
    }
    if (verdict.action === 'respond') {
      this.respondIn(transaction, request, verdict.status, { headers: verdict.headers, ...(verdict.reason === undefined ? {} : { reason: verdict.reason }) });
      return;
    }
    if (request.method === 'OPTIONS') {
      const handler = this.optionsHandler;
      if (handler === undefined) {
        this.respondIn(transaction, request, 200, { headers: this.capabilityHeaders() });
        return;
      }
      void Promise.resolve()
        .then(() => handler(request))
        .then(
          (answer) => this.respondIn(transaction, request, 200, optionsResponse(this.capabilityHeaders(), answer)),
          (error: unknown) => {
            this.options.onDiagnostic?.(`options handler failed: ${describe(error)}`);
            this.respondIn(transaction, request, 200, { headers: this.capabilityHeaders() });
          },
        );
      return;
    }
    this.deliver(transaction, request, inbound);
  }

  /**
   * Hands a MESSAGE to the application's handler and answers with its decision: at once when
   * the handler decides synchronously, else when its promise settles (after it stored the
   * message, say: write before acknowledge). A handler that throws or rejects gets a 500.
   * Plain callbacks rather than an async function: one promise fewer per message.
   */
  private deliver(transaction: ServerTransaction, request: SipRequest, inbound: InboundMessage): void {
    let decision: ReturnType<MessageHandler>;
    try {
      decision = this.callMessageHandler(request, inbound);
    } catch (error) {
      this.handlerFailed(transaction, request, error);
      return;
    }
    if (decision !== undefined && 'then' in decision) {
      decision.then(
        (settled) => this.answerDecision(transaction, request, settled),
        (error: unknown) => this.handlerFailed(transaction, request, error),
      );
    } else {
      this.answerDecision(transaction, request, decision);
    }
  }

  private answerDecision(transaction: ServerTransaction, request: SipRequest, decision: MessageDecision | void): void {
    if (decision === undefined) {
      this.respondIn(transaction, request, 200);
      return;
    }
    const options: ResponseOptions = {};
    if (decision.reason !== undefined) options.reason = decision.reason;
    if (decision.headers !== undefined) options.headers = decision.headers;
    if (decision.body !== undefined) options.body = decision.body;
    if (decision.contentType !== undefined) options.contentType = decision.contentType;
    this.respondIn(transaction, request, decision.status, options);
  }

  private handlerFailed(transaction: ServerTransaction, request: SipRequest, error: unknown): void {
    this.options.onDiagnostic?.(`message handler failed: ${describe(error)}`);
    this.respondIn(transaction, request, 500, { reason: 'Server Internal Error (message could not be stored)' });
  }

  /**
   * The TU's response to a server transaction's request, with our To tag (§8.2.6.2), kept as
   * the bytes the transaction resends (response-store.ts). A response with nothing of its own
   * is written straight from the request's rows (response-bytes.ts).
   */
  private respondIn(transaction: ServerTransaction, request: SipRequest, status: number, options: Readonly<ResponseOptions> = NO_RESPONSE_OPTIONS): void {
    const toTag = options.toTag ?? newTag();
    const response = isSimpleResponse(options)
      ? this.responseStore.keepText(simpleResponseText(request, status, toTag, options.reason))
      : this.responseStore.keep(serializeMessage(createResponse(request, status, { ...options, toTag })));
    this.servers.respond(transaction, status, response);
  }

  /** The handler's answer (or a promise of it); undefined, i.e. 200, without a handler. */
  private callMessageHandler(request: SipRequest, inbound: InboundMessage): ReturnType<MessageHandler> {
    const handler = this.messageHandler;
    if (handler === undefined) return undefined;
    const receivedAt = new Date();
    const date = parseDate(request.headers.getByKey('date'));
    const expires = request.headers.getByKey('expires');
    const expiresSeconds = expires !== undefined && /^\d{1,10}$/.test(expires) ? Number(expires) : undefined;
    const from = request.from;
    // Optional fields are added after the others rather than spread in: no object per absent field.
    const message: { -readonly [K in keyof IncomingMessage]: IncomingMessage[K] } = {
      from: lastFromUri.format(from),
      to: lastToUri.format(request.to),
      callId: request.callId,
      cseq: request.cseq.seq,
      fromTag: (from.params.get('tag') as string | null | undefined) ?? '',
      contentType: request.headers.getByKey('content-type') ?? '',
      body: request.body,
      transport: inbound.transport,
      remote: inbound.remote,
      receivedAt,
      request,
    };
    if (from.displayName !== undefined) message.fromDisplayName = from.displayName;
    if (date !== undefined) message.date = date;
    if (expiresSeconds !== undefined) message.expiresAt = new Date((date ?? receivedAt).getTime() + expiresSeconds * 1000);
    return handler(message);
  }

  /**
   * Sends a server transaction's response (first transmission or retransmission, §17.2.2) to
   * where §18.2.2 says; a failure terminates the transaction (§17.2.4). Over UDP it goes out
   * with no promise at all (TransportLayer.sendDatagramThen): every request a UAS answers
   * comes through here.
   */
  private sendServerResponse(route: ResponseRoute, response: Buffer): void {
    const { transport, address, port } = route;
    if (transport !== 'udp') {
      this.sendBytes(response, destinationOf(transport, address, port), route.connectionId).catch((error: unknown) => this.serverSendFailed(route, error));
      return;
    }
    this.options.onTrace?.({ direction: 'out', transport, remote: { address, port }, data: response });
    this.transport.sendDatagramThen(response, address, port, this.serverDatagramSent, route);
  }

  /** sendDatagramThen's outcome for a server transaction's response: one function for them all, no closure per response. */
  private readonly serverDatagramSent = (error: unknown, route: ResponseRoute): void => {
    if (error !== undefined) this.serverSendFailed(route, error);
  };

  private serverSendFailed(route: ResponseRoute, error: unknown): void {
    this.options.onDiagnostic?.(`response to ${route.address}:${route.port} failed: ${describe(error)}`);
    this.servers.transportError(route);
  }

  /** A 400 for a request whose headers are broken, if it can be addressed at all. */
  private rejectMalformed(request: SipRequest, inbound: InboundMessage, error: ParseError): void {
    if (request.method === 'ACK') return;
    try {
      stampReceived(request, inbound);
      const response = createResponse(request, 400, { toTag: newTag(), reason: `Bad Request (${error.message})` });
      const bytes = serializeMessage(response);
      this.sendBytes(bytes, responseTarget(request, inbound), inbound.connectionId).catch((sendError: unknown) => {
        this.options.onDiagnostic?.(`400 could not be sent: ${describe(sendError)}`);
      });
    } catch (unanswerable) {
      if (!(unanswerable instanceof ParseError)) throw unanswerable;
      this.options.onDiagnostic?.(`cannot answer a malformed request: ${unanswerable.message}`);
    }
  }

  /**
   * 503 with Retry-After to a source over its rate limit (RFC 3261 §21.5.4), sent statelessly:
   * a flood must not create a transaction per request. A retransmission gets another 503.
   */
  private rejectOverload(request: SipRequest, inbound: InboundMessage, retryAfterSeconds: number): void {
    const response = createResponse(request, 503, { toTag: newTag(), headers: [['Retry-After', String(retryAfterSeconds)]] });
    this.options.onDiagnostic?.(`rate limit: 503 to ${request.method} from ${inbound.remote.address}:${inbound.remote.port}`);
    this.sendBytes(serializeMessage(response), responseTarget(request, inbound), inbound.connectionId).catch((error: unknown) => {
      this.options.onDiagnostic?.(`503 could not be sent: ${describe(error)}`);
    });
  }

  /** Allow/Accept for OPTIONS (RFC 3261 §11.2) and 415s. */
  private capabilityHeaders(): Array<readonly [string, string]> {
    return [
      ['Allow', this.policy.allowedMethods.join(', ')],
      ['Accept', this.policy.acceptedTypes.join(', ')],
      ['Accept-Encoding', 'identity'],
      ['Accept-Language', 'en'],
      ['User-Agent', 'sipnote/0.1'],
    ];
  }
}

/** The same request as another method: an OPTIONS is a MESSAGE's headers with its own CSeq (§8.1.1.5). */
function withMethod(request: SipRequest, method: string, cseq: number): SipRequest {
  const headers = request.headers.clone();
  headers.replaceFirst('cseq', `${cseq} ${method}`);
  return new SipRequest(method, request.uri, headers, request.body);
}

/** The 200 to an OPTIONS: the capability headers, with the application's replacing those of the same name. */
function optionsResponse(capabilities: ReadonlyArray<readonly [string, string]>, answer: OptionsAnswer | undefined): Parameters<typeof createResponse>[2] {
  if (answer === undefined) return { headers: capabilities };
  const replaced = new Set((answer.headers ?? []).map(([name]) => name.toLowerCase()));
  return {
    headers: [...capabilities.filter(([name]) => !replaced.has(name.toLowerCase())), ...(answer.headers ?? [])],
    ...(answer.body === undefined ? {} : { body: answer.body }),
    ...(answer.contentType === undefined ? {} : { contentType: answer.contentType }),
  };
}

/**
 * §18.2.1 and RFC 3581 §4: note where the request really came from in its top Via, so the
 * response can go back there and so that proxies and logs see the truth.
 *
 * The top Via as the request parsed it (`topVia`, kept by the message) gets the parameters,
 * and the first Via row is rewritten to match, so nothing has to parse the row again: the
 * transaction key, the response's destination and the application all read the same Via.
 */
export function stampReceived(request: SipRequest, inbound: Pick<InboundMessage, 'remote'>): void {
  let top: Via;
  try {
    top = request.topVia; // parses every Via row
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    // A later Via is broken: the top one alone may still be good enough to answer 400 to.
    stampFirstViaOnly(request, inbound);
    return;
  }
  const first = request.headers.getByKey('via') ?? '';
  // Looked at before the stamp: the row must still be the text `top` was read from.
  const rportEnd = plainRportEnd(first, inbound.remote.address);
  if (!stampVia(top, inbound)) return;
  if (rportEnd >= 0) {
    // What formatVia(top) writes for this row: the row, with the port after `rport` and
    // `received` added last (see plainRportEnd).
    request.headers.replaceFirst('via', `${first.slice(0, rportEnd)}=${inbound.remote.port}${first.slice(rportEnd)};received=${inbound.remote.address}`);
    return;
  }
  const text = formatVia(top);
  // One via-parm in the row (the usual case) is the whole row; else it is the first of a list.
  request.headers.replaceFirst('via', first.includes(',') ? [text, ...splitHeaderList(first).slice(1)].join(', ') : text);
}

/**
 * The Via row of nearly every request that asks for `rport` (RFC 3581 §3), sipp's and most
 * UAs': `SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK…;rport` (or `;rport;branch=…`, or no
 * branch), with an IPv4 address or a lower-case host name, a port without leading zeros,
 * nothing else. Every row of this shape is one the Via parser reads the simple way
 * (header-values.ts USUAL_VIA): host, port and parameters as written, in order, none quoted.
 * So formatVia writes such a row back exactly as it came, and after `stampVia` (which fills
 * in `rport` where it stands and adds `received` last, a new parameter) it writes the same row
 * with `=port` after `rport` and `;received=address` at the end. Splicing that text costs a
 * fraction of formatting the Via again (test/unit/stamp-received.test.ts compares the two).
 */
const PLAIN_RPORT_VIA = (() => {
  const octet = '(?:25[0-5]|2[0-4][0-9]|[01][0-9][0-9]|[0-9][0-9]?)';
  const label = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?';
  const topLabel = '[a-z](?:[a-z0-9-]*[a-z0-9])?';
  const host = `(?:${octet}\\.${octet}\\.${octet}\\.${octet}|(?:${label}\\.)*${topLabel}\\.?)`;
  const branch = ";branch=[A-Za-z0-9.!%*_+`'~-]+";
  return new RegExp(`^SIP/2\\.0/(?:UDP|TCP|TLS) ${host}(?::[1-9][0-9]{0,4})?(?:${branch};rport|;rport${branch}|;rport)$`);
})();

/**
 * Where `=port` goes in a Via row of the PLAIN_RPORT_VIA shape (just after `;rport`), or -1
 * for any other row, and for a source address formatVia would write other than as it is
 * (an IPv6 address with a zone is quoted).
 */
function plainRportEnd(row: string, address: string): number {
  if (address.includes('%') || !PLAIN_RPORT_VIA.test(row)) return -1;
  return row.indexOf(';rport') + 6;
}

/** `stampReceived` for a request whose Vias do not all parse: the first row's first via-parm only. */
function stampFirstViaOnly(request: SipRequest, inbound: Pick<InboundMessage, 'remote'>): void {
  const first = request.headers.getByKey('via');
  if (first === undefined) throw new ParseError('missing-header', 'Via header missing', 'Via');
  const elements = splitHeaderList(first);
  const top = parseVia(elements[0] ?? '')[0];
  if (top === undefined) throw new ParseError('bad-header-value', 'empty Via', 'Via');
  if (!stampVia(top, inbound)) return;
  elements[0] = formatVia(top);
  request.headers.replaceFirst('via', elements.join(', '));
  request.invalidate();
}

/** Sets `received` and a requested `rport` on a Via; false when it needed neither. */
function stampVia(top: Via, inbound: Pick<InboundMessage, 'remote'>): boolean {
  const sentByHost = top.host.startsWith('[') ? top.host.slice(1, -1) : top.host;
  const address = inbound.remote.address;
  let changed = false;
  // Compared as they are first: the usual sent-by is the very address (no lower-casing needed).
  if (sentByHost !== address && sentByHost.toLowerCase() !== address.toLowerCase()) {
    top.params.set('received', address);
    changed = true;
  }
  if (top.params.get('rport') === null) {
    // Present without a value (RFC 3581 §3: the client asks for it); absent gives undefined.
    top.params.set('received', address);
    top.params.set('rport', String(inbound.remote.port));
    changed = true;
  }
  return changed;
}

/**
 * §18.2.2 and RFC 3581 §4: where a response to this request goes. Over a stream it goes back
 * on the request's own connection (the transport falls back to the source address and the
 * sent-by port when that connection is gone). Over UDP it goes to the source address (the
 * `received` we stamped) and to `rport` when the client asked for it, else the sent-by port.
 */
function responseTarget(request: SipRequest, inbound: InboundMessage): Destination {
  return destinationOf(inbound.transport, inbound.remote.address, responsePort(request, inbound));
}

/** The port of `responseTarget`. */
function responsePort(request: SipRequest, inbound: InboundMessage): number {
  const via = request.topVia;
  const rport = via.params.get('rport');
  const sentByPort = via.port ?? 5060;
  return inbound.transport === 'udp' && typeof rport === 'string' && /^\d+$/.test(rport) ? Number(rport) : sentByPort;
}

/** A numeric destination (an address we answer to, not one located by DNS). */
function destinationOf(transport: SipTransportName, address: string, port: number): Destination {
  return { transport, address, port, family: address.includes(':') ? 6 : 4, host: address, targetName: address, source: 'numeric' };
}

/** Kept as long as the server transaction, so joined into a flat string (see transaction-keys.ts). */
function mergeIdentity(request: SipRequest): string {
  return [request.from.params.get('tag') ?? '', request.callId, request.cseq.seq, request.method].join('\n');
}

/** How an attempt ended, in the terms of RFC 3263 §4.3. */
function attemptOutcome(result: SendResult, response: SipResponse | undefined, provisional: boolean): AttemptOutcome {
  if (result.outcome === 'transport-error') return { kind: 'transport-error' };
  if (result.outcome === 'timeout' || response === undefined) return { kind: 'timeout', gotResponse: provisional };
  return result.retryAfter === undefined
    ? { kind: 'response', status: response.status }
    : { kind: 'response', status: response.status, retryAfterSeconds: result.retryAfter };
}

function authView(request: SipRequest): AuthRequestView {
  return { method: request.method, uri: request.uri, body: request.body };
}

function isUnspecified(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** Retry-After: delta-seconds, maybe with a comment and parameters (§20.33). */
function parseRetryAfter(value: string | undefined): number | undefined {
  const match = value === undefined ? null : /^\s*(\d{1,10})/.exec(value);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/**
 * `formatUri(nameAddr.uri)` remembered for the URI's text: under load consecutive requests come
 * from the same sender to the same AoR, and the formatted URI is a function of that text alone,
 * so the URI is parsed and formatted only when the text changes.
 */
class LastFormattedUri {
  #text: string | undefined;
  #formatted = '';

  format(nameAddr: ParsedNameAddr): string {
    if (nameAddr.uriText !== this.#text) {
      this.#formatted = formatUri(nameAddr.uri); // throws ParseError for a bad URI, as before
      this.#text = nameAddr.uriText;
    }
    return this.#formatted;
  }
}

const lastFromUri = new LastFormattedUri();
const lastToUri = new LastFormattedUri();

/** The last Date header value parsed and its time: under load consecutive requests share it. */
let lastDate: { readonly value: string; readonly time: number } = { value: '', time: Number.NaN };

function parseDate(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  if (value !== lastDate.value) lastDate = { value, time: Date.parse(value) };
  return Number.isNaN(lastDate.time) ? undefined : new Date(lastDate.time);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
