/**
 * The head scanner (main/sip/message/head-scanner.ts, WebAssembly from wasm/head-scanner.ts)
 * against a model: the first pass of the one-pass reading as it was written in JavaScript
 * before the scanner replaced it (indexOf per line, names by exact spelling). Generated heads
 * put their line ends, bare CRs and LFs, bytes above 0x7F and the empty line at every offset
 * of the scanner's 16-byte blocks. parser-fast-paths.test.ts checks the whole parse.
 */
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BODY_START,
  CONTENT_LENGTH,
  FIRST_ROW,
  HEAD_END,
  NON_ASCII,
  ROW_FIELDS,
  SCANNED_NAMES,
  SCAN_CAPACITY,
  START_LINE_STOP,
  scan,
  scanHead,
} from '../../main/sip/message/head-scanner.js';

const LIMITS = { maxLine: 8192, maxHead: 32768, maxRows: 256 };
const ID_BY_SPELLING = new Map(SCANNED_NAMES.map((name, id) => [name.spelling, id]));
const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]$/;

type Scan = null | { startLineStop: number; headEnd: number; bodyStart: number; nonAscii: number; contentLength: number; rows: number[][] };

/** The model: what the JavaScript first pass found, in the scanner's layout; null where it gave up. */
function modelScan(data: Buffer, limits = LIMITS): Scan {
  const text = data.toString('latin1');
  let lineEnd = text.indexOf('\n');
  let stop = lineEnd - 1;
  if (lineEnd < 1 || text.indexOf('\r') !== stop || stop > limits.maxLine) return null;
  const startLineStop = stop;
  const rows: number[][] = [];
  let contentLength = -1;
  let pos = lineEnd + 1;
  for (;;) {
    lineEnd = text.indexOf('\n', pos);
    if (lineEnd <= pos) return null;
    stop = lineEnd - 1;
    if (text.indexOf('\r', pos) !== stop) return null;
    if (stop === pos) break;
    if (stop - pos > limits.maxLine) return null;
    const first = text[pos];
    if (first === ' ' || first === '\t') {
      const last = rows.at(-1);
      if (last === undefined) return null;
      if (SCANNED_NAMES[last[5]!]?.key === 'content-length') return null;
      last[3] = stop;
      last[4] = 1;
    } else {
      if (rows.length === Math.min(limits.maxRows, 256)) return null;
      let nameEnd = pos;
      while (TOKEN.test(text[nameEnd]!)) nameEnd++;
      if (nameEnd === pos) return null;
      let colon = nameEnd;
      while (text[colon] === ' ' || text[colon] === '\t') colon++;
      if (text[colon] !== ':') return null;
      const id = ID_BY_SPELLING.get(text.slice(pos, nameEnd)) ?? -1;
      rows.push([pos, nameEnd, colon + 1, stop, 0, id]);
      if (SCANNED_NAMES[id]?.key === 'content-length') {
        const value = text.slice(colon + 1, stop).replace(/^[ \t]+|[ \t]+$/g, '');
        if (!/^\d{1,9}$/.test(value)) return null;
        if (contentLength >= 0 && Number(value) !== contentLength) return null;
        contentLength = Number(value);
      }
    }
    pos = lineEnd + 1;
  }
  const headEnd = pos - 2;
  if (headEnd > limits.maxHead) return null;
  const nonAscii = [...data.subarray(0, headEnd)].filter((byte) => byte >= 0x80).length;
  return { startLineStop, headEnd, bodyStart: pos + 2, nonAscii, contentLength, rows };
}

function scannerScan(data: Buffer, limits = LIMITS): Scan {
  const count = scanHead(data, 0, Math.min(data.length, SCAN_CAPACITY), limits.maxLine, limits.maxHead, limits.maxRows);
  if (count < 0) return null;
  const rows: number[][] = [];
  for (let i = 0; i < count; i++) rows.push([...scan.subarray(FIRST_ROW + i * ROW_FIELDS, FIRST_ROW + (i + 1) * ROW_FIELDS)]);
  return {
    startLineStop: scan[START_LINE_STOP]!,
    headEnd: scan[HEAD_END]!,
    bodyStart: scan[BODY_START]!,
    nonAscii: scan[NON_ASCII]!,
    contentLength: scan[CONTENT_LENGTH]!,
    rows,
  };
}

const CRLF = '\r\n';

describe('head scanner', () => {
  it('is what wasm/head-scanner.ts compiles to (scripts/build-wasm.js --check)', () => {
    // Throws, failing the test, when the committed module differs from a fresh compile.
    execFileSync(process.execPath, ['scripts/build-wasm.js', '--check'], { stdio: 'pipe' });
  }, 60_000);

  it('finds the start line, the rows, the names and the body of a usual message', () => {
    const head = ['MESSAGE sip:bob@example.org SIP/2.0', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1', 'X-Odd : yes', 'Subject: a', '  b', 'l: 4'];
    const data = Buffer.from(`${head.join(CRLF)}${CRLF}${CRLF}body`);
    const result = scannerScan(data);
    expect(result).toEqual(modelScan(data));
    expect(result!.rows.map((row) => (row[5]! >= 0 ? SCANNED_NAMES[row[5]!]!.key : data.toString('latin1', row[0], row[1])))).toEqual([
      'via',
      'X-Odd',
      'subject',
      'content-length',
    ]);
    expect(result!.rows[2]![4]).toBe(1);
    expect(result!.contentLength).toBe(4);
    expect(data.toString('latin1', result!.bodyStart)).toBe('body');
  });

  it('gives up where the JavaScript pass gave up', () => {
    const ok = 'MESSAGE sip:b@example.org SIP/2.0\r\nVia: x\r\n';
    for (const head of [
      `${ok}Bad\nLine: x\r\n\r\n`, // LF without CR
      `${ok}Bad\rLine: x\r\n\r\n`, // CR without LF
      `${ok} folded-first\r\n\r\n`.replace('Via: x\r\n', ''), // continuation before any row
      `${ok}NoColon\r\n\r\n`,
      `${ok}: no name\r\n\r\n`,
      `${ok}Content-Length: 4\r\nl: 5\r\n\r\n`, // disagreeing Content-Lengths
      `${ok}Content-Length: 4\r\n 4\r\n\r\n`, // a folded Content-Length
      `${ok}Content-Length: 1234567890\r\n\r\n`,
      `${ok}Max-Forwards: 70\r\n`, // no empty line
    ]) {
      expect(modelScan(Buffer.from(head)), JSON.stringify(head)).toBeNull();
      expect(scannerScan(Buffer.from(head)), JSON.stringify(head)).toBeNull();
    }
    // A bare LF in the body, even in the block that ends the head, is the body's business.
    const bodyLf = Buffer.from(`${ok}\r\n\nx\ny\rz`);
    expect(scannerScan(bodyLf)).toEqual(modelScan(bodyLf));
    expect(scannerScan(bodyLf)).not.toBeNull();
  });

  it('applies the line, head and row limits as the JavaScript pass did', () => {
    const data = Buffer.from(`MESSAGE sip:b@example.org SIP/2.0\r\nA: 1\r\nB: 22\r\nC: 333\r\n\r\n`);
    for (const limits of [
      { maxLine: 5, maxHead: 1000, maxRows: 10 },
      { maxLine: 6, maxHead: 1000, maxRows: 10 },
      { maxLine: 1000, maxHead: 1000, maxRows: 2 },
      { maxLine: 1000, maxHead: 1000, maxRows: 3 },
      { maxLine: 1000, maxHead: 56, maxRows: 10 },
      { maxLine: 1000, maxHead: 57, maxRows: 10 },
      { maxLine: 33, maxHead: 1000, maxRows: 10 },
      { maxLine: 34, maxHead: 1000, maxRows: 10 },
    ]) {
      expect(scannerScan(data, limits), JSON.stringify(limits)).toEqual(modelScan(data, limits));
    }
  });

  it('agrees with the model on generated heads, whatever falls on the block boundaries', () => {
    const names = fc.constantFrom('Via', 'v', 'From', 'To', 'Call-ID', 'CSeq', 'Content-Length', 'l', 'content-length', 'CONTENT-LENGTH', 'X-Pad', 'Subject', 'a', 'Vía');
    const valueChars = fc.constantFrom('a', 'b', '1', ' ', '\t', ';', ':', '=', 'é', 'Ж', '\r', '\n', '7');
    const value = fc.array(valueChars, { maxLength: 40 }).map((chars) => chars.join(''));
    const line = fc.oneof(
      { weight: 6, arbitrary: fc.tuple(names, fc.constantFrom(':', ' :', '\t: ', ': '), value).map(([n, c, v]) => `${n}${c}${v}`) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom(' ', '\t'), value).map(([ws, v]) => `${ws}${v}`) },
      { weight: 1, arbitrary: fc.nat(1_000_000).map((n) => `Content-Length: ${n % 20}`) },
    );
    const message = fc.record({
      startLine: fc.constantFrom('MESSAGE sip:b@example.org SIP/2.0', 'SIP/2.0 200 OK', 'X', 'SIP/2.0 200 Ünïcode'),
      lines: fc.array(line, { maxLength: 12 }),
      end: fc.constantFrom('\r\n\r\n', '\r\n\n', '\n\r\n', '\r\n', ''),
      body: fc.constantFrom('', 'hello', '\n\r\n\r', 'x'.repeat(20)),
    });
    fc.assert(
      fc.property(message, ({ startLine, lines, end, body }) => {
        const data = Buffer.from([startLine, ...lines].join(CRLF) + end + body);
        expect(scannerScan(data)).toEqual(modelScan(data));
      }),
      { numRuns: 20_000, seed: 3261 },
    );
  });

  it('counts the bytes above 0x7F of heads of every length', () => {
    for (let length = 0; length < 64; length++) {
      const filler = 'é'.repeat(length); // two bytes each, both above 0x7F
      const data = Buffer.from(`SIP/2.0 200 OK\r\nSubject: ${filler}\r\n\r\nÜ`);
      expect(scannerScan(data)?.nonAscii).toBe(length * 2);
    }
  });

  it('reads no more than it is given, and at most SCAN_CAPACITY bytes', () => {
    const data = Buffer.from(`SIP/2.0 200 OK\r\nSubject: ${'x'.repeat(SCAN_CAPACITY)}\r\n\r\n`);
    expect(scanHead(data, 0, SCAN_CAPACITY, 1e6, 1e6, 256)).toBe(-1);
    const short = Buffer.from('SIP/2.0 200 OK\r\nA: 1\r\n\r\n');
    // The empty line lies beyond the bytes given: no head.
    expect(scanHead(short, 0, short.length - 2, 1000, 1000, 10)).toBe(-1);
    expect(scanHead(short, 0, short.length, 1000, 1000, 10)).toBe(1);
  });
});
