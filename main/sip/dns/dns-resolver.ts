/**
 * The DNS queries RFC 3263 needs, behind an interface small enough to fake in tests.
 *
 * `DnsResolver` is the part of node:dns/promises `Resolver` that server location uses: NAPTR
 * (RFC 3403), SRV (RFC 2782), A and AAAA. A real `Resolver` satisfies it as it is, and so does
 * any object with these four methods, so a test can answer from a table or point a real
 * resolver at a DNS server on the loopback (`setServers(['127.0.0.1:5353'])`).
 *
 * Node rejects a query with an Error whose `code` is ENOTFOUND (NXDOMAIN: no such name) or
 * ENODATA (the name exists, without records of that type) when DNS answered "nothing"; any
 * other code (ETIMEOUT, ESERVFAIL, ECONNREFUSED, EREFUSED, ...) means DNS did not answer the
 * question. `classifyDnsError` draws that line for server-location.
 */
import type { NaptrRecord, SrvRecord } from 'node:dns';
import { Resolver } from 'node:dns/promises';

export type { NaptrRecord, SrvRecord };

export interface DnsResolver {
  resolveNaptr(name: string): Promise<NaptrRecord[]>;
  resolveSrv(name: string): Promise<SrvRecord[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

export interface DnsResolverOptions {
  /** DNS servers as node:dns takes them ('127.0.0.1:5353', '[::1]:53'); default: the system's. */
  servers?: readonly string[];
  /** Per-try query timeout. Default 2000 ms. */
  timeoutMs?: number;
  /** Tries per server before a query fails with ETIMEOUT. Default 2. */
  tries?: number;
}

/**
 * A real resolver (c-ares through node:dns, not getaddrinfo: NAPTR and SRV need it). The
 * defaults bound a lookup of a dead DNS server to about 2 × 2 s per query, instead of
 * c-ares' 4 tries with growing timeouts, because a user waits on it.
 */
export function createDnsResolver(options: DnsResolverOptions = {}): Resolver {
  const resolver = new Resolver({ timeout: options.timeoutMs ?? 2000, tries: options.tries ?? 2 });
  if (options.servers !== undefined) resolver.setServers([...options.servers]);
  return resolver;
}

/**
 * 'empty' when DNS answered that there is no such record, 'failed' with the code when it did
 * not answer. Anything that is not a node:dns error (no string `code`) is a bug and is
 * rethrown rather than read as "no records".
 */
export function classifyDnsError(error: unknown): { kind: 'empty' } | { kind: 'failed'; code: string } {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') throw error;
  if (code === 'ENOTFOUND' || code === 'ENODATA') return { kind: 'empty' };
  return { kind: 'failed', code };
}
