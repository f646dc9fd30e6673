/**
 * The parser benchmark's corpus: the ten datagrams of /work/shared/notes/performance.md,
 * appendix A (`corpus.js`), byte for byte, so our numbers can be set next to the ones measured
 * there for npm `sip` and JsSIP.
 *
 * Six MESSAGE requests (RFC 3428): plain; proxied (2 Via, Record-Route, Cyrillic display name);
 * compact header names (RFC 3261 §7.3.3); folded lines (§7.3.1); with Proxy-Authorization after
 * a 407 (§22.3); IPv6 Via with a message/cpim body (RFC 3862). Four responses: 200, 202 (2 Via),
 * 407 with Proxy-Authenticate, 415 with Accept. Bodies are UTF-8 with accents, Cyrillic, CJK and
 * emoji, so Content-Length (octets, §20.14) differs from the body's length in characters.
 *
 * Each entry also carries what a correct parser must extract from it (`expected`): the check
 * table of the benchmark compares every parser against these literals, not against one another.
 */

const CRLF = '\r\n';

/** What a correct parser reads from one corpus message. */
export interface ExpectedFields {
  /** Request method, or the status code of a response. */
  readonly first: string | number;
  readonly callId: string;
  readonly cseqSeq: number;
  readonly cseqMethod: string;
  readonly fromTag: string;
  /** `null` when the message has no To tag (an out-of-dialog request). */
  readonly toTag: string | null;
  /** The branch of the top (first) Via. */
  readonly topBranch: string;
  /** Host of the top Via, as written (an IPv6 reference keeps its brackets). */
  readonly topViaHost: string;
  readonly viaCount: number;
  /** The body, decoded as UTF-8. */
  readonly body: string;
}

export interface CorpusMessage {
  /** Short label for tables. */
  readonly label: string;
  /** The datagram, as a UDP socket would hand it over. */
  readonly bytes: Buffer;
  readonly expected: ExpectedFields;
}

/** Joins head lines with CRLF, fills in the body's UTF-8 byte length, adds the empty line and body. */
function datagram(head: readonly string[], body: string): Buffer {
  const text = head.join(CRLF).replace('@@LEN@@', String(Buffer.byteLength(body, 'utf8'))) + CRLF + CRLF + body;
  return Buffer.from(text, 'utf8');
}

const body1 =
  'Hi Bob! Are we still on for lunch tomorrow at noon? I booked the table at the café near the station — the one with the crème brûlée. Let me know 👍';
const body2 =
  'Привет, Алиса! Я получил твоё сообщение. Встреча переносится на четверг, 15:30. Пожалуйста, подтверди, что время подходит. Спасибо! 🙂 The draft is in the shared folder.';
const body3 =
  'Ping from the compact-form client. Ünïcödé check: ñ, ø, ß, 東京, 北京. This body is short-ish but long enough to be realistic for a chat line.';
const body4 =
  'A folded-header message body: the quick brown fox jumps over the lazy dog; «guillemets», “smart quotes”, and an em dash — to test UTF-8 length handling in the parser under test.';
const body5 =
  'Retry after 407 with credentials. Déjà vu: this is the same text as before, resent with Proxy-Authorization. Größe, naïve, façade, coöperate, jalapeño, 日本語のテキスト。';
const body6 =
  'From: alice@example.com\r\nTo: bob@example.org\r\nDateTime: 2024-05-01T12:00:00Z\r\n\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 38\r\n\r\nCPIM-wrapped hello — zdravo, Bob! ✓';

export const CORPUS: readonly CorpusMessage[] = [
  {
    label: 'MESSAGE plain',
    bytes: datagram(
      [
        'MESSAGE sip:bob@example.org SIP/2.0',
        'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport',
        'Max-Forwards: 70',
        'From: "Alice Liddell" <sip:alice@example.com>;tag=49583',
        'To: "Bob" <sip:bob@example.org>',
        'Call-ID: asd88asd77a@192.0.2.10',
        'CSeq: 1 MESSAGE',
        'Date: Wed, 01 May 2024 12:00:00 GMT',
        'Content-Type: text/plain;charset=UTF-8',
        'Content-Length: @@LEN@@',
      ],
      body1,
    ),
    expected: {
      first: 'MESSAGE',
      callId: 'asd88asd77a@192.0.2.10',
      cseqSeq: 1,
      cseqMethod: 'MESSAGE',
      fromTag: '49583',
      toTag: null,
      topBranch: 'z9hG4bK776asdhds',
      topViaHost: '192.0.2.10',
      viaCount: 1,
      body: body1,
    },
  },
  {
    label: 'MESSAGE proxied',
    bytes: datagram(
      [
        'MESSAGE sip:alice@198.51.100.7:5062;transport=udp SIP/2.0',
        'Via: SIP/2.0/UDP proxy.example.org:5060;branch=z9hG4bK4b43c2ff8.1;received=203.0.113.5',
        'Via: SIP/2.0/UDP 203.0.113.20:5080;rport=5080;received=203.0.113.20;branch=z9hG4bKnashds7',
        'Record-Route: <sip:proxy.example.org;lr>',
        'Max-Forwards: 69',
        'From: "Иван Петров" <sip:ivan@example.net>;tag=a73kszlfl',
        'To: <sip:alice@example.com>',
        'Call-ID: 1j9FpLxk3uxtm8tn@203.0.113.20',
        'CSeq: 4711 MESSAGE',
        'Date: Wed, 01 May 2024 12:00:05 GMT',
        'User-Agent: ExampleIM/1.2.3',
        'Content-Type: text/plain; charset=UTF-8',
        'Content-Length: @@LEN@@',
      ],
      body2,
    ),
    expected: {
      first: 'MESSAGE',
      callId: '1j9FpLxk3uxtm8tn@203.0.113.20',
      cseqSeq: 4711,
      cseqMethod: 'MESSAGE',
      fromTag: 'a73kszlfl',
      toTag: null,
      topBranch: 'z9hG4bK4b43c2ff8.1',
      topViaHost: 'proxy.example.org',
      viaCount: 2,
      body: body2,
    },
  },
  {
    label: 'MESSAGE compact',
    bytes: datagram(
      [
        'MESSAGE sip:bob@example.org SIP/2.0',
        'v: SIP/2.0/UDP 192.0.2.33:5060;branch=z9hG4bKc0mpact1;rport',
        'Max-Forwards: 70',
        'f: Carol <sip:carol@example.com>;tag=cmp8812',
        't: sip:bob@example.org',
        'i: f81d4fae-7dec-11d0-a765-00a0c91e6bf6@192.0.2.33',
        'CSeq: 2 MESSAGE',
        'c: text/plain;charset=utf-8',
        'l: @@LEN@@',
      ],
      body3,
    ),
    expected: {
      first: 'MESSAGE',
      callId: 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6@192.0.2.33',
      cseqSeq: 2,
      cseqMethod: 'MESSAGE',
      fromTag: 'cmp8812',
      toTag: null,
      topBranch: 'z9hG4bKc0mpact1',
      topViaHost: '192.0.2.33',
      viaCount: 1,
      body: body3,
    },
  },
  {
    label: 'MESSAGE folded',
    bytes: datagram(
      [
        'MESSAGE sip:dave@example.org SIP/2.0',
        'Via: SIP/2.0/UDP 192.0.2.44:5060',
        ' ;branch=z9hG4bKfold3r;rport',
        'Max-Forwards: 70',
        'From: "Erin O\'Neil"',
        '\t<sip:erin@example.com>;tag=fold-77',
        'To: "Dave" <sip:dave@example.org>',
        'Subject: a subject line that is long enough',
        '  to be folded onto a continuation line',
        'Call-ID: folded-a8b7c6d5@192.0.2.44',
        'CSeq: 17 MESSAGE',
        'Date: Wed, 01 May 2024 12:01:00 GMT',
        'Content-Type: text/plain;charset=UTF-8',
        'Content-Length: @@LEN@@',
      ],
      body4,
    ),
    expected: {
      first: 'MESSAGE',
      callId: 'folded-a8b7c6d5@192.0.2.44',
      cseqSeq: 17,
      cseqMethod: 'MESSAGE',
      fromTag: 'fold-77',
      toTag: null,
      topBranch: 'z9hG4bKfold3r',
      topViaHost: '192.0.2.44',
      viaCount: 1,
      body: body4,
    },
  },
  {
    label: 'MESSAGE Proxy-Authz',
    bytes: datagram(
      [
        'MESSAGE sip:bob@example.org SIP/2.0',
        'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhdt;rport',
        'Max-Forwards: 70',
        'From: "Alice Liddell" <sip:alice@example.com>;tag=49584',
        'To: "Bob" <sip:bob@example.org>',
        'Call-ID: asd88asd78b@192.0.2.10',
        'CSeq: 2 MESSAGE',
        'Proxy-Authorization: Digest username="alice", realm="example.org", nonce="4e2f0a1b9c8d7e6f", uri="sip:bob@example.org", response="6629fae49393a05397450978507c4ef1", algorithm=MD5, qop=auth, nc=00000001, cnonce="0a4f113b"',
        'Date: Wed, 01 May 2024 12:00:02 GMT',
        'Content-Type: text/plain;charset=UTF-8',
        'Content-Length: @@LEN@@',
      ],
      body5,
    ),
    expected: {
      first: 'MESSAGE',
      callId: 'asd88asd78b@192.0.2.10',
      cseqSeq: 2,
      cseqMethod: 'MESSAGE',
      fromTag: '49584',
      toTag: null,
      topBranch: 'z9hG4bK776asdhdt',
      topViaHost: '192.0.2.10',
      viaCount: 1,
      body: body5,
    },
  },
  {
    label: 'MESSAGE IPv6 cpim',
    bytes: datagram(
      [
        'MESSAGE sip:bob@example.org SIP/2.0',
        'Via: SIP/2.0/UDP [2001:db8::10]:5060;branch=z9hG4bKv6cpim99;rport',
        'Max-Forwards: 70',
        'From: <sip:alice@example.com>;tag=v6tag1',
        'To: <sip:bob@example.org>',
        'Call-ID: cpim-0001@2001:db8::10',
        'CSeq: 9 MESSAGE',
        'Accept-Contact: *;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"',
        'Expires: 3600',
        'Content-Type: message/cpim',
        'Content-Length: @@LEN@@',
      ],
      body6,
    ),
    expected: {
      first: 'MESSAGE',
      callId: 'cpim-0001@2001:db8::10',
      cseqSeq: 9,
      cseqMethod: 'MESSAGE',
      fromTag: 'v6tag1',
      toTag: null,
      topBranch: 'z9hG4bKv6cpim99',
      topViaHost: '[2001:db8::10]',
      viaCount: 1,
      body: body6,
    },
  },
  {
    label: '200 OK',
    bytes: datagram(
      [
        'SIP/2.0 200 OK',
        'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.10',
        'From: "Alice Liddell" <sip:alice@example.com>;tag=49583',
        'To: "Bob" <sip:bob@example.org>;tag=ab30317f1a784dc48ff824d0d3715d86',
        'Call-ID: asd88asd77a@192.0.2.10',
        'CSeq: 1 MESSAGE',
        'Date: Wed, 01 May 2024 12:00:00 GMT',
        'Content-Length: 0',
      ],
      '',
    ),
    expected: {
      first: 200,
      callId: 'asd88asd77a@192.0.2.10',
      cseqSeq: 1,
      cseqMethod: 'MESSAGE',
      fromTag: '49583',
      toTag: 'ab30317f1a784dc48ff824d0d3715d86',
      topBranch: 'z9hG4bK776asdhds',
      topViaHost: '192.0.2.10',
      viaCount: 1,
      body: '',
    },
  },
  {
    label: '202 Accepted',
    bytes: datagram(
      [
        'SIP/2.0 202 Accepted',
        'Via: SIP/2.0/UDP proxy.example.org:5060;branch=z9hG4bK4b43c2ff8.1;received=203.0.113.5',
        'Via: SIP/2.0/UDP 203.0.113.20:5080;rport=5080;received=203.0.113.20;branch=z9hG4bKnashds7',
        'From: "Иван Петров" <sip:ivan@example.net>;tag=a73kszlfl',
        'To: <sip:alice@example.com>;tag=1928301774',
        'Call-ID: 1j9FpLxk3uxtm8tn@203.0.113.20',
        'CSeq: 4711 MESSAGE',
        'Server: Kamailio (5.6.3 (x86_64/linux))',
        'Content-Length: 0',
      ],
      '',
    ),
    expected: {
      first: 202,
      callId: '1j9FpLxk3uxtm8tn@203.0.113.20',
      cseqSeq: 4711,
      cseqMethod: 'MESSAGE',
      fromTag: 'a73kszlfl',
      toTag: '1928301774',
      topBranch: 'z9hG4bK4b43c2ff8.1',
      topViaHost: 'proxy.example.org',
      viaCount: 2,
      body: '',
    },
  },
  {
    label: '407 Proxy-Authn',
    bytes: datagram(
      [
        'SIP/2.0 407 Proxy Authentication Required',
        'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.10',
        'From: "Alice Liddell" <sip:alice@example.com>;tag=49583',
        'To: "Bob" <sip:bob@example.org>;tag=b27e1a1d33761e85846fc98f5f3a7e58.4f31',
        'Call-ID: asd88asd77a@192.0.2.10',
        'CSeq: 1 MESSAGE',
        'Proxy-Authenticate: Digest realm="example.org", nonce="4e2f0a1b9c8d7e6f", qop="auth", algorithm=MD5',
        'Server: Kamailio (5.6.3 (x86_64/linux))',
        'Content-Length: 0',
      ],
      '',
    ),
    expected: {
      first: 407,
      callId: 'asd88asd77a@192.0.2.10',
      cseqSeq: 1,
      cseqMethod: 'MESSAGE',
      fromTag: '49583',
      toTag: 'b27e1a1d33761e85846fc98f5f3a7e58.4f31',
      topBranch: 'z9hG4bK776asdhds',
      topViaHost: '192.0.2.10',
      viaCount: 1,
      body: '',
    },
  },
  {
    label: '415 Unsupported',
    bytes: datagram(
      [
        'SIP/2.0 415 Unsupported Media Type',
        'Via: SIP/2.0/UDP 192.0.2.33:5060;branch=z9hG4bKc0mpact1;rport=5060;received=192.0.2.33',
        'From: Carol <sip:carol@example.com>;tag=cmp8812',
        'To: <sip:bob@example.org>;tag=415abc',
        'Call-ID: f81d4fae-7dec-11d0-a765-00a0c91e6bf6@192.0.2.33',
        'CSeq: 2 MESSAGE',
        'Accept: text/plain, message/cpim, application/im-iscomposing+xml',
        'Accept-Encoding: identity',
        'Date: Wed, 01 May 2024 12:00:03 GMT',
        'Content-Length: 0',
      ],
      '',
    ),
    expected: {
      first: 415,
      callId: 'f81d4fae-7dec-11d0-a765-00a0c91e6bf6@192.0.2.33',
      cseqSeq: 2,
      cseqMethod: 'MESSAGE',
      fromTag: 'cmp8812',
      toTag: '415abc',
      topBranch: 'z9hG4bKc0mpact1',
      topViaHost: '192.0.2.33',
      viaCount: 1,
      body: '',
    },
  },
];

/** Sum of the datagram sizes (5 485 bytes in the performance note). */
export const CORPUS_BYTES: number = CORPUS.reduce((sum, message) => sum + message.bytes.length, 0);
