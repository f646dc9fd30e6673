/**
 * Errors a caller of the user agent must handle distinctly. Failures on the network are not
 * errors but outcomes (see outcome.ts): these are refusals to even try.
 */

/**
 * RFC 3428 §8: a MESSAGE over 1300 octets may only go where every hop is known to be
 * congestion-controlled. We know it when we reach the target directly over TCP/TLS, or when
 * the user says so for this account (`--congestion-safe-path`).
 */
export class MessageTooLargeError extends Error {
  override readonly name = 'MessageTooLargeError';
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(
      `the MESSAGE request is ${size} bytes; RFC 3428 §8 allows at most ${limit} bytes unless the path is ` +
        `known to be congestion-controlled end to end (send directly over TCP/TLS, or assert it with --congestion-safe-path)`,
    );
  }
}

/** The destination cannot be used: not a SIP URI, an unknown host, an unsupported transport. */
export class DestinationError extends Error {
  override readonly name = 'DestinationError';
  constructor(
    message: string,
    /** True when the address is fine but could not be resolved now (a network problem). */
    readonly unreachable = false,
  ) {
    super(message);
  }
}
