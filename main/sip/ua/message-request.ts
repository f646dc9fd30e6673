/**
 * Composing an out-of-dialog MESSAGE request (RFC 3261 §8.1.1, RFC 3428 §4).
 *
 * Request-URI = To URI; To without a tag; a fresh From tag and Call-ID per request; CSeq with
 * the method; Max-Forwards 70; a Via with a fresh branch and `rport` (RFC 3581 §3) so replies
 * find us behind NAT; a Date (RFC 3428 §4 wants one with Expires, and it costs ~40 bytes that
 * the receiver can use to order and age messages). Never a Contact (RFC 3428 §4, Table 1).
 */
import { HeaderList } from '../message/header-list.js';
import { SipRequest } from '../message/sip-message.js';

export type SipTransportName = 'udp' | 'tcp' | 'tls';

export interface SentBy {
  readonly transport: SipTransportName;
  /** Our address as the peer should see it: an IP literal (IPv6 in brackets) or a host name. */
  readonly host: string;
  readonly port: number;
}

export interface MessageRequestInput {
  /** Our address of record, e.g. `sip:alice@example.com`. */
  readonly from: string;
  readonly fromDisplayName?: string;
  /** The recipient's address, e.g. `sip:bob@example.com`. */
  readonly to: string;
  /** Defaults to `to` (§8.1.1.1). */
  readonly requestUri?: string;
  readonly contentType: string;
  readonly body: Buffer;
  /** Seconds the content stays valid (RFC 3428 §4); Date is always sent. */
  readonly expires?: number;
  /** Pre-loaded route set, e.g. an outbound proxy `<sip:proxy;lr>` (§8.1.1.1). */
  readonly route?: readonly string[];
  readonly extraHeaders?: ReadonlyArray<readonly [string, string]>;
}

export interface RequestIdentity {
  readonly branch: string;
  readonly callId: string;
  readonly fromTag: string;
  readonly cseq: number;
  readonly date: Date;
}

export const USER_AGENT = 'sipnote/0.1';

export function buildMessageRequest(input: MessageRequestInput, sentBy: SentBy, id: RequestIdentity): SipRequest {
  const headers = new HeaderList();
  headers.append('Via', formatTopVia(sentBy, id.branch));
  headers.append('Max-Forwards', '70');
  for (const route of input.route ?? []) headers.append('Route', route);
  headers.append('To', `<${input.to}>`);
  headers.append('From', `${displayNamePrefix(input.fromDisplayName)}<${input.from}>;tag=${id.fromTag}`);
  headers.append('Call-ID', id.callId);
  headers.append('CSeq', `${id.cseq} MESSAGE`);
  headers.append('Date', id.date.toUTCString());
  if (input.expires !== undefined) headers.append('Expires', String(input.expires));
  headers.append('User-Agent', USER_AGENT);
  for (const [name, value] of input.extraHeaders ?? []) headers.append(name, value);
  if (input.body.length > 0) headers.append('Content-Type', input.contentType);
  return new SipRequest('MESSAGE', input.requestUri ?? input.to, headers, input.body);
}

/** `SIP/2.0/UDP host:port;branch=…;rport` (§8.1.1.7, §18.1.1, RFC 3581 §3). */
export function formatTopVia(sentBy: SentBy, branch: string): string {
  return `SIP/2.0/${sentBy.transport.toUpperCase()} ${sentBy.host}:${sentBy.port};branch=${branch};rport`;
}

function displayNamePrefix(name: string | undefined): string {
  if (name === undefined || name.length === 0) return '';
  return `"${name.replace(/["\\]/g, (ch) => `\\${ch}`)}" `;
}
