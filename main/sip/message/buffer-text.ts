/**
 * Text from a slice of a Buffer, by Buffer's own decoders: the methods that
 * `toString('latin1' | 'utf8', start, end)` end in. Node has had them on Buffer.prototype
 * since its first versions, but does not document them (nor does @types/node declare them).
 * Called directly they save the two JavaScript wrappers in between (argument checks, the
 * encoding lookup), which V8 does not inline on the parser's busy path: about 5 % of parsing
 * a message. Should a Node version drop them, `toString` is used instead.
 */
type Decoder = (this: Buffer, start: number, end: number) => string;
const prototype = Buffer.prototype as Partial<{ latin1Slice: Decoder; utf8Slice: Decoder }>;
const latin1Slice = prototype.latin1Slice;
const utf8Slice = prototype.utf8Slice;

/** data[start, end) as latin1, one character per byte; 0 <= start <= end <= data.length. */
export function decodeLatin1(data: Buffer, start: number, end: number): string {
  return latin1Slice !== undefined ? latin1Slice.call(data, start, end) : data.toString('latin1', start, end);
}

/** data[start, end) as UTF-8; 0 <= start <= end <= data.length. */
export function decodeUtf8(data: Buffer, start: number, end: number): string {
  return utf8Slice !== undefined ? utf8Slice.call(data, start, end) : data.toString('utf8', start, end);
}
