/**
 * One MIME entity (RFC 2045 §2.4: header fields, an empty line, the body), the unit that
 * S/MIME signs and encrypts (RFC 8551 §3.1). Inside a SignedData or an AuthEnvelopedData the
 * content is such an entity, for example
 *
 *     Content-Type: application/pkcs7-mime; smime-type=signed-data CRLF
 *     CRLF
 *     <DER of the SignedData>
 *
 * Bytes, never text: the body is DER or user text and is sliced out as is. Only the header
 * section is decoded. `Content-Transfer-Encoding` is undone for `base64` (RFC 8591 §5: binary
 * is what SIP uses, base64 must still be read) and taken as is for 7bit, 8bit and binary.
 * Bare-LF line ends and folded header lines are accepted (OpenSSL and Unix tools write them).
 *
 * Robustness: only `ParseError` is thrown, the header section is bounded (`MAX_HEADER_BYTES`,
 * `MAX_HEADERS`), and nothing is recursive.
 */
import { parseContentType, type ContentType } from '../../sip/header-values.js';
import { ParseError } from '../../sip/message/parse-error.js';

/** A MIME entity needs two or three header fields; more than this is abuse. */
export const MAX_HEADERS = 32;
/** The header section, blank line included, may not be longer than this. */
export const MAX_HEADER_BYTES = 4096;

export interface MimeEntity {
  /** Header fields in order, names as written, values unfolded and trimmed. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** The Content-Type, or `text/plain; charset=us-ascii` when there is none (RFC 2045 §5.2). */
  readonly contentType: ContentType;
  /** The body with the transfer encoding undone (a view into the input unless it was base64). */
  readonly body: Uint8Array;
}

const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Reads one MIME entity. Throws `ParseError` (`truncated`, `too-many-headers`, `bad-header`, `bad-header-value`). */
export function parseMimeEntity(bytes: Uint8Array): MimeEntity {
  const lines: string[] = [];
  let offset = 0;
  for (;;) {
    if (offset >= bytes.length || offset > MAX_HEADER_BYTES) {
      throw new ParseError(offset > MAX_HEADER_BYTES ? 'line-too-long' : 'truncated', 'MIME entity: no empty line ends the header section');
    }
    const lf = bytes.indexOf(0x0a, offset);
    if (lf < 0) throw new ParseError('truncated', 'MIME entity: no empty line ends the header section');
    const end = lf > offset && bytes[lf - 1] === 0x0d ? lf - 1 : lf;
    const line = Buffer.from(bytes.buffer, bytes.byteOffset + offset, end - offset).toString('latin1');
    offset = lf + 1;
    if (line === '') break;
    if (line.startsWith(' ') || line.startsWith('\t')) {
      // A folded continuation line (RFC 5322 §2.2.3) belongs to the field before it.
      if (lines.length === 0) throw new ParseError('bad-header', 'MIME entity: continuation line before any header field');
      lines[lines.length - 1] += ` ${line.trim()}`;
      continue;
    }
    if (lines.length >= MAX_HEADERS) throw new ParseError('too-many-headers', `MIME entity: more than ${MAX_HEADERS} header fields`);
    lines.push(line);
  }
  if (offset > MAX_HEADER_BYTES) throw new ParseError('line-too-long', 'MIME entity: header section too long');

  const headers: Array<[string, string]> = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trimEnd() : '';
    if (!FIELD_NAME.test(name)) throw new ParseError('bad-header', `MIME entity: malformed header line ${JSON.stringify(line.slice(0, 40))}`);
    headers.push([name, line.slice(colon + 1).trim()]);
  }

  const contentTypes = headers.filter(([name]) => name.toLowerCase() === 'content-type');
  if (contentTypes.length > 1) throw new ParseError('bad-header-value', 'MIME entity: repeated Content-Type', 'Content-Type');
  const contentType = parseContentType(contentTypes[0]?.[1] ?? 'text/plain; charset=us-ascii', 'Content-Type');

  const encodings = headers.filter(([name]) => name.toLowerCase() === 'content-transfer-encoding');
  if (encodings.length > 1) throw new ParseError('bad-header-value', 'MIME entity: repeated Content-Transfer-Encoding', 'Content-Transfer-Encoding');
  const body = decodeTransferEncoding(bytes.subarray(offset), encodings[0]?.[1]);
  return { headers, contentType, body };
}

/** Undoes a Content-Transfer-Encoding (RFC 2045 §6); quoted-printable has no business around S/MIME. */
export function decodeTransferEncoding(body: Uint8Array, encoding: string | undefined): Uint8Array {
  const name = (encoding ?? 'binary').toLowerCase();
  if (name === 'binary' || name === '8bit' || name === '7bit') return body;
  if (name === 'base64') {
    const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1').replace(/[\r\n\t ]+/g, '');
    if (!BASE64.test(text) || text.length % 4 !== 0) throw new ParseError('bad-header-value', 'MIME entity: the body is not valid base64', 'Content-Transfer-Encoding');
    return new Uint8Array(Buffer.from(text, 'base64'));
  }
  throw new ParseError('bad-header-value', `MIME entity: unsupported Content-Transfer-Encoding ${JSON.stringify(encoding)}`, 'Content-Transfer-Encoding');
}

/** `header` (one or more CRLF-terminated lines and the empty line) followed by `body`, in one buffer. */
export function buildMimeEntity(header: string, body: Uint8Array): Uint8Array {
  const head = Buffer.from(header, 'latin1');
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}
