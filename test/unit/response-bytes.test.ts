/**
 * The UAS's simple response path (main/sip/ua/response-bytes.ts) writes exactly the bytes of
 * the general one, `serializeMessage(createResponse(...))`, for every request that parses and
 * can be answered: the RFC 4475 / RFC 5118 torture messages, what sipp and other peers send,
 * compact header forms, several Via rows and lists, a To with a tag, non-ASCII display names,
 * and the top Via after `received`/`rport` were stamped into it (§18.2.1, RFC 3581 §4).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseMessage } from '../../main/sip/message/parse.js';
import { ParseError } from '../../main/sip/message/parse-error.js';
import { serializeMessage } from '../../main/sip/message/serialize.js';
import type { SipRequest } from '../../main/sip/message/sip-message.js';
import { formatVia } from '../../main/sip/header-values.js';
import { createResponse } from '../../main/sip/ua/responses.js';
import { isSimpleResponse, responseBytes, simpleResponseText } from '../../main/sip/ua/response-bytes.js';
import { ResponseStore } from '../../main/sip/ua/response-store.js';
import { fixtureUrl, TORTURE_CASES } from '../fixtures/torture-expectations.js';

const CRLF = '\r\n';

const HANDWRITTEN: Record<string, string> = {
  'sipp MESSAGE': [
    'MESSAGE sip:bob@127.0.0.1:5060 SIP/2.0',
    'Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-0;rport',
    'Max-Forwards: 70',
    'From: "SIPp Load" <sip:sipp@127.0.0.1:5061>;tag=1SIPpTag001',
    'To: "Bob" <sip:bob@127.0.0.1:5060>',
    'Call-ID: 1-1@127.0.0.1',
    'CSeq: 1 MESSAGE',
    'Content-Type: text/plain;charset=UTF-8',
    'Content-Length: 5',
    '',
    'Hello',
  ].join(CRLF),
  'compact forms, two Via rows, a Via list': [
    'MESSAGE sip:bob@example.com SIP/2.0',
    'v: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp1, SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa1',
    'v: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKb1;received=192.0.2.10',
    'f: <sip:alice@example.com>;tag=a1',
    't: sip:bob@example.com',
    'i: abc@def',
    'CSeq: 7 MESSAGE',
    'l: 0',
    '',
    '',
  ].join(CRLF),
  'To with a tag already, odd spacing': [
    'OPTIONS sip:bob@example.com SIP/2.0',
    'Via:   SIP/2.0/UDP 198.51.100.1:5060 ;branch=z9hG4bKx ; rport',
    'From: <sip:alice@example.com>;tag=x',
    'To:<sip:bob@example.com>;tag=already',
    'Call-ID:  spaced',
    'CSeq:  2   OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join(CRLF),
  'non-ASCII display names, IPv6 Via': [
    'MESSAGE sip:bob@[2001:db8::1] SIP/2.0',
    'Via: SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bKv6;rport',
    'From: "Zoë Ångström" <sip:zoe@example.com>;tag=z',
    'To: "Bøb 鮑勃" <sip:bob@[2001:db8::1]>',
    'Call-ID: v6@x',
    'CSeq: 3 MESSAGE',
    'Subject: ignored',
    'Content-Length: 0',
    '',
    '',
  ].join(CRLF),
};

/** Every request of the corpus that parses and whose essential headers read. */
function corpus(): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = Object.entries(HANDWRITTEN).map(([name, text]) => [name, Buffer.from(text, 'utf8')]);
  for (const torture of TORTURE_CASES) out.push([torture.file, readFileSync(fixtureUrl(torture.file))]);
  return out;
}

function requestOf(data: Buffer): SipRequest | undefined {
  try {
    const message = parseMessage(data);
    return message.kind === 'request' ? message : undefined;
  } catch (error) {
    if (error instanceof ParseError) return undefined;
    throw error;
  }
}

/** What the UA does to the top Via before answering (user-agent.ts stampReceived), done the general way. */
function stamped(request: SipRequest): SipRequest | undefined {
  try {
    const top = request.topVia;
    top.params.set('received', '203.0.113.7');
    if (top.params.has('rport')) top.params.set('rport', '40000');
    const first = request.headers.get('via') ?? '';
    const rest = request.headers.getList('via').length > 1 && first.includes(',');
    request.headers.replaceFirst('via', rest ? `${formatVia(top)}, ${first.slice(first.indexOf(',') + 1).trim()}` : formatVia(top));
    request.invalidate();
    return request;
  } catch (error) {
    if (error instanceof ParseError) return undefined;
    throw error;
  }
}

const STATUSES: ReadonlyArray<[number, string | undefined]> = [
  [100, undefined],
  [200, undefined],
  [202, undefined],
  [482, undefined],
  [500, 'Server Internal Error (message could not be stored)'],
  [603, undefined],
  [299, undefined],
];

describe('simpleResponseText', () => {
  const cases = corpus()
    .map(([name, data]) => [name, requestOf(data)] as const)
    .filter((entry): entry is readonly [string, SipRequest] => entry[1] !== undefined);

  it('has a corpus of requests, torture messages included', () => {
    expect(cases.length).toBeGreaterThan(20);
    expect(cases.filter(([name]) => name.startsWith('rfc4475/')).length).toBeGreaterThan(10);
  });

  it.each(cases)('%s: the same bytes as createResponse + serializeMessage', (_name, request) => {
    for (const candidate of [request, stamped(request)]) {
      if (candidate === undefined) continue;
      for (const [status, reason] of STATUSES) {
        for (const toTag of ['f00d', undefined]) {
          const options = { ...(toTag === undefined ? {} : { toTag }), ...(reason === undefined ? {} : { reason }) };
          const general = serializeMessage(createResponse(candidate, status, options));
          expect(Buffer.from(simpleResponseText(candidate, status, toTag, reason), 'utf8').equals(general)).toBe(true);
          expect(responseBytes(candidate, status, options).equals(general)).toBe(true);
          expect(new ResponseStore().keepText(simpleResponseText(candidate, status, toTag, reason)).equals(general)).toBe(true);
        }
      }
    }
  });

  it('holds for generated header values too', () => {
    const value = fc.stringMatching(/^[!-~][ -~\u00e0-\u00ff\u4e00-\u4e10]{0,40}$/).filter((v) => !v.includes(',') && v.trim() === v);
    fc.assert(
      fc.property(value, value, fc.integer({ min: 1, max: 99999 }), (display, callId, seq) => {
        const text = [
          'MESSAGE sip:bob@example.com SIP/2.0',
          'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKgen',
          `From: "${display.replace(/["\\]/g, '')}" <sip:a@example.com>;tag=g`,
          'To: <sip:bob@example.com>',
          `Call-ID: ${callId.replace(/\s/g, '')}x`,
          `CSeq: ${seq} MESSAGE`,
          'Content-Length: 0',
          '',
          '',
        ].join(CRLF);
        const request = requestOf(Buffer.from(text, 'utf8'));
        if (request === undefined) return;
        const general = serializeMessage(createResponse(request, 200, { toTag: 't' }));
        expect(responseBytes(request, 200, { toTag: 't' }).equals(general)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('is taken only for responses with no headers or body of their own', () => {
    expect(isSimpleResponse({})).toBe(true);
    expect(isSimpleResponse({ reason: 'Fine', headers: [], body: Buffer.alloc(0), contentType: 'text/plain' })).toBe(true);
    expect(isSimpleResponse({ headers: [['Retry-After', '5']] })).toBe(false);
    expect(isSimpleResponse({ body: Buffer.from('x'), contentType: 'text/plain' })).toBe(false);
    const request = requestOf(Buffer.from(HANDWRITTEN['sipp MESSAGE'] ?? '', 'utf8'));
    if (request === undefined) throw new Error('the sipp MESSAGE does not parse');
    const options = { toTag: 'z', headers: [['Accept', 'text/plain']] as const, body: Buffer.from('no'), contentType: 'text/plain' };
    expect(responseBytes(request, 415, options).equals(serializeMessage(createResponse(request, 415, options)))).toBe(true);
  });
});

describe('ResponseStore.keepText', () => {
  it('keeps texts apart across slabs, large ones on their own', () => {
    const store = new ResponseStore();
    const texts = Array.from({ length: 400 }, (_, i) => `SIP/2.0 200 OK\r\nCall-ID: ${'é'.repeat(i % 50)}${i}\r\n\r\n`);
    const kept = texts.map((text) => store.keepText(text));
    texts.forEach((text, i) => expect(kept[i]?.toString('utf8')).toBe(text));
    const large = 'x'.repeat(40_000);
    expect(store.keepText(large).toString('latin1')).toBe(large);
    expect(kept[0]?.toString('utf8')).toBe(texts[0]);
  });
});
