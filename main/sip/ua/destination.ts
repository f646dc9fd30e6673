/**
 * Where to send a request: transport, IP address and port for a target URI
 * (RFC 3261 §8.1.2, §18.1.1; RFC 3263 §4.1-§4.2 for the numeric and explicit-port cases).
 *
 * Handled here: an IP literal or a host name with or without a port, the `transport`
 * parameter, and the RFC 3263 defaults for the rest (UDP for sip:, TLS for sips:, ports
 * 5060/5061). A host name is resolved with the system resolver (A/AAAA). NAPTR and SRV
 * lookups, failover between targets and TLS itself come with account support (issue #3);
 * until then a sips: target is refused with a DestinationError that says so.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { isSipUri, type Uri } from '../uri.js';
import { DestinationError } from './errors.js';
import type { SipTransportName } from './message-request.js';

export interface Destination {
  readonly transport: SipTransportName;
  /** An IP address, without brackets. */
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

export async function resolveDestination(uri: Uri, preferred?: SipTransportName): Promise<Destination> {
  if (!isSipUri(uri)) {
    throw new DestinationError(`cannot send to a ${uri.scheme}: URI; a sip: or sips: address is needed`);
  }
  const secure = uri.scheme === 'sips';
  const param = uri.params.get('transport');
  const fromUri = typeof param === 'string' ? param.toLowerCase() : undefined;
  const transport = (preferred ?? fromUri ?? (secure ? 'tls' : 'udp')) as string;
  if (transport !== 'udp' && transport !== 'tcp' && transport !== 'tls') {
    throw new DestinationError(`transport ${transport} is not supported (udp, tcp)`);
  }
  if (transport === 'tls' || secure) {
    throw new DestinationError('TLS and sips: are not available yet (they arrive with account support, issue #3)');
  }
  const port = uri.port ?? 5060;
  const host = uri.host.startsWith('[') ? uri.host.slice(1, -1) : uri.host;
  const literal = isIP(host);
  if (literal !== 0) return { transport, address: host, port, family: literal as 4 | 6 };
  try {
    const found = await lookup(host);
    return { transport, address: found.address, port, family: found.family as 4 | 6 };
  } catch (error) {
    throw new DestinationError(`cannot resolve ${host}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, true);
  }
}
