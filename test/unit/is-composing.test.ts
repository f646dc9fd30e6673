import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { XmlBodyError } from '../../main/im/xml.js';
import {
  ComposingReceiver,
  ComposingSender,
  ISCOMPOSING_CONTENT_TYPE,
  ISCOMPOSING_NAMESPACE,
  buildIsComposing,
  parseIsComposing,
  type ComposingSendEvent,
  type IsComposingStatus,
} from '../../main/im/is-composing.js';
import { ParseError } from '../../main/sip/message/parse-error.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);

function xmlErrorOf(fn: () => unknown): XmlBodyError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(XmlBodyError);
    expect(error).toBeInstanceOf(ParseError);
    return error as XmlBodyError;
  }
  throw new Error('expected an XmlBodyError, nothing was thrown');
}

/** RFC 3994 §5, first example: active, with the schemaLocation attribute real clients copy from it. */
const RFC3994_ACTIVE = [
  '<?xml version="1.0" encoding="UTF-8"?>',
  '<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"',
  '  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
  '  xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing iscomposing.xsd">',
  '  <state>active</state>',
  '  <contenttype>text/plain</contenttype>',
  '  <refresh>90</refresh>',
  '</isComposing>',
].join('\n');

/** RFC 3994 §5, second example: idle, with lastactive and a top-level content type. */
const RFC3994_IDLE = [
  '<?xml version="1.0" encoding="UTF-8"?>',
  '<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"',
  '  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
  '  xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing iscomposing.xsd">',
  '  <state>idle</state>',
  '  <lastactive>2003-01-27T10:43:00Z</lastactive>',
  '  <contenttype>audio</contenttype>',
  '</isComposing>',
].join('\n');

const doc = (inner: string): Uint8Array => bytes(`<isComposing xmlns="${ISCOMPOSING_NAMESPACE}">${inner}</isComposing>`);

describe('isComposing documents (RFC 3994 §3.4, §6)', () => {
  it('names the media type and namespace of §6', () => {
    expect(ISCOMPOSING_CONTENT_TYPE).toBe('application/im-iscomposing+xml');
    expect(ISCOMPOSING_NAMESPACE).toBe('urn:ietf:params:xml:ns:im-iscomposing');
  });

  it('reads the two examples of §5', () => {
    expect(parseIsComposing(bytes(RFC3994_ACTIVE))).toEqual({
      state: 'active',
      stateToken: 'active',
      contentType: 'text/plain',
      refreshSeconds: 90,
    });
    expect(parseIsComposing(bytes(RFC3994_IDLE))).toEqual({
      state: 'idle',
      stateToken: 'idle',
      lastActive: new Date('2003-01-27T10:43:00Z'),
      contentType: 'audio',
    });
  });

  it('writes a compact document in schema order', () => {
    const text = decoder.decode(
      buildIsComposing({ state: 'active', refreshSeconds: 60, contentType: 'text/plain', lastActive: new Date('2026-03-01T10:00:00.250Z') }),
    );
    expect(text).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
        '<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state>' +
        '<lastactive>2026-03-01T10:00:00.250Z</lastactive><contenttype>text/plain</contenttype>' +
        '<refresh>60</refresh></isComposing>',
    );
    expect(decoder.decode(buildIsComposing({ state: 'idle' }))).toContain('<state>idle</state></isComposing>');
  });

  it('refuses what it cannot write', () => {
    expect(() => buildIsComposing({ state: 'active', refreshSeconds: 0 })).toThrow(RangeError);
    expect(() => buildIsComposing({ state: 'active', refreshSeconds: 1.5 })).toThrow(RangeError);
    expect(() => buildIsComposing({ state: 'idle', lastActive: new Date(Number.NaN) })).toThrow(RangeError);
    expect(() => buildIsComposing({ state: 'idle', contentType: 'text/\u0000' })).toThrow(RangeError);
  });

  it('does not care which prefix the document uses, nor about element order', () => {
    const prefixed = bytes(
      `<c:isComposing xmlns:c="${ISCOMPOSING_NAMESPACE}"><c:refresh> 75 </c:refresh><c:state> active </c:state></c:isComposing>`,
    );
    expect(parseIsComposing(prefixed)).toEqual({ state: 'active', stateToken: 'active', refreshSeconds: 75 });
  });

  it('treats unknown state tokens as idle (§3.5)', () => {
    for (const token of ['typing', 'Active', 'ACTIVE', '', 'paused']) {
      expect(parseIsComposing(doc(`<state>${token}</state>`))).toMatchObject({ state: 'idle', stateToken: token });
    }
  });

  it('ignores other namespaces, unknown elements of its own, and unusable refresh or lastactive values', () => {
    const parsed = parseIsComposing(
      doc(
        '<state>active</state><x:conf xmlns:x="http://cclweb.itri.org.tw/k200/imps/">42</x:conf><mood>happy</mood>' +
          '<refresh>-5</refresh><lastactive>last tuesday</lastactive>',
      ),
    );
    expect(parsed).toEqual({ state: 'active', stateToken: 'active' });
    for (const refresh of ['0', '1.5', 'abc', '99999999999', '']) {
      expect(parseIsComposing(doc(`<state>active</state><refresh>${refresh}</refresh>`)).refreshSeconds).toBeUndefined();
    }
    expect(parseIsComposing(doc('<state>active</state><refresh>+0090</refresh>')).refreshSeconds).toBe(90);
    // xs:dateTime without a zone is read as UTC.
    expect(parseIsComposing(doc('<state>idle</state><lastactive>2003-01-27T10:43:00</lastactive>')).lastActive).toEqual(
      new Date('2003-01-27T10:43:00Z'),
    );
  });

  it('refuses a wrong root, a missing or repeated <state>, or a <state> with markup (400)', () => {
    const wrong = [
      bytes('<isComposing><state>active</state></isComposing>'),
      bytes(`<composing xmlns="${ISCOMPOSING_NAMESPACE}"><state>active</state></composing>`),
      doc('<refresh>60</refresh>'),
      doc('<state>active</state><state>idle</state>'),
      doc('<state>act<b/>ive</state>'),
      doc('<state>active</state><refresh>60</refresh><refresh>90</refresh>'),
    ];
    for (const body of wrong) expect(xmlErrorOf(() => parseIsComposing(body)).reason).toBe('schema');
  });

  it('refuses malformed and hostile XML with a ParseError (400)', () => {
    const cases: Array<[string, string]> = [
      ['<!DOCTYPE isComposing [<!ENTITY a "aaaaaaaaaa">]><isComposing/>', 'dtd'],
      [`<isComposing xmlns="${ISCOMPOSING_NAMESPACE}"><state>&active;</state></isComposing>`, 'entity'],
      [`<isComposing xmlns="${ISCOMPOSING_NAMESPACE}"><state>active</state>`, 'truncated'],
      [`<isComposing xmlns="${ISCOMPOSING_NAMESPACE}"><state>active</State></isComposing>`, 'syntax'],
      ['', 'empty'],
    ];
    for (const [xml, reason] of cases) expect(xmlErrorOf(() => parseIsComposing(bytes(xml))).reason).toBe(reason);
  });

  it('reads back what it writes (property)', () => {
    const status: fc.Arbitrary<IsComposingStatus> = fc.record(
      {
        state: fc.constantFrom('active' as const, 'idle' as const),
        refreshSeconds: fc.integer({ min: 1, max: 999_999_999 }),
        lastActive: fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }),
        contentType: fc.stringMatching(/^[a-z]{1,10}(\/[a-z0-9.+-]{1,20})?$/),
      },
      { requiredKeys: ['state'] },
    );
    fc.assert(
      fc.property(status, (s) => {
        expect(parseIsComposing(buildIsComposing(s))).toEqual({ ...s, stateToken: s.state });
      }),
      { numRuns: 500 },
    );
  });

  it('throws only ParseError on arbitrary input (property)', () => {
    const tokens = fc.constantFrom(
      `<isComposing xmlns="${ISCOMPOSING_NAMESPACE}">`, '</isComposing>', '<state>', '</state>', 'active', 'idle',
      '<refresh>', '</refresh>', '60', '<lastactive>', '</lastactive>', '2003-01-27T10:43:00Z', '<', '>', '&', '"', ' ',
    );
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.array(tokens, { maxLength: 30 }).map((t) => bytes(t.join('')))), (body) => {
        try {
          const parsed = parseIsComposing(body);
          expect(['active', 'idle']).toContain(parsed.state);
        } catch (error) {
          if (!(error instanceof ParseError)) throw error;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('ComposingSender (RFC 3994 §3.2, virtual time)', () => {
  const states = (events: ComposingSendEvent[]): string[] => events.map((e) => e.status.state);

  it('sends "active" with its refresh on the first keystroke, and nothing for the next ones', () => {
    const sender = new ComposingSender({ contentType: 'text/plain' });
    expect(sender.typing(1_000)).toEqual([{ type: 'send', status: { state: 'active', refreshSeconds: 60, contentType: 'text/plain' } }]);
    expect(sender.state).toBe('active');
    for (let t = 1_100; t < 10_000; t += 100) expect(sender.typing(t)).toEqual([]);
    // The idle timer follows the last keystroke: 9,900 + 15 s.
    expect(sender.pollTimeout()).toBe(24_900);
  });

  it('sends "idle" 15 s after the last keystroke, with <lastactive> when it can map time to dates', () => {
    const sender = new ComposingSender({ toDate: (now) => new Date(Date.UTC(2026, 2, 1) + now) });
    sender.typing(0);
    sender.typing(4_000);
    expect(sender.handleTimeout(18_999)).toEqual([]);
    expect(sender.handleTimeout(19_000)).toEqual([
      { type: 'send', status: { state: 'idle', lastActive: new Date('2026-03-01T00:00:04Z') } },
    ]);
    expect(sender.state).toBe('idle');
    expect(sender.pollTimeout()).toBeUndefined();
  });

  it('refreshes "active" once per refresh interval while the user keeps typing', () => {
    const sender = new ComposingSender({ refreshSeconds: 90 });
    const sent: Array<[number, string]> = [];
    for (let t = 0; t <= 300_000; t += 5_000) {
      for (let due = sender.pollTimeout(); due !== undefined && due <= t; due = sender.pollTimeout()) {
        for (const e of sender.handleTimeout(due)) sent.push([due, e.status.state]);
      }
      for (const e of sender.typing(t)) sent.push([t, e.status.state]);
    }
    expect(sent).toEqual([
      [0, 'active'],
      [90_000, 'active'],
      [180_000, 'active'],
      [270_000, 'active'],
    ]);
    for (let due = sender.pollTimeout(); due !== undefined; due = sender.pollTimeout()) {
      for (const e of sender.handleTimeout(due)) sent.push([due, e.status.state]);
    }
    expect(sent.at(-1)).toEqual([315_000, 'idle']);
  });

  it('needs no "idle" when the content message goes out (§3.2)', () => {
    const sender = new ComposingSender();
    sender.typing(0);
    expect(sender.contentSent(3_000)).toEqual([]);
    expect(sender.state).toBe('idle');
    expect(sender.pollTimeout()).toBeUndefined();
    // The next message starts a new composition at once.
    expect(states(sender.typing(4_000))).toEqual(['active']);
  });

  it('sends "idle" at once when the user abandons the draft', () => {
    const sender = new ComposingSender();
    expect(sender.composingStopped(0)).toEqual([]);
    sender.typing(0);
    expect(states(sender.composingStopped(2_000))).toEqual(['idle']);
    expect(sender.pollTimeout()).toBeUndefined();
  });

  it('stops for good after a 415 (§4)', () => {
    const sender = new ComposingSender();
    sender.typing(0);
    expect(sender.handleResponse(200, 100)).toEqual([]);
    expect(sender.state).toBe('active');
    expect(sender.handleResponse(415, 200)).toEqual([]);
    expect(sender.state).toBe('disabled');
    expect(sender.pollTimeout()).toBeUndefined();
    expect(sender.typing(1_000)).toEqual([]);
    expect(sender.composingStopped(2_000)).toEqual([]);
    expect(sender.handleTimeout(1_000_000)).toEqual([]);
  });

  it('handles overdue timers after a stall without a burst', () => {
    const sender = new ComposingSender();
    sender.typing(0);
    sender.typing(55_000); // refresh due at 60 s, idle at 70 s: both overdue, so just "idle"
    expect(states(sender.handleTimeout(10_000_000))).toEqual(['idle']);
    const onTime = new ComposingSender();
    onTime.typing(0);
    onTime.typing(55_000);
    expect(states(onTime.handleTimeout(60_000))).toEqual(['active']);
    expect(states(onTime.handleTimeout(70_000))).toEqual(['idle']);
    const typing = new ComposingSender();
    typing.typing(0);
    // Refresh overdue by several intervals while the user still types: one refresh, re-armed from now.
    typing.typing(299_000);
    expect(states(typing.handleTimeout(300_000))).toEqual(['active']);
    expect(typing.pollTimeout()).toBe(314_000);
  });

  it('refuses a refresh under 60 s and a non-positive idle timeout', () => {
    expect(() => new ComposingSender({ refreshSeconds: 59 })).toThrow(RangeError);
    expect(() => new ComposingSender({ refreshSeconds: 60.5 })).toThrow(RangeError);
    expect(() => new ComposingSender({ idleTimeoutMs: 0 })).toThrow(RangeError);
  });

  it('builds bodies the receiver understands', () => {
    const sender = new ComposingSender({ contentType: 'text/plain' });
    const receiver = new ComposingReceiver();
    const [active] = sender.typing(0);
    expect(receiver.receiveStatus(parseIsComposing(buildIsComposing(active!.status)), 50)).toEqual([
      { type: 'changed', state: 'active', contentType: 'text/plain', cause: 'status' },
    ]);
    const [idle] = sender.handleTimeout(15_000);
    expect(receiver.receiveStatus(parseIsComposing(buildIsComposing(idle!.status)), 15_050)).toEqual([
      { type: 'changed', state: 'idle', cause: 'status' },
    ]);
  });
});

describe('ComposingReceiver (RFC 3994 §3.3, virtual time)', () => {
  it('goes idle when the announced refresh runs out', () => {
    const receiver = new ComposingReceiver();
    expect(receiver.receiveStatus({ state: 'active', refreshSeconds: 90 }, 1_000)).toEqual([
      { type: 'changed', state: 'active', cause: 'status' },
    ]);
    expect(receiver.pollTimeout()).toBe(91_000);
    expect(receiver.handleTimeout(90_999)).toEqual([]);
    expect(receiver.handleTimeout(91_000)).toEqual([{ type: 'changed', state: 'idle', cause: 'expired' }]);
    expect(receiver.pollTimeout()).toBeUndefined();
    expect(receiver.handleTimeout(200_000)).toEqual([]);
  });

  it('assumes 120 s without <refresh>, and caps absurd ones', () => {
    const receiver = new ComposingReceiver();
    receiver.receiveStatus({ state: 'active' }, 0);
    expect(receiver.pollTimeout()).toBe(120_000);
    receiver.receiveStatus({ state: 'active', refreshSeconds: 86_400 }, 0);
    expect(receiver.pollTimeout()).toBe(600_000);
    const lenient = new ComposingReceiver({ maxRefreshSeconds: 3_600, graceMs: 2_000, defaultRefreshSeconds: 30 });
    lenient.receiveStatus({ state: 'active' }, 0);
    expect(lenient.pollTimeout()).toBe(32_000);
  });

  it('handles repeated "active": the timer restarts, nothing is reported unless the content type changes', () => {
    const receiver = new ComposingReceiver();
    receiver.receiveStatus({ state: 'active', refreshSeconds: 60, contentType: 'text/plain' }, 0);
    expect(receiver.receiveStatus({ state: 'active', refreshSeconds: 60, contentType: 'text/plain' }, 50_000)).toEqual([]);
    expect(receiver.pollTimeout()).toBe(110_000);
    expect(receiver.handleTimeout(60_000)).toEqual([]);
    expect(receiver.receiveStatus({ state: 'active', refreshSeconds: 60, contentType: 'audio' }, 70_000)).toEqual([
      { type: 'changed', state: 'active', contentType: 'audio', cause: 'status' },
    ]);
    expect(receiver.contentType).toBe('audio');
  });

  it('goes idle on "idle", on unknown states and on a content message', () => {
    const receiver = new ComposingReceiver();
    receiver.receiveStatus({ state: 'active' }, 0);
    expect(receiver.receiveStatus({ state: 'idle', lastActive: new Date(5) }, 1_000)).toEqual([
      { type: 'changed', state: 'idle', lastActive: new Date(5), cause: 'status' },
    ]);
    expect(receiver.receiveStatus({ state: 'idle' }, 2_000)).toEqual([]);

    receiver.receiveStatus(parseIsComposing(doc('<state>active</state>')), 3_000);
    expect(receiver.receiveStatus(parseIsComposing(doc('<state>typing-hard</state>')), 4_000)).toEqual([
      { type: 'changed', state: 'idle', cause: 'status' },
    ]);

    receiver.receiveStatus({ state: 'active' }, 5_000);
    expect(receiver.receiveContent(6_000)).toEqual([{ type: 'changed', state: 'idle', cause: 'content' }]);
    expect(receiver.receiveContent(7_000)).toEqual([]);
    expect(receiver.state).toBe('idle');
    expect(receiver.pollTimeout()).toBeUndefined();
  });

  it('refuses nonsense options', () => {
    expect(() => new ComposingReceiver({ defaultRefreshSeconds: 0 })).toThrow(RangeError);
    expect(() => new ComposingReceiver({ graceMs: -1 })).toThrow(RangeError);
  });
});
