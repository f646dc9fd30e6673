/**
 * `readMessageBody` (main/im/incoming-body.ts) remembers the last top-level Content-Type it
 * parsed (consecutive MESSAGEs under load share it). Whatever came before, each body must be
 * read exactly as it is read on its own.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readMessageBody } from '../../main/im/incoming-body.js';

const MULTIPART = ['--b', 'Content-Type: text/plain', '', 'part one', '--b', 'Content-Type: application/octet-stream', '', 'xx', '--b--', ''].join('\r\n');
const CPIM = ['From: <im:alice@example.com>', 'To: <im:bob@example.com>', '', 'Content-Type: text/plain', '', 'in cpim'].join('\r\n');

const BODIES: ReadonlyArray<readonly [string | undefined, Buffer]> = [
  ['text/plain;charset=UTF-8', Buffer.from('héllo')],
  ['text/plain; charset=ISO-8859-1', Buffer.from('caf\u00e9', 'latin1')],
  ['text/plain;charset=koi8-r', Buffer.from('x')],
  ['text/plain', Buffer.from('plain')],
  ['TEXT/PLAIN', Buffer.from('upper')],
  ['text/html', Buffer.from('<p>')],
  ['multipart/mixed;boundary=b', Buffer.from(MULTIPART)],
  ['multipart/alternative;boundary=b', Buffer.from(MULTIPART)],
  ['multipart/mixed;boundary=zz', Buffer.from(MULTIPART)],
  ['message/cpim', Buffer.from(CPIM)],
  ['text/plain;;', Buffer.from('bad type')],
  ['', Buffer.from('empty type')],
  [undefined, Buffer.from('no type')],
  ['text/plain', Buffer.alloc(0)],
];

/** A unique, valid type read in between, so that the next read parses its type afresh. */
let fresh = 0;
function readAlone(contentType: string | undefined, body: Buffer): ReturnType<typeof readMessageBody> {
  readMessageBody(`application/x-fresh-${fresh++}`, Buffer.from('x'));
  return readMessageBody(contentType, body);
}

describe('readMessageBody over a sequence of bodies', () => {
  it('reads each body as it reads it alone, whatever was read before', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...BODIES), { minLength: 1, maxLength: 10 }), (sequence) => {
        const inSequence = sequence.map(([contentType, body]) => readMessageBody(contentType, body));
        const alone = sequence.map(([contentType, body]) => readAlone(contentType, body));
        expect(inSequence).toEqual(alone);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects a malformed type every time, not only the first', () => {
    expect(readMessageBody('text/plain;;', Buffer.from('a'))).toMatchObject({ kind: 'rejected', status: 400 });
    expect(readMessageBody('text/plain;;', Buffer.from('a'))).toMatchObject({ kind: 'rejected', status: 400 });
  });
});

describe('readMessageBody of text/plain', () => {
  // The top-level text/plain answer is taken from the remembered type (no readText call): it
  // must be what readText gives, for every charset spelling, first read or not.
  const PLAIN: ReadonlyArray<readonly [string, Buffer, string]> = [
    ['text/plain;charset=UTF-8', Buffer.from('héllo'), 'héllo'],
    ['text/plain;charset="utf8"', Buffer.from('ünï'), 'ünï'],
    ['Text/Plain; Charset=us-ascii', Buffer.from('ascii'), 'ascii'],
    ['text/plain; charset=ISO-8859-1', Buffer.from('caf\u00e9', 'latin1'), 'caf\u00e9'],
    ['text/plain;charset=Latin1', Buffer.from('\u00ff', 'latin1'), '\u00ff'],
    ['text/plain', Buffer.from('€'), '€'],
  ];
  it.each(PLAIN)('%s', (contentType, body, text) => {
    for (let i = 0; i < 2; i++) expect(readMessageBody(contentType, body)).toEqual({ kind: 'text', text, textType: 'text/plain', attachments: 0 });
  });

  it('refuses a charset it cannot decode, every time', () => {
    for (let i = 0; i < 2; i++) {
      expect(readMessageBody('text/plain;charset=koi8-r', Buffer.from('x'))).toEqual({ kind: 'rejected', status: 415, reason: 'Unsupported Media Type (Unsupported charset koi8-r)' });
    }
  });
});
