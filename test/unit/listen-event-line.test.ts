/**
 * `sipnote listen --json` writes a message's event line by hand (messageEventLine); it must be
 * exactly `JSON.stringify(messageEvent(…))` and a line end, whatever the message carries.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { messageEvent, messageEventLine } from '../../main/cli/listen-command.js';
import { readMessageBody } from '../../main/im/incoming-body.js';
import type { IncomingMessage } from '../../main/sip/ua/user-agent.js';
import type { SipRequest } from '../../main/sip/message/sip-message.js';

function incoming(overrides: Partial<IncomingMessage> & Pick<IncomingMessage, 'contentType' | 'body'>): IncomingMessage {
  return {
    from: 'sip:alice@example.com',
    to: 'sip:bob@example.com',
    callId: 'c1@example.com',
    cseq: 7,
    fromTag: 't',
    transport: 'udp',
    remote: { address: '127.0.0.1', port: 5062 },
    receivedAt: new Date(Date.UTC(2026, 10, 26, 0, 0, 0, 123)),
    request: {} as SipRequest,
    ...overrides,
  };
}

const CPIM = [
  'From: <im:alice@example.com>',
  'To: <im:bob@example.com>',
  'DateTime: 2026-11-26T00:00:00Z',
  'NS: imdn <urn:ietf:params:imdn>',
  'imdn.Message-ID: 34jk324j',
  '',
  'Content-Type: text/plain;charset=utf-8',
  '',
  'Hi "there"\\ 👋',
].join('\r\n');

const MULTIPART = [
  '--b',
  'Content-Type: text/plain',
  '',
  'see attached',
  '--b',
  'Content-Type: application/octet-stream',
  '',
  '\u0001\u0002',
  '--b--',
  '',
].join('\r\n');

const CASES: ReadonlyArray<[string, IncomingMessage]> = [
  ['text/plain', incoming({ contentType: 'text/plain;charset=UTF-8', body: Buffer.from('Hello Bob, the quick brown fox.') })],
  ['display name, date, expiry', incoming({
    contentType: 'text/plain',
    body: Buffer.from('line 1\nline "2"\t\\ \u2028 \u0000 é'),
    fromDisplayName: 'Alice "A" \u00e5',
    date: new Date(Date.UTC(2024, 4, 1, 12)),
    expiresAt: new Date(Date.UTC(2024, 4, 1, 13)),
    transport: 'tls',
    remote: { address: '2001:db8::1', port: 5061 },
  })],
  ['latin1 text', incoming({ contentType: 'text/plain; charset=ISO-8859-1', body: Buffer.from('caf\u00e9', 'latin1') })],
  ['CPIM', incoming({ contentType: 'message/cpim', body: Buffer.from(CPIM) })],
  ['multipart with an attachment', incoming({ contentType: 'multipart/mixed;boundary=b', body: Buffer.from(MULTIPART) })],
  ['empty body', incoming({ contentType: '', body: Buffer.alloc(0) })],
  ['a body ending in CRLF, escapes and surrogates in the Call-ID', incoming({
    contentType: 'text/plain;charset=UTF-8',
    body: Buffer.from('Hello Bob, number 7. End.\r\n'),
    callId: 'a"b\\c\u0001\u001f\ud83d\ude00\ud800x\udc00',
  })],
];

describe('messageEventLine', () => {
  it.each(CASES)('%s: JSON.stringify of the event, and a line end', (_name, message) => {
    const reading = readMessageBody(message.contentType || undefined, message.body);
    if (reading.kind !== 'text') throw new Error(`not read as text: ${reading.reason}`);
    for (const security of ['plaintext', 'signed'] as const) {
      const line = messageEventLine(message, reading, security);
      expect(line).toBe(`${JSON.stringify(messageEvent(message, reading, security))}\n`);
      expect(JSON.parse(line)).toEqual(messageEvent(message, reading, security));
    }
    const opened = { contentType: 'application/octet-stream', body: Buffer.from([0, 1, 2, 250]) };
    expect(messageEventLine(message, reading, 'encrypted', opened)).toBe(`${JSON.stringify(messageEvent(message, reading, 'encrypted', opened))}\n`);
  });

  it('holds for any text and addresses', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), fc.option(fc.string(), { nil: undefined }), fc.nat(), (text, callId, displayName, cseq) => {
        const message = incoming({
          contentType: 'text/plain;charset=utf-8',
          body: Buffer.from(text, 'utf8'),
          callId,
          cseq,
          ...(displayName === undefined ? {} : { fromDisplayName: displayName }),
        });
        const reading = readMessageBody(message.contentType, message.body);
        if (reading.kind !== 'text') return;
        expect(messageEventLine(message, reading)).toBe(`${JSON.stringify(messageEvent(message, reading))}\n`);
      }),
      { numRuns: 300 },
    );
  });
});

describe('messageEventLine over a sequence of messages', () => {
  // The line reuses the parts made of values that repeat (sender, AoR, type, source, times):
  // every message of a sequence must still get its own values, whatever it shares with the last.
  it('gives each message its own values, whatever the message before it carried', () => {
    const from = fc.constantFrom('sip:alice@example.com', 'sip:carol@example.com', 'sip:"q"@example.com');
    const to = fc.constantFrom('sip:bob@example.com', 'sip:dave@example.com');
    const displayName = fc.option(fc.constantFrom('Alice', 'Carol "C"', ''), { nil: undefined });
    const contentType = fc.constantFrom('text/plain;charset=UTF-8', 'text/plain', 'message/cpim', 'text/plain; charset=ISO-8859-1');
    const address = fc.constantFrom('127.0.0.1', '2001:db8::1');
    const port = fc.constantFrom(5060, 5062);
    const transport = fc.constantFrom('udp' as const, 'tcp' as const, 'tls' as const);
    const security = fc.constantFrom('plaintext' as const, 'signed' as const, 'encrypted-signed' as const);
    const time = fc.option(fc.constantFrom(0, 1, 1000, 1_700_000_000_123), { nil: undefined });
    const one = fc.record({ from, to, displayName, contentType, address, port, transport, security, date: time, receivedAt: fc.constantFrom(5, 6, 1_700_000_000_999), text: fc.constantFrom('hi', 'hi "there"\n', '') });
    fc.assert(
      fc.property(fc.array(one, { minLength: 1, maxLength: 12 }), (sequence) => {
        for (const m of sequence) {
          const body = m.contentType === 'message/cpim' ? Buffer.from(CPIM) : Buffer.from(m.text, m.contentType.includes('8859') ? 'latin1' : 'utf8');
          const message = incoming({
            from: m.from,
            to: m.to,
            contentType: m.contentType,
            body,
            transport: m.transport,
            remote: { address: m.address, port: m.port },
            receivedAt: new Date(m.receivedAt),
            ...(m.displayName === undefined ? {} : { fromDisplayName: m.displayName }),
            ...(m.date === undefined ? {} : { date: new Date(m.date), expiresAt: new Date(m.date + 60_000) }),
          });
          const reading = readMessageBody(message.contentType, message.body);
          if (reading.kind !== 'text') throw new Error(`not read as text: ${reading.reason}`);
          expect(messageEventLine(message, reading, m.security)).toBe(`${JSON.stringify(messageEvent(message, reading, m.security))}\n`);
        }
      }),
      { numRuns: 500 },
    );
  });
});
