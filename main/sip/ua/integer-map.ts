/**
 * A map from 30-bit hashes to small non-negative integers, kept in one Int32Array with open
 * addressing and linear probing: the index of CompletedTransactions, which holds over a million
 * entries on a busy UDP listener (completed-transactions.ts).
 *
 * A `Map<number, number>` of that size was 7 % of the listener's time (issue #5): V8's ordered
 * hash table reaches an entry through a bucket array and then the entry itself, two cache
 * misses or more per operation, and deleting leaves holes it rehashes away later. Here a slot
 * is the hash and its value side by side, eight slots to a cache line; the table is kept at
 * most half full, so an operation usually touches one line. Deleting shifts the following
 * entries back into place (Knuth's algorithm R), so there are no tombstones and no rehash.
 *
 * Hashes must be spread evenly (the caller's are HalfSipHash under a secret key, so a sender
 * cannot pile entries into one run of slots).
 */

/** Slots of a new or shrunken table (a power of two). */
const MIN_CAPACITY = 1024;

/** A hash field holding this is an empty slot; hashes are 0 … 2^30 - 1. */
const EMPTY = -1;

export class IntegerMap {
  /** [hash, value] pairs; `capacity` slots. */
  #slots: Int32Array;
  #mask: number;
  #size = 0;

  constructor() {
    this.#slots = emptySlots(MIN_CAPACITY);
    this.#mask = MIN_CAPACITY - 1;
  }

  get size(): number {
    return this.#size;
  }

  /** The value stored for `hash`, or -1. */
  get(hash: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = slots[slot * 2]!;
      if (stored === hash) return slots[slot * 2 + 1]!;
      if (stored === EMPTY) return -1;
    }
  }

  /** Stores `value` (0 … 2^31 - 1) for `hash` (0 … 2^30 - 1), in place of any value it had. */
  set(hash: number, value: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let slot = hash & mask;
    for (;;) {
      const stored = slots[slot * 2]!;
      if (stored === hash) {
        slots[slot * 2 + 1] = value;
        return;
      }
      if (stored === EMPTY) break;
      slot = (slot + 1) & mask;
    }
    slots[slot * 2] = hash;
    slots[slot * 2 + 1] = value;
    this.#size++;
    if (this.#size * 2 > mask + 1) this.#resize((mask + 1) * 2);
  }

  /** Removes `hash` and its value, if present. */
  delete(hash: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let hole = hash & mask;
    for (;;) {
      const stored = slots[hole * 2]!;
      if (stored === hash) break;
      if (stored === EMPTY) return;
      hole = (hole + 1) & mask;
    }
    // Algorithm R: move back every later entry of the run that may not stay behind the hole
    // (its home slot is not cyclically in (hole, slot]), so every lookup still finds it.
    for (let slot = (hole + 1) & mask; ; slot = (slot + 1) & mask) {
      const stored = slots[slot * 2]!;
      if (stored === EMPTY) break;
      const home = stored & mask;
      const staysPut = hole <= slot ? hole < home && home <= slot : hole < home || home <= slot;
      if (staysPut) continue;
      slots[hole * 2] = stored;
      slots[hole * 2 + 1] = slots[slot * 2 + 1]!;
      hole = slot;
    }
    slots[hole * 2] = EMPTY;
    this.#size--;
    // Give memory back after a burst, with room to spare so a steady size does not flap.
    if (mask + 1 > MIN_CAPACITY && this.#size * 8 < mask + 1) this.#resize((mask + 1) / 2);
  }

  clear(): void {
    this.#slots = emptySlots(MIN_CAPACITY);
    this.#mask = MIN_CAPACITY - 1;
    this.#size = 0;
  }

  #resize(capacity: number): void {
    const old = this.#slots;
    const slots = emptySlots(capacity);
    const mask = capacity - 1;
    for (let i = 0; i < old.length; i += 2) {
      const hash = old[i]!;
      if (hash === EMPTY) continue;
      let slot = hash & mask;
      while (slots[slot * 2] !== EMPTY) slot = (slot + 1) & mask;
      slots[slot * 2] = hash;
      slots[slot * 2 + 1] = old[i + 1]!;
    }
    this.#slots = slots;
    this.#mask = mask;
  }
}

function emptySlots(capacity: number): Int32Array {
  return new Int32Array(capacity * 2).fill(EMPTY);
}
