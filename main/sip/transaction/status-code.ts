/**
 * The only thing the transaction machines read from a response: its status code, and from
 * that its class (RFC 3261 §7.2, §21: 1xx provisional, 200–699 final).
 */

/** Throws a RangeError unless `status` is an integer from 100 to 699 (RFC 3261 §7.2). */
export function assertStatusCode(status: number): void {
  if (!Number.isInteger(status) || status < 100 || status > 699) {
    throw new RangeError(`SIP status code must be an integer from 100 to 699, got ${status}`);
  }
}

/** 1xx: the request is being processed; more responses follow (RFC 3261 §7.2). */
export function isProvisional(status: number): boolean {
  return status < 200;
}
