/**
 * What a pager UAS does with an incoming request before any application sees it
 * (RFC 3261 §8.2 in its order: method, headers, extensions, content; RFC 3428 §7; RFC 4320).
 *
 * `judgeRequest` is a pure function from a parsed request to a verdict, so every rule here is
 * tested without sockets. State-dependent rules (retransmissions, merged requests: §8.2.2.2)
 * live in the user agent, which owns that state.
 */
import { mediaTypeOf } from '../header-values.js';
import { ParseError } from '../message/parse-error.js';
import { checkCSeqMethod, requestUriScheme, SIP_VERSION, validateEssentialHeaders, type SipRequest, type SipResponse } from '../message/sip-message.js';

export interface RequestPolicy {
  /** Methods we process; everything else gets 405 or 501. */
  readonly allowedMethods: readonly string[];
  /** Body media types we can take in a MESSAGE (`type/subtype`, lower case). */
  readonly acceptedTypes: readonly string[];
  /** Bodies over this size get 413 (RFC 3261 §21.4.11). */
  readonly maxBodyBytes: number;
  /** Option tags we support (Require checks, §8.2.2.3). */
  readonly supportedExtensions: readonly string[];
}

export const DEFAULT_REQUEST_POLICY: RequestPolicy = {
  allowedMethods: ['MESSAGE', 'OPTIONS'],
  acceptedTypes: ['text/plain', 'message/cpim'],
  maxBodyBytes: 32 * 1024,
  supportedExtensions: [],
};

/** Methods RFC 3261 and its extensions define: 405 (we know it, we do not do it) vs 501. */
const KNOWN_METHODS = new Set([
  'INVITE', 'ACK', 'BYE', 'CANCEL', 'REGISTER', 'OPTIONS', 'MESSAGE', 'SUBSCRIBE', 'NOTIFY',
  'PUBLISH', 'INFO', 'PRACK', 'UPDATE', 'REFER',
]);

/** URI schemes that can address us (§8.2.2.1; `im:`/`pres:` per RFC 3428 §5). */
const OUR_SCHEMES = new Set(['sip', 'sips', 'im', 'pres']);

export type Verdict =
  | { readonly action: 'accept' }
  /** ACK to a non-2xx we never sent, or anything else that must get no response. */
  | { readonly action: 'ignore'; readonly why: string }
  | {
      readonly action: 'respond';
      readonly status: number;
      readonly reason?: string;
      readonly headers: ReadonlyArray<readonly [string, string]>;
    };

const respond = (
  status: number,
  reason?: string,
  headers: ReadonlyArray<readonly [string, string]> = [],
): Verdict => (reason === undefined ? { action: 'respond', status, headers } : { action: 'respond', status, reason, headers });

export function judgeRequest(request: SipRequest, policy: RequestPolicy = DEFAULT_REQUEST_POLICY): Verdict {
  // Without sound Via/From/To/Call-ID/CSeq no response can even be addressed correctly.
  try {
    validateEssentialHeaders(request);
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    if (request.method === 'ACK') return { action: 'ignore', why: `malformed ACK: ${error.message}` };
    return respond(400, `Bad Request (${error.message})`);
  }

  // §8.2.1 comes first, but a version we cannot speak makes every later judgement moot.
  if (request.version !== SIP_VERSION && request.version.toUpperCase() !== SIP_VERSION) return respond(505, 'Version Not Supported');

  if (request.method === 'ACK') return { action: 'ignore', why: 'ACK without an INVITE transaction' };
  if (request.method === 'CANCEL') return respond(481); // §9.2: nothing of ours can be cancelled

  if (!policy.allowedMethods.includes(request.method)) {
    const allow = policy.allowedMethods.join(', ');
    if (KNOWN_METHODS.has(request.method)) return respond(405, undefined, [['Allow', allow]]);
    return respond(501, undefined, [['Allow', allow]]);
  }

  try {
    checkCSeqMethod(request);
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    return respond(400, `Bad Request (${error.message})`);
  }

  // §12.2.2: a To tag means a dialog, and a pager keeps none (RFC 3428 §2).
  if (request.to.params.has('tag')) return respond(481);

  // §8.2.2.1: a scheme we do not understand in the Request-URI.
  if (!OUR_SCHEMES.has(requestUriScheme(request).toLowerCase())) {
    return respond(416, undefined, [['Accept', policy.acceptedTypes.join(', ')]]);
  }

  // §8.2.2.3: every option tag in Require must be one we support. (Most requests have none:
  // looked for first, so that they cost no list.)
  if (request.headers.getByKey('require') !== undefined) {
    const unsupported = request.headers
      .getList('require')
      .filter((tag) => !policy.supportedExtensions.includes(tag.toLowerCase()));
    if (unsupported.length > 0) return respond(420, undefined, [['Unsupported', unsupported.join(', ')]]);
  }

  return judgeContent(request, policy);
}

/** §8.2.3 and RFC 8591 §7.3: content we cannot take gets 415 listing what we can. */
/** The one accept verdict: every request that passes shares it. */
const ACCEPT: Verdict = { action: 'accept' };

function judgeContent(request: SipRequest, policy: RequestPolicy): Verdict {
  // Built only for a 415: every request that passes would otherwise pay for them.
  const acceptHeaders = (): Array<readonly [string, string]> => [
    ['Accept', policy.acceptedTypes.join(', ')],
    ['Accept-Encoding', 'identity'],
    ['Accept-Language', 'en'],
  ];
  if (request.body.length === 0) return ACCEPT;

  if (request.headers.getByKey('content-encoding') !== undefined) {
    const encodings = request.headers.getList('content-encoding').filter((e) => e.toLowerCase() !== 'identity');
    if (encodings.length > 0) return respond(415, `Unsupported Content-Encoding ${encodings.join(', ')}`, acceptHeaders());
  }

  if (request.body.length > policy.maxBodyBytes) {
    return respond(413, `Request Entity Too Large (limit ${policy.maxBodyBytes} bytes)`);
  }
  if (request.method !== 'MESSAGE') return ACCEPT;

  const value = request.headers.getByKey('content-type');
  if (value !== undefined && value === lastAcceptedType.value && policy.acceptedTypes === lastAcceptedType.acceptedTypes) return ACCEPT;
  const contentType = request.contentType;
  if (value === undefined || contentType === undefined) return respond(400, 'Bad Request (body without Content-Type)');
  const mediaType = mediaTypeOf(contentType);
  if (!policy.acceptedTypes.includes(mediaType)) return respond(415, undefined, acceptHeaders());
  if (contentType.type === 'text') {
    const charset = contentType.params.get('charset')?.toLowerCase();
    if (charset !== undefined && charset !== null && !TEXT_CHARSETS.has(charset)) {
      return respond(415, `Unsupported charset ${charset}`, acceptHeaders());
    }
  }
  lastAcceptedType = { value, acceptedTypes: policy.acceptedTypes };
  return ACCEPT;
}

/**
 * The last Content-Type value that `judgeContent` accepted, with the accepted types it was
 * judged against: under load consecutive MESSAGEs carry the same one, and whether it passes is
 * a function of those two alone (a policy is not changed once in use: its fields are readonly),
 * so it is not parsed and judged again.
 */
let lastAcceptedType: { readonly value: string | undefined; readonly acceptedTypes: readonly string[] } = { value: undefined, acceptedTypes: [] };

/** Charsets we can decode into text exactly (Node's decoders). */
export const TEXT_CHARSETS: ReadonlySet<string> = new Set(['utf-8', 'utf8', 'us-ascii', 'ascii', 'iso-8859-1', 'latin1']);

/**
 * What a UAC does with a response before matching it (§8.1.3.3, §18.1.2): one with more than
 * one Via was meant for a proxy, and one with a malformed essential header cannot be matched
 * safely. Both are dropped silently.
 */
export function judgeResponse(response: SipResponse): { readonly action: 'accept' } | { readonly action: 'ignore'; readonly why: string } {
  try {
    validateEssentialHeaders(response);
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    return { action: 'ignore', why: `malformed ${response.status} response: ${error.message}` };
  }
  if (response.vias.length !== 1) return { action: 'ignore', why: `a ${response.status} response with ${response.vias.length} Via headers` };
  return { action: 'accept' };
}
