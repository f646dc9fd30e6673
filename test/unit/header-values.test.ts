import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_CONTENT_LENGTH,
  Params,
  formatContentType,
  formatCSeq,
  formatNameAddr,
  formatParams,
  formatVia,
  isStarContact,
  isToken,
  mediaTypeOf,
  parseContentLength,
  parseContentType,
  parseCSeq,
  parseNameAddr,
  parseParams,
  parseVia,
  quoteString,
  splitHeaderList,
  unquoteString,
  viaBranch,
  viaReceived,
  viaRport,
} from '../../main/sip/header-values.js';
import type { NameAddr, Via } from '../../main/sip/header-values.js';
import { ParseError } from '../../main/sip/message/parse-error.js';
import { formatUri, isSipUri, parseUri, uriEquals } from '../../main/sip/uri.js';
import type { SipUri } from '../../main/sip/uri.js';

function expectParseError(run: () => unknown, code = 'bad-header-value'): ParseError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ParseError);
  expect((caught as ParseError).code).toBe(code);
  return caught as ParseError;
}

/** Parameters as an ordered list plus which were quoted, for exact comparisons. */
function entries(params: Params): unknown {
  return { entries: [...params], quoted: [...params.quoted].sort() };
}

function uriText(nameAddr: NameAddr): string {
  return formatUri(nameAddr.uri);
}

describe('tokens and quoted strings', () => {
  it('isToken follows RFC 3261 §25.1', () => {
    expect(isToken("abcXYZ019-.!%*_+`'~")).toBe(true);
    for (const bad of ['', 'a b', 'a"b', 'a;b', 'a,b', 'a:b', 'a/b', 'a=b', 'a<b', 'é', 'a\tb', 'a(b', 'a[b']) expect(isToken(bad), bad).toBe(false);
  });

  it('quotes and unquotes with quoted-pairs', () => {
    expect(quoteString('plain')).toBe('"plain"');
    expect(quoteString('say "hi" \\ bye')).toBe('"say \\"hi\\" \\\\ bye"');
    expect(quoteString('tab\tok, Юникод')).toBe('"tab\tok, Юникод"');
    expect(quoteString('BEL:\x07 NUL:\0 DEL:\x7f')).toBe('"BEL:\\\x07 NUL:\\\0 DEL:\\\x7f"');
    expect(unquoteString('"say \\"hi\\" \\\\ bye"')).toBe('say "hi" \\ bye');
    expect(unquoteString('""')).toBe('');
    expect(unquoteString('"\\a\\b"')).toBe('ab');
  });

  it('refuses CR and LF in a quoted string, both ways', () => {
    expect(() => quoteString('a\r\nInjected: yes')).toThrow(RangeError);
    expect(() => quoteString('a\n')).toThrow(RangeError);
    expectParseError(() => unquoteString('"a\\\nb"'));
    expectParseError(() => unquoteString('"a\rb"'));
  });

  it.each(['', 'abc', '"abc', '"abc\\"', '"a"b', ' "a"', '"a\0b"', '"a\\é"'])('unquoteString refuses %j', (text) => {
    expectParseError(() => unquoteString(text));
  });
});

describe('parseParams / formatParams', () => {
  it('reads names case-insensitively, valueless parameters as null, with LWS around ; and =', () => {
    const params = parseParams(' ;  Tag = 1918181833n ;lr; Q=0.33');
    expect(entries(params)).toEqual({
      entries: [
        ['tag', '1918181833n'],
        ['lr', null],
        ['q', '0.33'],
      ],
      quoted: [],
    });
    expect(params.get('TAG')).toBe('1918181833n');
    expect([...parseParams('a=b;c')]).toEqual([
      ['a', 'b'],
      ['c', null],
    ]);
    expect(parseParams('').size).toBe(0);
  });

  it('unquotes quoted values, keeps ";" "," "<" inside them, and remembers the quoting', () => {
    const params = parseParams(';p="x;y, <z>";+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";m="\\"q\\""');
    expect(params.get('p')).toBe('x;y, <z>');
    expect(params.get('+sip.instance')).toBe('<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>');
    expect(params.get('m')).toBe('"q"');
    expect([...params.quoted]).toEqual(['p', '+sip.instance', 'm']);
  });

  it('accepts IPv6 values with and without brackets', () => {
    const params = parseParams(';maddr=[2001:db8::1];received=2001:db8::9:255;x=::ffff:192.0.2.1');
    expect(params.get('maddr')).toBe('[2001:db8::1]');
    expect(params.get('received')).toBe('2001:db8::9:255');
    expect(params.get('x')).toBe('::ffff:192.0.2.1');
  });

  it.each([';', ';;', ';a;;b', ';=x', ';a=', ';a= ;b', ';a=b/c', ';a=b c', ';a b', ';a=[::1', ';a=1:2', ';a="x', ';a;A', ';a=1;a=2', ';é=1', 'a=1,b=2'])(
    'refuses %j',
    (text) => {
      expectParseError(() => parseParams(text));
    },
  );

  it('puts the header name in the error', () => {
    expect(expectParseError(() => parseParams(';;', 'Contact')).header).toBe('Contact');
  });

  it('writes values bare when they may be, quoted when they must be or were', () => {
    const params = new Params();
    params.set('tag', 'a1');
    params.set('lr', null);
    params.set('received', '2001:db8::1');
    params.set('maddr', '[::1]');
    params.set('text', 'a b;c"d');
    params.set('feature', 'fixed', true);
    params.set('empty', '');
    expect(formatParams(params)).toBe(';tag=a1;lr;received=2001:db8::1;maddr=[::1];text="a b;c\\"d";feature="fixed";empty=""');
    expect(formatParams(new Map([['x', 'y z']]))).toBe(';x="y z"');
    expect(formatParams(new Params())).toBe('');
    expect(() => formatParams(new Map([['bad name', 'x']]))).toThrow(RangeError);
    expect(() => formatParams(new Map([['x', 'a\r\nb']]))).toThrow(RangeError);
  });
});

describe('splitHeaderList', () => {
  it('splits on commas and trims', () => {
    expect(splitHeaderList('a, b ,c')).toEqual(['a', 'b', 'c']);
    expect(splitHeaderList('single')).toEqual(['single']);
    expect(splitHeaderList('application/sdp, application/pkcs7-mime,  multipart/mixed, multipart/signed,  message/sip, message/sipfrag')).toEqual([
      'application/sdp',
      'application/pkcs7-mime',
      'multipart/mixed',
      'multipart/signed',
      'message/sip',
      'message/sipfrag',
    ]);
  });

  it('does not split inside quotes (with escapes) or angle brackets', () => {
    expect(splitHeaderList('"Bell, Alexander" <sip:a@b>;tag=1, <sip:c,d@e>, "x\\", y" <sip:f@g>')).toEqual([
      '"Bell, Alexander" <sip:a@b>;tag=1',
      '<sip:c,d@e>',
      '"x\\", y" <sip:f@g>',
    ]);
    expect(splitHeaderList('"<", <sip:a@b>')).toEqual(['"<"', '<sip:a@b>']);
  });

  it('drops empty elements (RFC 4475 wsinv UnknownHeaderWithUnusualValue)', () => {
    expect(splitHeaderList(';;,,;;,;')).toEqual([';;', ';;', ';']);
    expect(splitHeaderList(' , ,\t,')).toEqual([]);
    expect(splitHeaderList('')).toEqual([]);
  });

  it('refuses an unterminated quote or "<"', () => {
    expectParseError(() => splitHeaderList('"Mr. J. User <sip:j.user@example.com>'));
    expectParseError(() => splitHeaderList('<sip:a@b, c'));
    expectParseError(() => splitHeaderList('"abc\\"'));
  });
});

describe('parseNameAddr', () => {
  it('reads a quoted display name, an angle-bracketed URI with its own parameters, and header parameters', () => {
    const na = parseNameAddr('"Quoted \\"Name\\"" <sip:a@b;uparam=1>;tag=x');
    expect(na.displayName).toBe('Quoted "Name"');
    expect(uriText(na)).toBe('sip:a@b;uparam=1');
    expect(entries(na.params)).toEqual({ entries: [['tag', 'x']], quoted: [] });
  });

  it('reads token display names, collapsing LWS to one space', () => {
    expect(parseNameAddr('Bob Smith <sip:bob@example.com>').displayName).toBe('Bob Smith');
    expect(parseNameAddr('Bob \t  Smith<sip:bob@example.com>').displayName).toBe('Bob Smith');
    expect(parseNameAddr('A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe').displayName).toBe('A. Bell');
    // RFC 4475 lwsdisp: no LWS between the display name and "<"
    expect(parseNameAddr('caller<sip:caller@example.com>;tag=323').displayName).toBe('caller');
  });

  it('leaves displayName out when none is written, and keeps an empty quoted one', () => {
    const na = parseNameAddr('<sip:a@b>');
    expect('displayName' in na).toBe(false);
    expect(parseNameAddr('"" <sip:a@b>').displayName).toBe('');
  });

  it('gives the parameters after a bare addr-spec to the header (RFC 3261 §20)', () => {
    const na = parseNameAddr('sip:a@b;tag=x');
    expect(uriText(na)).toBe('sip:a@b');
    expect((na.uri as SipUri).params.size).toBe(0);
    expect([...na.params]).toEqual([['tag', 'x']]);
    // RFC 4475 cparam01 vs cparam02: the same parameter belongs to the header, or to the URI
    const bare = parseNameAddr('sip:+19725552222@gw1.example.net;unknownparam');
    expect([...bare.params]).toEqual([['unknownparam', null]]);
    const bracketed = parseNameAddr('<sip:+19725552222@gw1.example.net;unknownparam>');
    expect(bracketed.params.size).toBe(0);
    expect([...(bracketed.uri as SipUri).params]).toEqual([['unknownparam', null]]);
  });

  it('reads the RFC 4475 wsinv To, from and m values', () => {
    const to = parseNameAddr('sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n');
    expect(uriText(to)).toBe('sip:vivekg@chair-dnrc.example.com');
    expect(to.params.get('tag')).toBe('1918181833n');
    const from = parseNameAddr('"J Rosenberg \\\\\\""       <sip:jdrosen@example.com> ; tag = 98asjd8');
    expect(from.displayName).toBe('J Rosenberg \\"');
    expect(from.params.get('tag')).toBe('98asjd8');
    const contact = parseNameAddr('"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam = newvalue ; secondparam ; q = 0.33');
    expect(contact.displayName).toBe('Quoted string ""');
    expect([...contact.params]).toEqual([
      ['newparam', 'newvalue'],
      ['secondparam', null],
      ['q', '0.33'],
    ]);
  });

  it('reads the RFC 4475 intmeth To and From: control characters, odd tokens, UTF-8 parameter', () => {
    const to = parseNameAddr('"BEL:\\\x07 NUL:\\\0 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*@example.com>');
    expect(to.displayName).toBe('BEL:\x07 NUL:\0 DEL:\x7f');
    expect((to.uri as SipUri).user).toBe("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    const from = parseNameAddr(
      "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"работающий\";tag=_token~1'+`*%!-.",
    );
    expect(from.displayName).toBe("token1~` token2'+_ token3*%!.-");
    expect(from.params.get("fromParam''~+*_!.-%")).toBe('работающий');
    expect(from.params.get('tag')).toBe("_token~1'+`*%!-.");
  });

  it('reads other RFC 4475 and RFC 5118 forms', () => {
    expect(parseNameAddr('"%Z%45" <sip:resource@example.com>').displayName).toBe('%Z%45'); // esc02
    expect(uriText(parseNameAddr('<sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>'))).toBe(
      'sip:cal%6Cer@host5.example.net;lr;name=value%2541',
    ); // esc01
    expect(parseNameAddr('<http://www.example.com>;tag=3234233').uri).toEqual({ scheme: 'http', opaque: '//www.example.com' }); // unksm2
    expect(parseNameAddr('isbn:2983792873').uri).toEqual({ scheme: 'isbn', opaque: '2983792873' });
    expect(parseNameAddr('<name:John_Smith>').uri).toEqual({ scheme: 'name', opaque: 'John_Smith' });
    expect(parseNameAddr('<sip:user@host129.example.com>  ;expires=280297596632815').params.get('expires')).toBe('280297596632815'); // scalar02
    expect(parseNameAddr('<sip:user@example.com?Route=%3Csip:sip.example.com%3E>').uri).toMatchObject({
      headers: [['Route', '%3Csip:sip.example.com%3E']],
    }); // regescrt
    expect((parseNameAddr('"Caller" <sip:caller@[2001:db8::1]>').uri as SipUri).host).toBe('[2001:db8::1]');
    expect((parseNameAddr('sip:[2001:db8::10]').uri as SipUri).host).toBe('[2001:db8::10]');
    expect(parseNameAddr('<im:alice@example.com>').uri).toEqual({ scheme: 'im', user: 'alice', host: 'example.com', headers: [] });
  });

  it('keeps "<", ">" and "," inside a quoted display name, and UTF-8', () => {
    const na = parseNameAddr('"<sip:evil@x>, \\"Ева\\" 😀" <sip:real@y>;tag=1');
    expect(na.displayName).toBe('<sip:evil@x>, "Ева" 😀');
    expect(uriText(na)).toBe('sip:real@y');
  });

  it.each([
    ['"Watson, Thomas" < sip:t.watson@example.org >', 'whitespace inside <> (RFC 4475 badaspec)'],
    ['Bell, Alexander <sip:a.g.bell@example.com>;tag=43', 'unquoted comma in display name (RFC 4475 baddn)'],
    ['"Mr. J. User <sip:j.user@example.com>', 'unbalanced quote (RFC 4475 quotbal)'],
    ['sip:user@example.com?Route=%3Csip:sip.example.com%3E', 'bare addr-spec with ? (RFC 4475 regbadct)'],
    ['"Joe" <sip:joe@example.org>;;;;', 'empty parameters (RFC 4475 badinv01)'],
    ['sip:2001:db8::10', 'IPv6 without brackets (RFC 5118 ipv6-bad)'],
    ['<sip:a@b', 'unterminated <'],
    ['<sip:a@b> junk', 'text after >'],
  ])('refuses %j (%s)', (text) => {
    expectParseError(() => parseNameAddr(text));
  });

  it.each(['', '   ', '*', '"Bob"', '"Bob" sip:a@b', 'Bob Smith', 'Bob Smith sip:a@b', '<>', '<not a uri>', 'sip:a,b@c', '"x" <sip:a@b', 'sip:a@b;tag="x', 'sip:a@b;tag=x;tag=y'])(
    'refuses %j',
    (text) => {
      expectParseError(() => parseNameAddr(text, 'To'));
    },
  );

  it('reports URI errors as bad-header-value with the header name', () => {
    const error = expectParseError(() => parseNameAddr('<sip:a@b:99999>', 'Contact'));
    expect(error.header).toBe('Contact');
    expect(error.message).toMatch(/port/);
  });

  it('recognises Contact: * (isStarContact)', () => {
    expect(isStarContact('*')).toBe(true);
    expect(isStarContact('  * ')).toBe(true);
    expect(isStarContact('**')).toBe(false);
    expect(isStarContact('* <sip:a@b>')).toBe(false);
    expect(isStarContact('')).toBe(false);
  });

  it('formats with angle brackets and a quoted display name', () => {
    expect(formatNameAddr(parseNameAddr('Bob <sip:bob@b>;tag=1'))).toBe('"Bob" <sip:bob@b>;tag=1');
    expect(formatNameAddr(parseNameAddr('sip:a@b;tag=x'))).toBe('<sip:a@b>;tag=x');
    expect(formatNameAddr(parseNameAddr('<sip:a@b;lr>;+sip.instance="<urn:uuid:1>";expires=60'))).toBe(
      '<sip:a@b;lr>;+sip.instance="<urn:uuid:1>";expires=60',
    );
    expect(formatNameAddr({ displayName: 'A "B" \\ C', uri: parseUri('tel:+1234'), params: new Params() })).toBe('"A \\"B\\" \\\\ C" <tel:+1234>');
  });
});

describe('parseVia', () => {
  it('reads a plain via-parm', () => {
    const [via, ...rest] = parseVia('SIP/2.0/UDP pc33.Atlanta.com:5066;branch=z9hG4bK776asdhds;rport');
    expect(rest).toEqual([]);
    expect(via).toMatchObject({ protocol: 'SIP', version: '2.0', transport: 'UDP', host: 'pc33.atlanta.com', port: 5066 });
    expect(viaBranch(via!)).toBe('z9hG4bK776asdhds');
    expect(viaRport(via!)).toBeNull();
    expect(viaReceived(via!)).toBeUndefined();
  });

  it('uppercases protocol and transport, leaves port out when absent', () => {
    const [via] = parseVia('sip/2.0/tcp host');
    expect(via).toEqual({ protocol: 'SIP', version: '2.0', transport: 'TCP', host: 'host', params: new Params() });
    expect(viaRport(via!)).toBeUndefined();
    expect(viaBranch(via!)).toBeUndefined();
  });

  it('accepts LWS around "/", ":", ";" and "=" (RFC 4475 wsinv)', () => {
    const [via] = parseVia('SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw');
    expect(via).toMatchObject({ transport: 'UDP', host: '192.0.2.2' });
    expect(viaBranch(via!)).toBe('390skdjuw');
    const vias = parseVia('SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239');
    expect(vias.map((v) => [v.transport, v.host, viaBranch(v)])).toEqual([
      ['TCP', 'spindle.example.com', 'z9hG4bK9ikj8'],
      ['UDP', '192.168.255.111', 'z9hG4bK30239'],
    ]);
    expect(parseVia('SIP/2.0/UDP host : 5060 ;rport = 5061')[0]).toMatchObject({ host: 'host', port: 5060 });
  });

  it('reads every transport of RFC 4475 transports, and the intmeth branch', () => {
    for (const transport of ['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP', 'WS', 'WSS']) {
      expect(parseVia(`SIP/2.0/${transport} t1.example.com;branch=z9hG4bKkdjuw`)[0]!.transport).toBe(transport);
    }
    expect(viaBranch(parseVia("SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~")[0]!)).toBe("z9hG4bK-.!%66*_+`'~");
  });

  it('reads IPv6 sent-by and received with and without brackets (RFC 5118 §4.5, §4.7, §4.9)', () => {
    const [withDelim] = parseVia('SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111');
    expect(withDelim!.host).toBe('[2001:db8::9:1]');
    expect(withDelim!.params.get('received')).toBe('[2001:db8::9:255]');
    expect(viaReceived(withDelim!)).toBe('2001:db8::9:255');
    const [noDelim] = parseVia('SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3');
    expect(viaReceived(noDelim!)).toBe('2001:db8::9:255');
    expect(viaBranch(noDelim!)).toBe('z9hG4bKas3');
    const mixed = parseVia(
      'SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111, SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKjhja8781hjuaij65144;received=192.0.2.5, SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;received=192.0.2.200',
    );
    expect(mixed.map((v) => [v.host, v.port, viaReceived(v)])).toEqual([
      ['[2001:db8::9:1]', 6050, undefined],
      ['192.0.2.1', undefined, '192.0.2.5'],
      ['[2001:db8::9:255]', undefined, '192.0.2.200'],
    ]);
    expect(parseVia('SIP/2.0/UDP [::ffff:192.0.2.2];branch=z9hG4bK')[0]!.host).toBe('[::ffff:192.0.2.2]');
  });

  it('reads rport with a value (RFC 3581), ttl and maddr', () => {
    const [via] = parseVia('SIP/2.0/UDP h;rport=5061;received=192.0.2.1;ttl=16;maddr=224.2.0.1');
    expect(viaRport(via!)).toBe(5061);
    expect(via!.params.get('ttl')).toBe('16');
    expect(via!.params.get('maddr')).toBe('224.2.0.1');
  });

  it.each([
    ['', 'empty'],
    ['SIP/2.0/UDP', 'no sent-by'],
    ['SIP/2.0 UDP host', 'missing slash'],
    ['SIP/2.0/UDPhost', 'no space before sent-by'],
    ['SIP//UDP host', 'empty version'],
    ['SIP/2.0/UDP 2001:db8::1', 'IPv6 without brackets'],
    ['SIP/2.0/UDP [2001:db8::1', 'unbalanced ['],
    ['SIP/2.0/UDP [2001:db8::1]x', 'junk after ]'],
    ['SIP/2.0/UDP host:', 'empty port'],
    ['SIP/2.0/UDP host:99999', 'port out of range'],
    ['SIP/2.0/UDP host_1', 'bad host'],
    ['SIP/2.0/UDP host extra', 'junk after sent-by'],
    ['SIP/2.0/UDP host;received=example.com', 'received is not an IP'],
    ['SIP/2.0/UDP host;received', 'valueless received'],
    ['SIP/2.0/UDP host;branch', 'valueless branch'],
    ['SIP/2.0/UDP host;rport=abc', 'rport not a number'],
    ['SIP/2.0/UDP host;rport=70000', 'rport out of range'],
    ['SIP/2.0/UDP host;ttl=256', 'ttl out of range'],
    ['SIP/2.0/UDP host;maddr=bad_host', 'maddr not a host'],
    ['SIP/2.0/UDP host;branch=a;branch=b', 'duplicate parameter'],
    ['SIP/2.0/UDP 192.0.2.15;;,;,,', 'RFC 4475 badinv01'],
    ['SIP/2.0/UDP a, junk', 'bad second via'],
  ])('refuses %j (%s)', (text) => {
    expect(expectParseError(() => parseVia(text, 'Via')).header).toBe('Via');
  });

  it('formats a via-parm', () => {
    const via = parseVia('sip / 2.0 / udp [2001:DB8::1] : 5070 ; branch = z9hG4bK1 ; rport ; received=2001:db8::2')[0]!;
    expect(formatVia(via)).toBe('SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK1;rport;received=2001:db8::2');
    via.params.set('rport', '5071');
    expect(formatVia({ ...via, host: '2001:db8::1' })).toBe('SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK1;rport=5071;received=2001:db8::2');
  });
});

describe('CSeq', () => {
  it('reads the number and the method', () => {
    expect(parseCSeq('4711 INVITE')).toEqual({ seq: 4711, method: 'INVITE' });
    expect(parseCSeq('0009   INVITE')).toEqual({ seq: 9, method: 'INVITE' }); // wsinv, unfolded
    expect(parseCSeq('4294967295 MESSAGE')).toEqual({ seq: 4294967295, method: 'MESSAGE' });
    expect(parseCSeq('29344 RE%47IST%45R')).toEqual({ seq: 29344, method: 'RE%47IST%45R' }); // esc02
    expect(parseCSeq("139122385 !interesting-Method0123456789_*+`.%indeed'~").method).toBe("!interesting-Method0123456789_*+`.%indeed'~");
    expect(formatCSeq({ seq: 1, method: 'MESSAGE' })).toBe('1 MESSAGE');
  });

  it.each([
    '',
    'INVITE',
    '1',
    '1 ',
    '1INVITE',
    '-1 INVITE',
    '4294967296 INVITE',
    '36893488147419103232 REGISTER', // RFC 4475 scalar02
    '9292394834772304023312 OPTIONS', // RFC 4475 scalarlg
    '1 INVITE extra',
    '1 IN/VITE',
    '1.5 INVITE',
    '1 INVITÉ',
  ])('refuses %j', (text) => {
    expectParseError(() => parseCSeq(text, 'CSeq'));
  });
});

describe('Content-Type', () => {
  it('reads type, subtype and parameters', () => {
    const ct = parseContentType('Text/Plain; Charset=UTF-8');
    expect(ct.type).toBe('text');
    expect(ct.subtype).toBe('plain');
    expect(ct.params.get('charset')).toBe('UTF-8');
    expect(mediaTypeOf(ct)).toBe('text/plain');
    expect(mediaTypeOf(parseContentType('multipart/mixed;boundary=7a9cbec02ceef655'))).toBe('multipart/mixed');
    const smime = parseContentType('application/pkcs7-mime; smime-type=authEnveloped-data; name="smime.p7m"');
    expect(smime.params.get('smime-type')).toBe('authEnveloped-data');
    expect(smime.params.get('name')).toBe('smime.p7m');
    expect(formatContentType(smime)).toBe('application/pkcs7-mime;smime-type=authEnveloped-data;name="smime.p7m"');
    expect(mediaTypeOf(parseContentType('message / cpim'))).toBe('message/cpim');
    expect(formatContentType(parseContentType('text/plain;charset="utf-8"'))).toBe('text/plain;charset="utf-8"');
  });

  it.each(['', 'text', 'text/', '/plain', 'text/plain;', 'text/plain; charset', 'text/plain garbage', 'text/plain;charset=a b', 'te xt/plain', 'text/pl@in'])(
    'refuses %j',
    (text) => {
      expectParseError(() => parseContentType(text, 'Content-Type'));
    },
  );
});

describe('Content-Length', () => {
  it('reads digits', () => {
    expect(parseContentLength('0')).toBe(0);
    expect(parseContentLength('150')).toBe(150);
    expect(parseContentLength('0150')).toBe(150);
    expect(parseContentLength(String(MAX_CONTENT_LENGTH))).toBe(MAX_CONTENT_LENGTH);
  });

  it.each(['', ' ', '-999', '+1', '1.0', '1 2', 'abc', '12a', String(MAX_CONTENT_LENGTH + 1), '9'.repeat(400)])('refuses %j with bad-content-length', (text) => {
    expectParseError(() => parseContentLength(text, 'Content-Length'), 'bad-content-length');
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

const chars = (set: string): fc.Arbitrary<string> => fc.constantFrom(...set.split(''));
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const token = fc.string({ unit: chars(ALNUM + "-.!%*_+`'~"), minLength: 1, maxLength: 10 });
const displayText = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 16 }), fc.string({ unit: 'binary-ascii', maxLength: 16 })).filter((s) => !/[\r\n]/.test(s));
const hostArb = fc.oneof(
  fc.constantFrom('example.com', 'A.Example.ORG', 'localhost', 'x1-y2.z'),
  fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.')),
  fc.constantFrom('[2001:db8::1]', '[::1]', '[::ffff:192.0.2.1]', '[FE80::1:2]'),
);
const sipUri: fc.Arbitrary<SipUri> = fc
  .record({
    scheme: fc.constantFrom('sip' as const, 'sips' as const),
    user: fc.option(fc.string({ unit: chars(ALNUM + "-_.!~*'()&=+$,;?/"), minLength: 1, maxLength: 8 }), { nil: undefined }),
    host: hostArb,
    port: fc.option(fc.nat(65535), { nil: undefined }),
    lr: fc.boolean(),
  })
  .map(({ scheme, user, host, port, lr }) => {
    const uri: SipUri = { scheme, host: host.toLowerCase(), params: new Params(lr ? [['lr', null]] : []), headers: [] };
    if (user !== undefined) uri.user = user;
    if (port !== undefined) uri.port = port;
    return uri;
  });
const paramValue = fc.oneof(
  fc.constant(null),
  token,
  fc.constantFrom('[2001:db8::1]', '2001:db8::9:255', '192.0.2.1'),
  displayText, // anything: written quoted
);
const headerParams = fc
  .tuple(fc.uniqueArray(fc.tuple(token, paramValue, fc.boolean()), { maxLength: 4, selector: ([name]) => name.toLowerCase() }))
  .map(([list]) => {
    const params = new Params();
    for (const [name, value, quote] of list) params.set(name, value, value !== null && quote);
    return params;
  });

/** What a round trip must preserve: values, and the quoting of values that were quoted. */
function paramsAfterRoundTrip(params: Params): unknown {
  return [...params].map(([name, value]) => [name, value]);
}

describe('property: round trips', () => {
  it('parseNameAddr(formatNameAddr(x)) gives x back', () => {
    fc.assert(
      fc.property(fc.option(displayText, { nil: undefined }), sipUri, headerParams, (displayName, uri, params) => {
        const original: NameAddr = displayName === undefined ? { uri, params } : { displayName, uri, params };
        const text = formatNameAddr(original);
        const back = parseNameAddr(text);
        expect(back.displayName).toBe(displayName);
        expect(uriEquals(back.uri, uri)).toBe(true);
        expect(formatUri(back.uri)).toBe(formatUri(uri));
        expect(paramsAfterRoundTrip(back.params)).toEqual(paramsAfterRoundTrip(params));
        for (const name of params.quoted) expect(back.params.quoted.has(name)).toBe(true);
        expect(formatNameAddr(back)).toBe(text);
      }),
      { numRuns: 500 },
    );
  });

  it('parseVia(formatVia(x)) gives x back, and LWS around separators changes nothing', () => {
    const viaArb: fc.Arbitrary<Via> = fc
      .record({
        transport: fc.constantFrom('UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS', 'X-NEW'),
        host: hostArb,
        port: fc.option(fc.nat(65535), { nil: undefined }),
        branch: fc.option(token.map((t) => 'z9hG4bK' + t), { nil: undefined }),
        received: fc.option(fc.constantFrom('192.0.2.1', '2001:db8::9:255', '[2001:db8::9:255]'), { nil: undefined }),
        rport: fc.option(fc.option(fc.nat(65535), { nil: null }), { nil: undefined }),
        extra: headerParams,
      })
      .map(({ transport, host, port, branch, received, rport, extra }) => {
        const params = new Params();
        if (branch !== undefined) params.set('branch', branch);
        if (received !== undefined) params.set('received', received);
        if (rport !== undefined) params.set('rport', rport === null ? null : String(rport));
        for (const [name, value] of extra) if (!params.has(name) && !['ttl', 'maddr'].includes(name)) params.set(name, value, extra.quoted.has(name));
        const via: Via = { protocol: 'SIP', version: '2.0', transport, host: host.toLowerCase(), params };
        if (port !== undefined) via.port = port;
        return via;
      });
    const ws = fc.constantFrom('', ' ', '  ', '\t', ' \t ');
    fc.assert(
      fc.property(fc.array(viaArb, { minLength: 1, maxLength: 3 }), ws, ws, (vias, a, b) => {
        const text = vias.map(formatVia).join(', ');
        const back = parseVia(text);
        expect(back.map(formatVia)).toEqual(vias.map(formatVia));
        back.forEach((v, i) => {
          expect(v).toMatchObject({ protocol: 'SIP', version: '2.0', transport: vias[i]!.transport, host: vias[i]!.host });
          expect(v.port).toBe(vias[i]!.port);
          expect(paramsAfterRoundTrip(v.params)).toEqual(paramsAfterRoundTrip(vias[i]!.params));
          expect(viaRport(v)).toBe(viaRport(vias[i]!));
        });
        // Sprinkle LWS around "/", ":", ";" and "=" outside quoted strings, as RFC 4475 wsinv does.
        const loose = vias
          .map((via) => {
            const port = via.port !== undefined ? `${a}:${b}${via.port}` : '';
            let params = '';
            for (const [name, value] of via.params) {
              params += `${a};${b}${name}`;
              if (value !== null) params += `${a}=${b}${via.params.quoted.has(name) || !isBareValue(value) ? quoteString(value) : value}`;
            }
            return `SIP${a}/${b}2.0${a}/${b}${via.transport} ${b}${via.host}${port}${params}${a}`;
          })
          .join(`${a},${b}`);
        expect(parseVia(loose).map(formatVia)).toEqual(vias.map(formatVia));
      }),
      { numRuns: 300 },
    );
  });

  it('parseParams(formatParams(x)) gives x back, quoting included', () => {
    fc.assert(
      fc.property(headerParams, (params) => {
        const back = parseParams(formatParams(params));
        expect(paramsAfterRoundTrip(back)).toEqual(paramsAfterRoundTrip(params));
        expect(formatParams(back)).toBe(formatParams(params));
      }),
    );
  });

  it('unquoteString(quoteString(s)) === s', () => {
    fc.assert(
      fc.property(displayText, (text) => {
        expect(unquoteString(quoteString(text))).toBe(text);
      }),
    );
  });

  it('splitHeaderList undoes joining name-addrs with commas', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.option(displayText, { nil: undefined }), sipUri, headerParams), { maxLength: 4 }), (list) => {
        const texts = list.map(([displayName, uri, params]) => formatNameAddr(displayName === undefined ? { uri, params } : { displayName, uri, params }));
        expect(splitHeaderList(texts.join(' ,  '))).toEqual(texts);
      }),
    );
  });
});

function isBareValue(value: string): boolean {
  return formatParams(new Map([['x', value]])) === `;x=${value}`;
}

describe('property: nothing but ParseError on random input', () => {
  const alphabet = chars('sipSIP:@[]; ?=&%0aF.-<>"\\,/é\t*2UDP');
  const anyText = fc.oneof(
    fc.string({ unit: 'binary-ascii', maxLength: 60 }),
    fc.string({ unit: 'binary', maxLength: 30 }),
    fc.string({ unit: alphabet, maxLength: 60 }),
    fc.string({ unit: alphabet, maxLength: 40 }).map((s) => 'SIP/2.0/UDP ' + s),
    fc.string({ unit: alphabet, maxLength: 40 }).map((s) => '"a" <sip:' + s),
  );
  const parsers: Array<[string, (text: string) => unknown]> = [
    ['parseNameAddr', (t) => parseNameAddr(t)],
    ['parseVia', (t) => parseVia(t)],
    ['parseParams', (t) => parseParams(t)],
    ['parseCSeq', (t) => parseCSeq(t)],
    ['parseContentType', (t) => parseContentType(t)],
    ['splitHeaderList', (t) => splitHeaderList(t)],
    ['unquoteString', (t) => unquoteString(t)],
    ['parseContentLength', (t) => parseContentLength(t)],
  ];
  it.each(parsers)('%s', (_name, parse) => {
    fc.assert(
      fc.property(anyText, (text) => {
        try {
          parse(text);
        } catch (error) {
          expect(error).toBeInstanceOf(ParseError);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it('handles very long and pathological input in linear time', () => {
    const inputs = [
      '"' + '\\"'.repeat(100_000),
      '<'.repeat(100_000),
      ';'.repeat(100_000),
      'a '.repeat(100_000) + '<sip:a@b>',
      'a '.repeat(100_000),
      'SIP/2.0/UDP h' + ';x=1'.repeat(20_000),
      ','.repeat(200_000),
      '1'.repeat(200_000) + ' INVITE',
      'text/plain' + '; a=b'.repeat(1).padEnd(200_000, ' '),
    ];
    // A super-linear scanner would not finish these within the test timeout; nothing here
    // measures time (tests never assert on wall-clock time).
    for (const text of inputs) {
      for (const [, parse] of parsers) {
        try {
          parse(text);
        } catch (error) {
          expect(error).toBeInstanceOf(ParseError);
        }
      }
    }
  });
});

describe('consistency with the URI module', () => {
  it('a name-addr URI is a full Uri', () => {
    const na = parseNameAddr('<sips:bob@biloxi.example.com;transport=tls>');
    expect(isSipUri(na.uri) && na.uri.params.get('transport')).toBe('tls');
  });
});
