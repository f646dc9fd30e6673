/**
 * `judgeRequest` (main/sip/ua/request-policy.ts) and `validateEssentialHeaders` remember what
 * the last requests had in common (the From, To and Request-URI text that parsed, the
 * Content-Type value that was accepted under a policy), so that a stream of MESSAGEs from one
 * sender is not parsed and judged again and again. Whatever came before, each request must get
 * the verdict it gets on its own.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PAGER_REQUEST_POLICY } from '../../main/im/incoming-body.js';
import { parseMessage } from '../../main/sip/message/parse.js';
import type { SipRequest } from '../../main/sip/message/sip-message.js';
import { DEFAULT_REQUEST_POLICY, judgeRequest, type RequestPolicy, type Verdict } from '../../main/sip/ua/request-policy.js';

/** The default policy's accepted types again, in another array. */
const COPY_POLICY: RequestPolicy = { ...DEFAULT_REQUEST_POLICY, acceptedTypes: [...DEFAULT_REQUEST_POLICY.acceptedTypes] };
const NARROW_POLICY: RequestPolicy = { ...DEFAULT_REQUEST_POLICY, acceptedTypes: ['text/plain'], maxBodyBytes: 8 };
const POLICIES = [DEFAULT_REQUEST_POLICY, PAGER_REQUEST_POLICY, COPY_POLICY, NARROW_POLICY] as const;

const URIS = ['sip:bob@example.com', 'SIP:bob@example.com', 'sips:bob@example.com:5061', 'im:bob@example.com', 'tel:+1-212-555-0101', 'http://example.com/', 'sip:a@b:99999', 'sip:bob@[::1'];
const CONTENT_TYPES = [
  'text/plain;charset=UTF-8',
  'text/plain',
  'TEXT/Plain; charset=utf-8',
  'text/plain;charset=koi8-r',
  'text/html',
  'message/cpim',
  'multipart/mixed;boundary=x',
  'text/',
  undefined,
];

interface Shape {
  readonly method: string;
  readonly requestUri: string;
  readonly from: string;
  readonly to: string;
  readonly contentType: string | undefined;
  readonly body: string;
  readonly extra: readonly string[];
}

function request(shape: Shape, callId: string): SipRequest {
  const rows = [
    `${shape.method} ${shape.requestUri} SIP/2.0`,
    'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport',
    'Max-Forwards: 70',
    `From: "A" <${shape.from}>;tag=1`,
    `To: <${shape.to}>`,
    `Call-ID: ${callId}`,
    `CSeq: 1 ${shape.method}`,
    ...(shape.contentType === undefined ? [] : [`Content-Type: ${shape.contentType}`]),
    ...shape.extra,
    `Content-Length: ${Buffer.byteLength(shape.body)}`,
  ];
  const message = parseMessage(Buffer.from(`${rows.join('\r\n')}\r\n\r\n${shape.body}`));
  if (message.kind !== 'request') throw new Error('not a request');
  return message;
}

let resets = 0;
/** The verdict for `shape` right after a request that shares nothing with it, under the same policy. */
function judgedAlone(shape: Shape, policy: RequestPolicy): Verdict {
  const n = resets++;
  const unrelated: Shape = {
    method: 'MESSAGE',
    requestUri: `sip:reset-${n}@example.org`,
    from: `sip:reset-from-${n}@example.org`,
    to: `sip:reset-to-${n}@example.org`,
    contentType: `text/plain;reset=${n}`,
    body: 'x',
    extra: [],
  };
  expect(judgeRequest(request(unrelated, `reset-${n}`), policy)).toEqual({ action: 'accept' });
  return judgeRequest(request(shape, 'c1'), policy);
}

const shapeArb: fc.Arbitrary<Shape> = fc.record({
  method: fc.constantFrom('MESSAGE', 'MESSAGE', 'MESSAGE', 'OPTIONS', 'INFO'),
  requestUri: fc.constantFrom(...URIS),
  from: fc.constantFrom(...URIS),
  to: fc.constantFrom(...URIS),
  contentType: fc.constantFrom(...CONTENT_TYPES),
  body: fc.constantFrom('hello', '', 'a longer body'),
  extra: fc.constantFrom([], ['Content-Encoding: gzip'], ['Require: foo'], ['Content-Type: text/plain']),
});

describe('judgeRequest over a sequence of requests', () => {
  it('gives each request the verdict it gets on its own, whatever came before and under whichever policy', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(shapeArb, fc.constantFrom(...POLICIES)), { minLength: 1, maxLength: 12 }), (sequence) => {
        const inSequence = sequence.map(([shape, policy]) => judgeRequest(request(shape, 'c1'), policy));
        const alone = sequence.map(([shape, policy]) => judgedAlone(shape, policy));
        expect(inSequence).toEqual(alone);
      }),
      { numRuns: 400 },
    );
  });

  it('refuses a type after the same value was accepted under a policy that takes it', () => {
    const shape: Shape = { method: 'MESSAGE', requestUri: 'sip:bob@example.com', from: 'sip:a@example.com', to: 'sip:bob@example.com', contentType: 'message/cpim', body: 'x', extra: [] };
    expect(judgeRequest(request(shape, 'c1'), DEFAULT_REQUEST_POLICY)).toEqual({ action: 'accept' });
    expect(judgeRequest(request(shape, 'c2'), NARROW_POLICY)).toMatchObject({ action: 'respond', status: 415 });
    expect(judgeRequest(request(shape, 'c3'), DEFAULT_REQUEST_POLICY)).toEqual({ action: 'accept' });
  });
});
