/**
 * SIP Digest authentication (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760): challenge parsing,
 * the digest computation against the RFCs' worked examples, and the client's decisions
 * (which challenge, which header, nc/cnonce, stale, wrong password, preemptive credentials,
 * Authentication-Info). Expected digests are recomputed here straight from node:crypto with
 * the RFC formulas, independently of the code under test.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  digestChallengeOf,
  parseAuthenticationInfo,
  parseChallenges,
  parseDigestChallenges,
} from '../../main/sip/auth/challenge.js';
import { DigestClient, type AuthDecision, type AuthRetry, type DigestCredentials } from '../../main/sip/auth/digest-client.js';
import { digestAlgorithm, formatDigestCredentials, hashedUsername, hashHex, responseDigest, userHa1 } from '../../main/sip/auth/digest.js';
import { ParseError } from '../../main/sip/message/parse-error.js';
import type { ChallengeAnswerer } from '../../main/sip/ua/authentication.js';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

type NodeHash = 'md5' | 'sha256' | 'sha512-256';
function H(hash: NodeHash, text: string | Buffer): string {
  return createHash(hash).update(typeof text === 'string' ? Buffer.from(text, 'utf8') : text).digest('hex');
}

function expectParseError(run: () => unknown): ParseError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ParseError);
  expect((caught as ParseError).code).toBe('bad-header-value');
  return caught as ParseError;
}

/** The parameters of a credentials value we wrote (our own format: `name=value` or `name="value"` without escapes). */
function credentialParams(value: string): Record<string, string> {
  expect(value.startsWith('Digest ')).toBe(true);
  const out: Record<string, string> = {};
  for (const match of value.slice('Digest '.length).matchAll(/([a-z]+)=("([^"\\]*)"|[^,\s]+)/g)) {
    out[match[1]!] = match[3] ?? match[2]!;
  }
  return out;
}

function retry(decision: AuthDecision): AuthRetry {
  if (decision.action !== 'retry') throw new Error(`expected a retry, got ${JSON.stringify(decision)}`);
  return decision;
}

/** A credentials source that counts how often it was asked. */
function credentialsSource(table: Record<string, DigestCredentials>): { lookup: (realm: string) => Promise<DigestCredentials | undefined>; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    lookup: (realm) => {
      asked.push(realm);
      return Promise.resolve(table[realm]);
    },
  };
}

function counterCnonce(): () => string {
  let n = 0;
  return () => `cnonce${++n}`;
}

const ALICE = { username: 'alice', password: 'secret1' };
const MESSAGE = { method: 'MESSAGE', uri: 'sip:bob@example.test', body: Buffer.from('hello') };

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

describe('parseChallenges (RFC 3261 §20.44/§20.27, RFC 7235 §2.1)', () => {
  it('reads a Digest challenge with every RFC 7616 parameter', () => {
    const [challenge] = parseDigestChallenges(
      'Digest realm="atlanta.com", domain="sip:boxesbybob.com sip:ss1.carrier.com", qop="auth,auth-int", nonce="f84f1cec41e6cbe5aea9c8e88d359", ' +
        'opaque="", stale=TRUE, algorithm=SHA-256, charset=UTF-8, userhash=true',
    );
    expect(challenge).toEqual({
      realm: 'atlanta.com',
      nonce: 'f84f1cec41e6cbe5aea9c8e88d359',
      opaque: '',
      stale: true,
      algorithm: 'SHA-256',
      qop: ['auth', 'auth-int'],
      domain: ['sip:boxesbybob.com', 'sip:ss1.carrier.com'],
      charset: 'UTF-8',
      userhash: true,
    });
  });

  it('defaults: no algorithm, no qop, stale and userhash false', () => {
    const [challenge] = parseDigestChallenges('Digest realm="r", nonce="n"');
    expect(challenge).toMatchObject({ algorithm: undefined, qop: undefined, stale: false, userhash: false, domain: [], opaque: undefined, charset: undefined });
  });

  it('undoes quoted-pairs and keeps commas and "=" inside quotes', () => {
    const [challenge] = parseDigestChallenges('Digest realm="a \\"quoted\\", realm=\\\\x", nonce="x,y=z"');
    expect(challenge?.realm).toBe('a "quoted", realm=\\x');
    expect(challenge?.nonce).toBe('x,y=z');
  });

  it('tolerates LWS around "=" and ",", folded lines, empty list elements, and quoted or bare values either way', () => {
    const [challenge] = parseDigestChallenges('Digest\trealm = "r" ,\r\n  nonce= abc/+def==,, qop=auth , algorithm="MD5-sess",');
    expect(challenge).toMatchObject({ realm: 'r', nonce: 'abc/+def==', qop: ['auth'], algorithm: 'MD5-sess' });
  });

  it('scheme names are case-insensitive; parameter names too', () => {
    const [challenge] = parseDigestChallenges('dIgEsT REALM="r", Nonce="n", QOP="AUTH"');
    expect(challenge).toMatchObject({ realm: 'r', nonce: 'n', qop: ['auth'] });
  });

  it('splits an HTTP-style list of challenges and skips other schemes (Basic, token68 forms)', () => {
    const all = parseChallenges('Basic realm="x", Negotiate abc+/d==, Digest realm="r", nonce="n", Newauth');
    expect(all.map((c) => c.scheme)).toEqual(['Basic', 'Negotiate', 'Digest', 'Newauth']);
    expect(all[1]?.token68).toBe('abc+/d==');
    expect(all[0]?.params.get('realm')).toBe('x');
    expect(parseDigestChallenges('Basic realm="x", Digest realm="r", nonce="n"')).toHaveLength(1);
    expect(parseDigestChallenges('Basic realm="x"')).toEqual([]);
  });

  it('malformed values are ParseError bad-header-value', () => {
    for (const bad of [
      '',
      '   ',
      'Digest realm="unterminated',
      'Digest realm="r" nonce="n"', // missing comma
      'Digest realm="r", nonce="n", realm="again"', // RFC 7235 §2.1: once per challenge
      'Digest realm=, nonce="n"',
      'Digest realm="a\\\nb", nonce="n"', // quoted-pair of LF
      'Digest realm="a\u0001b", nonce="n"',
      '=realm',
      'Digest="x"',
      'Negotiate abc==, x=1', // parameters after a token68
    ]) {
      expectParseError(() => parseDigestChallenges(bad, 'WWW-Authenticate'));
    }
  });

  it('a Digest challenge without realm or nonce is a ParseError naming the header', () => {
    expect(expectParseError(() => parseDigestChallenges('Digest nonce="n"', 'Proxy-Authenticate')).header).toBe('Proxy-Authenticate');
    expectParseError(() => parseDigestChallenges('Digest realm="r"'));
    expectParseError(() => digestChallengeOf({ scheme: 'Digest', params: new Map(), token68: 'abc' }));
  });

  it('stale is true only for a case-insensitive "true"; an unknown charset is ignored', () => {
    expect(parseDigestChallenges('Digest realm="r", nonce="n", stale=false')[0]?.stale).toBe(false);
    expect(parseDigestChallenges('Digest realm="r", nonce="n", stale="True"')[0]?.stale).toBe(true);
    expect(parseDigestChallenges('Digest realm="r", nonce="n", stale=yes')[0]?.stale).toBe(false);
    expect(parseDigestChallenges('Digest realm="r", nonce="n", charset=latin1')[0]?.charset).toBeUndefined();
  });

  it('Authentication-Info (RFC 2617 §3.2.3)', () => {
    expect(parseAuthenticationInfo('nextnonce="47364c23432d2e131a5fb210812c", qop=auth, rspauth="abc", cnonce="c", nc=00000001')).toEqual({
      nextnonce: '47364c23432d2e131a5fb210812c',
      qop: 'auth',
      rspauth: 'abc',
      cnonce: 'c',
      nc: '00000001',
    });
    expectParseError(() => parseAuthenticationInfo(''));
    expectParseError(() => parseAuthenticationInfo('nextnonce'));
  });

  it('property: any string either parses or throws ParseError, nothing else', () => {
    const alphabet = fc.constantFrom('Digest', 'Basic', ' ', '\t', '\r\n ', ',', '=', '"', '\\', 'realm', 'nonce', 'qop', 'a', 'Z', '/', '+', '\u00e9', '\u0000', '\n');
    const grammarish = fc.array(alphabet, { maxLength: 30 }).map((parts) => parts.join(''));
    const check = (text: string): void => {
      try {
        parseDigestChallenges(text, 'WWW-Authenticate');
      } catch (error) {
        if (!(error instanceof ParseError) || error.code !== 'bad-header-value') throw error;
      }
      try {
        parseAuthenticationInfo(text);
      } catch (error) {
        if (!(error instanceof ParseError) || error.code !== 'bad-header-value') throw error;
      }
    };
    fc.assert(fc.property(fc.string({ maxLength: 80 }), check), { numRuns: 2000 });
    fc.assert(fc.property(grammarish, check), { numRuns: 3000 });
  });
});

// ---------------------------------------------------------------------------------------------
// The computation, against the RFC examples
// ---------------------------------------------------------------------------------------------

describe('digest computation (RFC 2617 §3.2.2, RFC 7616 §3.4)', () => {
  it('RFC 2617 §3.5: MD5, qop=auth, "Circle Of Life" → 6629fae49393a05397450978507c4ef1', () => {
    const ha1 = userHa1('MD5', 'Mufasa', 'testrealm@host.com', 'Circle Of Life');
    const response = responseDigest({
      hash: 'MD5',
      ha1,
      nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
      method: 'GET',
      uri: '/dir/index.html',
      qop: 'auth',
      nc: '00000001',
      cnonce: '0a4f113b',
    });
    expect(response).toBe('6629fae49393a05397450978507c4ef1');
  });

  it.each([
    ['MD5', '8ca523f5e9506fed4657c9700eebdbec'],
    ['SHA-256', '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1'],
  ] as const)('RFC 7616 §3.9.1: %s → %s', (hash, expected) => {
    const response = responseDigest({
      hash,
      ha1: userHa1(hash, 'Mufasa', 'http-auth@example.org', 'Circle of Life'),
      nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
      method: 'GET',
      uri: '/dir/index.html',
      qop: 'auth',
      nc: '00000001',
      cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
    });
    expect(response).toBe(expected);
  });

  it('SHA-512-256 is FIPS 180-4 SHA-512/256, not SHA-512 cut short', () => {
    // FIPS 180-4 example (NIST "SHA-512/256" sample, message "abc").
    expect(hashHex('SHA-512-256', 'abc')).toBe('53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23');
  });

  it('RFC 7616 §3.9.2 (SHA-512-256, userhash): the printed values are truncated SHA-512 (a known erratum); ours are SHA-512/256', () => {
    const username = 'J\u00e4s\u00f8n Doe';
    const realm = 'api@example.org';
    const password = 'Secret, or not?';
    const nonce = '5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK';
    const cnonce = 'NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v';
    // What the RFC prints is reproduced by truncating SHA-512 to 256 bits...
    const t = (text: string): string => createHash('sha512').update(text, 'utf8').digest('hex').slice(0, 64);
    expect(t(`${username}:${realm}`)).toBe('488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec');
    const printed = t(`${t(`${username}:${realm}:${password}`)}:${nonce}:00000001:${cnonce}:auth:${t('GET:/doe.json')}`);
    expect(printed).toBe('ae66e67d6b427bd3f120414a82e4acff38e8ecd9101d6c861229025f607a79dd');
    // ...while SHA-512/256 proper (what RFC 7616 §3.2 names, and Kamailio implements) gives:
    expect(hashedUsername('SHA-512-256', username, realm)).toBe(H('sha512-256', `${username}:${realm}`));
    const ours = responseDigest({
      hash: 'SHA-512-256',
      ha1: userHa1('SHA-512-256', username, realm, password),
      nonce,
      method: 'GET',
      uri: '/doe.json',
      qop: 'auth',
      nc: '00000001',
      cnonce,
    });
    expect(ours).toBe(H('sha512-256', `${H('sha512-256', `${username}:${realm}:${password}`)}:${nonce}:00000001:${cnonce}:auth:${H('sha512-256', 'GET:/doe.json')}`));
    expect(ours).not.toBe(printed);
  });

  it('auth-int hashes the body (an absent body as empty); no qop is the RFC 2069 form', () => {
    const ha1 = userHa1('MD5', 'u', 'r', 'p');
    const body = Buffer.from('hi');
    expect(responseDigest({ hash: 'MD5', ha1, nonce: 'n', method: 'MESSAGE', uri: 'sip:b@x', qop: 'auth-int', nc: '00000001', cnonce: 'c', body })).toBe(
      H('md5', `${ha1}:n:00000001:c:auth-int:${H('md5', `MESSAGE:sip:b@x:${H('md5', body)}`)}`),
    );
    expect(responseDigest({ hash: 'MD5', ha1, nonce: 'n', method: 'MESSAGE', uri: 'sip:b@x', qop: 'auth-int', nc: '00000001', cnonce: 'c' })).toBe(
      H('md5', `${ha1}:n:00000001:c:auth-int:${H('md5', `MESSAGE:sip:b@x:${H('md5', '')}`)}`),
    );
    expect(responseDigest({ hash: 'MD5', ha1, nonce: 'n', method: 'MESSAGE', uri: 'sip:b@x', qop: undefined })).toBe(H('md5', `${ha1}:n:${H('md5', 'MESSAGE:sip:b@x')}`));
  });

  it('algorithm tokens: absent is MD5, case-insensitive, -sess variants, unknown is unsupported', () => {
    expect(digestAlgorithm(undefined)).toMatchObject({ name: 'MD5', hash: 'MD5', session: false });
    expect(digestAlgorithm('sha-256-SESS')).toMatchObject({ name: 'SHA-256-sess', hash: 'SHA-256', session: true });
    expect(digestAlgorithm('SHA-512-256')?.strength).toBeGreaterThan(digestAlgorithm('SHA-256')!.strength);
    expect(digestAlgorithm('AKAv1-MD5')).toBeUndefined();
    expect(digestAlgorithm('SHA-512')).toBeUndefined();
  });

  it('credentials are written with uri quoted and qop/nc/algorithm bare; quotes in values are escaped', () => {
    const value = formatDigestCredentials({
      username: 'a"b',
      realm: 'r',
      nonce: 'n',
      uri: 'sip:bob@example.test',
      response: 'abc',
      algorithm: 'SHA-256',
      cnonce: 'c',
      opaque: 'o',
      qop: 'auth',
      nc: '0000000a',
      userhash: false,
    });
    expect(value).toBe('Digest username="a\\"b", realm="r", nonce="n", uri="sip:bob@example.test", response="abc", algorithm=SHA-256, cnonce="c", opaque="o", qop=auth, nc=0000000a');
  });
});

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

describe('DigestClient: answering challenges', () => {
  it('RFC 2617 §3.5 end to end: the Authorization value carries the known response', async () => {
    const source = credentialsSource({ 'testrealm@host.com': { username: 'Mufasa', password: 'Circle Of Life' } });
    const client = new DigestClient({ getCredentials: source.lookup, createCnonce: () => '0a4f113b' });
    const exchange = client.begin({ method: 'GET', uri: '/dir/index.html' });
    const decision = retry(
      await exchange.authorize({
        status: 401,
        challenges: ['Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'],
      }),
    );
    expect(decision.headerName).toBe('Authorization');
    expect(decision.headerValue).toBe(
      'Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", ' +
        'response="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b", opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001',
    );
    expect(decision.headers).toEqual([{ name: 'Authorization', value: decision.headerValue }]);
    expect(source.asked).toEqual(['testrealm@host.com']);
  });

  it('RFC 7616 §3.9.1: of the SHA-256 and MD5 challenges the strongest is answered, whichever comes first', async () => {
    const challenge = (algorithm: string): string =>
      `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=${algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`;
    for (const order of [
      ['SHA-256', 'MD5'],
      ['MD5', 'SHA-256'],
    ]) {
      const source = credentialsSource({ 'http-auth@example.org': { username: 'Mufasa', password: 'Circle of Life' } });
      const client = new DigestClient({ getCredentials: source.lookup, createCnonce: () => 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ' });
      const decision = retry(await client.begin({ method: 'GET', uri: '/dir/index.html' }).authorize({ status: 401, challenges: order.map(challenge) }));
      const params = credentialParams(decision.headerValue);
      expect(params).toMatchObject({ algorithm: 'SHA-256', response: '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1', qop: 'auth', nc: '00000001' });
      expect(params['opaque']).toBe('FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS');
    }
  });

  it('SHA-512-256 beats SHA-256 beats MD5; -sess variants; among equals the topmost', async () => {
    const pick = async (challenges: string[]): Promise<Record<string, string>> => {
      const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
      return credentialParams(retry(await client.begin(MESSAGE).authorize({ status: 407, challenges })).headerValue);
    };
    const c = (algorithm: string, nonce = 'n'): string => `Digest realm="example.test", nonce="${nonce}", qop="auth", algorithm=${algorithm}`;
    expect((await pick([c('MD5'), c('SHA-512-256'), c('SHA-256')]))['algorithm']).toBe('SHA-512-256');
    expect((await pick([c('MD5-sess'), c('SHA-256-sess')]))['algorithm']).toBe('SHA-256-sess');
    expect((await pick([c('SHA-256', 'first'), c('sha-256', 'second')]))['nonce']).toBe('first');
    expect((await pick([c('AKAv1-MD5'), c('MD5')]))['algorithm']).toBe('MD5');
  });

  it('401 → Authorization, 407 → Proxy-Authorization (RFC 3261 §22.2, §22.3)', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
    const www = retry(await client.begin(MESSAGE).authorize({ status: 401, challenges: ['Digest realm="example.test", nonce="a", qop="auth"'] }));
    const proxy = retry(await client.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="example.test", nonce="b", qop="auth"'] }));
    expect(www.headerName).toBe('Authorization');
    expect(proxy.headerName).toBe('Proxy-Authorization');
    expect(proxy.headers.map((h) => h.name)).toEqual(['Proxy-Authorization']);
  });

  it('computes exactly what a verifier computes from the header fields (MD5, qop=auth, SIP request)', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
    const decision = retry(await client.begin(MESSAGE).authorize({ status: 401, challenges: ['Digest realm="example.test", nonce="1234n0nce1", algorithm=MD5, qop="auth"'] }));
    const p = credentialParams(decision.headerValue);
    expect(p).toMatchObject({ username: 'alice', realm: 'example.test', nonce: '1234n0nce1', uri: 'sip:bob@example.test', algorithm: 'MD5', qop: 'auth', nc: '00000001' });
    expect(p['cnonce']).toMatch(/^[0-9a-f]{32}$/); // 128 bits from the CSPRNG
    const expected = H('md5', `${H('md5', 'alice:example.test:secret1')}:1234n0nce1:00000001:${p['cnonce']}:auth:${H('md5', 'MESSAGE:sip:bob@example.test')}`);
    expect(p['response']).toBe(expected);
  });

  it('Basic is never answered; only Basic or unknown algorithms → unsupported-challenge', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
    const decision = await client.begin(MESSAGE).authorize({ status: 401, challenges: ['Basic realm="example.test"', 'Digest realm="x", nonce="n", algorithm=AKAv1-MD5'] });
    expect(decision).toMatchObject({ action: 'fail', reason: 'unsupported-challenge' });
    if (decision.action === 'fail') expect(decision.detail).toContain('Basic');
    const withDigest = retry(await client.begin(MESSAGE).authorize({ status: 401, challenges: ['Basic realm="example.test"', 'Digest realm="example.test", nonce="n", qop="auth"'] }));
    expect(withDigest.headerValue.startsWith('Digest ')).toBe(true);
  });

  it('malformed challenges are skipped, never thrown; nothing usable → unsupported-challenge', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
    expect(await client.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="unterminated', 'Digest nonce="n"'] })).toMatchObject({
      action: 'fail',
      reason: 'unsupported-challenge',
    });
    expect(await client.begin(MESSAGE).authorize({ status: 407, challenges: [] })).toMatchObject({ action: 'fail', reason: 'unsupported-challenge' });
    expect(await client.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="r", nonce="n", qop="auth-conf"'] })).toMatchObject({
      action: 'fail',
      reason: 'unsupported-challenge',
    });
    const ok = retry(await client.begin(MESSAGE).authorize({ status: 407, challenges: ['garbage "', 'Digest realm="r", nonce="n", qop="auth"'] }));
    expect(ok.headerName).toBe('Proxy-Authorization');
  });

  it('property: random challenge strings give a decision, never an exception', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ maxLength: 60 }), { maxLength: 3 }), fc.constantFrom(401 as const, 407 as const), async (challenges, status) => {
        const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
        const decision = await client.begin(MESSAGE).authorize({ status, challenges });
        expect(['retry', 'fail']).toContain(decision.action);
      }),
      { numRuns: 300 },
    );
  });

  it('qop: auth preferred; auth-int only when auth is not offered (body hashed); none with MD5 → RFC 2069 form; none with SHA-256 → auth (RFC 8760)', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE), createCnonce: () => 'c0ffee' });
    const answer = async (challenge: string): Promise<Record<string, string>> =>
      credentialParams(retry(await client.begin(MESSAGE).authorize({ status: 401, challenges: [challenge] })).headerValue);

    expect((await answer('Digest realm="r", nonce="n", qop="auth-int,auth"'))['qop']).toBe('auth');

    const authInt = await answer('Digest realm="r", nonce="n2", qop="auth-int"');
    const ha1 = H('md5', 'alice:r:secret1');
    expect(authInt).toMatchObject({ qop: 'auth-int', nc: '00000001', cnonce: 'c0ffee' });
    expect(authInt['response']).toBe(H('md5', `${ha1}:n2:00000001:c0ffee:auth-int:${H('md5', `MESSAGE:sip:bob@example.test:${H('md5', 'hello')}`)}`));

    const legacy = await answer('Digest realm="r", nonce="n3"');
    expect(legacy['qop']).toBeUndefined();
    expect(legacy['nc']).toBeUndefined();
    expect(legacy['cnonce']).toBeUndefined();
    expect(legacy['algorithm']).toBeUndefined(); // not echoed when the challenge had none
    expect(legacy['response']).toBe(H('md5', `${ha1}:n3:${H('md5', 'MESSAGE:sip:bob@example.test')}`));

    const sha = await answer('Digest realm="r", nonce="n4", algorithm=SHA-256');
    expect(sha).toMatchObject({ qop: 'auth', nc: '00000001', cnonce: 'c0ffee', algorithm: 'SHA-256' });
    const shaHa1 = H('sha256', 'alice:r:secret1');
    expect(sha['response']).toBe(H('sha256', `${shaHa1}:n4:00000001:c0ffee:auth:${H('sha256', 'MESSAGE:sip:bob@example.test')}`));
  });

  it('-sess: A1 covers nonce and cnonce', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE), createCnonce: () => 'cn' });
    const p = credentialParams(
      retry(await client.begin(MESSAGE).authorize({ status: 401, challenges: ['Digest realm="r", nonce="n", qop="auth", algorithm=SHA-256-sess'] })).headerValue,
    );
    const ha1 = H('sha256', `${H('sha256', 'alice:r:secret1')}:n:cn`);
    expect(p['response']).toBe(H('sha256', `${ha1}:n:00000001:cn:auth:${H('sha256', 'MESSAGE:sip:bob@example.test')}`));
  });

  it('userhash=true sends H(username:realm) and userhash=true (RFC 7616 §3.4.4)', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve({ username: 'J\u00e4s\u00f8n Doe', password: 'Secret, or not?' }), createCnonce: () => 'cn' });
    const decision = retry(
      await client.begin({ method: 'GET', uri: '/doe.json' }).authorize({
        status: 401,
        challenges: ['Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, nonce="n", opaque="o", charset=UTF-8, userhash=true'],
      }),
    );
    const p = credentialParams(decision.headerValue);
    expect(p['username']).toBe(H('sha512-256', 'J\u00e4s\u00f8n Doe:api@example.org'));
    expect(decision.headerValue.endsWith(', userhash=true')).toBe(true);
    expect(decision.headerValue).not.toContain('J\u00e4s');
  });

  it('the password never appears in a header value or a failure detail', async () => {
    const secret = 'pa55-w0rd-never-shown';
    const client = new DigestClient({ getCredentials: () => Promise.resolve({ username: 'alice', password: secret }) });
    const exchange = client.begin(MESSAGE);
    const first = retry(await exchange.authorize({ status: 407, challenges: ['Digest realm="r", nonce="n", qop="auth"'] }));
    const second = await exchange.authorize({ status: 407, challenges: ['Digest realm="r", nonce="m", qop="auth"'] });
    expect(JSON.stringify([first, second])).not.toContain(secret);
    const { inspect } = await import('node:util');
    expect(inspect(client, { depth: 10 })).not.toContain(secret);
    expect(inspect(exchange, { depth: 10 })).not.toContain(secret);
  });
});

describe('DigestClient: retries, stale nonces, wrong passwords, loops', () => {
  it('wrong password: the second challenge (not stale) is a final "rejected", asked once, never a loop', async () => {
    const source = credentialsSource({ 'example.test': { username: 'alice', password: 'wrong' } });
    const client = new DigestClient({ getCredentials: source.lookup });
    const exchange = client.begin(MESSAGE);
    retry(await exchange.authorize({ status: 407, challenges: ['Digest realm="example.test", nonce="n1", qop="auth"'] }));
    const second = await exchange.authorize({ status: 407, challenges: ['Digest realm="example.test", nonce="n2", qop="auth"'] });
    expect(second).toMatchObject({ action: 'fail', reason: 'rejected', realm: 'example.test' });
    expect(source.asked).toEqual(['example.test']);
    // The rejected credentials are dropped: the next request asks again (the user may have fixed them).
    retry(await client.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="example.test", nonce="n3", qop="auth"'] }));
    expect(source.asked).toEqual(['example.test', 'example.test']);
  });

  it('stale=true: retried with the new nonce, nc from 00000001, same credentials, no new question', async () => {
    const source = credentialsSource({ 'example.test': ALICE });
    const client = new DigestClient({ getCredentials: source.lookup, createCnonce: counterCnonce() });
    const exchange = client.begin(MESSAGE);
    const first = credentialParams(retry(await exchange.authorize({ status: 407, challenges: ['Digest realm="example.test", nonce="old", qop="auth"'] })).headerValue);
    const second = credentialParams(
      retry(await exchange.authorize({ status: 407, challenges: ['Digest realm="example.test", nonce="new", qop="auth", stale=true'] })).headerValue,
    );
    expect(first).toMatchObject({ nonce: 'old', nc: '00000001', cnonce: 'cnonce1' });
    expect(second).toMatchObject({ nonce: 'new', nc: '00000001', cnonce: 'cnonce2' });
    expect(source.asked).toEqual(['example.test']);
    // ...and if the fresh nonce is refused too (not stale), that is a rejection.
    expect(await exchange.authorize({ status: 407, challenges: ['Digest realm="example.test", nonce="newer", qop="auth"'] })).toMatchObject({ reason: 'rejected' });
  });

  it('a server that keeps saying stale ends in "loop"', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE), maxChallenges: 3 });
    const exchange = client.begin(MESSAGE);
    const decisions: AuthDecision[] = [];
    for (let i = 0; i < 4; i++) decisions.push(await exchange.authorize({ status: 401, challenges: [`Digest realm="r", nonce="n${i}", qop="auth", stale=true`] }));
    expect(decisions.map((d) => d.action)).toEqual(['retry', 'retry', 'retry', 'fail']);
    expect(decisions[3]).toMatchObject({ reason: 'loop' });
  });

  it('no credentials → "no-credentials" with the realm (to show the user, RFC 3261 §22.1)', async () => {
    const source = credentialsSource({});
    const client = new DigestClient({ getCredentials: source.lookup });
    expect(await client.begin(MESSAGE).authorize({ status: 401, challenges: ['Digest realm="other.test", nonce="n"'] })).toMatchObject({
      action: 'fail',
      reason: 'no-credentials',
      realm: 'other.test',
    });
    const failing = new DigestClient({ getCredentials: () => Promise.reject(new Error('keychain locked')) });
    expect(await failing.begin(MESSAGE).authorize({ status: 401, challenges: ['Digest realm="r", nonce="n"'] })).toMatchObject({ reason: 'no-credentials' });
    const broken = new DigestClient({ getCredentials: () => Promise.resolve({ username: 'a\r\nInjected: x', password: 'p' }) });
    expect(await broken.begin(MESSAGE).authorize({ status: 401, challenges: ['Digest realm="r", nonce="n"'] })).toMatchObject({ reason: 'no-credentials' });
  });

  it('concurrent challenges for one realm ask for the password once', async () => {
    let release: (value: DigestCredentials) => void = () => undefined;
    let calls = 0;
    const client = new DigestClient({
      getCredentials: () => {
        calls++;
        return new Promise((resolve) => (release = resolve));
      },
    });
    const a = client.begin({ ...MESSAGE, uri: 'sip:a@example.test' }).authorize({ status: 407, challenges: ['Digest realm="r", nonce="n1", qop="auth"'] });
    const b = client.begin({ ...MESSAGE, uri: 'sip:b@example.test' }).authorize({ status: 407, challenges: ['Digest realm="r", nonce="n2", qop="auth"'] });
    await Promise.resolve();
    release(ALICE);
    expect((await a).action).toBe('retry');
    expect((await b).action).toBe('retry');
    expect(calls).toBe(1);
  });

  it('a proxy 407 then a registrar 401 in one exchange: the retry carries both, the proxy one with nc moved on', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE), createCnonce: counterCnonce() });
    const exchange = client.begin(MESSAGE);
    retry(await exchange.authorize({ status: 407, challenges: ['Digest realm="proxy.test", nonce="p", qop="auth"'] }));
    const second = retry(await exchange.authorize({ status: 401, challenges: ['Digest realm="example.test", nonce="w", qop="auth"'] }));
    expect(second.headerName).toBe('Authorization');
    expect(second.headers.map((h) => [h.name, credentialParams(h.value)['nc'], credentialParams(h.value)['realm']])).toEqual([
      ['Proxy-Authorization', '00000002', 'proxy.test'],
      ['Authorization', '00000001', 'example.test'],
    ]);
  });

  it('several realms challenged at once (forking, RFC 3261 §22.3): each answered, the first is the primary', async () => {
    const source = credentialsSource({ a: ALICE, b: { username: 'alice2', password: 'x' } });
    const client = new DigestClient({ getCredentials: source.lookup });
    const decision = retry(
      await client.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="a", nonce="1", qop="auth"', 'Digest realm="b", nonce="2", qop="auth"'] }),
    );
    expect(decision.headers.map((h) => credentialParams(h.value)['realm'])).toEqual(['a', 'b']);
    expect(credentialParams(decision.headerValue)['realm']).toBe('a');
    const missing = new DigestClient({ getCredentials: credentialsSource({ a: ALICE }).lookup });
    expect(
      await missing.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="a", nonce="1", qop="auth"', 'Digest realm="b", nonce="2", qop="auth"'] }),
    ).toMatchObject({ reason: 'no-credentials', realm: 'b' });
  });
});

describe('DigestClient: preemptive credentials and nonce reuse (RFC 3261 §22.2–§22.3, RFC 7616 §3.4)', () => {
  it('after a 407, the next requests carry Proxy-Authorization unasked, nc 00000002, 00000003, fresh cnonce each', async () => {
    const source = credentialsSource({ 'example.test': ALICE });
    const client = new DigestClient({ getCredentials: source.lookup, createCnonce: counterCnonce() });
    expect(client.begin(MESSAGE).preemptiveHeaders()).toEqual([]);
    retry(await client.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="example.test", nonce="N", qop="auth", algorithm=SHA-256, opaque="op"'] }));

    const second = client.begin({ ...MESSAGE, uri: 'sip:carol@elsewhere.test' }).preemptiveHeaders();
    const third = client.begin(MESSAGE).preemptiveHeaders();
    expect(second.map((h) => h.name)).toEqual(['Proxy-Authorization']);
    const p2 = credentialParams(second[0]!.value);
    const p3 = credentialParams(third[0]!.value);
    expect([p2['nc'], p3['nc']]).toEqual(['00000002', '00000003']);
    expect([p2['cnonce'], p3['cnonce']]).toEqual(['cnonce2', 'cnonce3']);
    expect(p2).toMatchObject({ nonce: 'N', uri: 'sip:carol@elsewhere.test', algorithm: 'SHA-256', opaque: 'op' });
    expect(p2['response']).toBe(
      H('sha256', `${H('sha256', 'alice:example.test:secret1')}:N:00000002:cnonce2:auth:${H('sha256', 'MESSAGE:sip:carol@elsewhere.test')}`),
    );
    expect(source.asked).toEqual(['example.test']);
  });

  it('a challenge to preemptive credentials (not stale) is answered once more, not called a rejection', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
    retry(await client.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="r", nonce="N1", qop="auth"'] }));
    const exchange = client.begin(MESSAGE);
    expect(exchange.preemptiveHeaders()).toHaveLength(1);
    const answer = retry(await exchange.authorize({ status: 407, challenges: ['Digest realm="r", nonce="N2", qop="auth"'] }));
    expect(credentialParams(answer.headerValue)).toMatchObject({ nonce: 'N2', nc: '00000001' });
    expect(await exchange.authorize({ status: 407, challenges: ['Digest realm="r", nonce="N3", qop="auth"'] })).toMatchObject({ reason: 'rejected' });
  });

  it('preemptive proxy credentials re-sent alongside a 401 answer stay "unasked": a later 407 for them is answered, not a rejection', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
    retry(await client.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="proxy", nonce="P1", qop="auth"'] }));
    const exchange = client.begin(MESSAGE);
    expect(exchange.preemptiveHeaders().map((h) => h.name)).toEqual(['Proxy-Authorization']);
    const withWww = retry(await exchange.authorize({ status: 401, challenges: ['Digest realm="uas", nonce="W1", qop="auth"'] }));
    expect(withWww.headers.map((h) => h.name)).toEqual(['Proxy-Authorization', 'Authorization']);
    expect(await exchange.authorize({ status: 407, challenges: ['Digest realm="proxy", nonce="P2", qop="auth"'] })).toMatchObject({ action: 'retry' });
  });

  it('UAS/registrar credentials go unasked only to the same host or the challenge domain', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
    retry(
      await client.begin({ method: 'REGISTER', uri: 'sip:example.test' }).authorize({
        status: 401,
        challenges: ['Digest realm="example.test", nonce="N", qop="auth", domain="sip:other.test"'],
      }),
    );
    expect(client.begin({ ...MESSAGE, uri: 'sip:bob@example.test' }).preemptiveHeaders().map((h) => h.name)).toEqual(['Authorization']);
    expect(client.begin({ ...MESSAGE, uri: 'sip:bob@other.test;transport=tcp' }).preemptiveHeaders()).toHaveLength(1);
    expect(client.begin({ ...MESSAGE, uri: 'sip:bob@third.test' }).preemptiveHeaders()).toEqual([]);
  });

  it('a -sess nonce is used for one request only; preemptive can be turned off', async () => {
    const sess = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
    retry(await sess.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="r", nonce="N", qop="auth", algorithm=MD5-sess'] }));
    expect(sess.begin(MESSAGE).preemptiveHeaders()).toEqual([]);
    const off = new DigestClient({ getCredentials: () => Promise.resolve(ALICE), preemptive: false });
    retry(await off.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="r", nonce="N", qop="auth"'] }));
    expect(off.begin(MESSAGE).preemptiveHeaders()).toEqual([]);
  });

  it('forgetRealm / forgetAll drop credentials and nonces', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
    retry(await client.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="r", nonce="N", qop="auth"'] }));
    client.forgetRealm('r');
    expect(client.begin(MESSAGE).preemptiveHeaders()).toEqual([]);
    retry(await client.begin(MESSAGE).authorize({ status: 407, challenges: ['Digest realm="r", nonce="N", qop="auth"'] }));
    client.forgetAll();
    expect(client.begin(MESSAGE).preemptiveHeaders()).toEqual([]);
  });
});

describe('DigestClient: Authentication-Info (RFC 2617 §3.2.3, RFC 7616 §3.5)', () => {
  async function answered(): Promise<{ client: DigestClient; exchange: ReturnType<DigestClient['begin']>; cnonce: string; ha1: string }> {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE), createCnonce: counterCnonce() });
    const exchange = client.begin(MESSAGE);
    retry(await exchange.authorize({ status: 401, challenges: ['Digest realm="example.test", nonce="N", qop="auth"'] }));
    return { client, exchange, cnonce: 'cnonce1', ha1: H('md5', 'alice:example.test:secret1') };
  }

  it('rspauth is checked: A2 = ":" digest-uri', async () => {
    const { exchange, ha1 } = await answered();
    const rspauth = H('md5', `${ha1}:N:00000001:cnonce1:auth:${H('md5', ':sip:bob@example.test')}`);
    expect(exchange.acceptAuthenticationInfo(`qop=auth, rspauth="${rspauth}", cnonce="cnonce1", nc=00000001`).rspauth).toBe('valid');
    expect(exchange.acceptAuthenticationInfo(`qop=auth, rspauth="${rspauth.toUpperCase()}"`).rspauth).toBe('valid');
    expect(exchange.acceptAuthenticationInfo(`qop=auth, rspauth="${'0'.repeat(32)}"`).rspauth).toBe('invalid');
    expect(exchange.acceptAuthenticationInfo(`qop=auth, rspauth="${rspauth}", nc=00000002`).rspauth).toBe('invalid');
    expect(exchange.acceptAuthenticationInfo(`rspauth="${rspauth}", cnonce="someone-else"`).rspauth).toBe('unverifiable');
    expect(exchange.acceptAuthenticationInfo(undefined).rspauth).toBe('absent');
    expect(exchange.acceptAuthenticationInfo('rspauth="unterminated').rspauth).toBe('malformed');
  });

  it('nextnonce: the next request uses it, nc from 00000001', async () => {
    const { client, exchange } = await answered();
    expect(exchange.acceptAuthenticationInfo('nextnonce="NEXT"')).toEqual({ rspauth: 'absent', nextNonceTaken: true });
    const [header] = client.begin(MESSAGE).preemptiveHeaders();
    expect(credentialParams(header!.value)).toMatchObject({ nonce: 'NEXT', nc: '00000001' });
  });

  it('a late nextnonce does not replace a nonce another request has moved on to', async () => {
    const { client, exchange } = await answered();
    retry(await client.begin({ ...MESSAGE, uri: 'sip:carol@example.test' }).authorize({ status: 401, challenges: ['Digest realm="example.test", nonce="NEWER", qop="auth", stale=true'] }));
    expect(exchange.acceptAuthenticationInfo('nextnonce="OLDER"').nextNonceTaken).toBe(false);
    expect(credentialParams(client.begin(MESSAGE).preemptiveHeaders()[0]!.value)['nonce']).toBe('NEWER');
  });
});

describe('DigestClient as the user agent\'s ChallengeAnswerer', () => {
  it('fits the seam; preemptive() starts an exchange and answer() continues it (wrong password → fail, not loop)', async () => {
    const source = credentialsSource({ 'example.test': ALICE });
    const client = new DigestClient({ getCredentials: source.lookup });
    const answerer: ChallengeAnswerer = client;
    const request = { method: 'MESSAGE', uri: 'sip:bob@example.test', body: Buffer.from('hi') };

    expect(answerer.preemptive?.(request)).toEqual([]);
    const first = await answerer.answer({ status: 407, challenges: ['Digest realm="example.test", nonce="a", qop="auth"'] }, request);
    expect(first).toMatchObject({ action: 'retry', headerName: 'Proxy-Authorization' });
    const second = await answerer.answer({ status: 407, challenges: ['Digest realm="example.test", nonce="b", qop="auth"'] }, request);
    expect(second).toMatchObject({ action: 'fail', reason: 'rejected' });
  });

  it('the next request through the same proxy carries credentials at once, one row per header name', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
    const request = { method: 'MESSAGE', uri: 'sip:bob@example.test', body: Buffer.from('one') };
    client.preemptive(request);
    await client.answer({ status: 407, challenges: ['Digest realm="a", nonce="1", qop="auth"', 'Digest realm="b", nonce="2", qop="auth"'] }, request);
    const next = { ...request, body: Buffer.from('two') };
    const rows = client.preemptive(next);
    expect(rows.map(([name]) => name)).toEqual(['Proxy-Authorization']);
    expect(credentialParams(rows[0]![1])).toMatchObject({ realm: 'a', nc: '00000002' });
    // A challenge to that preemptive attempt is answered, not taken for a wrong password.
    expect(await client.answer({ status: 407, challenges: ['Digest realm="a", nonce="3", qop="auth"'] }, next)).toMatchObject({ action: 'retry' });
  });

  it('through the seam only the header it returns counts as sent (the UA keeps one row per name)', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE) });
    const request = { method: 'MESSAGE', uri: 'sip:bob@example.test', body: Buffer.from('fork') };
    client.preemptive(request);
    const both = await client.answer({ status: 407, challenges: ['Digest realm="a", nonce="1", qop="auth"', 'Digest realm="b", nonce="2", qop="auth"'] }, request);
    expect(retry(both).headers.map((h) => credentialParams(h.value)['realm'])).toEqual(['a']);
    // b was not sent, so b challenging again is not a wrong password.
    expect(await client.answer({ status: 407, challenges: ['Digest realm="b", nonce="3", qop="auth"'] }, request)).toMatchObject({ action: 'retry' });
    const then401 = retry(await client.answer({ status: 401, challenges: ['Digest realm="uas", nonce="4", qop="auth"'] }, request));
    expect(then401.headers.map((h) => h.name)).toEqual(['Authorization']);
  });

  it('the same text to the same destination later is a new exchange, not a "rejected"', async () => {
    const client = new DigestClient({ getCredentials: () => Promise.resolve(ALICE), preemptive: false });
    const request = { method: 'MESSAGE', uri: 'sip:bob@example.test', body: Buffer.from('same') };
    client.preemptive(request);
    expect((await client.answer({ status: 401, challenges: ['Digest realm="r", nonce="1", qop="auth"'] }, request)).action).toBe('retry');
    client.preemptive(request);
    expect((await client.answer({ status: 401, challenges: ['Digest realm="r", nonce="2", qop="auth"'] }, request)).action).toBe('retry');
  });
});
