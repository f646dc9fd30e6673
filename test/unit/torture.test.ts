/**
 * Every RFC 4475 torture message and every RFC 5118 IPv6 message, with the behaviour its
 * section asks for (test/fixtures/torture-expectations.ts says what that is, case by case):
 * the parser accepts or rejects it, header validation accepts or rejects it, and the pager
 * UAS's request policy gives the answer the RFC (or our narrower pager role) calls for.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../main/sip/message/parse.js';
import { ParseError } from '../../main/sip/message/parse-error.js';
import { checkCSeqMethod, validateEssentialHeaders, type SipMessage } from '../../main/sip/message/sip-message.js';
import { PAGER_REQUEST_POLICY } from '../../main/im/incoming-body.js';
import { judgeRequest, judgeResponse } from '../../main/sip/ua/request-policy.js';
import {
  collapseLws,
  fixtureUrl,
  TORTURE_CASES,
  type AcceptableOutcome,
  type MessageFacts,
  type TortureExpectation,
} from '../fixtures/torture-expectations.js';

function checkFacts(message: SipMessage, facts: MessageFacts): void {
  expect(message.kind).toBe(facts.kind);
  expect(message.version).toBe(facts.version);
  if (message.kind === 'request') {
    if (facts.method !== undefined) expect(message.method).toBe(facts.method);
    if (facts.requestUri !== undefined) expect(message.uri).toBe(facts.requestUri);
  } else {
    if (facts.status !== undefined) expect(message.status).toBe(facts.status);
    if (facts.reasonPhrase !== undefined) expect(message.reason).toBe(facts.reasonPhrase);
  }
  if (facts.callId !== undefined) expect(message.callId).toBe(facts.callId);
  if (facts.cseq !== undefined) expect(message.cseq).toEqual(facts.cseq);
  if (facts.maxForwards !== undefined) {
    const value = message.headers.get('max-forwards');
    expect(value === undefined ? null : Number(value)).toBe(facts.maxForwards);
  }
  if (facts.viaCount !== undefined) expect(message.vias.length).toBe(facts.viaCount);
  facts.vias?.forEach((fact, i) => {
    const via = message.vias[i];
    expect(via, `Via #${i}`).toBeDefined();
    if (via === undefined) return;
    expect(via.transport).toBe(fact.transport);
    expect(via.host.toLowerCase()).toBe(fact.host.toLowerCase());
    if (fact.port !== undefined) expect(via.port).toBe(fact.port);
    if (fact.branch !== undefined) expect(via.params.get('branch')).toBe(fact.branch);
    if (fact.received !== undefined) expect(via.params.get('received')).toBe(fact.received);
  });
  const declared = message.headers.get('content-length');
  expect(declared === undefined ? null : Number(declared)).toBe(facts.contentLength);
  expect(message.body.length).toBe(facts.bodyLength);
  for (const [name, value] of Object.entries(facts.headers ?? {})) {
    const actual = message.headers.get(name);
    expect(actual, `header ${name}`).toBeDefined();
    expect(collapseLws(actual ?? ''), `header ${name}`).toBe(collapseLws(value));
  }
  for (const [name, rows] of Object.entries(facts.headerRows ?? {})) {
    expect(message.headers.getAll(name).length, `rows of ${name}`).toBe(rows);
  }
}

/** What header validation and the request policy make of a parsed message. */
function outcomeOf(message: SipMessage): { outcome: AcceptableOutcome; error?: ParseError } {
  let invalid: ParseError | undefined;
  try {
    validateEssentialHeaders(message);
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    invalid = error;
  }
  if (message.kind === 'response') {
    const outcome = judgeResponse(message).action === 'accept' ? 'process' : 'discard';
    return invalid === undefined ? { outcome } : { outcome, error: invalid };
  }
  if (invalid !== undefined) {
    const error = invalid;
    if (message.method === 'ACK') return { outcome: 'discard', error };
    return { outcome: 400, error };
  }
  const verdict = judgeRequest(message, PAGER_REQUEST_POLICY);
  // Accepted, a MESSAGE or OPTIONS is processed and answered 200 by the user agent.
  if (verdict.action === 'accept') return { outcome: 'process' };
  if (verdict.action === 'ignore') return { outcome: 'discard' };
  // A CSeq/method mismatch is found by the policy; report it like header validation would.
  try {
    checkCSeqMethod(message);
  } catch (error) {
    if (error instanceof ParseError && verdict.status === 400) return { outcome: 400, error };
  }
  return { outcome: verdict.status };
}

function run(data: Buffer, expectation: TortureExpectation, pager: { respond: number; alsoAcceptable?: readonly AcceptableOutcome[] } | undefined): void {
  if (expectation.parse === 'error') {
    let thrown: unknown;
    try {
      parseMessage(data);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ParseError);
    const error = thrown as ParseError;
    expect(expectation.codes).toContain(error.code);
    if (expectation.headers !== undefined && error.header !== undefined) expect(expectation.headers).toContain(error.header);
    // When the RFC wants an answer, the UAS must have enough of the message to address it:
    // Via to route it, Call-ID and CSeq to match it (From and To are copied as they are).
    if (typeof expectation.rfcAnswer === 'number') {
      expect(error.partial, 'partial message for a 400').toBeDefined();
      if (error.partial !== undefined) {
        expect(error.partial.topVia.host.length).toBeGreaterThan(0);
        expect(error.partial.callId.length).toBeGreaterThan(0);
        expect(error.partial.cseq.seq).toBeGreaterThanOrEqual(0);
      }
    }
    return;
  }

  const message = parseMessage(data);
  checkFacts(message, expectation.facts);
  const { outcome, error } = outcomeOf(message);

  const wanted: AcceptableOutcome[] = [];
  if (pager !== undefined) wanted.push(pager.respond, ...(pager.alsoAcceptable ?? []));
  // Processing an OPTIONS or MESSAGE means answering it 200.
  if (pager?.respond === 200) wanted.push('process');
  else if (expectation.respond !== undefined) wanted.push(expectation.respond);
  else if (expectation.discard === true) wanted.push('discard');
  else wanted.push('process');
  if ('alsoAcceptable' in expectation && expectation.alsoAcceptable !== undefined) wanted.push(...expectation.alsoAcceptable);
  expect(wanted).toContain(outcome);

  if (error !== undefined && 'codes' in expectation && expectation.codes !== undefined) {
    expect(expectation.codes).toContain(error.code);
  }
}

describe.each(TORTURE_CASES.map((c) => [`${c.file} (${c.rfcSection}, ${c.kind})`, c] as const))('%s', (_name, torture) => {
  it('gets the behaviour its section asks for', () => {
    const data = readFileSync(fixtureUrl(torture.file));
    run(data, torture.expect, torture.pagerUas);
  });
  if (torture.repaired !== undefined) {
    const repaired = torture.repaired;
    it('repaired, gets the behaviour its section asks for', () => {
      const data = Buffer.concat([readFileSync(fixtureUrl(torture.file)), Buffer.from(repaired.append, 'latin1')]);
      run(data, repaired.expect, torture.pagerUas);
    });
  }
});
