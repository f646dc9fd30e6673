import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeaderList } from '../../main/sip/message/header-list.js';
import { parseMessage } from '../../main/sip/message/parse.js';
import { ParseError } from '../../main/sip/message/parse-error.js';
import { serializeMessage } from '../../main/sip/message/serialize.js';
import { SipRequest, SipResponse, validateEssentialHeaders, type SipMessage } from '../../main/sip/message/sip-message.js';

const crlf = (lines: string[]): Buffer => Buffer.from(lines.join('\r\n'), 'utf8');

const BASIC = [
  'MESSAGE sip:bob@example.com SIP/2.0',
  'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport',
  'Max-Forwards: 70',
  'To: Bob <sip:bob@example.com>',
  'From: "Alice A." <sip:alice@example.com>;tag=1928301774',
  'Call-ID: a84b4c76e66710@pc33.example.com',
  'CSeq: 1 MESSAGE',
  'Content-Type: text/plain;charset=utf-8',
  'Content-Length: 13',
  '',
  'Grüße, Bob!',
];

function expectParseError(data: Buffer, code?: ParseError['code']): ParseError {
  try {
    parseMessage(data);
  } catch (error) {
    expect(error).toBeInstanceOf(ParseError);
    if (code !== undefined) expect((error as ParseError).code).toBe(code);
    return error as ParseError;
  }
  throw new Error('expected a ParseError');
}

describe('parseMessage: requests', () => {
  it('reads the start line, headers and a UTF-8 body by octet count', () => {
    const message = parseMessage(crlf(BASIC));
    expect(message).toBeInstanceOf(SipRequest);
    const request = message as SipRequest;
    expect(request.method).toBe('MESSAGE');
    expect(request.uri).toBe('sip:bob@example.com');
    expect(request.callId).toBe('a84b4c76e66710@pc33.example.com');
    expect(request.cseq).toEqual({ seq: 1, method: 'MESSAGE' });
    expect(request.body.toString('utf8')).toBe('Grüße, Bob!');
    expect(request.body.length).toBe(13);
    expect(request.from.params.get('tag')).toBe('1928301774');
    expect(request.from.displayName).toBe('Alice A.');
    expect(request.topVia.params.get('branch')).toBe('z9hG4bK776asdhds');
    validateEssentialHeaders(request);
  });

  it('unfolds continuation lines and accepts whitespace around the colon (§7.3.1)', () => {
    const message = parseMessage(
      crlf([
        'OPTIONS sip:bob@example.com SIP/2.0',
        'Via  :  SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa',
        'Subject: first part',
        '   and\tsecond part',
        '\tthird',
        'To: <sip:bob@example.com>',
        '',
        '',
      ]),
    );
    expect(message.headers.get('subject')).toBe('first part and\tsecond part third');
    expect(message.headers.get('via')).toBe('SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa');
  });

  it('understands compact header forms (§7.3.3)', () => {
    const message = parseMessage(
      crlf([
        'MESSAGE sip:bob@example.com SIP/2.0',
        'v: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKb',
        'f: <sip:alice@example.com>;tag=x',
        't: <sip:bob@example.com>',
        'i: compact@x',
        'CSeq: 2 MESSAGE',
        'c: text/plain',
        'l: 2',
        '',
        'hi',
      ]),
    );
    expect(message.callId).toBe('compact@x');
    expect(message.headers.get('Content-Type')).toBe('text/plain');
    expect(message.topVia.transport).toBe('TCP');
    expect(message.body.toString()).toBe('hi');
  });

  it('keeps list headers as rows and splits them on demand', () => {
    const message = parseMessage(
      crlf(['OPTIONS sip:b@x SIP/2.0', 'Allow: MESSAGE, OPTIONS', 'Allow: INFO', 'Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2', '', '']),
    );
    expect(message.headers.getList('allow')).toEqual(['MESSAGE', 'OPTIONS', 'INFO']);
    expect(message.vias.map((v) => v.host)).toEqual(['a', 'b']);
  });

  it('reads the Vias of every row in order, a list row and single rows alike, and none as empty', () => {
    const message = parseMessage(
      crlf(['OPTIONS sip:b@x SIP/2.0', 'Via: SIP/2.0/UDP a;branch=z9hG4bK1', 'v: SIP/2.0/UDP b;branch=z9hG4bK2, SIP/2.0/TCP c;branch=z9hG4bK3', 'Via: SIP/2.0/UDP d;branch=z9hG4bK4', '', '']),
    );
    expect(message.vias.map((v) => v.host)).toEqual(['a', 'b', 'c', 'd']);
    expect(message.vias).toBe(message.vias);
    expect(parseMessage(crlf(['OPTIONS sip:b@x SIP/2.0', 'Call-ID: x', '', ''])).vias).toEqual([]);
  });

  it('ignores CRLFs before the start line (§7.5) and tolerates LF-only line ends', () => {
    const message = parseMessage(Buffer.from('\r\n\r\nOPTIONS sip:b@x SIP/2.0\nCall-ID: lf\nContent-Length: 0\n\n'));
    expect(message.callId).toBe('lf');
  });

  it('takes the body to the end of a datagram without Content-Length, and discards extra octets after it (§18.3)', () => {
    const noLength = parseMessage(crlf(['MESSAGE sip:b@x SIP/2.0', 'Call-ID: a', '', 'tail bytes']));
    expect(noLength.body.toString()).toBe('tail bytes');
    const extra = parseMessage(crlf(['MESSAGE sip:b@x SIP/2.0', 'Content-Length: 4', '', 'tail bytes']));
    expect(extra.body.toString()).toBe('tail');
  });

  it('keeps binary bodies byte for byte', () => {
    const body = Buffer.from([0, 1, 2, 0xff, 0x0d, 0x0a, 0x0d, 0x0a, 0x80]);
    const head = Buffer.from(`MESSAGE sip:b@x SIP/2.0\r\nContent-Type: application/pkcs7-mime\r\nContent-Length: ${body.length}\r\n\r\n`);
    const message = parseMessage(Buffer.concat([head, body]));
    expect(Buffer.compare(message.body, body)).toBe(0);
  });
});

describe('parseMessage: responses', () => {
  it('reads status, reason (UTF-8, may be empty)', () => {
    const ok = parseMessage(crlf(['SIP/2.0 200 Très bien', 'Content-Length: 0', '', ''])) as SipResponse;
    expect(ok).toBeInstanceOf(SipResponse);
    expect(ok.status).toBe(200);
    expect(ok.reason).toBe('Très bien');
    const bare = parseMessage(crlf(['SIP/2.0 100 ', 'Content-Length: 0', '', ''])) as SipResponse;
    expect(bare.reason).toBe('');
  });

  it.each(['SIP/2.0 4294967301 big', 'SIP/2.0 99 small', 'SIP/2.0 abc x', 'SIP/2.0 700 too big'])('rejects the status line %j', (line) => {
    expectParseError(crlf([line, '', '']), 'bad-status');
  });
});

describe('parseMessage: malformed input', () => {
  it.each([
    ['INVITE  sip:a@b SIP/2.0', 'bad-start-line'],
    ['INVITE sip:a@b  SIP/2.0', 'bad-start-line'],
    ['INVITE <sip:a@b> SIP/2.0', 'bad-uri'],
    ['INVITE sip:a@b', 'bad-start-line'],
    ['INV(ITE sip:a@b SIP/2.0', 'bad-method'],
    ['INVITE sip:a@b HTTP/1.1', 'bad-version'],
  ] as const)('rejects the request line %j', (line, code) => {
    expectParseError(crlf([line, 'Content-Length: 0', '', '']), code);
  });

  it('accepts other SIP versions syntactically (the UAS answers 505)', () => {
    expect(parseMessage(crlf(['OPTIONS sip:a@b SIP/7.0', '', ''])).version).toBe('SIP/7.0');
  });

  it('rejects header lines without a colon or with an invalid name', () => {
    expectParseError(crlf(['OPTIONS sip:a@b SIP/2.0', 'NoColonHere', '', '']), 'bad-header');
    expectParseError(crlf(['OPTIONS sip:a@b SIP/2.0', 'Bad Name: x', '', '']), 'bad-header');
    expectParseError(crlf(['OPTIONS sip:a@b SIP/2.0', ' leading continuation', '', '']), 'bad-header');
  });

  it('rejects disagreeing or malformed Content-Length, and a body shorter than announced', () => {
    expectParseError(crlf(['OPTIONS sip:a@b SIP/2.0', 'Content-Length: 3', 'l: 4', '', 'abcd']), 'bad-content-length');
    expectParseError(crlf(['OPTIONS sip:a@b SIP/2.0', 'Content-Length: -1', '', '']), 'bad-content-length');
    const short = expectParseError(crlf(['OPTIONS sip:a@b SIP/2.0', 'Call-ID: x', 'Content-Length: 9999', '', 'abc']), 'body-length-mismatch');
    // The UAS still gets the message to answer 400 with.
    expect(short.partial?.callId).toBe('x');
  });

  it('requires Content-Length on streams', () => {
    expect(() => parseMessage(crlf(['OPTIONS sip:a@b SIP/2.0', '', '']), { framing: 'stream' })).toThrow(ParseError);
  });

  it('enforces limits on size, header count and line length', () => {
    expectParseError(Buffer.alloc(70_000, 0x41), 'too-large');
    const many = ['OPTIONS sip:a@b SIP/2.0', ...Array.from({ length: 300 }, (_, i) => `X-H${i}: v`), '', ''];
    expectParseError(crlf(many), 'too-many-headers');
    expectParseError(crlf(['OPTIONS sip:a@b SIP/2.0', `Subject: ${'x'.repeat(10_000)}`, '', '']), 'line-too-long');
    expectParseError(crlf(['OPTIONS sip:a@b SIP/2.0', 'Subject: no end']), 'truncated');
    expectParseError(Buffer.from('\r\n\r\n'), 'empty');
    expectParseError(Buffer.alloc(0), 'empty');
  });

  it('reports malformed essential headers as ParseError naming the header, lazily', () => {
    const message = parseMessage(crlf(['MESSAGE sip:a@b SIP/2.0', 'CSeq: one MESSAGE', 'Call-ID: x', '', '']));
    expect(() => message.cseq).toThrow(ParseError);
    try {
      validateEssentialHeaders(message);
    } catch (error) {
      expect(error).toBeInstanceOf(ParseError);
    }
  });
});

describe('serializeMessage', () => {
  it('round-trips a parsed message', () => {
    const message = parseMessage(crlf(BASIC));
    const again = parseMessage(serializeMessage(message));
    expect(view(again)).toEqual(view(message));
  });

  it('always writes Content-Length from the body octets', () => {
    const request = new SipRequest('MESSAGE', 'sip:b@x', HeaderList.of([['Content-Length', '999'], ['Call-ID', 'c']]), Buffer.from('€'));
    const text = serializeMessage(request).toString('utf8');
    expect(text).toContain('Content-Length: 3\r\n');
    expect(text).not.toContain('999');
    const plain = serializeMessage(new SipRequest('OPTIONS', 'sip:b@x', new HeaderList(), Buffer.alloc(0))).toString();
    expect(plain).toBe('OPTIONS sip:b@x SIP/2.0\r\nContent-Length: 0\r\n\r\n');
  });
});

/** A structural view for comparing messages. */
function view(message: SipMessage): unknown {
  return {
    start: message.kind === 'request' ? [message.method, message.uri, message.version] : [message.status, message.reason, message.version],
    headers: message.headers.entries().map((row) => [row.key, row.value]).filter(([key]) => key !== 'content-length'),
    body: message.body.toString('base64'),
  };
}

describe('properties', () => {
  it('random bytes give a message or a ParseError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          parseMessage(Buffer.from(bytes));
        } catch (error) {
          if (!(error instanceof ParseError)) throw error;
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('mutations of a valid message give a message or a ParseError, and the lazy accessors too', () => {
    const base = crlf(BASIC);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.nat(base.length), (edits, cut) => {
        const bytes = Buffer.from(base.subarray(0, Math.max(cut, 1)));
        for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
        try {
          const message = parseMessage(bytes);
          validateEssentialHeaders(message);
        } catch (error) {
          if (!(error instanceof ParseError)) throw error;
        }
      }),
      { numRuns: 3000 },
    );
  });

  const token = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,12}$/);
  const value = fc.stringMatching(/^[!-~]([ -~]{0,30}[!-~])?$/);

  it('serialize then parse gives the same message', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('MESSAGE', 'OPTIONS', 'INFO'),
        fc.array(fc.tuple(token, value), { maxLength: 12 }),
        fc.uint8Array({ maxLength: 200 }),
        (method, rows, body) => {
          const headers = HeaderList.of(rows.filter(([name]) => name.toLowerCase() !== 'content-length' && name.toLowerCase() !== 'l'));
          const message = new SipRequest(method, 'sip:bob@example.com', headers, Buffer.from(body));
          const again = parseMessage(serializeMessage(message));
          expect(view(again)).toEqual(view(message));
        },
      ),
      { numRuns: 500 },
    );
  });
});
