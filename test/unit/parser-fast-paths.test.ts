/**
 * The parser's fast paths (see main/sip/message/parse.ts and main/sip/header-values.ts) must
 * read exactly what the general readers read. Each test writes the same value twice: once in
 * the usual shape that a fast path takes, once with a variation the grammar allows (LWS around
 * ";" and "=", a lower-case transport, an LF-only head, ...) that only the general reader takes,
 * and compares the results. The torture and fuzz suites cover the errors.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseContentType, parseNameAddr, parseParams, parseVia, type Via } from '../../main/sip/header-values.js';
import { parseMessage } from '../../main/sip/message/parse.js';
import { ParseError } from '../../main/sip/message/parse-error.js';
import { validateEssentialHeaders } from '../../main/sip/message/sip-message.js';
import { isIPv6Address, isIPv6Span, type Params } from '../../main/sip/uri.js';
import { INVALID_VIAS } from '../support/invalid-vias.js';

/** A Via as plain data: every field, whether `port` is there at all, parameters in order. */
function viaFacts(via: Via): unknown {
  return { ...via, hasPort: 'port' in via, params: paramFacts(via.params) };
}

function paramFacts(params: Params): unknown {
  return { entries: [...params], quoted: [...params.quoted] };
}

const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,6}[a-z0-9])?$/);
const topLabel = fc.stringMatching(/^[a-z](?:[a-z0-9-]{0,6}[a-z0-9])?$/);
const hostName = fc.tuple(fc.array(label, { maxLength: 3 }), topLabel).map(([labels, top]) => [...labels, top].join('.'));
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((octets) => octets.join('.'));
const token = fc.stringMatching(/^[A-Za-z0-9.!%*_+`'~-]{1,12}$/);
const paramName = fc.constantFrom('branch', 'rport', 'received', 'tag', 'lr', 'x-extra', 'expires');
const param = fc.tuple(paramName, fc.option(fc.oneof(token, ipv4, fc.nat(70000).map(String)), { nil: undefined }));
/** IPv6 references as peers write them, and bracketed text of the same characters that is no address. */
const ipv6Reference = fc.oneof(
  fc.ipV6().map((address) => `[${address.toLowerCase()}]`),
  fc.stringMatching(/^[0-9a-f:.]{1,14}$/).map((text) => `[${text}]`),
);
const usualVia = fc
  .record({
    transport: fc.constantFrom('UDP', 'TCP', 'TLS', 'WS', 'WSS', 'SCTP'),
    host: fc.oneof(hostName, ipv4, ipv6Reference),
    port: fc.option(fc.nat(70000), { nil: undefined }),
    params: fc.array(param, { maxLength: 4 }),
  })
  .map(({ transport, host, port, params }) => ({
    transport,
    host,
    port,
    params: params.map(([name, value]) => (value === undefined ? `;${name}` : `;${name}=${value}`)),
  }));

/** The outcome of a parse as comparable data: the result, or the error code. */
function outcome<T>(parse: () => T, facts: (value: T) => unknown): unknown {
  try {
    return facts(parse());
  } catch (error) {
    if (error instanceof ParseError) return { error: error.code };
    throw error;
  }
}

describe('Via: the usual-shape reader agrees with the general one', () => {
  it('for generated via-parms, with and without LWS before ";" and a lower-case transport', () => {
    fc.assert(
      fc.property(usualVia, ({ transport, host, port, params }) => {
        const sentBy = port === undefined ? host : `${host}:${port}`;
        const usual = `SIP/2.0/${transport} ${sentBy}${params.join('')}`;
        const spaced = `SIP/2.0/${transport.toLowerCase()} ${sentBy}${params.map((p) => ` ${p}`).join('')}`;
        const facts = (vias: Via[]): unknown => vias.map(viaFacts);
        expect(outcome(() => parseVia(usual), facts)).toEqual(outcome(() => parseVia(spaced), facts));
      }),
      { numRuns: 2000, seed: 3261 },
    );
  });

  it('for generated folded via-parms (one SP before a ";"), read by the usual-shape reader', () => {
    fc.assert(
      fc.property(usualVia, fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), (via, spaces) => {
        const sentBy = via.port === undefined ? via.host : `${via.host}:${via.port}`;
        const folded = `SIP/2.0/${via.transport} ${sentBy}${via.params.map((p, i) => (spaces[i] ? ` ${p}` : p)).join('')}`;
        const general = `SIP/2.0/${via.transport.toLowerCase()} ${sentBy}${via.params.map((p) => ` ${p}`).join('')}`;
        const facts = (vias: Via[]): unknown => vias.map(viaFacts);
        expect(outcome(() => parseVia(folded), facts)).toEqual(outcome(() => parseVia(general), facts));
      }),
      { numRuns: 2000, seed: 5118 },
    );
  });

  it('reads a folded Via and an IPv6 sent-by the way the general reader does', () => {
    const [folded] = parseVia('SIP/2.0/UDP 192.0.2.44:5060 ;branch=z9hG4bKfold3r ;rport');
    expect(viaFacts(folded!)).toMatchObject({
      host: '192.0.2.44',
      port: 5060,
      params: { entries: [['branch', 'z9hG4bKfold3r'], ['rport', null]] },
    });
    const [v6] = parseVia('SIP/2.0/UDP [2001:db8::10]:5060;branch=z9hG4bKv6cpim99;rport');
    expect(viaFacts(v6!)).toMatchObject({
      host: '[2001:db8::10]',
      port: 5060,
      params: { entries: [['branch', 'z9hG4bKv6cpim99'], ['rport', null]] },
    });
    const [v6NoPort] = parseVia('SIP/2.0/TCP [::1];branch=z9');
    expect(viaFacts(v6NoPort!)).toMatchObject({ host: '[::1]', hasPort: false });
  });

  it('reads the usual shape with the values a UAS relies on', () => {
    const [via] = parseVia('SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport;received=192.0.2.1');
    expect(viaFacts(via!)).toEqual({
      protocol: 'SIP',
      version: '2.0',
      transport: 'UDP',
      host: '192.0.2.10',
      port: 5060,
      hasPort: true,
      params: { entries: [['branch', 'z9hG4bK776asdhds'], ['rport', null], ['received', '192.0.2.1']], quoted: [] },
    });
  });

  it('leaves to the general reader what it must refuse', () => {
    for (const value of INVALID_VIAS) {
      expect(() => parseVia(value), value).toThrow(ParseError);
    }
  });
});

describe('isIPv6Span decides as the group-building IPv6 reader does', () => {
  it('for generated addresses, their variants, and near misses', () => {
    const near = fc.stringMatching(/^[0-9a-fA-F:.]{0,24}$/);
    const address = fc.oneof(
      fc.ipV6(),
      fc.ipV6().map((a) => a.toUpperCase()),
      fc.ipV6().map((a) => `${a}:`),
      fc.ipV6().map((a) => `::${a}`),
    );
    fc.assert(
      fc.property(fc.oneof(near, address), fc.string({ maxLength: 3 }), (text, around) => {
        expect(isIPv6Span(text, 0, text.length), text).toBe(isIPv6Address(text));
        // Inside a longer text, only [start, end) counts.
        const padded = `${around}${text}${around}`;
        expect(isIPv6Span(padded, around.length, around.length + text.length), padded).toBe(isIPv6Address(text));
      }),
      { numRuns: 5000, seed: 5952 },
    );
    const edges = ['::', '::1', '1::', ':::1.2.3.4', '::ffff:1.2.3.4', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1::2::3', '1:2:3:4:5:6:1.2.3.4'];
    for (const text of [...edges, '12345::', '']) {
      expect(isIPv6Span(text, 0, text.length), text).toBe(isIPv6Address(text));
    }
  });
});

describe('parameters: the usual-shape reader agrees with the general one', () => {
  it('for generated parameter lists, with and without LWS around ";" and "="', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(paramName, fc.option(token, { nil: undefined })), { maxLength: 5 }), (list) => {
        const usual = list.map(([name, value]) => (value === undefined ? `;${name}` : `;${name}=${value}`)).join('');
        const spaced = list.map(([name, value]) => (value === undefined ? ` ; ${name}` : ` ; ${name} = ${value}`)).join('');
        expect(outcome(() => parseParams(usual), paramFacts)).toEqual(outcome(() => parseParams(spaced), paramFacts));
        const nameAddrFacts = (na: ReturnType<typeof parseNameAddr>): unknown => ({ uri: na.uriText, params: paramFacts(na.params) });
        expect(outcome(() => parseNameAddr(`"A" <sip:a@example.com>${usual}`), nameAddrFacts)).toEqual(
          outcome(() => parseNameAddr(`"A" <sip:a@example.com>${spaced}`), nameAddrFacts),
        );
      }),
      { numRuns: 1000, seed: 3261 },
    );
  });

  it('refuses a repeated name and a media parameter without a value either way', () => {
    expect(() => parseParams(';tag=1;tag=2')).toThrow(ParseError);
    expect(() => parseContentType('text/plain;charset')).toThrow(ParseError);
    expect(parseContentType('Text/Plain;charset=UTF-8')).toMatchObject({ type: 'text', subtype: 'plain' });
  });
});

describe('From and To: the URI is parsed when it is read', () => {
  const request = (from: string): Buffer =>
    Buffer.from(
      ['MESSAGE sip:b@example.com SIP/2.0', 'Via: SIP/2.0/UDP h;branch=z9hG4bK1', `From: ${from}`, 'To: <sip:b@example.com>', 'Call-ID: c', 'CSeq: 1 MESSAGE', 'Content-Length: 0', '', ''].join(
        '\r\n',
      ),
    );

  it('gives the URI as written and parsed', () => {
    const message = parseMessage(request('"Alice" <sip:alice@Example.COM>;tag=9'));
    expect(message.from.uriText).toBe('sip:alice@Example.COM');
    expect(message.from.uri).toMatchObject({ scheme: 'sip', user: 'alice', host: 'example.com' });
    expect(message.from.params.get('tag')).toBe('9');
  });

  it('throws for a bad URI when it is read, and validateEssentialHeaders finds it', () => {
    const message = parseMessage(request('<sip:alice@example.com:99999>;tag=9'));
    expect(message.from.params.get('tag')).toBe('9');
    expect(() => message.from.uri).toThrow(ParseError);
    expect(() => validateEssentialHeaders(message)).toThrow(ParseError);
  });

  it('reports the URI before the parameters when both are wrong, as parseNameAddr does', () => {
    let fromMessage: unknown;
    try {
      validateEssentialHeaders(parseMessage(request('<sip:a@b:99999>;tag=1;tag=2')));
    } catch (error) {
      fromMessage = (error as Error).message;
    }
    let direct: unknown;
    try {
      parseNameAddr('<sip:a@b:99999>;tag=1;tag=2');
    } catch (error) {
      direct = (error as Error).message;
    }
    expect(fromMessage).toMatch(/port/);
    expect(fromMessage).toBe(direct);
  });
});

describe('the header section', () => {
  const lines = [
    'MESSAGE sip:b@example.com SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1',
    'From: "Иван Петров" <sip:ivan@example.net>;tag=a',
    'To: <sip:b@example.com>',
    'Subject: déjà vu',
    'Call-ID: c',
    'CSeq: 1 MESSAGE',
    'Content-Length: 4',
  ];
  const rows = (data: Buffer): unknown => parseMessage(data).headers.entries().map((row) => [row.name, row.key, row.value]);

  it('decodes the parts above ASCII as UTF-8, and only those', () => {
    const message = parseMessage(Buffer.from(`${lines.join('\r\n')}\r\n\r\nbody`));
    expect(message.from.displayName).toBe('Иван Петров');
    expect(message.headers.get('subject')).toBe('déjà vu');
    expect(message.topVia.params.get('branch')).toBe('z9hG4bK1');
    expect(message.body.toString()).toBe('body');
  });

  it('reads an LF-only head the same, and ends it at the first empty line even when the body holds CRLF CRLF', () => {
    const crlf = Buffer.from(`${lines.join('\r\n')}\r\n\r\nbody`);
    const lf = Buffer.from(`${lines.join('\n')}\n\nb\r\n\r\n`);
    expect(rows(lf)).toEqual(rows(crlf));
    expect(parseMessage(lf).body.toString('latin1')).toBe('b\r\n\r');
  });

  it('counts a line against maxLineLength in characters, not bytes', () => {
    const data = Buffer.from(`${lines.join('\r\n')}\r\n\r\nbody`);
    const fromLine = lines[2]!;
    expect(Buffer.byteLength(fromLine)).toBeGreaterThan(fromLine.length);
    expect(() => parseMessage(data, { limits: { maxLineLength: fromLine.length } })).not.toThrow();
    expect(() => parseMessage(data, { limits: { maxLineLength: fromLine.length - 1 } })).toThrow(/exceeds/);
  });

  it('finds a bare CR anywhere in a line', () => {
    const bad = [...lines];
    bad[5] = 'Call-ID: c\rx';
    expect(() => parseMessage(Buffer.from(`${bad.join('\r\n')}\r\n\r\nbody`))).toThrow(/bare CR/);
  });
});

describe('the one-pass reading of CRLF messages agrees with the general reading', () => {
  // The same message with CRLF line ends (which the one-pass reading takes) and with LF-only
  // line ends (which it leaves to the general reading) must give the same message or error.
  const headerName = fc.constantFrom(
    'Via',
    'v',
    'VIA',
    'From',
    'f',
    'to',
    'Call-ID',
    'i',
    'CSeq',
    'Max-Forwards',
    'Content-Type',
    'c',
    'Content-Length',
    'l',
    'content-length',
    'Subject',
    'X-Extra',
    'Accept-Contact',
  );
  const valueText = fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9;=<>@:."\/ -]{0,20}$/),
    fc.constantFrom('"Иван Петров" <sip:ivan@example.net>;tag=a', 'déjà vu', 'SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1', '4', '0', '99', 'x'),
  );
  const row = fc.record({
    name: headerName,
    beforeColon: fc.constantFrom('', ' ', '\t'),
    value: valueText,
    continuation: fc.option(fc.tuple(fc.constantFrom(' ', '\t', '  '), valueText), { nil: undefined }),
  });
  const startLine = fc.constantFrom('MESSAGE sip:b@example.com SIP/2.0', 'SIP/2.0 200 OK', 'SIP/2.0 404 Not Found', 'BAD LINE', 'OPTIONS sip:b@example.com SIP/3.0');
  const message = fc.record({ startLine, rows: fc.array(row, { maxLength: 8 }), body: fc.constantFrom('', 'body', 'Grüße') });

  function lines(m: { startLine: string; rows: Array<{ name: string; beforeColon: string; value: string; continuation: [string, string] | undefined }> }): string[] {
    const out = [m.startLine];
    for (const r of m.rows) {
      out.push(`${r.name}${r.beforeColon}: ${r.value}`);
      if (r.continuation !== undefined) out.push(r.continuation.join(''));
    }
    return out;
  }

  const facts = (data: Buffer): unknown =>
    outcome(
      () => parseMessage(data),
      (parsed) => ({
        start: parsed.kind === 'request' ? [parsed.method, parsed.uri, parsed.version] : [parsed.status, parsed.reason, parsed.version],
        rows: parsed.headers.entries().map((r) => [r.name, r.key, r.value]),
        body: parsed.body.toString('latin1'),
      }),
    );

  it('for generated heads with names in any case, SWS before the colon, folding and UTF-8', () => {
    fc.assert(
      fc.property(message, (m) => {
        const head = lines(m);
        const crlf = Buffer.from(`${head.join('\r\n')}\r\n\r\n${m.body}`);
        const lf = Buffer.from(`${head.join('\n')}\n\n${m.body}`);
        expect(facts(crlf)).toEqual(facts(lf));
      }),
      { numRuns: 3000, seed: 3261 },
    );
  });
});
