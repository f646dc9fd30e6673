/**
 * What became of a MESSAGE we sent, in the terms a user cares about (RFC 3428 §4, §7;
 * RFC 3261 §8.1.3).
 *
 * 200 means the recipient's UA took it (not that anyone read it); 202 means a relay or
 * store-and-forward server took it and delivery is still to come, so it must not be shown as
 * delivered; 4xx/5xx mean not delivered; 6xx means delivered but refused. A timeout is treated
 * as 408 and a transport failure as 503 (§8.1.3.1), but they are reported as such, since the
 * user's remedy (check the network) differs from a refusal.
 */
export type SendOutcome = 'delivered' | 'accepted' | 'refused' | 'failed' | 'timeout' | 'transport-error';

export interface SendResult {
  readonly outcome: SendOutcome;
  readonly status: number;
  readonly reason: string;
  /** Seconds, from a Retry-After in the final response (404/413/480/486/500/503/600/603). */
  readonly retryAfter?: number;
  /** The Call-ID of the request, to find it in traces and history. */
  readonly callId: string;
  /** Which transport carried it in the end (§18.1.1 may have switched UDP to TCP). */
  readonly transport: 'udp' | 'tcp' | 'tls';
  /** Why a 401/407 was not answered again (wrong credentials, none known, no usable challenge). */
  readonly authFailure?: string;
}

/** Maps a final status (any, including unknown codes: §8.1.3.2) to an outcome. */
export function outcomeOfStatus(status: number): SendOutcome {
  if (status === 202) return 'accepted';
  if (status >= 200 && status < 300) return 'delivered';
  if (status >= 600) return 'refused';
  return 'failed';
}
