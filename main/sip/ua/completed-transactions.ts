/**
 * The Completed state of RFC 3261 §17.2.2 for every non-INVITE server transaction that
 * answered over UDP, kept outside the JavaScript heap.
 *
 * In Completed, a non-INVITE server transaction does one thing: when its request is
 * retransmitted, it sends its final response again, until Timer J (64*T1 = 32 s over UDP)
 * ends it, or a transport error does (§17.2.4). For merged-request detection the UAS also
 * remembers its From tag, Call-ID and CSeq while it lives (§8.2.2.2). So a completed
 * transaction is a record: its matching key (§17.2.3), its identity, where responses go, its
 * final response's bytes and when Timer J is due.
 *
 * Why not objects: at 40,000 requests a second, 1.3 million transactions are in Completed at
 * once. As JavaScript objects (the machine, its key and identity strings, a Buffer view of its
 * response), each one outlives the young generation: the scavenger copies it, then the old
 * generation marks and sweeps it. Here a record is bytes in a segment: typed arrays for its
 * numbers, a byte buffer for its strings and response. The only other per-record state is two
 * entries in IntegerMaps (integer-map.ts), which allocate nothing. Measured on the listener at
 * 30,000 requests a second for 10 s (300,000 transactions kept, issue #5), against the objects:
 * resident memory 370 → 275 MB, time in GC 685 → 424 ms, CPU per request about 3 % lower.
 * Keeping the transactions at all still costs about 2–3 µs of the ~26 µs a request takes
 * (most of it cache misses in the indexes and fresh memory while the table grows); that is
 * the price of absorbing retransmissions as §17.2.2 requires.
 *
 * Records are numbered in the order they were added. Timer J has the same length for every
 * transaction of a table, so records also expire in that order: the live records are always
 * the numbers [head, tail), stored in segments of SEGMENT_RECORDS records, and expiring is
 * advancing `head` and dropping segments that fall behind it.
 *
 * Lookup is by a 30-bit keyed hash (HalfSipHash under the table's secret key, computed by the
 * caller) in an IntegerMap to the newest record with that hash; older records with the same hash are
 * chained from it, newest first, and told apart by comparing the stored key with the asked one
 * byte for byte. A chain link to a number below `head` ends the chain (that record expired).
 */
import { IntegerMap } from './integer-map.js';
import type { SipTransportName } from './message-request.js';

/** Records per segment. A segment's typed arrays are allocated whole (about 60 KiB). */
const SEGMENT_RECORDS = 1024;

/** Bytes a new segment starts with when there was no previous one to learn from; it grows by doubling. */
const FIRST_SEGMENT_BYTES = 16 * 1024;

/**
 * Segments kept for reuse after they expire. Under a steady load one segment expires for each
 * one filled, so a few spares mean no new memory at all; allocating instead cost more than the
 * allocation itself, because V8 counts the new external memory and starts full collections.
 */
const MAX_SPARE_SEGMENTS = 8;

/**
 * The indexes hold record numbers modulo 2^30, so the values fit their Int32Array slots however
 * long the table runs. The live window [head, tail) is far smaller than 2^30, so a value names
 * exactly one number at or above `head`.
 */
const NUMBER_WINDOW = 2 ** 30;

// Int32 fields of a record.
const KEY_HASH = 0;
const IDENTITY_HASH = 1;
/** Where the record's bytes start in its segment: key, identity, address, response, in that order. */
const BYTES_START = 2;
const KEY_LENGTH = 3;
const IDENTITY_LENGTH = 4;
const ADDRESS_LENGTH = 5;
const RESPONSE_LENGTH = 6;
const PORT = 7;
const FLAGS = 8;
const INT_FIELDS = 9;

// Float64 fields of a record (record numbers may pass 2^31 on a long run).
const EXPIRES_AT = 0;
const NEXT_SAME_KEY = 1;
const NEXT_SAME_IDENTITY = 2;
const FLOAT_FIELDS = 3;

// FLAGS bits.
/** The record holds its identity for merged-request detection (it was the first with it). */
const OWNS_IDENTITY = 1;
/** Ended early by a transport error (§17.2.4): skipped by lookups, dropped at its expiry. */
const TERMINATED = 2;
/** The key or identity has characters beyond ASCII, so it was stored as UTF-16LE (writeText). */
const KEY_NOT_ASCII = 4;
const IDENTITY_NOT_ASCII = 8;

/**
 * Records kept at most by default: 64 s of 40,000 requests a second (twice what Timer J keeps
 * at that rate), about 1.2 GB at ~450 bytes a record.
 */
export const DEFAULT_MAX_RECORDS = 2_560_000;

/** No next record in a chain. */
const NONE = -1;

class Segment {
  readonly ints = new Int32Array(SEGMENT_RECORDS * INT_FIELDS);
  readonly floats = new Float64Array(SEGMENT_RECORDS * FLOAT_FIELDS);
  bytes: Buffer;
  usedBytes = 0;

  constructor(byteCapacity: number) {
    this.bytes = Buffer.allocUnsafeSlow(byteCapacity);
  }

  /** Makes room for `count` more bytes, doubling (and copying what is used) as needed. */
  reserve(count: number): void {
    const needed = this.usedBytes + count;
    if (needed <= this.bytes.length) return;
    let capacity = this.bytes.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = Buffer.allocUnsafeSlow(capacity);
    this.bytes.copy(grown, 0, 0, this.usedBytes);
    this.bytes = grown;
  }
}

/** Where a completed transaction's responses go; over UDP, so an address and a port. */
export interface CompletedDestination {
  readonly transport: SipTransportName;
  readonly address: string;
  readonly port: number;
}

/** What a retransmission of a completed transaction's request gets (§17.2.2). */
export interface CompletedResend extends CompletedDestination {
  readonly response: Buffer;
}

export class CompletedTransactions {
  readonly #byKeyHash = new IntegerMap();
  readonly #byIdentityHash = new IntegerMap();
  readonly #segments: Segment[] = [];
  readonly #spares: Segment[] = [];
  /** The number of the first record of `#segments[0]`. */
  #firstSegmentStart = 0;
  /** The oldest record still stored (it may have been terminated). */
  #head = 0;
  /** The number the next record gets. */
  #tail = 0;
  /** Stored records not terminated. */
  #live = 0;
  /** Byte capacity the last full segment needed: the next one starts there. */
  #segmentBytes = FIRST_SEGMENT_BYTES;

  constructor(
    /**
     * The most records kept. When a new one would pass it, the oldest ends before its Timer J:
     * a flood from many sources must not grow memory without bound (issue #5's limits). A
     * retransmission of an ended one is then taken as a new request, as after Timer J.
     */
    private readonly maxRecords = DEFAULT_MAX_RECORDS,
  ) {}

  /** Completed transactions (terminated ones not counted). */
  get size(): number {
    return this.#live;
  }

  /** When the oldest stored record's Timer J is due, or undefined when none is stored. */
  get nextExpiry(): number | undefined {
    const first = this.#segments[0];
    if (first === undefined || this.#head === this.#tail) return undefined;
    return first.floats[(this.#head - this.#firstSegmentStart) * FLOAT_FIELDS + EXPIRES_AT];
  }

  /**
   * Files a transaction that has just sent its final response over UDP and entered Completed.
   * `expiresAt` (its Timer J) must not be earlier than that of any record already filed: the
   * table's records expire in the order they were added. `identity` is given only when the
   * transaction holds it (merged-request detection, §8.2.2.2).
   */
  add(
    key: string,
    keyHash: number,
    identity: string | undefined,
    identityHash: number,
    destination: CompletedDestination,
    response: Uint8Array,
    expiresAt: number,
  ): void {
    if (this.#tail - this.#head >= this.maxRecords) this.#dropHead();
    const record = this.#tail;
    const segment = this.#segmentFor(record);
    const index = record - this.#firstSegmentStart - (this.#segments.length - 1) * SEGMENT_RECORDS;
    const identityText = identity ?? '';
    // writeText tries UTF-8 first, up to three bytes per UTF-16 unit, and must never be cut
    // short by the end of the buffer. The address is an IP literal, one byte a character.
    segment.reserve(3 * (key.length + identityText.length) + destination.address.length + response.length);

    const bytes = segment.bytes;
    const start = segment.usedBytes;
    let at = start;
    const keyLength = writeText(bytes, key, at);
    at += keyLength;
    const identityLength = writeText(bytes, identityText, at);
    at += identityLength;
    const addressLength = bytes.write(destination.address, at, 'latin1');
    at += addressLength;
    bytes.set(response, at);
    segment.usedBytes = at + response.length;

    let flags = 0;
    if (keyLength !== key.length) flags |= KEY_NOT_ASCII;
    if (identityLength !== identityText.length) flags |= IDENTITY_NOT_ASCII;
    if (identity !== undefined) flags |= OWNS_IDENTITY;

    const ints = segment.ints;
    const i = index * INT_FIELDS;
    ints[i + KEY_HASH] = keyHash;
    ints[i + IDENTITY_HASH] = identityHash;
    ints[i + BYTES_START] = start;
    ints[i + KEY_LENGTH] = keyLength;
    ints[i + IDENTITY_LENGTH] = identityLength;
    ints[i + ADDRESS_LENGTH] = addressLength;
    ints[i + RESPONSE_LENGTH] = response.length;
    ints[i + PORT] = destination.port;
    ints[i + FLAGS] = flags;

    const floats = segment.floats;
    const f = index * FLOAT_FIELDS;
    floats[f + EXPIRES_AT] = expiresAt;
    floats[f + NEXT_SAME_KEY] = this.#newest(this.#byKeyHash, keyHash);
    this.#byKeyHash.set(keyHash, record % NUMBER_WINDOW);
    if (identity !== undefined) {
      floats[f + NEXT_SAME_IDENTITY] = this.#newest(this.#byIdentityHash, identityHash);
      this.#byIdentityHash.set(identityHash, record % NUMBER_WINDOW);
    } else {
      floats[f + NEXT_SAME_IDENTITY] = NONE;
    }
    this.#tail = record + 1;
    this.#live++;
  }

  /** The response a retransmission of `key`'s request gets and where it goes, or undefined when no completed transaction has that key. */
  resend(key: string, keyHash: number): CompletedResend | undefined {
    const record = this.#find(key, keyHash);
    if (record === NONE) return undefined;
    const [segment, index] = this.#locate(record);
    const ints = segment.ints;
    const i = index * INT_FIELDS;
    const addressStart = ints[i + BYTES_START]! + ints[i + KEY_LENGTH]! + ints[i + IDENTITY_LENGTH]!;
    const responseStart = addressStart + ints[i + ADDRESS_LENGTH]!;
    return {
      transport: 'udp',
      address: segment.bytes.toString('latin1', addressStart, responseStart),
      port: ints[i + PORT]!,
      // A copy: the segment's buffer may be replaced (grown) or dropped before the send completes.
      response: Buffer.from(segment.bytes.subarray(responseStart, responseStart + ints[i + RESPONSE_LENGTH]!)),
    };
  }

  /** Whether a completed transaction with this key exists. */
  has(key: string, keyHash: number): boolean {
    return this.#find(key, keyHash) !== NONE;
  }

  /** Whether a completed transaction holds this identity (§8.2.2.2). */
  holdsIdentity(identity: string, identityHash: number): boolean {
    let record = this.#newest(this.#byIdentityHash, identityHash);
    while (record >= this.#head) {
      const [segment, index] = this.#locate(record);
      const i = index * INT_FIELDS;
      const flags = segment.ints[i + FLAGS]!;
      if ((flags & TERMINATED) === 0) {
        const start = segment.ints[i + BYTES_START]! + segment.ints[i + KEY_LENGTH]!;
        if (storedEquals(segment.bytes, start, segment.ints[i + IDENTITY_LENGTH]!, identity, (flags & IDENTITY_NOT_ASCII) !== 0)) return true;
      }
      record = segment.floats[index * FLOAT_FIELDS + NEXT_SAME_IDENTITY]!;
    }
    return false;
  }

  /** Ends the completed transaction with this key before its Timer J (a transport error, §17.2.4). */
  terminate(key: string, keyHash: number): void {
    const record = this.#find(key, keyHash);
    if (record === NONE) return;
    const [segment, index] = this.#locate(record);
    segment.ints[index * INT_FIELDS + FLAGS]! |= TERMINATED;
    this.#live--;
  }

  /** Ends every transaction whose Timer J is due at `now`. */
  expire(now: number): void {
    while (this.#head < this.#tail) {
      // The head is always in the first segment: a segment is dropped as the head leaves it.
      const segment = this.#segments[0]!;
      if (segment.floats[(this.#head - this.#firstSegmentStart) * FLOAT_FIELDS + EXPIRES_AT]! > now) break;
      this.#dropHead();
    }
    if (this.#head === this.#tail) this.#reset();
  }

  /** Ends the oldest stored record (its Timer J came, or the table is full) and advances the head past it. */
  #dropHead(): void {
    const record = this.#head;
    const segment = this.#segments[0]!;
    const index = record - this.#firstSegmentStart;
    const i = index * INT_FIELDS;
    const flags = segment.ints[i + FLAGS]!;
    if ((flags & TERMINATED) === 0) this.#live--;
    // The indexes name the newest record of a hash; when that is this one, nothing newer shares the hash.
    const keyHash = segment.ints[i + KEY_HASH]!;
    if (this.#newest(this.#byKeyHash, keyHash) === record) this.#byKeyHash.delete(keyHash);
    if ((flags & OWNS_IDENTITY) !== 0) {
      const identityHash = segment.ints[i + IDENTITY_HASH]!;
      if (this.#newest(this.#byIdentityHash, identityHash) === record) this.#byIdentityHash.delete(identityHash);
    }
    this.#head = record + 1;
    if (index === SEGMENT_RECORDS - 1) this.#dropFirstSegment();
  }

  /** Forgets everything. */
  clear(): void {
    this.#byKeyHash.clear();
    this.#byIdentityHash.clear();
    this.#head = this.#tail;
    this.#live = 0;
    this.#reset();
  }

  #find(key: string, keyHash: number): number {
    let record = this.#newest(this.#byKeyHash, keyHash);
    while (record >= this.#head) {
      const [segment, index] = this.#locate(record);
      const i = index * INT_FIELDS;
      const flags = segment.ints[i + FLAGS]!;
      if ((flags & TERMINATED) === 0 && storedEquals(segment.bytes, segment.ints[i + BYTES_START]!, segment.ints[i + KEY_LENGTH]!, key, (flags & KEY_NOT_ASCII) !== 0)) {
        return record;
      }
      record = segment.floats[index * FLOAT_FIELDS + NEXT_SAME_KEY]!;
    }
    return NONE;
  }

  /** The newest stored record an index names for `hash`, or NONE. */
  #newest(index: IntegerMap, hash: number): number {
    const value = index.get(hash);
    if (value < 0) return NONE;
    const offset = (value - (this.#head % NUMBER_WINDOW) + NUMBER_WINDOW) % NUMBER_WINDOW;
    const record = this.#head + offset;
    return record < this.#tail ? record : NONE;
  }

  /** The segment and index of a stored record (asked only when a hash matched, so rarely). */
  #locate(record: number): [Segment, number] {
    const offset = record - this.#firstSegmentStart;
    const position = Math.floor(offset / SEGMENT_RECORDS);
    return [this.#segments[position]!, offset - position * SEGMENT_RECORDS];
  }

  /** The segment record number `record` (= the tail) goes in, starting a new one when the last is full. */
  #segmentFor(record: number): Segment {
    const segments = this.#segments;
    const last = segments[segments.length - 1];
    if (last !== undefined && record - this.#firstSegmentStart < segments.length * SEGMENT_RECORDS) return last;
    if (last !== undefined) this.#segmentBytes = last.bytes.length;
    const segment = this.#spares.pop() ?? new Segment(this.#segmentBytes);
    if (segments.length === 0) this.#firstSegmentStart = record;
    segments.push(segment);
    return segment;
  }

  #dropFirstSegment(): void {
    this.#release(this.#segments.shift());
    this.#firstSegmentStart += SEGMENT_RECORDS;
  }

  /** Nothing is stored: release the segments and start numbering a fresh segment. */
  #reset(): void {
    for (const segment of this.#segments) this.#release(segment);
    this.#segments.length = 0;
    this.#firstSegmentStart = this.#tail;
  }

  /** Keeps an expired segment for reuse, or lets it go when there are spares enough. */
  #release(segment: Segment | undefined): void {
    if (segment === undefined || this.#spares.length >= MAX_SPARE_SEGMENTS) return;
    segment.usedBytes = 0;
    this.#spares.push(segment);
  }
}

/**
 * Writes `text` at `at` as ASCII when it is ASCII (one byte a character), else as UTF-16LE,
 * which keeps any JavaScript string exactly (even a lone surrogate, which UTF-8 would replace).
 * Returns the bytes written; a count other than `text.length` means UTF-16LE (an empty string is ASCII).
 */
function writeText(bytes: Buffer, text: string, at: number): number {
  const written = bytes.write(text, at, 'utf8');
  return written === text.length ? written : bytes.write(text, at, 'utf16le');
}

/** Whether `length` stored bytes at `start` are `text` as writeText stored it (`notAscii`: as UTF-16LE). */
function storedEquals(bytes: Buffer, start: number, length: number, text: string, notAscii: boolean): boolean {
  if (notAscii) return bytes.subarray(start, start + length).equals(Buffer.from(text, 'utf16le'));
  if (length !== text.length) return false;
  for (let i = 0; i < length; i++) {
    if (bytes[start + i] !== text.charCodeAt(i)) return false;
  }
  return true;
}
