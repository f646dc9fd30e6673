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
 *
 * While the bytes are here it also reads the values every message is asked for, when they
 * have the usual shape: the start line and the first CSeq (in `scanHead`), each Via
 * (`scanVia`) and From and To (`scanNameAddr`). For any other shape it says UNUSUAL for that
 * value alone, and header-values.ts, whose readers are the reference, reads it from the text.
 * test/unit/head-scanner.test.ts compares each reading here with the reference one.
 *
 * It does no I/O and keeps no state between calls apart from the table of names.
 *
 * `@inline` asks the compiler to inline a small helper on the hot paths (measured: the Via
 * reading is about 10 % slower without). TypeScript's own checker, which editors run over this
 * file through wasm/tsconfig.json, does not allow decorators on functions, so each one carries
 * `// @ts-ignore: decorator`, as in AssemblyScript's standard library; asc itself needs neither.
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
const HEADER_FIELDS: i32 = 16;
const ROW_FIELDS: i32 = 7;
const MAX_ROWS: i32 = 256;
const NAMES: usize = RESULTS + <usize>((HEADER_FIELDS + ROW_FIELDS * MAX_ROWS) * 4);
const NAMES_CAPACITY: usize = 4096;
/** Open addressing: TABLE_SLOTS slots of (u16 offset into NAMES, u8 length, u8 role, i32 id). */
const TABLE: usize = NAMES + NAMES_CAPACITY;
const TABLE_SLOTS: u32 = 512;
const TOKEN_TABLE: usize = TABLE + <usize>(TABLE_SLOTS * 8);
/** scanVia's results: VIA_FIELDS i32s, then VIA_PARAM_FIELDS per parameter, at most MAX_VIA_PARAMS. */
const VIA_RESULTS: usize = TOKEN_TABLE + 256;
const VIA_FIELDS: i32 = 8;
const VIA_PARAM_FIELDS: i32 = 5;
const MAX_VIA_PARAMS: i32 = 16;
/** scanNameAddr's results: NAME_ADDR_FIELDS i32s, then VIA_PARAM_FIELDS per parameter, as for a Via. */
const NAME_ADDR_RESULTS: usize = VIA_RESULTS + <usize>((VIA_FIELDS + VIA_PARAM_FIELDS * MAX_VIA_PARAMS) << 2);
const NAME_ADDR_FIELDS: i32 = 8;

// Result header fields (i32 indices).
const START_LINE_STOP: i32 = 0;
const HEAD_END: i32 = 1;
const BODY_START: i32 = 2;
const NON_ASCII: i32 = 3;
const CONTENT_LENGTH: i32 = 4;
const START_LINE_NON_ASCII: i32 = 5;
/** 1: a request line of the usual shape, 2: a status line of the usual shape, 0: for the caller to read. */
const START_KIND: i32 = 6;
/** Request: the method's id (methodId); response: the status code. */
const START_METHOD_OR_STATUS: i32 = 7;
/** Request: where the method ends (the SP); response: where the reason phrase starts, or -1 for none. */
const START_METHOD_END_OR_REASON: i32 = 8;
const START_URI_START: i32 = 9;
const START_URI_END: i32 = 10;
/** 1 when the first CSeq row is `1*DIGIT LWS token` with a number of at most 32 bits, as below. */
const CSEQ_READ: i32 = 11;
const CSEQ_NUMBER: i32 = 12; // unsigned 32 bits, in an i32
const CSEQ_METHOD: i32 = 13; // methodId, 0 for another
const CSEQ_METHOD_START: i32 = 14;
const CSEQ_METHOD_END: i32 = 15;
// Row fields.
const NAME_START: i32 = 0;
const NAME_END: i32 = 1;
const VALUE_START: i32 = 2;
const VALUE_STOP: i32 = 3;
const FOLDED: i32 = 4;
const NAME_ID: i32 = 5;
const ROW_NON_ASCII: i32 = 6;

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

export function viaResultsOffset(): usize {
  return VIA_RESULTS;
}

export function nameAddrResultsOffset(): usize {
  return NAME_ADDR_RESULTS;
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

/**
 * A hash of the name in [start, start + length) from its length and its first and last four
 * bytes (which tell the usual names apart), in constant time: most names are looked up, and
 * found, once per row.
 */
// @ts-ignore: decorator
@inline
function hashName(start: usize, length: usize): u32 {
  let first: u32;
  let last: u32;
  if (length >= 4) {
    first = load<u32>(start);
    last = load<u32>(start + length - 4);
  } else {
    first = <u32>word(start, length);
    last = 0;
  }
  return (first * 0x9e3779b1) ^ (last * 0x85ebca77) ^ (<u32>length * 0xc2b2ae3d);
}

/** Whether the `length` bytes at `a` and at `b` are the same, compared eight at a time. */
// @ts-ignore: decorator
@inline
function sameBytes(a: usize, b: usize, length: usize): bool {
  while (length >= 8) {
    if (load<u64>(a) != load<u64>(b)) return false;
    a += 8;
    b += 8;
    length -= 8;
  }
  return length == 0 || ((load<u64>(a) ^ load<u64>(b)) & ((<u64>1 << (<u64>length << 3)) - 1)) == 0;
}

/** What a known name is to scanHead beyond its id: it reads the values of these itself. */
const ROLE_CONTENT_LENGTH: u8 = 1;
const ROLE_CSEQ: u8 = 2;

/**
 * Adds a known name: its `length` bytes were written at `namesOffset()`; `id` is what scanHead
 * reports for a row with exactly this name, `role` one of the ROLE_ constants or 0. False when
 * the table is full or holds it already.
 */
export function addKnownName(length: i32, id: i32, role: u8): bool {
  const at = NAMES + namesUsed;
  if (length <= 0 || length > 255 || namesUsed + <usize>length > NAMES_CAPACITY) return false;
  let slot = (hashName(at, <usize>length) >> 16) & (TABLE_SLOTS - 1);
  for (let probes: u32 = 0; probes < TABLE_SLOTS; probes++) {
    const entry = TABLE + <usize>(slot * 8);
    const entryLength = load<u8>(entry, 2);
    if (entryLength == 0) {
      store<u16>(entry, <u16>namesUsed);
      store<u8>(entry, <u8>length, 2);
      store<u8>(entry, role, 3);
      store<i32>(entry, id, 4);
      namesUsed += <usize>length;
      return true;
    }
    if (<i32>entryLength == length && sameBytes(NAMES + <usize>load<u16>(entry), at, <usize>length)) return false;
    slot = (slot + 1) & (TABLE_SLOTS - 1);
  }
  return false;
}

/** The table slot of the known name in [start, start + length), or 0 when it is not known. */
// @ts-ignore: decorator
@inline
function knownNameSlot(start: usize, length: usize): usize {
  if (length > 255) return 0;
  let slot = (hashName(start, length) >> 16) & (TABLE_SLOTS - 1);
  for (let probes: u32 = 0; probes < TABLE_SLOTS; probes++) {
    const entry = TABLE + <usize>(slot * 8);
    const entryLength = <usize>load<u8>(entry, 2);
    if (entryLength == 0) return 0;
    if (entryLength == length && sameBytes(NAMES + <usize>load<u16>(entry), start, length)) return entry;
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
 * The id of the method in [start, start + length), for the usual ones (1 = ACK … 14 =
 * SUBSCRIBE, in the order of head-scanner.ts's METHOD_BY_ID), or 0.
 */
function methodId(start: usize, length: usize): i32 {
  if (length < 3 || length > 9) return 0;
  const w = word(start, length < 8 ? length : 8);
  switch (<i32>length) {
    case 3:
      return w == 0x4b4341 ? 1 : w == 0x455942 ? 2 : 0; // ACK, BYE
    case 4:
      return w == 0x4f464e49 ? 3 : 0; // INFO
    case 5:
      return w == 0x4b43415250 ? 4 : w == 0x5245464552 ? 5 : 0; // PRACK, REFER
    case 6:
      // INVITE, CANCEL, NOTIFY, UPDATE
      return w == 0x455449564e49 ? 6 : w == 0x4c45434e4143 ? 7 : w == 0x594649544f4e ? 8 : w == 0x455441445055 ? 9 : 0;
    case 7:
      // MESSAGE, OPTIONS, PUBLISH
      return w == 0x4547415353454d ? 10 : w == 0x534e4f4954504f ? 11 : w == 0x4853494c425550 ? 12 : 0;
    case 8:
      return w == 0x5245545349474552 ? 13 : 0; // REGISTER
    default:
      return w == 0x4249524353425553 && load<u8>(start + 8) == 0x45 ? 14 : 0; // SUBSCRIBE
  }
}

/**
 * Reads the start line [INPUT, stop) if it has the usual shape, as parse.ts's parseStartLine
 * reads it (§7.1, §7.2): `Method SP Request-URI SP SIP/2.0`, the method a token, the URI
 * `scheme ":" …` without whitespace, "<", ">" or bytes above 0x7F; or `SIP/2.0 SP 3DIGIT
 * [SP Reason-Phrase]` with a code from 100 to 699. START_KIND says which, or 0 for anything
 * else (another version, a malformed line), which the caller reads.
 */
function readStartLine(stop: usize, nonAscii: i32): void {
  store<i32>(RESULTS, 0, START_KIND << 2);
  const length = stop - INPUT;
  if (length >= 11 && word(INPUT, 8) == 0x20302e322f504953) {
    // "SIP/2.0 " 3DIGIT
    const a = <i32>load<u8>(INPUT + 8) - 0x30;
    const b = <i32>load<u8>(INPUT + 9) - 0x30;
    const c = <i32>load<u8>(INPUT + 10) - 0x30;
    if (a < 1 || a > 6 || b < 0 || b > 9 || c < 0 || c > 9) return;
    let reason: i32 = -1;
    if (length > 11) {
      if (load<u8>(INPUT + 11) != SP) return;
      reason = 12;
    }
    store<i32>(RESULTS, a * 100 + b * 10 + c, START_METHOD_OR_STATUS << 2);
    store<i32>(RESULTS, reason, START_METHOD_END_OR_REASON << 2);
    store<i32>(RESULTS, 2, START_KIND << 2);
    return;
  }
  if (nonAscii != 0) return;
  let p = INPUT;
  while (p < stop && isToken(load<u8>(p))) p++;
  const methodEnd = p;
  if (methodEnd == INPUT || p >= stop || load<u8>(p) != SP) return;
  p++;
  const uriStart = p;
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ":"
  const first = load<u8>(p) | 0x20;
  if (first < 0x61 || first > 0x7a) return;
  p++;
  while (p < stop) {
    const c = load<u8>(p);
    const lower = c | 0x20;
    if (!((lower >= 0x61 && lower <= 0x7a) || isDigit(c) || c == 0x2b || c == 0x2d || c == 0x2e)) break;
    p++;
  }
  if (p >= stop || load<u8>(p) != COLON) return;
  p++;
  const rest = p;
  while (p < stop) {
    const c = load<u8>(p);
    if (c == SP || (c >= 0x09 && c <= 0x0d) || c == LAQUOT || c == RAQUOT) break;
    p++;
  }
  if (p == rest) return;
  const uriEnd = p;
  // " SIP/2.0" and the end of the line
  if (stop - uriEnd != 8 || word(uriEnd, 8) != 0x302e322f50495320) return;
  store<i32>(RESULTS, methodId(INPUT, methodEnd - INPUT), START_METHOD_OR_STATUS << 2);
  store<i32>(RESULTS, <i32>(methodEnd - INPUT), START_METHOD_END_OR_REASON << 2);
  store<i32>(RESULTS, <i32>(uriStart - INPUT), START_URI_START << 2);
  store<i32>(RESULTS, <i32>(uriEnd - INPUT), START_URI_END << 2);
  store<i32>(RESULTS, 1, START_KIND << 2);
}

/**
 * CSeq = 1*DIGIT LWS Method (§20.16), the number at most 2^32 - 1 (leading zeros allowed), in
 * the trimmed value [start, stop), as header-values.ts's parseCSeq reads it; CSEQ_READ says
 * whether it is.
 */
function readCSeq(start: usize, stop: usize): void {
  let p = start;
  let number: u64 = 0;
  while (p < stop && isDigit(load<u8>(p))) {
    number = number * 10 + <u64>(load<u8>(p) - 0x30);
    if (number > 0xffffffff) return;
    p++;
  }
  if (p == start || p >= stop || !isSws(load<u8>(p))) return;
  while (p < stop && isSws(load<u8>(p))) p++;
  const methodStart = p;
  while (p < stop && isToken(load<u8>(p))) p++;
  if (p == methodStart || p != stop) return;
  store<i32>(RESULTS, <i32>(<u32>number), CSEQ_NUMBER << 2);
  store<i32>(RESULTS, methodId(methodStart, p - methodStart), CSEQ_METHOD << 2);
  store<i32>(RESULTS, <i32>(methodStart - INPUT), CSEQ_METHOD_START << 2);
  store<i32>(RESULTS, <i32>(p - INPUT), CSEQ_METHOD_END << 2);
  store<i32>(RESULTS, 1, CSEQ_READ << 2);
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
  let lastRowRole: u8 = 0;
  let cseqSeen = false;
  store<i32>(RESULTS, 0, CSEQ_READ << 2);
  let nonAscii: i32 = 0;
  let nonAsciiAtLineStart: i32 = 0;
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
      // Bytes above 0x7F on this line (the CR LF before it has none).
      const nonAsciiHere = nonAscii + <i32>popcnt(highBits & ((<u32>1 << bit) - 1));
      const lineNonAscii = nonAsciiHere - nonAsciiAtLineStart;
      nonAsciiAtLineStart = nonAsciiHere;
      if (!startLineDone) {
        if (lineLength < 1 || lineLength > maxLine) return UNUSUAL;
        store<i32>(RESULTS, <i32>(cr_at - INPUT), START_LINE_STOP << 2);
        store<i32>(RESULTS, lineNonAscii, START_LINE_NON_ASCII << 2);
        readStartLine(cr_at, lineNonAscii);
        startLineDone = true;
      } else if (lineLength == 0) {
        // The empty line: the head ends at the CR LF before it.
        const headEnd = <i32>(cr_at - INPUT) - 2;
        if (headEnd > maxHead) return UNUSUAL;
        store<i32>(RESULTS, headEnd, HEAD_END << 2);
        store<i32>(RESULTS, <i32>(cr_at - INPUT) + 2, BODY_START << 2);
        store<i32>(RESULTS, nonAsciiHere, NON_ASCII << 2);
        store<i32>(RESULTS, contentLength, CONTENT_LENGTH << 2);
        return rows;
      } else {
        if (lineLength > maxLine) return UNUSUAL;
        const first = load<u8>(lineStart);
        if (first == SP || first == HT) {
          // A continuation line (§7.3.1) of the row before.
          if (rows == 0) return UNUSUAL;
          const row = RESULTS + <usize>((HEADER_FIELDS + (rows - 1) * ROW_FIELDS) << 2);
          // The value now runs to the end of this line, untrimmed: the lines are trimmed and
          // joined by the caller (parse.ts unfoldedValue).
          store<i32>(row, <i32>(cr_at - INPUT), VALUE_STOP << 2);
          store<i32>(row, 1, FOLDED << 2);
          store<i32>(row, load<i32>(row, ROW_NON_ASCII << 2) + lineNonAscii, ROW_NON_ASCII << 2);
          // A folded Content-Length is left to the general reading, a folded CSeq to the caller.
          if (lastRowRole == ROLE_CONTENT_LENGTH) return UNUSUAL;
          if (lastRowRole == ROLE_CSEQ) store<i32>(RESULTS, 0, CSEQ_READ << 2);
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
          const role: u8 = slot == 0 ? 0 : load<u8>(slot, 3);
          lastRowRole = role;
          // The value without the SWS around it.
          let valueStart = colon + 1;
          let valueStop = cr_at;
          while (valueStart < valueStop && isSws(load<u8>(valueStart))) valueStart++;
          while (valueStop > valueStart && isSws(load<u8>(valueStop - 1))) valueStop--;
          const row = RESULTS + <usize>((HEADER_FIELDS + rows * ROW_FIELDS) << 2);
          store<i32>(row, <i32>(lineStart - INPUT), NAME_START << 2);
          store<i32>(row, <i32>(nameEnd - INPUT), NAME_END << 2);
          store<i32>(row, <i32>(valueStart - INPUT), VALUE_START << 2);
          store<i32>(row, <i32>(valueStop - INPUT), VALUE_STOP << 2);
          store<i32>(row, 0, FOLDED << 2);
          store<i32>(row, id, NAME_ID << 2);
          store<i32>(row, lineNonAscii, ROW_NON_ASCII << 2);
          rows++;
          if (role == ROLE_CSEQ && !cseqSeen) {
            cseqSeen = true;
            readCSeq(valueStart, valueStop);
          } else if (role == ROLE_CONTENT_LENGTH) {
            // §20.14; several rows must agree (RFC 4475 §3.3.9): anything else is for the general reading.
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

// ---------------------------------------------------------------------------------------------
// Via (RFC 3261 §20.42, RFC 3581 rport)
// ---------------------------------------------------------------------------------------------

// scanVia's result fields.
const VIA_TRANSPORT: i32 = 0; // USUAL_TRANSPORTS index + 1, or 0 for another token
const VIA_TRANSPORT_START: i32 = 1;
const VIA_TRANSPORT_END: i32 = 2;
const VIA_HOST_START: i32 = 3;
const VIA_HOST_END: i32 = 4;
const VIA_HOST_IPV6: i32 = 5; // 1: an IPv6 reference, whose address the caller still checks
const VIA_PORT: i32 = 6; // -1 when absent
// Parameter fields.
const PARAM_NAME: i32 = 0; // 1 branch, 2 received, 3 rport, 0 another name
const PARAM_NAME_START: i32 = 1;
const PARAM_NAME_END: i32 = 2;
const PARAM_VALUE_START: i32 = 3; // -1 when the parameter has no value
const PARAM_VALUE_END: i32 = 4;

const BRANCH: i32 = 1;
const RECEIVED: i32 = 2;
const RPORT: i32 = 3;

function isDigit(c: u8): bool {
  return c >= 0x30 && c <= 0x39;
}

function isLowerAlnum(c: u8): bool {
  return isDigit(c) || (c >= 0x61 && c <= 0x7a);
}

function isToken(c: u8): bool {
  return load<u8>(TOKEN_TABLE + <usize>c) != 0;
}

/** The characters of a Via parameter name the usual shape allows: token characters but no upper case. */
function isLowerToken(c: u8): bool {
  return isToken(c) && !(c >= 0x41 && c <= 0x5a);
}

/**
 * The `length` (1 to 8) bytes at `at` as one little-endian number, to compare with a constant
 * such as BRANCH_WORD in one step. (It loads 8 bytes: the memory after any input is ours.)
 */
// @ts-ignore: decorator
@inline
function word(at: usize, length: usize): u64 {
  const all = load<u64>(at);
  return length >= 8 ? all : all & ((<u64>1 << (<u64>length << 3)) - 1);
}

// Constants for `word`: the ASCII bytes, first byte lowest.
const SIP_2_0_WORD: u64 = 0x2f302e322f504953; // "SIP/2.0/"
const UDP_WORD: u64 = 0x20504455; // "UDP "
const TCP_WORD: u64 = 0x20504354; // "TCP "
const TLS_WORD: u64 = 0x20534c54; // "TLS "
const WSS_WORD: u64 = 0x20535357; // "WSS "
const SCTP_WORD: u64 = 0x2050544353; // "SCTP "
const WS_WORD: u64 = 0x205357; // "WS "
const BRANCH_WORD: u64 = 0x68636e617262; // "branch"
const RECEIVED_WORD: u64 = 0x6465766965636572; // "received"
const RPORT_WORD: u64 = 0x74726f7072; // "rport"
const MADDR_WORD: u64 = 0x726464616d; // "maddr"
const TTL_WORD: u64 = 0x6c7474; // "ttl"

/**
 * IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT, each at most 255, exactly
 * [start, end): as uri.ts's isIPv4Span, and the same set as the octets of USUAL_VIA in
 * header-values.ts (`25[0-5]|2[0-4][0-9]|[01][0-9][0-9]|[0-9][0-9]?`).
 */
// @ts-ignore: decorator
@inline
function isIPv4(start: usize, end: usize): bool {
  return ipv4End(start, end) == end;
}

/** Where the IPv4address that starts at `start` ends (it need not end at `end`), or 0 when none starts there. */
// @ts-ignore: decorator
@inline
function ipv4End(start: usize, end: usize): usize {
  let p = start;
  for (let octet = 0; octet < 4; octet++) {
    if (octet > 0) {
      if (p >= end || load<u8>(p) != 0x2e) return 0;
      p++;
    }
    let value: i32 = 0;
    const digitsStart = p;
    while (p < end && isDigit(load<u8>(p)) && p - digitsStart < 3) {
      value = value * 10 + (<i32>load<u8>(p) - 0x30);
      p++;
    }
    if (p == digitsStart || value > 255 || (p < end && isDigit(load<u8>(p)))) return 0;
  }
  return p;
}

/**
 * Where the host name that starts at `start` ends, or 0 when none does: hostname =
 * *(domainlabel ".") toplabel ["."] in lower case (RFC 3261 §25.1), labels of alphanumerics
 * and inner hyphens, the top label starting with a letter, and then ":", ";", SP or the end.
 */
function usualHostNameEnd(start: usize, end: usize): usize {
  let p = start;
  let labelStart = start;
  while (true) {
    while (p < end) {
      const c = load<u8>(p);
      if (!isLowerAlnum(c) && c != 0x2d) break;
      p++;
    }
    if (p == labelStart || load<u8>(labelStart) == 0x2d || load<u8>(p - 1) == 0x2d) return 0;
    const labelEnd = p;
    if (p < end && load<u8>(p) == 0x2e) {
      p++;
      // A label follows, or the name ended with its optional dot.
      if (p < end && (isLowerAlnum(load<u8>(p)) || load<u8>(p) == 0x2d)) {
        labelStart = p;
        continue;
      }
    }
    // [labelStart, labelEnd) was the top label.
    const first = load<u8>(labelStart);
    if (first < 0x61 || first > 0x7a) return 0;
    if (p < end && load<u8>(p) != COLON && load<u8>(p) != 0x3b && load<u8>(p) != SP) return 0;
    return p;
  }
  return 0;
}

/**
 * Reads the via-parm in [start, stop) (positions in the input, as scanHead reports a row's
 * value: SWS around it allowed) if it has the usual shape that header-values.ts's
 * readUsualVia reads: `SIP/2.0/TRANSPORT host[:port]` then `;name[=value]` parameters, one SP
 * allowed before a ";", nothing else; the host lower case, an IPv4 address or a bracketed
 * IPv6 reference; parameter names lower case and distinct; `branch` with a value, `received`
 * an IPv4 address, `rport` empty or a port; no `maddr` or `ttl`. Returns the number of
 * parameters with their positions in the Via results, or UNUSUAL for anything else, which the
 * caller then reads with the general reader.
 */
export function scanVia(start: i32, stop: i32): i32 {
  let p = INPUT + <usize>start;
  let end = INPUT + <usize>stop;
  while (p < end && isSws(load<u8>(p))) p++;
  while (end > p && isSws(load<u8>(end - 1))) end--;
  // "SIP/2.0/"
  if (end - p < 10 || word(p, 8) != SIP_2_0_WORD) return UNUSUAL;
  p += 8;
  // transport = 1*(A-Z), then one SP (compared together with it)
  const transportStart = p;
  while (p < end && load<u8>(p) >= 0x41 && load<u8>(p) <= 0x5a) p++;
  const transportLength = p - transportStart;
  if (transportLength == 0 || p >= end || load<u8>(p) != SP) return UNUSUAL;
  let transport: i32 = 0;
  if (transportLength == 3) {
    const w = word(transportStart, 4);
    if (w == UDP_WORD) transport = 1;
    else if (w == TCP_WORD) transport = 2;
    else if (w == TLS_WORD) transport = 3;
    else if (w == WSS_WORD) transport = 6;
  } else if (transportLength == 4) {
    if (word(transportStart, 5) == SCTP_WORD) transport = 4;
  } else if (transportLength == 2) {
    if (word(transportStart, 3) == WS_WORD) transport = 5;
  }
  p++;

  // host, up to ":", ";", SP or the end
  const hostStart = p;
  let ipv6 = false;
  if (p < end && load<u8>(p) == 0x5b) {
    // "[" 1*(hex digit, lower case / ":" / ".") "]"
    p++;
    while (p < end) {
      const c = load<u8>(p);
      if (!(isDigit(c) || (c >= 0x61 && c <= 0x66) || c == COLON || c == 0x2e)) break;
      p++;
    }
    if (p == hostStart + 1 || p >= end || load<u8>(p) != 0x5d) return UNUSUAL;
    p++;
    ipv6 = true;
  } else {
    // The host runs to ":", ";", SP or the end. Usually it is an IPv4 address, read in one pass.
    const ipv4 = ipv4End(hostStart, end);
    if (ipv4 != 0 && (ipv4 == end || load<u8>(ipv4) == COLON || load<u8>(ipv4) == 0x3b || load<u8>(ipv4) == SP)) {
      p = ipv4;
    } else {
      // Otherwise a host name; what is neither (all digits and dots, say) is not usual.
      p = usualHostNameEnd(hostStart, end);
      if (p == 0) return UNUSUAL;
    }
  }
  const hostEnd = p;

  // [":" 1*5DIGIT], at most 65535
  let port: i32 = -1;
  if (p < end && load<u8>(p) == COLON) {
    p++;
    const digitsStart = p;
    port = 0;
    while (p < end && isDigit(load<u8>(p))) {
      port = port * 10 + (<i32>load<u8>(p) - 0x30);
      p++;
    }
    if (p == digitsStart || p - digitsStart > 5 || port > 65535) return UNUSUAL;
  }

  // *( [SP] ";" name [ "=" token ] )
  let count: i32 = 0;
  // The known names seen so far, as bits (1 << BRANCH, …): a repeated one is for the general
  // reader to refuse; other names are compared with the other names that are not known.
  let seen: i32 = 0;
  while (p < end) {
    if (load<u8>(p) == SP) p++;
    if (p >= end || load<u8>(p) != 0x3b) return UNUSUAL;
    p++;
    const nameStart = p;
    while (p < end && isLowerToken(load<u8>(p))) p++;
    const nameEnd = p;
    const nameLength = nameEnd - nameStart;
    if (nameLength == 0 || count == MAX_VIA_PARAMS) return UNUSUAL;
    const nameWord = nameLength <= 8 ? word(nameStart, nameLength) : 0;
    let name: i32 = 0;
    if (nameLength == 6 && nameWord == BRANCH_WORD) name = BRANCH;
    else if (nameLength == 8 && nameWord == RECEIVED_WORD) name = RECEIVED;
    else if (nameLength == 5 && nameWord == RPORT_WORD) name = RPORT;
    // maddr and ttl: the general reader checks them.
    else if ((nameLength == 5 && nameWord == MADDR_WORD) || (nameLength == 3 && nameWord == TTL_WORD)) return UNUSUAL;
    if (name != 0) {
      if ((seen & (1 << name)) != 0) return UNUSUAL;
      seen |= 1 << name;
    } else {
      for (let i: i32 = 0; i < count; i++) {
        const other = VIA_RESULTS + <usize>((VIA_FIELDS + i * VIA_PARAM_FIELDS) << 2);
        if (load<i32>(other, PARAM_NAME << 2) != 0) continue;
        const otherStart = INPUT + <usize>load<i32>(other, PARAM_NAME_START << 2);
        const otherLength = INPUT + <usize>load<i32>(other, PARAM_NAME_END << 2) - otherStart;
        if (otherLength == nameLength && sameBytes(otherStart, nameStart, nameLength)) return UNUSUAL;
      }
    }

    let valueStart: i32 = -1;
    let valueEnd: i32 = -1;
    if (p < end && load<u8>(p) == 0x3d) {
      p++;
      const from = p;
      // (After a value, the loop goes on only at SP or ";": a value that runs on into other
      // characters is refused there.)
      if (name == RECEIVED) {
        // An IPv4 address here; IPv6 and the rest: the general reader.
        p = ipv4End(from, end);
        if (p == 0) return UNUSUAL;
      } else if (name == RPORT) {
        // Digits worth at most 65535.
        let value: i32 = 0;
        while (p < end && isDigit(load<u8>(p))) {
          value = value * 10 + (<i32>load<u8>(p) - 0x30);
          if (value > 65535) return UNUSUAL;
          p++;
        }
        if (p == from) return UNUSUAL;
      } else {
        while (p < end && isToken(load<u8>(p))) p++;
        if (p == from) return UNUSUAL;
      }
      valueStart = <i32>(from - INPUT);
      valueEnd = <i32>(p - INPUT);
    } else if (name == BRANCH || name == RECEIVED) {
      // branch and received need a value
      return UNUSUAL;
    }
    const param = VIA_RESULTS + <usize>((VIA_FIELDS + count * VIA_PARAM_FIELDS) << 2);
    store<i32>(param, name, PARAM_NAME << 2);
    store<i32>(param, <i32>(nameStart - INPUT), PARAM_NAME_START << 2);
    store<i32>(param, <i32>(nameEnd - INPUT), PARAM_NAME_END << 2);
    store<i32>(param, valueStart, PARAM_VALUE_START << 2);
    store<i32>(param, valueEnd, PARAM_VALUE_END << 2);
    count++;
  }
  store<i32>(VIA_RESULTS, transport, VIA_TRANSPORT << 2);
  store<i32>(VIA_RESULTS, <i32>(transportStart - INPUT), VIA_TRANSPORT_START << 2);
  store<i32>(VIA_RESULTS, <i32>(transportStart + transportLength - INPUT), VIA_TRANSPORT_END << 2);
  store<i32>(VIA_RESULTS, <i32>(hostStart - INPUT), VIA_HOST_START << 2);
  store<i32>(VIA_RESULTS, <i32>(hostEnd - INPUT), VIA_HOST_END << 2);
  store<i32>(VIA_RESULTS, ipv6 ? 1 : 0, VIA_HOST_IPV6 << 2);
  store<i32>(VIA_RESULTS, port, VIA_PORT << 2);
  return count;
}

// ---------------------------------------------------------------------------------------------
// name-addr / addr-spec with header parameters (§20.10, §20.20 From, §20.39 To)
// ---------------------------------------------------------------------------------------------

// scanNameAddr's result fields.
const DISPLAY_KIND: i32 = 0; // 0 none, 1 quoted (the span is inside the quotes), 2 tokens
const DISPLAY_START: i32 = 1;
const DISPLAY_END: i32 = 2;
const DISPLAY_NON_ASCII: i32 = 3; // 1 when the display name has bytes above 0x7F (UTF-8 to decode)
const URI_START: i32 = 4;
const URI_END: i32 = 5;

const DQUOTE: u8 = 0x22;
const SEMICOLON: u8 = 0x3b;
const LAQUOT: u8 = 0x3c;
const RAQUOT: u8 = 0x3e;
const TAG_WORD: u64 = 0x676174; // "tag"
const TAG: i32 = 1;

/**
 * Reads `;name[=value]` header parameters from `p` to `end`, names lower case and distinct,
 * values tokens, nothing else (header-values.ts's USUAL_PARAMS with the generic rules), into
 * the parameter fields after `fields` i32s at `results`. Returns how many, or UNUSUAL.
 */
function scanUsualParams(p: usize, end: usize, results: usize, fields: i32): i32 {
  let count: i32 = 0;
  while (p < end) {
    if (load<u8>(p) != SEMICOLON) return UNUSUAL;
    p++;
    const nameStart = p;
    while (p < end && isLowerToken(load<u8>(p))) p++;
    const nameEnd = p;
    if (nameEnd == nameStart) return UNUSUAL;
    let valueStart: i32 = -1;
    let valueEnd: i32 = -1;
    if (p < end && load<u8>(p) == 0x3d) {
      p++;
      const from = p;
      while (p < end && isToken(load<u8>(p))) p++;
      if (p == from) return UNUSUAL;
      valueStart = <i32>(from - INPUT);
      valueEnd = <i32>(p - INPUT);
    }
    if (count == MAX_VIA_PARAMS) return UNUSUAL;
    const nameLength = nameEnd - nameStart;
    for (let i: i32 = 0; i < count; i++) {
      const other = results + <usize>((fields + i * VIA_PARAM_FIELDS) << 2);
      const otherStart = INPUT + <usize>load<i32>(other, PARAM_NAME_START << 2);
      const otherLength = INPUT + <usize>load<i32>(other, PARAM_NAME_END << 2) - otherStart;
      if (otherLength == nameLength && sameBytes(otherStart, nameStart, nameLength)) return UNUSUAL;
    }
    const param = results + <usize>((fields + count * VIA_PARAM_FIELDS) << 2);
    store<i32>(param, nameLength == 3 && word(nameStart, 3) == TAG_WORD ? TAG : 0, PARAM_NAME << 2);
    store<i32>(param, <i32>(nameStart - INPUT), PARAM_NAME_START << 2);
    store<i32>(param, <i32>(nameEnd - INPUT), PARAM_NAME_END << 2);
    store<i32>(param, valueStart, PARAM_VALUE_START << 2);
    store<i32>(param, valueEnd, PARAM_VALUE_END << 2);
    count++;
  }
  return count;
}

/**
 * Reads the name-addr or addr-spec with header parameters in [start, stop) (a row's value, SWS
 * around it allowed) if it has the usual shape, which header-values.ts's readNameAddr reads the
 * same way:
 *   `"display name" <uri>;params`: no quoted-pair and no control character in the quotes;
 *   `Display Name <uri>;params`: tokens with one SP between them;
 *   `<uri>;params`, or `uri;params` (no `,` `?` `<` `>` `"` and nothing above 0x7F in it);
 * SWS allowed only between a display name and "<"; the parameters as scanUsualParams reads
 * them, right after the ">" or the URI. The URI itself is not checked (the message parses it
 * when it is first read). Returns the number of parameters with everything's position in the
 * name-addr results, or UNUSUAL.
 */
export function scanNameAddr(start: i32, stop: i32): i32 {
  let p = INPUT + <usize>start;
  let end = INPUT + <usize>stop;
  while (p < end && isSws(load<u8>(p))) p++;
  while (end > p && isSws(load<u8>(end - 1))) end--;
  if (p >= end) return UNUSUAL;

  let displayKind: i32 = 0;
  let displayStart = p;
  let displayEnd = p;
  let displayNonAscii = false;
  let uriStart: usize;
  let uriEnd: usize;
  const first = load<u8>(p);
  let angle = first == LAQUOT;
  if (first == DQUOTE) {
    // quoted-string without quoted-pairs: qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
    p++;
    displayStart = p;
    while (true) {
      if (p >= end) return UNUSUAL;
      const c = load<u8>(p);
      if (c == DQUOTE) break;
      if (c == 0x5c || c == 0x7f || (c < SP && c != HT)) return UNUSUAL;
      if (c >= 0x80) displayNonAscii = true;
      p++;
    }
    displayEnd = p;
    displayKind = 1;
    p++;
    while (p < end && isSws(load<u8>(p))) p++;
    if (p >= end || load<u8>(p) != LAQUOT) return UNUSUAL;
    angle = true;
  } else if (!angle) {
    // display-name = *(token LWS) before "<"; a first word followed by neither is the start of
    // a bare addr-spec.
    while (p < end && isToken(load<u8>(p))) p++;
    if (p < end && (isSws(load<u8>(p)) || load<u8>(p) == LAQUOT)) {
      while (true) {
        if (p == displayStart || p >= end) return UNUSUAL;
        displayEnd = p;
        let c = load<u8>(p);
        if (c == SP) {
          p++;
          if (p >= end) return UNUSUAL;
          c = load<u8>(p);
        }
        if (c == LAQUOT) break;
        if (!isToken(c) || displayEnd + 1 != p) return UNUSUAL;
        while (p < end && isToken(load<u8>(p))) p++;
      }
      displayKind = 2;
      angle = true;
    } else {
      p = displayStart;
    }
  }

  if (angle) {
    // "<" URI ">": the URI runs to the first ">".
    uriStart = p + 1;
    uriEnd = uriStart;
    while (uriEnd < end && load<u8>(uriEnd) != RAQUOT) uriEnd++;
    if (uriEnd >= end) return UNUSUAL;
    p = uriEnd + 1;
  } else {
    // addr-spec, up to ";" or the end.
    uriStart = p;
    while (p < end) {
      const c = load<u8>(p);
      if (c == SEMICOLON) break;
      if (c == SP || c == HT || c == 0x2c || c == 0x3f || c == LAQUOT || c == RAQUOT || c == DQUOTE) return UNUSUAL;
      p++;
    }
    uriEnd = p;
  }
  for (let q = uriStart; q < uriEnd; q++) if (load<u8>(q) >= 0x80) return UNUSUAL;

  const count = scanUsualParams(p, end, NAME_ADDR_RESULTS, NAME_ADDR_FIELDS);
  if (count < 0) return UNUSUAL;
  store<i32>(NAME_ADDR_RESULTS, displayKind, DISPLAY_KIND << 2);
  store<i32>(NAME_ADDR_RESULTS, <i32>(displayStart - INPUT), DISPLAY_START << 2);
  store<i32>(NAME_ADDR_RESULTS, <i32>(displayEnd - INPUT), DISPLAY_END << 2);
  store<i32>(NAME_ADDR_RESULTS, displayNonAscii ? 1 : 0, DISPLAY_NON_ASCII << 2);
  store<i32>(NAME_ADDR_RESULTS, <i32>(uriStart - INPUT), URI_START << 2);
  store<i32>(NAME_ADDR_RESULTS, <i32>(uriEnd - INPUT), URI_END << 2);
  return count;
}
