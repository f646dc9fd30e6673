/**
 * CompletedTransactions (main/sip/ua/completed-transactions.ts): the Completed state of
 * RFC 3261 §17.2.2 kept as records in segments. Checked against a plain list of records over
 * random sequences, with hashes squeezed into three values so that chains of records sharing
 * a hash are the rule, keys and identities beyond ASCII (stored as UTF-16LE, including lone
 * surrogates UTF-8 would merge), early termination (§17.2.4), and enough records to fill,
 * drop and reuse many segments.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CompletedTransactions } from '../../main/sip/ua/completed-transactions.js';

const J = 32_000;
const KEYS = ['k1', 'k2', 'k3', 'long-key-number-four', 'ké', '\ud800x', '\ud801x', '鍵'];
const IDENTITIES = ['id1', 'id2', 'idé', '\ud800', '\udbff'];
/** Three hash values for everything: chains everywhere. */
const squeezedHash = (text: string): number => (text.length + text.charCodeAt(0)) % 3;

interface ModelRecord {
  readonly key: string;
  readonly identity: string | undefined;
  readonly response: string;
  readonly address: string;
  readonly port: number;
  readonly expiresAt: number;
  terminated: boolean;
}

type Step =
  | { kind: 'add'; key: number; identity: number; owns: boolean; response: string; port: number }
  | { kind: 'terminate'; key: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'ask'; key: number; identity: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('add' as const), key: fc.nat(KEYS.length - 1), identity: fc.nat(IDENTITIES.length - 1), owns: fc.boolean(), response: fc.string({ maxLength: 40 }), port: fc.integer({ min: 1, max: 65535 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('terminate' as const), key: fc.nat(KEYS.length - 1) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: J / 2 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('ask' as const), key: fc.nat(KEYS.length - 1), identity: fc.nat(IDENTITIES.length - 1) }) },
);

describe('CompletedTransactions', () => {
  it('behaves like a list of Completed transactions, with every record sharing one of three hashes', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 120 }), (steps) => {
        const table = new CompletedTransactions();
        let model: ModelRecord[] = [];
        let now = 0;
        const live = (): ModelRecord[] => model.filter((r) => !r.terminated);
        for (const s of steps) {
          if (s.kind === 'add') {
            const key = KEYS[s.key]!;
            if (live().some((r) => r.key === key)) continue; // the caller files a key only when no live transaction has it
            const identity = s.owns ? IDENTITIES[s.identity]! : undefined;
            table.add(key, squeezedHash(key), identity, identity === undefined ? 0 : squeezedHash(identity), { transport: 'udp', address: '127.0.0.1', port: s.port }, Buffer.from(s.response), now + J);
            model.push({ key, identity, response: s.response, address: '127.0.0.1', port: s.port, expiresAt: now + J, terminated: false });
          } else if (s.kind === 'terminate') {
            const key = KEYS[s.key]!;
            table.terminate(key, squeezedHash(key));
            for (const r of model) if (r.key === key) r.terminated = true;
          } else if (s.kind === 'advance') {
            now += s.ms;
            table.expire(now);
            model = model.filter((r) => r.expiresAt > now);
          } else {
            const key = KEYS[s.key]!;
            const identity = IDENTITIES[s.identity]!;
            const match = live().find((r) => r.key === key);
            expect(table.has(key, squeezedHash(key))).toBe(match !== undefined);
            const resend = table.resend(key, squeezedHash(key));
            if (match === undefined) {
              expect(resend).toBeUndefined();
            } else {
              expect(resend?.response.toString()).toBe(Buffer.from(match.response).toString());
              expect(resend?.address).toBe(match.address);
              expect(resend?.port).toBe(match.port);
            }
            expect(table.holdsIdentity(identity, squeezedHash(identity))).toBe(live().some((r) => r.identity === identity));
          }
          expect(table.size).toBe(live().length);
          const oldest = model[0];
          expect(table.nextExpiry).toBe(oldest?.expiresAt);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('still finds a newer record when an older one with the same hash expires', () => {
    const table = new CompletedTransactions();
    const destination = { transport: 'udp', address: '127.0.0.1', port: 5060 } as const;
    table.add('older', 1, 'id-a', 9, destination, Buffer.from('A'), 100);
    table.add('newer', 1, 'id-b', 9, destination, Buffer.from('B'), 200);
    table.expire(150);
    expect(table.has('older', 1)).toBe(false);
    expect(table.resend('newer', 1)?.response.toString()).toBe('B');
    expect(table.holdsIdentity('id-a', 9)).toBe(false);
    expect(table.holdsIdentity('id-b', 9)).toBe(true);
  });

  it('tells apart keys that UTF-8 would store alike (lone surrogates)', () => {
    const table = new CompletedTransactions();
    table.add('\ud800', 7, undefined, 0, { transport: 'udp', address: '::1', port: 5060 }, Buffer.from('a'), 100);
    expect(table.has('\ud800', 7)).toBe(true);
    expect(table.has('\ud801', 7)).toBe(false);
    expect(table.has('\ufffd', 7)).toBe(false);
    expect(table.resend('\ud800', 7)?.address).toBe('::1');
  });

  it('fills, expires and reuses many segments, and keeps a response of any size', () => {
    const table = new CompletedTransactions();
    const big = Buffer.alloc(100_000, 0x41);
    const count = 5000;
    for (let i = 0; i < count; i++) {
      const response = i === 2500 ? big : Buffer.from(`response ${i}`);
      table.add(`key ${i}`, (i * 2654435761) & 0x3fffffff, `id ${i}`, (i * 40503) & 0x3fffffff, { transport: 'udp', address: '10.0.0.1', port: 5000 + (i % 100) }, response, i);
    }
    expect(table.size).toBe(count);
    expect(table.resend('key 2500', (2500 * 2654435761) & 0x3fffffff)?.response.equals(big)).toBe(true);
    table.expire(2999); // records 0 … 2999 expire
    expect(table.size).toBe(2000);
    expect(table.has('key 2999', (2999 * 2654435761) & 0x3fffffff)).toBe(false);
    expect(table.resend('key 3000', (3000 * 2654435761) & 0x3fffffff)?.response.toString()).toBe('response 3000');
    expect(table.holdsIdentity('id 4999', (4999 * 40503) & 0x3fffffff)).toBe(true);
    // Refill past the expired ones: the spare segments are reused and the old records stay gone.
    for (let i = count; i < count + 3000; i++) {
      table.add(`key ${i}`, (i * 2654435761) & 0x3fffffff, undefined, 0, { transport: 'udp', address: '10.0.0.1', port: 5060 }, Buffer.from(`response ${i}`), i);
    }
    for (const i of [3000, 4999, 5000, 7999]) {
      expect(table.resend(`key ${i}`, (i * 2654435761) & 0x3fffffff)?.response.toString()).toBe(`response ${i}`);
    }
    expect(table.has('key 100', (100 * 2654435761) & 0x3fffffff)).toBe(false);
    table.expire(Number.MAX_SAFE_INTEGER);
    expect(table.size).toBe(0);
    expect(table.nextExpiry).toBeUndefined();
  });

  it('ends the oldest record before its Timer J when the table is full, and keeps serving the rest', () => {
    const table = new CompletedTransactions(3);
    const destination = { transport: 'udp', address: '127.0.0.1', port: 5060 } as const;
    for (const [i, key] of ['a', 'b', 'c', 'd', 'e'].entries()) table.add(key, i, `id-${key}`, 10 + i, destination, Buffer.from(key.toUpperCase()), 1000 + i);
    expect(table.size).toBe(3);
    expect(table.has('a', 0)).toBe(false);
    expect(table.has('b', 1)).toBe(false);
    expect(table.holdsIdentity('id-b', 11)).toBe(false);
    expect(table.resend('c', 2)?.response.toString()).toBe('C');
    expect(table.resend('e', 4)?.response.toString()).toBe('E');
    expect(table.nextExpiry).toBe(1002);
    table.expire(1004);
    expect(table.size).toBe(0);
  });

  it('clear forgets everything', () => {
    const table = new CompletedTransactions();
    table.add('k', 1, 'id', 2, { transport: 'udp', address: '127.0.0.1', port: 1 }, Buffer.from('r'), 10);
    table.clear();
    expect(table.size).toBe(0);
    expect(table.has('k', 1)).toBe(false);
    expect(table.holdsIdentity('id', 2)).toBe(false);
    table.add('k', 1, 'id', 2, { transport: 'udp', address: '127.0.0.1', port: 1 }, Buffer.from('again'), 20);
    expect(table.resend('k', 1)?.response.toString()).toBe('again');
  });
});
