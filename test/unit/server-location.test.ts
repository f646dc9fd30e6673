/**
 * RFC 3263 server location against a table-driven fake resolver: which queries are made (and
 * which are not), NAPTR and SRV ordering, RFC 2782 weighted selection with a fixed sequence of
 * "random" numbers, the transport rules for sip: and sips:, "." targets, errors, failover, and
 * im: resolution (RFC 3861 / RFC 5509). The same procedures against a real DNS server are in
 * test/interop/dns.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { NaptrRecord, SrvRecord } from 'node:dns';
import {
  Failover,
  failureReason,
  locateServers,
  orderSrvRecords,
  resolveImUri,
  selectSipNaptrServices,
  ServerLocationError,
  TargetHealth,
} from '../../main/sip/dns/index.js';
import type { DnsResolver, LocateOptions, ServerTarget, SipTransportName } from '../../main/sip/dns/index.js';
import { isImUri, isSipUri, parseUri } from '../../main/sip/uri.js';
import type { ImUri, SipUri } from '../../main/sip/uri.js';

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

type Zone = {
  naptr?: Record<string, NaptrRecord[]>;
  srv?: Record<string, SrvRecord[]>;
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
  /** "TYPE name" -> node:dns error code to reject with (ETIMEOUT, ESERVFAIL, ...). */
  errors?: Record<string, string>;
};

/** Answers from `zone` like node:dns would: ENOTFOUND for a missing name. Logs every query. */
class FakeResolver implements DnsResolver {
  readonly queries: string[] = [];
  constructor(private readonly zone: Zone) {}
  resolveNaptr(name: string): Promise<NaptrRecord[]> {
    return this.answer('NAPTR', name, this.zone.naptr);
  }
  resolveSrv(name: string): Promise<SrvRecord[]> {
    return this.answer('SRV', name, this.zone.srv);
  }
  resolve4(name: string): Promise<string[]> {
    return this.answer('A', name, this.zone.a);
  }
  resolve6(name: string): Promise<string[]> {
    return this.answer('AAAA', name, this.zone.aaaa);
  }
  private async answer<T>(type: string, name: string, table: Record<string, T[]> | undefined): Promise<T[]> {
    this.queries.push(`${type} ${name}`);
    const code = this.zone.errors?.[`${type} ${name}`];
    if (code !== undefined) throw Object.assign(new Error(`query${type} ${code} ${name}`), { code });
    const records = table?.[name];
    if (records === undefined) throw Object.assign(new Error(`query${type} ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return records;
  }
}

function sip(text: string): SipUri {
  const uri = parseUri(text);
  if (!isSipUri(uri)) throw new Error(`not a SIP URI: ${text}`);
  return uri;
}

function im(text: string): ImUri {
  const uri = parseUri(text);
  if (!isImUri(uri)) throw new Error(`not an IM URI: ${text}`);
  return uri;
}

function naptr(order: number, preference: number, service: string, replacement: string, flags = 's'): NaptrRecord {
  return { order, preference, flags, service, regexp: '', replacement };
}

function srv(priority: number, weight: number, port: number, name: string): SrvRecord {
  return { priority, weight, port, name };
}

/** Returns the given numbers in turn, then fails loudly: a test must say every draw it makes. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => {
    if (i >= values.length) throw new Error(`random() called more than ${values.length} times`);
    return values[i++]!;
  };
}

const ALL: SipTransportName[] = ['udp', 'tcp', 'tls'];

function options(resolver: DnsResolver, extra: Partial<LocateOptions> = {}): LocateOptions {
  return { resolver, supportedTransports: ALL, random: () => 0, ...extra };
}

/** "tcp 192.0.2.1:5060" per target: compact and readable in failure diffs. */
function brief(targets: readonly ServerTarget[]): string[] {
  return targets.map((t) => `${t.transport} ${t.family === 6 ? `[${t.address}]` : t.address}:${t.port}`);
}

async function locateError(promise: Promise<unknown>): Promise<ServerLocationError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ServerLocationError);
  return error as ServerLocationError;
}

/** The RFC 3263 §4.1 example domain: SIPS+D2T, SIP+D2T, SIP+D2U, each with one server. */
const RFC_EXAMPLE: Zone = {
  naptr: {
    'example.com': [
      // Deliberately not in order: the DNS answer's order must not matter.
      naptr(100, 50, 'SIP+D2U', '_sip._udp.example.com'),
      naptr(50, 50, 'SIPS+D2T', '_sips._tcp.example.com'),
      naptr(90, 50, 'SIP+D2T', '_sip._tcp.example.com'),
    ],
  },
  srv: {
    '_sips._tcp.example.com': [srv(0, 0, 5061, 'tls.example.com')],
    '_sip._tcp.example.com': [srv(0, 0, 5060, 'tcp.example.com')],
    '_sip._udp.example.com': [srv(0, 0, 5060, 'udp.example.com')],
  },
  a: { 'tls.example.com': ['192.0.2.3'], 'tcp.example.com': ['192.0.2.2'], 'udp.example.com': ['192.0.2.1'] },
};

// ---------------------------------------------------------------------------------------------
// §4.1/§4.2: numeric targets and explicit ports
// ---------------------------------------------------------------------------------------------

describe('numeric TARGET (RFC 3263 §4.1, §4.2): no DNS at all', () => {
  it('sip: gets UDP at 5060, sips: gets TLS at 5061', async () => {
    const resolver = new FakeResolver({});
    const plain = await locateServers(sip('sip:alice@192.0.2.7'), options(resolver));
    expect(plain).toEqual([
      { transport: 'udp', address: '192.0.2.7', port: 5060, family: 4, host: '192.0.2.7', targetName: '192.0.2.7', source: 'numeric' },
    ]);
    expect(brief(await locateServers(sip('sips:alice@192.0.2.7'), options(resolver)))).toEqual(['tls 192.0.2.7:5061']);
    expect(resolver.queries).toEqual([]);
  });

  it('IPv6 literal loses its brackets; the port and the transport parameter are used as given', async () => {
    const resolver = new FakeResolver({});
    const [v6] = await locateServers(sip('sip:[2001:DB8::1]:5070;transport=tcp'), options(resolver));
    expect(v6).toMatchObject({ transport: 'tcp', address: '2001:db8::1', port: 5070, family: 6, source: 'numeric' });
    expect(brief(await locateServers(sip('sips:192.0.2.7;transport=tcp'), options(resolver)))).toEqual(['tls 192.0.2.7:5061']);
    expect(resolver.queries).toEqual([]);
  });

  it('without UDP support a sip: URI falls back to TCP; sips: without TLS is refused', async () => {
    const resolver = new FakeResolver({});
    expect(brief(await locateServers(sip('sip:192.0.2.7'), options(resolver, { supportedTransports: ['tcp'] })))).toEqual(['tcp 192.0.2.7:5060']);
    const error = await locateError(locateServers(sip('sips:192.0.2.7'), options(resolver, { supportedTransports: ['udp', 'tcp'] })));
    expect(error.code).toBe('unsupported-transport');
    expect(error.message).toMatch(/TLS/);
  });

  it('maddr is TARGET when present (§4)', async () => {
    const resolver = new FakeResolver({});
    expect(brief(await locateServers(sip('sip:alice@example.com;maddr=192.0.2.9'), options(resolver)))).toEqual(['udp 192.0.2.9:5060']);
    expect(resolver.queries).toEqual([]);
  });
});

describe('explicit port (§4.2): A/AAAA only, no NAPTR or SRV', () => {
  const zone: Zone = {
    ...RFC_EXAMPLE,
    a: { 'proxy.example.com': ['192.0.2.10', '192.0.2.11'] },
    aaaa: { 'proxy.example.com': ['2001:db8::10'] },
  };

  it('UDP for sip:, addresses IPv4 first by default, DNS order within a family', async () => {
    const resolver = new FakeResolver(zone);
    const targets = await locateServers(sip('sip:alice@proxy.example.com:5070'), options(resolver));
    expect(brief(targets)).toEqual(['udp 192.0.2.10:5070', 'udp 192.0.2.11:5070', 'udp [2001:db8::10]:5070']);
    expect(targets.every((t) => t.source === 'explicit-port' && t.host === 'proxy.example.com')).toBe(true);
    expect(resolver.queries.sort()).toEqual(['A proxy.example.com', 'AAAA proxy.example.com']);
  });

  it('families: [6, 4] puts IPv6 first; [4] does not even ask for AAAA', async () => {
    const six = new FakeResolver(zone);
    expect(brief(await locateServers(sip('sip:proxy.example.com:5070'), options(six, { families: [6, 4] })))).toEqual([
      'udp [2001:db8::10]:5070',
      'udp 192.0.2.10:5070',
      'udp 192.0.2.11:5070',
    ]);
    const four = new FakeResolver(zone);
    expect(brief(await locateServers(sip('sip:proxy.example.com:5070'), options(four, { families: [4] })))).toHaveLength(2);
    expect(four.queries).toEqual(['A proxy.example.com']);
  });

  it('TLS for sips:, and the transport parameter still wins', async () => {
    const resolver = new FakeResolver(zone);
    expect(brief(await locateServers(sip('sips:proxy.example.com:5071'), options(resolver, { families: [4] })))[0]).toBe('tls 192.0.2.10:5071');
    expect(brief(await locateServers(sip('sip:proxy.example.com:5070;transport=TCP'), options(resolver, { families: [4] })))[0]).toBe(
      'tcp 192.0.2.10:5070',
    );
    expect(resolver.queries.some((q) => q.startsWith('SRV') || q.startsWith('NAPTR'))).toBe(false);
  });

  it('a host with no address is a no-records error naming the host', async () => {
    const error = await locateError(locateServers(sip('sip:nowhere.example.com:5060'), options(new FakeResolver({}))));
    expect(error.code).toBe('no-records');
    expect(error.unreachable).toBe(false);
    expect(error.message).toContain('nowhere.example.com');
  });
});

// ---------------------------------------------------------------------------------------------
// §4.1: transport parameter
// ---------------------------------------------------------------------------------------------

describe('transport parameter without port (§4.1, §4.2): SRV for that transport only', () => {
  it('transport=tcp: _sip._tcp, no NAPTR', async () => {
    const resolver = new FakeResolver(RFC_EXAMPLE);
    const targets = await locateServers(sip('sip:bob@example.com;transport=tcp'), options(resolver));
    expect(brief(targets)).toEqual(['tcp 192.0.2.2:5060']);
    expect(targets[0]).toMatchObject({ source: 'srv', host: 'example.com', targetName: 'tcp.example.com' });
    expect(resolver.queries).toEqual(['SRV _sip._tcp.example.com', 'A tcp.example.com', 'AAAA tcp.example.com']);
  });

  it('sips: with transport=tcp means TLS: _sips._tcp', async () => {
    const resolver = new FakeResolver(RFC_EXAMPLE);
    expect(brief(await locateServers(sip('sips:bob@example.com;transport=tcp'), options(resolver)))).toEqual(['tls 192.0.2.3:5061']);
    expect(resolver.queries[0]).toBe('SRV _sips._tcp.example.com');
  });

  it('sip: with transport=tls asks _sips._tcp (§4.2 "if the client wishes to use TLS")', async () => {
    const resolver = new FakeResolver(RFC_EXAMPLE);
    expect(brief(await locateServers(sip('sip:bob@example.com;transport=tls'), options(resolver)))).toEqual(['tls 192.0.2.3:5061']);
  });

  it('no SRV for that transport: A/AAAA of the domain at the default port, same transport', async () => {
    const resolver = new FakeResolver({ a: { 'example.net': ['198.51.100.1'] } });
    const targets = await locateServers(sip('sip:bob@example.net;transport=tcp'), options(resolver));
    expect(brief(targets)).toEqual(['tcp 198.51.100.1:5060']);
    expect(targets[0]!.source).toBe('a-aaaa');
  });

  it('refuses what cannot be done: SIPS over UDP, unknown transports, transports not supported now', async () => {
    const resolver = new FakeResolver(RFC_EXAMPLE);
    const sipsUdp = await locateError(locateServers(sip('sips:bob@example.com;transport=udp'), options(resolver)));
    expect(sipsUdp.code).toBe('unsupported-transport');
    const sctp = await locateError(locateServers(sip('sip:bob@example.com;transport=sctp'), options(resolver)));
    expect(sctp.message).toContain('sctp');
    const tls = await locateError(locateServers(sip('sip:bob@example.com;transport=tls'), options(resolver, { supportedTransports: ['udp', 'tcp'] })));
    expect(tls.code).toBe('unsupported-transport');
    expect(resolver.queries).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// §4.1: NAPTR
// ---------------------------------------------------------------------------------------------

describe('NAPTR (§4.1)', () => {
  it('orders services by order, then preference; each service SRV-resolved in turn', async () => {
    const resolver = new FakeResolver(RFC_EXAMPLE);
    const targets = await locateServers(sip('sip:bob@example.com'), options(resolver));
    expect(brief(targets)).toEqual(['tls 192.0.2.3:5061', 'tcp 192.0.2.2:5060', 'udp 192.0.2.1:5060']);
    expect(targets.every((t) => t.source === 'naptr' && t.host === 'example.com')).toBe(true);
    expect(resolver.queries[0]).toBe('NAPTR example.com');
    expect(resolver.queries).not.toContain('A example.com');
  });

  it('drops services of unsupported transports (MUST): the RFC example client with UDP and TCP uses TCP', async () => {
    const resolver = new FakeResolver(RFC_EXAMPLE);
    const targets = await locateServers(sip('sip:bob@example.com'), options(resolver, { supportedTransports: ['udp', 'tcp'] }));
    expect(brief(targets)).toEqual(['tcp 192.0.2.2:5060', 'udp 192.0.2.1:5060']);
    expect(resolver.queries).not.toContain('SRV _sips._tcp.example.com');
  });

  it('sips: keeps only SIPS services (MUST)', async () => {
    const resolver = new FakeResolver(RFC_EXAMPLE);
    expect(brief(await locateServers(sip('sips:bob@example.com'), options(resolver)))).toEqual(['tls 192.0.2.3:5061']);
  });

  it('preference breaks ties within an order; case of service and flags does not matter', () => {
    const services = selectSipNaptrServices(
      [naptr(10, 20, 'sip+d2u', '_sip._udp.x'), naptr(10, 10, 'SIP+D2T', '_sip._tcp.x', 'S'), naptr(5, 99, 'SIPS+D2T', '_sips._tcp.x')],
      { secure: false, supportedTransports: new Set(ALL) },
    );
    expect(services.map((s) => `${s.order}/${s.preference} ${s.transport} ${s.srvName}`)).toEqual([
      '5/99 tls _sips._tcp.x',
      '10/10 tcp _sip._tcp.x',
      '10/20 udp _sip._udp.x',
    ]);
  });

  it('ignores what is not an RFC 3263 SIP record: SCTP, WebSocket, ENUM, other flags, regexps, empty replacement', () => {
    const records: NaptrRecord[] = [
      naptr(1, 1, 'SIP+D2S', '_sip._sctp.x'),
      naptr(1, 1, 'SIPS+D2W', '_sips._ws.x'),
      naptr(1, 1, 'E2U+sip', 'x', 'u'),
      naptr(1, 1, 'SIP+D2T', 'host.x', 'a'),
      { order: 1, preference: 1, flags: 's', service: 'SIP+D2T', regexp: '!^.*$!sip:x!', replacement: '' },
      naptr(1, 1, 'SIP+D2U', ''),
      naptr(2, 1, 'SIP+D2U', '_sip._udp.x'),
    ];
    expect(selectSipNaptrServices(records, { secure: false, supportedTransports: new Set(ALL) }).map((s) => s.srvName)).toEqual(['_sip._udp.x']);
  });

  it('NAPTR records of other services only count as none: SRV queries follow (§4.1)', async () => {
    const resolver = new FakeResolver({
      naptr: { 'example.org': [naptr(100, 50, 'http+N2L+N2C+N2R', 'www.example.org')] },
      srv: { '_sip._udp.example.org': [srv(0, 0, 5060, 'sip.example.org')] },
      a: { 'sip.example.org': ['203.0.113.5'] },
    });
    expect(brief(await locateServers(sip('sip:example.org'), options(resolver)))).toEqual(['udp 203.0.113.5:5060']);
  });

  it('a service whose SRV target is "." is skipped; the next service is used', async () => {
    const resolver = new FakeResolver({
      ...RFC_EXAMPLE,
      srv: { ...RFC_EXAMPLE.srv, '_sips._tcp.example.com': [srv(0, 0, 1, '')] },
    });
    expect(brief(await locateServers(sip('sip:bob@example.com'), options(resolver)))[0]).toBe('tcp 192.0.2.2:5060');
  });

  it('NAPTR services whose SRV names are empty: A/AAAA of the domain with those transports (§4.2)', async () => {
    const resolver = new FakeResolver({
      naptr: { 'example.com': [naptr(10, 0, 'SIP+D2T', '_sip._tcp.example.com'), naptr(20, 0, 'SIP+D2U', '_sip._udp.example.com')] },
      a: { 'example.com': ['192.0.2.50'] },
    });
    const targets = await locateServers(sip('sip:example.com'), options(resolver));
    expect(brief(targets)).toEqual(['tcp 192.0.2.50:5060', 'udp 192.0.2.50:5060']);
    expect(targets[0]!.source).toBe('a-aaaa');
  });
});

// ---------------------------------------------------------------------------------------------
// §4.1/§4.2: no NAPTR
// ---------------------------------------------------------------------------------------------

describe('no NAPTR: SRV per supported transport, then A/AAAA (§4.1, §4.2)', () => {
  const zone: Zone = {
    srv: {
      '_sips._tcp.example.net': [srv(10, 0, 5061, 'tls.example.net')],
      '_sip._tcp.example.net': [srv(10, 0, 5060, 'tcp.example.net')],
      '_sip._udp.example.net': [srv(10, 0, 5060, 'udp.example.net')],
    },
    a: { 'tls.example.net': ['198.51.100.3'], 'tcp.example.net': ['198.51.100.2'], 'udp.example.net': ['198.51.100.1'] },
  };

  it('sip: asks _sips._tcp, _sip._tcp, _sip._udp and lists them in that order', async () => {
    const resolver = new FakeResolver(zone);
    const targets = await locateServers(sip('sip:carol@example.net'), options(resolver));
    expect(brief(targets)).toEqual(['tls 198.51.100.3:5061', 'tcp 198.51.100.2:5060', 'udp 198.51.100.1:5060']);
    expect(targets.every((t) => t.source === 'srv')).toBe(true);
    expect(resolver.queries.slice(0, 4)).toEqual(['NAPTR example.net', 'SRV _sips._tcp.example.net', 'SRV _sip._tcp.example.net', 'SRV _sip._udp.example.net']);
  });

  it('only supported transports are queried', async () => {
    const resolver = new FakeResolver(zone);
    expect(brief(await locateServers(sip('sip:carol@example.net'), options(resolver, { supportedTransports: ['udp'] })))).toEqual([
      'udp 198.51.100.1:5060',
    ]);
    expect(resolver.queries.filter((q) => q.startsWith('SRV'))).toEqual(['SRV _sip._udp.example.net']);
  });

  it('sips: asks only _sips._tcp', async () => {
    const resolver = new FakeResolver(zone);
    expect(brief(await locateServers(sip('sips:carol@example.net'), options(resolver)))).toEqual(['tls 198.51.100.3:5061']);
    expect(resolver.queries.filter((q) => q.startsWith('SRV'))).toEqual(['SRV _sips._tcp.example.net']);
  });

  it('no SRV either: A/AAAA at the default port, UDP for sip:, TLS for sips:', async () => {
    const resolver = new FakeResolver({ a: { 'example.net': ['198.51.100.9'] }, aaaa: { 'example.net': ['2001:db8::9'] } });
    const plain = await locateServers(sip('sip:carol@example.net'), options(resolver));
    expect(brief(plain)).toEqual(['udp 198.51.100.9:5060', 'udp [2001:db8::9]:5060']);
    expect(plain.every((t) => t.source === 'a-aaaa' && t.targetName === 'example.net')).toBe(true);
    expect(brief(await locateServers(sip('sips:carol@example.net'), options(resolver)))).toEqual(['tls 198.51.100.9:5061', 'tls [2001:db8::9]:5061']);
  });

  it('"." as the only SRV target: service unavailable, and no A/AAAA fallback (RFC 2782)', async () => {
    const resolver = new FakeResolver({ srv: { '_sip._udp.example.net': [srv(0, 0, 0, '.')] }, a: { 'example.net': ['198.51.100.9'] } });
    const error = await locateError(locateServers(sip('sip:carol@example.net'), options(resolver, { supportedTransports: ['udp'] })));
    expect(error.code).toBe('service-unavailable');
    expect(resolver.queries).not.toContain('A example.net');
  });

  it('a "." record beside real ones is ignored', async () => {
    const resolver = new FakeResolver({
      srv: { '_sip._udp.example.net': [srv(0, 0, 0, ''), srv(5, 0, 5060, 'udp.example.net')] },
      a: { 'udp.example.net': ['198.51.100.1'] },
    });
    expect(brief(await locateServers(sip('sip:example.net'), options(resolver, { supportedTransports: ['udp'] })))).toEqual(['udp 198.51.100.1:5060']);
  });

  it('SRV targets without addresses are skipped; addresses shared by two targets are listed once', async () => {
    const resolver = new FakeResolver({
      srv: { '_sip._udp.example.net': [srv(1, 0, 5060, 'gone.example.net'), srv(2, 0, 5060, 'a.example.net'), srv(3, 0, 5060, 'b.example.net')] },
      a: { 'a.example.net': ['198.51.100.1'], 'b.example.net': ['198.51.100.1', '198.51.100.2'] },
    });
    const targets = await locateServers(sip('sip:example.net'), options(resolver, { supportedTransports: ['udp'] }));
    expect(brief(targets)).toEqual(['udp 198.51.100.1:5060', 'udp 198.51.100.2:5060']);
    expect(targets.map((t) => t.targetName)).toEqual(['a.example.net', 'b.example.net']);
  });
});

// ---------------------------------------------------------------------------------------------
// RFC 2782 ordering
// ---------------------------------------------------------------------------------------------

describe('SRV order (RFC 2782)', () => {
  it('lower priority first, whatever the weights', () => {
    const ordered = orderSrvRecords([srv(20, 100, 1, 'late'), srv(10, 1, 1, 'early'), srv(15, 0, 1, 'middle')], () => 0.99);
    expect(ordered.map((r) => r.name)).toEqual(['early', 'middle', 'late']);
  });

  it('within a priority, a draw picks the first record whose running sum reaches it', () => {
    // Sorted: a(10), b(30), c(60); running sums 10, 40, 100; draws are floor(r * 101).
    const records = [srv(0, 60, 1, 'c'), srv(0, 10, 1, 'a'), srv(0, 30, 1, 'b')];
    // First draw 50 -> c (running 100). Rest a(10), b(30): sums 10, 40; draw floor(0.3 * 41) = 12 -> b.
    expect(orderSrvRecords(records, sequence(0.5, 0.3, 0)).map((r) => r.name)).toEqual(['c', 'b', 'a']);
    // First draw 0 -> a. Rest b, c: sums 30, 90; draw floor(0.2 * 91) = 18 -> b.
    expect(orderSrvRecords(records, sequence(0, 0.2, 0)).map((r) => r.name)).toEqual(['a', 'b', 'c']);
  });

  it('over a uniform sweep of draws, each record comes first in proportion to its weight', () => {
    // With weights 10, 30, 60 (total 100) the draw is an integer 0..100: sweep all 101 of them.
    const records = [srv(0, 10, 1, 'a'), srv(0, 30, 1, 'b'), srv(0, 60, 1, 'c')];
    const firsts = new Map<string, number>();
    for (let draw = 0; draw <= 100; draw++) {
      const r = (draw + 0.5) / 101; // floor(r * 101) === draw
      let call = 0;
      const first = orderSrvRecords(records, () => (call++ === 0 ? r : 0))[0]!.name;
      firsts.set(first, (firsts.get(first) ?? 0) + 1);
    }
    // Draws 0..10 -> a (11: the 0 draw goes to the first record), 11..40 -> b, 41..100 -> c.
    expect(Object.fromEntries(firsts)).toEqual({ a: 11, b: 30, c: 60 });
  });

  it('weight-0 records go first in the running sum: picked only by a draw of 0', () => {
    const records = [srv(0, 5, 1, 'heavy'), srv(0, 0, 1, 'zero')];
    expect(orderSrvRecords(records, sequence(0, 0)).map((r) => r.name)).toEqual(['zero', 'heavy']);
    // Any draw from 1 to 5 picks "heavy"; the last one left is "zero".
    expect(orderSrvRecords(records, sequence(1 / 6, 0)).map((r) => r.name)).toEqual(['heavy', 'zero']);
    expect(orderSrvRecords(records, sequence(0.99, 0)).map((r) => r.name)).toEqual(['heavy', 'zero']);
  });

  it('all weights 0: a stable order (by target, then port) however DNS ordered the answer', () => {
    const shuffled = [srv(0, 0, 5062, 'b'), srv(0, 0, 5061, 'a'), srv(0, 0, 5060, 'b')];
    expect(orderSrvRecords(shuffled, Math.random).map((r) => `${r.name}:${r.port}`)).toEqual(['a:5061', 'b:5060', 'b:5062']);
  });

  it('the injected random decides the order of a whole located list', async () => {
    const zone: Zone = {
      srv: { '_sip._udp.lb.example': [srv(0, 1, 5060, 'one.lb.example'), srv(0, 3, 5060, 'two.lb.example')] },
      a: { 'one.lb.example': ['192.0.2.1'], 'two.lb.example': ['192.0.2.2'] },
    };
    const pick = (r: number): Promise<ServerTarget[]> =>
      locateServers(sip('sip:lb.example'), options(new FakeResolver(zone), { supportedTransports: ['udp'], random: sequence(r, 0) }));
    // Total 4, draws 0..4: 0-1 -> one, 2-4 -> two.
    expect(brief(await pick(0.3))).toEqual(['udp 192.0.2.1:5060', 'udp 192.0.2.2:5060']);
    expect(brief(await pick(0.5))).toEqual(['udp 192.0.2.2:5060', 'udp 192.0.2.1:5060']);
  });
});

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

describe('DNS failures', () => {
  it('a failed NAPTR query does not stop SRV and A/AAAA', async () => {
    const resolver = new FakeResolver({
      errors: { 'NAPTR example.com': 'ETIMEOUT' },
      srv: { '_sip._udp.example.com': [srv(0, 0, 5060, 'sip.example.com')] },
      a: { 'sip.example.com': ['192.0.2.1'] },
    });
    expect(brief(await locateServers(sip('sip:example.com'), options(resolver, { supportedTransports: ['udp'] })))).toEqual(['udp 192.0.2.1:5060']);
  });

  it('nothing found and lookups failed: lookup-failed, unreachable, with every failure listed', async () => {
    const resolver = new FakeResolver({
      errors: {
        'NAPTR example.com': 'ECONNREFUSED',
        'SRV _sip._udp.example.com': 'ECONNREFUSED',
        'A example.com': 'ESERVFAIL',
        'AAAA example.com': 'ETIMEOUT',
      },
    });
    const error = await locateError(locateServers(sip('sip:example.com'), options(resolver, { supportedTransports: ['udp'] })));
    expect(error.code).toBe('lookup-failed');
    expect(error.unreachable).toBe(true);
    expect(error.domain).toBe('example.com');
    expect(error.lookupFailures.map((f) => `${f.type} ${f.code}`)).toEqual(['NAPTR ECONNREFUSED', 'SRV ECONNREFUSED', 'A ESERVFAIL', 'AAAA ETIMEOUT']);
    expect(error.message).toContain('A example.com: ESERVFAIL');
  });

  it('nothing at all: no-records, not unreachable', async () => {
    const error = await locateError(locateServers(sip('sip:example.invalid'), options(new FakeResolver({}))));
    expect(error.code).toBe('no-records');
    expect(error.unreachable).toBe(false);
    expect(error.message).toMatch(/no A\/AAAA records for example\.invalid, nor usable NAPTR or SRV records/);
  });

  it('an error that is not a DNS answer is a bug, not "no records": it propagates', async () => {
    class BrokenResolver extends FakeResolver {
      override resolveNaptr(): Promise<NaptrRecord[]> {
        return Promise.reject(new TypeError('boom'));
      }
    }
    await expect(locateServers(sip('sip:example.com'), options(new BrokenResolver({})))).rejects.toThrow(TypeError);
  });

  it('the domain is lowercased and loses a trailing dot; host always names it, never the SRV target', async () => {
    const resolver = new FakeResolver(RFC_EXAMPLE);
    const targets = await locateServers(sip('sip:bob@Example.COM.'), options(resolver));
    expect(new Set(targets.map((t) => t.host))).toEqual(new Set(['example.com']));
    expect(targets.map((t) => t.targetName)).toEqual(['tls.example.com', 'tcp.example.com', 'udp.example.com']);
  });
});

// ---------------------------------------------------------------------------------------------
// §4.3 failover
// ---------------------------------------------------------------------------------------------

function target(address: string, transport: SipTransportName = 'udp'): ServerTarget {
  return { transport, address, port: 5060, family: 4, host: 'example.com', targetName: 'x.example.com', source: 'srv' };
}

describe('failover (RFC 3263 §4.3)', () => {
  const [a, b, c] = [target('192.0.2.1'), target('192.0.2.2'), target('192.0.2.3')] as const;

  it('which outcomes are failures: 503, transport errors, timeouts without any response', () => {
    expect(failureReason({ kind: 'transport-error' })).toBe('transport-error');
    expect(failureReason({ kind: 'timeout', gotResponse: false })).toBe('timeout');
    expect(failureReason({ kind: 'timeout', gotResponse: true })).toBeUndefined();
    expect(failureReason({ kind: 'response', status: 503 })).toBe('service-unavailable');
    for (const status of [200, 202, 404, 408, 480, 500, 502, 504, 600]) expect(failureReason({ kind: 'response', status })).toBeUndefined();
  });

  it('walks the list in order, one attempt per target, until an outcome stands', () => {
    const failover = new Failover([a, b, c]);
    expect(failover.next()).toBe(a);
    expect(failover.report(a, { kind: 'transport-error' })).toBe(true);
    expect(failover.next()).toBe(b);
    expect(failover.report(b, { kind: 'response', status: 503 })).toBe(true);
    expect(failover.next()).toBe(c);
    expect(failover.report(c, { kind: 'response', status: 200 })).toBe(false);
    expect(failover.tried).toEqual([a, b, c]);
  });

  it('stops on a timeout after a provisional response, and when the list is used up', () => {
    const provisional = new Failover([a, b]);
    provisional.next();
    expect(provisional.report(a, { kind: 'timeout', gotResponse: true })).toBe(false);

    const exhausted = new Failover([a, b]);
    exhausted.next();
    expect(exhausted.report(a, { kind: 'timeout', gotResponse: false })).toBe(true);
    exhausted.next();
    expect(exhausted.report(b, { kind: 'timeout', gotResponse: false })).toBe(false);
    expect(exhausted.next()).toBeUndefined();
    expect(exhausted.remaining).toBe(0);
  });

  it('with shared health, a target that failed recently is tried last by the next request, until its quarantine ends', () => {
    let now = 1_000;
    const health = new TargetHealth({ now: () => now, quarantineMs: 30_000 });
    const first = new Failover([a, b], { health });
    first.report(first.next()!, { kind: 'transport-error' });
    first.report(first.next()!, { kind: 'response', status: 200 });

    const second = new Failover([a, b], { health });
    expect(second.next()).toBe(b);
    expect(second.next()).toBe(a); // still tried, only later
    now += 30_000;
    expect(new Failover([a, b], { health }).next()).toBe(a);
  });

  it('a 503 with Retry-After quarantines for that long; a success clears the record', () => {
    let now = 0;
    const health = new TargetHealth({ now: () => now, quarantineMs: 1_000 });
    const failover = new Failover([a, b], { health });
    failover.report(failover.next()!, { kind: 'response', status: 503, retryAfterSeconds: 120 });
    now = 60_000;
    expect(health.isQuarantined(a)).toBe(true);
    now = 120_000;
    expect(health.isQuarantined(a)).toBe(false);

    health.recordFailure(b);
    expect(health.isQuarantined(b)).toBe(true);
    new Failover([b], { health }).report(b, { kind: 'response', status: 404 });
    expect(health.isQuarantined(b)).toBe(false);
  });

  it('the same address on another transport is another target', () => {
    const failover = new Failover([target('192.0.2.1', 'tcp'), target('192.0.2.1', 'udp')]);
    expect(failover.next()?.transport).toBe('tcp');
    expect(failover.next()?.transport).toBe('udp');
  });
});

// ---------------------------------------------------------------------------------------------
// im: (RFC 3428 §5, RFC 3861, RFC 5509)
// ---------------------------------------------------------------------------------------------

describe('im: and pres: URIs (RFC 3861 _im._sip / _pres._sip SRV)', () => {
  it('_im._sip SRV gives the servers; the Request-URI is sip:user@domain; host stays the IM domain', async () => {
    const resolver = new FakeResolver({
      srv: { '_im._sip.example.com': [srv(20, 0, 5070, 'backup.example.com'), srv(10, 0, 5080, 'im.example.com')] },
      a: { 'im.example.com': ['192.0.2.20'], 'backup.example.com': ['192.0.2.21'] },
    });
    const { requestUri, targets } = await resolveImUri(im('im:alice@example.com'), options(resolver));
    expect(requestUri).toMatchObject({ scheme: 'sip', user: 'alice', host: 'example.com' });
    expect(requestUri.port).toBeUndefined();
    expect(brief(targets)).toEqual(['udp 192.0.2.20:5080', 'udp 192.0.2.21:5070']);
    expect(targets.every((t) => t.source === 'im-srv' && t.host === 'example.com')).toBe(true);
    expect(resolver.queries[0]).toBe('SRV _im._sip.example.com');
  });

  it('pres: asks _pres._sip', async () => {
    const resolver = new FakeResolver({ srv: { '_pres._sip.example.com': [srv(0, 0, 5060, 'p.example.com')] }, a: { 'p.example.com': ['192.0.2.30'] } });
    expect(brief((await resolveImUri(im('pres:alice@example.com'), options(resolver))).targets)).toEqual(['udp 192.0.2.30:5060']);
  });

  it('no _im._sip records: RFC 3263 on the domain itself', async () => {
    const resolver = new FakeResolver(RFC_EXAMPLE);
    const { requestUri, targets } = await resolveImUri(im('im:bob@example.com'), options(resolver));
    expect(requestUri.host).toBe('example.com');
    expect(brief(targets)[0]).toBe('tls 192.0.2.3:5061');
    expect(targets[0]!.source).toBe('naptr');
  });

  it('"." for _im._sip: service unavailable, no fallback', async () => {
    const resolver = new FakeResolver({ ...RFC_EXAMPLE, srv: { ...RFC_EXAMPLE.srv, '_im._sip.example.com': [srv(0, 0, 0, '')] } });
    expect((await locateError(resolveImUri(im('im:bob@example.com'), options(resolver)))).code).toBe('service-unavailable');
  });
});
