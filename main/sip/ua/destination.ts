/**
 * Where to send a request: the ordered list of (transport, address, port) targets for a URI
 * (RFC 3261 §8.1.2, §18.1.1; RFC 3263 §4), located by main/sip/dns and tried in order with
 * failover (RFC 3263 §4.3) by the user agent.
 *
 * A transport forced by the caller (the CLI's --transport) is applied as the URI's
 * `transport` parameter, which RFC 3263 §4.1 lets win over everything else.
 */
import { Params } from '../header-values.js';
import { createDnsResolver, type DnsResolver } from '../dns/dns-resolver.js';
import { locateServers } from '../dns/locate-servers.js';
import { ServerLocationError } from '../dns/server-location-error.js';
import type { ServerTarget } from '../dns/server-target.js';
import { isSipUri, type Uri } from '../uri.js';
import { DestinationError } from './errors.js';
import type { SipTransportName } from './message-request.js';

/** One place to send a request to; `host` is the domain to authenticate over TLS (RFC 5922). */
export type Destination = ServerTarget;

export interface LocateDestinationOptions {
  readonly preferred?: SipTransportName;
  readonly resolver?: DnsResolver;
  /** Transports the user agent can use now. */
  readonly supportedTransports: readonly SipTransportName[];
}

let systemResolver: DnsResolver | undefined;

export async function locateDestinations(uri: Uri, options: LocateDestinationOptions): Promise<Destination[]> {
  if (!isSipUri(uri)) throw new DestinationError(`cannot send to a ${uri.scheme}: URI; a sip: or sips: address is needed`);
  let target = uri;
  if (options.preferred !== undefined) {
    const params = new Params(uri.params);
    params.set('transport', options.preferred);
    target = { ...uri, params };
  }
  try {
    return await locateServers(target, {
      resolver: options.resolver ?? (systemResolver ??= createDnsResolver()),
      supportedTransports: options.supportedTransports,
    });
  } catch (error) {
    if (error instanceof ServerLocationError) throw new DestinationError(error.message, error.unreachable);
    throw error;
  }
}
