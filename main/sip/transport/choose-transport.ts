/**
 * Which transport a request must really use, given its size (RFC 3261 §18.1.1).
 *
 * "If a request is within 200 bytes of the path MTU, or if it is larger than 1300 bytes and the
 * path MTU is unknown, the request MUST be sent using an RFC 2914 congestion controlled
 * transport protocol, such as TCP. If this causes a change in the transport protocol from the
 * one indicated in the top Via, the value in the top Via MUST be changed." The 200 bytes leave
 * room for a response that grows on its way back; 1300 is a 1500-byte Ethernet MTU minus them.
 *
 * Because the top Via must name the transport actually used, this runs before the request is
 * serialised, not inside the transport layer. Two related duties stay with the caller:
 * - §18.1.1: if the size-forced TCP attempt fails with a connection refused/reset, it SHOULD
 *   retry over UDP (for RFC 2543 peers without TCP);
 * - RFC 3428 §8: for MESSAGE, TCP on the first hop does not lift the 1300-byte limit on the
 *   whole path; that is a messaging-layer rule, not a transport one.
 */
export type SipTransportName = 'udp' | 'tcp' | 'tls';

/** Largest request sent over UDP when the path MTU is unknown. */
export const UDP_LIMIT_UNKNOWN_MTU = 1300;
/** Headroom a request must leave below a known path MTU to go over UDP. */
export const MTU_HEADROOM = 200;

/**
 * Returns `requested`, except that a UDP request of `messageBytes` octets that is too big for
 * UDP becomes TCP: more than 1300 bytes with unknown MTU, or closer than 200 bytes to `pathMtu`.
 * (With a 1500-byte MTU both readings put the line at 1300 bytes, so the two agree.)
 */
export function chooseTransport(
  requested: SipTransportName,
  messageBytes: number,
  opts: { pathMtu?: number } = {},
): SipTransportName {
  if (requested !== 'udp') return requested;
  const limit = opts.pathMtu === undefined ? UDP_LIMIT_UNKNOWN_MTU : opts.pathMtu - MTU_HEADROOM;
  return messageBytes > limit ? 'tcp' : 'udp';
}
