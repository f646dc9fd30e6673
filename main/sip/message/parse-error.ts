/**
 * The one error type that parsing SIP bytes may throw (RFC 3261 §7, §25).
 *
 * Every malformed input, whatever layer notices it, ends in a ParseError so that callers
 * can answer 400 (or drop a response) without guessing what else might have gone wrong.
 * `code` is stable and machine-readable; `message` is for people.
 */
import type { SipMessage } from './sip-message.js';

export type ParseErrorCode =
  | 'empty'
  | 'too-large'
  | 'too-many-headers'
  | 'line-too-long'
  | 'truncated'
  | 'bad-start-line'
  | 'bad-version'
  | 'bad-method'
  | 'bad-status'
  | 'bad-uri'
  | 'bad-header'
  | 'bad-header-value'
  | 'bad-content-length'
  | 'missing-header'
  | 'body-length-mismatch'
  /** A body whose Content-Type promised a structure it does not have (XML, CPIM, CMS…). */
  | 'bad-body';

export class ParseError extends Error {
  override readonly name = 'ParseError';
  /**
   * The message as far as it could be read, when the start line and headers were fine but a
   * later check failed (a body shorter than Content-Length, say). A UAS uses it to answer 400.
   */
  partial?: SipMessage;

  constructor(
    readonly code: ParseErrorCode,
    message: string,
    /** The header whose value was wrong, when one was. */
    readonly header?: string,
  ) {
    super(message);
  }
}
