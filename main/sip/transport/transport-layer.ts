/**
 * The SIP transport layer (RFC 3261 §18) over real sockets: UDP, TCP and TLS, IPv4 and IPv6.
 *
 * It moves bytes, nothing more. Inbound, it hands up each UDP datagram and each framed TCP
 * or TLS message with where it came from; outbound, it writes bytes to a target. It never
 * parses a SIP message: Via handling (§18.1.1 sent-by, §18.2.1 received/rport) belongs to the
 * layers above, which read `remote`/`local` on each message and pass them back in `send` targets.
 *
 * Sending (§18.1.1, §18.2.2):
 * - UDP goes out of a listening socket of the target's address family, so a reply sent to the
 *   request's source address and port (RFC 3581 §3, `rport`) arrives where we listen. A reply to
 *   a request is sent from the socket the request came in on when `local` is given (§18.2.2,
 *   RFC 3581 §4).
 * - TCP reuses a live connection: the one named by `connectionId` if it is still open (§18.2.2:
 *   a response goes back on the request's connection), else any connection to the same
 *   address and port, opened by either side (§18). Otherwise it connects, with a timeout.
 * - TLS works like TCP, with the rules of RFC 3261 §26 and RFC 5922 on top (see "TLS" below).
 * - Failures reject with a TransportError; the transaction layer reports them to the TU
 *   (§18.4, §8.1.3.1: treated as 503).
 *
 * TLS (RFC 3261 §26.2.1, §26.3.1; RFC 5922):
 * - Outbound connections verify the server's certificate chain against Node's bundled root
 *   CAs (`tls.rootCertificates`) plus the certificates the user trusts explicitly
 *   (`tls.trustedCertificates`, e.g. a self-signed server certificate), with TLS 1.2 at least.
 *   (An explicit CA list replaces Node's default store, so NODE_EXTRA_CA_CERTS is not used.)
 * - The certificate must then name the SIP domain the request was for: `serverName` in the
 *   send target, the ORIGINAL domain RFC 3263 started from, checked by the rules of RFC 5922
 *   (server-identity.ts: sip URI SANs, else DNS SANs, else CN; no wildcards). SNI carries that
 *   name when it is a name. Without a `serverName` the target address itself is checked (an
 *   iPAddress SAN). A failure closes the connection and rejects with 'tls-certificate' or
 *   'tls-identity'.
 * - Outbound TLS connections are reused per (address, port, serverName): a connection
 *   authenticated as one domain never carries a request meant for another.
 * - Inbound TLS connections (a `tls:` listener with `tls.certificate`/`tls.key`) ask for no
 *   client certificate. They carry responses back by `connectionId` like TCP, but are never
 *   picked for a request by address alone, since the peer was not authenticated.
 * - A reply whose TLS connection is gone is refused rather than sent over plain TCP.
 *
 * Keep-alive (RFC 5626 §4.4.1): `startKeepalive` pings a client flow with a double CRLF at a
 * randomised interval and emits 'flow-failed' when no pong comes back within 10 s (then closes
 * the connection), or when the connection closes under the flow. Time comes from an injectable
 * Clock. CRLF pings from peers are answered on every stream connection.
 *
 * Limits, so a peer cannot make us hold unbounded resources: total connections (at the cap,
 * the quietest inbound connection makes room for a new one, so idle ones cannot lock new
 * clients out), connections per source address, datagram size (at least the 65,535 bytes of
 * §18.1.1 by default), message head and message size on streams, time to complete a message
 * (and an inbound TLS handshake), and unsent bytes per connection.
 *
 * Nothing here throws from a socket callback: problems become 'transport-error' diagnostics
 * (and, for a connection, a close with a reason); the listener keeps serving everyone else.
 *
 * Not here: DNS (RFC 3263), client certificates (mutual TLS between servers, RFC 5922 §7.4),
 * and ICMP errors on UDP, which Node's unconnected dgram sockets do not report (§18.4).
 */
import { X509Certificate } from 'node:crypto';
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { systemClock } from '../transaction/clock.js';
import type { Clock } from '../transaction/clock.js';
import { addressFamily, canonicalIp, endpointKey, isLoopback, isUnspecified, isValidPort } from './address.js';
import type { AddressFamily, Endpoint } from './address.js';
import type { SipTransportName } from './choose-transport.js';
import { FlowKeepalive } from './flow-keepalive.js';
import { formatListenSpec } from './listen-spec.js';
import type { DatagramOrStream, ListenSpec } from './listen-spec.js';
import { canonicalServerName, checkSipServerIdentity } from './server-identity.js';
import { StreamConnection } from './stream-connection.js';
import type { ConnectionCloseReason, ConnectionInfo, StreamConnectionHandler, TlsSessionInfo } from './stream-connection.js';
import { DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_MESSAGE_BYTES } from './stream-framer.js';
import { TransportError } from './transport-error.js';

// The listen vocabulary travels with the layer that uses it.
export { parseListenSpec, parseListenSpec as parseListenSpecs, withTcpCompanions } from './listen-spec.js';
export type { DatagramOrStream, ListenSpec, ParseListenSpecOptions } from './listen-spec.js';
export type { ConnectionCloseReason, ConnectionInfo, TlsSessionInfo } from './stream-connection.js';

/** RFC 3261 §17.1.1.1: T1 = 500 ms; §18.1.1 keeps connections at least 64*T1 after last use. */
const T1_MS = 500;

/** Certificates for TLS (RFC 3261 §26.3.1). All PEM text. */
export interface TlsOptions {
  /** The certificate (chain, leaf first) that `tls:` listeners present. Needed for them. */
  certificate?: string;
  /** The private key of `certificate`. */
  key?: string;
  /**
   * Certificates trusted as roots in addition to Node's bundled CAs (`tls.rootCertificates`),
   * e.g. a self-signed server certificate the user accepted, or a private CA.
   */
  trustedCertificates?: readonly string[];
}

export interface TransportLayerOptions {
  /** Close a TCP/TLS connection after this long without traffic. Default 64*T1 = 32 s (§18.1.1). */
  idleTimeoutMs?: number;
  /** Give up an outbound connect (TCP, and the TLS handshake) after this long. Default 10 s. */
  connectTimeoutMs?: number;
  /**
   * Close a connection whose message (head and body) is not complete this long after its first
   * byte, or an inbound TLS connection whose handshake is not done this long after it was
   * accepted. Default 10 s.
   */
  headerTimeoutMs?: number;
  /**
   * All TCP/TLS connections, inbound and outbound (including connects and handshakes in
   * progress). Default 256. At the cap a new inbound connection closes the inbound one quiet
   * longest (at least 1 s) in its place, and is refused only if there is none.
   */
  maxConnections?: number;
  /** Inbound TCP/TLS connections from one remote IP address. Default 16. */
  maxConnectionsPerSource?: number;
  /** Larger datagrams are dropped on receipt and refused on send. Default 65,535 (§18.1.1). */
  maxDatagramBytes?: number;
  /** Longest message head on a stream. Default 16 KiB. */
  maxHeadBytes?: number;
  /** Longest message on a stream. Default 64 KiB. */
  maxMessageBytes?: number;
  /** Unsent bytes a connection may queue before send() refuses more. Default 1 MiB. */
  maxPendingWriteBytes?: number;
  /** Certificates for `tls:` listeners and for verifying TLS servers. */
  tls?: TlsOptions;
  /** Time for RFC 5626 keep-alives. Default the system clock. */
  clock?: Clock;
  /** Uniform random numbers in [0, 1) for the keep-alive interval. Default Math.random. */
  random?: () => number;
  /** Shorthand for a 'message' listener, attached before any socket is bound. */
  onMessage?: (message: InboundMessage) => void;
  /** Shorthand for a 'transport-error' listener, attached before any socket is bound. */
  onError?: (reason: string, diagnostic: TransportDiagnostic) => void;
}

/** The limits and timeouts of TransportLayerOptions, for the layers that only pass them through. */
export type TransportLimits = Pick<
  TransportLayerOptions,
  | 'idleTimeoutMs'
  | 'connectTimeoutMs'
  | 'headerTimeoutMs'
  | 'maxConnections'
  | 'maxConnectionsPerSource'
  | 'maxDatagramBytes'
  | 'maxHeadBytes'
  | 'maxMessageBytes'
  | 'maxPendingWriteBytes'
>;

/** Receive buffer asked for on every UDP socket (capped by the kernel's net.core.rmem_max). */
export const UDP_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

/** One received SIP message (TCP, TLS) or datagram (UDP), not yet parsed. */
export interface InboundMessage {
  data: Buffer;
  /** The SIP transport it came over: what its Via should say and what a reply goes back on. */
  transport: SipTransportName;
  /** Set when the message came over TLS (Via transport `TLS`, RFC 3261 §26). */
  tls?: TlsSessionInfo;
  /** The socket it arrived on (for UDP, the listening socket's bound address). */
  local: Endpoint;
  /** The packet source: what §18.2.1 `received` and RFC 3581 `rport` record. */
  remote: Endpoint;
  /** The TCP/TLS connection it came on; pass it back in `send` to answer on the same connection. */
  connectionId?: string;
}

export interface SendTarget {
  transport: SipTransportName;
  /** An IP literal; IPv6 with or without brackets. */
  address: string;
  port: number;
  /**
   * TLS: the name the server's certificate must carry (RFC 5922 §7.3): the ORIGINAL domain of
   * the request, the one RFC 3263 server location started from, not the SRV target or the
   * resolved host. Also sent as SNI when it is a name. Default: `address` (then an iPAddress
   * subjectAltName must match). Connections are reused per (address, port, serverName).
   */
  serverName?: string;
  /**
   * TCP/TLS: use this connection if it is still open (§18.2.2). A TLS connection also serves a
   * 'tcp' target (inbound TLS messages report 'tcp'); a TCP connection never serves 'tls'.
   */
  connectionId?: string;
  /** UDP: send from the listening socket bound here (e.g. the `local` of the request answered). */
  local?: Endpoint;
}

/** How a send went out. */
export interface SendResult {
  transport: SipTransportName;
  local: Endpoint;
  remote: Endpoint;
  connectionId?: string;
  /** Set when the bytes went over TLS. */
  tls?: TlsSessionInfo;
}

/** Where `connect` goes: an address and port, over TCP unless `transport` says 'tls'. */
export interface ConnectTarget extends Endpoint {
  transport?: 'tcp' | 'tls';
  /** TLS: the domain to authenticate, as in SendTarget. */
  serverName?: string;
}

/** A bound listener: its spec with the actual port filled in, and its address family. */
export interface LocalAddress extends ListenSpec {
  family: AddressFamily;
}

/** RFC 5626 §4.4.1 keep-alive of one flow (see `startKeepalive`). */
export interface KeepaliveOptions {
  /** Upper bound of the time between pings, in ms; each gap is drawn between 80% and 100% of it. */
  intervalMs: number;
  /** How long to wait for a pong before the flow has failed. Default 10 s (§4.4.1). */
  pongTimeoutMs?: number;
}

export type TransportDiagnosticKind =
  /** A TCP stream could not be framed; its connection is being closed. */
  | 'framing-error'
  /** A message (head or body) took longer than headerTimeoutMs; its connection is being closed. */
  | 'header-timeout'
  /** An inbound TLS handshake failed or took longer than headerTimeoutMs; the socket was closed. */
  | 'tls-handshake'
  /** An inbound connection was refused because of maxConnections / maxConnectionsPerSource. */
  | 'connection-refused'
  /** At maxConnections, the quietest inbound connection was closed to admit a new one. */
  | 'connection-evicted'
  /** A datagram over maxDatagramBytes was dropped. */
  | 'oversized-datagram'
  /** A socket or listening server reported an error. */
  | 'socket-error'
  /** A listener of this emitter threw; the transport went on. */
  | 'listener-error';

export interface TransportDiagnostic {
  kind: TransportDiagnosticKind;
  reason: string;
  transport?: SipTransportName;
  connectionId?: string;
  local?: Endpoint;
  remote?: Endpoint;
  cause?: unknown;
}

export interface ConnectionClosedEvent {
  connection: ConnectionInfo;
  reason: ConnectionCloseReason;
  detail?: string;
}

/** CRLF keep-alives (RFC 5626 §4.4.1). Pings on TCP/TLS are answered before this is emitted. */
export interface KeepaliveEvent {
  kind: 'ping' | 'pong';
  transport: SipTransportName;
  remote: Endpoint;
  connectionId?: string;
}

/**
 * A flow kept alive by `startKeepalive` failed (RFC 5626 §4.4.1): no pong within the pong
 * timeout ('no-pong'; the connection is then closed with reason 'keepalive-timeout'), or the
 * connection closed for any reason other than a local close ('connection-closed'; `detail`
 * is the close reason). The UA should register a new flow (§4.5).
 */
export interface FlowFailedEvent {
  connection: ConnectionInfo;
  reason: 'no-pong' | 'connection-closed';
  detail?: string;
}

export type TransportLayerEvents = {
  message: [InboundMessage];
  'transport-error': [TransportDiagnostic];
  'connection-open': [ConnectionInfo];
  'connection-close': [ConnectionClosedEvent];
  keepalive: [KeepaliveEvent];
  'flow-failed': [FlowFailedEvent];
};

interface UdpListener {
  socket: dgram.Socket;
  local: Endpoint;
  family: AddressFamily;
}

/** A TCP or TLS listening server. TLS is layered on each accepted socket (see onInboundConnection). */
interface StreamListener {
  server: net.Server;
  transport: 'tcp' | 'tls';
  local: Endpoint;
  family: AddressFamily;
}

/** A running keep-alive: its state machine and the cancel function of its armed timer. */
interface KeepaliveRun {
  machine: FlowKeepalive;
  cancelTimer: () => void;
}

type Limits = Required<Omit<TransportLayerOptions, 'onMessage' | 'onError' | 'tls' | 'clock' | 'random'>>;

/**
 * At the connection cap, an inbound connection whose peer has sent nothing for this long may be
 * closed to admit a new one (see evictQuietestInbound).
 */
const EVICTABLE_AFTER_MS = 1000;

/** How often to retry a shared ephemeral UDP+TCP port when TCP finds it taken. */
const SHARED_PORT_ATTEMPTS = 10;
const TLS_MIN_VERSION = 'TLSv1.2';

export class TransportLayer extends EventEmitter<TransportLayerEvents> {
  private readonly limits: Limits;
  private readonly tlsOptions: TlsOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly udp: UdpListener[] = [];
  /** udpSocketFor's choice per address family and loopback-ness; cleared when `udp` changes. */
  private readonly udpChoice = new Map<string, UdpListener>();
  /**
   * The last target address udpSocketFor chose a socket for, and the socket: a UAS answers the
   * same few peers again and again. Forgotten with `udpChoice`.
   */
  private lastUdpAddress: string | undefined;
  private lastUdpListener: UdpListener | undefined;
  private readonly streamListeners: StreamListener[] = [];
  /** Listeners in the order of the specs they came from, for localAddresses(). */
  private readonly bound: LocalAddress[] = [];
  private readonly connectionsById = new Map<string, StreamConnection>();
  /** The most recent open connection per reuse key (see `reuseKey`). */
  private readonly connectionsByKey = new Map<string, StreamConnection>();
  private readonly inboundPerSource = new Map<string, number>();
  private readonly pendingConnects = new Map<string, Promise<StreamConnection>>();
  /** Abort functions of connects in progress, called by close(). */
  private readonly dialAborts = new Set<(error: TransportError) => void>();
  /** Inbound TLS sockets still in their handshake; they hold a connection slot. */
  private readonly handshaking = new Set<tls.TLSSocket>();
  private readonly keepalives = new Map<string, KeepaliveRun>();
  /** For `tls:` listeners; made by listen() when there is one. */
  private serverContext: tls.SecureContext | undefined;
  /** For outbound TLS: the root CAs plus the trusted certificates; made when first needed. */
  private clientContext: tls.SecureContext | undefined;
  private nextConnectionNumber = 0;
  private closing: Promise<void> | undefined;

  private constructor(options: TransportLayerOptions) {
    super();
    this.limits = {
      idleTimeoutMs: options.idleTimeoutMs ?? 64 * T1_MS,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      headerTimeoutMs: options.headerTimeoutMs ?? 10_000,
      maxConnections: options.maxConnections ?? 256,
      maxConnectionsPerSource: options.maxConnectionsPerSource ?? 16,
      maxDatagramBytes: options.maxDatagramBytes ?? 65_535,
      maxHeadBytes: options.maxHeadBytes ?? DEFAULT_MAX_HEAD_BYTES,
      maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      maxPendingWriteBytes: options.maxPendingWriteBytes ?? 1024 * 1024,
    };
    this.tlsOptions = options.tls ?? {};
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    const { onMessage, onError } = options;
    if (onMessage) this.on('message', onMessage);
    if (onError) this.on('transport-error', (diagnostic) => onError(diagnostic.reason, diagnostic));
  }

  /**
   * Binds every spec and resolves once all listen. A UDP and a TCP spec with the same host and
   * port 0 share one ephemeral port (§18.2.1). IPv6 sockets are IPv6-only: list IPv4 addresses
   * explicitly. A `tls` spec needs `tls.certificate` and `tls.key`. Given trusted certificates
   * are loaded here too, so a bad one fails now rather than at the first send. On any failure
   * everything bound so far is closed and the promise rejects with
   * TransportError('listen-failed', 'invalid-address' or 'tls-config').
   */
  static async listen(specs: readonly ListenSpec[], options: TransportLayerOptions = {}): Promise<TransportLayer> {
    const layer = new TransportLayer(options);
    try {
      if (options.tls?.trustedCertificates !== undefined) layer.clientSecureContext();
      await layer.bindAll(specs);
    } catch (error) {
      await layer.close();
      throw error;
    }
    return layer;
  }

  /** Every bound listener with its actual port (useful with port 0), in spec order. */
  localAddresses(): LocalAddress[] {
    return this.bound.map((entry) => ({ ...entry }));
  }

  /** Open TCP and TLS connections. */
  connections(): ConnectionInfo[] {
    return [...this.connectionsById.values()].map((connection) => connection.info);
  }

  /**
   * Sends `data` as one datagram or as bytes on a stream. The bytes must already be a complete
   * SIP message (with Content-Length on TCP/TLS, §18.3). Rejects with a TransportError.
   */
  async send(data: Uint8Array, target: SendTarget): Promise<SendResult> {
    if (this.closing) throw new TransportError('closed', 'transport layer is closed');
    if (target.transport === 'udp') return this.sendDatagram(data, target);
    const connection = await this.streamFor(target);
    await connection.write(data);
    const { transport, local, remote, connectionId, tls: session } = connection.info;
    return { transport, local, remote, connectionId, ...(session ? { tls: session } : {}) };
  }

  /**
   * Returns an open TCP or TLS connection to `target`, connecting if there is none. Lets a
   * caller learn the local port before writing the Via/Contact of a flow (RFC 5626), and pin it.
   */
  async connect(target: ConnectTarget): Promise<ConnectionInfo> {
    if (this.closing) throw new TransportError('closed', 'transport layer is closed');
    const { transport = 'tcp', address, port, serverName } = target;
    return (await this.streamFor({ transport, address, port, ...(serverName !== undefined ? { serverName } : {}) })).info;
  }

  /** Changes one connection's idle timeout (0 = never idle-close). False if it is not open. */
  setIdleTimeout(connectionId: string, ms: number): boolean {
    const connection = this.connectionsById.get(connectionId);
    if (!connection?.isOpen) return false;
    connection.setIdleTimeout(ms);
    return true;
  }

  /**
   * Keeps a client flow alive with RFC 5626 §4.4.1 CRLF pings: a double CRLF every 80-100% of
   * `intervalMs` (drawn anew each time), at most one unanswered. If a pong does not come within
   * `pongTimeoutMs` (10 s), or the connection closes other than locally, 'flow-failed' is
   * emitted; after a missing pong the connection is also closed ('keepalive-timeout').
   *
   * The flow is meant to stay up, so its idle timeout is switched off while this runs.
   * Calling it again restarts the keep-alive with the new options. Meant for connections we
   * opened as a client: in RFC 5626 the client pings and the server answers. Returns false if
   * there is no such open connection. Throws RangeError for a non-positive interval or timeout.
   */
  startKeepalive(connectionId: string, options: KeepaliveOptions): boolean {
    const connection = this.connectionsById.get(connectionId);
    if (!connection?.isOpen) return false;
    const machine = new FlowKeepalive({ ...options, random: this.random }, this.clock.now());
    this.stopKeepalive(connectionId);
    const run: KeepaliveRun = { machine, cancelTimer: () => {} };
    this.keepalives.set(connectionId, run);
    connection.setIdleTimeout(0);
    this.armKeepalive(connection, run);
    return true;
  }

  /** Stops the keep-alive of a connection and restores its idle timeout. False if none ran. */
  stopKeepalive(connectionId: string): boolean {
    const run = this.keepalives.get(connectionId);
    if (!run) return false;
    this.keepalives.delete(connectionId);
    run.cancelTimer();
    run.machine.stop();
    const connection = this.connectionsById.get(connectionId);
    if (connection?.isOpen) connection.setIdleTimeout(this.limits.idleTimeoutMs);
    return true;
  }

  /** Closes one connection; resolves when it is closed. False if there was no such connection. */
  async closeConnection(connectionId: string): Promise<boolean> {
    const connection = this.connectionsById.get(connectionId);
    if (!connection) return false;
    await connection.close('local');
    return true;
  }

  /** Closes every socket, server and connection; rejects connects in progress. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    for (const abort of [...this.dialAborts]) abort(new TransportError('closed', 'transport layer closed'));
    for (const run of this.keepalives.values()) run.cancelTimer();
    this.keepalives.clear();
    for (const socket of this.handshaking) socket.destroy();
    const waits: Promise<unknown>[] = [];
    for (const connection of this.connectionsById.values()) waits.push(connection.close('local'));
    for (const { server } of this.streamListeners) waits.push(new Promise<void>((resolve) => server.close(() => resolve())));
    for (const { socket } of this.udp) waits.push(new Promise<void>((resolve) => socket.close(() => resolve())));
    await Promise.all(waits);
  }

  // ---------------------------------------------------------------- listening

  private async bindAll(specs: readonly ListenSpec[]): Promise<void> {
    const normalized = specs.map((spec) => {
      const host = canonicalIp(spec.host);
      const knownTransport = spec.transport === 'udp' || spec.transport === 'tcp' || spec.transport === 'tls';
      if (host === undefined || !isValidPort(spec.port, true) || !knownTransport) {
        throw new TransportError('invalid-address', `cannot listen on ${formatListenSpec(spec)}: need an IP address and a port`);
      }
      return { ...spec, host };
    });
    if (normalized.some((spec) => spec.transport === 'tls')) this.serverContext = this.makeServerContext();
    // Only a UDP and a TCP spec pair up on a shared ephemeral port (§18.2.1); TLS stands alone.
    const pairs = (a: ListenSpec, b: ListenSpec): boolean =>
      a.port === 0 && b.port === 0 && a.host === b.host && a.transport !== b.transport && a.transport !== 'tls' && b.transport !== 'tls';
    const done = new Set<number>();
    /** The spec index of each entry of `bound`, so that it can be put in spec order at the end. */
    const specIndexOfBound: number[] = [];
    for (let i = 0; i < normalized.length; i++) {
      if (done.has(i)) continue;
      const spec = normalized[i]!;
      done.add(i);
      const partnerIndex = normalized.findIndex((other, j) => j > i && !done.has(j) && pairs(spec, other));
      if (partnerIndex === -1) {
        if (spec.transport === 'udp') await this.bindUdp(spec.host, spec.port);
        else await this.bindStream(spec.transport, spec.host, spec.port);
        specIndexOfBound.push(i);
        continue;
      }
      done.add(partnerIndex);
      await this.bindSharedEphemeral(spec.host); // binds UDP, then TCP
      specIndexOfBound.push(spec.transport === 'udp' ? i : partnerIndex, spec.transport === 'udp' ? partnerIndex : i);
    }
    const inSpecOrder = this.bound.map((entry, k) => ({ entry, at: specIndexOfBound[k]! })).sort((a, b) => a.at - b.at);
    this.bound.splice(0, this.bound.length, ...inSpecOrder.map(({ entry }) => entry));
  }

  private makeServerContext(): tls.SecureContext {
    const { certificate, key } = this.tlsOptions;
    if (certificate === undefined || key === undefined) {
      throw new TransportError('tls-config', 'a tls listener needs a certificate and a private key (options.tls.certificate, options.tls.key)');
    }
    try {
      return tls.createSecureContext({ cert: certificate, key, minVersion: TLS_MIN_VERSION });
    } catch (error) {
      throw new TransportError('tls-config', `cannot use the TLS certificate and key: ${errorText(error)}`, { cause: error });
    }
  }

  /** Root CAs + trusted certificates, TLS 1.2 at least (RFC 3261 §26.2.1: current suites). */
  private clientSecureContext(): tls.SecureContext {
    if (this.clientContext) return this.clientContext;
    try {
      // OpenSSL skips a CA it cannot parse without a word; a certificate the user trusts must load.
      for (const pem of this.tlsOptions.trustedCertificates ?? []) new X509Certificate(pem);
      this.clientContext = tls.createSecureContext({
        ca: [...tls.rootCertificates, ...(this.tlsOptions.trustedCertificates ?? [])],
        minVersion: TLS_MIN_VERSION,
      });
    } catch (error) {
      throw new TransportError('tls-config', `cannot use the trusted certificates: ${errorText(error)}`, { cause: error });
    }
    return this.clientContext;
  }

  /** UDP on an ephemeral port, then TCP on the same port; retried if TCP finds it taken. */
  private async bindSharedEphemeral(host: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const udp = await this.bindUdp(host, 0);
      try {
        await this.bindStream('tcp', host, udp.local.port);
        return;
      } catch (error) {
        const inUse = error instanceof TransportError && (error.cause as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
        if (!inUse || attempt >= SHARED_PORT_ATTEMPTS) throw error;
        this.udp.splice(this.udp.indexOf(udp), 1);
        this.forgetUdpChoices();
        this.bound.splice(this.bound.findIndex((b) => b.transport === 'udp' && b.port === udp.local.port && b.host === host), 1);
        await new Promise<void>((resolve) => udp.socket.close(() => resolve()));
      }
    }
  }

  private async bindUdp(host: string, port: number): Promise<UdpListener> {
    const family = addressFamily(host);
    // A 4 MiB receive buffer: with the kernel's 208 KiB default, bursts of a few thousand
    // datagrams per second overflow it and cost retransmissions (performance note §3).
    // The kernel caps it at net.core.rmem_max.
    const socket = dgram.createSocket({
      type: family === 'IPv6' ? 'udp6' : 'udp4',
      ipv6Only: family === 'IPv6',
      recvBufferSize: UDP_RECEIVE_BUFFER_BYTES,
      lookup: literalLookup,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind({ address: host, port, exclusive: true }, () => {
          socket.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      try {
        socket.close();
      } catch {
        // already closed by the failed bind; the bind error is the one worth reporting
      }
      throw listenFailed('udp', host, port, error);
    }
    const local = { address: host, port: socket.address().port };
    const listener: UdpListener = { socket, local, family };
    socket.on('message', (data, rinfo) => this.onDatagram(listener, data, rinfo));
    socket.on('error', (error) => {
      this.diagnose({ kind: 'socket-error', reason: `UDP socket ${endpointKey(host, local.port)}: ${error.message}`, transport: 'udp', local, cause: error });
    });
    this.udp.push(listener);
    this.forgetUdpChoices();
    this.bound.push({ transport: 'udp', host, port: local.port, family });
    return listener;
  }

  /**
   * A TCP server, for 'tcp' and for 'tls' alike: TLS is started on each accepted socket, after
   * the connection limits are checked, so a peer that never finishes its handshake still
   * counts against them.
   */
  private async bindStream(transport: 'tcp' | 'tls', host: string, port: number): Promise<StreamListener> {
    const family = addressFamily(host);
    const server = net.createServer({ noDelay: true });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port, ipv6Only: family === 'IPv6', exclusive: true }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      server.close();
      throw listenFailed(transport, host, port, error);
    }
    const address = server.address();
    const local = { address: host, port: typeof address === 'object' && address ? address.port : port };
    const listener: StreamListener = { server, transport, local, family };
    server.on('connection', (socket) => this.onInboundConnection(listener, socket));
    server.on('error', (error) => {
      const name = transport.toUpperCase();
      this.diagnose({ kind: 'socket-error', reason: `${name} listener ${endpointKey(host, local.port)}: ${error.message}`, transport, local, cause: error });
    });
    this.streamListeners.push(listener);
    this.bound.push({ transport, host, port: local.port, family });
    return listener;
  }

  // ---------------------------------------------------------------- UDP

  private onDatagram(listener: UdpListener, data: Buffer, rinfo: dgram.RemoteInfo): void {
    const remote = { address: canonicalIp(rinfo.address) ?? rinfo.address, port: rinfo.port };
    if (data.length > this.limits.maxDatagramBytes) {
      this.diagnose({
        kind: 'oversized-datagram',
        reason: `dropped a ${data.length}-byte datagram (limit ${this.limits.maxDatagramBytes})`,
        transport: 'udp',
        local: listener.local,
        remote,
      });
      return;
    }
    // CRLF-only datagrams are keep-alives some UAs send over UDP; they are not SIP messages.
    // Nothing answers them here (RFC 5626 §4.4.1 reserves CRLF keep-alives for streams).
    // (One that does not start with either cannot be one: nearly every datagram is decided by its first byte.)
    const first = data[0];
    if ((first === undefined || first === 0x0d || first === 0x0a) && data.every((b) => b === 0x0d || b === 0x0a)) {
      const lineEnds = data.reduce((count, b) => count + (b === 0x0a ? 1 : 0), 0);
      this.emitSafely('keepalive', { kind: lineEnds >= 2 ? 'ping' : 'pong', transport: 'udp', remote });
      return;
    }
    this.emitMessage({ data, transport: 'udp', local: listener.local, remote });
  }

  /**
   * Not `async`: one promise per datagram, settled by the send callback (every response comes
   * here). Its throws still reach callers as rejections: only the `async` send() calls it.
   */
  private sendDatagram(data: Uint8Array, target: SendTarget): Promise<SendResult> {
    const address = this.checkTarget(target);
    if (data.length > this.limits.maxDatagramBytes) {
      throw new TransportError('too-large', `${data.length}-byte datagram exceeds ${this.limits.maxDatagramBytes} bytes`);
    }
    const listener = this.udpSocketFor(address, target.local);
    return new Promise<SendResult>((resolve, reject) => {
      listener.socket.send(data, target.port, address, (error) => {
        if (!error) return resolve({ transport: 'udp', local: listener.local, remote: { address, port: target.port } });
        const code = (error as NodeJS.ErrnoException).code;
        reject(
          new TransportError(code === 'EMSGSIZE' ? 'too-large' : 'send-failed', `UDP send to ${endpointKey(address, target.port)} failed: ${error.message}`, {
            cause: error,
          }),
        );
      });
    });
  }

  /**
   * `send` of one datagram to `to`:`port` (an IP literal) from the socket `udpSocketFor` picks,
   * with the outcome passed to `done` (undefined once it went out, else
   * the TransportError `send` would reject with) rather than a promise: a UAS sends a response
   * per request, and three promises a response (the caller's, `send`'s and this one's) cost
   * more than the rest of the send. `done` is never called before this returns; it gets
   * `context` back, so that one function can serve every send (no closure per datagram).
   */
  sendDatagramThen<C>(data: Uint8Array, to: string, port: number, done: (error: TransportError | undefined, context: C) => void, context: C): void {
    let address: string;
    let listener: UdpListener;
    try {
      if (this.closing) throw new TransportError('closed', 'transport layer is closed');
      address = this.checkAddress(to, port);
      if (data.length > this.limits.maxDatagramBytes) {
        throw new TransportError('too-large', `${data.length}-byte datagram exceeds ${this.limits.maxDatagramBytes} bytes`);
      }
      listener = this.udpSocketFor(address, undefined);
    } catch (error) {
      if (!(error instanceof TransportError)) throw error;
      queueMicrotask(() => done(error, context));
      return;
    }
    listener.socket.send(data, port, address, (error) => {
      if (!error) return done(undefined, context);
      const code = (error as NodeJS.ErrnoException).code;
      done(new TransportError(code === 'EMSGSIZE' ? 'too-large' : 'send-failed', `UDP send to ${endpointKey(address, port)} failed: ${error.message}`, { cause: error }), context);
    });
  }

  /**
   * The UDP socket to send from: the one bound at `local` if asked for, else one of the target's
   * family - a loopback-bound socket only for loopback targets (the kernel cannot route from
   * 127.0.0.1 elsewhere), preferring a specific address over the wildcard.
   */
  private udpSocketFor(address: string, local: Endpoint | undefined): UdpListener {
    if (local === undefined && address === this.lastUdpAddress && this.lastUdpListener !== undefined) return this.lastUdpListener;
    const family = addressFamily(address);
    if (local) {
      const localIp = canonicalIp(local.address);
      const exact = this.udp.find((l) => l.local.port === local.port && l.local.address === localIp);
      if (exact) return exact;
      throw new TransportError('no-socket', `no UDP socket bound at ${localIp ? endpointKey(localIp, local.port) : local.address}`);
    }
    const toLoopback = isLoopback(address);
    // Every response goes through here: the choice depends only on these two, so it is kept.
    const choiceKey = toLoopback ? `${family} loopback` : family;
    const known = this.udpChoice.get(choiceKey);
    if (known !== undefined) {
      this.lastUdpAddress = address;
      this.lastUdpListener = known;
      return known;
    }
    const candidates = this.udp.filter((l) => l.family === family);
    const usable = candidates.filter((l) => toLoopback || !isLoopback(l.local.address));
    const chosen =
      usable.find((l) => !isUnspecified(l.local.address) && isLoopback(l.local.address) === toLoopback) ??
      usable.find((l) => isUnspecified(l.local.address)) ??
      usable[0];
    if (!chosen) throw new TransportError('no-socket', `no UDP socket can send to ${address} (${family})`);
    this.udpChoice.set(choiceKey, chosen);
    return chosen;
  }

  /** After a change to `udp`: udpSocketFor chooses again. */
  private forgetUdpChoices(): void {
    this.udpChoice.clear();
    this.lastUdpAddress = undefined;
    this.lastUdpListener = undefined;
  }

  // ---------------------------------------------------------------- TCP and TLS

  private checkTarget(target: Endpoint): string {
    return this.checkAddress(target.address, target.port);
  }

  /** The canonical form of a send target's address; TransportError unless it is an IP literal with a valid port. */
  private checkAddress(text: string, port: number): string {
    const address = canonicalIp(text);
    if (address === undefined || !isValidPort(port)) {
      throw new TransportError('invalid-address', `send target ${text}:${port} is not an IP address and port`);
    }
    return address;
  }

  private async streamFor(target: SendTarget): Promise<StreamConnection> {
    const transport = target.transport === 'tls' ? 'tls' : 'tcp';
    if (target.connectionId !== undefined) {
      const named = this.connectionsById.get(target.connectionId);
      // A TLS connection may carry a 'tcp' reply (inbound TLS messages say 'tcp'); never the
      // other way round, which would send in clear what was meant for TLS.
      if (named?.isOpen && (named.info.transport === transport || transport === 'tcp')) return named;
      // §18.2.2: if that connection is gone, fall back to the address and port - but not from a
      // TLS connection to plain TCP (RFC 3261 §26.2.2: no downgrade of a secured exchange).
      if (transport === 'tcp' && target.connectionId.startsWith('tls-')) {
        throw new TransportError('connection-closed', `TLS connection ${target.connectionId} is closed; not answering over plain TCP instead`);
      }
    }
    const address = this.checkTarget(target);
    let serverName: string | undefined;
    if (transport === 'tls') {
      serverName = canonicalServerName(target.serverName ?? address);
      if (serverName === undefined) {
        throw new TransportError('invalid-address', `TLS server name "${target.serverName}" is not a domain name or IP address`);
      }
    }
    const key = reuseKey(transport, address, target.port, serverName);
    const existing = this.connectionsByKey.get(key);
    if (existing?.isOpen) return existing;
    const pending = this.pendingConnects.get(key);
    if (pending) return pending;
    if (this.connectionSlotsInUse() >= this.limits.maxConnections) {
      throw new TransportError('limit', `cannot connect to ${endpointKey(address, target.port)}: ${this.limits.maxConnections} connections open`);
    }
    const dial = serverName === undefined ? this.dialTcp(address, target.port) : this.dialTls(address, target.port, serverName);
    this.pendingConnects.set(key, dial);
    try {
      return await dial;
    } finally {
      this.pendingConnects.delete(key);
    }
  }

  private connectionSlotsInUse(): number {
    return this.connectionsById.size + this.pendingConnects.size + this.handshaking.size;
  }

  private dialTcp(address: string, port: number): Promise<StreamConnection> {
    const where = endpointKey(address, port);
    const socket = net.connect({ host: address, port, family: addressFamily(address) === 'IPv6' ? 6 : 4, noDelay: true });
    return this.awaitConnected(socket, 'connect', `TCP connect to ${where}`, (error) => {
      return new TransportError('connect-failed', `TCP connect to ${where} failed: ${errorText(error)}`, { cause: error });
    }).then(() => this.adopt(socket, 'outbound', 'tcp'));
  }

  /**
   * TLS client (RFC 3261 §26.3.1): chain verified against the client context's CAs, then the
   * RFC 5922 identity of `serverName` in place of Node's HTTPS rules. SNI only for a name
   * (RFC 6066 §3 forbids IP literals there). Node closes the socket when either check fails.
   */
  private dialTls(address: string, port: number, serverName: string): Promise<StreamConnection> {
    const where = `${endpointKey(address, port)} (${serverName})`;
    let secureContext: tls.SecureContext;
    try {
      secureContext = this.clientSecureContext();
    } catch (error) {
      return Promise.reject(error);
    }
    const socket = tls.connect({
      host: address,
      port,
      secureContext,
      rejectUnauthorized: true,
      ...(canonicalIp(serverName) === undefined ? { servername: serverName } : {}),
      checkServerIdentity: (_host, certificate) => checkSipServerIdentity(serverName, certificate),
    });
    let tcpConnected = false;
    socket.once('connect', () => (tcpConnected = true));
    return this.awaitConnected(socket, 'secureConnect', `TLS connect to ${where}`, (error) => {
      if (error instanceof TransportError) return error; // from checkSipServerIdentity: 'tls-identity'
      if (socket.authorizationError) {
        return new TransportError('tls-certificate', `TLS server ${where} is not trusted: ${errorText(error)}`, { cause: error });
      }
      if (!tcpConnected) {
        return new TransportError('connect-failed', `TCP connect to ${where} failed: ${errorText(error)}`, { cause: error });
      }
      return new TransportError('tls-handshake', `TLS handshake with ${where} failed: ${errorText(error)}`, { cause: error });
    }).then(() => this.adopt(socket, 'outbound', 'tls', serverName));
  }

  /**
   * Resolves when `socket` emits `readyEvent`; rejects with `failure(error)` on an error, or
   * with 'timeout' after connectTimeoutMs, destroying the socket. close() aborts it too.
   */
  private awaitConnected(
    socket: net.Socket,
    readyEvent: 'connect' | 'secureConnect',
    what: string,
    failure: (error: NodeJS.ErrnoException) => TransportError,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.dialAborts.delete(abort);
        socket.off('error', onError);
        socket.off(readyEvent, onReady);
      };
      const abort = (error: TransportError): void => {
        finish();
        socket.on('error', () => {}); // a late error on a socket we are discarding is not news
        socket.destroy();
        reject(error);
      };
      const onError = (error: NodeJS.ErrnoException): void => abort(failure(error));
      const onReady = (): void => {
        finish();
        resolve();
      };
      const timer = setTimeout(() => {
        abort(new TransportError('timeout', `${what} timed out after ${this.limits.connectTimeoutMs} ms`));
      }, this.limits.connectTimeoutMs);
      this.dialAborts.add(abort);
      socket.once('error', onError);
      socket.once(readyEvent, onReady);
    });
  }

  private onInboundConnection(listener: StreamListener, socket: net.Socket): void {
    const remoteIp = canonicalIp(socket.remoteAddress ?? '');
    const refuse = (reason: string): void => {
      socket.on('error', () => {});
      socket.destroy();
      this.diagnose({
        kind: 'connection-refused',
        reason,
        transport: listener.transport,
        ...(remoteIp !== undefined && socket.remotePort !== undefined ? { remote: { address: remoteIp, port: socket.remotePort } } : {}),
      });
    };
    if (this.closing) return refuse('transport layer is closing');
    if (remoteIp === undefined) return refuse('inbound connection closed before it could be accepted');
    const fromSource = this.inboundPerSource.get(remoteIp) ?? 0;
    if (fromSource >= this.limits.maxConnectionsPerSource) {
      return refuse(`refused connection from ${remoteIp}: ${fromSource} connections from that address already`);
    }
    if (this.connectionSlotsInUse() >= this.limits.maxConnections && !this.evictQuietestInbound(remoteIp)) {
      return refuse(`refused connection from ${remoteIp}: ${this.limits.maxConnections} connections open`);
    }
    this.inboundPerSource.set(remoteIp, fromSource + 1);
    if (listener.transport === 'tcp') {
      this.adopt(socket, 'inbound', 'tcp');
      return;
    }
    this.acceptTls(listener, socket, remoteIp);
  }

  /**
   * Runs the server side of a TLS handshake on an accepted socket, within headerTimeoutMs.
   * No client certificate is requested: a UA's peers are authenticated by digest, or not at all.
   */
  private acceptTls(listener: StreamListener, raw: net.Socket, remoteIp: string): void {
    const remote = { address: remoteIp, port: raw.remotePort ?? 0 };
    const from = endpointKey(remote.address, remote.port);
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.serverContext!, requestCert: false });
    this.handshaking.add(secure);
    // Named handlers, removed one by one: the TLSSocket has listeners of its own on these events.
    const onError = (error: NodeJS.ErrnoException): void => fail(`TLS handshake from ${from} failed: ${errorText(error)}`, error);
    const onClose = (): void => fail(`TLS handshake from ${from} cut off: the peer closed`);
    const settle = (): void => {
      clearTimeout(timer);
      this.handshaking.delete(secure);
      secure.off('error', onError);
      secure.off('close', onClose);
      secure.off('secure', onSecure);
    };
    const fail = (reason: string, cause?: unknown): void => {
      settle();
      this.releaseInboundSlot(remoteIp);
      secure.on('error', () => {}); // late errors of a socket being dropped are not news
      secure.destroy();
      this.diagnose({ kind: 'tls-handshake', reason, transport: 'tls', local: listener.local, remote, ...(cause !== undefined ? { cause } : {}) });
    };
    // 'secure': the server-side handshake is complete (what tls.Server turns into 'secureConnection').
    const onSecure = (): void => {
      settle();
      if (this.closing) {
        this.releaseInboundSlot(remoteIp);
        secure.on('error', () => {});
        secure.destroy();
        return;
      }
      this.adopt(secure, 'inbound', 'tls');
    };
    const timer = setTimeout(() => fail(`TLS handshake from ${from} not done within ${this.limits.headerTimeoutMs} ms`), this.limits.headerTimeoutMs);
    timer.unref();
    secure.on('error', onError);
    secure.on('close', onClose);
    secure.on('secure', onSecure);
  }

  /**
   * At the connection cap, makes room for a new inbound connection by closing the inbound one
   * whose peer has been quiet longest, if that is at least EVICTABLE_AFTER_MS. Without this,
   * connections that are merely held open (cheap for a peer: 16 per address, from a handful of
   * addresses) would lock every new TCP client out until the idle timeout, and for good if
   * they send a CRLF now and then. The floor keeps a burst of new connections from pushing
   * out the ones in use. False, and nothing closed, when no connection qualifies.
   */
  private evictQuietestInbound(newcomer: string): boolean {
    const now = performance.now();
    let quietest: StreamConnection | undefined;
    let longest = EVICTABLE_AFTER_MS;
    for (const connection of this.connectionsById.values()) {
      if (connection.info.direction !== 'inbound' || !connection.isOpen) continue;
      const quiet = connection.quietFor(now);
      if (quiet >= longest) {
        quietest = connection;
        longest = quiet;
      }
    }
    if (quietest === undefined) return false;
    const { transport, local, remote, connectionId } = quietest.info;
    const reason = `closed the connection from ${endpointKey(remote.address, remote.port)}, quiet for ${Math.round(longest)} ms, to admit one from ${newcomer}: ${this.limits.maxConnections} connections open`;
    this.diagnose({ kind: 'connection-evicted', reason, transport, connectionId, local, remote });
    void quietest.close('evicted', reason);
    return true;
  }

  private releaseInboundSlot(remoteIp: string): void {
    const left = (this.inboundPerSource.get(remoteIp) ?? 1) - 1;
    if (left > 0) this.inboundPerSource.set(remoteIp, left);
    else this.inboundPerSource.delete(remoteIp);
  }

  /** Wraps a connected (and, for TLS, handshaken) socket and books it; every connection comes through here. */
  private adopt(socket: net.Socket, direction: 'inbound' | 'outbound', transport: 'tcp' | 'tls', serverName?: string): StreamConnection {
    const info: ConnectionInfo = {
      connectionId: `${transport}-${++this.nextConnectionNumber}`,
      transport,
      direction,
      local: { address: canonicalIp(socket.localAddress ?? '') ?? '', port: socket.localPort ?? 0 },
      remote: { address: canonicalIp(socket.remoteAddress ?? '') ?? '', port: socket.remotePort ?? 0 },
    };
    if (socket instanceof tls.TLSSocket) {
      info.tls = { protocol: socket.getProtocol() ?? 'unknown', ...(serverName !== undefined ? { serverName } : {}) };
    }
    const connection = new StreamConnection(socket, info, this.limits, this.streamHandler);
    this.connectionsById.set(info.connectionId, connection);
    const key = reuseKeyOf(info);
    if (key !== undefined) this.connectionsByKey.set(key, connection);
    this.emitSafely('connection-open', info);
    return connection;
  }

  private readonly streamHandler: StreamConnectionHandler = {
    onMessage: (connection, data) => {
      const { local, remote, connectionId, tls: session } = connection.info;
      this.emitSafely('message', { data, transport: session ? 'tls' : 'tcp', ...(session ? { tls: session } : {}), local, remote, connectionId });
    },
    onKeepalive: (connection, kind) => {
      const { transport, remote, connectionId } = connection.info;
      if (kind === 'pong') this.onPong(connection);
      this.emitSafely('keepalive', { kind, transport, remote, connectionId });
    },
    onFramingError: (connection, code, reason) => {
      const { transport, local, remote, connectionId } = connection.info;
      this.diagnose({ kind: 'framing-error', reason: `${code}: ${reason}`, transport, connectionId, local, remote });
    },
    onClose: (connection, reason, detail) => {
      const { info } = connection;
      this.connectionsById.delete(info.connectionId);
      const key = reuseKeyOf(info);
      if (key !== undefined && this.connectionsByKey.get(key) === connection) this.connectionsByKey.delete(key);
      if (info.direction === 'inbound') this.releaseInboundSlot(info.remote.address);
      if (reason === 'header-timeout' || reason === 'socket-error') {
        this.diagnose({
          kind: reason,
          reason: detail ?? reason,
          transport: info.transport,
          connectionId: info.connectionId,
          local: info.local,
          remote: info.remote,
        });
      }
      this.emitSafely('connection-close', { connection: info, reason, ...(detail !== undefined ? { detail } : {}) });
      const run = this.keepalives.get(info.connectionId);
      if (run) {
        this.keepalives.delete(info.connectionId);
        run.cancelTimer();
        run.machine.stop();
        // A local close is a decision, not a failure; a keep-alive timeout was reported already.
        if (reason !== 'local' && reason !== 'keepalive-timeout') {
          this.emitSafely('flow-failed', { connection: info, reason: 'connection-closed', detail: detail ?? reason });
        }
      }
    },
  };

  // ---------------------------------------------------------------- keep-alive (RFC 5626 §4.4.1)

  private armKeepalive(connection: StreamConnection, run: KeepaliveRun): void {
    run.cancelTimer();
    const at = run.machine.deadline;
    run.cancelTimer = at === undefined ? () => {} : this.clock.setTimer(at, () => this.onKeepaliveTimer(connection, run));
  }

  private onKeepaliveTimer(connection: StreamConnection, run: KeepaliveRun): void {
    const { connectionId } = connection.info;
    if (this.keepalives.get(connectionId) !== run) return; // stopped or restarted meanwhile
    const action = run.machine.onTimer(this.clock.now());
    if (action === 'flow-failed') {
      this.keepalives.delete(connectionId);
      this.emitSafely('flow-failed', { connection: connection.info, reason: 'no-pong' });
      void connection.close('keepalive-timeout', 'no pong to a keep-alive ping in time (RFC 5626 §4.4.1)');
      return;
    }
    if (action === 'send-ping') {
      // A write that fails means the connection is closing; its close reports the flow failure.
      connection.ping().catch(() => {});
    }
    this.armKeepalive(connection, run);
  }

  private onPong(connection: StreamConnection): void {
    const run = this.keepalives.get(connection.info.connectionId);
    if (!run) return;
    run.machine.onPong(this.clock.now());
    this.armKeepalive(connection, run);
  }

  // ---------------------------------------------------------------- events

  private diagnose(diagnostic: TransportDiagnostic): void {
    this.emit('transport-error', diagnostic);
  }

  /** `emitSafely('message', message)` without the argument lists: every datagram comes through here. */
  private emitMessage(message: InboundMessage): void {
    try {
      this.emit('message', message);
    } catch (error) {
      this.diagnose({ kind: 'listener-error', reason: `a 'message' listener threw: ${String(error)}`, cause: error });
    }
  }

  /**
   * Emits from a socket callback. A throwing listener would otherwise escape into the event
   * loop and end the process; it becomes a 'listener-error' diagnostic instead.
   */
  private emitSafely<K extends Exclude<keyof TransportLayerEvents, 'transport-error'>>(
    event: K,
    ...args: TransportLayerEvents[K]
  ): void {
    try {
      (this.emit as (event: K, ...args: TransportLayerEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      this.diagnose({ kind: 'listener-error', reason: `a '${event}' listener threw: ${String(error)}`, cause: error });
    }
  }
}

/**
 * The key under which a connection is found again for a target (§18: reuse per address, port
 * and transport). Outbound TLS adds the server name it was authenticated for. Inbound TLS
 * connections get no key: their peer is not authenticated, so only `connectionId` reaches them.
 */
function reuseKey(transport: 'tcp' | 'tls', address: string, port: number, serverName: string | undefined): string {
  return transport === 'tcp' ? `tcp ${endpointKey(address, port)}` : `tls ${endpointKey(address, port)} ${serverName ?? ''}`;
}

function reuseKeyOf(info: ConnectionInfo): string | undefined {
  if (info.transport === 'tcp') return reuseKey('tcp', info.remote.address, info.remote.port, undefined);
  const serverName = info.tls?.serverName;
  return info.direction === 'outbound' && serverName !== undefined ? reuseKey('tls', info.remote.address, info.remote.port, serverName) : undefined;
}

/**
 * dgram's name lookup, for sends whose target is an IP literal already (`checkTarget` makes
 * sure of that). The default, dns.lookup, answers a literal on the next tick; answering at once
 * lets the datagram go out within `send`, with no extra tick per datagram.
 */
function literalLookup(address: string, _options: unknown, callback: (error: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  callback(null, address, address.includes(':') ? 6 : 4);
}

function errorText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return code !== undefined && !message.includes(code) ? `${code} ${message}` : message;
}

function listenFailed(transport: SipTransportName, host: string, port: number, error: unknown): TransportError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? String(error);
  return new TransportError('listen-failed', `cannot listen on ${formatListenSpec({ transport, host, port })}: ${code}`, { cause: error });
}
