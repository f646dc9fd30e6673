import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { StreamFramer } from '../../main/sip/transport/stream-framer.js';
import type { FramerEvent, StreamFramerOptions } from '../../main/sip/transport/stream-framer.js';

const CRLF = '\r\n';

/** A request head (lines joined with CRLF, ending in the empty line) plus a body. */
function message(headLines: string[], body: string | Buffer = ''): Buffer {
  const bodyBytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return Buffer.concat([Buffer.from(headLines.join(CRLF) + CRLF + CRLF, 'utf8'), bodyBytes]);
}

function messageRequest(body: string, contentLengthLine = `Content-Length: ${Buffer.byteLength(body)}`): Buffer {
  return message(
    [
      'MESSAGE sip:bob@example.test SIP/2.0',
      'Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK776sgdkse',
      'From: <sip:alice@example.test>;tag=49583',
      'To: <sip:bob@example.test>',
      'Call-ID: asd88asd77a@1.2.3.4',
      'CSeq: 1 MESSAGE',
      'Content-Type: text/plain',
      contentLengthLine,
    ],
    body,
  );
}

function pushAll(framer: StreamFramer, chunks: Buffer[]): FramerEvent[] {
  return chunks.flatMap((chunk) => framer.push(chunk));
}

function messagesOf(events: FramerEvent[]): Buffer[] {
  return events.flatMap((event) => (event.type === 'message' ? [event.data] : []));
}

function errorOf(events: FramerEvent[]): Extract<FramerEvent, { type: 'error' }> | undefined {
  return events.find((event): event is Extract<FramerEvent, { type: 'error' }> => event.type === 'error');
}

function bytewise(data: Buffer): Buffer[] {
  return [...data].map((b) => Buffer.from([b]));
}

describe('StreamFramer: framing by Content-Length (RFC 3261 §18.3)', () => {
  it('frames one message exactly, body counted in octets not characters', () => {
    const msg = messageRequest('Grüße, 東京 👍');
    const events = new StreamFramer().push(msg);
    expect(events).toHaveLength(1);
    expect(messagesOf(events)[0]!.equals(msg)).toBe(true);
  });

  it('frames several messages delivered in one chunk', () => {
    const a = messageRequest('first');
    const b = messageRequest('');
    const c = messageRequest('third\r\n\r\nwith a blank line inside the body');
    const events = new StreamFramer().push(Buffer.concat([a, b, c]));
    expect(messagesOf(events).map((m) => m.toString('utf8'))).toEqual([a, b, c].map((m) => m.toString('utf8')));
  });

  it('frames a message split at every byte boundary', () => {
    const msg = messageRequest('split me');
    const framer = new StreamFramer();
    const events: FramerEvent[] = [];
    for (const [i, chunk] of bytewise(msg).entries()) {
      const out = framer.push(chunk);
      // nothing may come out before the last byte
      if (i < msg.length - 1) expect(out).toEqual([]);
      events.push(...out);
    }
    expect(messagesOf(events)).toHaveLength(1);
    expect(messagesOf(events)[0]!.equals(msg)).toBe(true);
  });

  it('holds a message back until its whole body has arrived', () => {
    const msg = messageRequest('0123456789');
    const framer = new StreamFramer();
    expect(framer.push(msg.subarray(0, msg.length - 1))).toEqual([]);
    expect(framer.phase).toBe('body');
    expect(messagesOf(framer.push(msg.subarray(msg.length - 1)))).toHaveLength(1);
    expect(framer.phase).toBe('idle');
    expect(framer.bufferedBytes).toBe(0);
  });

  it('finds the compact form "l", any case, with whitespace around the colon', () => {
    for (const line of ['l: 4', 'L:4', 'content-length   :   4', 'CONTENT-LENGTH\t:\t4 ', 'Content-Length :4']) {
      const msg = messageRequest('abcd', line);
      const events = new StreamFramer().push(Buffer.concat([msg, messageRequest('')]));
      expect(messagesOf(events), line).toHaveLength(2);
      expect(messagesOf(events)[0]!.equals(msg), line).toBe(true);
    }
  });

  it('joins a folded Content-Length value (§7.3.1)', () => {
    const msg = messageRequest('abcde', `Content-Length:${CRLF}   5`);
    const events = new StreamFramer().push(msg);
    expect(messagesOf(events)).toHaveLength(1);
    expect(messagesOf(events)[0]!.equals(msg)).toBe(true);
  });

  it('is not fooled by "Content-Length" inside a folded line of another header, or a longer name', () => {
    const msg = message(
      [
        'MESSAGE sip:bob@example.test SIP/2.0',
        'Subject: the next line is folded',
        ' Content-Length: 999',
        'X-Content-Length: 999',
        'Content-Lengthy: 999',
        'Content-Length: 3',
      ],
      'abc',
    );
    const events = new StreamFramer().push(msg);
    expect(errorOf(events)).toBeUndefined();
    expect(messagesOf(events)[0]!.equals(msg)).toBe(true);
  });

  it('accepts the whitespace-laden head of RFC 4475 §3.1.1.1 (wsinv) style', () => {
    const body = 'v=0\r\n';
    const msg = message(
      [
        'INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0',
        'TO :',
        ' sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n',
        'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>',
        '  ;',
        '  tag = 98asjd8',
        'MaX-fOrWaRdS: 0068',
        'Call-ID: wsinv.ndaksdj@192.0.2.1',
        `Content-Length   : ${body.length}`,
        'cseq: 0009',
        '  INVITE',
      ],
      body,
    );
    const events = new StreamFramer().push(msg);
    expect(messagesOf(events)[0]!.equals(msg)).toBe(true);
  });

  it('tolerates bare LF line ends (LFLF ends the head)', () => {
    const msg = Buffer.from('SIP/2.0 200 OK\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\nl: 2\n\nok', 'latin1');
    const events = new StreamFramer().push(Buffer.concat([msg, msg]));
    expect(messagesOf(events).map((m) => m.toString('latin1'))).toEqual([msg.toString('latin1'), msg.toString('latin1')]);
  });

  it('accepts equal duplicate Content-Length values', () => {
    const msg = message(['OPTIONS sip:a@b SIP/2.0', 'Content-Length: 2', 'l: 02'], 'hi');
    expect(messagesOf(new StreamFramer().push(msg))).toHaveLength(1);
  });

  it('frames a 60 KiB message pushed one byte at a time, in linear time', () => {
    const body = 'x'.repeat(60 * 1024);
    const msg = messageRequest(body);
    const framer = new StreamFramer();
    const events = pushAll(framer, bytewise(msg));
    expect(messagesOf(events)).toHaveLength(1);
    expect(messagesOf(events)[0]!.equals(msg)).toBe(true);
    // Rescanning or re-copying the buffer per byte would be ~4e9 byte operations here, far
    // past the test timeout; no wall-clock assertion is made.
  });

  it('returns a copy that later pushes cannot overwrite', () => {
    const framer = new StreamFramer();
    const a = messageRequest('first body');
    const [first] = messagesOf(framer.push(a));
    framer.push(messageRequest('second body, which reuses the buffer'));
    expect(first!.equals(a)).toBe(true);
  });
});

describe('StreamFramer: CRLFs between messages (RFC 3261 §7.5, RFC 5626 §4.4.1)', () => {
  it('reports a double CRLF as a ping and a single CRLF as a pong', () => {
    expect(new StreamFramer().push(Buffer.from('\r\n\r\n'))).toEqual([{ type: 'keepalive-ping' }]);
    expect(new StreamFramer().push(Buffer.from('\r\n'))).toEqual([{ type: 'keepalive-pong' }]);
    expect(new StreamFramer().push(Buffer.from('\r\n\r\n\r\n'))).toEqual([{ type: 'keepalive-ping' }, { type: 'keepalive-pong' }]);
  });

  it('ignores CRLFs before a start line and keeps the events in stream order', () => {
    const msg = messageRequest('x');
    const events = new StreamFramer().push(Buffer.concat([Buffer.from('\r\n\r\n'), msg, Buffer.from('\r\n'), msg]));
    expect(events.map((e) => e.type)).toEqual(['keepalive-ping', 'message', 'keepalive-pong', 'message']);
    expect(messagesOf(events).every((m) => m.equals(msg))).toBe(true);
  });

  it('still answers a ping split across two segments', () => {
    const framer = new StreamFramer();
    expect(framer.push(Buffer.from('\r'))).toEqual([]);
    expect(framer.push(Buffer.from('\n\r\n'))).toEqual([{ type: 'keepalive-ping' }]);
    // The worst split reports a pong first, then the ping that must be answered.
    const other = new StreamFramer();
    expect(other.push(Buffer.from('\r\n'))).toEqual([{ type: 'keepalive-pong' }]);
    expect(other.push(Buffer.from('\r\n'))).toEqual([{ type: 'keepalive-ping' }]);
  });

  it('does not report a pong twice when a message follows it in a later segment', () => {
    const framer = new StreamFramer();
    expect(framer.push(Buffer.from('\r\n'))).toEqual([{ type: 'keepalive-pong' }]);
    expect(framer.push(messageRequest('')).map((e) => e.type)).toEqual(['message']);
  });
});

describe('StreamFramer: errors end the stream', () => {
  function failWith(input: Buffer | string, options?: StreamFramerOptions): Extract<FramerEvent, { type: 'error' }> {
    const framer = new StreamFramer(options);
    const error = errorOf(framer.push(typeof input === 'string' ? Buffer.from(input, 'latin1') : input));
    expect(error).toBeDefined();
    expect(framer.phase).toBe('failed');
    expect(framer.bufferedBytes).toBe(0);
    // dead: later bytes, even a valid message, produce nothing
    expect(framer.push(messageRequest('valid'))).toEqual([]);
    return error!;
  }

  it('a message without Content-Length cannot be framed (§18.3, §20.14)', () => {
    const error = failWith('OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n');
    expect(error.code).toBe('missing-header');
    expect(error.reason).toMatch(/missing Content-Length/);
  });

  it('rejects a negative, non-numeric or conflicting Content-Length (RFC 4475 ncl, mcl01)', () => {
    expect(failWith('INVITE sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n').code).toBe('bad-content-length');
    expect(failWith('INVITE sip:a@b SIP/2.0\r\nl: ten\r\n\r\n').code).toBe('bad-content-length');
    expect(failWith('INVITE sip:a@b SIP/2.0\r\nl: 1 2\r\n\r\n').code).toBe('bad-content-length');
    expect(failWith('INVITE sip:a@b SIP/2.0\r\nl:\r\n\r\n').code).toBe('bad-content-length');
    const mcl = failWith('OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 13\r\nMax-Forwards: 60\r\nContent-Length: 5\r\n\r\n');
    expect(mcl.code).toBe('bad-content-length');
    expect(mcl.reason).toMatch(/conflicting/);
  });

  it('closes on garbage at once: HTTP, a TLS ClientHello, binary noise', () => {
    expect(failWith('GET / HTTP/1.1\r\nHost: x\r\n\r\n').code).toBe('bad-start-line');
    expect(failWith(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])).code).toBe('bad-start-line');
    expect(failWith(Buffer.from([0x00, 0xff, 0xfe])).code).toBe('bad-start-line');
  });

  it('enforces maxHeadBytes even before the head ends, so it never buffers unboundedly', () => {
    const framer = new StreamFramer({ maxHeadBytes: 200 });
    expect(framer.push(Buffer.from('MESSAGE sip:a@b SIP/2.0\r\nX: '))).toEqual([]);
    const events = framer.push(Buffer.from('y'.repeat(300)));
    expect(errorOf(events)?.code).toBe('too-large');
    expect(framer.bufferedBytes).toBe(0);
  });

  it('enforces maxMessageBytes as soon as Content-Length is known', () => {
    const framer = new StreamFramer({ maxMessageBytes: 1000 });
    const events = framer.push(Buffer.from('MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5000\r\n\r\n'));
    expect(errorOf(events)?.code).toBe('too-large');
    expect(errorOf(new StreamFramer().push(Buffer.from('MESSAGE sip:a@b SIP/2.0\r\nl: 99999999999999999999\r\n\r\n')))?.code).toBe(
      'too-large',
    );
  });

  it('delivers the messages that came before the garbage', () => {
    const msg = messageRequest('ok');
    const events = new StreamFramer().push(Buffer.concat([msg, Buffer.from('HTTP/1.1 200 OK\r\n\r\n')]));
    expect(events.map((e) => e.type)).toEqual(['message', 'error']);
  });
});

// ---------------------------------------------------------------- properties

const token = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,11}$/);
const headerName = token.filter((name) => !/^(content-length|l)$/i.test(name));
const headerValue = fc.stringMatching(/^[ -~]{0,30}$/).map((v) => v.trim());

/** A plausible SIP message with the Content-Length spelled and placed in varied ways. */
const sipMessage = fc
  .record({
    startLine: fc.oneof(
      token.map((method) => `${method.toUpperCase()} sip:bob@example.test SIP/2.0`),
      fc.integer({ min: 100, max: 699 }).map((code) => `SIP/2.0 ${code} Reason Phrase`),
    ),
    headers: fc.array(
      fc.record({ name: headerName, value: headerValue, folded: fc.boolean(), colonSpace: fc.constantFrom(':', ' : ', '\t:  ') }),
      { maxLength: 8 },
    ),
    lengthName: fc.constantFrom('Content-Length', 'content-length', 'CONTENT-LENGTH', 'l', 'L'),
    lengthPosition: fc.nat(),
    lengthFolded: fc.boolean(),
    lineEnd: fc.constantFrom('\r\n', '\n'),
    body: fc.uint8Array({ maxLength: 300 }),
  })
  .map(({ startLine, headers, lengthName, lengthPosition, lengthFolded, lineEnd, body }) => {
    const lines = headers.map(({ name, value, folded, colonSpace }) =>
      folded ? `${name}${colonSpace}${value}${lineEnd} Content-Length: 77` : `${name}${colonSpace}${value}`,
    );
    const lengthLine = lengthFolded ? `${lengthName}:${lineEnd}\t${body.length}` : `${lengthName}: ${body.length}`;
    lines.splice(lengthPosition % (lines.length + 1), 0, lengthLine);
    const head = [startLine, ...lines].join(lineEnd) + lineEnd + lineEnd;
    return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body)]);
  });

/** Splits `data` at the given (unsorted, possibly repeated) cut points. */
function splitAt(data: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of [...points, data.length]) {
    chunks.push(data.subarray(from, point));
    from = point;
  }
  return chunks;
}

describe('StreamFramer properties (fast-check)', () => {
  it('any split of a concatenation of valid messages yields exactly those messages', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('', '', '\r\n', '\r\n\r\n'), sipMessage), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (items, cuts) => {
          const stream = Buffer.concat(items.flatMap(([gap, msg]) => [Buffer.from(gap), msg]));
          const events = pushAll(new StreamFramer(), splitAt(stream, cuts));
          expect(errorOf(events)).toBeUndefined();
          const framed = messagesOf(events);
          expect(framed.map((m) => m.toString('hex'))).toEqual(items.map(([, msg]) => msg.toString('hex')));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('random bytes never throw, nothing follows an error, and buffering stays within the limit', () => {
    const options = { maxHeadBytes: 512, maxMessageBytes: 2048 };
    const noisyChunk = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      sipMessage.map((m) => new Uint8Array(m)),
      fc.constantFrom(...['\r\n', '\r\n\r\n', 'INVITE sip:x SIP/2.0\r\n', 'l: 5\r\n', '\r\n', 'Content-Length: 3000\r\n'].map((s) => new Uint8Array(Buffer.from(s)))),
    );
    fc.assert(
      fc.property(fc.array(noisyChunk, { maxLength: 30 }), (chunks) => {
        const framer = new StreamFramer(options);
        let failed = false;
        for (const chunk of chunks) {
          const events = framer.push(chunk);
          if (failed) expect(events).toEqual([]);
          const errorAt = events.findIndex((e) => e.type === 'error');
          if (errorAt !== -1) {
            expect(errorAt).toBe(events.length - 1);
            failed = true;
          }
          for (const data of messagesOf(events)) expect(data.length).toBeLessThanOrEqual(options.maxMessageBytes);
          expect(framer.bufferedBytes).toBeLessThanOrEqual(options.maxMessageBytes);
        }
      }),
      { numRuns: 500 },
    );
  });
});
