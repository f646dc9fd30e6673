/**
 * What to listen on: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `tls:127.0.0.1:5061`, or a
 * comma-separated list.
 *
 * RFC 3261 §18.2.1: an element that listens on a UDP port MUST also listen for TCP on the same
 * port, because a request may switch to TCP when it grows past the UDP size limit (§18.1.1).
 * `withTcpCompanions` adds those TCP listeners; whether to use it is the caller's choice.
 *
 * A `tls:` item is accepted only when the caller says it can serve TLS (`allowTls`): a TLS
 * listener needs a certificate and a private key (TransportLayerOptions.tls), which a listen
 * string cannot carry. A caller without them gets the mistake at parse time, with a message
 * that says so, rather than a failed bind later.
 */
import { canonicalIp, isValidPort } from './address.js';
import type { SipTransportName } from './choose-transport.js';
import { TransportError } from './transport-error.js';

/** The transports that are not TLS: one datagram socket or one plain TCP stream. */
export type DatagramOrStream = 'udp' | 'tcp';

export interface ListenSpec {
  transport: SipTransportName;
  /** An IP literal (IPv6 without brackets); `0.0.0.0` / `::` for every address. */
  host: string;
  /** 0 asks for an ephemeral port. */
  port: number;
}

export interface ParseListenSpecOptions {
  /** Accept `tls:` items (the caller has a certificate and key for them). Default false. */
  allowTls?: boolean;
}

/** Default SIP port for UDP and TCP (RFC 3261 §19.1.2). */
export const DEFAULT_SIP_PORT = 5060;
/** Default port for SIP over TLS (RFC 3261 §19.1.2, §26.2). */
export const DEFAULT_SIPS_PORT = 5061;

/**
 * Parses `transport:host[:port]` items separated by commas. The host must be an IP literal,
 * IPv6 in brackets; the port defaults to 5060 (5061 for tls). Throws
 * TransportError('invalid-address').
 */
export function parseListenSpec(text: string, options: ParseListenSpecOptions = {}): ListenSpec[] {
  const items = text.split(',').map((item) => item.trim()).filter((item) => item !== '');
  if (items.length === 0) throw new TransportError('invalid-address', 'empty listen specification');
  return items.map((item) => parseOne(item, options.allowTls === true));
}

function parseOne(item: string, allowTls: boolean): ListenSpec {
  const match = /^(udp|tcp|tls):(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(item);
  if (!match) {
    throw new TransportError('invalid-address', `listen spec "${item}" is not transport:host[:port] (IPv6 in brackets)`);
  }
  const transport = match[1]!.toLowerCase() as SipTransportName;
  if (transport === 'tls' && !allowTls) {
    throw new TransportError('invalid-address', `listen spec "${item}": a tls listener needs a certificate and key, and none were given`);
  }
  const host = canonicalIp(match[2]!);
  if (host === undefined || (!match[2]!.startsWith('[') && host.includes(':'))) {
    throw new TransportError('invalid-address', `listen spec "${item}": host must be an IP address`);
  }
  const defaultPort = transport === 'tls' ? DEFAULT_SIPS_PORT : DEFAULT_SIP_PORT;
  const port = match[3] === undefined ? defaultPort : Number(match[3]);
  if (!isValidPort(port, true)) throw new TransportError('invalid-address', `listen spec "${item}": bad port`);
  return { transport, host, port };
}

/**
 * Adds a TCP spec on the same host and port for every UDP spec that has none (§18.2.1).
 * With port 0, TransportLayer.listen binds such a UDP/TCP pair to one common ephemeral port.
 */
export function withTcpCompanions(specs: readonly ListenSpec[]): ListenSpec[] {
  const result = [...specs];
  for (const spec of specs) {
    if (spec.transport !== 'udp') continue;
    const paired = result.some((s) => s.transport === 'tcp' && s.host === spec.host && s.port === spec.port);
    if (!paired) result.push({ transport: 'tcp', host: spec.host, port: spec.port });
  }
  return result;
}

export function formatListenSpec(spec: ListenSpec): string {
  const host = spec.host.includes(':') ? `[${spec.host}]` : spec.host;
  return `${spec.transport}:${host}:${spec.port}`;
}
