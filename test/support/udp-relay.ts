/**
 * A UDP relay on 127.0.0.1 in front of a target port: what anyone else sends goes to the
 * target; what the target sends goes back to whoever last sent from elsewhere, after `answer`
 * has had its say (the same bytes, other bytes, or `undefined` to lose the datagram). Plays a
 * server on the path (a store-and-forward one answering 202, a lossy one) without a real one.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import type { Cleanups } from './cleanups.js';

/** What the relay does with one datagram from the target (`text` is it in latin1). */
export type RelayAnswer = (data: Buffer, text: string) => Buffer | undefined;

/** Opens the relay (closed with `cleanups`) and returns its port. */
export async function udpRelay(cleanups: Cleanups, target: number, answer: RelayAnswer = (data) => data): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  let client: RemoteInfo | undefined;
  socket.on('message', (data, from) => {
    if (from.port !== target) {
      client = from;
      socket.send(data, target, '127.0.0.1');
      return;
    }
    const forwarded = answer(data, data.toString('latin1'));
    if (forwarded !== undefined && client !== undefined) socket.send(forwarded, client.port, client.address);
  });
  return socket.address().port;
}

/**
 * The answer of a store-and-forward server: the target's 200s to MESSAGEs become 202 Accepted
 * (RFC 3428 §4, §7: taken by a relay, not yet delivered); everything else passes.
 */
export const acceptedFor200: RelayAnswer = (data, text) =>
  text.startsWith('SIP/2.0 200 ') && /^CSeq:\s*\d+\s+MESSAGE\s*$/im.test(text) ? Buffer.from(text.replace(/^SIP\/2\.0 200 [^\r]*/, 'SIP/2.0 202 Accepted'), 'latin1') : data;
