/**
 * A listening user agent under hostile input on loopback: random and mutated datagrams,
 * oversized datagrams, garbage and truncated TCP streams, a stalled TCP head. Bounded in count;
 * afterwards the same listener must still answer a valid MESSAGE over UDP and over TCP.
 */
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UserAgent, type IncomingMessage } from '../../main/sip/ua/user-agent.js';
import { cleanupsAfterEach } from '../support/cleanups.js';
import { RawUdpPeer } from '../support/raw-udp.js';

const cleanups = cleanupsAfterEach();

const VALID = [
  'MESSAGE sip:bob@127.0.0.1 SIP/2.0',
  'Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKfuzz;rport',
  'Max-Forwards: 70',
  'From: <sip:fuzz@127.0.0.1>;tag=f',
  'To: <sip:bob@127.0.0.1>',
  'Call-ID: fuzz-call',
  'CSeq: 1 MESSAGE',
  'Content-Type: text/plain',
  'Content-Length: 5',
  '',
  'hello',
].join('\r\n');

function tcpConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
    cleanups.push(() => void socket.destroy());
  });
}

function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}

describe('a listener under hostile input', () => {
  it('keeps serving valid requests after garbage over UDP and TCP', async () => {
    const received: IncomingMessage[] = [];
    const bob = await UserAgent.start({
      aor: 'sip:bob@127.0.0.1',
      listen: [
        { transport: 'udp', host: '127.0.0.1', port: 0 },
        { transport: 'tcp', host: '127.0.0.1', port: 0 },
      ],
      onMessage: (m) => void received.push(m),
    });
    cleanups.push(() => bob.close());
    const port = bob.listening[0]?.port ?? 0;
    const peer = await RawUdpPeer.open();
    cleanups.push(() => peer.close());

    // 1. Random datagrams and mutated valid ones (bounded: 400 in all).
    const samples = fc.sample(
      fc.oneof(
        fc.uint8Array({ maxLength: 1500 }).map((b) => Buffer.from(b)),
        fc.tuple(fc.nat(VALID.length), fc.uint8Array({ maxLength: 20 })).map(([at, junk]) => Buffer.concat([Buffer.from(VALID.slice(0, at)), Buffer.from(junk), Buffer.from(VALID.slice(at))])),
      ),
      { numRuns: 400, seed: 3261 },
    );
    for (const datagram of samples) if (datagram.length > 0) await peer.send(datagram, port);
    // 2. An oversized datagram (the largest loopback UDP payload).
    await peer.send(Buffer.alloc(65_507, 0x41), port);

    // 3. TCP: garbage, a truncated message, a head that never ends; each on its own connection.
    const garbage = await tcpConnect(port);
    garbage.write(Buffer.from('\x16\x03\x01\x02\x00 this is not SIP at all\r\n\r\n'));
    await closed(garbage);
    const truncated = await tcpConnect(port);
    truncated.end(VALID.slice(0, 120));
    await closed(truncated);
    const hugeBody = await tcpConnect(port);
    hugeBody.write(VALID.replace('Content-Length: 5', 'Content-Length: 999999999'));
    await closed(hugeBody);

    // The same listener still answers a valid MESSAGE on both transports.
    const alice = await UserAgent.start({ aor: 'sip:alice@127.0.0.1', listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }, { transport: 'tcp', host: '127.0.0.1', port: 0 }] });
    cleanups.push(() => alice.close());
    for (const transport of ['udp', 'tcp'] as const) {
      const result = await alice.sendMessage({ to: `sip:bob@127.0.0.1:${port}`, transport, contentType: 'text/plain', body: Buffer.from(`still here over ${transport}`) });
      expect(result.status).toBe(200);
    }
    expect(received.map((m) => m.body.toString()).filter((b) => b.startsWith('still here'))).toEqual(['still here over udp', 'still here over tcp']);
  });
});
