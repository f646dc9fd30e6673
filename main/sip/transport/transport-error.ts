/**
 * The one error type the transport layer rejects with (RFC 3261 §18.4).
 *
 * §18.4 and §8.1.3.1: when the transport cannot deliver a request (TCP connect refused,
 * unreachable host, connection gone), the transaction layer is told so and the TU treats it
 * like a 503. `code` says which failure it was, so the layers above can choose between
 * "try the next RFC 3263 target", "fall back to UDP" (§18.1.1) and "give up". The `tls-*`
 * codes say why a TLS connection was refused; none of them may be answered by retrying the
 * same request without TLS (that would defeat SIPS, RFC 3261 §26.2.2).
 */
export type TransportErrorCode =
  /** A TCP connection could not be opened (refused, reset, unreachable). */
  | 'connect-failed'
  /** A TCP connect (and, for TLS, its handshake) did not complete within the connect timeout. */
  | 'timeout'
  /** The TLS handshake failed for a reason other than the certificate (protocol, cipher, reset). */
  | 'tls-handshake'
  /** The server's certificate chain is not trusted: unknown issuer, self-signed, expired (RFC 3261 §26.3.1). */
  | 'tls-certificate'
  /** The certificate is trusted but does not name the SIP domain asked for (RFC 5922 §7.3). */
  | 'tls-identity'
  /** The TLS certificate, key or trusted certificates given in the options cannot be used. */
  | 'tls-config'
  /** The connection closed before the bytes were handed to the kernel. */
  | 'connection-closed'
  /** The datagram is bigger than a UDP socket may carry or than our limit. */
  | 'too-large'
  /** No listening socket fits the target (no UDP socket of that address family, say). */
  | 'no-socket'
  /** The target or listen address is not an IP literal with a valid port. */
  | 'invalid-address'
  /** A configured limit was reached (connections, unsent bytes on a connection). */
  | 'limit'
  /** The operating system refused the datagram. */
  | 'send-failed'
  /** A listening socket could not be bound. */
  | 'listen-failed'
  /** The transport layer was closed. */
  | 'closed';

export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly code: TransportErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
