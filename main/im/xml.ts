/**
 * A strict XML reader for the small protocol documents carried in MESSAGE bodies: IMDN
 * (RFC 5438, imdn.ts) and isComposing (RFC 3994, is-composing.ts).
 */
import { ParseError, type ParseErrorCode } from '../sip/message/parse-error.js';

// =============================================================================================
// A strict XML reader for small protocol documents (IMDN here, isComposing in is-composing.ts)
// =============================================================================================
//
// Why our own. The two vocabularies are tiny, the input is hostile (anyone can send a MESSAGE),
// and general XML parsers bring DTDs, entity expansion (billion laughs, external entities) and
// recursion. This reader implements the well-formedness rules of XML 1.0 (Fifth Edition) and
// Namespaces in XML 1.0 that such documents need, and refuses the rest:
//
//   - bytes must be UTF-8 (RFC 3994 §3.4 and RFC 5438 §11 require it); a UTF-8 BOM is allowed,
//     an encoding declaration other than UTF-8 is an error;
//   - no DOCTYPE at all, so no entity declarations; only &lt; &gt; &amp; &quot; &apos; and
//     character references are recognised, any other reference is an error (undeclared entity);
//   - size, depth, element and attribute counts are capped (XML_LIMITS) before any work that
//     could grow with them; the reader is a loop with an explicit stack, and every scan uses
//     indexOf or a single forward pass, so time is linear in the input;
//   - comments, processing instructions and CDATA sections are read and dropped/kept as XML
//     says; namespace prefixes are resolved, and unbound ones are errors.
//
// The result is a tree of elements with expanded names (namespace URI + local name), their
// attributes (namespace declarations excluded) and their direct character data.

/** Why a body was refused; `XmlBodyError.code` maps these onto the ParseError codes. */
export type XmlErrorReason =
  | 'empty'
  | 'too-large'
  | 'too-deep'
  | 'too-many-nodes'
  | 'encoding'
  | 'dtd'
  | 'entity'
  | 'syntax'
  | 'namespace'
  | 'truncated'
  | 'schema';

/**
 * ParseErrorCode has no code for a malformed body; until it gets one ('bad-body' would fit),
 * errors that are not about emptiness, size or truncation use 'bad-header-value', the code the
 * other body parsers use for bodies their Content-Type promised but did not deliver.
 */
const XML_ERROR_CODES: Readonly<Record<XmlErrorReason, ParseErrorCode>> = {
  empty: 'empty',
  'too-large': 'too-large',
  'too-deep': 'too-large',
  'too-many-nodes': 'too-large',
  truncated: 'truncated',
  encoding: 'bad-body',
  dtd: 'bad-body',
  entity: 'bad-body',
  syntax: 'bad-body',
  namespace: 'bad-body',
  schema: 'bad-body',
};

/** A refused XML body (malformed, hostile, or not the expected document). A UAS answers 400. */
export class XmlBodyError extends ParseError {
  constructor(
    readonly reason: XmlErrorReason,
    message: string,
  ) {
    super(XML_ERROR_CODES[reason], message);
  }
}

export interface XmlLimits {
  /** Bytes. IMDN and isComposing documents are a few hundred. */
  readonly maxBytes: number;
  /** Element nesting, the root counting as 1. */
  readonly maxDepth: number;
  /** Elements in the whole document. */
  readonly maxElements: number;
  /** Attributes (namespace declarations included) on one element. */
  readonly maxAttributes: number;
}

export const XML_LIMITS: XmlLimits = { maxBytes: 32 * 1024, maxDepth: 16, maxElements: 512, maxAttributes: 32 };

export interface XmlAttribute {
  /** The namespace URI; '' for an unprefixed attribute (Namespaces in XML §6.3). */
  readonly namespace: string;
  readonly localName: string;
  readonly value: string;
}

export interface XmlElement {
  /** The namespace URI; '' when the element is in no namespace. */
  readonly namespace: string;
  readonly localName: string;
  /** Attributes in document order, without namespace declarations. */
  readonly attributes: ReadonlyArray<XmlAttribute>;
  readonly children: ReadonlyArray<XmlElement>;
  /** The character data directly inside this element (text and CDATA, references decoded), concatenated. */
  readonly text: string;
}

export const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';

const XML_NAMESPACE_URI = 'http://www.w3.org/XML/1998/namespace';
const XMLNS_NAMESPACE_URI = 'http://www.w3.org/2000/xmlns/';

/** NameStartChar of XML 1.0 §2.3 without ':' (Namespaces in XML: NCName). */
const NC_START = String.raw`A-Z_a-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFF\u200C\u200D\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\u{10000}-\u{EFFFF}`;
const NC_CHAR = String.raw`${NC_START}\-.0-9\u00B7\u0300-\u036F\u203F\u2040`;
const NCNAME = `[${NC_START}][${NC_CHAR}]*`;
const QNAME = new RegExp(`^${NCNAME}(?::${NCNAME})?$`, 'u');
const PI_TARGET = new RegExp(`^${NCNAME}$`, 'u');

/** Characters XML 1.0 §2.2 does not allow anywhere, not even as character references. */
const NOT_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

/** XMLDecl (§2.8): version, optional encoding and standalone, in that order. */
const XML_DECL =
  /^<\?xml[ \t\n]+version[ \t\n]*=[ \t\n]*(["'])1\.[0-9]+\1(?:[ \t\n]+encoding[ \t\n]*=[ \t\n]*(["'])([A-Za-z][A-Za-z0-9._-]*)\2)?(?:[ \t\n]+standalone[ \t\n]*=[ \t\n]*(["'])(?:yes|no)\4)?[ \t\n]*\?>$/;

const PREDEFINED_ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** Markup declarations that only exist inside a DTD. */
const DTD_MARKUP = /^<!(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)/;

function isXmlSpace(ch: string | undefined): boolean {
  // Line ends are normalised to LF before reading (§2.11), so CR never reaches here.
  return ch === ' ' || ch === '\t' || ch === '\n';
}

function isXmlChar(code: number): boolean {
  return (
    code === 0x9 || code === 0xa || code === 0xd ||
    (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff)
  );
}

/** Replaces XML whitespace runs by one space and trims (xs:token's whiteSpace="collapse"); no regex backtracking. */
export function collapseWhitespace(text: string): string {
  let out = '';
  let pendingSpace = false;
  for (const ch of text) {
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      pendingSpace = out !== '';
    } else {
      if (pendingSpace) out += ' ';
      pendingSpace = false;
      out += ch;
    }
  }
  return out;
}

/** The text of an element that must not contain elements (those in other namespaces included). */
export function leafText(element: XmlElement): string {
  if (element.children.length > 0) throw new XmlBodyError('schema', `<${element.localName}> must contain text only`);
  return element.text;
}

/** An element that holds elements only: any text but whitespace is an error. */
export function requireNoText(element: XmlElement): void {
  if (collapseWhitespace(element.text) !== '') throw new XmlBodyError('schema', `<${element.localName}> must not contain text`);
}

/**
 * Escapes text for element content: &, < and > (the last so that "]]>" can never appear), and
 * CR as a character reference (a literal CR would be read back as LF, §2.11).
 *
 * @throws RangeError for characters XML 1.0 cannot carry at all (C0 controls, lone surrogates, U+FFFE/U+FFFF).
 */
export function escapeXmlText(text: string): string {
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (!isXmlChar(code)) throw new RangeError(`XML cannot carry the character U+${code.toString(16).toUpperCase().padStart(4, '0')}`);
  }
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#13;');
}

/**
 * Reads an XML document into its root element. See the section comment for what is accepted.
 *
 * @throws XmlBodyError (a ParseError) with the reason: `empty`, `too-large`, `too-deep`,
 *   `too-many-nodes`, `encoding`, `dtd`, `entity`, `syntax`, `namespace`, `truncated`.
 */
export function parseXml(body: Uint8Array, limits: XmlLimits = XML_LIMITS, what = 'XML body'): XmlElement {
  if (body.length === 0) throw new XmlBodyError('empty', `${what} is empty`);
  if (body.length > limits.maxBytes) throw new XmlBodyError('too-large', `${what} is over ${limits.maxBytes} bytes`);
  if ((body[0] === 0xfe && body[1] === 0xff) || (body[0] === 0xff && body[1] === 0xfe)) {
    throw new XmlBodyError('encoding', `${what} is UTF-16; it must be UTF-8`);
  }
  let text: string;
  try {
    // fatal: invalid UTF-8 is refused rather than turned into U+FFFD; a leading BOM is dropped.
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw new XmlBodyError('encoding', `${what} is not valid UTF-8`);
  }
  if (NOT_XML_CHAR.test(text)) throw new XmlBodyError('syntax', `${what} contains a character XML 1.0 does not allow`);
  return new XmlReader(text.replace(/\r\n?/g, '\n'), limits, what).document();
}

interface MutableElement {
  namespace: string;
  localName: string;
  attributes: XmlAttribute[];
  children: MutableElement[];
  text: string;
}

interface OpenElement {
  readonly qname: string;
  readonly element: MutableElement;
  /** Namespace declarations made on this element (prefix '' is the default namespace). */
  readonly bindings: ReadonlyMap<string, string> | undefined;
}

class XmlReader {
  #pos = 0;
  #elements = 0;
  readonly #stack: OpenElement[] = [];

  constructor(
    readonly text: string,
    readonly limits: XmlLimits,
    readonly what: string,
  ) {}

  document(): XmlElement {
    this.#xmlDeclaration();
    this.#misc();
    if (this.#pos >= this.text.length) throw this.#error('truncated', 'there is no root element');
    if (this.text[this.#pos] !== '<') throw this.#error('syntax', 'text before the root element');
    const root = this.#startTag();
    if (this.#stack.length > 0) this.#content();
    this.#misc();
    if (this.#pos < this.text.length) throw this.#error('syntax', 'content after the root element');
    return root;
  }

  #error(reason: XmlErrorReason, message: string): XmlBodyError {
    return new XmlBodyError(reason, `${this.what}: ${message} (at character ${this.#pos})`);
  }

  #startsWith(literal: string): boolean {
    return this.text.startsWith(literal, this.#pos);
  }

  #skipSpace(): void {
    while (isXmlSpace(this.text[this.#pos])) this.#pos++;
  }

  /** XMLDecl, only as the very first characters (§2.8). */
  #xmlDeclaration(): void {
    if (!this.#startsWith('<?xml') || !(isXmlSpace(this.text[5]) || this.text[5] === '?')) return;
    const end = this.text.indexOf('?>');
    if (end < 0) throw this.#error('truncated', 'unterminated XML declaration');
    if (end > 256) throw this.#error('syntax', 'XML declaration too long');
    const match = XML_DECL.exec(this.text.slice(0, end + 2));
    if (match === null) throw this.#error('syntax', 'malformed XML declaration');
    const encoding = match[3];
    if (encoding !== undefined && encoding.toLowerCase() !== 'utf-8') {
      throw this.#error('encoding', `declared encoding ${encoding}; it must be UTF-8`);
    }
    this.#pos = end + 2;
  }

  /** Misc* (§2.8): whitespace, comments and PIs around the root element. A DOCTYPE is refused. */
  #misc(): void {
    for (;;) {
      this.#skipSpace();
      if (this.#startsWith('<!--')) this.#comment();
      else if (this.#startsWith('<?')) this.#processingInstruction();
      else if (this.#startsWith('<!')) this.#declaration();
      else return;
    }
  }

  #comment(): void {
    const end = this.text.indexOf('-->', this.#pos + 4);
    if (end < 0) throw this.#error('truncated', 'unterminated comment');
    const body = this.text.slice(this.#pos + 4, end);
    if (body.includes('--') || body.endsWith('-')) throw this.#error('syntax', '"--" inside a comment');
    this.#pos = end + 3;
  }

  #processingInstruction(): void {
    const end = this.text.indexOf('?>', this.#pos + 2);
    if (end < 0) throw this.#error('truncated', 'unterminated processing instruction');
    let targetEnd = this.#pos + 2;
    while (targetEnd < end && !isXmlSpace(this.text[targetEnd])) targetEnd++;
    const target = this.text.slice(this.#pos + 2, targetEnd);
    if (!PI_TARGET.test(target)) throw this.#error('syntax', 'malformed processing instruction');
    if (target.toLowerCase() === 'xml') throw this.#error('syntax', 'an XML declaration must come first');
    this.#pos = end + 2;
  }

  /** `<!` that is neither a comment nor CDATA: DTD markup (refused on principle) or garbage. */
  #declaration(): never {
    if (DTD_MARKUP.test(this.text.slice(this.#pos, this.#pos + 10))) {
      throw this.#error('dtd', 'DTDs and entity declarations are not accepted');
    }
    throw this.#error('syntax', 'unexpected "<!"');
  }

  /** Element content until the root element closes (§3.1): an explicit stack, no recursion. */
  #content(): void {
    const { text } = this;
    while (this.#stack.length > 0) {
      const open = this.#stack[this.#stack.length - 1]!;
      const lt = text.indexOf('<', this.#pos);
      if (lt < 0) {
        this.#pos = text.length;
        throw this.#error('truncated', `the document ends inside <${open.qname}>`);
      }
      if (lt > this.#pos) this.#characterData(text.slice(this.#pos, lt), open.element);
      this.#pos = lt;
      if (this.#startsWith('</')) this.#endTag(open);
      else if (this.#startsWith('<!--')) this.#comment();
      else if (this.#startsWith('<![CDATA[')) {
        const end = text.indexOf(']]>', this.#pos + 9);
        if (end < 0) throw this.#error('truncated', 'unterminated CDATA section');
        open.element.text += text.slice(this.#pos + 9, end);
        this.#pos = end + 3;
      } else if (this.#startsWith('<?')) this.#processingInstruction();
      else if (this.#startsWith('<!')) this.#declaration();
      else this.#startTag();
    }
  }

  #characterData(raw: string, element: MutableElement): void {
    if (raw.includes(']]>')) throw this.#error('syntax', '"]]>" in character data');
    element.text += this.#decodeReferences(raw);
  }

  /** Start tag or empty-element tag (§3.1), at '<'. Returns the new element. */
  #startTag(): MutableElement {
    const { text } = this;
    let pos = this.#pos + 1;
    let nameEnd = pos;
    while (nameEnd < text.length && !isXmlSpace(text[nameEnd]) && text[nameEnd] !== '/' && text[nameEnd] !== '>') nameEnd++;
    const qname = text.slice(pos, nameEnd);
    if (!QNAME.test(qname)) throw this.#error('syntax', 'malformed element name');
    pos = nameEnd;

    const rawAttributes: Array<readonly [string, string]> = [];
    let selfClosing: boolean;
    for (;;) {
      const spaceStart = pos;
      while (isXmlSpace(text[pos])) pos++;
      if (pos >= text.length) {
        this.#pos = pos;
        throw this.#error('truncated', `the document ends inside the tag <${qname}>`);
      }
      if (text[pos] === '>') {
        pos++;
        selfClosing = false;
        break;
      }
      if (text[pos] === '/') {
        if (text[pos + 1] !== '>') throw this.#error('syntax', `"/" not followed by ">" in <${qname}>`);
        pos += 2;
        selfClosing = true;
        break;
      }
      if (pos === spaceStart) throw this.#error('syntax', `attributes of <${qname}> must be separated by whitespace`);
      let attrEnd = pos;
      while (attrEnd < text.length && !isXmlSpace(text[attrEnd]) && !'=/>'.includes(text[attrEnd]!)) attrEnd++;
      const name = text.slice(pos, attrEnd);
      if (!QNAME.test(name)) throw this.#error('syntax', `malformed attribute name in <${qname}>`);
      pos = attrEnd;
      while (isXmlSpace(text[pos])) pos++;
      if (text[pos] !== '=') throw this.#error('syntax', `attribute ${name} has no value`);
      pos++;
      while (isXmlSpace(text[pos])) pos++;
      const quote = text[pos];
      if (quote !== '"' && quote !== "'") {
        throw this.#error(pos >= text.length ? 'truncated' : 'syntax', `the value of ${name} is not quoted`);
      }
      const close = text.indexOf(quote, pos + 1);
      if (close < 0) throw this.#error('truncated', `unterminated value of ${name}`);
      const raw = text.slice(pos + 1, close);
      if (raw.includes('<')) throw this.#error('syntax', `"<" in the value of ${name}`);
      // Attribute-value normalisation (§3.3.3): literal whitespace becomes a space, references keep theirs.
      rawAttributes.push([name, this.#decodeReferences(raw.replace(/[\t\n]/g, ' '))]);
      if (rawAttributes.length > this.limits.maxAttributes) {
        throw this.#error('too-many-nodes', `<${qname}> has more than ${this.limits.maxAttributes} attributes`);
      }
      pos = close + 1;
    }
    this.#pos = pos;

    if (this.#stack.length + 1 > this.limits.maxDepth) throw this.#error('too-deep', `elements nested more than ${this.limits.maxDepth} deep`);
    if (++this.#elements > this.limits.maxElements) throw this.#error('too-many-nodes', `more than ${this.limits.maxElements} elements`);

    const bindings = this.#declarations(rawAttributes);
    const element: MutableElement = {
      ...this.#resolve(qname, bindings, true),
      attributes: this.#attributes(rawAttributes, bindings, qname),
      children: [],
      text: '',
    };
    this.#stack[this.#stack.length - 1]?.element.children.push(element);
    if (!selfClosing) this.#stack.push({ qname, element, bindings });
    return element;
  }

  /** The namespace declarations among an element's attributes (Namespaces in XML §3). */
  #declarations(attributes: ReadonlyArray<readonly [string, string]>): Map<string, string> | undefined {
    let bindings: Map<string, string> | undefined;
    for (const [name, value] of attributes) {
      let prefix: string;
      if (name === 'xmlns') prefix = '';
      else if (name.startsWith('xmlns:')) prefix = name.slice(6);
      else continue;
      const reserved = value === XML_NAMESPACE_URI || value === XMLNS_NAMESPACE_URI;
      if (prefix === 'xmlns') throw this.#error('namespace', 'the xmlns prefix cannot be declared');
      if (prefix === 'xml' ? value !== XML_NAMESPACE_URI : reserved) {
        throw this.#error('namespace', `the reserved namespace ${value} cannot be bound to "${prefix}"`);
      }
      // Namespaces in XML 1.0 §5: a prefix cannot be undeclared (only the default namespace can).
      if (prefix !== '' && value === '') throw this.#error('namespace', `xmlns:${prefix} cannot be empty`);
      (bindings ??= new Map()).set(prefix, value);
    }
    return bindings;
  }

  /** Expanded name of a QName: unprefixed element names take the default namespace, attribute names none. */
  #resolve(qname: string, bindings: ReadonlyMap<string, string> | undefined, isElement: boolean): { namespace: string; localName: string } {
    const colon = qname.indexOf(':');
    if (colon < 0) return { namespace: isElement ? (this.#lookup('', bindings) ?? '') : '', localName: qname };
    const prefix = qname.slice(0, colon);
    const localName = qname.slice(colon + 1);
    if (prefix === 'xmlns') throw this.#error('namespace', `"${qname}" uses the reserved xmlns prefix`);
    const namespace = prefix === 'xml' ? XML_NAMESPACE_URI : this.#lookup(prefix, bindings);
    if (namespace === undefined) throw this.#error('namespace', `the prefix "${prefix}" of ${qname} is not declared`);
    return { namespace, localName };
  }

  #lookup(prefix: string, bindings: ReadonlyMap<string, string> | undefined): string | undefined {
    const own = bindings?.get(prefix);
    if (own !== undefined) return own;
    for (let i = this.#stack.length - 1; i >= 0; i--) {
      const found = this.#stack[i]!.bindings?.get(prefix);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /** The attributes with expanded names; the same name twice, written or expanded, is an error (§3.1, NS §6.3). */
  #attributes(
    raw: ReadonlyArray<readonly [string, string]>,
    bindings: ReadonlyMap<string, string> | undefined,
    qname: string,
  ): XmlAttribute[] {
    const written = new Set<string>();
    const expanded = new Set<string>();
    const attributes: XmlAttribute[] = [];
    for (const [name, value] of raw) {
      if (written.has(name)) throw this.#error('syntax', `<${qname}> has the attribute ${name} twice`);
      written.add(name);
      if (name === 'xmlns' || name.startsWith('xmlns:')) continue;
      const resolved = this.#resolve(name, bindings, false);
      const key = `${resolved.namespace} ${resolved.localName}`;
      if (expanded.has(key)) throw this.#error('namespace', `<${qname}> has the attribute {${resolved.namespace}}${resolved.localName} twice`);
      expanded.add(key);
      attributes.push({ ...resolved, value });
    }
    return attributes;
  }

  /** End tag (§3.1), at "</": must close the innermost open element. */
  #endTag(open: OpenElement): void {
    const end = this.text.indexOf('>', this.#pos + 2);
    if (end < 0) throw this.#error('truncated', `unterminated end tag of <${open.qname}>`);
    let nameEnd = end;
    while (nameEnd > this.#pos + 2 && isXmlSpace(this.text[nameEnd - 1])) nameEnd--;
    const name = this.text.slice(this.#pos + 2, nameEnd);
    if (name !== open.qname) throw this.#error('syntax', `</${name.slice(0, 64)}> does not close <${open.qname}>`);
    this.#stack.pop();
    this.#pos = end + 1;
  }

  /**
   * Decodes the five predefined entity references and character references (§4.1, §4.6). Any
   * other reference names an entity that was never declared (there is no DTD), which is a
   * well-formedness error (§4.1 "Well-formedness constraint: Entity Declared").
   */
  #decodeReferences(raw: string): string {
    if (!raw.includes('&')) return raw;
    let out = '';
    let from = 0;
    for (;;) {
      const amp = raw.indexOf('&', from);
      if (amp < 0) return out + raw.slice(from);
      out += raw.slice(from, amp);
      const semicolon = raw.indexOf(';', amp + 1);
      // A real reference is short; a far-away ";" means a bare "&" (and bounds the scan).
      if (semicolon < 0 || semicolon - amp > 40) throw this.#error('syntax', '"&" that does not start a reference');
      const name = raw.slice(amp + 1, semicolon);
      let code: number | undefined;
      if (/^#x[0-9A-Fa-f]+$/.test(name)) code = Number.parseInt(name.slice(2), 16);
      else if (/^#[0-9]+$/.test(name)) code = Number.parseInt(name.slice(1), 10);
      if (code !== undefined) {
        if (!isXmlChar(code)) throw this.#error('syntax', `&${name}; refers to a character XML does not allow`);
        out += String.fromCodePoint(code);
      } else {
        const replacement = PREDEFINED_ENTITIES[name];
        if (replacement !== undefined) out += replacement;
        else if (QNAME.test(name)) throw this.#error('entity', `undeclared entity &${name};`);
        else throw this.#error('syntax', `malformed reference &${name.slice(0, 16)};`);
      }
      from = semicolon + 1;
    }
  }
}
