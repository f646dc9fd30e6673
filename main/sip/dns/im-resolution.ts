/**
 * `im:` and `pres:` URIs to SIP (RFC 3428 §5, RFC 3861, RFC 5509).
 *
 * RFC 3428 §5: a UAC given an IM URI SHOULD resolve it to a SIP or SIPS URI and put that in
 * the Request-URI. RFC 3861 §4-§5 does it with SRV: `_im._<proto>.<domain>` (`_pres` for
 * pres:), where <proto> is a label from IANA's "Instant Messaging SRV Protocol Label"
 * registry; RFC 5509 registered `_sip` there for SIP. So `im:alice@example.com` means: query
 * `_im._sip.example.com`, and the SRV records, in RFC 2782 order, name the SIP servers that
 * take alice's instant messages.
 *
 * The result is the Request-URI `sip:alice@example.com` (same user, same domain: the IM URI
 * names an inbox, not a server) and the targets to send it to. The SRV records give host and
 * port but no transport, so each is located like a SIP URI with an explicit port (RFC 3263
 * §4.1-§4.2: A/AAAA, UDP unless UDP is unsupported). Every target's `host` is the IM URI's
 * domain, the name a TLS server must prove (RFC 5922).
 *
 * When the domain has no such SRV records, sipnote falls back to RFC 3263 on the domain
 * itself (`locateServers(sip:alice@example.com)`): not required by RFC 3861, but a domain
 * that runs SIP without publishing `_im._sip` is common. A `_im._sip` set whose only
 * target is "." means the service is not available (RFC 2782): no fallback then.
 */
import { Params, type ImUri, type SipUri } from '../uri.js';
import { defaultTransport, locateServers, Locator } from './locate-servers.js';
import type { LocateOptions } from './locate-servers.js';
import type { ServerTarget } from './server-target.js';

export interface ImResolution {
  /** `sip:<user>@<domain>`: what goes in the Request-URI (RFC 3428 §5). */
  readonly requestUri: SipUri;
  /** Where to send it, in order; `source` is 'im-srv' when `_im._sip` SRV records were used. */
  readonly targets: ServerTarget[];
}

export async function resolveImUri(uri: ImUri, options: LocateOptions): Promise<ImResolution> {
  const requestUri: SipUri = { scheme: 'sip', host: uri.host, params: new Params(), headers: [] };
  if (uri.user !== undefined) requestUri.user = uri.user;

  const domain = uri.host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const service = uri.scheme === 'pres' ? '_pres' : '_im';
  const locator = new Locator(domain, options);
  const transport = defaultTransport(domain, false, new Set(options.supportedTransports));
  const found = await locator.srvOne({ transport, name: `${service}._sip.${domain}`, source: 'im-srv' });
  if (found.named.length > 0) return { requestUri, targets: await locator.resolve(found.named) };
  if (found.denied) throw locator.serviceUnavailable();
  return { requestUri, targets: await locateServers(requestUri, options) };
}
