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
  addKnownName(length: number, id: number, isContentLength: number): number;
  scanHead(length: number, maxLine: number, maxHead: number, maxRows: number): number;
}

/** Result fields, as indices into `scan` (see the module). */
export const START_LINE_STOP = 0;
export const HEAD_END = 1;
export const BODY_START = 2;
export const NON_ASCII = 3;
export const CONTENT_LENGTH = 4;
/** Where the rows start in `scan`, and each row's fields. */
export const FIRST_ROW = 8;
export const ROW_FIELDS = 6;
export const NAME_START = 0;
export const NAME_END = 1;
export const VALUE_START = 2;
export const VALUE_STOP = 3;
export const FOLDED = 4;
export const NAME_ID = 5;

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
  if (!scanner.addKnownName(spelling.length, id, key === 'content-length' ? 1 : 0)) {
    throw new Error(`head scanner: cannot register header name ${spelling}`);
  }
}

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
  // The whole datagram, the usual case, is copied without making a view of part of it first.
  if (start === 0 && end === data.length) memoryBytes.set(data, INPUT);
  else memoryBytes.set(data.subarray(start, end), INPUT);
  return scanner.scanHead(end - start, maxLine, maxHead, maxRows);
}
