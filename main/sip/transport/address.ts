/**
 * IP address helpers shared by the transport modules.
 *
 * The transport layer deals in IP literals only: turning names into addresses is the job of
 * RFC 3263 server location above it. Addresses are kept in one canonical spelling so that a
 * connection opened to "0:0:0:0:0:0:0:1" is found again for "::1" (RFC 3261 §18: reuse a
 * connection to the same address, port and transport).
 */
import { isIP } from 'node:net';

export type AddressFamily = 'IPv4' | 'IPv6';

/** An IP address and port, as on the wire. */
export interface Endpoint {
  address: string;
  port: number;
}

/**
 * The canonical form of an IP literal, or undefined if `text` is not one. Accepts IPv6 with or
 * without brackets and with a zone (`fe80::1%eth0`); IPv4-mapped IPv6 becomes plain IPv4.
 */
export function canonicalIp(text: string): string | undefined {
  // Every datagram's source and every response's target come through here, mostly the same
  // address again and again; an IPv6 one costs a URL parse.
  if (text === lastText) return lastCanonical;
  const canonical = canonicalIpOf(text);
  lastText = text;
  lastCanonical = canonical;
  return canonical;
}

/** The last address `canonicalIp` was asked about, and its answer. */
let lastText = '';
let lastCanonical: string | undefined;

function canonicalIpOf(text: string): string | undefined {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const kind = isIP(bare);
  if (kind === 4) return bare;
  if (kind !== 6) return undefined;
  const zoneAt = bare.indexOf('%');
  const zone = zoneAt === -1 ? '' : bare.slice(zoneAt);
  const base = zoneAt === -1 ? bare : bare.slice(0, zoneAt);
  // The WHATWG URL parser prints IPv6 in the RFC 5952 canonical form.
  const canonical = new URL(`http://[${base}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped && zone === '') {
    const high = parseInt(mapped[1]!, 16);
    const low = parseInt(mapped[2]!, 16);
    return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  }
  return canonical + zone;
}

export function addressFamily(ip: string): AddressFamily {
  return isIP(ip) === 4 ? 'IPv4' : 'IPv6';
}

export function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.');
}

export function isUnspecified(ip: string): boolean {
  return ip === '0.0.0.0' || ip === '::';
}

export function isValidPort(port: number, allowZero = false): boolean {
  return Number.isInteger(port) && port <= 65535 && (allowZero ? port >= 0 : port >= 1);
}

/** "1.2.3.4:5060" or "[::1]:5060": one spelling per endpoint, usable as a map key. */
export function endpointKey(ip: string, port: number): string {
  return addressFamily(ip) === 'IPv6' ? `[${ip}]:${port}` : `${ip}:${port}`;
}
