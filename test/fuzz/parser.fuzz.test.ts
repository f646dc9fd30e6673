/**
 * A bounded mutation fuzz of the parser and the header views every UAS reads, seeded with the
 * RFC 4475/5118 torture corpus: bytes flipped, inserted, deleted and spliced between messages.
 * Whatever comes in, the only exception allowed out is ParseError; the run is deterministic
 * (fixed seed) so a failure replays.
 */
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { readMessageBody } from '../../main/im/incoming-body.js';
import { parseMessage } from '../../main/sip/message/parse.js';
import { ParseError } from '../../main/sip/message/parse-error.js';
import { checkCSeqMethod, validateEssentialHeaders } from '../../main/sip/message/sip-message.js';
import { judgeRequest, judgeResponse } from '../../main/sip/ua/request-policy.js';

const corpus = ['rfc4475', 'rfc5118'].flatMap((dir) => {
  const url = new URL(`../fixtures/${dir}/`, import.meta.url);
  return readdirSync(url)
    .filter((name) => name.endsWith('.dat'))
    .map((name) => readFileSync(new URL(name, url)));
});

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), other: fc.nat(), from: fc.nat() }),
  fc.record({ kind: fc.constant('token' as const), at: fc.nat(), token: fc.constantFrom(':', ';', ',', '"', '<', '>', '\\', '\r\n', '\r\n ', '\n', '%', '%00', '[', ']', '=', ' ', '\t', 'z9hG4bK', 'SIP/2.0', '\0') }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(seed: Buffer, edits: Mutation[]): Buffer {
  let bytes = Buffer.from(seed);
  for (const edit of edits) {
    const at = bytes.length === 0 ? 0 : edit.at % bytes.length;
    switch (edit.kind) {
      case 'flip':
        if (bytes.length > 0) bytes[at] = edit.value;
        break;
      case 'insert':
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(edit.bytes), bytes.subarray(at)]);
        break;
      case 'delete':
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + edit.length)]);
        break;
      case 'splice': {
        const other = corpus[edit.other % corpus.length] as Buffer;
        bytes = Buffer.concat([bytes.subarray(0, at), other.subarray(edit.from % Math.max(other.length, 1))]);
        break;
      }
      case 'token':
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(edit.token, 'latin1'), bytes.subarray(at)]);
        break;
    }
  }
  return bytes;
}

/** Everything a UAS does with bytes before the application sees them. */
function process(bytes: Buffer): void {
  try {
    const message = parseMessage(bytes);
    if (message.kind === 'response') {
      judgeResponse(message);
      return;
    }
    judgeRequest(message);
    validateEssentialHeaders(message);
    checkCSeqMethod(message);
    void message.requestUri;
    const reading = readMessageBody(message.headers.get('content-type'), message.body);
    if (reading.kind === 'text') void reading.text;
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
  }
}

describe('parser fuzz (bounded, seeded)', () => {
  it('mutated torture messages only ever give a message or a ParseError', () => {
    fc.assert(
      fc.property(fc.nat(corpus.length - 1), fc.array(mutation, { minLength: 1, maxLength: 6 }), (index, edits) => {
        process(mutate(corpus[index] as Buffer, edits));
      }),
      { numRuns: 100_000, seed: 4475 },
    );
  });

  it('truncations at every offset of every torture message', () => {
    for (const seed of corpus) for (let cut = 0; cut <= seed.length; cut++) process(seed.subarray(0, cut));
  });
});
