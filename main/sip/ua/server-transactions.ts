/**
 * The UAS's non-INVITE server transactions (RFC 3261 §17.2.2), filed under their matching key
 * (§17.2.3) and with the identity merged-request detection compares (§8.2.2.2), run on a Clock.
 *
 * Each is a NonInviteServerTransaction, which decides everything (absorbing retransmissions,
 * resending the final response in Completed, Timer J, §17.2.4 transport errors); this table
 * only applies inputs at `clock.now()` and carries out the events. It exists for its memory:
 * over UDP a completed transaction lives 64*T1 = 32 s (Timer J) to absorb retransmissions, so at
 * thousands of requests a second tens of thousands are alive, and every object one keeps is
 * copied by the young-generation GC and then marked by the old one (issue #5: GC was the
 * largest cost of a listener under load after the send itself). A transaction here is one
 * object (the machine itself, extended), its key and identity strings and its response bytes:
 * no driver, no closure and no timer of its own.
 *
 * One clock timer serves them all. The only timer a server transaction runs here is Timer J:
 * the UA gives it no `receivedAt`/`createTrying` (RFC 4320's 100 is for INVITE-less servers
 * that are slow to answer; a pager answers at once or after a local write), and J has the same
 * length for every transaction. So timers come due in the order they were started, and a FIFO
 * whose head is due first is a correct timer queue for them.
 *
 * The two lookups every request makes (its key, then its identity) go through
 * HashedStringIndex rather than string Maps: with a million live transactions a string Map's
 * cache misses were a tenth of the listener's time (hashed-string-index.ts).
 */
import type { Clock } from '../transaction/clock.js';
import { NonInviteServerTransaction, type ServerEvent } from '../transaction/non-invite-server.js';
import type { TimerConfig } from '../transaction/timer-config.js';
import { HashedStringIndex } from './hashed-string-index.js';
import type { SipTransportName } from './message-request.js';

/**
 * One live server transaction: the RFC 3261 §17.2.2 machine itself (extended rather than held,
 * one object fewer per transaction) and what the UA needs to send its responses, in fields of
 * its own rather than in a destination object.
 */
export class ServerTransaction extends NonInviteServerTransaction<string, Buffer> {
  /** In the timer FIFO (its timer running, or stopped and not yet reached). */
  queued = false;

  constructor(
    readonly key: string,
    /** The merged-request identity (§8.2.2.2); held in the table only while `ownsIdentity`. */
    readonly identity: string,
    readonly ownsIdentity: boolean,
    /** Where responses go (§18.2.2): the transport the request came over, an IP address, a port. */
    readonly transport: SipTransportName,
    readonly address: string,
    readonly port: number,
    /** The TCP/TLS connection the request came on. */
    readonly connectionId: string | undefined,
    /** `key` and `identity` hashed by the table's indexes, kept to remove it from them. */
    readonly keyHash: number,
    readonly identityHash: number,
    timers: TimerConfig,
  ) {
    // Timer J is 0 over reliable transports (§17.2.2): only UDP transactions stay after their final response.
    super(key, { reliable: transport !== 'udp', timers });
  }
}

/** Sends a transaction's response; a failure is reported back with `transportError`. */
export type SendResponse = (transaction: ServerTransaction, response: Buffer) => void;

/** How many FIFO slots may be spent before the array is compacted. */
const COMPACT_AFTER = 1024;

export class ServerTransactions {
  readonly #byKey = new HashedStringIndex<ServerTransaction>((transaction) => transaction.key);
  /** The transactions holding their identity (`ownsIdentity`), by identity. */
  readonly #byIdentity = new HashedStringIndex<ServerTransaction>((transaction) => transaction.identity);
  /** The last key looked up and its hash: `create` follows a `get` of the same key. */
  #lastKey: string | undefined;
  #lastKeyHash = 0;
  /** Transactions with a running timer, in the order their timers started (= due order). */
  #fifo: Array<ServerTransaction | undefined> = [];
  #head = 0;
  #cancelTimer: (() => void) | undefined;
  #closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly timers: TimerConfig,
    private readonly send: SendResponse,
  ) {}

  /** Live transactions. */
  get size(): number {
    return this.#byKey.size;
  }

  get(key: string): ServerTransaction | undefined {
    return this.#byKey.get(this.#hashKey(key), key);
  }

  /** The key of the live transaction holding this identity, if any. */
  holderOf(identity: string): string | undefined {
    return this.#byIdentity.get(this.#byIdentity.hash(identity), identity)?.key;
  }

  /**
   * A new transaction for a request (the caller checked `get(key)` found none). It holds
   * `identity` for merged-request detection unless another transaction does already.
   */
  create(key: string, identity: string, transport: SipTransportName, address: string, port: number, connectionId: string | undefined): ServerTransaction {
    const keyHash = this.#hashKey(key);
    const identityHash = this.#byIdentity.hash(identity);
    const owns = this.#byIdentity.get(identityHash, identity) === undefined;
    const transaction = new ServerTransaction(key, identity, owns, transport, address, port, connectionId, keyHash, identityHash, this.timers);
    this.#byKey.add(keyHash, transaction);
    if (owns) this.#byIdentity.add(identityHash, transaction);
    return transaction;
  }

  /** The TU's response (§17.2.2); ignored once the table is closed. */
  respond(transaction: ServerTransaction, status: number, response: Buffer): void {
    if (this.#closed) return;
    this.#apply(transaction, transaction.respond(status, response, this.clock.now()));
  }

  /** A retransmission of the transaction's request arrived. */
  retransmission(transaction: ServerTransaction): void {
    if (this.#closed) return;
    this.#apply(transaction, transaction.receiveRequestRetransmission(this.clock.now()));
  }

  /** Sending one of its responses failed (§17.2.4). */
  transportError(transaction: ServerTransaction): void {
    if (this.#closed) return;
    this.#apply(transaction, transaction.transportError(this.clock.now()));
  }

  /** Forgets every transaction and stops the timer; later input is ignored. */
  close(): void {
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#byKey.clear();
    this.#byIdentity.clear();
    this.#fifo = [];
    this.#head = 0;
  }

  #apply(transaction: ServerTransaction, events: readonly ServerEvent<Buffer>[]): void {
    for (const event of events) {
      if (event.type === 'send') this.send(transaction, event.response);
      else if (event.type === 'terminated') this.#forget(transaction);
    }
    if (!transaction.queued && transaction.pollTimeout() !== undefined) this.#enqueue(transaction);
  }

  /** A live transaction is the one filed under its key (`create` files one only where none is), so no lookup first. */
  #forget(transaction: ServerTransaction): void {
    this.#byKey.delete(transaction.keyHash, transaction);
    if (transaction.ownsIdentity) this.#byIdentity.delete(transaction.identityHash, transaction);
  }

  #hashKey(key: string): number {
    if (key !== this.#lastKey) {
      this.#lastKey = key;
      this.#lastKeyHash = this.#byKey.hash(key);
    }
    return this.#lastKeyHash;
  }

  #enqueue(transaction: ServerTransaction): void {
    transaction.queued = true;
    this.#fifo.push(transaction);
    if (this.#cancelTimer === undefined) this.#arm();
  }

  /** Arms the clock timer for the FIFO's head, if there is one (in place of any armed before). */
  #arm(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    const head = this.#fifo[this.#head];
    if (head === undefined) return;
    // A head whose timer stopped (terminated by a transport error) is dropped at the next run.
    this.#cancelTimer = this.clock.setTimer(head.pollTimeout() ?? this.clock.now(), () => this.#run());
  }

  #run(): void {
    this.#cancelTimer = undefined;
    if (this.#closed) return;
    const now = this.clock.now();
    const fifo = this.#fifo;
    while (this.#head < fifo.length) {
      const transaction = fifo[this.#head] as ServerTransaction;
      const at = transaction.pollTimeout();
      if (at !== undefined && at > now) break;
      fifo[this.#head++] = undefined;
      transaction.queued = false;
      if (at !== undefined) this.#apply(transaction, transaction.handleTimeout(now));
    }
    if (this.#head > COMPACT_AFTER && this.#head * 2 > this.#fifo.length) {
      this.#fifo = this.#fifo.slice(this.#head);
      this.#head = 0;
    }
    this.#arm();
  }
}
