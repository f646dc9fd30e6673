/**
 * The one error type server location (RFC 3263) rejects with: no usable place to send to.
 *
 * `code` is stable and machine-readable; `message` says, for a person, which domain and which
 * lookups led nowhere. `unreachable` is true when DNS itself could not be asked or did not
 * answer (a network problem worth retrying later), false when DNS answered and the answer
 * leaves nothing to try (a configuration problem of the domain or of this client).
 */

export type ServerLocationErrorCode =
  /** The URI asks for a transport this client does not support (`;transport=sctp`, TLS when TLS is off, SIPS over UDP). */
  | 'unsupported-transport'
  /** RFC 2782: the only SRV records have target ".": the service is decidedly not available there. */
  | 'service-unavailable'
  /** DNS answered, but no NAPTR, SRV or A/AAAA record leads to an address. */
  | 'no-records'
  /** No address was found, and at least one lookup failed (timeout, SERVFAIL, refused). */
  | 'lookup-failed';

/** One DNS query that got an error answer other than "no such name" / "no such record". */
export interface DnsLookupFailure {
  readonly type: 'NAPTR' | 'SRV' | 'A' | 'AAAA';
  readonly name: string;
  /** The node:dns error code: ETIMEOUT, ESERVFAIL, ECONNREFUSED, EREFUSED, ... */
  readonly code: string;
}

export class ServerLocationError extends Error {
  override readonly name = 'ServerLocationError';
  constructor(
    readonly code: ServerLocationErrorCode,
    /** The domain (or IP address) server location started from. */
    readonly domain: string,
    message: string,
    /** Lookups that failed on the way (empty unless DNS misbehaved). */
    readonly lookupFailures: readonly DnsLookupFailure[] = [],
  ) {
    super(message);
  }

  /** True when trying again later may help: DNS did not answer, rather than answered "nothing". */
  get unreachable(): boolean {
    return this.code === 'lookup-failed';
  }
}
