/**
 * IntegerMap (main/sip/ua/integer-map.ts): open addressing with linear probing and
 * backward-shift deletion, checked against a plain Map over random operation sequences,
 * including hashes crowded into a few home slots (long runs, wrap-around at the table's end)
 * and growth and shrinking across several sizes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IntegerMap } from '../../main/sip/ua/integer-map.js';

type Operation = { kind: 'set'; hash: number; value: number } | { kind: 'delete'; hash: number } | { kind: 'get'; hash: number };

/** Hashes from a small pool of home slots (all ≡ something mod 1024, near the table's end) so runs collide and wrap. */
const crowdedHash = fc.tuple(fc.integer({ min: 1018, max: 1023 }), fc.integer({ min: 0, max: 40 })).map(([home, high]) => home + high * 1024);
const anyHash = fc.integer({ min: 0, max: 2 ** 30 - 1 });

function operations(hash: fc.Arbitrary<number>): fc.Arbitrary<Operation[]> {
  const operation: fc.Arbitrary<Operation> = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), hash, value: fc.integer({ min: 0, max: 2 ** 31 - 1 }) }),
    fc.record({ kind: fc.constant('delete' as const), hash }),
    fc.record({ kind: fc.constant('get' as const), hash }),
  );
  return fc.array(operation, { maxLength: 400 });
}

function runAgainstMap(ops: readonly Operation[]): void {
  const map = new IntegerMap();
  const model = new Map<number, number>();
  for (const op of ops) {
    if (op.kind === 'set') {
      map.set(op.hash, op.value);
      model.set(op.hash, op.value);
    } else if (op.kind === 'delete') {
      map.delete(op.hash);
      model.delete(op.hash);
    } else {
      expect(map.get(op.hash)).toBe(model.get(op.hash) ?? -1);
    }
    expect(map.size).toBe(model.size);
  }
  for (const [hash, value] of model) expect(map.get(hash)).toBe(value);
}

describe('IntegerMap', () => {
  it('agrees with a Map on random hashes', () => {
    fc.assert(fc.property(operations(anyHash), runAgainstMap), { numRuns: 300 });
  });

  it('agrees with a Map when hashes crowd a few home slots and runs wrap past the end', () => {
    fc.assert(fc.property(operations(crowdedHash), runAgainstMap), { numRuns: 300 });
  });

  it('keeps a wrapped-around entry behind its home when the slot before that home is freed', () => {
    // Homes 1019…1023 of the first table (1,024 slots) at their homes; 1020 + 1024 has home 1020
    // and wraps to slot 0. Freeing 1019 must leave it at slot 0: moving it to 1019, before its
    // home, would lose it.
    const map = new IntegerMap();
    for (const hash of [1019, 1020, 1021, 1022, 1023, 1020 + 1024]) map.set(hash, hash);
    map.delete(1019);
    for (const hash of [1020, 1021, 1022, 1023, 1020 + 1024]) expect(map.get(hash)).toBe(hash);
    expect(map.get(1019)).toBe(-1);
  });

  it('grows past and shrinks back below its first size, keeping every entry', () => {
    const map = new IntegerMap();
    const model = new Map<number, number>();
    let seed = 12345;
    const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 2);
    for (let i = 0; i < 20_000; i++) {
      const hash = next() & 0x3fffffff;
      map.set(hash, i);
      model.set(hash, i);
    }
    const hashes = [...model.keys()];
    for (const [i, hash] of hashes.entries()) {
      if (i % 10 === 0) continue;
      map.delete(hash);
      model.delete(hash);
    }
    expect(map.size).toBe(model.size);
    for (const hash of hashes) expect(map.get(hash)).toBe(model.get(hash) ?? -1);
  });

  it('clear empties it', () => {
    const map = new IntegerMap();
    map.set(5, 1);
    map.clear();
    expect(map.get(5)).toBe(-1);
    expect(map.size).toBe(0);
  });
});
