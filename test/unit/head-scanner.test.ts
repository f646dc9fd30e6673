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
import { CORPUS } from '../../bench/corpus.js';
import { INVALID_VIAS } from '../support/invalid-vias.js';
import { parseVia, readNameAddr, type ParsedNameAddr, type Via } from '../../main/sip/header-values.js';
import { parseMessage } from '../../main/sip/message/parse.js';
import { ParseError } from '../../main/sip/message/parse-error.js';
import type { Params } from '../../main/sip/uri.js';
import {
  BODY_START,
  CONTENT_LENGTH,
  CSEQ_READ,
  FIRST_ROW,
  METHOD_BY_ID,
  HEAD_END,
  NON_ASCII,
  ROW_FIELDS,
  SCANNED_NAMES,
  SCAN_CAPACITY,
  START_KIND,
  START_LINE_NON_ASCII,
  START_LINE_STOP,
  scan,
  scanHead,
  scannedNameAddr,
  scannedVia,
} from '../../main/sip/message/head-scanner.js';

const LIMITS = { maxLine: 8192, maxHead: 32768, maxRows: 256 };
const ID_BY_SPELLING = new Map(SCANNED_NAMES.map((name, id) => [name.spelling, id]));
const TOKEN = /^[A-Za-z0-9.!%*_+`'~-]$/;

type Scan = null | {
  startLineStop: number;
  startLineNonAscii: number;
  headEnd: number;
  bodyStart: number;
  nonAscii: number;
  contentLength: number;
  rows: number[][];
};

/** How many bytes of data[from, to) are above 0x7F. */
function countNonAscii(data: Buffer, from: number, to: number): number {
  let count = 0;
  for (let i = from; i < to; i++) if (data[i]! >= 0x80) count++;
  return count;
}

/**
 * The model: what the JavaScript first pass found, in the scanner's layout (a row's value
 * trimmed of SWS unless folded; its bytes above 0x7F counted); null where it gave up.
 */
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
      last[6] = last[6]! + countNonAscii(data, pos, stop);
    } else {
      if (rows.length === Math.min(limits.maxRows, 256)) return null;
      let nameEnd = pos;
      while (TOKEN.test(text[nameEnd]!)) nameEnd++;
      if (nameEnd === pos) return null;
      let colon = nameEnd;
      while (text[colon] === ' ' || text[colon] === '\t') colon++;
      if (text[colon] !== ':') return null;
      const id = ID_BY_SPELLING.get(text.slice(pos, nameEnd)) ?? -1;
      let valueStart = colon + 1;
      let valueStop = stop;
      while (valueStart < valueStop && (text[valueStart] === ' ' || text[valueStart] === '\t')) valueStart++;
      while (valueStop > valueStart && (text[valueStop - 1] === ' ' || text[valueStop - 1] === '\t')) valueStop--;
      rows.push([pos, nameEnd, valueStart, valueStop, 0, id, countNonAscii(data, pos, stop)]);
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
  const nonAscii = countNonAscii(data, 0, headEnd);
  return { startLineStop, startLineNonAscii: countNonAscii(data, 0, startLineStop), headEnd, bodyStart: pos + 2, nonAscii, contentLength, rows };
}

function scannerScan(data: Buffer, limits = LIMITS): Scan {
  const count = scanHead(data, 0, Math.min(data.length, SCAN_CAPACITY), limits.maxLine, limits.maxHead, limits.maxRows);
  if (count < 0) return null;
  const rows: number[][] = [];
  for (let i = 0; i < count; i++) rows.push([...scan.subarray(FIRST_ROW + i * ROW_FIELDS, FIRST_ROW + (i + 1) * ROW_FIELDS)]);
  return {
    startLineStop: scan[START_LINE_STOP]!,
    startLineNonAscii: scan[START_LINE_NON_ASCII]!,
    headEnd: scan[HEAD_END]!,
    bodyStart: scan[BODY_START]!,
    nonAscii: scan[NON_ASCII]!,
    contentLength: scan[CONTENT_LENGTH]!,
    rows,
  };
}

const CRLF = '\r\n';

describe('head scanner', () => {
  it('reads every message of the benchmark corpus itself: start line, CSeq, unfolded Vias, From and To', () => {
    // Whatever the scanner leaves alone is still read right, by the general readers, only
    // slower; so this is what catches a fast path that quietly stopped being taken.
    for (const message of CORPUS) {
      const data = message.bytes;
      const rowCount = scanHead(data, 0, data.length, 8192, 32768, 256);
      expect(rowCount, message.label).toBeGreaterThan(0);
      expect(scan[START_KIND], message.label).not.toBe(0);
      expect(scan[CSEQ_READ], message.label).toBe(1);
      const text = data.toString('latin1');
      const rows = [];
      for (let i = 0; i < rowCount; i++) rows.push([...scan.subarray(FIRST_ROW + i * ROW_FIELDS, FIRST_ROW + (i + 1) * ROW_FIELDS)]);
      for (const [, , valueStart, valueStop, folded, nameId] of rows) {
        const key = SCANNED_NAMES[nameId!]?.key;
        if (folded !== 0) continue;
        if (key === 'via') expect(scannedVia(text, valueStart!, valueStop!), message.label).toBeDefined();
        if (key === 'from' || key === 'to') expect(scannedNameAddr(data, 0, text, valueStart!, valueStop!), message.label).toBeDefined();
      }
    }
  });

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
    const names = fc.constantFrom(
      'Via',
      'v',
      'From',
      'To',
      'Call-ID',
      'CSeq',
      'Content-Length',
      'l',
      'content-length',
      'CONTENT-LENGTH',
      'X-Pad',
      'Subject',
      'a',
      'Vía',
      // Names of 16 characters and more: their colon lies beyond the scanner's first 16-byte look.
      'Proxy-Authorization',
      'Proxy-Authenticate',
      'X-Sixteen-Chars1',
      'X-Seventeen-Chars',
      'X-A-Header-Name-Of-Some-Length',
    );
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


// ---------------------------------------------------------------------------------------------
// Via and name-addr: the scanner's reading against header-values.ts's string readers
// ---------------------------------------------------------------------------------------------

function paramFacts(params: Params): unknown {
  return { entries: [...params], quoted: [...params.quoted] };
}

function viaFacts(via: Via): unknown {
  return { ...via, hasPort: 'port' in via, params: paramFacts(via.params) };
}

function nameAddrFacts(nameAddr: ParsedNameAddr): unknown {
  return { displayName: nameAddr.displayName, hasDisplayName: 'displayName' in nameAddr, uriText: nameAddr.uriText, params: paramFacts(nameAddr.params) };
}

/** The string reader's result as data, or its error code. */
function outcome<T>(read: () => T, facts: (value: T) => unknown): unknown {
  try {
    return facts(read());
  } catch (error) {
    if (error instanceof ParseError) return { error: error.code };
    throw error;
  }
}

/**
 * Scans a message whose head holds `value` as the value of a row named `name`, and returns what
 * the scanner read from that row (undefined when it left it to the string reader), with the
 * row's value as the message parser cut it.
 */
function scanRow<T>(name: string, value: string, read: (data: Buffer, text: string, start: number, stop: number) => T | undefined): { scanned: T | undefined; value: string } | null {
  const data = Buffer.from(`MESSAGE sip:b@example.com SIP/2.0\r\n${name}: ${value}\r\nCall-ID: x\r\n\r\n`);
  if (scanHead(data, 0, data.length, 8192, 32768, 256) !== 2) return null;
  const text = data.toString('latin1');
  const start = scan[FIRST_ROW + 2]!;
  const stop = scan[FIRST_ROW + 3]!;
  const parsed = parseMessage(data);
  return { scanned: read(data, text, start, stop), value: parsed.headers.entries()[0]!.value };
}

/** Mostly `usual`, sometimes `odd`: values the scanner reads, and near misses it must leave alone. */
function mostly<T>(usual: fc.Arbitrary<T>, odd: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ weight: 9, arbitrary: usual }, { weight: 1, arbitrary: odd });
}

const octet = mostly(fc.nat(255).map(String), fc.constantFrom('256', '300', '999', '001', '0', '00', '0001'));
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
const label = mostly(fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,4}[a-z0-9])?$/), fc.stringMatching(/^[a-zA-Z0-9-]{0,6}$/));
const hostName = fc
  .tuple(fc.array(label, { maxLength: 3 }), mostly(fc.stringMatching(/^[a-z][a-z0-9-]{0,4}[a-z0-9]$/), label), mostly(fc.constant(''), fc.constantFrom('.', '..')))
  .map(([labels, top, dot]) => [...labels, top].join('.') + dot);
const ipv6Reference = mostly(fc.ipV6().map((a) => `[${a}]`), fc.stringMatching(/^[0-9a-fA-F:.]{0,10}$/).map((t) => `[${t}]`));
const tokenValue = mostly(fc.stringMatching(/^[A-Za-z0-9.!%*_+`'~-]{1,10}$/), fc.stringMatching(/^[A-Za-z0-9.!%*_+`'~:-]{0,10}$/));
const viaParamName = mostly(fc.constantFrom('branch', 'received', 'rport', 'x-extra', 'lr', 'b'), fc.constantFrom('maddr', 'ttl', 'Branch', 'RPORT'));
const viaParamValue = mostly(fc.oneof(tokenValue, ipv4, fc.nat(70000).map(String)), fc.constantFrom('"q"', '[::1]', 'a b', ''));
const viaParam = fc
  .tuple(mostly(fc.constantFrom(';', ' ;'), fc.constantFrom('; ', '  ;', '\t;')), viaParamName, fc.option(fc.tuple(mostly(fc.constant('='), fc.constantFrom(' =', '= ')), viaParamValue), { nil: undefined }))
  .map(([semi, name, value]) => (value === undefined ? `${semi}${name}` : `${semi}${name}${value[0]}${value[1]}`));
const viaValue = fc
  .record({
    protocol: mostly(fc.constant('SIP/2.0/'), fc.constantFrom('sip/2.0/', 'SIP / 2.0 / ', 'SIP/3.0/')),
    transport: mostly(fc.constantFrom('UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS', 'XYZ'), fc.constantFrom('udp', 'U1', '')),
    space: mostly(fc.constant(' '), fc.constantFrom('  ', '\t')),
    host: fc.oneof(ipv4, hostName, ipv6Reference),
    port: fc.option(mostly(fc.nat(70000).map(String), fc.constantFrom('', '0', '00005060', '123456')), { nil: undefined }),
    params: fc.array(viaParam, { maxLength: 5 }),
    tail: mostly(fc.constant(''), fc.constantFrom(',', ', SIP/2.0/UDP h', ' ', ';')),
  })
  .map((v) => `${v.protocol}${v.transport}${v.space}${v.host}${v.port === undefined ? '' : `:${v.port}`}${v.params.join('')}${v.tail}`);

describe('head scanner: Via', () => {
  it('reads what parseVia reads from the same row, or leaves the row to it', () => {
    let scannedCount = 0;
    fc.assert(
      fc.property(viaValue, (value) => {
        const row = scanRow('Via', value, (_data, text, start, stop) => scannedVia(text, start, stop));
        if (row === null) return;
        if (row.scanned === undefined) return;
        scannedCount++;
        expect(viaFacts(row.scanned), value).toEqual(outcome(() => parseVia(row.value), (vias) => (vias.length === 1 ? viaFacts(vias[0]!) : vias.length)));
      }),
      { numRuns: 20_000, seed: 3261 },
    );
    // The generator must reach the scanner's reading often, or the comparison proves little.
    expect(scannedCount).toBeGreaterThan(2_000);
  });

  it('leaves the shapes it does not read to parseVia', () => {
    const valid = [
      'SIP/2.0/UDP host;maddr=224.0.0.1',
      'SIP/2.0/UDP host;ttl=1',
      'SIP/2.0/UDP Host.example.com',
      'SIP/2.0/UDP host;branch=z9, SIP/2.0/UDP other',
      'SIP/2.0/udp host',
    ];
    for (const value of [...INVALID_VIAS, ...valid]) {
      const row = scanRow('Via', value, (_data, text, start, stop) => scannedVia(text, start, stop));
      expect(row?.scanned, value).toBeUndefined();
    }
  });

  it('and the message gives the Vias it read', () => {
    const data = Buffer.from(
      'MESSAGE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport\r\nv: SIP/2.0/TCP proxy.example.org;received=192.0.2.9;branch=z9hG4bKb\r\n\r\n',
    );
    expect(parseMessage(data).vias.map(viaFacts)).toEqual(
      parseVia('SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport').concat(parseVia('SIP/2.0/TCP proxy.example.org;received=192.0.2.9;branch=z9hG4bKb')).map(viaFacts),
    );
  });
});

const displayWord = fc.stringMatching(/^[A-Za-z0-9.!%*_+`'~-]{1,6}$/);
const quotedText = mostly(fc.stringMatching(/^[A-Za-z0-9 !#$%&'()*+,./:;<=>?@[\]^_`{|}~ÄéЖ-]{0,10}$/), fc.stringMatching(/^[A-Za-z \t"\\\x01\x7f]{0,6}$/));
const uriText = mostly(
  fc.constantFrom('sip:alice@example.com', 'sip:bob@example.org;transport=tcp', 'sips:x@[::1]:5061', 'tel:+123', 'sip:a@b'),
  fc.oneof(fc.constantFrom('sip:ü@example.com', 'sip:a b@c', 'sip:a,b@c', 'sip:a?b@c', ''), fc.stringMatching(/^[a-z:@.;=?,>" -]{0,12}$/)),
);
const headerParam = fc
  .tuple(
    mostly(fc.constant(';'), fc.constantFrom(' ;', '; ')),
    mostly(fc.constantFrom('tag', 'expires', 'q', 'x'), fc.constantFrom('Tag', 'TAG')),
    fc.option(fc.tuple(mostly(fc.constant('='), fc.constant(' = ')), mostly(tokenValue, fc.constantFrom('"v"', 'a b'))), { nil: undefined }),
  )
  .map(([semi, name, value]) => (value === undefined ? `${semi}${name}` : `${semi}${name}${value[0]}${value[1]}`));
const nameAddrValue = fc
  .record({
    display: fc.oneof(
      fc.constant(''),
      quotedText.map((t) => `"${t}"`),
      fc.array(displayWord, { minLength: 1, maxLength: 3 }).chain((words) => mostly(fc.constant(' '), fc.constantFrom('  ', '\t')).map((sep) => words.join(sep))),
    ),
    beforeAngle: mostly(fc.constantFrom('', ' '), fc.constantFrom('  ', '\t')),
    angle: mostly(fc.constant(true), fc.constant(false)),
    uri: uriText,
    params: fc.array(headerParam, { maxLength: 3 }),
  })
  .map((v) => (v.angle ? `${v.display}${v.display === '' ? '' : v.beforeAngle}<${v.uri}>` : `${v.display}${v.display === '' ? '' : ' '}${v.uri}`) + v.params.join(''));

describe('head scanner: name-addr', () => {
  it('reads what readNameAddr reads from the same row, or leaves the row to it', () => {
    let scannedCount = 0;
    fc.assert(
      fc.property(nameAddrValue, (value) => {
        const row = scanRow('From', value, (data, text, start, stop) => scannedNameAddr(data, 0, text, start, stop));
        if (row === null || row.scanned === undefined) return;
        scannedCount++;
        expect(nameAddrFacts(row.scanned), value).toEqual(outcome(() => readNameAddr(row.value), nameAddrFacts));
      }),
      { numRuns: 20_000, seed: 3261 },
    );
    expect(scannedCount).toBeGreaterThan(2_000);
  });

  it('leaves quoted-pairs, control characters, odd spacing and unbracketed URIs with specials to readNameAddr', () => {
    for (const value of ['"a\\"b" <sip:a@b>', '"a\x01" <sip:a@b>', 'Bob  Smith <sip:a@b>', 'Bob\tSmith <sip:a@b>', 'sip:a@b ;tag=1', 'sip:a?b@c', '<sip:a@b> ;tag=1', '<sip:a@b>;tag=1;tag=2', '<sip:a@b', '<sip:ü@b>']) {
      const row = scanRow('From', value, (data, text, start, stop) => scannedNameAddr(data, 0, text, start, stop));
      expect(row?.scanned, value).toBeUndefined();
    }
  });

  it('and the message gives From and To as it read them, a display name above ASCII decoded as UTF-8', () => {
    const data = Buffer.from('MESSAGE sip:b@example.com SIP/2.0\r\nf: "Иван Петров" <sip:ivan@example.net>;tag=a7\r\nTo: Bob Smith <sip:bob@example.org>\r\n\r\n');
    const message = parseMessage(data);
    expect(nameAddrFacts(message.from)).toEqual(nameAddrFacts(readNameAddr('"Иван Петров" <sip:ivan@example.net>;tag=a7')));
    expect(message.from.displayName).toBe('Иван Петров');
    expect(nameAddrFacts(message.to)).toEqual(nameAddrFacts(readNameAddr('Bob Smith <sip:bob@example.org>')));
    expect(message.to.uri).toMatchObject({ user: 'bob', host: 'example.org' });
  });
});

describe('head scanner: start line and CSeq', () => {
  /** What a parse gives for the start line and CSeq, as data; the CSeq getter's error code if it throws. */
  function facts(data: Buffer): unknown {
    return outcome(
      () => parseMessage(data),
      (message) => ({
        start: message.kind === 'request' ? [message.method, message.uri, message.version] : [message.status, message.reason, message.version],
        cseq: outcome(() => message.cseq, (cseq) => ({ ...cseq })),
      }),
    );
  }

  const method = mostly(fc.constantFrom(...METHOD_BY_ID.slice(1), 'FOO', 'MESSAGEX', 'SUBSCRIBX', 'Message'), fc.constantFrom('', 'SIP/2.0', 'BAD@', 'sip/2.0'));
  const requestUri = mostly(
    fc.constantFrom('sip:bob@example.org', 'sips:b@[::1]:5061;transport=tls', 'tel:+1-555', 'im:bob@example.org', 'x+y.z-w:any', 'sip:b@h?subject=a%20b'),
    fc.constantFrom('sip:', ':x', '1sip:x', 'sip:a<b', 'sip:a>b', 'sip:a\tb', 'sip:é@x', 'sip:a\x0bb', 'sip:a\x01b', '<sip:a@b>', 'sip:a  b'),
  );
  const version = mostly(fc.constant('SIP/2.0'), fc.constantFrom('SIP/2.00', 'SIP/3.0', 'sip/2.0', 'SIP/2.0 ', 'SIP/20'));
  const requestLine = fc.tuple(method, mostly(fc.constant(' '), fc.constantFrom('  ', '\t')), requestUri, mostly(fc.constant(' '), fc.constant('  ')), version).map((parts) => parts.join(''));
  const statusLine = fc
    .tuple(mostly(fc.constant('SIP/2.0'), fc.constantFrom('SIP/3.0', 'sip/2.0', 'SIP/2.0 ')), mostly(fc.integer({ min: 100, max: 699 }).map(String), fc.constantFrom('099', '700', '20', '2000', 'abc', '')), fc.option(mostly(fc.constantFrom('OK', 'Not Found', '', ' two  spaces', 'Grüße'), fc.constant('x\ty')), { nil: undefined }))
    .map(([v, code, reason]) => (reason === undefined ? `${v} ${code}` : `${v} ${code} ${reason}`));
  const cseq = mostly(
    fc.tuple(fc.constantFrom('1', '4294967295', '0009', '0', '314159'), fc.constantFrom(' ', '\t', '  '), fc.constantFrom(...METHOD_BY_ID.slice(1), 'FOO', 'X.Y')).map((parts) => parts.join('')),
    fc.constantFrom('4294967296 MESSAGE', '42949672950 MESSAGE', '1', 'MESSAGE', '1MESSAGE', '1 MESSAGE x', '-1 MESSAGE', '1 MESS@GE', '99999999999999999999 MESSAGE'),
  );

  it('reads what parseStartLine and parseCSeq read, for generated start lines and CSeq values', () => {
    let parsed = 0;
    fc.assert(
      fc.property(fc.oneof(requestLine, statusLine), fc.option(cseq, { nil: undefined }), fc.boolean(), (line, cseqValue, twice) => {
        const rows = ['Via: SIP/2.0/UDP h;branch=z9hG4bK1'];
        if (cseqValue !== undefined) rows.push(`CSeq: ${cseqValue}`);
        if (twice) rows.push('CSeq: 7 OPTIONS');
        const crlf = Buffer.from(`${[line, ...rows].join('\r\n')}\r\n\r\n`);
        const lf = Buffer.from(`${[line, ...rows].join('\n')}\n\n`);
        const scanned = facts(crlf);
        if (typeof scanned === 'object' && scanned !== null && 'start' in scanned) parsed++;
        expect(scanned, JSON.stringify(line)).toEqual(facts(lf));
      }),
      { numRuns: 20_000, seed: 3428 },
    );
    // Most generated lines must parse, or the comparison proves little.
    expect(parsed).toBeGreaterThan(10_000);
  });

  it('knows each usual method by its own name', () => {
    for (const name of METHOD_BY_ID.slice(1)) {
      const message = parseMessage(Buffer.from(`${name} sip:b@example.org SIP/2.0\r\nCSeq: 1 ${name}\r\n\r\n`));
      expect(message.kind === 'request' && message.method).toBe(name);
      expect(message.cseq.method).toBe(name);
    }
  });

  it('gives up a CSeq row that a continuation line extends', () => {
    // Its first line alone would read; the whole value does not.
    const message = parseMessage(Buffer.from('MESSAGE sip:b@example.org SIP/2.0\r\nCSeq: 1 MESSAGE\r\n x\r\n\r\n'));
    expect(() => message.cseq).toThrow(ParseError);
  });
});

describe('head scanner: mutated corpus messages', () => {
  /** Everything a UAS reads from a message, as data; errors by code, field by field. */
  function uasFacts(data: Buffer): unknown {
    return outcome(
      () => parseMessage(data),
      (message) => ({
        start: message.kind === 'request' ? [message.method, message.uri, message.version] : [message.status, message.reason, message.version],
        rows: message.headers.entries().map((row) => [row.name, row.key, row.value]),
        body: message.body.toString('latin1'),
        vias: outcome(() => message.vias, (vias) => vias.map(viaFacts)),
        from: outcome(() => message.from, nameAddrFacts),
        to: outcome(() => message.to, nameAddrFacts),
        cseq: outcome(() => message.cseq, (cseq) => ({ ...cseq })),
      }),
    );
  }

  /**
   * The same message with LF line ends in its head: the general reading reads it, never the
   * scanner. Undefined when the head has a CR or LF out of a pair (a corruption hit a line
   * end): then the two would not have the same lines.
   */
  function withLfHead(data: Buffer): Buffer | undefined {
    const end = data.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const head = data.toString('latin1', 0, end);
    if (/\r(?!\n)|(?<!\r)\n/.test(head)) return undefined;
    const lfHead = head.replaceAll('\r\n', '\n');
    return Buffer.concat([Buffer.from(`${lfHead}\n\n`, 'latin1'), data.subarray(end + 4)]);
  }

  it('read alike by the scanner and by the general reading', () => {
    // Small corruptions of real messages: where the scanner must decide, value by value,
    // between reading and leaving alone. No CR or LF is inserted, so that the LF-only copy
    // has the same lines.
    const alphabet = Buffer.from(' \t:;,="<>@[]\\.0123456789abcXYZ-_~%\x7f\x80\xc3\xa9/SIPV');
    const mutation = fc.array(fc.tuple(fc.nat(), fc.constantFrom('insert', 'delete', 'replace'), fc.nat(alphabet.length - 1)), { minLength: 1, maxLength: 4 });
    let compared = 0;
    fc.assert(
      fc.property(fc.nat(CORPUS.length - 1), mutation, (which, edits) => {
        const bytes = [...CORPUS[which]!.bytes];
        for (const [at, op, char] of edits) {
          const pos = at % (bytes.length + 1);
          if (op === 'insert') bytes.splice(pos, 0, alphabet[char]!);
          else if (op === 'delete') bytes.splice(pos, 1);
          else bytes[pos] = alphabet[char]!;
        }
        const data = Buffer.from(bytes);
        const lf = withLfHead(data);
        if (lf === undefined) return;
        compared++;
        expect(uasFacts(data), data.toString('latin1')).toEqual(uasFacts(lf));
      }),
      { numRuns: 20_000, seed: 4475 },
    );
    expect(compared).toBeGreaterThan(15_000);
  });
});
