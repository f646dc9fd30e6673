/**
 * The SIP transport layer (RFC 3261 §18) over real sockets: UDP and TCP, IPv4 and IPv6.
 *
 * It moves bytes, nothing more. Inbound, it hands up each UDP datagram and each framed TCP
 * message with where it came from; outbound, it writes bytes to a target. It never parses a
 * SIP message: Via handling (§18.1.1 sent-by, §18.2.1 received/rport) belongs to the layers
 * above, which read `remote`/`local` on each message and pass them back in `send` targets.
 *
 * Sending (§18.1.1, §18.2.2):
 * - UDP goes out of a listening socket of the target's address family, so a reply sent to the
 *   request's source address and port (RFC 3581 §3, `rport`) arrives where we listen. A reply to
 *   a request is sent from the socket the request came in on when `local` is given (§18.2.2,
 *   RFC 3581 §4).
 * - TCP reuses a live connection: the one named by `connectionId` if it is still open (§18.2.2:
 *   a response goes back on the request's connection), else any connection to the same
 *   address and port, opened by either side (§18). Otherwise it connects, with a timeout.
 * - Failures reject with a TransportError; the transaction layer reports them to the TU
 *   (§18.4, §8.1.3.1: treated as 503).
 *
 * Limits, so a peer cannot make us hold unbounded resources: total connections, connections
 * per source address, datagram size (at least the 65,535 bytes of §18.1.1 by default), message
 * head and message size on streams, time to complete a head, and unsent bytes per connection.
 *
 * Nothing here throws from a socket callback: problems become 'transport-error' diagnostics
 * (and, for a connection, a close with a reason); the listener keeps serving everyone else.
 *
 * Not here: TLS (its connection will be a StreamConnection over a TLSSocket), DNS (RFC 3263),
 * and ICMP errors on UDP, which Node's unconnected dgram sockets do not report (§18.4).
 */
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { addressFamily, canonicalIp, endpointKey, isLoopback, isUnspecified, isValidPort } from './address.js';
import type { AddressFamily, Endpoint } from './address.js';
import { formatListenSpec } from './listen-spec.js';
import type { DatagramOrStream, ListenSpec } from './listen-spec.js';
import { StreamConnection } from './stream-connection.js';
import type { ConnectionCloseReason, ConnectionInfo, StreamConnectionHandler } from './stream-connection.js';
import { DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_MESSAGE_BYTES } from './stream-framer.js';
import { TransportError } from './transport-error.js';

// The listen vocabulary travels with the layer that uses it.
export { parseListenSpec, parseListenSpec as parseListenSpecs, withTcpCompanions } from './listen-spec.js';
export type { DatagramOrStream, ListenSpec } from './listen-spec.js';
export type { ConnectionCloseReason, ConnectionInfo } from './stream-connection.js';

/** RFC 3261 §17.1.1.1: T1 = 500 ms; §18.1.1 keeps connections at least 64*T1 after last use. */
const T1_MS = 500;

export interface TransportLayerOptions {
  /** Close a TCP connection after this long without traffic. Default 64*T1 = 32 s (§18.1.1). */
  idleTimeoutMs?: number;
  /** Give up an outbound TCP connect after this long. Default 10 s. */
  connectTimeoutMs?: number;
  /** Close a connection whose message head is not complete this long after its first byte. Default 10 s. */
  headerTimeoutMs?: number;
  /** All TCP connections, inbound and outbound (including connects in progress). Default 256. */
  maxConnections?: number;
  /** Inbound TCP connections from one remote IP address. Default 16. */
  maxConnectionsPerSource?: number;
  /** Larger datagrams are dropped on receipt and refused on send. Default 65,535 (§18.1.1). */
  maxDatagramBytes?: number;
  /** Longest message head on a stream. Default 16 KiB. */
  maxHeadBytes?: number;
  /** Longest message on a stream. Default 64 KiB. */
  maxMessageBytes?: number;
  /** Unsent bytes a connection may queue before send() refuses more. Default 1 MiB. */
  maxPendingWriteBytes?: number;
  /** Shorthand for a 'message' listener, attached before any socket is bound. */
  onMessage?: (message: InboundMessage) => void;
  /** Shorthand for a 'transport-error' listener, attached before any socket is bound. */
  onError?: (reason: string, diagnostic: TransportDiagnostic) => void;
}

/** One received SIP message (TCP) or datagram (UDP), not yet parsed. */
export interface InboundMessage {
  data: Buffer;
  transport: DatagramOrStream;
  /** The socket it arrived on (for UDP, the listening socket's bound address). */
  local: Endpoint;
  /** The packet source: what §18.2.1 `received` and RFC 3581 `rport` record. */
  remote: Endpoint;
  /** The TCP connection it came on; pass it back in `send` to answer on the same connection. */
  connectionId?: string;
}

export interface SendTarget {
  transport: DatagramOrStream;
  /** An IP literal; IPv6 with or without brackets. */
  address: string;
  port: number;
  /** TCP: use this connection if it is still open (§18.2.2). */
  connectionId?: string;
  /** UDP: send from the listening socket bound here (e.g. the `local` of the request answered). */
  local?: Endpoint;
}

/** How a send went out. */
export interface SendResult {
  transport: DatagramOrStream;
  local: Endpoint;
  remote: Endpoint;
  connectionId?: string;
}

/** A bound listener: its spec with the actual port filled in, and its address family. */
export interface LocalAddress extends ListenSpec {
  family: AddressFamily;
}

export type TransportDiagnosticKind =
  /** A TCP stream could not be framed; its connection is being closed. */
  | 'framing-error'
  /** A message head took longer than headerTimeoutMs; its connection is being closed. */
  | 'header-timeout'
  /** An inbound connection was refused because of maxConnections / maxConnectionsPerSource. */
  | 'connection-refused'
  /** A datagram over maxDatagramBytes was dropped. */
  | 'oversized-datagram'
  /** A socket or listening server reported an error. */
  | 'socket-error'
  /** A listener of this emitter threw; the transport went on. */
  | 'listener-error';

export interface TransportDiagnostic {
  kind: TransportDiagnosticKind;
  reason: string;
  transport?: DatagramOrStream;
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

/** CRLF keep-alives (RFC 5626 §4.4.1). Pings on TCP are answered before this is emitted. */
export interface KeepaliveEvent {
  kind: 'ping' | 'pong';
  transport: DatagramOrStream;
  remote: Endpoint;
  connectionId?: string;
}

export type TransportLayerEvents = {
  message: [InboundMessage];
  'transport-error': [TransportDiagnostic];
  'connection-open': [ConnectionInfo];
  'connection-close': [ConnectionClosedEvent];
  keepalive: [KeepaliveEvent];
};

interface UdpListener {
  socket: dgram.Socket;
  local: Endpoint;
  family: AddressFamily;
}

interface TcpListener {
  server: net.Server;
  local: Endpoint;
  family: AddressFamily;
}

type Limits = Required<Omit<TransportLayerOptions, 'onMessage' | 'onError'>>;

/** How often to retry a shared ephemeral UDP+TCP port when TCP finds it taken. */
const SHARED_PORT_ATTEMPTS = 10;

export class TransportLayer extends EventEmitter<TransportLayerEvents> {
  private readonly limits: Limits;
  private readonly udp: UdpListener[] = [];
  private readonly tcp: TcpListener[] = [];
  /** Listeners in the order of the specs they came from, for localAddresses(). */
  private readonly bound: LocalAddress[] = [];
  private readonly connectionsById = new Map<string, StreamConnection>();
  /** The most recent open connection per remote "address:port". */
  private readonly connectionsByRemote = new Map<string, StreamConnection>();
  private readonly inboundPerSource = new Map<string, number>();
  private readonly pendingConnects = new Map<string, Promise<StreamConnection>>();
  /** Abort functions of connects in progress, called by close(). */
  private readonly dialAborts = new Set<(error: TransportError) => void>();
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
    const { onMessage, onError } = options;
    if (onMessage) this.on('message', onMessage);
    if (onError) this.on('transport-error', (diagnostic) => onError(diagnostic.reason, diagnostic));
  }

  /**
   * Binds every spec and resolves once all listen. A UDP and a TCP spec with the same host and
   * port 0 share one ephemeral port (§18.2.1). IPv6 sockets are IPv6-only: list IPv4 addresses
   * explicitly. On any failure everything bound so far is closed and the promise rejects with
   * TransportError('listen-failed' or 'invalid-address').
   */
  static async listen(specs: readonly ListenSpec[], options: TransportLayerOptions = {}): Promise<TransportLayer> {
    const layer = new TransportLayer(options);
    try {
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

  /** Open TCP connections. */
  connections(): ConnectionInfo[] {
    return [...this.connectionsById.values()].map((connection) => connection.info);
  }

  /**
   * Sends `data` as one datagram or as bytes on a stream. The bytes must already be a complete
   * SIP message (with Content-Length on TCP, §18.3). Rejects with a TransportError.
   */
  async send(data: Uint8Array, target: SendTarget): Promise<SendResult> {
    if (this.closing) throw new TransportError('closed', 'transport layer is closed');
    if (target.transport === 'udp') return this.sendDatagram(data, target);
    const connection = await this.streamFor(target);
    await connection.write(data);
    return {
      transport: 'tcp',
      local: connection.info.local,
      remote: connection.info.remote,
      connectionId: connection.info.connectionId,
    };
  }

  /**
   * Returns an open TCP connection to `target`, connecting if there is none. Lets a caller learn
   * the local port before writing the Via/Contact of a flow (RFC 5626), and pin it.
   */
  async connect(target: Endpoint): Promise<ConnectionInfo> {
    if (this.closing) throw new TransportError('closed', 'transport layer is closed');
    return (await this.streamFor({ transport: 'tcp', ...target })).info;
  }

  /** Changes one connection's idle timeout (0 = never idle-close). False if it is not open. */
  setIdleTimeout(connectionId: string, ms: number): boolean {
    const connection = this.connectionsById.get(connectionId);
    if (!connection?.isOpen) return false;
    connection.setIdleTimeout(ms);
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
    const waits: Promise<unknown>[] = [];
    for (const connection of this.connectionsById.values()) waits.push(connection.close('local'));
    for (const { server } of this.tcp) waits.push(new Promise<void>((resolve) => server.close(() => resolve())));
    for (const { socket } of this.udp) waits.push(new Promise<void>((resolve) => socket.close(() => resolve())));
    await Promise.all(waits);
  }

  // ---------------------------------------------------------------- listening

  private async bindAll(specs: readonly ListenSpec[]): Promise<void> {
    const normalized = specs.map((spec) => {
      const host = canonicalIp(spec.host);
      if (host === undefined || !isValidPort(spec.port, true) || (spec.transport !== 'udp' && spec.transport !== 'tcp')) {
        throw new TransportError('invalid-address', `cannot listen on ${formatListenSpec(spec)}: need an IP address and a port`);
      }
      return { ...spec, host };
    });
    const done = new Set<number>();
    for (let i = 0; i < normalized.length; i++) {
      if (done.has(i)) continue;
      const spec = normalized[i]!;
      done.add(i);
      const partnerIndex =
        spec.port !== 0
          ? -1
          : normalized.findIndex(
              (other, j) => j > i && !done.has(j) && other.port === 0 && other.host === spec.host && other.transport !== spec.transport,
            );
      if (partnerIndex === -1) {
        if (spec.transport === 'udp') await this.bindUdp(spec.host, spec.port);
        else await this.bindTcp(spec.host, spec.port);
        continue;
      }
      done.add(partnerIndex);
      await this.bindSharedEphemeral(spec.host);
    }
  }

  /** UDP on an ephemeral port, then TCP on the same port; retried if TCP finds it taken. */
  private async bindSharedEphemeral(host: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const udp = await this.bindUdp(host, 0);
      try {
        await this.bindTcp(host, udp.local.port);
        return;
      } catch (error) {
        const inUse = error instanceof TransportError && (error.cause as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
        if (!inUse || attempt >= SHARED_PORT_ATTEMPTS) throw error;
        this.udp.splice(this.udp.indexOf(udp), 1);
        this.bound.splice(this.bound.findIndex((b) => b.transport === 'udp' && b.port === udp.local.port && b.host === host), 1);
        await new Promise<void>((resolve) => udp.socket.close(() => resolve()));
      }
    }
  }

  private async bindUdp(host: string, port: number): Promise<UdpListener> {
    const family = addressFamily(host);
    const socket = dgram.createSocket({ type: family === 'IPv6' ? 'udp6' : 'udp4', ipv6Only: family === 'IPv6' });
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
    this.bound.push({ transport: 'udp', host, port: local.port, family });
    return listener;
  }

  private async bindTcp(host: string, port: number): Promise<TcpListener> {
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
      throw listenFailed('tcp', host, port, error);
    }
    const address = server.address();
    const local = { address: host, port: typeof address === 'object' && address ? address.port : port };
    server.on('connection', (socket) => this.onInboundConnection(socket));
    server.on('error', (error) => {
      this.diagnose({ kind: 'socket-error', reason: `TCP listener ${endpointKey(host, local.port)}: ${error.message}`, transport: 'tcp', local, cause: error });
    });
    const listener: TcpListener = { server, local, family };
    this.tcp.push(listener);
    this.bound.push({ transport: 'tcp', host, port: local.port, family });
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
    if (data.every((b) => b === 0x0d || b === 0x0a)) {
      const lineEnds = data.reduce((count, b) => count + (b === 0x0a ? 1 : 0), 0);
      this.emitSafely('keepalive', { kind: lineEnds >= 2 ? 'ping' : 'pong', transport: 'udp', remote });
      return;
    }
    this.emitSafely('message', { data, transport: 'udp', local: listener.local, remote });
  }

  private async sendDatagram(data: Uint8Array, target: SendTarget): Promise<SendResult> {
    const address = this.checkTarget(target);
    if (data.length > this.limits.maxDatagramBytes) {
      throw new TransportError('too-large', `${data.length}-byte datagram exceeds ${this.limits.maxDatagramBytes} bytes`);
    }
    const listener = this.udpSocketFor(address, target.local);
    await new Promise<void>((resolve, reject) => {
      listener.socket.send(data, target.port, address, (error) => {
        if (!error) return resolve();
        const code = (error as NodeJS.ErrnoException).code;
        reject(
          new TransportError(code === 'EMSGSIZE' ? 'too-large' : 'send-failed', `UDP send to ${endpointKey(address, target.port)} failed: ${error.message}`, {
            cause: error,
          }),
        );
      });
    });
    return { transport: 'udp', local: listener.local, remote: { address, port: target.port } };
  }

  /**
   * The UDP socket to send from: the one bound at `local` if asked for, else one of the target's
   * family - a loopback-bound socket only for loopback targets (the kernel cannot route from
   * 127.0.0.1 elsewhere), preferring a specific address over the wildcard.
   */
  private udpSocketFor(address: string, local: Endpoint | undefined): UdpListener {
    const family = addressFamily(address);
    if (local) {
      const localIp = canonicalIp(local.address);
      const exact = this.udp.find((l) => l.local.port === local.port && l.local.address === localIp);
      if (exact) return exact;
      throw new TransportError('no-socket', `no UDP socket bound at ${localIp ? endpointKey(localIp, local.port) : local.address}`);
    }
    const candidates = this.udp.filter((l) => l.family === family);
    const toLoopback = isLoopback(address);
    const usable = candidates.filter((l) => toLoopback || !isLoopback(l.local.address));
    const chosen =
      usable.find((l) => !isUnspecified(l.local.address) && isLoopback(l.local.address) === toLoopback) ??
      usable.find((l) => isUnspecified(l.local.address)) ??
      usable[0];
    if (!chosen) throw new TransportError('no-socket', `no UDP socket can send to ${address} (${family})`);
    return chosen;
  }

  // ---------------------------------------------------------------- TCP

  private checkTarget(target: Endpoint): string {
    const address = canonicalIp(target.address);
    if (address === undefined || !isValidPort(target.port)) {
      throw new TransportError('invalid-address', `send target ${target.address}:${target.port} is not an IP address and port`);
    }
    return address;
  }

  private async streamFor(target: SendTarget): Promise<StreamConnection> {
    if (target.connectionId !== undefined) {
      const named = this.connectionsById.get(target.connectionId);
      if (named?.isOpen) return named;
      // §18.2.2: if that connection is gone, fall back to the address and port.
    }
    const address = this.checkTarget(target);
    const key = endpointKey(address, target.port);
    const existing = this.connectionsByRemote.get(key);
    if (existing?.isOpen) return existing;
    const pending = this.pendingConnects.get(key);
    if (pending) return pending;
    if (this.connectionsById.size + this.pendingConnects.size >= this.limits.maxConnections) {
      throw new TransportError('limit', `cannot connect to ${key}: ${this.limits.maxConnections} connections open`);
    }
    const dial = this.dial(address, target.port, key);
    this.pendingConnects.set(key, dial);
    try {
      return await dial;
    } finally {
      this.pendingConnects.delete(key);
    }
  }

  private dial(address: string, port: number, key: string): Promise<StreamConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: address, port, family: addressFamily(address) === 'IPv6' ? 6 : 4, noDelay: true });
      const finish = (): void => {
        clearTimeout(timer);
        this.dialAborts.delete(abort);
        socket.off('error', onError);
        socket.off('connect', onConnect);
      };
      const abort = (error: TransportError): void => {
        finish();
        socket.on('error', () => {}); // a late error on a socket we are discarding is not news
        socket.destroy();
        reject(error);
      };
      const onError = (error: NodeJS.ErrnoException): void => {
        abort(new TransportError('connect-failed', `TCP connect to ${key} failed: ${error.code ?? error.message}`, { cause: error }));
      };
      const onConnect = (): void => {
        finish();
        resolve(this.adopt(socket, 'outbound'));
      };
      const timer = setTimeout(() => {
        abort(new TransportError('timeout', `TCP connect to ${key} timed out after ${this.limits.connectTimeoutMs} ms`));
      }, this.limits.connectTimeoutMs);
      this.dialAborts.add(abort);
      socket.once('error', onError);
      socket.once('connect', onConnect);
    });
  }

  private onInboundConnection(socket: net.Socket): void {
    const remoteIp = canonicalIp(socket.remoteAddress ?? '');
    const refuse = (reason: string): void => {
      socket.on('error', () => {});
      socket.destroy();
      this.diagnose({
        kind: 'connection-refused',
        reason,
        transport: 'tcp',
        ...(remoteIp !== undefined && socket.remotePort !== undefined ? { remote: { address: remoteIp, port: socket.remotePort } } : {}),
      });
    };
    if (this.closing) return refuse('transport layer is closing');
    if (remoteIp === undefined) return refuse('inbound connection closed before it could be accepted');
    if (this.connectionsById.size + this.pendingConnects.size >= this.limits.maxConnections) {
      return refuse(`refused connection from ${remoteIp}: ${this.limits.maxConnections} connections open`);
    }
    const fromSource = this.inboundPerSource.get(remoteIp) ?? 0;
    if (fromSource >= this.limits.maxConnectionsPerSource) {
      return refuse(`refused connection from ${remoteIp}: ${fromSource} connections from that address already`);
    }
    this.inboundPerSource.set(remoteIp, fromSource + 1);
    this.adopt(socket, 'inbound');
  }

  /** Wraps a connected socket and books it; every connection comes through here. */
  private adopt(socket: net.Socket, direction: 'inbound' | 'outbound'): StreamConnection {
    const info: ConnectionInfo = {
      connectionId: `tcp-${++this.nextConnectionNumber}`,
      transport: 'tcp',
      direction,
      local: { address: canonicalIp(socket.localAddress ?? '') ?? '', port: socket.localPort ?? 0 },
      remote: { address: canonicalIp(socket.remoteAddress ?? '') ?? '', port: socket.remotePort ?? 0 },
    };
    const connection = new StreamConnection(socket, info, this.limits, this.streamHandler);
    this.connectionsById.set(info.connectionId, connection);
    this.connectionsByRemote.set(endpointKey(info.remote.address, info.remote.port), connection);
    this.emitSafely('connection-open', info);
    return connection;
  }

  private readonly streamHandler: StreamConnectionHandler = {
    onMessage: (connection, data) => {
      const { local, remote, connectionId } = connection.info;
      this.emitSafely('message', { data, transport: 'tcp', local, remote, connectionId });
    },
    onKeepalive: (connection, kind) => {
      const { remote, connectionId } = connection.info;
      this.emitSafely('keepalive', { kind, transport: 'tcp', remote, connectionId });
    },
    onFramingError: (connection, code, reason) => {
      const { local, remote, connectionId } = connection.info;
      this.diagnose({ kind: 'framing-error', reason: `${code}: ${reason}`, transport: 'tcp', connectionId, local, remote });
    },
    onClose: (connection, reason, detail) => {
      const { info } = connection;
      this.connectionsById.delete(info.connectionId);
      const key = endpointKey(info.remote.address, info.remote.port);
      if (this.connectionsByRemote.get(key) === connection) this.connectionsByRemote.delete(key);
      if (info.direction === 'inbound') {
        const left = (this.inboundPerSource.get(info.remote.address) ?? 1) - 1;
        if (left > 0) this.inboundPerSource.set(info.remote.address, left);
        else this.inboundPerSource.delete(info.remote.address);
      }
      if (reason === 'header-timeout' || reason === 'socket-error') {
        this.diagnose({
          kind: reason,
          reason: detail ?? reason,
          transport: 'tcp',
          connectionId: info.connectionId,
          local: info.local,
          remote: info.remote,
        });
      }
      this.emitSafely('connection-close', { connection: info, reason, ...(detail !== undefined ? { detail } : {}) });
    },
  };

  // ---------------------------------------------------------------- events

  private diagnose(diagnostic: TransportDiagnostic): void {
    this.emit('transport-error', diagnostic);
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

function listenFailed(transport: DatagramOrStream, host: string, port: number, error: unknown): TransportError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? String(error);
  return new TransportError('listen-failed', `cannot listen on ${formatListenSpec({ transport, host, port })}: ${code}`, { cause: error });
}
