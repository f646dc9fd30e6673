/**
 * Which NAPTR records of a domain say how to reach its SIP servers (RFC 3263 §4.1, with the
 * NAPTR rules of RFC 3403 §4).
 *
 * A SIP domain publishes one NAPTR record per transport, each pointing with flag "s" at the
 * SRV name for that transport:
 *
 *     example.com. IN NAPTR 50  50 "s" "SIPS+D2T" "" _sips._tcp.example.com.
 *     example.com. IN NAPTR 90  50 "s" "SIP+D2T"  "" _sip._tcp.example.com.
 *     example.com. IN NAPTR 100 50 "s" "SIP+D2U"  "" _sip._udp.example.com.
 *
 * The rules applied here:
 *  - only the services of the IANA table of RFC 3263 §9 that map to a transport we have
 *    count: SIP+D2U (UDP), SIP+D2T (TCP), SIPS+D2T (TLS over TCP). SCTP (D2S), WebSocket (D2W)
 *    and non-SIP services (E2U, http, ...) are dropped: "a client MUST discard any service
 *    fields that identify a resolution service whose value is not D2X, for values of X that
 *    indicate transport protocols supported by the client";
 *  - resolving a SIPS URI, only SIPS services are kept ("MUST discard any services that do
 *    not contain SIPS as the protocol"); resolving a SIP URI, SIPS+D2T is kept when TLS is
 *    supported ("SHOULD retain");
 *  - only terminal "s" records with a replacement are used (RFC 3263 NAPTRs are exactly
 *    that); a record with other flags or a regexp is not RFC 3263's and is dropped;
 *  - order by `order`, then by `preference` (RFC 3403 §4.1). Service fields and flags compare
 *    case-insensitively (RFC 3403 §4.1).
 *
 * RFC 3403 would stop at the first order that yields a usable record; we keep the later ones
 * in the list too, behind all targets of the first, so that failover (RFC 3263 §4.3) can move
 * on to the domain's next-preferred transport once every server of the preferred one failed.
 */
import type { NaptrRecord } from './dns-resolver.js';
import type { SipTransportName } from './server-target.js';

export interface SipNaptrService {
  readonly transport: SipTransportName;
  /** The SRV name to query next (the record's replacement). */
  readonly srvName: string;
  readonly order: number;
  readonly preference: number;
}

const SERVICE_TRANSPORTS: ReadonlyMap<string, { transport: SipTransportName; secure: boolean }> = new Map([
  ['SIP+D2U', { transport: 'udp', secure: false }],
  ['SIP+D2T', { transport: 'tcp', secure: false }],
  ['SIPS+D2T', { transport: 'tls', secure: true }],
]);

export function selectSipNaptrServices(
  records: readonly NaptrRecord[],
  options: { secure: boolean; supportedTransports: ReadonlySet<SipTransportName> },
): SipNaptrService[] {
  const services: SipNaptrService[] = [];
  for (const record of records) {
    const known = SERVICE_TRANSPORTS.get(record.service.toUpperCase());
    if (known === undefined) continue;
    if (options.secure && !known.secure) continue;
    if (!options.supportedTransports.has(known.transport)) continue;
    if (record.flags.toLowerCase() !== 's' || record.regexp !== '') continue;
    if (record.replacement === '' || record.replacement === '.') continue;
    services.push({ transport: known.transport, srvName: record.replacement, order: record.order, preference: record.preference });
  }
  // Array.prototype.sort is stable: equal order and preference keep the DNS answer's order.
  return services.sort((a, b) => a.order - b.order || a.preference - b.preference);
}
