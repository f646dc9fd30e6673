/**
 * The head scanner: the first pass of the one-pass reading in parse.ts, done by a small
 * WebAssembly module (wasm/head-scanner.ts, AssemblyScript; compiled into
 * head-scanner-wasm.ts by scripts/build-wasm.js).
 *
 * `scanHead` copies the start of a message into the module's memory and asks it where the
 * start line, the header rows and the body are. It reads only the usual head (CR LF line ends
 * and nothing wrong: see the module) and answers -1 for anything else, which the general
 * reading in parse.ts then reads. Its answers are in `scan`, an Int32Array over the module's
 * memory, valid until the next call; parsing is synchronous, so one module serves every call
 * on a thread (each worker thread that parses loads its own).
 *
 * The known header names are registered once, from header-names.ts, with the index into
 * `SCANNED_NAMES` as their id.
 */
import { ParsedNameAddr, type Via } from '../header-values.js';
import { isIPv6Span, Params } from '../uri.js';
import { decodeUtf8 } from './buffer-text.js';
import { HEAD_SCANNER_WASM } from './head-scanner-wasm.js';
import { knownHeaderSpellings, type KnownHeaderName } from './header-names.js';

/**
 * The part of the WebAssembly JS API used here. (The main process compiles against lib ES2023
 * and @types/node, neither of which declares WebAssembly; the DOM lib, which does, is not ours.)
 */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { readonly exports: unknown };
}
const { Module, Instance } = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

/** What the module exports (wasm/head-scanner.ts). */
interface HeadScannerExports {
  memory: { readonly buffer: ArrayBuffer };
  init(): void;
  inputOffset(): number;
  inputCapacity(): number;
  resultsOffset(): number;
  namesOffset(): number;
  addKnownName(length: number, id: number, role: number): number;
  scanHead(length: number, maxLine: number, maxHead: number, maxRows: number): number;
  viaResultsOffset(): number;
  scanVia(start: number, stop: number): number;
  nameAddrResultsOffset(): number;
  scanNameAddr(start: number, stop: number): number;
}

/** Result fields, as indices into `scan` (see the module). */
export const START_LINE_STOP = 0;
export const HEAD_END = 1;
export const BODY_START = 2;
export const NON_ASCII = 3;
export const CONTENT_LENGTH = 4;
export const START_LINE_NON_ASCII = 5;
/** 1: a usual request line, 2: a usual status line, 0: parse.ts's parseStartLine reads it. */
export const START_KIND = 6;
export const START_METHOD_OR_STATUS = 7;
export const START_METHOD_END_OR_REASON = 8;
export const START_URI_START = 9;
export const START_URI_END = 10;
/** 1 when the scanner read the first CSeq row (a number and a method; see the module). */
export const CSEQ_READ = 11;
export const CSEQ_NUMBER = 12;
export const CSEQ_METHOD = 13;
export const CSEQ_METHOD_START = 14;
export const CSEQ_METHOD_END = 15;
/** Where the rows start in `scan`, and each row's fields. */
export const FIRST_ROW = 16;
export const ROW_FIELDS = 7;
export const NAME_START = 0;
export const NAME_END = 1;
export const VALUE_START = 2;
export const VALUE_STOP = 3;
export const FOLDED = 4;
export const NAME_ID = 5;
export const ROW_NON_ASCII = 6;

/** A row's NAME_ID indexes this: its spelling (= the name as written) and key. -1: not a known name. */
export const SCANNED_NAMES: readonly KnownHeaderName[] = knownHeaderSpellings();

const scanner = new Instance(new Module(Buffer.from(HEAD_SCANNER_WASM, 'base64')), {
  env: {
    abort(): never {
      throw new Error('head scanner aborted');
    },
  },
}).exports as unknown as HeadScannerExports;

scanner.init();
const memoryBytes = new Uint8Array(scanner.memory.buffer);
for (let id = 0; id < SCANNED_NAMES.length; id++) {
  const { spelling, key } = SCANNED_NAMES[id]!;
  const at = scanner.namesOffset();
  for (let i = 0; i < spelling.length; i++) memoryBytes[at + i] = spelling.charCodeAt(i);
  // Roles (see the module): the scanner reads Content-Length and CSeq values itself.
  const role = key === 'content-length' ? 1 : key === 'cseq' ? 2 : 0;
  if (!scanner.addKnownName(spelling.length, id, role)) {
    throw new Error(`head scanner: cannot register header name ${spelling}`);
  }
}

/**
 * The methods the scanner knows by id (1 = ACK …): its `methodId` tells them apart in this
 * order, and a method given by id costs no new string.
 */
export const METHOD_BY_ID: readonly string[] = [
  '',
  'ACK',
  'BYE',
  'INFO',
  'PRACK',
  'REFER',
  'INVITE',
  'CANCEL',
  'NOTIFY',
  'UPDATE',
  'MESSAGE',
  'OPTIONS',
  'PUBLISH',
  'REGISTER',
  'SUBSCRIBE',
];

const INPUT = scanner.inputOffset();
/** The most bytes one scan reads. */
export const SCAN_CAPACITY = scanner.inputCapacity();

/** The answers of the last `scanHead`, positions relative to its `start`. */
export const scan = new Int32Array(scanner.memory.buffer, scanner.resultsOffset(), FIRST_ROW + ROW_FIELDS * 256);

/**
 * Scans data[start, end) (at most SCAN_CAPACITY bytes; end - start > 0), the start line
 * first. Returns the number of header rows, with the positions in `scan`, or -1 when the head
 * is not the usual one or does not end within those bytes.
 */
export function scanHead(data: Buffer, start: number, end: number, maxLine: number, maxHead: number, maxRows: number): number {
  // (More would overwrite the module's results: refuse, as the module itself would.)
  if (end - start > SCAN_CAPACITY) return -1;
  // The whole datagram, the usual case, is copied without making a view of part of it first.
  if (start === 0 && end === data.length) memoryBytes.set(data, INPUT);
  else memoryBytes.set(data.subarray(start, end), INPUT);
  return scanner.scanHead(end - start, maxLine, maxHead, maxRows);
}

// ---------------------------------------------------------------------------------------------
// Via
// ---------------------------------------------------------------------------------------------

// scanVia's result fields and each parameter's (see the module).
const VIA_TRANSPORT = 0;
const VIA_TRANSPORT_START = 1;
const VIA_TRANSPORT_END = 2;
const VIA_HOST_START = 3;
const VIA_HOST_END = 4;
const VIA_HOST_IPV6 = 5;
const VIA_PORT = 6;
const VIA_FIELDS = 8;
const VIA_PARAM_FIELDS = 5;
const PARAM_NAME = 0;
const PARAM_NAME_START = 1;
const PARAM_NAME_END = 2;
const PARAM_VALUE_START = 3;
const PARAM_VALUE_END = 4;

/** The transports by the module's ids (1 = UDP, …), as header-values.ts's transportName spells them. */
const TRANSPORT_BY_ID: readonly string[] = ['', 'UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS'];
/** The Via parameter names by the module's ids (1 = branch, …). */
const VIA_PARAM_BY_ID: readonly string[] = ['', 'branch', 'received', 'rport'];
/** The name-addr parameter names by the module's ids. */
const NAME_ADDR_PARAM_BY_ID: readonly string[] = ['', 'tag'];

/**
 * The `count` parameters the module wrote after `fields` fields of `results` (a Via's or a
 * name-addr's), as Params: names the module knows by id are the literals of `nameById`, the
 * others and the values are cut from `text`. The module has checked that no name repeats.
 */
function scannedParams(text: string, results: Int32Array, fields: number, count: number, nameById: readonly string[]): Params {
  const items: (string | null)[] = [];
  for (let i = 0, at = fields; i < count; i++, at += VIA_PARAM_FIELDS) {
    const nameId = results[at + PARAM_NAME]!;
    const name = nameId > 0 ? nameById[nameId]! : text.slice(results[at + PARAM_NAME_START], results[at + PARAM_NAME_END]);
    const valueFrom = results[at + PARAM_VALUE_START]!;
    items.push(name, valueFrom < 0 ? null : text.slice(valueFrom, results[at + PARAM_VALUE_END]));
  }
  return Params.ofDistinct(items);
}

const viaScan = new Int32Array(scanner.memory.buffer, scanner.viaResultsOffset(), VIA_FIELDS + VIA_PARAM_FIELDS * 16);

/**
 * The Via in the value of a row of the last scanned head, [valueStart, valueStop) as `scan`
 * gives them, if it is one via-parm of the usual shape; `text` is the head as latin1 from the
 * same start. What header-values.ts's parseVia gives for the row's value, or undefined for
 * anything else, which parseVia then reads. (test/unit/head-scanner.test.ts compares them.)
 */
export function scannedVia(text: string, valueStart: number, valueStop: number): Via | undefined {
  const count = scanner.scanVia(valueStart, valueStop);
  if (count < 0) return undefined;
  // The usual shape is ASCII, so latin1 slices are the text.
  const host = text.slice(viaScan[VIA_HOST_START], viaScan[VIA_HOST_END]);
  if (viaScan[VIA_HOST_IPV6] === 1 && !isIPv6Span(host, 1, host.length - 1)) return undefined;
  const transportId = viaScan[VIA_TRANSPORT]!;
  const transport = transportId > 0 ? TRANSPORT_BY_ID[transportId]! : text.slice(viaScan[VIA_TRANSPORT_START], viaScan[VIA_TRANSPORT_END]);
  const params = scannedParams(text, viaScan, VIA_FIELDS, count, VIA_PARAM_BY_ID);
  const port = viaScan[VIA_PORT]!;
  if (port < 0) return { protocol: 'SIP', version: '2.0', transport, host, params };
  return { protocol: 'SIP', version: '2.0', transport, host, params, port };
}

// ---------------------------------------------------------------------------------------------
// name-addr (From, To)
// ---------------------------------------------------------------------------------------------

// scanNameAddr's result fields (see the module); its parameters are laid out as a Via's.
const DISPLAY_KIND = 0;
const DISPLAY_START = 1;
const DISPLAY_END = 2;
const DISPLAY_NON_ASCII = 3;
const URI_START = 4;
const URI_END = 5;
const NAME_ADDR_FIELDS = 8;

const nameAddrScan = new Int32Array(scanner.memory.buffer, scanner.nameAddrResultsOffset(), NAME_ADDR_FIELDS + VIA_PARAM_FIELDS * 16);

/**
 * The name-addr in the value of a row of the last scanned head, as scannedVia: what
 * header-values.ts's readNameAddr gives for the row's value, or undefined for anything but the
 * usual shape. `data` and `start` are what the head was scanned from, for a display name to
 * decode as UTF-8.
 */
export function scannedNameAddr(data: Buffer, start: number, text: string, valueStart: number, valueStop: number): ParsedNameAddr | undefined {
  const count = scanner.scanNameAddr(valueStart, valueStop);
  if (count < 0) return undefined;
  let displayName: string | undefined;
  if (nameAddrScan[DISPLAY_KIND] !== 0) {
    const from = nameAddrScan[DISPLAY_START]!;
    const to = nameAddrScan[DISPLAY_END]!;
    displayName = nameAddrScan[DISPLAY_NON_ASCII] === 0 ? text.slice(from, to) : decodeUtf8(data, start + from, start + to);
  }
  const uriText = text.slice(nameAddrScan[URI_START], nameAddrScan[URI_END]);
  return new ParsedNameAddr(displayName, uriText, scannedParams(text, nameAddrScan, NAME_ADDR_FIELDS, count, NAME_ADDR_PARAM_BY_ID), undefined);
}
