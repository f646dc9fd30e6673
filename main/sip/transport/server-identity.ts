/**
 * Is this TLS server the SIP domain we asked for? RFC 5922 §7.1-§7.3 (updating RFC 3261 §26.3.1).
 *
 * Node's default `tls.checkServerIdentity` is the HTTPS rule (RFC 2818/6125): it accepts
 * `*.example.com` wildcards and ignores URI subjectAltNames. SIP is stricter, so TLS
 * connections of the transport layer use `checkSipServerIdentity` instead:
 *
 * 1. Identities (§7.1): the host part of every `URI` subjectAltName with scheme `sip` and no
 *    user part (`sip:example.com`; `sip:alice@example.com` and `sips:` URIs are not domain
 *    identities). Only if there is none, every `DNS` subjectAltName. Only if the certificate
 *    has no subjectAltName extension at all, the subject Common Name(s) (a MAY in §7.1).
 * 2. Comparison (§7.2): whole DNS names, case-insensitively (RFC 4343). No suffix match
 *    (`sip.example.com` is not `example.com`) and no wildcard match: a `*` in a certificate
 *    name is an ordinary character, so `*.example.com` matches no real domain.
 * 3. The domain checked (§7.3) is the ORIGINAL domain of the request - the one RFC 3263 server
 *    location started from (`example.com` of `sip:bob@example.com`, or of the outbound proxy's
 *    URI) - never the SRV target or the host name it resolved to. The caller passes it in.
 *
 * A target given as an IP literal (`sips:192.0.2.1`) has no domain. RFC 5922 does not cover
 * it; as RFC 6125 and RFC 2818 do, the certificate must then carry that address as an
 * `iPAddress` subjectAltName, and no other name type is consulted.
 *
 * Names are compared in the form they have on the wire (A-labels for internationalised names).
 * A trailing root dot is ignored on both sides. The certificate is read from its DER bytes
 * (pkijs), not from Node's printed `subjectaltname` string, whose quoting rules changed across
 * Node versions.
 */
import { Certificate, GeneralName } from 'pkijs';
import { canonicalIp } from './address.js';
import { TransportError } from './transport-error.js';

/** The DER bytes of a certificate, or anything carrying them (tls.PeerCertificate, crypto.X509Certificate). */
export type CertificateInput = Uint8Array | { readonly raw: Uint8Array };

/** The SIP domain identities a certificate asserts, found by the rules of RFC 5922 §7.1. */
export interface SipCertificateIdentities {
  /** Where `names` came from: `sip` URI SANs, else DNS SANs, else the subject CN, else nowhere. */
  source: 'uri' | 'dns' | 'cn' | 'none';
  /** Domain names, lower case, without a trailing dot. */
  names: string[];
  /** iPAddress subjectAltNames, canonical (used for IP-literal targets only). */
  ipAddresses: string[];
}

const SUBJECT_ALT_NAME_OID = '2.5.29.17';
const COMMON_NAME_OID = '2.5.4.3';
/** GeneralName CHOICE tags (RFC 5280 §4.2.1.6). */
const DNS_NAME = 2;
const URI_NAME = 6;
const IP_ADDRESS = 7;

/**
 * The RFC 5922 check. Returns undefined when the certificate names `domain`, else a
 * TransportError('tls-identity') saying what it names instead. Its shape is that of Node's
 * `checkServerIdentity` option, so it plugs into `tls.connect`, where a returned error makes
 * Node close the connection (§7.3: "MUST close the connection").
 */
export function checkSipServerIdentity(domain: string, certificate: CertificateInput): TransportError | undefined {
  const wanted = canonicalServerName(domain);
  if (wanted === undefined) {
    return new TransportError('tls-identity', `"${domain}" is not a domain name or IP address to authenticate`);
  }
  let identities: SipCertificateIdentities;
  try {
    identities = sipCertificateIdentities(certificate);
  } catch (error) {
    return new TransportError('tls-identity', `cannot read the server certificate: ${String(error)}`, { cause: error });
  }
  if (canonicalIp(wanted) !== undefined) {
    if (identities.ipAddresses.includes(wanted)) return undefined;
    const listed = identities.ipAddresses.length > 0 ? identities.ipAddresses.join(', ') : 'no IP address';
    return new TransportError('tls-identity', `server certificate does not name ${wanted} as an iPAddress subjectAltName (it names ${listed})`);
  }
  if (identities.names.includes(wanted)) return undefined;
  const what =
    identities.source === 'none'
      ? 'no SIP domain identity'
      : `${identities.source === 'uri' ? 'sip URI' : identities.source === 'dns' ? 'DNS' : 'CN'} ${identities.names.join(', ')}`;
  return new TransportError(
    'tls-identity',
    `server certificate is not for SIP domain ${wanted}: it names ${what} (RFC 5922: exact names only, no wildcard or suffix match)`,
  );
}

/**
 * The identities of RFC 5922 §7.1, in the order that section gives them. Throws if the
 * certificate cannot be decoded.
 */
export function sipCertificateIdentities(certificate: CertificateInput): SipCertificateIdentities {
  const der = certificate instanceof Uint8Array ? certificate : certificate.raw;
  const parsed = Certificate.fromBER(der);
  const altNameExtension = parsed.extensions?.find((extension) => extension.extnID === SUBJECT_ALT_NAME_OID);
  const ipAddresses: string[] = [];
  if (altNameExtension === undefined) {
    const names = commonNames(parsed).map(normalizeName).filter((name) => name !== '');
    return { source: names.length > 0 ? 'cn' : 'none', names, ipAddresses };
  }
  const uriNames: string[] = [];
  const dnsNames: string[] = [];
  for (const general of altNamesOf(altNameExtension.parsedValue)) {
    if (general.type === URI_NAME && typeof general.value === 'string') {
      const host = sipUriDomain(general.value);
      if (host !== undefined) uriNames.push(host);
    } else if (general.type === DNS_NAME && typeof general.value === 'string') {
      const name = normalizeName(general.value);
      if (name !== '') dnsNames.push(name);
    } else if (general.type === IP_ADDRESS) {
      const ip = ipFromOctets(octetsOf(general.value));
      if (ip !== undefined) ipAddresses.push(ip);
    }
  }
  if (uriNames.length > 0) return { source: 'uri', names: uriNames, ipAddresses };
  if (dnsNames.length > 0) return { source: 'dns', names: dnsNames, ipAddresses };
  // A subjectAltName extension without sip URI or DNS names: the CN is NOT consulted (§7.1).
  return { source: 'none', names: [], ipAddresses };
}

/**
 * A server name in the one form used for comparing and for keying connections: an IP literal
 * in canonical form, or a domain name in lower case without a trailing dot. Undefined if
 * `name` is neither (empty labels, characters a host name cannot have, a `*`).
 */
export function canonicalServerName(name: string): string | undefined {
  const ip = canonicalIp(name);
  if (ip !== undefined) return ip;
  const domain = normalizeName(name);
  if (domain.length === 0 || domain.length > 253) return undefined;
  // Letters, digits, hyphens and underscores (seen in real SRV-era names), dot-separated labels.
  return /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/.test(domain) ? domain : undefined;
}

/** §7.1: `sip:host[:port][;params]` without a user part gives `host`; anything else nothing. */
function sipUriDomain(uri: string): string | undefined {
  const match = /^sip:([^;?]*)/i.exec(uri.trim());
  if (!match) return undefined; // not sip (sips, tel, http...): "MUST NOT accept the value"
  const hostport = match[1]!;
  if (hostport.includes('@')) return undefined; // a user's identity, not the domain's
  const host = hostport.startsWith('[') ? hostport.slice(0, hostport.indexOf(']') + 1) : hostport.replace(/:\d*$/, '');
  const name = normalizeName(host);
  return name === '' ? undefined : name;
}

function normalizeName(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function commonNames(certificate: Certificate): string[] {
  const names: string[] = [];
  for (const attribute of certificate.subject.typesAndValues) {
    if (attribute.type !== COMMON_NAME_OID) continue;
    const value: unknown = (attribute.value as { valueBlock?: { value?: unknown } }).valueBlock?.value;
    if (typeof value === 'string') names.push(value);
  }
  return names;
}

function altNamesOf(parsedValue: unknown): GeneralName[] {
  const altNames = (parsedValue as { altNames?: unknown } | undefined)?.altNames;
  return Array.isArray(altNames) ? altNames.filter((name): name is GeneralName => name instanceof GeneralName) : [];
}

function octetsOf(value: unknown): Uint8Array | undefined {
  const view = (value as { valueBlock?: { valueHexView?: unknown } } | undefined)?.valueBlock?.valueHexView;
  return view instanceof Uint8Array ? view : undefined;
}

/** An iPAddress GeneralName holds 4 (IPv4) or 16 (IPv6) octets in network order. */
function ipFromOctets(octets: Uint8Array | undefined): string | undefined {
  if (octets?.length === 4) return octets.join('.');
  if (octets?.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((octets[i]! << 8) | octets[i + 1]!).toString(16));
    return canonicalIp(groups.join(':'));
  }
  return undefined;
}
