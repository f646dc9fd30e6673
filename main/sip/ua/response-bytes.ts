/**
 * The bytes of a response to a request (RFC 3261 §8.2.6), as the UAS sends them.
 *
 * A UAS under load answers nearly every request with a final response that carries nothing
 * but what §8.2.6.2 copies from the request: every Via in order (with the `received`/`rport`
 * that §18.2.1 and RFC 3581 §4 had us stamp into the top one), From, To with our tag, Call-ID
 * and CSeq, then Content-Length: 0. `simpleResponseText` writes that text straight from the
 * request's header rows, with no response object in between; the general way
 * (`createResponse` then `serializeMessage`) builds a HeaderList and a SipResponse only to
 * turn them into the same text. It writes exactly the bytes the general way writes
 * (test/unit/response-bytes.test.ts compares them over a corpus that includes the RFC 4475
 * torture messages), so the choice between the two never shows on the wire.
 *
 * `responseBytes` takes the simple path when the response is simple (no extra headers, no
 * body) and the general one otherwise.
 */
import { serializeMessage } from '../message/serialize.js';
import type { SipRequest } from '../message/sip-message.js';
import { createResponse, hasTag, reasonPhrase, type ResponseOptions } from './responses.js';

/**
 * The text of `serializeMessage(createResponse(request, status, { toTag, reason }))`, built
 * from the request's rows. Header names are written in our spelling, as `createResponse`
 * appends them, whatever form (compact or not) the request used.
 */
export function simpleResponseText(request: SipRequest, status: number, toTag: string | undefined, reason?: string): string {
  const rows = request.headers.entries();
  let vias = '';
  let from: string | undefined;
  let to: string | undefined;
  let callId: string | undefined;
  let cseq: string | undefined;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    switch (row.key) {
      case 'via':
        vias += `Via: ${row.value}\r\n`;
        break;
      case 'from':
        from ??= row.value;
        break;
      case 'to':
        to ??= row.value;
        break;
      case 'call-id':
        callId ??= row.value;
        break;
      case 'cseq':
        cseq ??= row.value;
        break;
      default:
        break;
    }
  }
  let text = `SIP/2.0 ${status} ${reason ?? reasonPhrase(status)}\r\n${vias}`;
  if (from !== undefined) text += `From: ${from}\r\n`;
  if (to !== undefined) {
    // §8.2.6.2: our tag, unless the request's To has one already (or it is a 100).
    const needsTag = status !== 100 && toTag !== undefined && !hasTag(request);
    text += needsTag ? `To: ${to};tag=${toTag}\r\n` : `To: ${to}\r\n`;
  }
  if (callId !== undefined) text += `Call-ID: ${callId}\r\n`;
  if (cseq !== undefined) text += `CSeq: ${cseq}\r\n`;
  return `${text}Content-Length: 0\r\n\r\n`;
}

/** A response `simpleResponseText` can write: no headers of its own and no body. */
export function isSimpleResponse(options: ResponseOptions): boolean {
  return (options.headers === undefined || options.headers.length === 0) && (options.body === undefined || options.body.length === 0);
}

/** `serializeMessage(createResponse(request, status, options))`, by the simple path where it can be. */
export function responseBytes(request: SipRequest, status: number, options: ResponseOptions = {}): Buffer {
  if (isSimpleResponse(options)) return Buffer.from(simpleResponseText(request, status, options.toTag, options.reason), 'utf8');
  return serializeMessage(createResponse(request, status, options));
}
