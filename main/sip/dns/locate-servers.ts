/**
 * RFC 3263 §4: from a SIP or SIPS URI to the ordered list of (transport, address, port) to try.
 *
 * TARGET is the URI's `maddr` parameter if it has one, else its host (§4). Then:
 *
 *  1. Transport (§4.1). A `transport` parameter wins. Otherwise a numeric TARGET or an
 *     explicit port means UDP for sip: and TLS (over TCP) for sips:. Otherwise NAPTR decides.
 *  2. Numeric TARGET: no DNS at all; the URI's port or the transport's default (5060, 5061).
 *  3. Explicit port: A/AAAA of TARGET only, no NAPTR or SRV (§4.2).
 *  4. Transport parameter, no port: SRV for that transport (`_sips._tcp` for TLS, for sip:
 *     too: "if the client wishes to use TLS, it also uses the service identifier _sips"),
 *     else A/AAAA of TARGET at the default port (§4.2).
 *  5. Otherwise NAPTR of TARGET (see naptr.ts for which records count, and their order), and
 *     SRV of each usable record's replacement. If NAPTR gives nothing usable ("no NAPTR
 *     records are found"; records of other services or of transports we lack count as none),
 *     SRV queries for the transports we support: `_sips._tcp`, `_sip._tcp`, `_sip._udp` for
 *     sip:, only `_sips._tcp` for sips:. RFC 3263 lets the client pick among the transports the
 *     server has ("MAY use any transport protocol it desires"); we prefer them in that order,
 *     the order RFC 3263 §4.1 asks domains to give their NAPTR records (SIPS first), and TCP
 *     before UDP because a MESSAGE over 1300 bytes needs a congestion-controlled transport
 *     (RFC 3261 §18.1.1, RFC 3428 §8) anyway.
 *  6. No SRV records at all: A/AAAA of TARGET at the default port, UDP for sip:, TLS for sips:
 *     (§4.2). When NAPTR named transports but their SRV names were empty, those transports are
 *     used instead of the default ("the transport protocol determined previously").
 *
 * SRV records are ordered per RFC 2782 (srv-order.ts). An SRV set whose only target is "."
 * says the service is decidedly not available: it is not used and there is no A/AAAA
 * fallback for it; if that leaves nothing, the error says so.
 *
 * Every SRV target (or TARGET itself) is resolved to A and AAAA records, in parallel. The
 * addresses of one name are listed family by family in `families` order, DNS order within a
 * family. The default is IPv4 first, then IPv6: without Happy Eyeballs (RFC 8305), a broken
 * IPv6 path costs a whole Timer F (32 s) over UDP before failover reaches the IPv4 address, and
 * sipnote's default listeners are IPv4. Pass `families: [6, 4]` for RFC 6724's IPv6-first, or a
 * single family to look up only that one. A target that appears twice (same transport,
 * address and port) is kept once, at its first place.
 *
 * DNS failures (timeouts, SERVFAIL) do not stop the procedure: a failed NAPTR query is read
 * as "no NAPTR" and so on, because some resolvers and middleboxes mishandle NAPTR queries
 * while SRV and A work. Only if no address results are the failures reported, as a
 * ServerLocationError 'lookup-failed'.
 *
 * Run this once per request (RFC 3263 §4: retransmissions go to the same target); the caller
 * walks the list with `Failover` (failover.ts).
 */
import { isIP } from 'node:net';
import type { SipUri } from '../uri.js';
import { classifyDnsError } from './dns-resolver.js';
import type { DnsResolver, NaptrRecord, SrvRecord } from './dns-resolver.js';
import { selectSipNaptrServices } from './naptr.js';
import { ServerLocationError } from './server-location-error.js';
import type { DnsLookupFailure } from './server-location-error.js';
import { defaultPort, targetKey } from './server-target.js';
import type { ServerTarget, SipTransportName, TargetSource } from './server-target.js';
import { isNoServiceTarget, orderSrvRecords } from './srv-order.js';

export type AddressFamilyNumber = 4 | 6;

export interface LocateOptions {
  resolver: DnsResolver;
  /** Transports this client can use now. Targets of other transports are never returned. */
  supportedTransports: readonly SipTransportName[];
  /** For RFC 2782 weighted selection; returns [0, 1). Default Math.random. */
  random?: () => number;
  /** Address families to look up, in the order their addresses are listed. Default [4, 6]. */
  families?: readonly AddressFamilyNumber[];
}

export async function locateServers(uri: SipUri, options: LocateOptions): Promise<ServerTarget[]> {
  const secure = uri.scheme === 'sips';
  const supported = new Set(options.supportedTransports);
  const target = targetOf(uri);
  const explicit = explicitTransport(uri, target, secure, supported);
  const family = isIP(target);

  if (family !== 0) {
    const transport = explicit ?? defaultTransport(target, secure, supported);
    return [
      { transport, address: target, port: uri.port ?? defaultPort(transport), family: family as 4 | 6, host: target, targetName: target, source: 'numeric' },
    ];
  }

  const locator = new Locator(target, options);
  if (uri.port !== undefined) {
    const transport = explicit ?? defaultTransport(target, secure, supported);
    return locator.resolve([{ transport, name: target, port: uri.port, source: 'explicit-port' }]);
  }
  if (explicit !== undefined) {
    const found = await locator.srvOne({ transport: explicit, name: srvNameFor(explicit, target), source: 'srv' });
    if (found.named.length > 0) return locator.resolve(found.named);
    if (found.denied) throw locator.serviceUnavailable();
    return locator.resolve([{ transport: explicit, name: target, port: defaultPort(explicit), source: 'a-aaaa' }]);
  }

  const services = selectSipNaptrServices(await locator.naptr(target), { secure, supportedTransports: supported });
  if (services.length > 0) {
    const found = await locator.srv(services.map((service) => ({ transport: service.transport, name: service.srvName, source: 'naptr' })));
    const named = found.flatMap((result) => result.named);
    if (named.length > 0) return locator.resolve(named);
    const open = services.filter((_, i) => !found[i]!.denied);
    if (open.length === 0) throw locator.serviceUnavailable();
    // The NAPTR records chose the transports, but their SRV names are empty (§4.2).
    const transports = [...new Set(open.map((service) => service.transport))];
    return locator.resolve(transports.map((transport) => ({ transport, name: target, port: defaultPort(transport), source: 'a-aaaa' })));
  }

  const candidates = (secure ? (['tls'] as const) : (['tls', 'tcp', 'udp'] as const)).filter((transport) => supported.has(transport));
  const found = await locator.srv(candidates.map((transport) => ({ transport, name: srvNameFor(transport, target), source: 'srv' })));
  const named = found.flatMap((result) => result.named);
  if (named.length > 0) return locator.resolve(named);
  if (found.some((result) => result.denied)) throw locator.serviceUnavailable();
  const transport = defaultTransport(target, secure, supported);
  return locator.resolve([{ transport, name: target, port: defaultPort(transport), source: 'a-aaaa' }]);
}

// ---------------------------------------------------------------------------------------------
// Transport choice (§4.1)
// ---------------------------------------------------------------------------------------------

/** TARGET (§4): maddr if present, else the host; lowercased, no brackets, no trailing dot. */
function targetOf(uri: SipUri): string {
  const maddr = uri.params.get('maddr');
  const raw = (typeof maddr === 'string' && maddr !== '' ? maddr : uri.host).toLowerCase();
  const bare = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
  return bare.length > 1 && bare.endsWith('.') ? bare.slice(0, -1) : bare;
}

/**
 * The `transport` parameter as one of ours. For sips:, `transport=tcp` means TLS over TCP
 * (RFC 3261 §19.1.1, §26.2.2); SIPS over UDP does not exist. `transport=tls` is deprecated
 * (RFC 3261 §26.2.2) but still read as TLS.
 */
function explicitTransport(uri: SipUri, target: string, secure: boolean, supported: ReadonlySet<SipTransportName>): SipTransportName | undefined {
  const param = uri.params.get('transport');
  if (typeof param !== 'string' || param === '') return undefined;
  const value = param.toLowerCase();
  let transport: SipTransportName;
  if (value === 'tls' || (value === 'tcp' && secure)) transport = 'tls';
  else if (value === 'tcp') transport = 'tcp';
  else if (value === 'udp' && !secure) transport = 'udp';
  else if (value === 'udp') {
    throw new ServerLocationError('unsupported-transport', target, `a sips: URI cannot use transport=udp: SIPS needs TLS, which runs over TCP (RFC 3261 §26.2.2)`);
  } else {
    throw new ServerLocationError('unsupported-transport', target, `transport=${value} is not supported (supported: ${[...supported].join(', ') || 'none'})`);
  }
  if (!supported.has(transport)) {
    throw new ServerLocationError('unsupported-transport', target, `transport=${value} asks for ${transport.toUpperCase()}, which this client does not support now (supported: ${[...supported].join(', ') || 'none'})`);
  }
  return transport;
}

/**
 * §4.1/§4.2 default: UDP for sip:, TLS over TCP for sips:. When UDP is not supported, TCP then
 * TLS (§4.1 allows "another transport, such as TCP ... if the guidelines of SIP mandate it").
 */
export function defaultTransport(target: string, secure: boolean, supported: ReadonlySet<SipTransportName>): SipTransportName {
  const preference = secure ? (['tls'] as const) : (['udp', 'tcp', 'tls'] as const);
  const chosen = preference.find((transport) => supported.has(transport));
  if (chosen === undefined) {
    throw new ServerLocationError(
      'unsupported-transport',
      target,
      secure ? `a sips: URI needs TLS, which this client does not support now` : `no transport is supported (supportedTransports is empty)`,
    );
  }
  return chosen;
}

/** §4.2: `_sips._tcp` for TLS (for sip: URIs too), `_sip._tcp`, `_sip._udp`. */
function srvNameFor(transport: SipTransportName, target: string): string {
  if (transport === 'tls') return `_sips._tcp.${target}`;
  return transport === 'tcp' ? `_sip._tcp.${target}` : `_sip._udp.${target}`;
}

// ---------------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------------

/** A name to resolve to addresses, with the transport and port it is to be used with. */
export interface NamedTarget {
  readonly transport: SipTransportName;
  readonly name: string;
  readonly port: number;
  readonly source: TargetSource;
}

/** The result of one SRV query: targets in RFC 2782 order; `denied` when the only target is ".". */
export interface SrvResult {
  readonly named: NamedTarget[];
  readonly denied: boolean;
}

/**
 * The queries of one server-location run, for one TARGET: turns "no such record" into empty
 * answers, remembers real failures for the error message, and resolves names to addresses.
 */
export class Locator {
  private readonly failures: DnsLookupFailure[] = [];
  private readonly resolver: DnsResolver;
  private readonly random: () => number;
  private readonly families: readonly AddressFamilyNumber[];

  constructor(
    /** TARGET: the domain that `host` of every target will name. */
    private readonly domain: string,
    options: Pick<LocateOptions, 'resolver' | 'random' | 'families'>,
  ) {
    this.resolver = options.resolver;
    this.random = options.random ?? Math.random;
    this.families = options.families ?? [4, 6];
  }

  naptr(name: string): Promise<NaptrRecord[]> {
    return this.query('NAPTR', name, () => this.resolver.resolveNaptr(name));
  }

  /**
   * SRV of each `name`, queried in parallel, each answer ordered per RFC 2782 and its records
   * tagged with the request's transport. The orderings draw from `random` in request order,
   * after all answers are in, so a seeded `random` gives the same list however fast each
   * answer came.
   */
  async srv(requests: ReadonlyArray<{ transport: SipTransportName; name: string; source: TargetSource }>): Promise<SrvResult[]> {
    const answers: SrvRecord[][] = await Promise.all(requests.map(({ name }) => this.query('SRV', name, () => this.resolver.resolveSrv(name))));
    return requests.map(({ transport, source }, i) => {
      const records = answers[i]!;
      const usable = records.filter((record) => !isNoServiceTarget(record.name));
      const named = orderSrvRecords(usable, this.random).map((record) => ({ transport, name: record.name, port: record.port, source }));
      return { named, denied: records.length > 0 && usable.length === 0 };
    });
  }

  srvOne(request: { transport: SipTransportName; name: string; source: TargetSource }): Promise<SrvResult> {
    return this.srv([request]).then((results) => results[0] as SrvResult);
  }

  /**
   * A and AAAA of every name, in parallel (each name once), then the targets in the order of
   * `named` and, per name, of `families`. Throws if no address results.
   */
  async resolve(named: readonly NamedTarget[]): Promise<ServerTarget[]> {
    const addressesByName = new Map<string, Promise<Array<{ address: string; family: AddressFamilyNumber }>>>();
    for (const { name } of named) {
      const key = name.toLowerCase();
      if (!addressesByName.has(key)) addressesByName.set(key, this.addressesOf(name));
    }
    const targets: ServerTarget[] = [];
    const seen = new Set<string>();
    for (const entry of named) {
      for (const { address, family } of await addressesByName.get(entry.name.toLowerCase())!) {
        const target: ServerTarget = {
          transport: entry.transport,
          address,
          port: entry.port,
          family,
          host: this.domain,
          targetName: entry.name,
          source: entry.source,
        };
        const key = targetKey(target);
        if (seen.has(key)) continue;
        seen.add(key);
        targets.push(target);
      }
    }
    if (targets.length === 0) throw this.nothingFound(named);
    return targets;
  }

  serviceUnavailable(): ServerLocationError {
    return new ServerLocationError(
      'service-unavailable',
      this.domain,
      `${this.domain} publishes SIP SRV records with target ".": the service is not available there (RFC 2782)`,
      this.failures,
    );
  }

  private async addressesOf(name: string): Promise<Array<{ address: string; family: AddressFamilyNumber }>> {
    const answers = await Promise.all(
      this.families.map(async (family) => {
        const addresses =
          family === 4
            ? await this.query('A', name, () => this.resolver.resolve4(name))
            : await this.query('AAAA', name, () => this.resolver.resolve6(name));
        return addresses.map((address) => ({ address, family }));
      }),
    );
    return answers.flat();
  }

  private async query<T>(type: DnsLookupFailure['type'], name: string, run: () => Promise<T[]>): Promise<T[]> {
    try {
      return await run();
    } catch (error) {
      const verdict = classifyDnsError(error);
      if (verdict.kind === 'failed') this.failures.push({ type, name, code: verdict.code });
      return [];
    }
  }

  private nothingFound(named: readonly NamedTarget[]): ServerLocationError {
    const names = [...new Set(named.map((entry) => entry.name))].join(', ');
    const familyTypes = this.families.map((family) => (family === 4 ? 'A' : 'AAAA')).join('/');
    if (this.failures.length > 0) {
      const failed = this.failures.map((failure) => `${failure.type} ${failure.name}: ${failure.code}`).join('; ');
      return new ServerLocationError('lookup-failed', this.domain, `cannot locate a SIP server for ${this.domain}: DNS lookups failed (${failed})`, this.failures);
    }
    const viaDns = named.some((entry) => entry.source === 'a-aaaa') ? ', nor usable NAPTR or SRV records' : '';
    return new ServerLocationError('no-records', this.domain, `cannot locate a SIP server for ${this.domain}: no ${familyTypes} records for ${names}${viaDns}`);
  }
}
