import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  MAX_MULTIPART_DEPTH,
  MAX_PART_HEADERS,
  buildMultipart,
  chooseAlternative,
  findParts,
  parseMultipart,
  type MimePart,
  type MimePartInput,
} from '../../main/im/multipart.js';
import { mediaTypeOf, parseContentType } from '../../main/sip/header-values.js';
import { ParseError } from '../../main/sip/message/parse-error.js';

const crlf = (...lines: string[]): string => lines.join('\r\n');
const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

/** Parses `body` (text or bytes) as the given multipart Content-Type value. */
function parse(body: string | Buffer, contentType = 'multipart/mixed;boundary=b'): MimePart[] {
  return parseMultipart(typeof body === 'string' ? bytes(body) : body, parseContentType(contentType));
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

const text = (part: MimePart | undefined): string => part?.body.toString('utf8') ?? '<no part>';
const isPlainText = (part: MimePart): boolean => mediaTypeOf(part.contentType) === 'text/plain';

describe('RFC 4475 §3.1.1.11 (mpart01): multipart/mixed with a binary S/MIME part', () => {
  const message = readFileSync(new URL('../fixtures/rfc4475/mpart01.dat', import.meta.url));
  const body = message.subarray(message.indexOf('\r\n\r\n') + 4);
  const parts = parseMultipart(body, parseContentType('multipart/mixed;boundary=7a9cbec02ceef655'));

  it('takes the body after the blank line, 553 bytes as its Content-Length says', () => {
    expect(body.length).toBe(553);
  });

  it('finds the text/plain part and the binary part, bodies without the delimiter CRLF', () => {
    expect(parts).toHaveLength(2);
    const [plain, binary] = parts;
    expect(plain?.headers).toEqual([
      ['Content-Type', 'text/plain'],
      ['Content-Transfer-Encoding', 'binary'],
    ]);
    expect(mediaTypeOf(plain!.contentType)).toBe('text/plain');
    expect(text(plain)).toBe('Hello');
    expect(mediaTypeOf(binary!.contentType)).toBe('application/octet-stream');
    expect(binary?.parts).toBeUndefined();
  });

  it('keeps the DER bytes intact: one complete SEQUENCE, CR and LF bytes included', () => {
    const der = parts[1]!.body;
    // 30 82 01 52: a SEQUENCE whose content is 0x152 octets long, so 4 + 338 bytes in all.
    expect([...der.subarray(0, 4)]).toEqual([0x30, 0x82, 0x01, 0x52]);
    expect(der.length).toBe(4 + 0x152);
    expect(der.includes(0x0a)).toBe(true);
    expect(der.includes(0x0d)).toBe(true);
    expect([...der.subarray(-2)]).toEqual([0xd0, 0x05]);
  });

  it('gives each part its raw bytes as received and the default disposition', () => {
    expect(parts[0]!.raw.toString('latin1')).toBe(crlf('Content-Type: text/plain', 'Content-Transfer-Encoding: binary', '', 'Hello'));
    expect(parts[1]!.raw.subarray(-2).equals(Buffer.from([0xd0, 0x05]))).toBe(true);
    for (const part of parts) {
      expect(part.disposition).toMatchObject({ type: 'render', handling: 'required', explicit: false });
    }
  });
});

describe('parseMultipart: framing (RFC 2046 §5.1.1)', () => {
  it('accepts a delimiter at the very start (no preamble) and an empty body part', () => {
    const parts = parse(crlf('--b', 'Content-Type: text/plain', '', 'one', '--b', '', '', '--b--'));
    expect(parts.map(text)).toEqual(['one', '']);
  });

  it('ignores the preamble and the epilogue, even delimiter-like lines in them', () => {
    const body = crlf(
      'This is the preamble. x--b is not a delimiter, nor is --b at the end of this line --b',
      '--b',
      '',
      'content',
      '--b--',
      'epilogue',
      '--b',
      'Content-Type: text/html',
      '',
      'not a part',
    );
    const parts = parse(body);
    expect(parts.map(text)).toEqual(['content']);
  });

  it('keeps content line breaks: only the CRLF right before a delimiter belongs to it', () => {
    const parts = parse(crlf('--b', '', '', 'two lines', '', '--b', '', '', '', '--b--'));
    expect(parts.map(text)).toEqual(['\r\ntwo lines\r\n', '\r\n']);
  });

  it('allows transport padding after the boundary and after the close delimiter', () => {
    const parts = parse(crlf('--b \t ', '', 'a', '--b\t', '', 'b', '--b--  ', 'epilogue'));
    expect(parts.map(text)).toEqual(['a', 'b']);
    expect(parse('--b\r\n\r\na\r\n--b-- \t').map(text)).toEqual(['a']);
  });

  it('tolerates LF-only line ends', () => {
    const body = ['preamble', '--b', 'Content-Type: text/plain;charset=utf-8', '', 'line 1', 'line 2', '--b', '', 'x', '--b--', ''].join('\n');
    const parts = parse(body);
    expect(parts.map(text)).toEqual(['line 1\nline 2', 'x']);
    expect(parts[0]!.contentType.params.get('charset')).toBe('utf-8');
  });

  it('reads a close delimiter at the very end of the body, without a line end', () => {
    expect(parse('--b\r\n\r\nonly\r\n--b--').map(text)).toEqual(['only']);
  });

  it('gives no parts for a body that is only a close delimiter', () => {
    expect(parse('preamble\r\n--b--\r\n')).toEqual([]);
  });

  it('finds the boundary parameter whatever its quoting and case', () => {
    const body = crlf('--Simple Boundary=:', '', 'x', '--Simple Boundary=:--');
    expect(parse(body, 'Multipart/Mixed; BOUNDARY="Simple Boundary=:"').map(text)).toEqual(['x']);
  });

  it('reads only whole delimiter lines; boundary text elsewhere is content', () => {
    // A delimiter is CRLF "--" boundary as a whole line. The boundary without its leading "--"
    // at a line start, "--boundary" in mid-line, and "--boundary" followed by more text are all
    // content. A conforming sender never writes any of these (RFC 2046 §5.1.1 keeps the boundary
    // out of the parts altogether, and buildMultipart checks that), but binary data can contain
    // them by chance, and they must not cut the part.
    const inside = Buffer.concat([
      Buffer.from([0x30, 0x82, 0x0d, 0x0a]),
      bytes('7a9cbec02ceef655\r\n'),
      bytes('-7a9cbec02ceef655\r\n'),
      bytes('x--7a9cbec02ceef655\r\n'),
      bytes('--7a9cbec02ceef655-1\r\n'),
      bytes('--7a9cbec02ceef655 x\r\n'),
      Buffer.from([0x00, 0xff, 0x0d]),
    ]);
    const body = Buffer.concat([
      bytes('--7a9cbec02ceef655\r\nContent-Type: application/octet-stream\r\n\r\n'),
      inside,
      bytes('\r\n--7a9cbec02ceef655--\r\n'),
    ]);
    const parts = parse(body, 'multipart/mixed;boundary=7a9cbec02ceef655');
    expect(parts).toHaveLength(1);
    expect(parts[0]!.body.equals(inside)).toBe(true);
  });

  it('does not let a longer nested boundary end the outer part', () => {
    const inner = crlf('--b-1', '', 'inner', '--b-1--');
    const body = crlf('--b', 'Content-Type: multipart/mixed;boundary=b-1', '', inner, '--b--');
    const parts = parse(body);
    expect(parts).toHaveLength(1);
    expect(parts[0]!.parts?.map(text)).toEqual(['inner']);
  });

  it('throws truncated without a close delimiter', () => {
    expect(parseErrorOf(() => parse(crlf('--b', '', 'a', '--b', '', 'b'))).code).toBe('truncated');
    expect(parseErrorOf(() => parse(crlf('--b', '', 'a', '--b'))).code).toBe('truncated');
    expect(parseErrorOf(() => parse(crlf('--b', '', 'a', 'x--b--'))).code).toBe('truncated');
  });

  it('throws truncated when there is no delimiter at all', () => {
    expect(parseErrorOf(() => parse('just text')).code).toBe('truncated');
    expect(parseErrorOf(() => parse('')).code).toBe('truncated');
    expect(parseErrorOf(() => parse('--b')).code).toBe('truncated');
  });

  it('throws bad-header-value for a missing, empty, over-long or non-ASCII boundary', () => {
    for (const contentType of [
      'multipart/mixed',
      'multipart/mixed;boundary=""',
      `multipart/mixed;boundary=${'x'.repeat(71)}`,
      'multipart/mixed;boundary="ü"',
      'text/plain;boundary=b',
    ]) {
      const error = parseErrorOf(() => parse('--b\r\n\r\n\r\n--b--', contentType));
      expect(error.code, contentType).toBe('bad-header-value');
      expect(error.header).toBe('Content-Type');
    }
    const longest = 'x'.repeat(70);
    expect(parse(`--${longest}\r\n\r\nok\r\n--${longest}--`, `multipart/mixed;boundary=${longest}`).map(text)).toEqual(['ok']);
  });

  it('parses a large adversarial body in linear time', () => {
    // Many line starts that begin like a delimiter but are not, then 50 000 empty parts.
    const fakes = '\n--bx'.repeat(200_000);
    expect(parseErrorOf(() => parse(`--b\r\n${fakes}`)).code).toBe('truncated');
    const manyParts = `${'--b\r\n\r\n\r\n'.repeat(50_000)}--b--`;
    expect(parse(manyParts)).toHaveLength(50_000);
  });
});

describe('parseMultipart: part headers', () => {
  it('defaults to text/plain; charset=us-ascii and render/required without headers', () => {
    const [part] = parse(crlf('--b', '', 'hi', '--b--'));
    expect(part?.headers).toEqual([]);
    expect(mediaTypeOf(part!.contentType)).toBe('text/plain');
    expect(part!.contentType.params.get('charset')).toBe('us-ascii');
    expect(part!.disposition).toMatchObject({ type: 'render', handling: 'required', explicit: false });
  });

  it('defaults to message/rfc822 inside multipart/digest (RFC 2046 §5.1.5)', () => {
    const [part] = parse(crlf('--b', '', 'Subject: x', '', '--b--'), 'multipart/digest;boundary=b');
    expect(mediaTypeOf(part!.contentType)).toBe('message/rfc822');
  });

  it('defaults the disposition of application/sdp to session (RFC 3261 §20.11)', () => {
    const [sdp] = parse(crlf('--b', 'Content-Type: application/sdp', '', 'v=0', '--b--'));
    expect(sdp!.disposition).toMatchObject({ type: 'session', handling: 'required', explicit: false });
  });

  it('reads Content-Disposition with its handling and other parameters', () => {
    const parts = parse(
      crlf(
        '--b',
        'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m',
        'Content-Disposition: Attachment ; filename="smime.p7m" ;handling=OPTIONAL',
        '',
        'x',
        '--b',
        'Content-Disposition: icon;handling=other',
        '',
        'y',
        '--b',
        'Content-Disposition: render;handling=required',
        '',
        'z',
        '--b--',
      ),
    );
    expect(parts[0]!.disposition).toMatchObject({ type: 'attachment', handling: 'optional', explicit: true });
    expect(parts[0]!.disposition.params.get('filename')).toBe('smime.p7m');
    expect(parts[0]!.contentType.params.get('smime-type')).toBe('enveloped-data');
    expect(parts[1]!.disposition).toMatchObject({ type: 'icon', handling: 'required' });
    expect(parts[2]!.disposition).toMatchObject({ type: 'render', handling: 'required', explicit: true });
  });

  it('keeps every header as written, unfolding continuation lines', () => {
    const [part] = parse(
      crlf('--b', 'content-type: text/plain;', '\tcharset=utf-8', 'Content-ID:   <a@b>  ', 'X-Empty:', 'X-Thing: 1', '  2', '', 'x', '--b--'),
    );
    expect(part!.headers).toEqual([
      ['content-type', 'text/plain; charset=utf-8'],
      ['Content-ID', '<a@b>'],
      ['X-Empty', ''],
      ['X-Thing', '1 2'],
    ]);
    expect(part!.contentType.params.get('charset')).toBe('utf-8');
  });

  it('decodes header values as UTF-8', () => {
    const [part] = parse(crlf('--b', 'Content-Disposition: attachment; filename="résumé.pdf"', '', '', '--b--'));
    expect(part!.disposition.params.get('filename')).toBe('résumé.pdf');
  });

  it('treats a part with headers but no empty line as headers with an empty body', () => {
    const [part] = parse(crlf('--b', 'Content-Type: text/html', '--b--'));
    expect(mediaTypeOf(part!.contentType)).toBe('text/html');
    expect(part!.body.length).toBe(0);
  });

  it('throws bad-header for malformed header sections', () => {
    for (const head of ['no colon here', ' leading continuation: x', ': empty name', 'Bad Name: x', 'Ctl: a\u0001b']) {
      const error = parseErrorOf(() => parse(crlf('--b', head, '', 'x', '--b--')));
      expect(error.code, head).toBe('bad-header');
    }
  });

  it('refuses two Content-Type, Content-Transfer-Encoding or Content-Disposition headers', () => {
    for (const name of ['Content-Type: text/plain', 'Content-Transfer-Encoding: binary', 'Content-Disposition: render']) {
      const lower = name.toLowerCase();
      const error = parseErrorOf(() => parse(crlf('--b', name, lower, '', 'x', '--b--')));
      expect(error.code, name).toBe('bad-header');
    }
  });

  it('throws bad-header-value for a malformed Content-Type or Content-Disposition', () => {
    expect(parseErrorOf(() => parse(crlf('--b', 'Content-Type: text', '', '', '--b--'))).code).toBe('bad-header-value');
    expect(parseErrorOf(() => parse(crlf('--b', 'Content-Disposition: "render"', '', '', '--b--'))).code).toBe('bad-header-value');
    expect(parseErrorOf(() => parse(crlf('--b', 'Content-Disposition: render;handling="x', '', '', '--b--'))).code).toBe(
      'bad-header-value',
    );
  });

  it(`throws too-many-headers beyond ${MAX_PART_HEADERS} header fields`, () => {
    const headers = (count: number): string[] => Array.from({ length: count }, (_, i) => `X-H${i}: ${i}`);
    expect(parse(crlf('--b', ...headers(MAX_PART_HEADERS), '', '', '--b--'))[0]!.headers).toHaveLength(MAX_PART_HEADERS);
    expect(parseErrorOf(() => parse(crlf('--b', ...headers(MAX_PART_HEADERS + 1), '', '', '--b--'))).code).toBe('too-many-headers');
  });
});

describe('parseMultipart: Content-Transfer-Encoding (RFC 2045 §6)', () => {
  it('passes 7bit, 8bit and binary through', () => {
    for (const encoding of ['7bit', '8BIT', 'Binary']) {
      const [part] = parse(crlf('--b', `Content-Transfer-Encoding: ${encoding}`, '', 'a=41 b', '--b--'));
      expect(text(part), encoding).toBe('a=41 b');
    }
  });

  it('decodes base64, ignoring line breaks and characters outside the alphabet', () => {
    const data = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x2d, 0x2d, 0x62, 0x80]);
    const encoded = data.toString('base64');
    const wrapped = `${encoded.slice(0, 4)}\r\n ${encoded.slice(4, 8)}!\r\n${encoded.slice(8)}`;
    const [part] = parse(crlf('--b', 'Content-Type: application/octet-stream', 'Content-Transfer-Encoding: BASE64', '', wrapped, '--b--'));
    expect(part!.body.equals(data)).toBe(true);
    expect(part!.raw.toString('latin1')).toContain(wrapped);
  });

  it('stops base64 at the pad and does not read the base64url letters', () => {
    const [part] = parse(crlf('--b', 'Content-Transfer-Encoding: base64', '', 'QQ==QkI=', '--b--'));
    expect(text(part)).toBe('A');
    const [url] = parse(crlf('--b', 'Content-Transfer-Encoding: base64', '', '-_QUJD', '--b--'));
    expect(text(url)).toBe('ABC');
  });

  it('decodes quoted-printable: =XX, soft line breaks, transport whitespace', () => {
    const encoded = crlf('caf=C3=A9 is =e2=82=AC3 =', 'joined   ', 'kept=20', 'soft with space= \t', 'end = literal=ZZ=');
    const [part] = parse(crlf('--b', 'Content-Transfer-Encoding: quoted-printable', '', encoded, '--b--'));
    expect(text(part)).toBe('café is €3 joined\r\nkept \r\nsoft with spaceend = literal=ZZ');
  });

  it('throws bad-header-value for an encoding it cannot undo', () => {
    for (const encoding of ['x-uuencode', 'gzip', '']) {
      const error = parseErrorOf(() => parse(crlf('--b', `Content-Transfer-Encoding: ${encoding}`, '', 'x', '--b--')));
      expect(error.code, encoding).toBe('bad-header-value');
      expect(error.header).toBe('Content-Transfer-Encoding');
    }
  });

  it('parses a base64-encoded nested multipart after decoding it', () => {
    const inner = crlf('--in', '', 'deep', '--in--');
    const [outer] = parse(
      crlf('--b', 'Content-Type: multipart/mixed;boundary=in', 'Content-Transfer-Encoding: base64', '', bytes(inner).toString('base64'), '--b--'),
    );
    expect(outer!.parts?.map(text)).toEqual(['deep']);
  });
});

describe('parseMultipart: nesting (RFC 5621 §4.2)', () => {
  const body = crlf(
    '--outer',
    'Content-Type: multipart/alternative; boundary=alt',
    '',
    '--alt',
    'Content-Type: text/plain;charset=utf-8',
    '',
    'Hello *there*',
    '--alt',
    'Content-Type: text/html;charset=utf-8',
    '',
    '<html><body>Hello <b>there</b></body></html>',
    '--alt--',
    '--outer',
    'Content-Type: image/png',
    'Content-Disposition: attachment; filename=dot.png',
    '',
    '\x89PNG',
    '--outer',
    'Content-Type: multipart/x-unknown; boundary=unk',
    '',
    '--unk',
    '',
    'treated as mixed',
    '--unk--',
    '--outer--',
  );
  const parts = parse(body, 'multipart/mixed; boundary=outer');

  it('parses nested multipart parts recursively', () => {
    expect(parts.map((part) => mediaTypeOf(part.contentType))).toEqual(['multipart/alternative', 'image/png', 'multipart/x-unknown']);
    expect(parts[0]!.parts?.map(text)).toEqual(['Hello *there*', '<html><body>Hello <b>there</b></body></html>']);
    expect(parts[2]!.parts?.map(text)).toEqual(['treated as mixed']);
    expect(parts[0]!.body.toString('utf8')).toMatch(/^--alt\r\n[^]*--alt--$/);
  });

  it('findParts searches depth first, a container before its children', () => {
    expect(findParts(parts, isPlainText).map(text)).toEqual(['Hello *there*', 'treated as mixed']);
    expect(findParts(parts, () => true).map((part) => mediaTypeOf(part.contentType))).toEqual([
      'multipart/alternative',
      'text/plain',
      'text/html',
      'image/png',
      'multipart/x-unknown',
      'text/plain',
    ]);
    expect(findParts(parts, (part) => part.disposition.type === 'attachment').map((part) => part.disposition.params.get('filename'))).toEqual([
      'dot.png',
    ]);
    expect(findParts(parts, () => false)).toEqual([]);
  });

  it('chooseAlternative takes the last alternative the receiver can handle (RFC 2046 §5.1.4)', () => {
    const alternatives = parts[0]!.parts!;
    const html = chooseAlternative(alternatives, (part) => part.contentType.type === 'text');
    expect(mediaTypeOf(html!.contentType)).toBe('text/html');
    expect(text(chooseAlternative(alternatives, isPlainText))).toBe('Hello *there*');
    expect(chooseAlternative(alternatives, () => false)).toBeUndefined();
  });

  it(`parses ${MAX_MULTIPART_DEPTH} levels and refuses more with too-large`, () => {
    const nest = (levels: number): { contentType: string; body: Buffer } => {
      let built = buildMultipart([{ contentType: 'text/plain', body: bytes('core') }]);
      for (let level = 1; level < levels; level++) built = buildMultipart([{ contentType: built.contentType, body: built.body }]);
      return built;
    };
    const deepest = nest(MAX_MULTIPART_DEPTH);
    let level = parse(deepest.body, deepest.contentType);
    for (let i = 1; i < MAX_MULTIPART_DEPTH; i++) level = [...level[0]!.parts!];
    expect(text(level[0])).toBe('core');
    const tooDeep = nest(MAX_MULTIPART_DEPTH + 1);
    expect(parseErrorOf(() => parse(tooDeep.body, tooDeep.contentType)).code).toBe('too-large');
  });
});

describe('buildMultipart', () => {
  it('writes the RFC 2046 layout with CRLF and the given boundary', () => {
    const built = buildMultipart(
      [
        { contentType: 'text/plain;charset=utf-8', body: bytes('Hello') },
        { contentType: 'application/octet-stream', headers: [['Content-Disposition', 'attachment;filename=a.bin']], body: Buffer.from([0, 0x0d, 0x0a]) },
      ],
      { boundary: 'sep' },
    );
    expect(built.contentType).toBe('multipart/mixed;boundary=sep');
    expect(built.body.toString('latin1')).toBe(
      crlf(
        '--sep',
        'Content-Type: text/plain;charset=utf-8',
        '',
        'Hello',
        '--sep',
        'Content-Type: application/octet-stream',
        'Content-Disposition: attachment;filename=a.bin',
        '',
        '\0\r\n',
        '--sep--',
        '',
      ),
    );
  });

  it('quotes a boundary that is not a SIP token and reads it back', () => {
    const built = buildMultipart([{ contentType: 'text/plain', body: bytes('x') }], { subtype: 'Alternative', boundary: "a=b:c?'(d) e" });
    expect(built.contentType).toBe(`multipart/alternative;boundary="a=b:c?'(d) e"`);
    expect(parse(built.body, built.contentType).map(text)).toEqual(['x']);
  });

  it('draws a fresh random boundary each time', () => {
    const part: MimePartInput = { contentType: 'text/plain', body: bytes('x') };
    const first = buildMultipart([part]).contentType;
    const second = buildMultipart([part]).contentType;
    expect(first).toMatch(/^multipart\/mixed;boundary=[0-9a-f]{32}$/);
    expect(second).not.toBe(first);
  });

  it('refuses a boundary that occurs inside a part, even without the leading "--"', () => {
    const part: MimePartInput = { contentType: 'application/octet-stream', body: bytes('xxsepxx') };
    expect(() => buildMultipart([part], { boundary: 'sep' })).toThrow(RangeError);
    const inHeader: MimePartInput = { contentType: 'text/plain', headers: [['Content-ID', '<sep@x>']], body: bytes('') };
    expect(() => buildMultipart([inHeader], { boundary: 'sep' })).toThrow(RangeError);
  });

  it('refuses caller mistakes with a RangeError', () => {
    const ok: MimePartInput = { contentType: 'text/plain', body: bytes('x') };
    const cases: Array<[string, () => unknown]> = [
      ['no parts', () => buildMultipart([])],
      ['empty boundary', () => buildMultipart([ok], { boundary: '' })],
      ['long boundary', () => buildMultipart([ok], { boundary: 'x'.repeat(71) })],
      ['trailing space', () => buildMultipart([ok], { boundary: 'ab ' })],
      ['bad character', () => buildMultipart([ok], { boundary: 'a#b' })],
      ['bad subtype', () => buildMultipart([ok], { subtype: 'a/b' })],
      ['bad content type', () => buildMultipart([{ contentType: 'text', body: bytes('') }])],
      ['injected content type', () => buildMultipart([{ contentType: 'text/plain\r\nX: y', body: bytes('') }])],
      ['bad header name', () => buildMultipart([{ ...ok, headers: [['Bad Name', 'x']] }])],
      ['injected header', () => buildMultipart([{ ...ok, headers: [['X-A', 'x\r\n\r\nbody']] }])],
      ['second content type', () => buildMultipart([{ ...ok, headers: [['content-type', 'text/html']] }])],
    ];
    for (const [what, build] of cases) expect(build, what).toThrow(RangeError);
    expect(buildMultipart([ok], { boundary: 'x'.repeat(70) }).contentType).toContain('x'.repeat(70));
  });
});

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/** Bytes that stress the framing: CR, LF, "-", boundary-ish letters, and anything at all. */
const trickyByte = fc.oneof(
  fc.constantFrom(0x0d, 0x0a, 0x2d, 0x62, 0x20, 0x3d, 0x3a),
  fc.integer({ min: 0, max: 255 }),
);
const trickyBytes = (maxLength: number): fc.Arbitrary<Buffer> =>
  fc.array(trickyByte, { maxLength }).map((array) => Buffer.from(array));

const headerNameArb = fc.stringMatching(/^X-[A-Za-z0-9-]{1,8}$/);
const headerValueArb = fc.stringMatching(/^[ -~]{0,12}$/).map((value) => value.trim());
const partArb: fc.Arbitrary<MimePartInput> = fc.record({
  contentType: fc.constantFrom('text/plain', 'text/plain;charset=utf-8', 'application/octet-stream', 'application/pkcs7-mime;smime-type=signed-data'),
  headers: fc.array(fc.tuple(headerNameArb, headerValueArb), { maxLength: 3 }),
  body: trickyBytes(64),
});

describe('properties', () => {
  it('build → parse gives back every part: content type, headers, body bytes', () => {
    fc.assert(
      fc.property(fc.array(partArb, { minLength: 1, maxLength: 5 }), fc.constantFrom('mixed', 'alternative', 'related'), (inputs, subtype) => {
        const built = buildMultipart(inputs, { subtype });
        const parts = parseMultipart(built.body, parseContentType(built.contentType));
        expect(parts).toHaveLength(inputs.length);
        parts.forEach((part, i) => {
          const input = inputs[i]!;
          expect(part.body.equals(input.body)).toBe(true);
          expect(mediaTypeOf(part.contentType)).toBe(mediaTypeOf(parseContentType(input.contentType)));
          expect(part.headers).toEqual([['Content-Type', input.contentType], ...(input.headers ?? [])]);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('build → parse round-trips nested bodies and short explicit boundaries that the content avoids', () => {
    fc.assert(
      fc.property(fc.array(partArb, { minLength: 1, maxLength: 3 }), trickyBytes(40), (inputs, outerBody) => {
        let inner;
        try {
          inner = buildMultipart(inputs, { boundary: '-b' });
        } catch (error) {
          expect(error).toBeInstanceOf(RangeError); // some content contains "-b": allowed to refuse
          return;
        }
        const outer = buildMultipart([
          { contentType: inner.contentType, body: inner.body },
          { contentType: 'application/octet-stream', body: outerBody },
        ]);
        const parts = parseMultipart(outer.body, parseContentType(outer.contentType));
        expect(parts[0]!.parts?.map((part) => part.body.toString('latin1'))).toEqual(inputs.map((input) => Buffer.from(input.body).toString('latin1')));
        expect(parts[1]!.body.equals(outerBody)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes only ever throw ParseError', () => {
    const boundaryish = fc.constantFrom('--b', '\r\n--b', '\n--b--', 'Content-Type: multipart/mixed;boundary=b\r\n', 'Content-Transfer-Encoding: base64\r\n', '\r\n\r\n', '=');
    const body = fc
      .array(fc.oneof(trickyBytes(16), boundaryish.map((chunk) => bytes(chunk))), { maxLength: 24 })
      .map((chunks) => Buffer.concat(chunks));
    fc.assert(
      fc.property(body, fc.constantFrom('multipart/mixed;boundary=b', 'multipart/alternative;boundary="b"', 'multipart/digest;boundary=b'), (input, contentType) => {
        try {
          parseMultipart(input, parseContentType(contentType));
        } catch (error) {
          expect(error).toBeInstanceOf(ParseError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('parts of valid random bodies are views that stay inside the input', () => {
    fc.assert(
      fc.property(fc.array(partArb, { minLength: 1, maxLength: 4 }), (inputs) => {
        const built = buildMultipart(inputs);
        for (const part of parseMultipart(built.body, parseContentType(built.contentType))) {
          expect(part.raw.buffer).toBe(built.body.buffer);
          expect(part.raw.byteOffset).toBeGreaterThanOrEqual(built.body.byteOffset);
          expect(part.raw.byteOffset + part.raw.length).toBeLessThanOrEqual(built.body.byteOffset + built.body.length);
        }
      }),
    );
  });
});
