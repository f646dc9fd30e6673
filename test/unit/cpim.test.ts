import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  CPIM_CORE_NAMESPACE,
  buildCpim,
  cpimCc,
  cpimDateTime,
  cpimFrom,
  cpimHeader,
  cpimHeaders,
  cpimSubjects,
  cpimTo,
  escapeCpimValue,
  formatCpimDateTime,
  parseCpim,
  parseCpimDateTime,
  sameCpimNamespace,
  unescapeCpimValue,
  type CpimBuildInput,
  type CpimMessage,
} from '../../main/im/cpim.js';
import { ParseError } from '../../main/sip/message/parse-error.js';

const IMDN = 'urn:ietf:params:imdn';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const bytes = (text: string): Uint8Array => encoder.encode(text);
const crlf = (...lines: string[]): string => lines.join('\r\n');

function parseText(text: string): CpimMessage {
  return parseCpim(bytes(text));
}

/** Runs `fn` and returns the ParseError it throws (failing the test if it throws anything else or nothing). */
function parseErrorOf(fn: () => unknown): ParseError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ParseError);
    return error as ParseError;
  }
  throw new Error('expected a ParseError, nothing was thrown');
}

/** RFC 3862's example message (§5.1 and §6 use it), as a SIP body: it starts at the CPIM headers. */
const RFC3862_EXAMPLE = crlf(
  'From: MR SANDERS <im:piglet@100akerwood.com>',
  'To: Depressed Donkey <im:eeyore@100akerwood.com>',
  'DateTime: 2000-12-13T13:40:00-08:00',
  'Subject: the weather will be fine today',
  "Subject:;lang=fr beau temps prevu pour aujourd'hui",
  'NS: MyFeatures <mid:MessageFeatures@id.foo.com>',
  'Require: MyFeatures.VitalMessageOption',
  'MyFeatures.VitalMessageOption: Confirmation-requested',
  'MyFeatures.WackyMessageOption: Use-silly-font',
  '',
  'Content-type: text/xml; charset=utf-8',
  'Content-ID: <1234567890@foo.com>',
  '',
  '<body>',
  'Here is the text of my message.',
  '</body>',
);

/** RFC 5438 §7.1.1.3-style IM requesting delivery and display notifications. */
const RFC5438_IMDN_REQUEST = crlf(
  'From: Alice <im:alice@example.com>',
  'To: Bob <im:bob@example.com>',
  'NS: imdn <urn:ietf:params:imdn>',
  'imdn.Message-ID: 34jk324j',
  'DateTime: 2006-04-04T12:16:49-05:00',
  'imdn.Disposition-Notification: positive-delivery, display',
  '',
  'Content-type: text/plain',
  'Content-length: 12',
  '',
  'Hello World',
);

describe('parseCpim: RFC 3862 example', () => {
  const message = parseText(RFC3862_EXAMPLE);

  it('keeps every header in order, names as written', () => {
    expect(message.headers.map((h) => h.name)).toEqual([
      'From', 'To', 'DateTime', 'Subject', 'Subject', 'NS', 'Require',
      'MyFeatures.VitalMessageOption', 'MyFeatures.WackyMessageOption',
    ]);
    expect(message.mimeHeaders).toEqual([]);
  });

  it('reads the core headers', () => {
    expect(cpimFrom(message)).toEqual({ name: 'MR SANDERS', uri: 'im:piglet@100akerwood.com' });
    expect(cpimTo(message)).toEqual([{ name: 'Depressed Donkey', uri: 'im:eeyore@100akerwood.com' }]);
    expect(cpimCc(message)).toEqual([]);
    expect(cpimDateTime(message)?.toISOString()).toBe('2000-12-13T21:40:00.000Z');
    expect(cpimSubjects(message)).toEqual([
      { value: 'the weather will be fine today' },
      { value: "beau temps prevu pour aujourd'hui", lang: 'fr' },
    ]);
  });

  it('resolves the prefix and the Require list to the declared namespace', () => {
    const features = 'mid:MessageFeatures@id.foo.com';
    expect(message.namespaces.get('MyFeatures')).toBe(features);
    expect(message.namespaces.get('')).toBe(CPIM_CORE_NAMESPACE);
    expect(message.required).toEqual([{ namespace: features, name: 'VitalMessageOption' }]);
    const vital = cpimHeader(message, features, 'VitalMessageOption');
    expect(vital).toMatchObject({ prefix: 'MyFeatures', localName: 'VitalMessageOption', value: 'Confirmation-requested' });
    expect(cpimHeader(message, CPIM_CORE_NAMESPACE, 'VitalMessageOption')).toBeUndefined();
  });

  it('separates the encapsulated entity: Content-Type, other MIME headers, exact content', () => {
    expect(message.contentType).toBe('text/xml; charset=utf-8');
    expect(message.contentHeaders).toEqual([['Content-ID', '<1234567890@foo.com>']]);
    expect(decoder.decode(message.content)).toBe('<body>\r\nHere is the text of my message.\r\n</body>');
  });

  it('skips a leading copy of the outer "Content-type: Message/CPIM" block (old liblinphone)', () => {
    const withOuter = parseText(`Content-type: Message/CPIM\r\n\r\n${RFC3862_EXAMPLE}`);
    expect(withOuter.mimeHeaders).toEqual([['Content-type', 'Message/CPIM']]);
    expect(withOuter.headers).toEqual(message.headers);
    expect(withOuter.content).toEqual(message.content);
  });

  it('accepts bare LF line ends', () => {
    const lf = parseText(RFC3862_EXAMPLE.replaceAll('\r\n', '\n'));
    expect(lf.headers).toEqual(message.headers);
    expect(decoder.decode(lf.content)).toBe('<body>\nHere is the text of my message.\n</body>');
  });
});

describe('parseCpim: RFC 5438 IMDN request', () => {
  it('finds imdn headers by namespace URI', () => {
    const message = parseText(RFC5438_IMDN_REQUEST);
    expect(cpimHeader(message, IMDN, 'Message-ID')?.value).toBe('34jk324j');
    expect(cpimHeader(message, IMDN, 'Disposition-Notification')?.value).toBe('positive-delivery, display');
    expect(cpimDateTime(message)?.toISOString()).toBe('2006-04-04T17:16:49.000Z');
    expect(message.contentType).toBe('text/plain');
    expect(message.contentHeaders).toEqual([['Content-length', '12']]);
    expect(decoder.decode(message.content)).toBe('Hello World');
  });

  it('finds them whatever prefix the sender chose, and never by prefix alone', () => {
    const renamed = parseText(RFC5438_IMDN_REQUEST.replaceAll('imdn', 'x7'));
    expect(renamed.headers[3]?.name).toBe('x7.Message-ID');
    // replaceAll also rewrote the URI; put the real one back.
    const message = parseText(RFC5438_IMDN_REQUEST.replaceAll('imdn.', 'x7.').replace('NS: imdn', 'NS: x7'));
    expect(cpimHeader(message, IMDN, 'Message-ID')?.value).toBe('34jk324j');
    expect(cpimHeader(message, 'imdn', 'Message-ID')).toBeUndefined();
    expect(cpimHeader(renamed, IMDN, 'Message-ID')).toBeUndefined();
  });

  it('compares namespace URIs with a case-insensitive scheme and URN namespace id', () => {
    const message = parseText(RFC5438_IMDN_REQUEST.replace('<urn:ietf:params:imdn>', '<URN:IETF:params:imdn>'));
    expect(cpimHeader(message, IMDN, 'Message-ID')?.value).toBe('34jk324j');
    expect(sameCpimNamespace('urn:ietf:params:imdn', 'urn:ietf:params:IMDN')).toBe(false);
  });
});

describe('parseCpim: names and namespaces (RFC 3862 §3.1, §3.4)', () => {
  const entity = '\r\nContent-Type: text/plain\r\n\r\nhi';

  it('treats header names case-sensitively', () => {
    const message = parseText(`from: <sip:mallory@evil.example>\r\nDATETIME: 2000-01-01T00:00:00Z\r\n${entity}`);
    expect(cpimFrom(message)).toBeUndefined();
    expect(cpimDateTime(message)).toBeUndefined();
    expect(cpimHeaders(message, CPIM_CORE_NAMESPACE, 'from')).toHaveLength(1);
  });

  it('puts unprefixed names in the default namespace, which NS: <uri> changes and restores', () => {
    const message = parseText(
      crlf(
        'NS: <urn:example:ext>',
        'From: <sip:not-core@example.com>',
        'Colour: red',
        'NS: <urn:ietf:params:cpim-headers:>',
        'From: <sip:alice@example.com>',
        entity,
      ),
    );
    expect(message.headers.map((h) => h.namespace)).toEqual([
      CPIM_CORE_NAMESPACE, 'urn:example:ext', 'urn:example:ext', CPIM_CORE_NAMESPACE, CPIM_CORE_NAMESPACE,
    ]);
    expect(cpimFrom(message)).toEqual({ uri: 'sip:alice@example.com' });
    expect(cpimHeader(message, 'urn:example:ext', 'Colour')?.value).toBe('red');
  });

  it('reads the RFC 3862 §6 typo "urn:ietf:params-cpim-headers:" as the core namespace (errata)', () => {
    const message = parseText(crlf('NS: <urn:ietf:params-cpim-headers:>', 'From: <sip:alice@example.com>', entity));
    expect(cpimFrom(message)).toEqual({ uri: 'sip:alice@example.com' });
  });

  it('rejects a prefix used before its NS header', () => {
    const error = parseErrorOf(() => parseText(crlf('imdn.Message-ID: 1', 'NS: imdn <urn:ietf:params:imdn>', entity)));
    expect(error.code).toBe('bad-header');
    expect(error.header).toBe('imdn.Message-ID');
  });

  it('rejects malformed names and NS values', () => {
    for (const line of ['Bad Name: x', 'a.b.c: x', '.x: y', 'x.: y', ': x', 'no colon', 'Ünïcode: x']) {
      expect(parseErrorOf(() => parseText(crlf(line, entity))).code).toBe('bad-header');
    }
    for (const line of ['NS: imdn urn:ietf:params:imdn', 'NS: <not a uri>', 'NS: im dn <urn:x:y>', 'NS:']) {
      expect(parseErrorOf(() => parseText(crlf(line, entity))).code).toBe('bad-header-value');
    }
  });

  it('rejects Require naming an undeclared prefix', () => {
    expect(parseErrorOf(() => parseText(crlf('Require: nope.Thing', entity))).code).toBe('bad-header-value');
  });
});

describe('parseCpim: values, escapes and parameters (RFC 3862 §2.3, §3.3)', () => {
  const withHeader = (line: string) => parseText(`${line}\r\n\r\nContent-Type: text/plain\r\n\r\n`);

  it('decodes the escapes; unknown escape → the character; trailing lone backslash dropped', () => {
    const header = withHeader(String.raw`Subject: a\\b\"c\'d\te\nf\rg\bh\u00E9\u00e9\x\u12 \uD83D\uDE00 end\ `).headers[0];
    expect(header?.value).toBe('a\\b"c\'d\te\nf\rg\bhééxu12 😀 end ');
    expect(withHeader('Subject: tail\\').headers[0]?.value).toBe('tail');
    expect(header?.rawValue.startsWith('a\\\\b')).toBe(true);
  });

  it('reads ;lang= and other parameters placed right after the colon', () => {
    const message = parseText(
      crlf('Test:;aaa=bbb;yes="n\\"o" CheckMe', 'Subject:;lang=fr-CA bonjour', 'Empty:;lang=en', '', 'Content-Type: text/plain', '', ''),
    );
    expect(message.headers[0]).toMatchObject({ params: [['aaa', 'bbb'], ['yes', 'n"o']], value: 'CheckMe' });
    expect(message.headers[0]?.lang).toBeUndefined();
    expect(message.headers[1]).toMatchObject({ lang: 'fr-CA', value: 'bonjour', params: [] });
    expect(message.headers[2]).toMatchObject({ lang: 'en', value: '' });
  });

  it('rejects bad parameters and a raw control character', () => {
    for (const line of ['Subject:;lang=123456789 x', 'Subject:;lang=fr;lang=en x', 'X:;=a x', 'X:;a x', 'X:;a="open x', 'X:;a="b"c x']) {
      expect(parseErrorOf(() => withHeader(line)).code).toBe('bad-header');
    }
    expect(parseErrorOf(() => withHeader('Subject: bell\u0007')).code).toBe('bad-header');
    expect(parseErrorOf(() => withHeader('Subject: lone\rcr')).code).toBe('bad-header');
  });

  it('tolerates a missing or doubled space after the colon', () => {
    expect(cpimFrom(withHeader('From:<sip:a@example.com>'))).toEqual({ uri: 'sip:a@example.com' });
    expect(withHeader('Subject:   spaced   ').headers[0]?.value).toBe('spaced');
  });

  it('reads addresses: bare words, a quoted String with escapes, or no formal name', () => {
    const read = (value: string) => cpimFrom(withHeader(`From: ${value}`));
    expect(read('Winnie the Pooh <im:pooh@100akerwood.com>')).toEqual({ name: 'Winnie the Pooh', uri: 'im:pooh@100akerwood.com' });
    expect(read(String.raw`"Al \"the <pal>\" \\ Ice" <sip:alice@example.com>`)).toEqual({
      name: 'Al "the <pal>" \\ Ice',
      uri: 'sip:alice@example.com',
    });
    expect(read('<im:tigger>')).toEqual({ uri: 'im:tigger' });
    for (const bad of ['<im:tigger@100akerwood.com', 'toto', '"open <sip:a@b>', '<no-scheme>', '<sip:a b>', '"x" y <sip:a@b>']) {
      expect(parseErrorOf(() => read(bad)).code).toBe('bad-header-value');
    }
  });

  it('refuses a second From or DateTime, and a malformed DateTime', () => {
    const twoFroms = parseText(crlf('From: <sip:a@example.com>', 'From: <sip:b@example.com>', '', 'Content-Type: text/plain', '', ''));
    expect(parseErrorOf(() => cpimFrom(twoFroms)).code).toBe('bad-header-value');
    const error = parseErrorOf(() => cpimDateTime(withHeader('DateTime: 2001-02-29T10:10:10Z')));
    expect(error).toMatchObject({ code: 'bad-header-value', header: 'DateTime' });
  });
});

describe('parseCpim: structure errors and content bytes', () => {
  it('names each structural failure', () => {
    expect(parseErrorOf(() => parseCpim(new Uint8Array())).code).toBe('empty');
    expect(parseErrorOf(() => parseText('From: <sip:a@b>')).code).toBe('truncated');
    expect(parseErrorOf(() => parseText('From: <sip:a@b>\r\n\r\nContent-Type: text/plain\r\n')).code).toBe('truncated');
    const missing = parseErrorOf(() => parseText('From: <sip:a@b>\r\n\r\nContent-ID: <x@y>\r\n\r\nhi'));
    expect(missing).toMatchObject({ code: 'missing-header', header: 'Content-Type' });
    expect(parseErrorOf(() => parseText('\r\nContent-Type: text\r\n\r\n')).code).toBe('bad-header-value');
    expect(parseErrorOf(() => parseText('\r\nContent-Type: a/b\r\nContent-Type: a/b\r\n\r\n')).code).toBe('bad-header-value');
    expect(parseErrorOf(() => parseText('\r\nnot a header\r\n\r\n')).code).toBe('bad-header');
    const badUtf8 = new Uint8Array([...bytes('Subject: '), 0xc3, 0x28, ...bytes('\r\n\r\nContent-Type: a/b\r\n\r\n')]);
    expect(parseErrorOf(() => parseCpim(badUtf8)).code).toBe('bad-header');
  });

  it('allows no CPIM headers at all and unfolds folded MIME headers', () => {
    const message = parseText('\r\nContent-Type: text/plain;\r\n charset=utf-8\r\n\r\n');
    expect(message.headers).toEqual([]);
    expect(message.contentType).toBe('text/plain; charset=utf-8');
    expect(message.content).toEqual(new Uint8Array());
  });

  it('returns the content bytes exactly: NULs, CRLFs, invalid UTF-8, trailing blank lines', () => {
    const content = new Uint8Array([0, 1, 0x0d, 0x0a, 0x0d, 0x0a, 0xff, 0xfe, 0x0a, 0x0a, 0x0d, 0x0a, 0]);
    const head = bytes('From: <sip:a@example.com>\r\n\r\nContent-Type: application/octet-stream\r\n\r\n');
    const body = new Uint8Array([...head, ...content]);
    const message = parseCpim(body);
    expect(message.content).toEqual(content);
    body.fill(0x41); // the result must not alias the input
    expect(message.content[0]).toBe(0);
  });
});

describe('DateTime (RFC 3339, RFC 3862 §4.4)', () => {
  it('parses offsets, fractions, lowercase t/z and small years', () => {
    expect(parseCpimDateTime('1985-04-12T23:20:50.52Z').date.toISOString()).toBe('1985-04-12T23:20:50.520Z');
    expect(parseCpimDateTime('1996-12-19T16:39:57-08:00')).toEqual({ date: new Date('1996-12-20T00:39:57Z'), utcOffsetMinutes: -480 });
    expect(parseCpimDateTime('1937-01-01T12:00:27.87654+00:20').date.toISOString()).toBe('1937-01-01T11:40:27.876Z');
    expect(parseCpimDateTime('2000-02-29t10:10:10z').date.toISOString()).toBe('2000-02-29T10:10:10.000Z');
    expect(parseCpimDateTime('0050-06-01T00:00:00Z').date.getUTCFullYear()).toBe(50);
    expect(parseCpimDateTime('1990-12-31T23:59:60Z').date.toISOString()).toBe('1991-01-01T00:00:00.000Z');
    expect(Object.is(parseCpimDateTime('2000-01-01T00:00:00-00:00').utcOffsetMinutes, 0)).toBe(true);
  });

  it('rejects what is not an RFC 3339 date-time', () => {
    for (const text of ['abcd', '1956', '2001-02-29T10:10:10Z', '2000-13-01T00:00:00Z', '2000-01-01T24:00:00Z',
      '2000-01-01T00:60:00Z', '2000-01-01 00:00:00Z', '2000-01-01T00:00:00', '2000-01-01T00:00:00+24:00', '2000-01-01T00:00:00.Z']) {
      expect(parseErrorOf(() => parseCpimDateTime(text)).code).toBe('bad-header-value');
    }
  });

  it('formats in the requested offset, with milliseconds only when present', () => {
    const instant = new Date('2000-12-13T21:40:00Z');
    expect(formatCpimDateTime(instant)).toBe('2000-12-13T21:40:00Z');
    expect(formatCpimDateTime(instant, -480)).toBe('2000-12-13T13:40:00-08:00');
    expect(formatCpimDateTime(new Date('2000-12-13T21:40:00.007Z'), 330)).toBe('2000-12-14T03:10:00.007+05:30');
    expect(() => formatCpimDateTime(new Date(Number.NaN))).toThrow(RangeError);
    expect(() => formatCpimDateTime(instant, 24 * 60)).toThrow(RangeError);
    expect(() => formatCpimDateTime(new Date('+010000-01-01T00:00:00Z'))).toThrow(RangeError);
  });
});

describe('buildCpim', () => {
  const minimal: CpimBuildInput = {
    from: { uri: 'sip:a@x' },
    to: [{ uri: 'sip:b@y' }],
    dateTime: new Date('2000-12-13T21:40:00Z'),
    utcOffsetMinutes: -480,
    contentType: 'text/plain; charset=utf-8',
    content: bytes('Hello'),
  };

  it('writes CPIM headers, an empty line, the entity headers, an empty line, the content', () => {
    expect(decoder.decode(buildCpim(minimal))).toBe(
      'From: <sip:a@x>\r\nTo: <sip:b@y>\r\nDateTime: 2000-12-13T13:40:00-08:00\r\n\r\n' +
        'Content-Type: text/plain; charset=utf-8\r\n\r\nHello',
    );
  });

  it('writes an RFC 5438 IMDN request that reads back by namespace', () => {
    const body = buildCpim({
      from: { name: 'Alice', uri: 'im:alice@example.com' },
      to: [{ name: 'Bob', uri: 'im:bob@example.com' }],
      dateTime: new Date('2006-04-04T17:16:49Z'),
      utcOffsetMinutes: -300,
      namespaces: { imdn: IMDN },
      extraHeaders: [
        { ns: 'imdn', name: 'Message-ID', value: '34jk324j' },
        { ns: 'imdn', name: 'Disposition-Notification', value: 'positive-delivery, display' },
      ],
      contentType: 'text/plain',
      content: bytes('Hello World'),
    });
    expect(decoder.decode(body)).toBe(
      crlf(
        'From: Alice <im:alice@example.com>',
        'To: Bob <im:bob@example.com>',
        'DateTime: 2006-04-04T12:16:49-05:00',
        'NS: imdn <urn:ietf:params:imdn>',
        'imdn.Message-ID: 34jk324j',
        'imdn.Disposition-Notification: positive-delivery, display',
        '',
        'Content-Type: text/plain',
        '',
        'Hello World',
      ),
    );
    const message = parseCpim(body);
    expect(cpimHeader(message, IMDN, 'Disposition-Notification')?.value).toBe('positive-delivery, display');
  });

  it('escapes controls and backslashes, writes edge spaces as \\u0020, leaves quotes alone', () => {
    const body = buildCpim({ ...minimal, subject: [{ value: ' tab\there \\ "q" \'a\' \u0001\u007f\r\n ', lang: 'en' }] });
    const subjectLine = decoder.decode(body).split('\r\n')[3];
    expect(subjectLine).toBe(String.raw`Subject:;lang=en \u0020tab\there \\ "q" 'a' \u0001\u007F\r\n\u0020`);
  });

  it('quotes a formal name that is not plain words, escaping quotes inside', () => {
    const body = buildCpim({
      ...minimal,
      from: { name: 'Alice "Al" Smith', uri: 'sip:alice@example.com' },
      to: [{ name: 'Bob Jones', uri: 'sip:bob@example.com' }],
      cc: [{ name: 'Ünïcode Çarol', uri: 'sip:carol@example.com' }, { name: ' spaced', uri: 'sip:d@example.com' }],
    });
    const lines = decoder.decode(body).split('\r\n');
    expect(lines.slice(0, 4)).toEqual([
      String.raw`From: "Alice \"Al\" Smith" <sip:alice@example.com>`,
      'To: Bob Jones <sip:bob@example.com>',
      'cc: Ünïcode Çarol <sip:carol@example.com>',
      'cc: " spaced" <sip:d@example.com>',
    ]);
  });

  it('writes Require after the NS headers it depends on, with no spaces after commas', () => {
    const body = buildCpim({ ...minimal, namespaces: { imdn: IMDN }, require: ['imdn.Disposition-Notification', 'Other'] });
    expect(decoder.decode(body)).toContain('NS: imdn <urn:ietf:params:imdn>\r\nRequire: imdn.Disposition-Notification,Other\r\n');
    expect(parseCpim(body).required).toEqual([
      { namespace: IMDN, name: 'Disposition-Notification' },
      { namespace: CPIM_CORE_NAMESPACE, name: 'Other' },
    ]);
  });

  it('refuses input it cannot write faithfully', () => {
    const bad: Array<Partial<CpimBuildInput>> = [
      { from: { uri: 'not a uri' } },
      { to: [{ uri: 'sip:a@b>' }] },
      { namespaces: { '': 'urn:example:x' } },
      { namespaces: { 'a.b': 'urn:example:x' } },
      { namespaces: { x: 'no-scheme' } },
      { extraHeaders: [{ ns: 'undeclared', name: 'X', value: 'y' }] },
      { extraHeaders: [{ name: 'From', value: '<sip:spoof@example.com>' }] },
      { extraHeaders: [{ name: 'Bad Name', value: 'y' }] },
      { extraHeaders: [{ name: 'X', value: 'y', lang: 'not a tag' }] },
      { require: ['undeclared.X'] },
      { dateTime: new Date(Number.NaN) },
      { contentType: 'text' },
      { contentHeaders: [['Content-Type', 'text/html']] },
      { contentHeaders: [['Content-ID', 'a\r\nInjected: yes']] },
      { contentHeaders: [['Content-ID', ' edge']] },
      { contentHeaders: [['Content-ID', 'lone \uD800']] },
    ];
    for (const override of bad) {
      expect(() => buildCpim({ ...minimal, ...override })).toThrow(RangeError);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/** Any UTF-16 code unit, lone surrogates included. */
const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code));
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: anyCodeUnit, maxLength: 12 }),
  fc.string({ unit: fc.constantFrom(' ', '\\', '"', "'", '\t', '\r', '\n', 'u', '0', 'a', ';', '<', '>'), maxLength: 12 }),
);
const nameArb = fc.stringMatching(/^[!#$%&'*+\-^_`|~0-9A-Za-z]{1,8}$/);
const langArb = fc.stringMatching(/^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8}){0,2}$/);
const uriArb = fc.oneof(
  fc.stringMatching(/^[a-z][a-z0-9+.-]{0,5}:[!-;=?-~]{1,16}$/),
  fc.constantFrom('sip:alice@example.com', 'im:bob@example.com', 'urn:ietf:params:imdn', 'sip:ü@example.com'),
);
const addressArb = fc.record({ uri: uriArb, name: fc.option(anyText.filter((s) => s !== ''), { nil: undefined }) });
const mimeValueArb = fc
  .string({ unit: 'binary', maxLength: 16 })
  .filter((s) => !/[\u0000-\u001f\u007f]/.test(s) && s === s.replace(/^[ \t]+|[ \t]+$/g, ''));

const buildInputArb: fc.Arbitrary<CpimBuildInput> = fc
  .uniqueArray(fc.tuple(nameArb, uriArb), { maxLength: 3, selector: ([prefix]) => prefix })
  .chain((namespaceList) => {
    const prefixes = namespaceList.map(([prefix]) => prefix);
    const nsArb = prefixes.length === 0 ? fc.constant(undefined) : fc.option(fc.constantFrom(...prefixes), { nil: undefined });
    const extraArb = fc
      .record({ ns: nsArb, name: nameArb, value: anyText, lang: fc.option(langArb, { nil: undefined }) })
      .filter((h) => h.ns !== undefined || !['From', 'To', 'cc', 'DateTime', 'Subject', 'NS', 'Require'].includes(h.name));
    const requiredArb = fc.tuple(nsArb, nameArb).map(([ns, name]) => (ns === undefined ? name : `${ns}.${name}`));
    return fc.record({
      from: addressArb,
      to: fc.array(addressArb, { maxLength: 3 }),
      cc: fc.array(addressArb, { maxLength: 2 }),
      dateTime: fc.date({ min: new Date('1000-01-01T00:00:00Z'), max: new Date('9000-12-31T00:00:00Z'), noInvalidDate: true }),
      utcOffsetMinutes: fc.integer({ min: -1439, max: 1439 }),
      subject: fc.array(fc.record({ value: anyText, lang: fc.option(langArb, { nil: undefined }) }), { maxLength: 3 }),
      namespaces: fc.constant(Object.fromEntries(namespaceList)),
      require: fc.array(requiredArb, { maxLength: 3 }),
      extraHeaders: fc.array(extraArb, { maxLength: 4 }),
      contentType: fc.constantFrom('text/plain; charset=utf-8', 'text/plain', 'message/imdn+xml', 'application/pkcs7-mime; smime-type=signed-data'),
      contentHeaders: fc.array(
        fc.tuple(fc.stringMatching(/^[!-9;-~]{1,10}$/).filter((n) => n.toLowerCase() !== 'content-type'), mimeValueArb),
        { maxLength: 3 },
      ),
      content: fc.uint8Array({ maxLength: 64 }),
    });
  });

/** Parses, then runs every accessor: all of it may fail, but only with a ParseError. */
function parseAndReadEverything(body: Uint8Array): void {
  try {
    const message = parseCpim(body);
    cpimFrom(message);
    cpimTo(message);
    cpimCc(message);
    cpimSubjects(message);
    cpimDateTime(message);
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
  }
}

describe('properties', () => {
  it('parse(build(x)) gives back x', () => {
    fc.assert(
      fc.property(buildInputArb, (input) => {
        const message = parseCpim(buildCpim(input));
        expect(cpimFrom(message)).toEqual(input.from);
        expect(cpimTo(message)).toEqual(input.to);
        expect(cpimCc(message)).toEqual(input.cc);
        expect(cpimDateTime(message)).toEqual(input.dateTime);
        const dateTime = cpimHeader(message, CPIM_CORE_NAMESPACE, 'DateTime')!;
        expect(parseCpimDateTime(dateTime.value).utcOffsetMinutes).toBe(input.utcOffsetMinutes);
        expect(cpimSubjects(message)).toEqual(input.subject);
        const declared = new Map(message.namespaces);
        declared.delete('');
        expect(Object.fromEntries(declared)).toEqual(input.namespaces);
        const extras = message.headers
          .filter((h) => !(h.namespace === CPIM_CORE_NAMESPACE && ['From', 'To', 'cc', 'DateTime', 'Subject', 'NS', 'Require'].includes(h.localName)))
          .map((h) => ({ ns: h.prefix, name: h.localName, value: h.value, lang: h.lang }));
        expect(extras).toEqual(input.extraHeaders);
        const namespaces = input.namespaces ?? {};
        expect(message.required).toEqual(
          (input.require ?? []).map((full) => {
            const [first, second] = full.split('.');
            return second === undefined
              ? { namespace: CPIM_CORE_NAMESPACE, name: first }
              : { namespace: namespaces[first!], name: second };
          }),
        );
        expect(message.contentType).toBe(input.contentType);
        expect(message.contentHeaders).toEqual(input.contentHeaders);
        expect(message.content).toEqual(input.content);
      }),
      { numRuns: 300 },
    );
  });

  it('unescape(escape(s)) === s, and escaped values hold no control characters or edge spaces', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        const escaped = escapeCpimValue(text);
        expect(unescapeCpimValue(escaped)).toBe(text);
        expect(/[\u0000-\u001f\u007f]/.test(escaped)).toBe(false);
        expect(escaped.startsWith(' ') || escaped.endsWith(' ')).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it('random bytes never throw anything but ParseError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (body) => parseAndReadEverything(body)), { numRuns: 500 });
  });

  it('bodies stitched from CPIM-looking pieces never throw anything but ParseError', () => {
    const piece = fc.constantFrom(
      'From: ', 'To: ', 'cc: ', 'DateTime: ', 'Subject:', ';lang=fr', ';x="a\\"b"', 'NS: ', 'imdn ', 'imdn.', 'Require: ',
      '<sip:a@b>', '<urn:ietf:params:imdn>', '"quoted \\" name" ', '2000-12-13T13:40:00-08:00', '2001-02-29T00:00:00Z',
      '\\', '\\u', '\\uD83D', '00', '"', ' ', '\t', ':', ';', '.', ',', '<', '>', '\r\n', '\n', '\r', '\u0000',
      'Content-Type: text/plain', 'Content-type: Message/CPIM', ' folded', 'é', '\uD800',
    );
    const body = fc.array(fc.oneof(piece, fc.string({ maxLength: 4 })), { maxLength: 40 }).map((parts) => bytes(parts.join('')));
    fc.assert(fc.property(body, (b) => parseAndReadEverything(b)), { numRuns: 1000 });
  });

  it('mutated valid bodies never throw anything but ParseError', () => {
    const mutated = fc
      .tuple(buildInputArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean()), { minLength: 1, maxLength: 4 }))
      .map(([input, edits]) => {
        const body = Array.from(buildCpim(input));
        for (const [at, value, insert] of edits) {
          const index = at % (body.length + 1);
          if (insert) body.splice(index, 0, value);
          else body.splice(index, 1);
        }
        return new Uint8Array(body);
      });
    fc.assert(fc.property(mutated, (body) => parseAndReadEverything(body)), { numRuns: 500 });
  });
});
