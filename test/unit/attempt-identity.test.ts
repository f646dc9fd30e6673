/**
 * The identity of each attempt of a stored message (main/im/attempt-identity.ts): same Call-ID
 * and From tag, a CSeq that grows with the attempt number (a retry is a new request, RFC 3261
 * §8.1.1.5, never a merged one, §8.2.2.2), and the receiver's duplicate rule by
 * imdn.Message-ID that makes this safe.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { attemptCSeq, CSEQ_STEP, isMergedRetry, nextAttemptIdentity } from '../../main/im/attempt-identity.js';
import { retryIdentity } from '../../main/cli/send-command.js';
import { openStore, type Store } from '../../main/store/index.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';

const cleanups = cleanupsAfterEach();

function tempStore(): Store {
  const store = openStore(tempDir(cleanups, 'sipnote-identity-'), { synchronous: 'normal' });
  cleanups.push(() => store.close());
  return store;
}

describe('attemptCSeq', () => {
  it('is 1 for the first attempt and 1 + 10·(n − 1) after', () => {
    expect([1, 2, 3, 10].map(attemptCSeq)).toEqual([1, 11, 21, 91]);
    expect(CSEQ_STEP).toBe(10);
  });

  it('grows strictly, with room for the UA’s auth and failover retries inside one attempt', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), (attempt) => {
        const here = attemptCSeq(attempt);
        const next = attemptCSeq(attempt + 1);
        expect(next - here).toBe(CSEQ_STEP);
        expect(here).toBeLessThan(2 ** 31);
      }),
    );
  });

  it('refuses what is not an attempt number', () => {
    expect(() => attemptCSeq(0)).toThrow(RangeError);
    expect(() => attemptCSeq(1.5)).toThrow(RangeError);
  });
});

describe('nextAttemptIdentity', () => {
  const fresh = (): { callId: string; fromTag: string } => ({ callId: 'fresh@example.test', fromTag: 'fresh' });

  it('picks a fresh Call-ID and From tag for the first attempt', () => {
    expect(nextAttemptIdentity({ callId: null, fromTag: null, attempts: 0, security: 'encrypted-signed' }, fresh)).toEqual({ callId: 'fresh@example.test', fromTag: 'fresh', cseq: 1 });
  });

  it('keeps them for every later attempt, with the CSeq of the attempt number (also after a crash, from the count alone)', () => {
    const stored = { callId: 'first@example.test', fromTag: 'first', attempts: 1, security: 'encrypted-signed' };
    expect(nextAttemptIdentity(stored, fresh)).toEqual({ callId: 'first@example.test', fromTag: 'first', cseq: 11 });
    expect(nextAttemptIdentity({ ...stored, attempts: 4 }, fresh)).toEqual({ callId: 'first@example.test', fromTag: 'first', cseq: 41 });
  });

  it('keeps CSeq 1 for plaintext, which has no Message-ID: its SIP identity is all a receiver can know it by', () => {
    const stored = { callId: 'first@example.test', fromTag: 'first', attempts: 3, security: 'plaintext' };
    expect(nextAttemptIdentity(stored, fresh)).toEqual({ callId: 'first@example.test', fromTag: 'first', cseq: 1 });
    // …and a 482 to such a retry means the peer still holds the earlier attempt.
    expect(isMergedRetry(482, 2)).toBe(true);
    expect(isMergedRetry(482, 1)).toBe(false);
    expect(isMergedRetry(503, 2)).toBe(false);
  });

  it('is what the CLI uses (send, outbox --flush)', () => {
    const first = retryIdentity({ callId: null, fromTag: null, attempts: 0, security: 'encrypted-signed' }, 'sip:alice@example.test');
    expect(first.cseq).toBe(1);
    expect(first.callId).toMatch(/@example\.test$/);
    expect(retryIdentity({ callId: first.callId, fromTag: first.fromTag, attempts: 2, security: 'encrypted-signed' }, 'sip:alice@example.test')).toEqual({ ...first, cseq: 21 });
    expect(retryIdentity({ callId: first.callId, fromTag: first.fromTag, attempts: 2, security: 'plaintext' }, 'sip:alice@example.test')).toEqual({ ...first, cseq: 1 });
  });
});

describe('the store’s side of the rule', () => {
  it('keeps an outgoing message’s imdn.Message-ID, and gives one to a row queued without it', () => {
    const store = tempStore();
    const given = store.messages.enqueueOutgoing({ account: 'sip:alice@example.test', peer: 'sip:bob@example.test', body: 'a', contentType: 'text/plain', security: 'encrypted-signed', imdnMessageId: 'kept-id' });
    expect(store.messages.ensureImdnMessageId(given.id, 'other')).toBe('kept-id');
    const legacy = store.messages.enqueueOutgoing({ account: 'sip:alice@example.test', peer: 'sip:bob@example.test', body: 'b', contentType: 'text/plain', security: 'encrypted-signed' });
    expect(legacy.imdnMessageId).toBeNull();
    expect(store.messages.ensureImdnMessageId(legacy.id, 'now-id')).toBe('now-id');
    expect(store.messages.ensureImdnMessageId(legacy.id, 'again')).toBe('now-id');
    expect(store.messages.get(legacy.id)!.imdnMessageId).toBe('now-id');
  });

  it('takes a retry with a higher CSeq and the same Message-ID from the same peer as a duplicate; another peer’s is not', () => {
    const store = tempStore();
    const base = { account: 'sip:bob@example.test', peer: 'sip:alice@example.test', body: 'hello', contentType: 'text/plain', security: 'encrypted-signed' as const, callId: 'c@example.test', fromTag: 't', imdnMessageId: 'm-1', receivedAt: 1 };
    const first = store.messages.recordIncoming({ ...base, cseq: 1 });
    const retry = store.messages.recordIncoming({ ...base, cseq: 11 });
    expect(first.inserted).toBe(true);
    expect(retry).toEqual({ inserted: false, message: first.message });
    const carol = store.messages.recordIncoming({ ...base, peer: 'sip:carol@example.test', callId: 'd@example.test', cseq: 1 });
    expect(carol.inserted).toBe(true);
    expect(store.messages.history({ account: 'sip:bob@example.test' })).toHaveLength(2);
  });
});
