/**
 * One canonical text per address of record, so that `sip:Bob@Example.COM;transport=tcp` and
 * `sip:Bob@example.com` are the same conversation and the same contact (RFC 3261 §10.3 step 5
 * compares AoRs after dropping URI parameters; §19.1.4 says which parts compare how). The
 * canonical form is uri.ts `aorOf` printed by `formatUri`.
 */
import { aorOf, formatUri, parseUri } from '../sip/uri.js';
import { ParseError } from '../sip/message/parse-error.js';
import { StoreError } from './store-error.js';

/** Bounded so a flood of distinct From URIs cannot grow memory without limit. */
const CACHE_LIMIT = 4096;

export class AorCanonicalizer {
  private readonly cache = new Map<string, string>();

  canonical(uri: string): string {
    const cached = this.cache.get(uri);
    if (cached !== undefined) return cached;
    let canonical: string;
    try {
      canonical = formatUri(aorOf(parseUri(uri.trim())));
    } catch (error) {
      if (error instanceof ParseError) throw new StoreError('invalid-input', `not a URI: ${JSON.stringify(uri)}`);
      throw error;
    }
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(uri, canonical);
    return canonical;
  }
}
