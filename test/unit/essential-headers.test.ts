/**
 * `validateEssentialHeaders` (main/sip/message/sip-message.ts) checks the single headers in one
 * pass and remembers the last From, To and Request-URI text that parsed, so that consecutive
 * requests from one sender are not parsed again. It must answer exactly as the straightforward
 * version below (kept here as the reference) for every message, in any order: the RFC 4475
 * torture messages, and sequences of generated requests that repeat, vary and break the URIs
 * and duplicate the single headers.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseMessage } from '../../main/sip/message/parse.js';
import { ParseError } from '../../main/sip/message/parse-error.js';
import { requestUriScheme, validateEssentialHeaders, type SipMessage } from '../../main/sip/message/sip-message.js';
import { fixtureUrl, TORTURE_CASES } from '../fixtures/torture-expectations.js';

/** The version before the single pass and the remembered URIs. */
function referenceValidate(message: SipMessage): void {
  if (message.vias.length === 0) throw new ParseError('missing-header', 'Via header missing', 'Via');
  for (const [key, display] of [
    ['from', 'From'],
    ['to', 'To'],
    ['call-id', 'Call-ID'],
    ['cseq', 'CSeq'],
    ['max-forwards', 'Max-Forwards'],
    ['content-type', 'Content-Type'],
  ] as const) {
    if (message.headers.getAll(key).length > 1) throw new ParseError('bad-header', `${display} appears more than once`, display);
  }
  void message.from.uri;
  void message.to.uri;
  if (message.callId.length === 0) throw new ParseError('bad-header-value', 'Call-ID is empty', 'Call-ID');
  void message.cseq;
  if (message.kind === 'request') {
    void message.requestUri;
    const maxForwards = message.headers.get('max-forwards');
    if (maxForwards !== undefined && !/^\d{1,10}$/.test(maxForwards)) {
      throw new ParseError('bad-header-value', 'Max-Forwards is not a number', 'Max-Forwards');
    }
  }
  void message.contentType;
}

type Outcome = { readonly ok: true } | { readonly ok: false; readonly code: string; readonly message: string; readonly header: string | undefined };

function outcomeOf(validate: (message: SipMessage) => void, message: SipMessage): Outcome {
  try {
    validate(message);
    return { ok: true };
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    return { ok: false, code: error.code, message: error.message, header: error.header };
  }
}

function parsed(data: Buffer | string): SipMessage | undefined {
  try {
    return parseMessage(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  } catch (error) {
    if (error instanceof ParseError) return undefined;
    throw error;
  }
}

/** Both versions on fresh parses of the same bytes (the views they read are cached per message). */
function expectSameOutcome(data: Buffer | string): void {
  const forNew = parsed(data);
  const forReference = parsed(data);
  if (forNew === undefined || forReference === undefined) return;
  const outcome = outcomeOf(validateEssentialHeaders, forNew);
  expect(outcome).toEqual(outcomeOf(referenceValidate, forReference));
  if (outcome.ok && forNew.kind === 'request' && forReference.kind === 'request') {
    expect(requestUriScheme(forNew)).toBe(forReference.requestUri.scheme);
  }
}

const URIS = ['sip:bob@example.com', 'SIP:Bob@Example.com:5060', 'sips:bob@example.com', 'im:bob@example.com', 'tel:+1-212-555-0101', 'sip:bob@exa mple.com', 'sip:a@b:99999', 'bogus', 'x:'];

const requestArb = fc.record({
  requestUri: fc.constantFrom(...URIS),
  from: fc.constantFrom(...URIS),
  to: fc.constantFrom(...URIS),
  duplicate: fc.option(fc.constantFrom('From', 'To', 'Call-ID', 'CSeq', 'Max-Forwards', 'Content-Type', 'f', 'i'), { nil: undefined }),
  secondDuplicate: fc.option(fc.constantFrom('From', 'Content-Type', 'l'), { nil: undefined }),
  maxForwards: fc.constantFrom('70', 'seventy', '12345678901'),
  callId: fc.constantFrom('c1@example.com', ''),
});

interface RequestShape {
  readonly requestUri: string;
  readonly from: string;
  readonly to: string;
  readonly duplicate?: string | undefined;
  readonly secondDuplicate?: string | undefined;
  readonly maxForwards: string;
  readonly callId: string;
}

function requestText(r: RequestShape): string {
  const rows = [
    `MESSAGE ${r.requestUri} SIP/2.0`,
    'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport',
    `Max-Forwards: ${r.maxForwards}`,
    `From: "A" <${r.from}>;tag=1`,
    `To: <${r.to}>`,
    `Call-ID: ${r.callId}`,
    'CSeq: 1 MESSAGE',
    'Content-Type: text/plain',
  ];
  for (const name of [r.duplicate, r.secondDuplicate]) {
    if (name === undefined) continue;
    const value: string = { From: `<${r.from}>;tag=2`, f: '<sip:x@y>;tag=3', To: '<sip:z@y>', 'Call-ID': 'other', i: 'other', CSeq: '2 MESSAGE', 'Max-Forwards': '69', 'Content-Type': 'text/html', l: '0' }[name] ?? '';
    rows.push(`${name}: ${value}`);
  }
  return `${rows.join('\r\n')}\r\nContent-Length: 0\r\n\r\n`;
}

describe('validateEssentialHeaders', () => {
  it('answers as the reference for every torture message, twice in a row and interleaved', () => {
    const messages = TORTURE_CASES.map((torture) => readFileSync(fixtureUrl(torture.file)));
    for (const data of messages) {
      expectSameOutcome(data);
      expectSameOutcome(data);
    }
    for (const data of [...messages].reverse()) expectSameOutcome(data);
  });

  it('answers as the reference over sequences of requests that repeat, vary and break URIs and single headers', () => {
    fc.assert(
      fc.property(fc.array(requestArb, { minLength: 1, maxLength: 10 }), (requests) => {
        for (const request of requests) expectSameOutcome(requestText(request));
      }),
      { numRuns: 500 },
    );
  });

  it('reports a bad URI again after the same header had a good one, and the good one again after a bad one', () => {
    const good: RequestShape = { requestUri: 'sip:bob@example.com', from: 'sip:alice@example.com', to: 'sip:bob@example.com', maxForwards: '70', callId: 'c' };
    for (const field of ['requestUri', 'from', 'to'] as const) {
      const bad: RequestShape = { ...good, [field]: 'sip:a@b:99999' };
      for (const r of [good, bad, bad, good, good, bad]) {
        const message = parsed(requestText(r));
        if (message === undefined) throw new Error('the request does not parse');
        const outcome = outcomeOf(validateEssentialHeaders, message);
        expect(outcome.ok).toBe(r === good);
      }
    }
  });

  it('names the first single header, in the fixed order, that appears twice', () => {
    const base: RequestShape = { requestUri: 'sip:bob@example.com', from: 'sip:alice@example.com', to: 'sip:bob@example.com', maxForwards: '70', callId: 'c' };
    const message = parsed(requestText({ ...base, duplicate: 'Content-Type', secondDuplicate: 'From' }));
    expect(outcomeOf(validateEssentialHeaders, message!)).toEqual({ ok: false, code: 'bad-header', message: 'From appears more than once', header: 'From' });
  });
});
