/**
 * The UAS's non-INVITE server transactions (RFC 3261 §17.2.2), filed under their matching key
 * (§17.2.3) and with the identity merged-request detection compares (§8.2.2.2), run on a Clock.
 *
 * A transaction lives in one of two places:
 * - **In flight** (Trying or Proceeding: the TU has not answered yet), as a
 *   NonInviteServerTransaction, which decides everything (absorbing retransmissions, §17.2.4
 *   transport errors); this table only applies inputs at `clock.now()` and carries out the
 *   events. A pager answers at once or after a local write, so few are in flight at a time.
 * - **Completed over UDP** (final response sent, Timer J running for 64*T1 = 32 s), as a
 *   record in CompletedTransactions, which keeps them outside the JavaScript heap: at
 *   thousands of requests a second, tens of thousands to over a million are in Completed at
 *   once, and as objects they were the largest cost of a listener under load after the send
 *   itself (issue #5; completed-transactions.ts has the figures). A record does exactly what
 *   the machine does in Completed: a retransmitted request gets the final response again, a
 *   transport error or Timer J ends it.
 * Over a reliable transport Timer J is 0, so a transaction ends with its final response.
 *
 * One clock timer serves every Timer J. The UA gives its transactions no `receivedAt` or
 * `createTrying` (RFC 4320's 100 is for servers slow to answer; a pager is not), so in flight
 * they run no timer, and J has the same length for every transaction: the completed records
 * expire in the order they were filed, and the timer waits for the oldest.
 *
 * Keys and identities are looked up by a 30-bit HalfSipHash under one secret key per table
 * (half-siphash.ts): integer Map keys, and no chains a sender could build on purpose.
 */
import type { Clock } from '../transaction/clock.js';
import { NonInviteServerTransaction, type ServerEvent } from '../transaction/non-invite-server.js';
import { transactionLifetime, type TimerConfig } from '../transaction/timer-config.js';
import { CompletedTransactions } from './completed-transactions.js';
import { randomHalfSipHashKey, type HalfSipHashKey } from './half-siphash.js';
import { HashedStringIndex } from './hashed-string-index.js';
import type { SipTransportName } from './message-request.js';

/** Where a server transaction's responses go (§18.2.2), and the key that names the transaction. */
export interface ResponseRoute {
  readonly key: string;
  /** The transport the request came over. */
  readonly transport: SipTransportName;
  /** An IP address and a port. */
  readonly address: string;
  readonly port: number;
  /** The TCP/TLS connection the request came on. */
  readonly connectionId: string | undefined;
}

/**
 * One server transaction in flight: the RFC 3261 §17.2.2 machine itself (extended rather than
 * held, one object fewer per transaction) and what the UA needs to send its responses.
 */
export class ServerTransaction extends NonInviteServerTransaction<string, Buffer> implements ResponseRoute {
  constructor(
    readonly key: string,
    /** The merged-request identity (§8.2.2.2); held by the table only while `ownsIdentity`. */
    readonly identity: string,
    readonly ownsIdentity: boolean,
    readonly transport: SipTransportName,
    readonly address: string,
    readonly port: number,
    readonly connectionId: string | undefined,
    /** `key` and `identity` hashed by the table, kept to find it again. */
    readonly keyHash: number,
    readonly identityHash: number,
    timers: TimerConfig,
  ) {
    // Timer J is 0 over reliable transports (§17.2.2): only UDP transactions stay after their final response.
    super(key, { reliable: transport !== 'udp', timers });
  }
}

/** A completed transaction's route, made when a retransmission needs its response again. */
class CompletedRoute implements ResponseRoute {
  readonly connectionId = undefined;
  constructor(
    readonly key: string,
    readonly transport: SipTransportName,
    readonly address: string,
    readonly port: number,
  ) {}
}

/** Sends a transaction's response; a failure is reported back with `transportError(route)`. */
export type SendResponse = (route: ResponseRoute, response: Buffer) => void;

export class ServerTransactions {
  readonly #inFlight: HashedStringIndex<ServerTransaction>;
  /** The in-flight transactions holding their identity (`ownsIdentity`), by identity. */
  readonly #inFlightIdentities: HashedStringIndex<ServerTransaction>;
  readonly #completed = new CompletedTransactions();
  readonly #timerJ: number;
  /** The last key hashed and its hash: `create` follows an `absorbRetransmission` of the same key. */
  #lastKey: string | undefined;
  #lastKeyHash = 0;
  #cancelTimer: (() => void) | undefined;
  #closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly timers: TimerConfig,
    private readonly send: SendResponse,
    /** The HalfSipHash key; a random one by default. */
    hashKey?: HalfSipHashKey,
  ) {
    this.#timerJ = transactionLifetime(timers);
    const key = hashKey ?? randomHalfSipHashKey();
    // The in-flight indexes hash with the same key, so one hash serves both places.
    this.#inFlight = new HashedStringIndex((transaction) => transaction.key, key);
    this.#inFlightIdentities = new HashedStringIndex((transaction) => transaction.identity, key);
  }

  /** Live transactions: in flight and completed. */
  get size(): number {
    return this.#inFlight.size + this.#completed.size;
  }

  /**
   * A request arrived that may be a retransmission (§17.2.3): if a live transaction has its
   * key, that transaction takes it (§17.2.2: absorbed while in flight, answered with the final
   * response in Completed) and this returns true.
   */
  absorbRetransmission(key: string): boolean {
    if (this.#closed) return false;
    const hash = this.#hash(key);
    const inFlight = this.#inFlight.get(hash, key);
    if (inFlight !== undefined) {
      this.#apply(inFlight, inFlight.receiveRequestRetransmission(this.clock.now()));
      return true;
    }
    const resend = this.#completed.resend(key, hash);
    if (resend === undefined) return false;
    this.send(new CompletedRoute(key, resend.transport, resend.address, resend.port), resend.response);
    return true;
  }

  /** Whether a live transaction has this key. */
  has(key: string): boolean {
    const hash = this.#hash(key);
    return this.#inFlight.get(hash, key) !== undefined || this.#completed.has(key, hash);
  }

  /** Whether a live transaction holds this identity (§8.2.2.2). */
  holdsIdentity(identity: string): boolean {
    const hash = this.#hash(identity);
    return this.#inFlightIdentities.get(hash, identity) !== undefined || this.#completed.holdsIdentity(identity, hash);
  }

  /**
   * A new transaction for a request (the caller checked that none has its key). It holds
   * `identity` for merged-request detection unless another transaction does already.
   */
  create(key: string, identity: string, transport: SipTransportName, address: string, port: number, connectionId: string | undefined): ServerTransaction {
    const keyHash = this.#hash(key);
    const identityHash = this.#hashOnce(identity);
    const owns = this.#inFlightIdentities.get(identityHash, identity) === undefined && !this.#completed.holdsIdentity(identity, identityHash);
    const transaction = new ServerTransaction(key, identity, owns, transport, address, port, connectionId, keyHash, identityHash, this.timers);
    this.#inFlight.add(keyHash, transaction);
    if (owns) this.#inFlightIdentities.add(identityHash, transaction);
    return transaction;
  }

  /** The TU's response (§17.2.2); ignored once the table is closed. */
  respond(transaction: ServerTransaction, status: number, response: Buffer): void {
    if (this.#closed) return;
    const wasCompleted = isCompleted(transaction);
    this.#apply(transaction, transaction.respond(status, response, this.clock.now()));
    // A final response over UDP: from here a record does what the machine would in Completed.
    if (!wasCompleted && isCompleted(transaction)) this.#file(transaction, response);
  }

  /** Sending one of a transaction's responses failed (§17.2.4): it ends. */
  transportError(route: ResponseRoute): void {
    if (this.#closed) return;
    if (route instanceof ServerTransaction) {
      this.#apply(route, route.transportError(this.clock.now()));
    }
    // In flight or not, a completed record with its key ends too (the first final response's
    // send fails after the transaction was filed as completed).
    this.#completed.terminate(route.key, this.#hash(route.key));
  }

  /** Forgets every transaction and stops the timer; later input is ignored. */
  close(): void {
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#inFlight.clear();
    this.#inFlightIdentities.clear();
    this.#completed.clear();
  }

  #apply(transaction: ServerTransaction, events: readonly ServerEvent<Buffer>[]): void {
    for (const event of events) {
      if (event.type === 'send') this.send(transaction, event.response);
      else if (event.type === 'terminated') this.#forget(transaction);
    }
  }

  /** Moves a transaction that has just entered Completed from in flight to the completed records. */
  #file(transaction: ServerTransaction, response: Buffer): void {
    this.#forget(transaction);
    const identity = transaction.ownsIdentity ? transaction.identity : undefined;
    this.#completed.add(transaction.key, transaction.keyHash, identity, transaction.identityHash, transaction, response, this.clock.now() + this.#timerJ);
    if (this.#cancelTimer === undefined) this.#arm();
  }

  #forget(transaction: ServerTransaction): void {
    this.#inFlight.delete(transaction.keyHash, transaction);
    if (transaction.ownsIdentity) this.#inFlightIdentities.delete(transaction.identityHash, transaction);
  }

  #hash(text: string): number {
    if (text !== this.#lastKey) {
      this.#lastKey = text;
      this.#lastKeyHash = this.#inFlight.hash(text);
    }
    return this.#lastKeyHash;
  }

  /** Hashes without replacing the remembered key (an identity between a key's lookup and its `create`). */
  #hashOnce(text: string): number {
    return text === this.#lastKey ? this.#lastKeyHash : this.#inFlight.hash(text);
  }

  /** Arms the clock timer for the oldest completed record, if there is one. */
  #arm(): void {
    const due = this.#completed.nextExpiry;
    if (due === undefined) return;
    this.#cancelTimer = this.clock.setTimer(due, () => this.#run());
  }

  #run(): void {
    this.#cancelTimer = undefined;
    if (this.#closed) return;
    this.#completed.expire(this.clock.now());
    this.#arm();
  }
}

/** A function rather than an inline test, so TypeScript does not carry its narrowing across the machine's input. */
function isCompleted(transaction: ServerTransaction): boolean {
  return transaction.state === 'completed';
}
