/**
 * The keyed hash and the index behind the server-transaction table (main/sip/ua/half-siphash.ts,
 * hashed-string-index.ts): HalfSipHash against the reference vectors, and the index against a
 * plain Map, including keys whose hashes collide.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { halfSipHashString, type HalfSipHashKey } from '../../main/sip/ua/half-siphash.js';
import { HashedStringIndex } from '../../main/sip/ua/hashed-string-index.js';

/** The reference implementation's key 00 01 … 07. */
const REFERENCE_KEY: HalfSipHashKey = { k0: 0x03020100, k1: 0x07060504 };

/**
 * HalfSipHash-2-4, 32-bit output, of the bytes 00 01 … (n-1) under REFERENCE_KEY, for even n
 * (a string's UTF-16LE bytes are always an even number): vectors_hsip32[0, 2, 4, … 26] of
 * github.com/veorq/SipHash, read little-endian.
 */
const REFERENCE_VECTORS: ReadonlyArray<readonly [number, number]> = [
  [0, 0x5b9f35a9],
  [2, 0x03a662fa],
  [4, 0x89466e2a],
  [6, 0x23fc6358],
  [8, 0x8f84b8d0],
  [10, 0x3479b094],
  [12, 0x2f87f057],
  [14, 0x7cf8ffd6],
  [16, 0x84acb5d9],
  [18, 0x9b8d5b46],
  [20, 0x45104de3],
  [22, 0xfe67f370],
  [24, 0x630c4027],
  [26, 0x5f7b564f],
];

/** The string whose UTF-16LE bytes are 00 01 … (n-1). */
function countingString(byteLength: number): string {
  let text = '';
  for (let i = 0; i < byteLength; i += 2) text += String.fromCharCode(i | ((i + 1) << 8));
  return text;
}

interface Item {
  readonly key: string;
}

/** Two different keys with the same hash under `key` (a birthday search: ~46,000 tries for 30 bits). */
function collidingPair(index: HashedStringIndex<Item>, prefix: string): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const key = `${prefix}${i}`;
    const hash = index.hash(key);
    const other = seen.get(hash);
    if (other !== undefined) return [other, key];
    seen.set(hash, key);
  }
}

describe('halfSipHashString', () => {
  it.each(REFERENCE_VECTORS)('HalfSipHash-2-4 of %i counting bytes is the reference vector', (length, expected) => {
    expect(halfSipHashString(countingString(length), REFERENCE_KEY, 2, 4)).toBe(expected);
  });

  it('depends on the key, and on every code unit', () => {
    const text = 'z9hG4bK-1234\n127.0.0.1:5060\nMESSAGE';
    const other = { k0: REFERENCE_KEY.k0, k1: REFERENCE_KEY.k1 ^ 1 };
    expect(halfSipHashString(text, REFERENCE_KEY)).not.toBe(halfSipHashString(text, other));
    for (let i = 0; i < text.length; i++) {
      const changed = text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ 0x100) + text.slice(i + 1);
      expect(halfSipHashString(changed, REFERENCE_KEY)).not.toBe(halfSipHashString(text, REFERENCE_KEY));
    }
    expect(halfSipHashString('a', REFERENCE_KEY)).not.toBe(halfSipHashString('a\u0000', REFERENCE_KEY)); // the length counts
  });
});

describe('HashedStringIndex', () => {
  const FIXED_KEY: HalfSipHashKey = { k0: 0x2468ace0, k1: 0x13579bdf };

  it('finds, replaces and removes items by key, with hashes that collide', () => {
    const index = new HashedStringIndex<Item>((item) => item.key, FIXED_KEY);
    const [a, b] = collidingPair(index, 'branch-');
    expect(index.hash(a)).toBe(index.hash(b));
    const itemA = { key: a };
    const itemB = { key: b };
    const hash = index.hash(a);
    expect(index.get(hash, a)).toBeUndefined();
    index.add(hash, itemA); // after the get: reuses its lookup
    expect(index.get(hash, b)).toBeUndefined(); // same hash, other key
    index.add(hash, itemB);
    expect(index.get(hash, a)).toBe(itemA);
    expect(index.get(hash, b)).toBe(itemB);
    expect(index.size).toBe(2);
    index.delete(hash, itemA);
    expect(index.get(hash, a)).toBeUndefined();
    expect(index.get(hash, b)).toBe(itemB);
    index.delete(hash, itemA); // not indexed any more: nothing
    expect(index.size).toBe(1);
    index.delete(hash, itemB);
    expect(index.size).toBe(0);
    expect(index.get(hash, b)).toBeUndefined();
  });

  it('behaves as a Map for any sequence of adds and deletes (model test, colliding keys included)', () => {
    const probe = new HashedStringIndex<Item>((item) => item.key, FIXED_KEY);
    const pool = [...collidingPair(probe, 'x'), ...collidingPair(probe, 'y'), 'a', 'b', 'c', ''];
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('add', 'delete', 'get'), fc.constantFrom(...pool)), { maxLength: 60 }), (operations) => {
        const index = new HashedStringIndex<Item>((item) => item.key, FIXED_KEY);
        const model = new Map<string, Item>();
        for (const [operation, key] of operations) {
          const hash = index.hash(key);
          const found = index.get(hash, key);
          expect(found).toBe(model.get(key));
          if (operation === 'add' && found === undefined) {
            const item = { key };
            index.add(hash, item);
            model.set(key, item);
          } else if (operation === 'delete' && found !== undefined) {
            index.delete(hash, found);
            model.delete(key);
          }
          expect(index.size).toBe(model.size);
        }
        for (const [key, item] of model) expect(index.get(index.hash(key), key)).toBe(item);
      }),
    );
  });

  it('chooses a random hash key per index unless given one', () => {
    const first = new HashedStringIndex<Item>((item) => item.key);
    const second = new HashedStringIndex<Item>((item) => item.key);
    const keys = ['one', 'two', 'three', 'four'];
    expect(keys.map((key) => first.hash(key))).not.toEqual(keys.map((key) => second.hash(key)));
    for (const key of keys) expect(first.hash(key)).toBeLessThanOrEqual(0x3fffffff);
  });
});
