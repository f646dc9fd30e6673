import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { buildCpim, cpimHeader, cpimHeaders, cpimTo, cpimFrom, parseCpim, type CpimMessage } from '../../main/im/cpim.js';
import {
  IMDN_CONTENT_TYPE,
  IMDN_NAMESPACE,
  IMDN_XML_NAMESPACE,
  ImdnScheduler,
  buildImdn,
  buildImdnXml,
  decideImdn,
  imdnDestination,
  isImdnMessage,
  newImdnMessageId,
  parseImdnXml,
  readImdnNotifications,
  readImdnRequest,
  requestImdn,
  type ImdnDecisionContext,
  type ImdnDocument,
  type ImdnNotification,
  type ImdnSchedulerEvent,
  type ReceivedImdnRequest,
} from '../../main/im/imdn.js';
import { XML_LIMITS, XmlBodyError, escapeXmlText, parseXml, type XmlErrorReason } from '../../main/im/xml.js';
import { buildMultipart } from '../../main/im/multipart.js';
import { ParseError } from '../../main/sip/message/parse-error.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);
const crlf = (...lines: string[]): string => lines.join('\r\n');

/** Runs `fn` and returns the XmlBodyError it throws (failing on anything else, or nothing). */
function xmlErrorOf(fn: () => unknown): XmlBodyError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(XmlBodyError);
    expect(error).toBeInstanceOf(ParseError);
    return error as XmlBodyError;
  }
  throw new Error('expected an XmlBodyError, nothing was thrown');
}

function reasonOf(xml: string | Uint8Array): XmlErrorReason {
  return xmlErrorOf(() => parseXml(typeof xml === 'string' ? bytes(xml) : xml)).reason;
}

/**
 * The IM of RFC 5438 §7.1.1.3 as a SIP body. The RFC prints it without the empty line between
 * the CPIM headers and the content headers (and with the carrier's Content-type line on top);
 * both are layout defects of the example, corrected here (checklist §0, §15).
 */
const RFC5438_IM = crlf(
  'From: Alice <im:alice@example.com>',
  'To: Bob <im:bob@example.com>',
  'NS: imdn <urn:ietf:params:imdn>',
  'imdn.Message-ID: 34jk324j',
  'DateTime: 2006-04-04T12:16:49-05:00',
  'imdn.Disposition-Notification: positive-delivery, display',
  '',
  'Content-type: text/plain',
  'Content-length: 12',
  '',
  'Hello World',
);

/** The delivery notification document of RFC 5438 §7.2.1.1, with its odd line break inside a tag. */
const RFC5438_DELIVERY_XML = [
  '<?xml version="1.0" encoding="UTF-8"?>',
  '<imdn xmlns="urn:ietf:params:xml:ns:imdn">',
  '   <message-id>34jk324j</message-id>',
  '   <datetime>2008-04-04T12:16:49-05:00</datetime>',
  '   <recipient-uri>im:bob@example.com</recipient-uri>',
  '   <original-recipient-uri',
  '      >im:bob@example.com</original-recipient-uri>',
  '   <delivery-notification>',
  '      <status>',
  '         <delivered/>',
  '      </status>',
  '   </delivery-notification>',
  '</imdn>',
].join('\n');

/** The display notification document of RFC 5438 §7.2.1.2. */
const RFC5438_DISPLAY_XML = [
  '<?xml version="1.0" encoding="UTF-8"?>',
  '<imdn xmlns="urn:ietf:params:xml:ns:imdn">',
  '   <message-id>34jk324j</message-id>',
  '   <datetime>2008-04-04T12:16:49-05:00</datetime>',
  '   <recipient-uri>im:bob@example.com</recipient-uri>',
  '   <original-recipient-uri>im:bob@example.com</original-recipient-uri>',
  '   <display-notification>',
  '      <status>',
  '         <displayed/>',
  '      </status>',
  '   </display-notification>',
  '</imdn>',
].join('\n');

/** The §7.2.1.1 IMDN as a SIP body (the RFC's layout corrected as above, and the DateTime it omits added). */
const RFC5438_DELIVERY_CPIM = crlf(
  'From: Bob <im:bob@example.com>',
  'To: Alice <im:alice@example.com>',
  'NS: imdn <urn:ietf:params:imdn>',
  'imdn.Message-ID: d834jied93rf',
  'DateTime: 2008-04-04T12:16:49-05:00',
  '',
  'Content-type: message/imdn+xml',
  'Content-Disposition: notification',
  '',
  RFC5438_DELIVERY_XML,
);

const imdnXml = (inner: string, rootAttributes = 'xmlns="urn:ietf:params:xml:ns:imdn"'): string =>
  `<?xml version="1.0" encoding="UTF-8"?><imdn ${rootAttributes}>${inner}</imdn>`;

const DELIVERED = '<delivery-notification><status><delivered/></status></delivery-notification>';
const HEAD = '<message-id>abc</message-id><datetime>2026-03-01T10:00:00Z</datetime>';

describe('requesting notifications (RFC 5438 §7.1.1)', () => {
  it('writes NS, Message-ID and Disposition-Notification that buildCpim accepts and readImdnRequest reads back', () => {
    const request = requestImdn();
    const body = buildCpim({
      from: { uri: 'sip:alice@example.org', name: 'Alice' },
      to: [{ uri: 'sip:bob@example.org' }],
      dateTime: new Date('2026-03-01T10:00:00Z'),
      namespaces: request.namespaces,
      extraHeaders: request.extraHeaders,
      contentType: 'text/plain;charset=utf-8',
      content: bytes('hello'),
    });
    const text = decoder.decode(body);
    expect(text).toContain('NS: imdn <urn:ietf:params:imdn>\r\n');
    expect(text).toContain(`imdn.Message-ID: ${request.messageId}\r\n`);
    expect(text).toContain('imdn.Disposition-Notification: positive-delivery, display\r\n');
    expect(text).toContain('DateTime: 2026-03-01T10:00:00Z\r\n');

    const read = readImdnRequest(parseCpim(body));
    expect(read).toEqual({
      messageId: request.messageId,
      dispositions: new Set(['positive-delivery', 'display']),
      dateTime: '2026-03-01T10:00:00Z',
      from: { uri: 'sip:alice@example.org', name: 'Alice' },
      to: { uri: 'sip:bob@example.org' },
      recordRoute: [],
    });
  });

  it('makes Message-IDs of 96 random bits, base64url, all different', () => {
    const ids = new Set(Array.from({ length: 2000 }, () => newImdnMessageId()));
    expect(ids.size).toBe(2000);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{16}$/);
  });

  it('takes a prefix, a Message-ID and dispositions of the caller', () => {
    const request = requestImdn({ prefix: 'n', messageId: 'm-1', dispositions: ['negative-delivery', 'display', 'display'] });
    expect(request.namespaces).toEqual({ n: IMDN_NAMESPACE });
    expect(request.extraHeaders).toEqual([
      { ns: 'n', name: 'Message-ID', value: 'm-1' },
      { ns: 'n', name: 'Disposition-Notification', value: 'negative-delivery, display' },
    ]);
  });

  it('refuses an empty disposition list and a Message-ID that is not a Token', () => {
    expect(() => requestImdn({ dispositions: [] })).toThrow(RangeError);
    expect(() => requestImdn({ messageId: 'two words' })).toThrow(RangeError);
    expect(() => requestImdn({ messageId: '' })).toThrow(RangeError);
  });
});

describe('reading a request (RFC 5438 §6, §7.2)', () => {
  const parse = (text: string): CpimMessage => parseCpim(bytes(text));

  it('reads the §7.1.1.3 example', () => {
    expect(readImdnRequest(parse(RFC5438_IM))).toEqual({
      messageId: '34jk324j',
      dispositions: new Set(['positive-delivery', 'display']),
      dateTime: '2006-04-04T12:16:49-05:00',
      from: { uri: 'im:alice@example.com', name: 'Alice' },
      to: { uri: 'im:bob@example.com', name: 'Bob' },
      recordRoute: [],
    });
  });

  it('finds the headers by namespace URI, whatever the prefix (§6.1)', () => {
    const renamed = RFC5438_IM.replace('NS: imdn <', 'NS: x9 <').replaceAll('imdn.', 'x9.');
    expect(readImdnRequest(parse(renamed))?.messageId).toBe('34jk324j');
    // The same prefix bound to another namespace is not IMDN at all.
    const other = RFC5438_IM.replace('<urn:ietf:params:imdn>', '<urn:example:not-imdn>');
    expect(readImdnRequest(parse(other))).toBeUndefined();
    // The namespace URI's URN part is case-insensitive (RFC 8141 §3.1).
    const upper = RFC5438_IM.replace('<urn:ietf:params:imdn>', '<URN:IETF:params:imdn>');
    expect(readImdnRequest(parse(upper))?.messageId).toBe('34jk324j');
  });

  it('ignores unknown dispositions and parameters, merges repeated headers, and is case-insensitive', () => {
    const text = RFC5438_IM.replace(
      'imdn.Disposition-Notification: positive-delivery, display',
      'imdn.Disposition-Notification: Positive-Delivery;x=1 , teleport\r\nimdn.Disposition-Notification: processing',
    );
    expect(readImdnRequest(parse(text))?.dispositions).toEqual(new Set(['positive-delivery', 'processing']));
    const unknownOnly = RFC5438_IM.replace('positive-delivery, display', 'teleport, fax');
    expect(readImdnRequest(parse(unknownOnly))).toBeUndefined();
  });

  it('gives nothing when a request cannot be answered: no Disposition-Notification, Message-ID, DateTime or From', () => {
    expect(readImdnRequest(parse(RFC5438_IM.replace(/imdn\.Disposition-Notification: [^\r]*\r\n/, '')))).toBeUndefined();
    expect(readImdnRequest(parse(RFC5438_IM.replace('imdn.Message-ID: 34jk324j\r\n', '')))).toBeUndefined();
    expect(readImdnRequest(parse(RFC5438_IM.replace('DateTime: 2006-04-04T12:16:49-05:00\r\n', '')))).toBeUndefined();
    expect(readImdnRequest(parse(RFC5438_IM.replace('2006-04-04T12:16:49-05:00', 'yesterday')))).toBeUndefined();
    expect(readImdnRequest(parse(RFC5438_IM.replace('From: Alice <im:alice@example.com>\r\n', '')))).toBeUndefined();
    expect(readImdnRequest(parse(RFC5438_IM.replace('<im:alice@example.com>', 'not an address')))).toBeUndefined();
  });

  it('never answers a request inside an IMDN (§7.2.1; checklist item 203)', () => {
    const notification = RFC5438_DELIVERY_CPIM.replace(
      'imdn.Message-ID: d834jied93rf',
      'imdn.Message-ID: d834jied93rf\r\nimdn.Disposition-Notification: positive-delivery',
    );
    const cpim = parse(notification);
    expect(isImdnMessage(cpim)).toBe(true);
    expect(readImdnRequest(cpim)).toBeUndefined();
    // Either sign is enough: the content type alone, or the disposition alone.
    expect(isImdnMessage(parse(notification.replace('Content-Disposition: notification\r\n', '')))).toBe(true);
    const dispositionOnly = RFC5438_IM.replace('Content-type: text/plain', 'Content-type: text/plain\r\nContent-Disposition: Notification;x=y');
    expect(isImdnMessage(parse(dispositionOnly))).toBe(true);
    expect(readImdnRequest(parse(dispositionOnly))).toBeUndefined();
    expect(isImdnMessage(parse(RFC5438_IM))).toBe(false);
  });

  it('reads Original-To and the IMDN-Record-Route values in order', () => {
    const text = RFC5438_IM.replace(
      'imdn.Message-ID: 34jk324j',
      [
        'imdn.Message-ID: 34jk324j',
        'imdn.Original-To: <sip:list@example.com>',
        'imdn.IMDN-Record-Route: <sip:exploder1@example.com>',
        'imdn.IMDN-Record-Route: <sip:exploder2@example.net>',
      ].join('\r\n'),
    );
    const request = readImdnRequest(parse(text))!;
    expect(request.originalTo).toEqual({ uri: 'sip:list@example.com' });
    expect(request.recordRoute.map((route) => route.uri)).toEqual(['sip:exploder1@example.com', 'sip:exploder2@example.net']);
  });
});

describe('deciding whether to notify (RFC 5438 §7.2.1, §12.1.3.1)', () => {
  const request: ReceivedImdnRequest = {
    messageId: '34jk324j',
    dispositions: new Set(['positive-delivery', 'negative-delivery', 'display']),
    dateTime: '2006-04-04T12:16:49-05:00',
    from: { uri: 'im:alice@example.com' },
    recordRoute: [],
  };
  const ok: ImdnDecisionContext = { finalStatus: 200, readReceipts: true, alreadySent: new Set() };

  it('sends delivered, failed and displayed when requested and allowed', () => {
    expect(decideImdn(request, { type: 'delivered' }, ok)).toEqual({ send: true, notification: { kind: 'delivery', status: 'delivered' } });
    expect(decideImdn(request, { type: 'delivery-failed' }, ok)).toEqual({ send: true, notification: { kind: 'delivery', status: 'failed' } });
    expect(decideImdn(request, { type: 'delivery-failed', status: 'forbidden' }, ok)).toEqual({
      send: true,
      notification: { kind: 'delivery', status: 'forbidden' },
    });
    expect(decideImdn(request, { type: 'displayed' }, { ...ok, finalStatus: 202 })).toEqual({
      send: true,
      notification: { kind: 'display', status: 'displayed' },
    });
  });

  it('sends nothing without a request, or for a disposition not requested', () => {
    expect(decideImdn(undefined, { type: 'delivered' }, ok)).toEqual({ send: false, reason: 'no-request' });
    const onlyDisplay = { ...request, dispositions: new Set(['display'] as const) };
    expect(decideImdn(onlyDisplay, { type: 'delivered' }, ok)).toEqual({ send: false, reason: 'not-requested' });
    expect(decideImdn(onlyDisplay, { type: 'delivery-failed' }, ok)).toEqual({ send: false, reason: 'not-requested' });
  });

  it('sends at most one notification per disposition type (§7.2.1)', () => {
    const deliverySent = { ...ok, alreadySent: new Set(['delivery'] as const) };
    expect(decideImdn(request, { type: 'delivered' }, deliverySent)).toEqual({ send: false, reason: 'already-sent' });
    // A failure learned after "delivered" went out cannot be told: it would be a second delivery IMDN.
    expect(decideImdn(request, { type: 'delivery-failed' }, deliverySent)).toEqual({ send: false, reason: 'already-sent' });
    expect(decideImdn(request, { type: 'displayed' }, deliverySent).send).toBe(true);
    expect(decideImdn(request, { type: 'displayed' }, { ...ok, alreadySent: new Set(['display'] as const) })).toEqual({
      send: false,
      reason: 'already-sent',
    });
  });

  it('sends nothing after a non-2xx final response, negative-delivery included (§12.1.3.1)', () => {
    for (const finalStatus of [100, 199, 300, 415, 488, 500, 603]) {
      for (const type of ['delivered', 'delivery-failed', 'displayed'] as const) {
        expect(decideImdn(request, { type }, { ...ok, finalStatus })).toEqual({ send: false, reason: 'not-accepted' });
      }
    }
  });

  it('sends no display notification at all when the user turned read receipts off', () => {
    expect(decideImdn(request, { type: 'displayed' }, { ...ok, readReceipts: false })).toEqual({ send: false, reason: 'read-receipts-off' });
    expect(decideImdn(request, { type: 'delivered' }, { ...ok, readReceipts: false }).send).toBe(true);
  });
});

describe('building a notification (RFC 5438 §7.2.1)', () => {
  const im = parseCpim(
    bytes(
      RFC5438_IM.replace(
        'imdn.Message-ID: 34jk324j',
        'imdn.Message-ID: 34jk324j\r\nimdn.IMDN-Record-Route: <sip:exploder1@example.com>\r\nimdn.IMDN-Record-Route: <sip:exploder2@example.net>',
      ),
    ),
  );
  const request = readImdnRequest(im)!;
  const bob = { uri: 'im:bob@example.com', name: 'Bob' };

  it('writes a message/cpim IMDN: own Message-ID, IMDN-Route, no Disposition-Notification, notification disposition', () => {
    const built = buildImdn({
      request,
      notification: { kind: 'delivery', status: 'delivered' },
      from: bob,
      dateTime: new Date('2008-04-04T17:16:50Z'),
      messageId: 'd834jied93rf',
    });
    expect(built.contentType).toBe('message/cpim');
    expect(built.messageId).toBe('d834jied93rf');
    expect(built.destination).toEqual({ uri: 'sip:exploder1@example.com', via: 'imdn-route' });

    const cpim = parseCpim(built.body);
    expect(cpimFrom(cpim)).toEqual(bob);
    expect(cpimTo(cpim)).toEqual([{ uri: 'im:alice@example.com', name: 'Alice' }]);
    expect(cpimHeader(cpim, IMDN_NAMESPACE, 'Message-ID')?.value).toBe('d834jied93rf');
    expect(cpimHeaders(cpim, IMDN_NAMESPACE, 'Disposition-Notification')).toEqual([]);
    expect(cpimHeaders(cpim, IMDN_NAMESPACE, 'IMDN-Route').map((h) => h.value)).toEqual([
      '<sip:exploder1@example.com>',
      '<sip:exploder2@example.net>',
    ]);
    expect(cpim.contentType).toBe(IMDN_CONTENT_TYPE);
    expect(cpim.contentHeaders).toEqual([['Content-Disposition', 'notification']]);
    expect(isImdnMessage(cpim)).toBe(true);
    expect(readImdnRequest(cpim)).toBeUndefined();

    expect(readImdnNotifications(cpim)).toEqual([
      {
        kind: 'delivery',
        status: 'delivered',
        messageId: '34jk324j',
        datetime: new Date('2006-04-04T17:16:49Z'),
        datetimeText: '2006-04-04T12:16:49-05:00',
        recipient: 'im:bob@example.com',
        originalRecipient: 'im:bob@example.com',
      },
    ]);
  });

  it('gives every IMDN a fresh Message-ID by default, never the IM\'s', () => {
    const input = { request, notification: { kind: 'display', status: 'displayed' } as const, from: bob, dateTime: new Date(0) };
    const first = buildImdn(input);
    const second = buildImdn(input);
    expect(first.messageId).not.toBe(second.messageId);
    expect(first.messageId).not.toBe(request.messageId);
  });

  it('sends to the top IMDN-Route, else the SIP From, else the CPIM From (§12.1.3.1)', () => {
    const direct = { ...request, recordRoute: [] };
    expect(imdnDestination(request, 'sip:alice@example.com')).toEqual({ uri: 'sip:exploder1@example.com', via: 'imdn-route' });
    expect(imdnDestination(direct, 'sip:alice@pc33.example.com')).toEqual({ uri: 'sip:alice@pc33.example.com', via: 'sip-from' });
    expect(imdnDestination(direct)).toEqual({ uri: 'im:alice@example.com', via: 'cpim-from' });
    const built = buildImdn({
      request: direct,
      notification: { kind: 'delivery', status: 'delivered' },
      from: bob,
      dateTime: new Date(0),
      sipFrom: 'sip:alice@example.com',
    });
    expect(built.destination).toEqual({ uri: 'sip:alice@example.com', via: 'sip-from' });
    expect(cpimHeaders(parseCpim(built.body), IMDN_NAMESPACE, 'IMDN-Route')).toEqual([]);
  });

  it('puts Original-To in <original-recipient-uri> and our AoR in <recipient-uri>', () => {
    const listed = { ...request, originalTo: { uri: 'sip:team@lists.example.com' } };
    const built = buildImdn({
      request: listed,
      notification: { kind: 'delivery', status: 'delivered' },
      from: bob,
      recipientUri: 'sip:bob@example.com',
      dateTime: new Date(0),
      prefix: 'n',
    });
    const cpim = parseCpim(built.body);
    expect(decoder.decode(built.body)).toContain('NS: n <urn:ietf:params:imdn>');
    const [notification] = readImdnNotifications(cpim)!;
    expect(notification?.recipient).toBe('sip:bob@example.com');
    expect(notification?.originalRecipient).toBe('sip:team@lists.example.com');
  });

  it('writes the compact document of §11 in schema order', () => {
    const xml = decoder.decode(
      buildImdnXml({
        messageId: '34jk324j',
        datetime: '2008-04-04T12:16:49-05:00',
        recipientUri: 'im:bob@example.com',
        notification: { kind: 'display', status: 'displayed' },
      }),
    );
    expect(xml).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
        '<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>34jk324j</message-id>' +
        '<datetime>2008-04-04T12:16:49-05:00</datetime><recipient-uri>im:bob@example.com</recipient-uri>' +
        '<original-recipient-uri>im:bob@example.com</original-recipient-uri>' +
        '<display-notification><status><displayed/></status></display-notification></imdn>',
    );
  });

  it('refuses documents it cannot write faithfully', () => {
    const base: ImdnDocument = { messageId: 'a', datetime: '2026-01-01T00:00:00Z', notification: { kind: 'delivery', status: 'delivered' } };
    expect(() => buildImdnXml({ ...base, notification: { kind: 'delivery', status: 'displayed' } as unknown as ImdnNotification })).toThrow(RangeError);
    expect(() => buildImdnXml({ ...base, datetime: 'now' })).toThrow(RangeError);
    expect(() => buildImdnXml({ ...base, recipientUri: 'sip:a b@example.com' })).toThrow(RangeError);
    expect(() => buildImdnXml({ ...base, originalRecipientUri: 'sip:a@example.com' })).toThrow(RangeError);
    expect(() => buildImdnXml({ ...base, messageId: 'a\u0001b' })).toThrow(RangeError);
    expect(() => buildImdnXml({ ...base, messageId: 'a\uD800b' })).toThrow(RangeError);
  });

  it('escapes what XML must escape', () => {
    expect(escapeXmlText('a<b>&c]]>\r')).toBe('a&lt;b&gt;&amp;c]]&gt;&#13;');
    const doc = parseImdnXml(
      buildImdnXml({
        messageId: 'a&b<c>',
        datetime: '2026-01-01T00:00:00Z',
        recipientUri: 'sip:bob@example.com;x=1&y=2',
        subject: 'Tom & Jerry <3 ]]> \r',
        notification: { kind: 'delivery', status: 'delivered' },
      }),
    );
    expect(doc.messageId).toBe('a&b<c>');
    expect(doc.recipient).toBe('sip:bob@example.com;x=1&y=2');
    expect(doc.subject).toBe('Tom & Jerry <3 ]]> \r');
  });
});

describe('reading notifications (RFC 5438 §7.1.2–§7.1.4, §11)', () => {
  it('reads the §7.2.1.1 delivery notification and the §7.2.1.2 display notification', () => {
    expect(parseImdnXml(bytes(RFC5438_DELIVERY_XML))).toEqual({
      kind: 'delivery',
      status: 'delivered',
      messageId: '34jk324j',
      datetime: new Date('2008-04-04T17:16:49Z'),
      datetimeText: '2008-04-04T12:16:49-05:00',
      recipient: 'im:bob@example.com',
      originalRecipient: 'im:bob@example.com',
    });
    expect(parseImdnXml(bytes(RFC5438_DISPLAY_XML))).toMatchObject({ kind: 'display', status: 'displayed', messageId: '34jk324j' });
    expect(readImdnNotifications(parseCpim(bytes(RFC5438_DELIVERY_CPIM)))).toEqual([parseImdnXml(bytes(RFC5438_DELIVERY_XML))]);
  });

  it('does not care which prefix the document uses (Namespaces in XML)', () => {
    const prefixed = [
      '<i:imdn xmlns:i="urn:ietf:params:xml:ns:imdn" xmlns="urn:example:default">',
      '<i:message-id>34jk324j</i:message-id><i:datetime>2008-04-04T12:16:49-05:00</i:datetime>',
      '<i:display-notification><i:status><i:displayed/></i:status></i:display-notification>',
      '</i:imdn>',
    ].join('');
    expect(parseImdnXml(bytes(prefixed))).toMatchObject({ kind: 'display', status: 'displayed', messageId: '34jk324j' });
    // Declared on the way down, and the default namespace redeclared in the middle.
    const mixed = imdnXml(
      `${HEAD}<delivery-notification xmlns:q="${IMDN_XML_NAMESPACE}"><q:status><status xmlns="urn:example:ext"/><q:failed/></q:status></delivery-notification>`,
    );
    expect(parseImdnXml(bytes(mixed))).toMatchObject({ kind: 'delivery', status: 'failed' });
  });

  it('ignores elements and attributes of other namespaces (Linphone\'s <reason>, for one)', () => {
    const linphone = imdnXml(
      `${HEAD}<x:extra xmlns:x="urn:example:x" a="1"><x:deep/></x:extra>` +
        `<delivery-notification><status><error/><reason xmlns="http://www.linphone.org/xsds/imdn.xsd" code="488">Not acceptable</reason></status></delivery-notification>`,
      `xmlns="${IMDN_XML_NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:x y.xsd"`,
    );
    expect(parseImdnXml(bytes(linphone))).toMatchObject({ kind: 'delivery', status: 'error', messageId: 'abc' });
  });

  it('reads processing notifications (sent by intermediaries) and every status of every kind', () => {
    const statuses: Record<string, string[]> = {
      delivery: ['delivered', 'failed', 'forbidden', 'error'],
      display: ['displayed', 'forbidden', 'error'],
      processing: ['processed', 'stored', 'forbidden', 'error'],
    };
    for (const [kind, list] of Object.entries(statuses)) {
      for (const status of list) {
        const xml = imdnXml(`${HEAD}<${kind}-notification><status><${status}/></status></${kind}-notification>`);
        expect(parseImdnXml(bytes(xml))).toMatchObject({ kind, status });
      }
    }
  });

  it('refuses documents of the wrong shape', () => {
    const shapes: Array<[string, string]> = [
      ['wrong root namespace', `<imdn xmlns="urn:example:imdn">${HEAD}${DELIVERED}</imdn>`],
      ['no namespace at all', `<imdn>${HEAD}${DELIVERED}</imdn>`],
      ['wrong root name', `<imdn2 xmlns="${IMDN_XML_NAMESPACE}">${HEAD}${DELIVERED}</imdn2>`],
      ['no message-id', imdnXml(`<datetime>2026-03-01T10:00:00Z</datetime>${DELIVERED}`)],
      ['empty message-id', imdnXml(`<message-id> </message-id><datetime>2026-03-01T10:00:00Z</datetime>${DELIVERED}`)],
      ['no datetime', imdnXml(`<message-id>a</message-id>${DELIVERED}`)],
      ['bad datetime', imdnXml(`<message-id>a</message-id><datetime>yesterday</datetime>${DELIVERED}`)],
      ['no notification', imdnXml(HEAD)],
      ['two notifications', imdnXml(`${HEAD}${DELIVERED}${DELIVERED}`)],
      ['repeated message-id', imdnXml(`${HEAD}<message-id>b</message-id>${DELIVERED}`)],
      ['status of another kind', imdnXml(`${HEAD}<delivery-notification><status><displayed/></status></delivery-notification>`)],
      ['unknown status', imdnXml(`${HEAD}<display-notification><status><read/></status></display-notification>`)],
      ['two statuses', imdnXml(`${HEAD}<delivery-notification><status><delivered/><failed/></status></delivery-notification>`)],
      ['no status element', imdnXml(`${HEAD}<delivery-notification><delivered/></delivery-notification>`)],
      ['text where elements go', imdnXml(`${HEAD}<delivery-notification>yes<status><delivered/></status></delivery-notification>`)],
      ['unknown element in the IMDN namespace', imdnXml(`${HEAD}<priority>high</priority>${DELIVERED}`)],
      ['element inside a text element', imdnXml(`<message-id>a<b/></message-id><datetime>2026-03-01T10:00:00Z</datetime>${DELIVERED}`)],
      ['recipient that is not a URI', imdnXml(`${HEAD}<recipient-uri>bob</recipient-uri>${DELIVERED}`)],
    ];
    for (const [why, xml] of shapes) {
      const error = xmlErrorOf(() => parseImdnXml(bytes(xml)));
      expect(error.reason, why).toBe('schema');
      expect(error.code, why).toBe('bad-body');
    }
  });

  it('reads aggregated notifications from a multipart/mixed body (§7.1.4)', () => {
    const display = buildImdnXml({ messageId: 'm2', datetime: '2026-01-01T00:00:01Z', notification: { kind: 'display', status: 'displayed' } });
    const multipart = buildMultipart([
      { contentType: IMDN_CONTENT_TYPE, body: bytes(RFC5438_DELIVERY_XML) },
      { contentType: 'text/plain', body: bytes('ignored') },
      { contentType: IMDN_CONTENT_TYPE, body: display },
    ]);
    const body = buildCpim({
      from: { uri: 'sip:list@example.com' },
      to: [{ uri: 'im:alice@example.com' }],
      dateTime: new Date(0),
      contentType: multipart.contentType,
      contentHeaders: [['Content-Disposition', 'notification']],
      content: multipart.body,
    });
    const notifications = readImdnNotifications(parseCpim(body))!;
    expect(notifications.map((n) => [n.messageId, n.kind, n.status])).toEqual([
      ['34jk324j', 'delivery', 'delivered'],
      ['m2', 'display', 'displayed'],
    ]);
  });

  it('says undefined for a CPIM message that is not a notification', () => {
    expect(readImdnNotifications(parseCpim(bytes(RFC5438_IM)))).toBeUndefined();
  });

  it('refuses a notification whose content is neither imdn+xml nor multipart', () => {
    const odd = RFC5438_IM.replace('Content-type: text/plain', 'Content-type: text/plain\r\nContent-Disposition: notification');
    expect(xmlErrorOf(() => readImdnNotifications(parseCpim(bytes(odd)))).reason).toBe('schema');
  });
});

describe('the XML reader', () => {
  it('reads what well-formed documents may contain', () => {
    const xml = [
      '\uFEFF<?xml version=\'1.0\' encoding=\'utf-8\' standalone=\'yes\'?>',
      '<!-- a comment -->',
      '<?app some instruction?>',
      '<r xmlns="urn:a" xmlns:b="urn:b" b:x=\'1 &amp; 2\' y="a\tb&#9;c">',
      '  <b:c>x&lt;y&gt;z&quot;&apos;&#65;&#x1F600;<![CDATA[<not> & markup]]></b:c>',
      '  <!-- -- no -->'.replace('-- no ', ' no '),
      '  <d/><e xmlns=""/>',
      '</r   >',
      '<!-- trailing -->',
      '',
    ].join('\r\n');
    const root = parseXml(bytes(xml));
    expect(root).toMatchObject({ namespace: 'urn:a', localName: 'r' });
    expect(root.attributes).toEqual([
      { namespace: 'urn:b', localName: 'x', value: '1 & 2' },
      { namespace: '', localName: 'y', value: 'a b\tc' },
    ]);
    expect(root.children.map((c) => [c.namespace, c.localName])).toEqual([
      ['urn:b', 'c'],
      ['urn:a', 'd'],
      ['', 'e'],
    ]);
    expect(root.children[0]?.text).toBe('x<y>z"\'A\u{1F600}<not> & markup');
    // CRLF line ends read as LF (§2.11).
    expect(root.text).toBe('\n  \n  \n  \n');
  });

  it('resolves the xml prefix without a declaration', () => {
    const root = parseXml(bytes('<a xml:lang="fr"/>'));
    expect(root.attributes).toEqual([{ namespace: 'http://www.w3.org/XML/1998/namespace', localName: 'lang', value: 'fr' }]);
  });

  const hostile: Array<[string, string | Uint8Array, XmlErrorReason]> = [
    [
      'billion laughs',
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>',
      'dtd',
    ],
    ['external entity', '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>', 'dtd'],
    ['DOCTYPE after the root', '<r/><!DOCTYPE r>', 'dtd'],
    ['markup declaration inside content', '<r><!ENTITY x "y"></r>', 'dtd'],
    ['undeclared entity', '<r>&nbsp;</r>', 'entity'],
    ['undeclared entity in an attribute', '<r a="&x;"/>', 'entity'],
    ['bare ampersand', '<r>fish & chips</r>', 'syntax'],
    ['reference to NUL', '<r>&#0;</r>', 'syntax'],
    ['reference beyond Unicode', '<r>&#x110000;</r>', 'syntax'],
    ['reference to a surrogate', '<r>&#xD800;</r>', 'syntax'],
    ['raw control character', '<r>\u0001</r>', 'syntax'],
    ['"]]>" in text', '<r>a]]>b</r>', 'syntax'],
    ['"--" in a comment', '<r><!-- a -- b --></r>', 'syntax'],
    ['comment ending in "-"', '<r><!-- a ---></r>', 'syntax'],
    ['XML declaration not first', ' <?xml version="1.0"?><r/>', 'syntax'],
    ['second XML declaration', '<?xml version="1.0"?><?xml version="1.0"?><r/>', 'syntax'],
    ['malformed XML declaration', '<?xml encoding="UTF-8"?><r/>', 'syntax'],
    ['declared Latin-1', '<?xml version="1.0" encoding="ISO-8859-1"?><r/>', 'encoding'],
    ['invalid UTF-8', new Uint8Array([0x3c, 0x72, 0x3e, 0xc3, 0x28, 0x3c, 0x2f, 0x72, 0x3e]), 'encoding'],
    ['UTF-16', new Uint8Array([0xff, 0xfe, 0x3c, 0x00, 0x72, 0x00, 0x2f, 0x00, 0x3e, 0x00]), 'encoding'],
    ['empty', new Uint8Array(0), 'empty'],
    ['whitespace only', '  \n', 'truncated'],
    ['unclosed root', '<r><a></a>', 'truncated'],
    ['unclosed tag', '<r a="1"', 'truncated'],
    ['unclosed attribute value', '<r a="1/>', 'truncated'],
    ['unclosed comment', '<r><!-- x</r>', 'truncated'],
    ['unclosed CDATA', '<r><![CDATA[ x</r>', 'truncated'],
    ['mismatched end tag', '<r><a></b></r>', 'syntax'],
    ['end tag with a space before the name', '<r></ r>', 'syntax'],
    ['two roots', '<r/><s/>', 'syntax'],
    ['text before the root', 'x<r/>', 'syntax'],
    ['text after the root', '<r/>x', 'syntax'],
    ['unquoted attribute', '<r a=1/>', 'syntax'],
    ['attribute without value', '<r a/>', 'syntax'],
    ['attributes without space', '<r a="1"b="2"/>', 'syntax'],
    ['"<" in an attribute value', '<r a="<"/>', 'syntax'],
    ['duplicate attribute', '<r a="1" a="2"/>', 'syntax'],
    ['duplicate expanded attribute', '<r xmlns:p="urn:x" xmlns:q="urn:x" p:a="1" q:a="2"/>', 'namespace'],
    ['malformed name', '<1r/>', 'syntax'],
    ['two colons', '<a:b:c xmlns:a="urn:a"/>', 'syntax'],
    ['undeclared element prefix', '<p:r/>', 'namespace'],
    ['undeclared attribute prefix', '<r p:a="1"/>', 'namespace'],
    ['prefix undeclared with ""', '<r xmlns:p=""/>', 'namespace'],
    ['xmlns prefix declared', '<r xmlns:xmlns="urn:x"/>', 'namespace'],
    ['xml prefix rebound', '<r xmlns:xml="urn:x"/>', 'namespace'],
    ['XML namespace under another prefix', '<r xmlns:p="http://www.w3.org/XML/1998/namespace"/>', 'namespace'],
    ['element in the xmlns prefix', '<xmlns:r/>', 'namespace'],
    ['prefix out of scope', '<r><a xmlns:p="urn:p"/><p:b/></r>', 'namespace'],
    ['CDATA outside the root', '<![CDATA[x]]><r/>', 'syntax'],
    ['stray "/" in a tag', '<r / >', 'syntax'],
  ];
  for (const [why, input, reason] of hostile) {
    it(`refuses ${why} (${reason})`, () => {
      expect(reasonOf(input)).toBe(reason);
    });
  }

  it('refuses bodies over the limits quickly, whatever they contain', () => {
    const started = performance.now();
    expect(reasonOf(new Uint8Array(10 * 1024 * 1024).fill(0x3c))).toBe('too-large');
    expect(reasonOf('<a>'.repeat(10_000))).toBe('too-deep'); // 30 kB < 32 KiB: stopped at depth 17
    expect(reasonOf(`${'<a>'.repeat(XML_LIMITS.maxDepth + 1)}${'</a>'.repeat(XML_LIMITS.maxDepth + 1)}`)).toBe('too-deep');
    expect(reasonOf(`<r>${'<a/>'.repeat(XML_LIMITS.maxElements)}</r>`)).toBe('too-many-nodes');
    const attributes = Array.from({ length: XML_LIMITS.maxAttributes + 1 }, (_, i) => `a${i}="1"`).join(' ');
    expect(reasonOf(`<r ${attributes}/>`)).toBe('too-many-nodes');
    expect(XmlBodyError.prototype).toBeInstanceOf(ParseError);
    expect(xmlErrorOf(() => parseXml(bytes(`<r>${'<a/>'.repeat(XML_LIMITS.maxElements)}</r>`))).code).toBe('too-large');
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('stays linear on pathological input just under the size limit', () => {
    const size = XML_LIMITS.maxBytes - 64;
    const inputs = [
      `<r>${'&'.repeat(size)}</r>`,
      `<r>${'&amp'.repeat(size / 4)}</r>`,
      `<r>${' '.repeat(size)}x`,
      `<r a="${'x'.repeat(size)}`,
      `<r${' '.repeat(size)}`,
      `<r><!--${'-'.repeat(size)}`,
      `<?xml version="1.0"${' '.repeat(size)}?><r/>`,
      `<r>${']]'.repeat(size / 2)}</r>`,
      `<r>${'<!--x-->'.repeat(size / 8)}</r>`,
      `<r>${'<?p?>'.repeat(size / 5)}</r>`,
      `<r>${'</r'.repeat(size / 3)}`,
      `<${'a'.repeat(size)}/>`,
    ];
    const started = performance.now();
    for (const input of inputs) {
      try {
        parseXml(bytes(input));
      } catch (error) {
        expect(error).toBeInstanceOf(XmlBodyError);
      }
    }
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('throws only ParseError on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (input) => {
        try {
          parseXml(input);
        } catch (error) {
          if (!(error instanceof XmlBodyError)) throw error;
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('throws only ParseError on soups of XML tokens', () => {
    const token = fc.constantFrom(
      '<', '>', '/', '</', '/>', '<a>', '</a>', '<b:c>', '</b:c>', '<a/>', ' xmlns="urn:x"', ' xmlns:b="urn:b"', ' x="1"',
      "'", '"', '=', '&', ';', '&amp;', '&#65;', '&#x41;', '&lt', '<!--', '-->', '<![CDATA[', ']]>', '<?', '?>', '<?xml version="1.0"?>',
      '<!DOCTYPE', '[', ']', 'text', ' ', '\n', '\u00e9', '\u{1F600}',
    );
    fc.assert(
      fc.property(fc.array(token, { maxLength: 40 }), (tokens) => {
        try {
          const root = parseXml(bytes(tokens.join('')));
          expect(typeof root.localName).toBe('string');
        } catch (error) {
          if (!(error instanceof XmlBodyError)) throw error;
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('IMDN documents, properties', () => {
  /** Text XML can carry (valid XML 1.0 characters, no lone surrogates), whitespace kept inside. */
  const xmlText = fc
    .string({ unit: 'grapheme', maxLength: 30 })
    .filter((s) => !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\uFFFE\uFFFF]/.test(s));
  const token = fc.stringMatching(/^[A-Za-z0-9_.!~*'-]{1,24}$/);
  const uri = fc.stringMatching(/^(sip|sips|im|tel):[a-z0-9.@;=&%+-]{1,30}$/);
  const notification: fc.Arbitrary<ImdnNotification> = fc.oneof(
    fc.record({ kind: fc.constant('delivery' as const), status: fc.constantFrom('delivered', 'failed', 'forbidden', 'error') as fc.Arbitrary<'delivered'> }),
    fc.record({ kind: fc.constant('display' as const), status: fc.constantFrom('displayed', 'forbidden', 'error') as fc.Arbitrary<'displayed'> }),
    fc.record({ kind: fc.constant('processing' as const), status: fc.constantFrom('processed', 'stored', 'forbidden', 'error') as fc.Arbitrary<'processed'> }),
  );
  const date = fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true });

  it('reads back what it writes', () => {
    fc.assert(
      fc.property(
        token,
        date,
        fc.option(fc.tuple(uri, uri, fc.option(xmlText, { nil: undefined })), { nil: undefined }),
        notification,
        (messageId, when, recipients, note) => {
          const datetime = when.toISOString();
          const doc: ImdnDocument = {
            messageId,
            datetime,
            notification: note,
            ...(recipients === undefined
              ? {}
              : {
                  recipientUri: recipients[0],
                  originalRecipientUri: recipients[1],
                  ...(recipients[2] === undefined ? {} : { subject: recipients[2] }),
                }),
          };
          const read = parseImdnXml(buildImdnXml(doc));
          expect(read).toEqual({
            ...note,
            messageId,
            datetime: when,
            datetimeText: datetime,
            ...(recipients === undefined
              ? {}
              : {
                  recipient: recipients[0],
                  originalRecipient: recipients[1],
                  ...(recipients[2] === undefined ? {} : { subject: recipients[2] }),
                }),
          });
        },
      ),
      { numRuns: 500 },
    );
  });

  it('survives any single-byte mutation of a valid document with a result or a ParseError', () => {
    const valid = bytes(RFC5438_DELIVERY_XML);
    fc.assert(
      fc.property(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.boolean(), (index, value, remove) => {
        const mutated = remove
          ? new Uint8Array([...valid.subarray(0, index), ...valid.subarray(index + 1)])
          : valid.map((b, i) => (i === index ? value : b));
        try {
          parseImdnXml(mutated);
        } catch (error) {
          if (!(error instanceof ParseError)) throw error;
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('ImdnScheduler (sans-I/O, virtual time)', () => {
  /** Drives a scheduler through virtual time until nothing is left (or `until`), recording sends. */
  function run<T>(scheduler: ImdnScheduler<T>, start: ImdnSchedulerEvent<T>[], until = 10_000_000): Array<{ at: number; peer: string; key: string }> {
    const sent = start.filter((e) => e.type === 'send').map((e) => ({ at: 0, peer: e.peer, key: e.key }));
    let steps = 0;
    for (let at = scheduler.pollTimeout(); at !== undefined && at <= until; at = scheduler.pollTimeout()) {
      const events = scheduler.handleTimeout(at);
      expect(events.length, `no progress at ${at}`).toBeGreaterThan(0);
      for (const event of events) if (event.type === 'send') sent.push({ at, peer: event.peer, key: event.key });
      expect(++steps).toBeLessThan(100_000);
    }
    return sent;
  }

  it('turns a burst of 1,000 notifications to one peer into a burst of 10, then 5 per second', () => {
    const scheduler = new ImdnScheduler<number>();
    const immediate: ImdnSchedulerEvent<number>[] = [];
    for (let i = 0; i < 1000; i++) immediate.push(...scheduler.enqueue('sip:alice@example.com', `m${i}:delivery`, i, 0));
    expect(immediate.map((e) => e.type)).toEqual(Array(10).fill('send'));
    expect(scheduler.queued).toBe(990);
    expect(scheduler.pollTimeout()).toBe(200);
    // Calling early does nothing.
    expect(scheduler.handleTimeout(199)).toEqual([]);

    const sent = run(scheduler, immediate);
    expect(sent.map((s) => s.key)).toEqual(Array.from({ length: 1000 }, (_, i) => `m${i}:delivery`));
    for (const [index, s] of sent.entries()) {
      // Never more than the burst plus what the rate allows by then.
      expect(index + 1).toBeLessThanOrEqual(10 + Math.floor(s.at / 200) + 1e-9);
    }
    expect(sent.at(-1)?.at).toBe(990 * 200);
    expect(scheduler.queued).toBe(0);
    expect(scheduler.pollTimeout()).toBeUndefined();
  });

  it('caps all peers together, serving them round-robin', () => {
    const scheduler = new ImdnScheduler<string>({ totalBurst: 4, totalPerSecond: 10, perPeerBurst: 100, perPeerPerSecond: 100 });
    const immediate: ImdnSchedulerEvent<string>[] = [];
    for (let i = 0; i < 6; i++) immediate.push(...scheduler.enqueue('sip:a@x', `a${i}`, 'a', 0));
    for (let i = 0; i < 6; i++) immediate.push(...scheduler.enqueue('sip:b@x', `b${i}`, 'b', 0));
    expect(immediate.filter((e) => e.type === 'send')).toHaveLength(4);
    const sent = run(scheduler, immediate);
    expect(sent).toHaveLength(12);
    // The first burst went to a, alone then; from there the two peers alternate until a is done.
    expect(sent.slice(4).map((s) => s.peer)).toEqual([
      'sip:a@x', 'sip:b@x', 'sip:a@x', 'sip:b@x', 'sip:b@x', 'sip:b@x', 'sip:b@x', 'sip:b@x',
    ]);
    for (const [index, s] of sent.entries()) expect(index + 1).toBeLessThanOrEqual(4 + Math.floor(s.at / 100) + 1e-9);
  });

  it('sends 100 peers one notification each within the total rate', () => {
    const scheduler = new ImdnScheduler<number>();
    const immediate: ImdnSchedulerEvent<number>[] = [];
    for (let i = 0; i < 100; i++) immediate.push(...scheduler.enqueue(`sip:u${i}@x`, `k${i}`, i, 0));
    const sent = run(scheduler, immediate);
    expect(new Set(sent.map((s) => s.key)).size).toBe(100);
    expect(sent.filter((s) => s.at === 0)).toHaveLength(20);
    expect(sent.at(-1)?.at).toBe(80 * 50);
  });

  it('drops duplicates, queued or already sent, so one IM gets one IMDN per disposition type', () => {
    const scheduler = new ImdnScheduler<number>({ perPeerBurst: 1, perPeerPerSecond: 1 });
    expect(scheduler.enqueue('p', 'm1:delivery', 1, 0).map((e) => e.type)).toEqual(['send']);
    expect(scheduler.enqueue('p', 'm1:delivery', 2, 0)).toEqual([{ type: 'dropped', peer: 'p', key: 'm1:delivery', item: 2, reason: 'duplicate' }]);
    expect(scheduler.enqueue('p', 'm1:display', 3, 0)).toEqual([]);
    expect(scheduler.enqueue('p', 'm1:display', 4, 0)[0]).toMatchObject({ type: 'dropped', reason: 'duplicate' });
    expect(scheduler.queuedFor('p')).toBe(1);
    expect(scheduler.handleTimeout(1000)).toEqual([{ type: 'send', peer: 'p', key: 'm1:display', item: 3 }]);
  });

  it('forgets the oldest sent keys beyond rememberSent', () => {
    const scheduler = new ImdnScheduler<number>({ rememberSent: 2 });
    for (const key of ['a', 'b', 'c']) scheduler.enqueue('p', key, 0, 0);
    expect(scheduler.enqueue('p', 'a', 0, 0).map((e) => e.type)).toEqual(['send']);
    expect(scheduler.enqueue('p', 'c', 0, 0)[0]).toMatchObject({ type: 'dropped', reason: 'duplicate' });
  });

  it('drops new notifications when a queue is full, and says so', () => {
    const scheduler = new ImdnScheduler<number>({ perPeerBurst: 1, perPeerPerSecond: 1, maxQueuedPerPeer: 2, maxQueued: 3 });
    scheduler.enqueue('p', 'p1', 1, 0); // sent at once
    scheduler.enqueue('p', 'p2', 2, 0);
    scheduler.enqueue('p', 'p3', 3, 0);
    expect(scheduler.enqueue('p', 'p4', 4, 0)).toEqual([{ type: 'dropped', peer: 'p', key: 'p4', item: 4, reason: 'queue-full' }]);
    scheduler.enqueue('q', 'q1', 1, 0); // sent at once
    scheduler.enqueue('q', 'q2', 2, 0);
    expect(scheduler.queued).toBe(3);
    expect(scheduler.enqueue('r', 'r1', 1, 0)[0]).toMatchObject({ type: 'dropped', reason: 'queue-full' });
  });

  it('sends at most a burst after a long stall, and forgets idle peers with full buckets', () => {
    const scheduler = new ImdnScheduler<number>({ perPeerBurst: 3, perPeerPerSecond: 1, totalBurst: 100, totalPerSecond: 100 });
    for (let i = 0; i < 10; i++) scheduler.enqueue('p', `k${i}`, i, 0);
    expect(scheduler.queued).toBe(7);
    expect(scheduler.handleTimeout(3_600_000).filter((e) => e.type === 'send')).toHaveLength(3);
    // A peer that comes back after its bucket refilled gets a fresh burst, not a debt.
    const other = new ImdnScheduler<number>({ perPeerBurst: 2, perPeerPerSecond: 1 });
    other.enqueue('p', 'a', 0, 0);
    other.enqueue('p', 'b', 0, 0);
    expect(other.pollTimeout()).toBeUndefined();
    expect(other.enqueue('p', 'c', 0, 10_000).map((e) => e.type)).toEqual(['send']);
    expect(other.enqueue('p', 'd', 0, 10_000).map((e) => e.type)).toEqual(['send']);
    expect(other.enqueue('p', 'e', 0, 10_000)).toEqual([]);
    expect(other.pollTimeout()).toBe(11_000);
  });

  it('ignores time running backwards', () => {
    const scheduler = new ImdnScheduler<number>({ perPeerBurst: 1, perPeerPerSecond: 1 }, 5_000);
    scheduler.enqueue('p', 'a', 0, 5_000);
    scheduler.enqueue('p', 'b', 0, 5_000);
    expect(scheduler.handleTimeout(0)).toEqual([]);
    expect(scheduler.pollTimeout()).toBe(6_000);
    expect(scheduler.handleTimeout(6_000).map((e) => e.type)).toEqual(['send']);
  });

  it('refuses nonsense options', () => {
    expect(() => new ImdnScheduler({ perPeerPerSecond: 0 })).toThrow(RangeError);
    expect(() => new ImdnScheduler({ totalBurst: Number.NaN })).toThrow(RangeError);
    expect(() => new ImdnScheduler({ maxQueued: -1 })).toThrow(RangeError);
  });

  it('never sends more than the buckets allow, for any arrival pattern (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 0, max: 4 })), { minLength: 1, maxLength: 200 }),
        (arrivals) => {
          const scheduler = new ImdnScheduler<number>({ perPeerBurst: 3, perPeerPerSecond: 2, totalBurst: 5, totalPerSecond: 4 });
          const sorted = [...arrivals].sort((a, b) => a[0] - b[0]);
          const sent: Array<{ at: number; peer: string }> = [];
          const record = (at: number, events: ImdnSchedulerEvent<number>[]): void => {
            for (const e of events) if (e.type === 'send') sent.push({ at, peer: e.peer });
          };
          let now = 0;
          for (const [index, [at, peer]] of sorted.entries()) {
            for (let due = scheduler.pollTimeout(); due !== undefined && due <= at; due = scheduler.pollTimeout()) {
              record(due, scheduler.handleTimeout(due));
            }
            now = at;
            record(now, scheduler.enqueue(`p${peer}`, `k${index}`, index, now));
          }
          for (let due = scheduler.pollTimeout(); due !== undefined; due = scheduler.pollTimeout()) record(due, scheduler.handleTimeout(due));
          expect(sent).toHaveLength(sorted.length);
          // Token-bucket bound: in any window [t, t + w], at most burst + rate·w sends.
          const check = (list: Array<{ at: number }>, burst: number, perSecond: number): void => {
            for (let i = 0; i < list.length; i++) {
              for (let j = i; j < list.length; j++) {
                const window = list[j]!.at - list[i]!.at;
                expect(j - i + 1).toBeLessThanOrEqual(burst + (window * perSecond) / 1000 + 1e-6);
              }
            }
          };
          check(sent, 5, 4);
          for (let p = 0; p <= 4; p++) check(sent.filter((s) => s.peer === `p${p}`), 3, 2);
        },
      ),
      { numRuns: 200 },
    );
  });
});
