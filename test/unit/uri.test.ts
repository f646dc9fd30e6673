import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../main/sip/message/parse-error.js';
import {
  Params,
  aorOf,
  formatUri,
  isAbsoluteUri,
  isIPv4Address,
  isIPv6Address,
  isIPv6Reference,
  isImUri,
  isSipUri,
  normalizeHost,
  parseUri,
  unescapeUriPart,
  uriEquals,
} from '../../main/sip/uri.js';
import type { ImUri, SipUri, Uri } from '../../main/sip/uri.js';

function sip(text: string): SipUri {
  const uri = parseUri(text);
  if (!isSipUri(uri)) throw new Error(`${text} did not parse as a SIP URI`);
  return uri;
}

/** A URI as plain data, with parameters as an ordered list, for exact comparisons. */
function plain(uri: Uri): unknown {
  if (isSipUri(uri)) return { ...uri, params: [...uri.params], quoted: [...uri.params.quoted] };
  return { ...uri };
}

function expectBadUri(text: string): ParseError {
  let caught: unknown;
  try {
    parseUri(text);
  } catch (error) {
    caught = error;
  }
  expect(caught, `parseUri(${JSON.stringify(text)}) should throw`).toBeInstanceOf(ParseError);
  expect((caught as ParseError).code).toBe('bad-uri');
  return caught as ParseError;
}

describe('parseUri: sip and sips', () => {
  it('reads every component of a full SIP URI', () => {
    const uri = sip('sip:alice:secretword@Atlanta.COM:5070;transport=TCP;lr;maddr=239.255.255.1?subject=project%20x&priority=urgent');
    expect(uri.scheme).toBe('sip');
    expect(uri.user).toBe('alice');
    expect(uri.password).toBe('secretword');
    expect(uri.host).toBe('atlanta.com');
    expect(uri.port).toBe(5070);
    expect([...uri.params]).toEqual([
      ['transport', 'TCP'],
      ['lr', null],
      ['maddr', '239.255.255.1'],
    ]);
    expect(uri.headers).toEqual([
      ['subject', 'project%20x'],
      ['priority', 'urgent'],
    ]);
  });

  it('leaves out what is not written', () => {
    const uri = sip('sips:example.com');
    expect(uri).toEqual({ scheme: 'sips', host: 'example.com', params: new Params(), headers: [] });
    expect('user' in uri || 'password' in uri || 'port' in uri).toBe(false);
  });

  it('reads the scheme case-insensitively and keeps the user case', () => {
    const uri = sip('SIP:ALICE@AtLanTa.CoM;Transport=udp');
    expect(uri.scheme).toBe('sip');
    expect(uri.user).toBe('ALICE');
    expect(uri.host).toBe('atlanta.com');
    expect(uri.params.get('transport')).toBe('udp');
    expect(uri.params.get('TRANSPORT')).toBe('udp');
  });

  it('accepts an empty password and a telephone-subscriber user', () => {
    expect(sip('sip:alice:@host').password).toBe('');
    const tel = sip('sip:+1-212-555-1212:1234@gateway.com;user=phone');
    expect(tel.user).toBe('+1-212-555-1212');
    expect(tel.password).toBe('1234');
    expect(tel.params.get('user')).toBe('phone');
  });

  it('accepts hostnames with a trailing dot, IPv4 addresses and port 0', () => {
    expect(sip('sip:a@example.com.').host).toBe('example.com.');
    expect(sip('sip:a@192.0.2.4').host).toBe('192.0.2.4');
    expect(sip('sip:a@localhost:0').port).toBe(0);
    expect(sip('sip:a@h:00065535').port).toBe(65535);
  });

  it('reads URI parameters with the characters param-unreserved allows', () => {
    const uri = sip('sip:a@b;x=[::1];y=/p:q&r+$s;flag');
    expect([...uri.params]).toEqual([
      ['x', '[::1]'],
      ['y', '/p:q&r+$s'],
      ['flag', null],
    ]);
  });

  it('keeps the RFC 4475 esc01 user parts escaped and normalises the Contact parameters', () => {
    const requestUri = sip('sip:sips%3Auser%40example.com@example.net');
    expect(requestUri.user).toBe('sips%3Auser%40example.com');
    expect(requestUri.host).toBe('example.net');
    expect(unescapeUriPart(requestUri.user!)).toBe('sips:user@example.com');

    const to = sip('sip:%75se%72@example.com');
    expect(to.user).toBe('%75se%72');
    expect(unescapeUriPart(to.user!)).toBe('user');
    expect(unescapeUriPart(sip('sip:I%20have%20spaces@example.net').user!)).toBe('I have spaces');

    // ";%6C%72" is the lr parameter; "v%61lue%25%34%31" means "value%41", not "valueA".
    const contact = sip('sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31');
    expect(contact.user).toBe('cal%6Cer');
    expect(contact.params.get('lr')).toBeNull();
    expect(contact.params.get('name')).toBe('value%2541');
    expect(unescapeUriPart(contact.params.get('name')!)).toBe('value%41');
  });

  it('accepts escaped NULs in the user part (RFC 4475 escnull)', () => {
    expect(unescapeUriPart(sip('sip:null-%00-null@example.com').user!)).toBe('null-\0-null');
    expect(unescapeUriPart(sip('sip:%00%00@host5.example.com').user!)).toBe('\0\0');
  });

  it('reads the RFC 4475 intmeth Request-URI: odd user and password characters', () => {
    const uri = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
    expect(uri.user).toBe("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    expect(uri.password).toBe("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    expect(uri.host).toBe('example.com');
    expect(uri.params.size).toBe(0);
    expect(uri.headers).toEqual([]);
  });

  it('keeps ";" before "@" in the user part (RFC 4475 semiuri)', () => {
    const uri = sip('sip:user;par=u%40example.net@example.com');
    expect(uri.user).toBe('user;par=u%40example.net');
    expect(uri.host).toBe('example.com');
    expect(uri.params.size).toBe(0);
  });

  it('reads long parameter names and values (RFC 4475 longreq)', () => {
    const long = 'verylong'.repeat(40);
    const uri = sip(`sip:user@example.com:6000;unknownparam1=${long}value;${'name'.repeat(50)}=shortvalue;${long}ParameterNameWithNoValue`);
    expect(uri.port).toBe(6000);
    expect([...uri.params.keys()]).toEqual(['unknownparam1', 'name'.repeat(50), `${long}parameternamewithnovalue`]);
    expect(uri.params.get(`${long}ParameterNameWithNoValue`)).toBeNull();
  });

  it('reads the RFC 4475 wsinv Route URI with valueless parameters', () => {
    const uri = sip('sip:services.example.com;lr;unknownwith=value;unknown-no-value');
    expect([...uri.params]).toEqual([
      ['lr', null],
      ['unknownwith', 'value'],
      ['unknown-no-value', null],
    ]);
  });

  it('reads escaped URI headers (RFC 4475 escruri, regescrt)', () => {
    const uri = sip('sip:user@example.com?Route=%3Csip:example.com%3E');
    expect(uri.headers).toEqual([['Route', '%3Csip:example.com%3E']]);
    expect(unescapeUriPart(uri.headers[0]![1])).toBe('<sip:example.com>');
    expect(sip('sip:a@b?x=&y=1').headers).toEqual([
      ['x', ''],
      ['y', '1'],
    ]);
  });
});

describe('parseUri: IPv6 (RFC 5118, RFC 5954)', () => {
  it('reads IPv6 references with brackets, lowercased (§4.1)', () => {
    expect(sip('sip:[2001:db8::10]').host).toBe('[2001:db8::10]');
    expect(sip('sip:caller@[2001:DB8::1]').host).toBe('[2001:db8::1]');
    expect(sip('sip:[::1]:5060;transport=tcp').port).toBe(5060);
  });

  it('refuses an IPv6 address without brackets (§4.2 ipv6-bad)', () => {
    expect(expectBadUri('sip:2001:db8::10').message).toMatch(/brackets/);
    expect(expectBadUri('sip:user@2001:db8::10').message).toMatch(/brackets/);
    expectBadUri('sip:user@2001:db8::10:5070');
    expect(expectBadUri('sip:fe80::1').message).toMatch(/brackets/);
    expect(expectBadUri('sip:a@fe80:1:2::1;lr').message).toMatch(/brackets/);
  });

  it('tells an address that ends in a number from an address and a port (§4.3, §4.4)', () => {
    const ambiguous = sip('sip:[2001:db8::10:5070]');
    expect(ambiguous.host).toBe('[2001:db8::10:5070]');
    expect(ambiguous.port).toBeUndefined();
    const unambiguous = sip('sip:[2001:db8::10]:5070');
    expect(unambiguous.host).toBe('[2001:db8::10]');
    expect(unambiguous.port).toBe(5070);
    expect(uriEquals(ambiguous, unambiguous)).toBe(false);
  });

  it('reads IPv4-mapped addresses (§4.9)', () => {
    expect(sip('sip:[::ffff:192.0.2.2]').host).toBe('[::ffff:192.0.2.2]');
  });

  it('tolerates the three-colon form of RFC 3261 ABNF and reads it as the same address (§4.10)', () => {
    const buggy = sip('sip:user@[2001:db8:::192.0.2.1]');
    const correct = sip('sip:user@[2001:db8::192.0.2.1]');
    expect(buggy.host).toBe('[2001:db8:::192.0.2.1]');
    expect(uriEquals(buggy, correct)).toBe(true);
    expect(formatUri(aorOf(buggy))).toBe('sip:user@[2001:db8::c000:201]');
  });

  it('refuses malformed IPv6 references', () => {
    for (const bad of [
      'sip:[2001:db8::1',
      'sip:2001:db8::1]',
      'sip:[2001:db8::1]]',
      'sip:[]',
      'sip:[1:2:3:4:5:6:7:8:9]',
      'sip:[1:2:3:4:5:6:7]',
      'sip:[1::2::3]',
      'sip:[g::1]',
      'sip:[12345::1]',
      'sip:[:1:2:3:4:5:6:7]',
      'sip:[1:2:3:4:5:6:7:]',
      'sip:[::1.2.3]',
      'sip:[::256.1.1.1]',
      'sip:[1.2.3.4]',
      'sip:[2001:db8::1.2.3.4:5]',
      'sip:[2001:db8:::1]',
      'sip:[2001:db8::1]x',
    ]) {
      expectBadUri(bad);
    }
  });
});

describe('parseUri: other schemes', () => {
  it('parses unknown schemes as opaque absolute URIs (RFC 4475 unkscm, novelsc, unksm2)', () => {
    expect(parseUri('nobodyKnowsThisScheme:totallyopaquecontent')).toEqual({
      scheme: 'nobodyknowsthisscheme',
      opaque: 'totallyopaquecontent',
    });
    expect(parseUri('soap.beep://192.0.2.103:3002')).toEqual({ scheme: 'soap.beep', opaque: '//192.0.2.103:3002' });
    expect(parseUri('isbn:2983792873')).toEqual({ scheme: 'isbn', opaque: '2983792873' });
    expect(parseUri('http://www.example.com')).toEqual({ scheme: 'http', opaque: '//www.example.com' });
    expect(parseUri('name:John_Smith')).toEqual({ scheme: 'name', opaque: 'John_Smith' });
    const tel = parseUri('TEL:+1-212-555-0101;phone-context=example.com');
    expect(isAbsoluteUri(tel)).toBe(true);
    expect(tel).toEqual({ scheme: 'tel', opaque: '+1-212-555-0101;phone-context=example.com' });
  });

  it('parses im: and pres: URIs (RFC 3860, RFC 3859)', () => {
    const im = parseUri('im:alice@Example.COM') as ImUri;
    expect(isImUri(im)).toBe(true);
    expect(im).toEqual({ scheme: 'im', user: 'alice', host: 'example.com', headers: [] });
    expect(parseUri('pres:bob.smith@example.org')).toEqual({ scheme: 'pres', user: 'bob.smith', host: 'example.org', headers: [] });
    expect(parseUri('im:example.com')).toEqual({ scheme: 'im', host: 'example.com', headers: [] });
    expect(parseUri('IM:a%20b@x.org?subject=hi')).toEqual({ scheme: 'im', user: 'a%20b', host: 'x.org', headers: [['subject', 'hi']] });
  });

  it('refuses malformed im: URIs', () => {
    for (const bad of ['im:', 'im:@example.com', 'im:alice@example.com:5060', 'im:alice@example.com;p=1', 'im:a;b@example.com', 'im:alice@']) {
      expectBadUri(bad);
    }
  });

  it('refuses absolute URIs with characters no URI may contain', () => {
    for (const bad of ['tel:', 'http://a b', 'x:a"b', 'x:a<b>', 'x:a#frag', 'x:a\\b', 'x:%zz', 'x:é']) expectBadUri(bad);
  });

  it('type guards tell the three kinds apart', () => {
    const kinds = ['sip:a@b', 'sips:a@b', 'im:a@b', 'pres:a@b', 'tel:+1'].map((text) => {
      const uri = parseUri(text);
      return [isSipUri(uri), isImUri(uri), isAbsoluteUri(uri)];
    });
    expect(kinds).toEqual([
      [true, false, false],
      [true, false, false],
      [false, true, false],
      [false, true, false],
      [false, false, true],
    ]);
  });
});

describe('parseUri: malformed input', () => {
  it.each([
    ['', 'empty'],
    ['sip', 'no colon'],
    [':foo', 'no scheme'],
    ['1sip:a@b', 'scheme starting with a digit'],
    ['sip:', 'no host'],
    ['sip:alice@', 'no host after @'],
    ['sip:@example.com', 'empty user'],
    ['sip:host:', 'empty port'],
    ['sip:host:65536', 'port too large'],
    ['sip:host:99999999999999999999', 'port far too large'],
    ['sip:host:50x', 'port with letters'],
    ['sip:ho st', 'space in host'],
    ['<sip:user@example.com>', 'angle brackets (RFC 4475 ltgtruri)'],
    ['sip:user@example.com; lr', 'LWS in the URI (RFC 4475 lwsruri)'],
    ['sip:user@example.com ', 'trailing space'],
    [' sip:user@example.com', 'leading space'],
    ['sip:a@b;;lr', 'empty parameter'],
    ['sip:a@b;=x', 'parameter without a name'],
    ['sip:a@b;x=', 'parameter with an empty value'],
    ['sip:a@b;lr;LR', 'duplicate parameter'],
    ['sip:a@b;x=1=2', '"=" in a parameter value'],
    ['sip:a@b?x', 'URI header without "="'],
    ['sip:a@b?=x', 'URI header without a name'],
    ['sip:a@b?x=1&', 'empty URI header after "&"'],
    ['sip:a@b?x=1?y=2', '"?" twice... and "=" in a header value'],
    ['sip:%4@b', 'short escape'],
    ['sip:%zz@b', 'non-hex escape'],
    ['sip:a@b;p=%', 'lone % in a parameter'],
    ['sip:a@b%41', 'escape in the host'],
    ['sip:a@host_name', 'underscore in the host'],
    ['sip:a@-host.com', 'label starting with "-"'],
    ['sip:a@host-.com', 'label ending with "-"'],
    ['sip:a@host..com', 'empty label'],
    ['sip:a@example.123', 'numeric top label'],
    ['sip:a@256.1.1.1', 'IPv4 octet out of range'],
    ['sip:a@1.2.3', 'three-part numeric host'],
    ['sip:a b@c', 'space in the user part'],
    ['sip:a"b@c', 'quote in the user part'],
    ['sip:a:b:c@d', 'colon in the password'],
    ['sip:a@b#frag', 'fragment'],
    ['sip:a@b\r\n', 'CRLF'],
    ['sip:a@b>', 'stray ">"'],
    ['sip:é@example.com', 'unescaped non-ASCII user'],
  ])('refuses %j (%s)', (text) => {
    expectBadUri(text);
  });
});

describe('formatUri', () => {
  it.each([
    ['sip:alice@atlanta.com', 'sip:alice@atlanta.com'],
    ['SIP:ALICE@AtLanTa.CoM;Transport=udp', 'sip:ALICE@atlanta.com;transport=udp'],
    ['sips:alice:pw@[2001:DB8::1]:5061;lr?a=b&c=', 'sips:alice:pw@[2001:db8::1]:5061;lr?a=b&c='],
    ['sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31', 'sip:cal%6Cer@host5.example.net;lr;name=value%2541'],
    ['sip:a@b;transport=%54CP;x=%3b', 'sip:a@b;transport=TCP;x=%3B'],
    ['sip:user@example.com?Route=%3csip:example.com%3e', 'sip:user@example.com?Route=%3Csip:example.com%3E'],
    ['TEL:+1-212-555-0101', 'tel:+1-212-555-0101'],
    ['im:alice@Example.com?subject=hi', 'im:alice@example.com?subject=hi'],
  ])('writes %j as %j', (input, output) => {
    expect(formatUri(parseUri(input))).toBe(output);
    expect(formatUri(parseUri(output))).toBe(output);
  });

  it('escapes what a caller put in that may not appear literally', () => {
    const uri: SipUri = {
      scheme: 'sip',
      user: 'a b@c%',
      password: 'p:w',
      host: '::1',
      params: new Params([
        ['x', 'a b;c'],
        ['fl ag', null],
      ]),
      headers: [['Subject', 'a&b=c é']],
    };
    const text = formatUri(uri);
    expect(text).toBe('sip:a%20b%40c%25:p%3Aw@[::1];x=a%20b%3Bc;fl%20ag?Subject=a%26b%3Dc%20%C3%A9');
    const back = sip(text);
    expect(unescapeUriPart(back.user!)).toBe('a b@c%');
    expect(unescapeUriPart(back.headers[0]![1])).toBe('a&b=c é');
    expect(uriEquals(uri, back)).toBe(true);
    expect(formatUri({ scheme: 'sip', user: 'é', host: 'x', params: new Params(), headers: [] })).toBe('sip:%C3%A9@x');
    expect(formatUri({ scheme: 'http', opaque: '//x/a b' })).toBe('http://x/a%20b');
  });

  it('treats an empty user as no user', () => {
    expect(formatUri({ scheme: 'sip', user: '', password: 'x', host: 'h', params: new Params(), headers: [] })).toBe('sip:h');
  });
});

describe('unescapeUriPart', () => {
  it('decodes escapes as UTF-8, one level only', () => {
    expect(unescapeUriPart('plain')).toBe('plain');
    expect(unescapeUriPart('caf%C3%A9%20%e2%82%ac')).toBe('café €');
    expect(unescapeUriPart('%F0%9F%98%80!')).toBe('😀!');
    expect(unescapeUriPart('value%2541')).toBe('value%41');
  });

  it('replaces invalid UTF-8 with U+FFFD and refuses broken escapes', () => {
    expect(unescapeUriPart('a%FFb')).toBe('a\uFFFDb');
    expect(() => unescapeUriPart('a%4')).toThrow(ParseError);
    expect(() => unescapeUriPart('a%zz')).toThrow(ParseError);
  });
});

describe('uriEquals (RFC 3261 §19.1.4)', () => {
  const equalSets = [
    ['sip:%61lice@atlanta.com;transport=TCP', 'sip:alice@AtLanTa.CoM;Transport=tcp'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com;newparam=5', 'sip:carol@chicago.com;security=on'],
    ['sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com', 'sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com'],
    ['sip:alice@atlanta.com?subject=project%20x&priority=urgent', 'sip:alice@atlanta.com?priority=urgent&subject=project%20x'],
  ];
  const unequalPairs: Array<[string, string, string]> = [
    ['SIP:ALICE@AtLanTa.CoM;Transport=udp', 'sip:alice@AtLanTa.CoM;Transport=UDP', 'different usernames'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:5060', 'can resolve to different ports'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com;transport=udp', 'can resolve to different transports'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:6000;transport=tcp', 'can resolve to different port and transports'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com?Subject=next%20meeting', 'different header component'],
    ['sip:bob@phone21.boxesbybob.com', 'sip:bob@192.0.2.4', "even though that's what phone21.boxesbybob.com resolves to"],
  ];

  it.each(equalSets.map((set) => [set]))('finds every pair of %j equal, both ways', (set) => {
    for (const a of set) for (const b of set) expect(uriEquals(parseUri(a), parseUri(b)), `${a} vs ${b}`).toBe(true);
  });

  it.each(unequalPairs)('finds %j and %j different (%s)', (a, b) => {
    expect(uriEquals(parseUri(a), parseUri(b))).toBe(false);
    expect(uriEquals(parseUri(b), parseUri(a))).toBe(false);
  });

  it('is not transitive across parameters only one side has', () => {
    const plainUri = parseUri('sip:carol@chicago.com');
    const on = parseUri('sip:carol@chicago.com;security=on');
    const off = parseUri('sip:carol@chicago.com;security=off');
    expect(uriEquals(plainUri, on)).toBe(true);
    expect(uriEquals(plainUri, off)).toBe(true);
    expect(uriEquals(on, off)).toBe(false);
  });

  it.each([
    ['sip:a@b', 'sips:a@b', false],
    ['sip:a@b', 'sip:A@b', false],
    ['sip:a:pw@b', 'sip:a:PW@b', false],
    ['sip:a:pw@b', 'sip:a@b', false],
    ['sip:a:p%77@b', 'sip:a:pw@b', true],
    ['sip:b', 'sip:a@b', false],
    ['sip:a@b;user=phone', 'sip:a@b', false],
    ['sip:a@b;ttl=1', 'sip:a@b', false],
    ['sip:a@b;method=INVITE', 'sip:a@b', false],
    ['sip:a@b;maddr=1.2.3.4', 'sip:a@b', false],
    ['sip:a@b;maddr=X.example', 'sip:a@b;maddr=x.example', true],
    ['sip:a@b;lr', 'sip:a@b', true],
    ['sip:a@b;lr', 'sip:a@b;lr=on', false],
    ['sip:a@b;x=ABC', 'sip:a@b;x=abc', true],
    ['sip:a@b;x=%41', 'sip:a@b;x=a', true],
    ['sip:a%2541@b', 'sip:a%41@b', false],
    ['sip:%c3%a9@b', 'sip:%C3%A9@b', true],
    ['sip:a@[::1]', 'sip:a@[0:0:0:0:0:0:0:1]', true],
    ['sip:a@[2001:DB8::1]', 'sip:a@[2001:db8:0::1]', true],
    ['sip:a@[::ffff:192.0.2.1]', 'sip:a@[::ffff:c000:201]', true],
    ['sip:a@[::1]', 'sip:a@[::2]', false],
    ['sip:a@b?x=1&x=2', 'sip:a@b?x=2&x=1', true],
    ['sip:a@b?x=1&x=1', 'sip:a@b?x=1&y=1', false],
    ['sip:a@b?Subject=Hi', 'sip:a@b?subject=Hi', true],
    ['sip:a@b?subject=Hi', 'sip:a@b?subject=hi', false],
    ['im:alice@example.com', 'IM:alice@EXAMPLE.com', true],
    ['im:alice@example.com', 'im:Alice@example.com', false],
    ['im:alice@example.com', 'pres:alice@example.com', false],
    ['im:alice@example.com', 'sip:alice@example.com', false],
    ['tel:+1234', 'TEL:+1234', true],
    ['tel:+1234', 'tel:+1235', false],
    ['x:a%41', 'x:aA', true],
  ])('%s vs %s → %s', (a, b, expected) => {
    expect(uriEquals(parseUri(a), parseUri(b))).toBe(expected);
    expect(uriEquals(parseUri(b), parseUri(a))).toBe(expected);
  });

  it('compares parameters given as a plain Map too', () => {
    const a: SipUri = { scheme: 'sip', host: 'b', params: new Params([['transport', 'tcp']]), headers: [] };
    const b: SipUri = { scheme: 'sip', host: 'B', params: new Map([['transport', 'TCP']]) as Params, headers: [] };
    expect(uriEquals(a, b)).toBe(true);
  });
});

describe('aorOf', () => {
  it.each([
    ['sip:%61lice:secret@Example.COM:5070;transport=tcp;gr=urn:uuid:1?subject=hi', 'sip:alice@example.com:5070'],
    ['sip:alice@example.com;transport=tcp', 'sip:alice@example.com'],
    ['sips:Alice@example.com', 'sips:Alice@example.com'],
    ['sip:example.com;lr', 'sip:example.com'],
    ['sip:%7e%41%3a@[2001:DB8:0:0::1]', 'sip:~A%3A@[2001:db8::1]'],
    ['sip:a@[0:0:0:0:0:ffff:c000:201]', 'sip:a@[::ffff:192.0.2.1]'],
    ['sip:a@[1:0:0:2:0:0:0:3]', 'sip:a@[1:0:0:2::3]'],
    ['sip:a@[1:0:2:3:4:5:6:7]', 'sip:a@[1:0:2:3:4:5:6:7]'],
    ['tel:+1-212-555-0101', 'tel:+1-212-555-0101'],
    ['im:%61lice@Example.com?subject=x', 'im:alice@example.com'],
  ])('%s → %s', (input, expected) => {
    const aor = aorOf(parseUri(input));
    expect(formatUri(aor)).toBe(expected);
    expect(uriEquals(parseUri(formatUri(aor)), aor)).toBe(true);
  });

  it('gives URIs equal in their identity parts the same string', () => {
    const a = formatUri(aorOf(parseUri('sip:%61lice@ATLANTA.com;transport=TCP')));
    const b = formatUri(aorOf(parseUri('sip:alice@atlanta.com;gr=x')));
    expect(a).toBe(b);
  });
});

describe('hosts and Params', () => {
  it('classifies addresses', () => {
    expect(isIPv4Address('192.0.2.1')).toBe(true);
    expect(isIPv4Address('192.0.2')).toBe(false);
    expect(isIPv4Address('192.0.2.256')).toBe(false);
    expect(isIPv6Address('2001:db8::9:255')).toBe(true);
    expect(isIPv6Address('::')).toBe(true);
    expect(isIPv6Address('[::1]')).toBe(false);
    expect(isIPv6Reference('[::1]')).toBe(true);
    expect(isIPv6Reference('[::1')).toBe(false);
    expect(normalizeHost('Example.COM')).toBe('example.com');
    expect(normalizeHost('[2001:DB8::1]')).toBe('[2001:db8::1]');
    expect(normalizeHost('2001:db8::1')).toBeNull();
    expect(normalizeHost('')).toBeNull();
  });

  it('Params ignores name case and remembers quoting', () => {
    const params = new Params([['Tag', 'x']]);
    expect([...params.keys()]).toEqual(['tag']);
    expect(params.get('TAG')).toBe('x');
    expect(params.has('tAg')).toBe(true);
    params.set('Name', 'v w', true);
    expect(params.quoted.has('name')).toBe(true);
    params.set('NAME', 'v');
    expect(params.quoted.has('name')).toBe(false);
    params.set('q', 'x', true);
    expect(params.delete('Q')).toBe(true);
    expect(params.quoted.size).toBe(0);
    params.set('z', null, true);
    params.clear();
    expect(params.size).toBe(0);
    expect(params.quoted.size).toBe(0);
  });

  it('Params behaves as a Map keyed by lowercased names, for any sequence of operations', () => {
    // The model: a real Map with lowercased keys, and a Set for the quoted names.
    const name = fc.constantFrom('tag', 'TAG', 'Tag', 'branch', 'lr', 'LR', 'q', 'x-y', 'received');
    const value = fc.option(fc.constantFrom('a', 'B', '', 'v w'), { nil: null });
    const op = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), name, value, quoted: fc.boolean() }),
      fc.record({ kind: fc.constant('addNew' as const), name, value, quoted: fc.boolean() }),
      fc.record({ kind: fc.constant('delete' as const), name }),
      fc.record({ kind: fc.constant('clear' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const params = new Params();
        const model = new Map<string, string | null>();
        const quoted = new Set<string>();
        for (const o of ops) {
          if (o.kind === 'set') {
            const key = o.name.toLowerCase();
            expect(params.set(o.name, o.value, o.quoted)).toBe(params);
            model.set(key, o.value);
            if (o.quoted) quoted.add(key);
            else quoted.delete(key);
          } else if (o.kind === 'addNew') {
            const key = o.name.toLowerCase();
            const added = !model.has(key);
            expect(params.addNew(key, o.value, o.quoted)).toBe(added);
            if (added) {
              model.set(key, o.value);
              if (o.quoted) quoted.add(key);
            }
          } else if (o.kind === 'delete') {
            const key = o.name.toLowerCase();
            expect(params.delete(o.name)).toBe(model.delete(key));
            quoted.delete(key);
          } else {
            params.clear();
            model.clear();
            quoted.clear();
          }
          expect([...params]).toEqual([...model]);
          expect([...params.entries()]).toEqual([...model.entries()]);
          expect([...params.keys()]).toEqual([...model.keys()]);
          expect([...params.values()]).toEqual([...model.values()]);
          expect(params.size).toBe(model.size);
          expect([...params.quoted].sort()).toEqual([...quoted].sort());
          const seen: [string, string | null][] = [];
          params.forEach((v, k, map) => {
            expect(map).toBe(params);
            seen.push([k, v]);
          });
          expect(seen).toEqual([...model]);
          for (const probe of ['tag', 'TAG', 'Branch', 'lr', 'q', 'x-Y', 'received', 'none']) {
            expect(params.get(probe)).toBe(model.get(probe.toLowerCase()));
            expect(params.has(probe)).toBe(model.has(probe.toLowerCase()));
          }
        }
      }),
    );
  });

  it('Params can be deleted from while iterating, and copied from any entries', () => {
    const params = new Params([['a', '1'], ['B', null], ['c', '3']]);
    for (const [name] of params) params.delete(name);
    expect(params.size).toBe(0);
    const copy = new Params(new Map([['X', 'y']]));
    expect([...copy]).toEqual([['x', 'y']]);
    expect(new Params(copy)).toEqual(copy);
    expect(new Params([['x', 'z']])).not.toEqual(copy);
    expect(Object.prototype.toString.call(copy)).toBe('[object Params]');
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

const chars = (set: string): fc.Arbitrary<string> => fc.constantFrom(...set.split(''));
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const UNRESERVED = ALNUM + "-_.!~*'()";
const hexDigit = chars('0123456789abcdefABCDEF');
const escape = fc.tuple(hexDigit, hexDigit).map(([a, b]) => `%${a}${b}`);
const component = (set: string, minLength: number): fc.Arbitrary<string> =>
  fc.array(fc.oneof({ weight: 6, arbitrary: chars(set) }, { weight: 1, arbitrary: escape }), { minLength, maxLength: 12 }).map((parts) => parts.join(''));

const label = fc
  .tuple(chars(ALNUM), fc.string({ unit: chars(ALNUM + '-'), maxLength: 6 }), chars(ALNUM))
  .map(([a, mid, b]) => (mid.length === 0 ? a : a + mid + b));
const topLabel = fc.tuple(chars('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'), fc.string({ unit: chars(ALNUM), maxLength: 5 })).map(([a, b]) => a + b);
const hostname = fc.tuple(fc.array(label, { maxLength: 3 }), topLabel, fc.boolean()).map(([labels, top, dot]) => [...labels, top].join('.') + (dot ? '.' : ''));
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const hexGroup = fc.nat(0xffff).map((n) => n.toString(16));
const ipv6 = fc
  .tuple(fc.array(hexGroup, { minLength: 8, maxLength: 8 }), fc.nat(8), fc.nat(8), fc.boolean())
  .map(([groups, a, b, upper]) => {
    const [start, end] = a <= b ? [a, b] : [b, a];
    const text = end - start >= 1 ? `${groups.slice(0, start).join(':')}::${groups.slice(end).join(':')}` : groups.join(':');
    return upper ? text.toUpperCase() : text;
  })
  .filter((text) => isIPv6Address(text));
const host = fc.oneof(hostname, ipv4, ipv6.map((a) => `[${a}]`));

const paramName = component(UNRESERVED + '[]/:&+$', 1);
const sipUriText = fc
  .record({
    scheme: fc.constantFrom('sip', 'sips', 'SIP', 'Sips'),
    user: fc.option(component(UNRESERVED + '&=+$,;?/', 1), { nil: undefined }),
    password: fc.option(component(UNRESERVED + '&=+$,', 0), { nil: undefined }),
    host,
    port: fc.option(fc.nat(65535), { nil: undefined }),
    params: fc.uniqueArray(fc.tuple(paramName, fc.option(component(UNRESERVED + '[]/:&+$', 1), { nil: null })), {
      maxLength: 4,
      selector: ([name]) => unescapeUriPart(name).toLowerCase(),
    }),
    headers: fc.array(fc.tuple(component(UNRESERVED + '[]/?:+$', 1), component(UNRESERVED + '[]/?:+$', 0)), { maxLength: 3 }),
  })
  .map((u) => {
    let text = `${u.scheme}:`;
    if (u.user !== undefined) text += u.user + (u.password !== undefined ? ':' + u.password : '') + '@';
    text += u.host;
    if (u.port !== undefined) text += ':' + u.port;
    for (const [name, value] of u.params) text += ';' + name + (value === null ? '' : '=' + value);
    u.headers.forEach(([name, value], i) => (text += (i === 0 ? '?' : '&') + name + '=' + value));
    return text;
  });

describe('property: parse and format', () => {
  it('parses every generated SIP URI, and format∘parse is a fixed point', () => {
    fc.assert(
      fc.property(sipUriText, (text) => {
        const first = parseUri(text);
        const written = formatUri(first);
        const second = parseUri(written);
        expect(plain(second)).toEqual(plain(first));
        expect(formatUri(second)).toBe(written);
        expect(uriEquals(first, second)).toBe(true);
        expect(uriEquals(second, first)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('treats an escaped character as equal to itself unescaped, and a case change in the user as different', () => {
    const userChars = fc.string({ unit: chars(ALNUM), minLength: 1, maxLength: 10 });
    fc.assert(
      fc.property(userChars, fc.array(fc.boolean(), { minLength: 10, maxLength: 10 }), host, (user, escapeMask, h) => {
        const escaped = [...user].map((c, i) => (escapeMask[i] ? '%' + c.charCodeAt(0).toString(16) : c)).join('');
        expect(uriEquals(parseUri(`sip:${user}@${h}`), parseUri(`sip:${escaped}@${h}`))).toBe(true);
        const swapped = user.toUpperCase() === user ? user.toLowerCase() : user.toUpperCase();
        expect(uriEquals(parseUri(`sip:${user}@${h}`), parseUri(`sip:${swapped}@${h}`))).toBe(swapped === user);
      }),
    );
  });

  it('writes any text a caller puts in user, parameter or header so that it reads back the same', () => {
    const text = fc.string({ unit: 'grapheme', maxLength: 12 }).filter((s) => !s.includes('%'));
    fc.assert(
      fc.property(text.filter((s) => s.length > 0), text, text, host, (user, paramValue, headerValue, h) => {
        const uri: SipUri = {
          scheme: 'sip',
          user,
          host: h.toLowerCase(),
          params: new Params(paramValue === '' ? [] : [['p', paramValue]]),
          headers: [['h', headerValue]],
        };
        const back = sip(formatUri(uri));
        expect(unescapeUriPart(back.user!)).toBe(user);
        if (paramValue !== '') expect(unescapeUriPart(back.params.get('p')!)).toBe(paramValue);
        expect(unescapeUriPart(back.headers[0]![1])).toBe(headerValue);
        expect(uriEquals(uri, back)).toBe(true);
      }),
    );
  });

  it('throws nothing but ParseError(bad-uri) on random text', () => {
    const uriish = fc.string({ unit: chars('sipSIP:@[]; ?=&%0aF.-<>"\\,/é\t1'), maxLength: 40 });
    const anyText = fc.oneof(fc.string({ unit: 'binary-ascii' }), fc.string({ unit: 'binary' }), uriish, uriish.map((s) => 'sip:' + s), uriish.map((s) => 'x:' + s));
    fc.assert(
      fc.property(anyText, (text) => {
        try {
          const uri = parseUri(text);
          // Whatever parses must survive formatting and parse back to an equal URI.
          expect(uriEquals(parseUri(formatUri(uri)), uri)).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(ParseError);
          expect((error as ParseError).code).toBe('bad-uri');
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('handles very long input in linear time', () => {
    // Quadratic scanning would blow the test timeout; nothing here measures time.
    for (const text of ['sip:' + 'a'.repeat(200_000) + '@b', 'sip:a@b' + ';x'.repeat(50_000), 'sip:[' + '1:'.repeat(50_000), 'sip:a@b;p=' + '%41'.repeat(50_000), 'x:' + '%'.repeat(100_000)]) {
      try {
        parseUri(text);
      } catch (error) {
        expect(error).toBeInstanceOf(ParseError);
      }
    }
  });
});
