/**
 * The first pass over a SIP message head (RFC 3261 §7, §7.3.1), in AssemblyScript compiled to
 * WebAssembly: main/sip/message/head-scanner.ts copies the start of a datagram into this
 * module's memory, calls `scanHead`, and reads back where the lines, the header names and
 * their values are. The message parser (main/sip/message/parse.ts) then cuts its strings out
 * of the text by those positions.
 *
 * Why WebAssembly: finding the lines of a head is a scan over every byte, and JavaScript
 * touches a string a character at a time at 1-2.5 ns per character (issue #2's notes). Here
 * SIMD compares 16 bytes at a time against CR and LF and counts the bytes above 0x7F in the
 * same load. The header names, which are short, are read a byte at a time, hashed, and looked
 * up in a table of the known names that the JavaScript side fills in once (`addKnownName`),
 * so the list of names lives in one place (header-names.ts).
 *
 * It reads only the usual head, as parse.ts's one-pass reading did: every line ends with
 * CR LF and has no other CR or LF, every header line is `token SWS ":"` or a continuation
 * line, within the limits given. At anything else it returns UNUSUAL and the general reading
 * in parse.ts, which is the reference and reports every error, reads the message instead.
 * It does no I/O and keeps no state between calls apart from the table of names.
 */

/** `scanHead`'s answer when the head is not the usual one. */
const UNUSUAL: i32 = -1;

// Memory: the input window, the results, the names and their hash table, at fixed places
// above AssemblyScript's own static data (which is a few hundred bytes).
const INPUT: usize = 65536;
/** The most bytes `scanHead` reads; the JavaScript side copies at most this many. */
const INPUT_CAPACITY: i32 = 16384;
const RESULTS: usize = INPUT + <usize>INPUT_CAPACITY + 64;
/** Results: HEADER_FIELDS i32s, then ROW_FIELDS i32s per row, at most MAX_ROWS rows. */
const HEADER_FIELDS: i32 = 8;
const ROW_FIELDS: i32 = 6;
const MAX_ROWS: i32 = 256;
const NAMES: usize = RESULTS + <usize>((HEADER_FIELDS + ROW_FIELDS * MAX_ROWS) * 4);
const NAMES_CAPACITY: usize = 4096;
/** Open addressing: TABLE_SLOTS slots of (u16 offset into NAMES, u8 length, u8 is Content-Length, i32 id). */
const TABLE: usize = NAMES + NAMES_CAPACITY;
const TABLE_SLOTS: u32 = 512;
const TOKEN_TABLE: usize = TABLE + <usize>(TABLE_SLOTS * 8);

// Result header fields (i32 indices).
const START_LINE_STOP: i32 = 0;
const HEAD_END: i32 = 1;
const BODY_START: i32 = 2;
const NON_ASCII: i32 = 3;
const CONTENT_LENGTH: i32 = 4;
// Row fields.
const NAME_START: i32 = 0;
const NAME_END: i32 = 1;
const VALUE_START: i32 = 2;
const VALUE_STOP: i32 = 3;
const FOLDED: i32 = 4;
const NAME_ID: i32 = 5;

const HT: u8 = 0x09;
const LF: u8 = 0x0a;
const CR: u8 = 0x0d;
const SP: u8 = 0x20;
const COLON: u8 = 0x3a;

let namesUsed: usize = 0;

export function inputOffset(): usize {
  return INPUT;
}

export function inputCapacity(): i32 {
  return INPUT_CAPACITY;
}

export function resultsOffset(): usize {
  return RESULTS;
}

export function namesOffset(): usize {
  return NAMES + namesUsed;
}

/** Marks the RFC 3261 §25.1 token characters; called once before the first scan. */
export function init(): void {
  for (let c: i32 = 0; c < 256; c++) {
    const token =
      (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
      c == 0x2d || c == 0x2e || c == 0x21 || c == 0x25 || c == 0x2a || c == 0x5f || c == 0x2b || c == 0x60 || c == 0x27 || c == 0x7e;
    store<u8>(TOKEN_TABLE + <usize>c, token ? 1 : 0);
  }
  namesUsed = 0;
  memory.fill(TABLE, 0, <usize>(TABLE_SLOTS * 8));
}

function hashName(start: usize, length: usize): u32 {
  // FNV-1a over the bytes.
  let h: u32 = 2166136261;
  for (let i: usize = 0; i < length; i++) h = (h ^ <u32>load<u8>(start + i)) * 16777619;
  return h;
}

/**
 * Adds a known name: its `length` bytes were written at `namesOffset()`; `id` is what scanHead
 * reports for a row with exactly this name. False when the table is full or holds it already.
 */
export function addKnownName(length: i32, id: i32, isContentLength: bool): bool {
  const at = NAMES + namesUsed;
  if (length <= 0 || length > 255 || namesUsed + <usize>length > NAMES_CAPACITY) return false;
  let slot = hashName(at, <usize>length) & (TABLE_SLOTS - 1);
  for (let probes: u32 = 0; probes < TABLE_SLOTS; probes++) {
    const entry = TABLE + <usize>(slot * 8);
    const entryLength = load<u8>(entry, 2);
    if (entryLength == 0) {
      store<u16>(entry, <u16>namesUsed);
      store<u8>(entry, <u8>length, 2);
      store<u8>(entry, isContentLength ? 1 : 0, 3);
      store<i32>(entry, id, 4);
      namesUsed += <usize>length;
      return true;
    }
    if (<i32>entryLength == length && memory.compare(NAMES + <usize>load<u16>(entry), at, <usize>length) == 0) return false;
    slot = (slot + 1) & (TABLE_SLOTS - 1);
  }
  return false;
}

/** The table slot of the known name in [start, start + length), or 0 when it is not known. */
function knownNameSlot(start: usize, length: usize): usize {
  if (length > 255) return 0;
  let slot = hashName(start, length) & (TABLE_SLOTS - 1);
  for (let probes: u32 = 0; probes < TABLE_SLOTS; probes++) {
    const entry = TABLE + <usize>(slot * 8);
    const entryLength = <usize>load<u8>(entry, 2);
    if (entryLength == 0) return 0;
    if (entryLength == length && memory.compare(NAMES + <usize>load<u16>(entry), start, length) == 0) return entry;
    slot = (slot + 1) & (TABLE_SLOTS - 1);
  }
  return 0;
}

/** 1*DIGIT of at most 9 digits in [start, end), or -1. */
function smallNumber(start: usize, end: usize): i32 {
  const n = end - start;
  if (n == 0 || n > 9) return -1;
  let value: i32 = 0;
  for (let p = start; p < end; p++) {
    const digit = <i32>load<u8>(p) - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

function isSws(c: u8): bool {
  return c == SP || c == HT;
}

/**
 * Scans the `length` bytes at `inputOffset()`, the start of a message from its start line on.
 * Returns the number of header rows and fills the results, or UNUSUAL. A row whose name is
 * known as a Content-Length (`addKnownName`) must hold 1 to 9 digits, and all such rows the
 * same number: the result field CONTENT_LENGTH (-1 when there is none).
 */
export function scanHead(length: i32, maxLine: i32, maxHead: i32, maxRows: i32): i32 {
  if (length <= 0 || length > INPUT_CAPACITY) return UNUSUAL;
  const end = INPUT + <usize>length;
  const rowLimit = min(maxRows, MAX_ROWS);
  let rows: i32 = 0;
  let lineStart = INPUT;
  let startLineDone = false;
  let contentLength: i32 = -1;
  let lastRowIsContentLength = false;
  let nonAscii: i32 = 0;
  const cr = i8x16.splat(CR);
  const lf = i8x16.splat(LF);

  // Each block of 16 bytes: the CRs and LFs in it as bits; a line ends at each CR, whose LF
  // must follow, and an LF is only ever the one after a CR. The bytes above 0x7F are counted
  // as the blocks go, up to the block that holds the end of the head.
  let block = INPUT;
  let pendingLf = false;
  while (block < end) {
    let crBits: u32;
    let lfBits: u32;
    let highBits: u32;
    if (block + 16 <= end) {
      const v = v128.load(block);
      crBits = i8x16.bitmask(i8x16.eq(v, cr));
      lfBits = i8x16.bitmask(i8x16.eq(v, lf));
      highBits = i8x16.bitmask(v);
    } else {
      crBits = 0;
      lfBits = 0;
      highBits = 0;
      for (let i: u32 = 0; block + <usize>i < end; i++) {
        const c = load<u8>(block + <usize>i);
        if (c == CR) crBits |= 1 << i;
        else if (c == LF) lfBits |= 1 << i;
        else if (c >= 0x80) highBits |= 1 << i;
      }
    }
    // Every LF must be the one right after a CR: shift the CRs by one (carrying the last
    // block's final CR in) and compare.
    // (Only LFs before the end of the head count: the body may hold anything.)
    const strayLf = lfBits & ~((crBits << 1) | (pendingLf ? 1 : 0)) & 0xffff;
    pendingLf = (crBits & 0x8000) != 0;

    let bits = crBits;
    while (bits != 0) {
      const bit = ctz(bits);
      const cr_at = block + <usize>bit;
      bits &= bits - 1;
      if ((strayLf & ((<u32>1 << bit) - 1)) != 0) return UNUSUAL;
      if (cr_at + 1 >= end || load<u8>(cr_at + 1) != LF) return UNUSUAL;
      const lineLength = <i32>(cr_at - lineStart);
      if (!startLineDone) {
        if (lineLength < 1 || lineLength > maxLine) return UNUSUAL;
        store<i32>(RESULTS, <i32>(cr_at - INPUT), START_LINE_STOP << 2);
        startLineDone = true;
      } else if (lineLength == 0) {
        // The empty line: the head ends at the CR LF before it.
        const headEnd = <i32>(cr_at - INPUT) - 2;
        if (headEnd > maxHead) return UNUSUAL;
        // Bytes above 0x7F before the end of the head, in this block.
        nonAscii += <i32>popcnt(highBits & ((<u32>1 << bit) - 1));
        store<i32>(RESULTS, headEnd, HEAD_END << 2);
        store<i32>(RESULTS, <i32>(cr_at - INPUT) + 2, BODY_START << 2);
        store<i32>(RESULTS, nonAscii, NON_ASCII << 2);
        store<i32>(RESULTS, contentLength, CONTENT_LENGTH << 2);
        return rows;
      } else {
        if (lineLength > maxLine) return UNUSUAL;
        const first = load<u8>(lineStart);
        if (first == SP || first == HT) {
          // A continuation line (§7.3.1) of the row before.
          if (rows == 0) return UNUSUAL;
          const row = RESULTS + <usize>((HEADER_FIELDS + (rows - 1) * ROW_FIELDS) << 2);
          store<i32>(row, <i32>(cr_at - INPUT), VALUE_STOP << 2);
          store<i32>(row, 1, FOLDED << 2);
          // A folded Content-Length is left to the general reading.
          if (lastRowIsContentLength) return UNUSUAL;
        } else {
          if (rows == rowLimit) return UNUSUAL;
          // field-name SWS ":"; the line ends with CR, which is neither a token character nor SWS.
          let nameEnd = lineStart;
          while (load<u8>(TOKEN_TABLE + <usize>load<u8>(nameEnd)) != 0) nameEnd++;
          if (nameEnd == lineStart) return UNUSUAL;
          let colon = nameEnd;
          while (isSws(load<u8>(colon))) colon++;
          if (load<u8>(colon) != COLON) return UNUSUAL;
          const slot = knownNameSlot(lineStart, nameEnd - lineStart);
          const id = slot == 0 ? -1 : load<i32>(slot, 4);
          lastRowIsContentLength = slot != 0 && load<u8>(slot, 3) != 0;
          const row = RESULTS + <usize>((HEADER_FIELDS + rows * ROW_FIELDS) << 2);
          store<i32>(row, <i32>(lineStart - INPUT), NAME_START << 2);
          store<i32>(row, <i32>(nameEnd - INPUT), NAME_END << 2);
          store<i32>(row, <i32>(colon - INPUT) + 1, VALUE_START << 2);
          store<i32>(row, <i32>(cr_at - INPUT), VALUE_STOP << 2);
          store<i32>(row, 0, FOLDED << 2);
          store<i32>(row, id, NAME_ID << 2);
          rows++;
          if (lastRowIsContentLength) {
            // §20.14; several rows must agree (RFC 4475 §3.3.9): anything else is for the general reading.
            let valueStart = colon + 1;
            let valueStop = cr_at;
            while (valueStart < valueStop && isSws(load<u8>(valueStart))) valueStart++;
            while (valueStop > valueStart && isSws(load<u8>(valueStop - 1))) valueStop--;
            const value = smallNumber(valueStart, valueStop);
            if (value < 0 || (contentLength >= 0 && value != contentLength)) return UNUSUAL;
            contentLength = value;
          }
        }
      }
      lineStart = cr_at + 2;
    }
    if (strayLf != 0) return UNUSUAL;
    nonAscii += <i32>popcnt(highBits);
    block += 16;
  }
  // No empty line within the window.
  return UNUSUAL;
}
