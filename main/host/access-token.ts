/**
 * The per-launch secret of the browser host. Anything on this machine can connect to a port
 * on 127.0.0.1 (other users, a web page in any browser via DNS rebinding or a cross-site
 * WebSocket), so binding to loopback is not access control: this token is. It is 256 random
 * bits, made fresh at every launch, printed only to whoever started `sipnote ui`, and required
 * on every HTTP request and WebSocket connection, in the URL (`?token=`) or in the cookie the
 * host sets from it. Comparisons take the same time whatever the guess.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export function newAccessToken(): string {
  return randomBytes(32).toString('base64url');
}

/** One cookie per port: cookies ignore ports, and two hosts on one machine must not share a name. */
export function tokenCookieName(port: number): string {
  return `sipnote-token-${port}`;
}

/** The token a request carries, from `?token=` first, else from our cookie. */
export function presentedToken(request: IncomingMessage, url: URL, port: number): { readonly token: string; readonly from: 'query' | 'cookie' } | undefined {
  const fromQuery = url.searchParams.get('token');
  if (fromQuery !== null) return { token: fromQuery, from: 'query' };
  const name = tokenCookieName(port);
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return { token: rest.join('='), from: 'cookie' };
  }
  return undefined;
}

export function sameToken(presented: string, expected: string): boolean {
  const a = Buffer.from(presented, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  if (a.length !== b.length) {
    timingSafeEqual(b, b);
    return false;
  }
  return timingSafeEqual(a, b);
}
