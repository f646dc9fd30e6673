/**
 * Which transaction a message belongs to (RFC 3261 §17.1.3, §17.2.3).
 *
 * A response matches the client transaction whose request had the same top-Via branch and
 * CSeq method. A request matches a server transaction by branch, sent-by and method when the
 * branch carries the RFC 3261 magic cookie; requests from RFC 2543 peers (no cookie) fall back
 * to comparing Request-URI, tags, Call-ID, CSeq and the top Via (§17.2.3, last paragraphs).
 * Keys are strings so the transaction tables are plain Maps.
 *
 * A key outlives its message (a completed UDP server transaction is kept 32 s, §17.2.2), and
 * the pieces it is made of are slices of the parsed message's text. Joined with
 * `Array.prototype.join`, it is a flat copy of its own; built with `+` or a template literal,
 * V8 may keep it as a rope of those slices, and every key would keep its whole header section
 * alive.
 */
import type { SipRequest, SipResponse } from '../message/sip-message.js';

const MAGIC_COOKIE = 'z9hG4bK';

/** §17.1.3: top Via branch + CSeq method. Throws ParseError on a malformed Via or CSeq. */
export function clientTransactionKey(message: SipRequest | SipResponse): string {
  const branch = message.topVia.params.get('branch') ?? '';
  return `${branch}\n${message.cseq.method}`;
}

/** §17.2.3: the key a request's server transaction is filed under. */
export function serverTransactionKey(request: SipRequest): string {
  const via = request.topVia;
  // ACK for a non-2xx belongs to the INVITE transaction it acknowledges.
  const method = request.method === 'ACK' ? 'INVITE' : request.method;
  const branch = via.params.get('branch') ?? '';
  const sentBy = `${via.host.toLowerCase()}:${via.port ?? ''}`;
  if (branch.startsWith(MAGIC_COOKIE)) return ['3261', branch, sentBy, method].join('\n');
  const fromTag = request.from.params.get('tag') ?? '';
  const toTag = request.to.params.get('tag') ?? '';
  return ['2543', request.uri, fromTag, toTag, request.callId, request.cseq.seq, method, sentBy, branch].join('\n');
}
