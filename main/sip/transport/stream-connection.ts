/**
 * One TCP or TLS connection carrying SIP (RFC 3261 §18): a socket, a StreamFramer and its timers.
 *
 * It owns the per-connection rules so the transport layer only keeps the books:
 * - inbound bytes are framed by Content-Length (§18.3) and handed up message by message;
 * - a double-CRLF keep-alive ping is answered with a single CRLF pong (RFC 5626 §4.4.1);
 * - a framing error closes the connection: after one, the stream cannot be resynchronised;
 * - a connection with no traffic for `idleTimeoutMs` is closed (§18.1.1 asks to keep it at
 *   least 64*T1 after last use, hence the 32 s default in TransportLayer);
 * - a message that does not complete within `headerTimeoutMs` of its first byte closes the
 *   connection, so a slow sender cannot hold a slot forever. The deadline covers the body as
 *   well as the head: a body trickled a byte at a time resets the idle timer with every byte,
 *   so without it a sender could hold a connection for hours (64 KiB at one byte a second).
 *
 * TLS changes none of this: the socket is then a TLSSocket whose handshake has completed, and
 * the framer sees the decrypted bytes.
 *
 * It never throws from socket callbacks: every failure ends as a close with a reason.
 */
import type { Socket } from 'node:net';
import type { Endpoint } from './address.js';
import { StreamFramer } from './stream-framer.js';
import type { FramingErrorCode } from './stream-framer.js';
import { TransportError } from './transport-error.js';

export interface ConnectionInfo {
  /** `tcp-N` or `tls-N`: the prefix tells the transport even after the connection is gone. */
  connectionId: string;
  transport: 'tcp' | 'tls';
  /** Whether the peer connected to us, or we to it. */
  direction: 'inbound' | 'outbound';
  local: Endpoint;
  remote: Endpoint;
  /** TLS connections only. */
  tls?: TlsSessionInfo;
}

/** What is known about the TLS session of a connection. */
export interface TlsSessionInfo {
  /** The negotiated version, e.g. `TLSv1.3`. */
  protocol: string;
  /**
   * Outbound only: the SIP domain (or IP literal) the server's certificate was checked against
   * (RFC 5922 §7.3). Inbound connections have none: no client certificate is asked for.
   */
  serverName?: string;
}

export type ConnectionCloseReason =
  /** No traffic for the idle timeout. */
  | 'idle'
  /** The peer closed (FIN) or reset the connection. */
  | 'peer-closed'
  /** The byte stream could not be framed (garbage, no Content-Length, too large). */
  | 'framing-error'
  /** A message head did not complete in time. */
  | 'header-timeout'
  /** The socket reported an error (ECONNRESET, EPIPE, ...). */
  | 'socket-error'
  /** An RFC 5626 keep-alive ping got no pong in time: the flow failed. */
  | 'keepalive-timeout'
  /** Closed on request (closeConnection, or the whole layer closing). */
  | 'local'
  /** Inbound, and the quietest when a new connection needed its slot (the connection cap). */
  | 'evicted';

export interface StreamConnectionLimits {
  idleTimeoutMs: number;
  headerTimeoutMs: number;
  maxHeadBytes: number;
  maxMessageBytes: number;
  /** Unsent bytes a connection may queue before `write` refuses more. */
  maxPendingWriteBytes: number;
}

/** What a StreamConnection tells its owner. Called synchronously from socket callbacks. */
export interface StreamConnectionHandler {
  onMessage(connection: StreamConnection, data: Buffer): void;
  onKeepalive(connection: StreamConnection, kind: 'ping' | 'pong'): void;
  onFramingError(connection: StreamConnection, code: FramingErrorCode, reason: string): void;
  onClose(connection: StreamConnection, reason: ConnectionCloseReason, detail: string | undefined): void;
}

const PONG = Buffer.from('\r\n', 'latin1');
const PING = Buffer.from('\r\n\r\n', 'latin1');

export class StreamConnection {
  private readonly framer: StreamFramer;
  private headerTimer: NodeJS.Timeout | undefined;
  private closeReason: ConnectionCloseReason | undefined;
  private closeDetail: string | undefined;
  private closed = false;
  /** Writes whose callback has not run yet, oldest first, failed when the socket closes. */
  private readonly pendingWrites: { bytes: number; fail: (error: TransportError) => void }[] = [];
  private readonly whenClosed: Promise<void>;
  /** performance.now() when the connection opened or last received bytes of a message. */
  private lastReceived = performance.now();

  constructor(
    private readonly socket: Socket,
    readonly info: ConnectionInfo,
    private readonly limits: StreamConnectionLimits,
    private readonly handler: StreamConnectionHandler,
  ) {
    this.framer = new StreamFramer({ maxHeadBytes: limits.maxHeadBytes, maxMessageBytes: limits.maxMessageBytes });
    socket.setNoDelay(true);
    socket.setTimeout(limits.idleTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('timeout', () => this.close('idle'));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.closeReason ??= 'socket-error';
      this.closeDetail ??= error.code ?? error.message;
    });
    this.whenClosed = new Promise((resolve) => {
      socket.once('close', () => {
        this.onSocketClosed();
        resolve();
      });
    });
  }

  /**
   * Milliseconds since the peer last sent part of a message (or since the connection opened).
   * Keep-alive pings do not count: a peer pinging every second could otherwise keep a
   * connection that carries nothing from ever looking quiet (see evictQuietestInbound).
   */
  quietFor(now = performance.now()): number {
    return now - this.lastReceived;
  }

  get isOpen(): boolean {
    return !this.closed && this.closeReason === undefined;
  }

  /** Hands `data` to the kernel; resolves once it is written, rejects with a TransportError. */
  write(data: Uint8Array): Promise<void> {
    if (!this.isOpen || this.socket.destroyed || !this.socket.writable) {
      return Promise.reject(new TransportError('connection-closed', `connection ${this.info.connectionId} is closed`));
    }
    if (this.socket.writableLength + data.length > this.limits.maxPendingWriteBytes) {
      return Promise.reject(
        new TransportError('limit', `connection ${this.info.connectionId} has more than ${this.limits.maxPendingWriteBytes} unsent bytes`),
      );
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      const entry = {
        bytes: data.length,
        fail: (error: TransportError): void => {
          if (settled) return;
          settled = true;
          this.forget(entry);
          reject(error);
        },
      };
      this.pendingWrites.push(entry);
      this.socket.write(data, (error) => {
        if (error) {
          entry.fail(new TransportError('connection-closed', `write on ${this.info.connectionId} failed: ${error.message}`, { cause: error }));
          return;
        }
        if (settled) return;
        settled = true;
        this.forget(entry);
        resolve();
      });
    });
  }

  /** Sends an RFC 5626 §4.4.1 keep-alive ping (a double CRLF); the peer answers a single CRLF. */
  ping(): Promise<void> {
    const sent = this.write(PING);
    // Tell the framer a pong is due, so consecutive pongs are not misread as a split ping.
    if (this.isOpen) this.framer.awaitPong();
    return sent;
  }

  /** 0 disables the idle close (e.g. for a registration flow kept alive by RFC 5626 pings). */
  setIdleTimeout(ms: number): void {
    this.socket.setTimeout(ms);
  }

  /** Closes at once; resolves when the socket is fully closed. */
  close(reason: ConnectionCloseReason, detail?: string): Promise<void> {
    if (this.closeReason === undefined) {
      this.closeReason = reason;
      this.closeDetail = detail;
    }
    if (!this.socket.destroyed) {
      this.failUnflushedWrites();
      this.socket.destroy();
    }
    return this.whenClosed;
  }

  /**
   * Node reports a write that destroy() cuts off as a success (its callback gets no error), so
   * before destroying we fail the writes whose bytes have not reached the kernel: the newest
   * ones covering `writableLength`. Bytes already in the kernel are still sent before the FIN.
   */
  private failUnflushedWrites(): void {
    let unflushed = this.socket.writableLength;
    const cutOff: typeof this.pendingWrites = [];
    for (let i = this.pendingWrites.length - 1; i >= 0 && unflushed > 0; i--) {
      const entry = this.pendingWrites[i]!;
      cutOff.push(entry);
      unflushed -= entry.bytes;
    }
    for (const entry of cutOff) {
      entry.fail(new TransportError('connection-closed', `connection ${this.info.connectionId} closed before the data was sent`));
    }
  }

  private forget(entry: (typeof this.pendingWrites)[number]): void {
    const at = this.pendingWrites.indexOf(entry);
    if (at !== -1) this.pendingWrites.splice(at, 1);
  }

  private onData(chunk: Buffer): void {
    if (!this.isOpen) return;
    const events = this.framer.push(chunk);
    let completedMessage = false;
    for (const event of events) {
      if (!this.isOpen) return;
      switch (event.type) {
        case 'message':
          completedMessage = true;
          this.handler.onMessage(this, event.data);
          break;
        case 'keepalive-ping':
          // RFC 5626 §4.4.1: answer a ping with a pong on the same connection.
          if (this.socket.writable) this.socket.write(PONG);
          this.handler.onKeepalive(this, 'ping');
          break;
        case 'keepalive-pong':
          this.handler.onKeepalive(this, 'pong');
          break;
        case 'error':
          this.handler.onFramingError(this, event.code, event.reason);
          void this.close('framing-error', event.reason);
          return;
      }
    }
    if (completedMessage || this.framer.phase === 'head' || this.framer.phase === 'body') this.lastReceived = performance.now();
    this.trackHeaderTimeout(completedMessage);
  }

  /** The message timer runs from the first byte of a message until its last (head and body). */
  private trackHeaderTimeout(completedMessage: boolean): void {
    const phase = this.framer.phase;
    if (phase !== 'head' && phase !== 'body') {
      this.clearHeaderTimer();
      return;
    }
    // A message completed in this chunk means the message in progress is a new one.
    if (this.headerTimer !== undefined && !completedMessage) return;
    this.clearHeaderTimer();
    this.headerTimer = setTimeout(() => {
      this.headerTimer = undefined;
      const part = this.framer.phase === 'body' ? 'body' : 'head';
      void this.close('header-timeout', `message ${part} not complete within ${this.limits.headerTimeoutMs} ms`);
    }, this.limits.headerTimeoutMs);
    this.headerTimer.unref();
  }

  private clearHeaderTimer(): void {
    if (this.headerTimer !== undefined) clearTimeout(this.headerTimer);
    this.headerTimer = undefined;
  }

  private onSocketClosed(): void {
    this.closed = true;
    this.clearHeaderTimer();
    const reason = this.closeReason ?? 'peer-closed';
    this.closeReason = reason;
    for (const entry of [...this.pendingWrites]) {
      entry.fail(new TransportError('connection-closed', `connection ${this.info.connectionId} closed (${reason})`));
    }
    this.handler.onClose(this, reason, this.closeDetail);
  }
}
