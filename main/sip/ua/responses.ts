/**
 * Building a response to a request (RFC 3261 §8.2.6).
 *
 * From, Call-ID, CSeq and every Via are copied in order (§8.2.6.2); To is copied and gets our
 * tag when it had none, the same tag for every response to one request. Reason phrases are
 * the RFC's (§21) unless the caller has a more useful one, e.g. 400 naming the bad header.
 */
import { HeaderList } from '../message/header-list.js';
import { SipResponse, type SipRequest } from '../message/sip-message.js';

const REASON_PHRASES: Readonly<Record<number, string>> = {
  100: 'Trying',
  200: 'OK',
  202: 'Accepted',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
  416: 'Unsupported URI Scheme',
  420: 'Bad Extension',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  488: 'Not Acceptable Here',
  493: 'Undecipherable',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  504: 'Server Time-out',
  505: 'Version Not Supported',
  513: 'Message Too Large',
  603: 'Decline',
};

export function reasonPhrase(status: number): string {
  return REASON_PHRASES[status] ?? REASON_PHRASES[Math.floor(status / 100) * 100] ?? 'Unknown';
}

export interface ResponseOptions {
  reason?: string;
  /** Our To tag; required for every response but 100 when the request's To had none. */
  toTag?: string;
  headers?: ReadonlyArray<readonly [string, string]>;
  body?: Buffer;
  contentType?: string;
}

export function createResponse(request: SipRequest, status: number, options: ResponseOptions = {}): SipResponse {
  const headers = new HeaderList();
  for (const via of request.headers.getAll('via')) headers.append('Via', via);
  const from = request.headers.get('from');
  if (from !== undefined) headers.append('From', from);
  const to = request.headers.get('to');
  if (to !== undefined) {
    const needsTag = status !== 100 && options.toTag !== undefined && !hasTag(request);
    headers.append('To', needsTag ? `${to};tag=${options.toTag}` : to);
  }
  const callId = request.headers.get('call-id');
  if (callId !== undefined) headers.append('Call-ID', callId);
  const cseq = request.headers.get('cseq');
  if (cseq !== undefined) headers.append('CSeq', cseq);
  for (const [name, value] of options.headers ?? []) headers.append(name, value);
  const body = options.body ?? Buffer.alloc(0);
  if (body.length > 0 && options.contentType !== undefined) headers.append('Content-Type', options.contentType);
  return new SipResponse(status, options.reason ?? reasonPhrase(status), headers, body);
}

/** Whether the request's To has a tag already (§8.2.6.2: then ours is not added). */
export function hasTag(request: SipRequest): boolean {
  try {
    return request.to.params.has('tag');
  } catch {
    // A To header we cannot parse is answered with 400 anyway; do not add a second tag to it.
    return true;
  }
}
