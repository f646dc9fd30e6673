/**
 * The SIP identity of each attempt to send a stored message, and why a retry is a new request.
 *
 * A retry of a MESSAGE (after a timeout, a 5xx, a crash) is a new request, not a
 * retransmission: RFC 3261 §8.1.1.5 asks for a higher CSeq for each new request within the
 * same Call-ID. Sending it with the first attempt's Call-ID, From tag and CSeq but a new branch
 * makes it, to a receiver that still holds the first server transaction (Timer J, 32 s over
 * UDP), a merged request (§8.2.2.2), answered 482 Loop Detected: the sender would show
 * "failed" although the peer has the message.
 *
 * So every attempt keeps the Call-ID and From tag chosen for the first one and uses CSeq
 * `1 + CSEQ_STEP·(attempt − 1)`: deterministic from the attempt number the store keeps, so a
 * crash between two attempts needs nothing else recorded. The UA numbers the retries inside one
 * attempt (a 401/407 answered, a failover to the next server) from there, +1 each
 * (UserAgent.request), which is why attempts are CSEQ_STEP apart: a few of those never reach the
 * next attempt's CSeq.
 *
 * Duplicates are then recognised by the message's own identity, not the SIP one: every
 * protected message carries an imdn.Message-ID under its signature (RFC 5438 §6.3), chosen once
 * when the message is queued and the same on every attempt; the receiver's store answers a
 * second message with the same Message-ID from the same peer 200 and shows it once
 * (store/messages.ts `recordIncoming`).
 *
 * Plaintext text/plain has no Message-ID: its SIP identity is the only one a receiver can know
 * it by. With a new CSeq, a retry after a lost 200 (the peer has it, we never heard) would show
 * up twice at the peer. So a plaintext message keeps CSeq 1 on every attempt (the receiver's
 * store finds the retry under the first attempt's Call-ID, CSeq and From tag and shows it once),
 * and pays with the 482 this module exists to avoid: a receiver that still holds the first
 * transaction answers the retry 482. `isMergedRetry` tells the outbox that such a 482 is
 * transient: the receiver does have our request, and once its transaction is gone (Timer J,
 * 32 s over UDP; at once over TCP) the same retry is answered 200 as a duplicate. (Plaintext
 * is only sent when asked for, or to a `legacy-plaintext` contact; S/MIME is the default.)
 */

/** How far apart the first CSeqs of two attempts are: room for the UA's retries within one. */
export const CSEQ_STEP = 10;

/** The CSeq of attempt number `attempt` (1 for the first) of a stored message. */
export function attemptCSeq(attempt: number): number {
  if (!Number.isInteger(attempt) || attempt < 1) throw new RangeError(`not an attempt number: ${attempt}`);
  // RFC 3261 §8.1.1.5: the sequence number must be below 2**31.
  return Math.min(1 + CSEQ_STEP * (attempt - 1), 2 ** 31 - 1 - CSEQ_STEP);
}

/** Call-ID and From tag (RFC 3261 §8.1.1.3-4), kept for every attempt of one message. */
export interface DialogFreeIdentity {
  readonly callId: string;
  readonly fromTag: string;
}

/** The identity of one attempt: the Call-ID and From tag, and this attempt's CSeq. */
export interface AttemptIdentity extends DialogFreeIdentity {
  readonly cseq: number;
}

/** Whether a message of this security label carries an imdn.Message-ID on the wire (S/MIME does, text/plain does not). */
export function identifiedByMessageId(security: string): boolean {
  return security !== 'plaintext';
}

/**
 * The identity of the next attempt of a stored message: its Call-ID and From tag when an
 * earlier attempt chose them (`fresh` makes new ones otherwise), and the CSeq of attempt
 * `attempts + 1`; CSeq 1 on every attempt of a plaintext message (see the file comment).
 */
export function nextAttemptIdentity(
  stored: { readonly callId: string | null; readonly fromTag: string | null; readonly attempts: number; readonly security: string },
  fresh: () => DialogFreeIdentity,
): AttemptIdentity {
  const kept = stored.callId !== null && stored.fromTag !== null ? { callId: stored.callId, fromTag: stored.fromTag } : fresh();
  return { ...kept, cseq: attemptCSeq(identifiedByMessageId(stored.security) ? stored.attempts + 1 : 1) };
}

/**
 * A 482 Loop Detected to a retry (attempt 2 or later): for a plaintext message, the receiver
 * still holds our earlier attempt (§8.2.2.2), so it has the request; retry it like a 503.
 * (An S/MIME retry has its own CSeq and never gets this; a 482 to it is a real loop, which
 * the attempt limit ends.)
 */
export function isMergedRetry(status: number, attempts: number): boolean {
  return status === 482 && attempts > 1;
}
