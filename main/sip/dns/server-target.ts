/**
 * What RFC 3263 server location produces: an ordered list of places to send a request, each a
 * transport, an IP address and a port (RFC 3263 §4, "the client ... determines the IP
 * address, port, and transport protocol of the next hop").
 *
 * The shape is a superset of the UA's `Destination` (transport, address, port, family), so a
 * target can be handed to the transport layer as it is.
 */
import type { SipTransportName } from '../transport/choose-transport.js';

export type { SipTransportName };

/** How a target was found, in the terms of RFC 3263 §4.1-§4.2 (and RFC 3861 for `im:`). */
export type TargetSource =
  /** The URI named an IP address: no DNS at all (§4.1, §4.2). */
  | 'numeric'
  /** The URI named a host and a port: A/AAAA of the host only, no NAPTR or SRV (§4.2). */
  | 'explicit-port'
  /** NAPTR of the domain, then SRV of the NAPTR replacement, then A/AAAA (§4.1, §4.2). */
  | 'naptr'
  /** SRV of `_sip._udp`/`_sip._tcp`/`_sips._tcp` at the domain, then A/AAAA (§4.1, §4.2). */
  | 'srv'
  /** No NAPTR and no SRV: A/AAAA of the domain at the default port (§4.2). */
  | 'a-aaaa'
  /** An `im:`/`pres:` URI: SRV `_im._sip`/`_pres._sip` (RFC 3861 §4, RFC 5509), then A/AAAA. */
  | 'im-srv';

export interface ServerTarget {
  readonly transport: SipTransportName;
  /** An IP address without brackets. */
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /**
   * The domain that server location started from (RFC 3263's TARGET: the URI's maddr or
   * host), lowercased, without a trailing dot; an IP address for numeric targets. RFC 5922 §4
   * and §7.2: a TLS server is authenticated against THIS name, never against the NAPTR
   * replacement or the SRV target (DNS is not trusted to redirect identities).
   */
  readonly host: string;
  /** The name whose A/AAAA record gave `address` (the SRV target, or `host` itself). For logs. */
  readonly targetName: string;
  readonly source: TargetSource;
}

/** RFC 3261 §19.1.2: 5060 for UDP and TCP, 5061 for TLS. */
export function defaultPort(transport: SipTransportName): number {
  return transport === 'tls' ? 5061 : 5060;
}

/** "udp|127.0.0.1|5060": one key per place to send to, for de-duplication and failure memory. */
export function targetKey(target: Pick<ServerTarget, 'transport' | 'address' | 'port'>): string {
  return `${target.transport}|${target.address}|${target.port}`;
}
