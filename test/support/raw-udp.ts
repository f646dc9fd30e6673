/** A bare UDP socket on loopback for playing a misbehaving or minimal peer in tests. */
import { createSocket, type Socket } from 'node:dgram';
import { parseMessage } from '../../main/sip/message/parse.js';
import type { SipMessage } from '../../main/sip/message/sip-message.js';

export class RawUdpPeer {
  readonly received: Buffer[] = [];
  private waiters: Array<() => void> = [];

  private constructor(
    private readonly socket: Socket,
    readonly port: number,
  ) {
    socket.on('message', (data) => {
      this.received.push(data);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async open(address = '127.0.0.1'): Promise<RawUdpPeer> {
    const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve) => socket.bind(0, address, resolve));
    return new RawUdpPeer(socket, socket.address().port);
  }

  send(data: string | Buffer, port: number, address = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(typeof data === 'string' ? Buffer.from(data) : data, port, address, (error) => (error ? reject(error) : resolve())));
  }

  /** Resolves once `count` datagrams have arrived in all; rejects after `ms`. */
  async waitFor(count: number, ms = 5000): Promise<SipMessage[]> {
    const deadline = Date.now() + ms;
    while (this.received.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`only ${this.received.length} of ${count} datagrams arrived within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.received.slice(0, count).map((data) => parseMessage(data));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
