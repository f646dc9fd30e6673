/**
 * Small, dependency-free DER helpers shared by the CMS modules (RFC 5652) and the certificate
 * code: the typed `CmsError`, object identifiers, PEM (RFC 7468), a bounded BER/DER reader
 * and a DER writer (X.690).
 *
 * Why our own reader and writer next to asn1js/pkijs: CMS signatures cover exact bytes (the
 * DER of the signed attributes, the embedded certificates as they were issued), the receive
 * path must turn any hostile input into a `CmsError` without hanging, and the send path must
 * cost little more than the signature itself. A reader that returns views into the input, and
 * a writer that concatenates byte arrays, give all three in a few lines. pkijs stays in use for
 * building and describing certificates, where none of that matters.
 */

// ---------------------------------------------------------------------------------------------
// Errors

/** Machine-readable reason of a `CmsError`; stable, so callers can map it to a SIP answer. */
export type CmsErrorCode =
  /** Not decodable as the expected ASN.1 structure (garbage, truncated, wrong shape). */
  | 'malformed'
  /** Well-formed CMS, but another content type than the caller asked for. */
  | 'unexpected-content-type'
  /** An algorithm (digest, signature, key, curve, cipher) we do not accept. */
  | 'unsupported-algorithm'
  /** The signature or the messageDigest attribute does not match the content. */
  | 'bad-signature'
  /** A SignedData without any SignerInfo where a signature was required. */
  | 'no-signer'
  /** More than one SignerInfo: RFC 3261 §23.3 allows one signer per body. */
  | 'several-signers'
  /** No embedded or candidate certificate matches the signer identifier. */
  | 'unknown-signer'
  /** A detached signature (no eContent) was given without the content it covers. */
  | 'detached-content-missing'
  /** A private key that does not belong to the certificate it is used with. */
  | 'key-mismatch'
  /** We hold no key for any recipient of an enveloped message (RFC 3261 §23.2: answer 493). */
  | 'no-recipient'
  /** Decryption or its integrity check failed (wrong key, tampered ciphertext or tag). */
  | 'decryption-failed'
  /** The caller passed something unusable (an empty certificate list, an unknown option). */
  | 'invalid-argument';

/** The one error type the CMS and certificate modules throw on bad input. */
export class CmsError extends Error {
  override readonly name = 'CmsError';
  constructor(
    readonly code: CmsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// ---------------------------------------------------------------------------------------------
// Object identifiers (dotted form), with the RFC that assigns each one.

export const OID = {
  // Content types, RFC 5652 §4–§9, RFC 5083 §1
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  envelopedData: '1.2.840.113549.1.7.3',
  authEnvelopedData: '1.2.840.113549.1.9.16.1.23',
  // Attributes, RFC 5652 §11, RFC 8551 §2.5.2
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  smimeCapabilities: '1.2.840.113549.1.9.15',
  // Digests, RFC 5754 §2
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  // Public keys and curves, RFC 5480 §2.1.1, RFC 8410 §3
  ecPublicKey: '1.2.840.10045.2.1',
  secp256r1: '1.2.840.10045.3.1.7',
  secp384r1: '1.3.132.0.34',
  secp521r1: '1.3.132.0.35',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ed25519: '1.3.101.112',
  x25519: '1.3.101.110',
  // Signatures, RFC 5754 §3, RFC 4055 §3, RFC 8419 §2.3
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  sha256WithRsaEncryption: '1.2.840.113549.1.1.11',
  sha384WithRsaEncryption: '1.2.840.113549.1.1.12',
  sha512WithRsaEncryption: '1.2.840.113549.1.1.13',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  // Key transport, key agreement, key wrap and content encryption, RFC 3560, RFC 5753, RFC 3565, RFC 5084
  rsaesOaep: '1.2.840.113549.1.1.7',
  dhSinglePassStdDhSha256Kdf: '1.3.132.1.11.1',
  aes128Wrap: '2.16.840.1.101.3.4.1.5',
  aes256Wrap: '2.16.840.1.101.3.4.1.45',
  aes128Cbc: '2.16.840.1.101.3.4.1.2',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  aes128Gcm: '2.16.840.1.101.3.4.1.6',
  aes256Gcm: '2.16.840.1.101.3.4.1.46',
  // Certificate names and extensions, RFC 5280 §4.1.2.4, §4.2
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  extKeyUsage: '2.5.29.37',
  emailProtection: '1.3.6.1.5.5.7.3.4',
} as const;

// ---------------------------------------------------------------------------------------------
// Bytes and PEM

/**
 * A copy of `bytes` in a plain Uint8Array of its own. Not `bytes.slice()`: on a Node Buffer
 * (what readFileSync and sockets give) `slice` returns a view that shares memory.
 */
export function copyBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

/** An ArrayBuffer holding exactly these bytes (WebCrypto and pkijs want ArrayBuffers). */
export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) {
    return bytes.buffer;
  }
  return copyBytes(bytes).buffer;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  // The same array often comes back (a pinned certificate is the signer's): no need to read it.
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** RFC 7468 text encoding: `-----BEGIN label-----`, base64 in 64-column lines, LF line ends. */
export function pemEncode(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

/** Every PEM block in `text`, in order (explanatory text around them is ignored, RFC 7468 §2). */
export function pemDecodeAll(text: string): { label: string; der: Uint8Array }[] {
  const blocks: { label: string; der: Uint8Array }[] = [];
  for (const match of text.matchAll(PEM_BLOCK)) {
    const label = match[1] ?? '';
    const body = (match[2] ?? '').replace(/\s+/g, '');
    // RFC 7468 §3 lax parsing allows whitespace; anything else (headers of legacy
    // "Proc-Type" encrypted PEM, stray characters) is not base64 and is refused.
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) {
      throw new CmsError('malformed', `PEM block "${label}" is not plain base64`);
    }
    blocks.push({ label, der: new Uint8Array(Buffer.from(body, 'base64')) });
  }
  return blocks;
}

/** The first PEM block in `text`. */
export function pemDecode(text: string): { label: string; der: Uint8Array } {
  const first = pemDecodeAll(text)[0];
  if (!first) throw new CmsError('malformed', 'no PEM block found');
  return first;
}

// ---------------------------------------------------------------------------------------------
// Reading BER/DER (X.690 §8). Elements are views into the input, nothing is copied.

export const TagClass = { universal: 0, application: 1, context: 2, private: 3 } as const;

/** Universal tag numbers used here (X.680 §8.4). */
export const Tag = {
  boolean: 1,
  integer: 2,
  bitString: 3,
  octetString: 4,
  null: 5,
  oid: 6,
  utf8String: 12,
  sequence: 16,
  set: 17,
  printableString: 19,
  ia5String: 22,
  utcTime: 23,
  generalizedTime: 24,
} as const;

export interface DerElement {
  readonly tagClass: number;
  readonly constructed: boolean;
  readonly tagNumber: number;
  /** The whole element: identifier, length and content octets (and end-of-contents, if any). */
  readonly bytes: Uint8Array;
  /** The content octets only (for the indefinite form, without the end-of-contents octets). */
  readonly content: Uint8Array;
}

/** Deeper nesting than this is refused: CMS needs about 12 levels, attackers need thousands. */
const MAX_DEPTH = 64;

/**
 * Reads the one element that `bytes` must consist of. `what` names it in error messages.
 * Trailing bytes are refused: a body is exactly one ContentInfo (RFC 5652 §3).
 */
export function readDer(bytes: Uint8Array, what: string): DerElement {
  const element = readElementAt(bytes, 0, bytes.length, what, 0);
  if (element.end !== bytes.length) {
    throw new CmsError('malformed', `${what}: ${bytes.length - element.end} bytes after the end`);
  }
  return element;
}

/** The elements inside a constructed element, in order. */
export function readChildren(parent: DerElement, what: string): DerElement[] {
  if (!parent.constructed) throw new CmsError('malformed', `${what}: expected a constructed element`);
  // Elements of this reader know where they sit in their buffer; others are read from `content`.
  let buf: Uint8Array, start: number, end: number;
  if (parent instanceof Element) {
    buf = parent.buf;
    start = parent.contentStart;
    end = parent.contentEnd;
  } else {
    buf = parent.content;
    start = 0;
    end = buf.length;
  }
  const children: DerElement[] = [];
  for (let offset = start; offset < end; ) {
    const child = readElementAt(buf, offset, end, what, 1);
    children.push(child);
    offset = child.end;
  }
  return children;
}

/**
 * An element as offsets into the input; `bytes` and `content` are views made on demand
 * (creating a subarray costs more than reading a header, and most are never asked for).
 */
class Element implements DerElement {
  constructor(
    readonly buf: Uint8Array,
    readonly start: number,
    readonly contentStart: number,
    readonly contentEnd: number,
    readonly end: number,
    readonly tagClass: number,
    readonly constructed: boolean,
    readonly tagNumber: number,
  ) {}

  get bytes(): Uint8Array {
    return this.buf.subarray(this.start, this.end);
  }

  get content(): Uint8Array {
    return this.buf.subarray(this.contentStart, this.contentEnd);
  }
}

function readElementAt(buf: Uint8Array, start: number, end: number, what: string, depth: number): Element {
  if (depth > MAX_DEPTH) throw new CmsError('malformed', `${what}: nested too deeply`);
  let offset = start;
  if (offset >= end) throw truncated(what);
  const first = buf[offset++] as number;
  const tagClass = first >> 6;
  const constructed = (first & 0x20) !== 0;
  let tagNumber = first & 0x1f;
  if (tagNumber === 0x1f) {
    // High tag number form (X.690 §8.1.2.4): base-128 digits; more than 4 of them is nonsense here.
    tagNumber = 0;
    for (let digits = 0; ; digits++) {
      if (offset >= end) throw truncated(what);
      if (digits === 4) throw new CmsError('malformed', `${what}: tag number too large`);
      const byte = buf[offset++] as number;
      tagNumber = tagNumber * 128 + (byte & 0x7f);
      if ((byte & 0x80) === 0) break;
    }
  }
  if (offset >= end) throw truncated(what);
  const lengthByte = buf[offset++] as number;
  if (lengthByte === 0x80) {
    // Indefinite form (BER only, X.690 §8.1.3.6): children up to an end-of-contents pair.
    if (!constructed) throw new CmsError('malformed', `${what}: indefinite length on a primitive element`);
    const contentStart = offset;
    for (;;) {
      if (offset + 2 <= end && buf[offset] === 0 && buf[offset + 1] === 0) {
        return new Element(buf, start, contentStart, offset, offset + 2, tagClass, constructed, tagNumber);
      }
      offset = readElementAt(buf, offset, end, what, depth + 1).end;
    }
  }
  let length = lengthByte;
  if (lengthByte > 0x80) {
    const count = lengthByte & 0x7f;
    // Four length octets cover 4 GiB; more cannot describe anything that fits in memory.
    if (count > 4) throw new CmsError('malformed', `${what}: length field too long`);
    length = 0;
    for (let i = 0; i < count; i++) {
      if (offset >= end) throw truncated(what);
      length = length * 256 + (buf[offset++] as number);
    }
  }
  if (length > end - offset) throw truncated(what);
  return new Element(buf, start, offset, offset + length, offset + length, tagClass, constructed, tagNumber);
}

/** A function, not a closure per element: this reader runs for every element of every message. */
function truncated(what: string): CmsError {
  return new CmsError('malformed', `${what}: truncated`);
}

export function isUniversal(element: DerElement, tagNumber: number): boolean {
  return element.tagClass === TagClass.universal && element.tagNumber === tagNumber;
}

export function isContext(element: DerElement, tagNumber: number): boolean {
  return element.tagClass === TagClass.context && element.tagNumber === tagNumber;
}

/** Throws `malformed` unless `element` is the universal type `tagNumber`. */
export function expectUniversal(element: DerElement | undefined, tagNumber: number, what: string): DerElement {
  if (!element || !isUniversal(element, tagNumber)) throw new CmsError('malformed', `${what}: missing or of the wrong type`);
  return element;
}

/** The children of a SEQUENCE (or SET) at `element`. */
export function readSequence(element: DerElement | undefined, what: string, tagNumber: number = Tag.sequence): DerElement[] {
  return readChildren(expectUniversal(element, tagNumber, what), what);
}

/** The dotted form of an OBJECT IDENTIFIER element (X.690 §8.19). */
export function readOid(element: DerElement | undefined, what: string): string {
  const oid = expectUniversal(element, Tag.oid, what);
  // Read in place (no subarray) when the element is one of ours; this runs a dozen times per message.
  let buf: Uint8Array, start: number, end: number;
  if (oid instanceof Element) {
    buf = oid.buf;
    start = oid.contentStart;
    end = oid.contentEnd;
  } else {
    buf = oid.content;
    start = 0;
    end = buf.length;
  }
  if (end === start || end - start > 64) throw new CmsError('malformed', `${what}: bad object identifier`);
  // The OIDs of the `OID` table (nearly all a message holds) come back as the table's own strings.
  const known = knownOid(buf, start, end);
  if (known !== undefined) return known;
  let text = '';
  let value = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i] as number;
    if (value === 0 && byte === 0x80) throw new CmsError('malformed', `${what}: non-minimal object identifier`);
    value = value * 128 + (byte & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 256) throw new CmsError('malformed', `${what}: object identifier arc too large`);
    if ((byte & 0x80) === 0) {
      if (text === '') text = value < 80 ? `${Math.floor(value / 40)}.${value % 40}` : `2.${value - 80}`;
      else text += `.${value}`;
      value = 0;
    } else if (i === end - 1) {
      throw new CmsError('malformed', `${what}: truncated object identifier`);
    }
  }
  return text;
}

/** Content octets → dotted form of every OID in `OID`, bucketed by `oidHash`; built on first use. */
let knownOids: Map<number, { readonly content: Uint8Array; readonly dotted: string }[]> | undefined;

function oidHash(buf: Uint8Array, start: number, end: number): number {
  let hash = end - start;
  for (let i = start; i < end; i++) hash = (Math.imul(hash, 31) + (buf[i] as number)) | 0;
  return hash;
}

/**
 * The dotted form of `buf[start..end)` if those are the content octets of a known OID. Those
 * encodings are valid, so a match gives exactly what decoding would, without building a string.
 */
function knownOid(buf: Uint8Array, start: number, end: number): string | undefined {
  if (knownOids === undefined) {
    knownOids = new Map();
    for (const dotted of Object.values(OID)) {
      const content = derOid(dotted).subarray(2); // every OID here is shorter than 128 octets
      const hash = oidHash(content, 0, content.length);
      const bucket = knownOids.get(hash);
      if (bucket === undefined) knownOids.set(hash, [{ content, dotted }]);
      else bucket.push({ content, dotted });
    }
  }
  const bucket = knownOids.get(oidHash(buf, start, end));
  if (bucket === undefined) return undefined;
  for (const candidate of bucket) {
    const content = candidate.content;
    if (content.length !== end - start) continue;
    let same = true;
    for (let i = 0; i < content.length && same; i++) same = content[i] === buf[start + i];
    if (same) return candidate.dotted;
  }
  return undefined;
}

/**
 * The value of an OCTET STRING, joining the segments of the constructed form that BER allows
 * and that some signers use for large content (X.690 §8.7.3; pkijs splits eContent this way).
 */
export function readOctetString(element: DerElement | undefined, what: string, depth = 0): Uint8Array {
  const octets = expectUniversal(element, Tag.octetString, what);
  if (!octets.constructed) return octets.content;
  if (depth >= MAX_DEPTH) throw new CmsError('malformed', `${what}: nested too deeply`);
  return concatBytes(readChildren(octets, what).map((segment) => readOctetString(segment, what, depth + 1)));
}

/** UTCTime or GeneralizedTime (RFC 5280 §4.1.2.5 profile: seconds, "Z"; fractions accepted). */
export function readTime(element: DerElement | undefined, what: string): Date {
  if (!element || !(isUniversal(element, Tag.utcTime) || isUniversal(element, Tag.generalizedTime))) {
    throw new CmsError('malformed', `${what}: not a time`);
  }
  const content = element.content;
  if (content.length > 32) throw new CmsError('malformed', `${what}: time too long`);
  const utc = isUniversal(element, Tag.utcTime);
  const text = (): string => String.fromCharCode(...content);
  let year: number, month: number, day: number, hour: number, minute: number, second: number, millis: number;
  // The DER forms (X.690 §11.7, §11.8; all RFC 5280 allows) are read straight from the octets:
  // every certificate has two of these and every signature one.
  const derForm = utc ? content.length === 13 && content[12] === 0x5a : content.length === 15 && content[14] === 0x5a;
  const digits = derForm ? decimalDigits(content, 0, content.length - 1) : -1;
  if (derForm && digits >= 0) {
    const yearDigits = utc ? 2 : 4;
    year = decimalDigits(content, 0, yearDigits);
    month = decimalDigits(content, yearDigits, yearDigits + 2);
    day = decimalDigits(content, yearDigits + 2, yearDigits + 4);
    hour = decimalDigits(content, yearDigits + 4, yearDigits + 6);
    minute = decimalDigits(content, yearDigits + 6, yearDigits + 8);
    second = decimalDigits(content, yearDigits + 8, yearDigits + 10);
    millis = 0;
  } else {
    const match = (utc ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?Z$/ : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?Z$/).exec(text());
    if (!match) throw new CmsError('malformed', `${what}: unsupported time "${text()}"`);
    year = Number(match[1]);
    [month, day, hour, minute, second] = [match[2], match[3], match[4], match[5], match[6] ?? '0'].map(Number) as [number, number, number, number, number];
    millis = match[7] ? Number(`0.${match[7]}`) * 1000 : 0;
  }
  // RFC 5280 §4.1.2.5.1: two-digit years 50–99 are 19xx, 00–49 are 20xx.
  if (utc) year += year >= 50 ? 1900 : 2000;
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, millis));
  date.setUTCFullYear(year); // Date.UTC would read years 0–99 as 1900–1999
  // Date.UTC rolls 31 February over into March; a real calendar date reads back unchanged.
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day || date.getUTCHours() !== hour || date.getUTCMinutes() !== minute) {
    throw new CmsError('malformed', `${what}: invalid date "${text()}"`);
  }
  return date;
}

/** The decimal number written by the ASCII digits `bytes[start..end)`, or -1 if one is not a digit. */
function decimalDigits(bytes: Uint8Array, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = (bytes[i] as number) - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Writing DER (X.690 §10)

/** One element: identifier octet `tag` (class, constructed bit and number < 31), length, content. */
export function derTlv(tag: number, ...content: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of content) length += part.length;
  let lengthOctets = 0; // after the first length octet, in the long form (X.690 §8.1.3.5)
  if (length > 0x7f) for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) lengthOctets++;
  // One allocation for the whole element: this runs for every node of every message we sign.
  const out = new Uint8Array(2 + lengthOctets + length);
  out[0] = tag;
  if (lengthOctets === 0) out[1] = length;
  else {
    out[1] = 0x80 | lengthOctets;
    for (let i = lengthOctets, rest = length; i >= 1; i--, rest = Math.floor(rest / 256)) out[1 + i] = rest & 0xff;
  }
  let offset = 2 + lengthOctets;
  for (const part of content) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export const derSequence = (...content: readonly Uint8Array[]): Uint8Array => derTlv(0x30, ...content);

/** SET OF in DER: the encodings sorted as octet strings (X.690 §11.6). */
export function derSetOf(elements: readonly Uint8Array[]): Uint8Array {
  return derTlv(0x31, ...[...elements].sort(compareBytes));
}

/** `[n] EXPLICIT` / constructed context tag. */
export const derExplicit = (tagNumber: number, ...content: readonly Uint8Array[]): Uint8Array => derTlv(0xa0 | tagNumber, ...content);

export const derOctetString = (value: Uint8Array): Uint8Array => derTlv(0x04, value);

/** A non-negative INTEGER from its big-endian magnitude (leading zeros dropped, sign octet added). */
export function derUnsignedInteger(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  const needsSignOctet = trimmed.length === 0 || ((trimmed[0] as number) & 0x80) !== 0;
  return needsSignOctet ? derTlv(0x02, Uint8Array.of(0), trimmed) : derTlv(0x02, trimmed);
}

export const derSmallInteger = (value: number): Uint8Array => derUnsignedInteger(Uint8Array.of(value));

const oidCache = new Map<string, Uint8Array>();

/** An OBJECT IDENTIFIER element from its dotted form (cached: the same few OIDs recur). */
export function derOid(dotted: string): Uint8Array {
  const cached = oidCache.get(dotted);
  if (cached) return cached;
  const arcs = dotted.split('.').map(Number);
  const [a = 0, b = 0, ...rest] = arcs;
  const octets: number[] = [];
  for (const arc of [a * 40 + b, ...rest]) {
    const digits = [arc & 0x7f];
    for (let value = Math.floor(arc / 128); value > 0; value = Math.floor(value / 128)) digits.unshift(0x80 | (value & 0x7f));
    octets.push(...digits);
  }
  const encoded = derTlv(0x06, Uint8Array.from(octets));
  oidCache.set(dotted, encoded);
  return encoded;
}

export const DER_NULL = Uint8Array.of(0x05, 0x00);

/** AlgorithmIdentifier with optional parameters (absent when `parameters` is undefined). */
export function derAlgorithm(oid: string, parameters?: Uint8Array): Uint8Array {
  return parameters ? derSequence(derOid(oid), parameters) : derSequence(derOid(oid));
}

/**
 * Time as RFC 5652 §11.3 / RFC 5280 §4.1.2.5 want it: UTCTime for 1950–2049, GeneralizedTime
 * otherwise, whole seconds, always "Z".
 */
export function derTime(date: Date): Uint8Array {
  const year = date.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) throw new CmsError('invalid-argument', `time ${String(date)} cannot be encoded`);
  const utc = year >= 1950 && year < 2050;
  const two = (value: number): string => (value < 10 ? `0${value}` : String(value));
  const text =
    (utc ? two(year % 100) : String(year).padStart(4, '0')) +
    two(date.getUTCMonth() + 1) +
    two(date.getUTCDate()) +
    two(date.getUTCHours()) +
    two(date.getUTCMinutes()) +
    two(date.getUTCSeconds()) +
    'Z';
  const out = new Uint8Array(2 + text.length);
  out[0] = utc ? 0x17 : 0x18;
  out[1] = text.length;
  for (let i = 0; i < text.length; i++) out[2 + i] = text.charCodeAt(i);
  return out;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const diff = (a[i] as number) - (b[i] as number);
    if (diff !== 0) return diff;
  }
  return a.length - b.length;
}
