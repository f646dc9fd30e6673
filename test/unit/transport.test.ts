import { afterEach, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import net from 'node:net';
import { canonicalIp } from '../../main/sip/transport/address.js';
import { chooseTransport } from '../../main/sip/transport/choose-transport.js';
import { parseListenSpec, withTcpCompanions } from '../../main/sip/transport/listen-spec.js';
import { TransportError } from '../../main/sip/transport/transport-error.js';
import { TransportLayer } from '../../main/sip/transport/transport-layer.js';
import type { TransportLayerOptions } from '../../main/sip/transport/transport-layer.js';
import { expectTransportError, nextEvent, portOf, type EventArg } from '../support/transport-events.js';
import { within } from '../support/within.js';

// ---------------------------------------------------------------- helpers

/** Is there an IPv6 loopback to test on? Decided by trying to bind one. */
async function canBindIpv6Loopback(): Promise<boolean> {
  const socket = dgram.createSocket('udp6');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '::1', () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    await new Promise<void>((resolve) => {
      try {
        socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}
const hasIpv6 = await canBindIpv6Loopback();

const layers: TransportLayer[] = [];
const rawSockets: net.Socket[] = [];

afterEach(async () => {
  for (const socket of rawSockets.splice(0)) socket.destroy();
  await Promise.all(layers.splice(0).map((layer) => layer.close()));
});

async function listen(spec: string, options: TransportLayerOptions = {}): Promise<TransportLayer> {
  const layer = await TransportLayer.listen(parseListenSpec(spec), options);
  layers.push(layer);
  return layer;
}


/** Collects every 'message' event of a layer. */
function collectMessages(layer: TransportLayer): EventArg<'message'>[] {
  const seen: EventArg<'message'>[] = [];
  layer.on('message', (m) => seen.push(m));
  return seen;
}

/** Waits until `collected` holds `count` items. */
async function untilCount<T>(layer: TransportLayer, collected: T[], count: number): Promise<void> {
  if (collected.length >= count) return;
  await nextEvent(layer, 'message', () => collected.length + 1 >= count);
}

interface RawClient {
  socket: net.Socket;
  received: () => Buffer;
  closed: Promise<void>;
  write: (data: string | Buffer) => Promise<void>;
  /** Resolves once the received bytes include `text`. */
  waitForData: (text: string, ms?: number) => Promise<void>;
}

/** A plain TCP client that is not our transport: a peer we fully control. */
async function rawClient(host: string, port: number): Promise<RawClient> {
  const socket = net.connect({ host, port });
  rawSockets.push(socket);
  const chunks: Buffer[] = [];
  const dataWaiters = new Set<() => void>();
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    for (const waiter of [...dataWaiters]) waiter();
  });
  socket.on('error', () => {}); // a reset from the server is an expected outcome here
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const received = (): Buffer => Buffer.concat(chunks);
  return {
    socket,
    received,
    closed,
    write: (data) => new Promise<void>((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve()))),
    waitForData: (text, ms = 5000) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (!received().includes(text)) return;
          clearTimeout(timer);
          dataWaiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          dataWaiters.delete(check);
          reject(new Error(`did not receive ${JSON.stringify(text)} within ${ms} ms`));
        }, ms);
        dataWaiters.add(check);
        check();
      }),
  };
}

function sipMessage(tag: string, body = `hello ${tag}`): Buffer {
  const bodyBytes = Buffer.from(body, 'utf8');
  const head = [
    'MESSAGE sip:bob@example.test SIP/2.0',
    'Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-' + tag,
    'From: <sip:alice@example.test>;tag=a1',
    'To: <sip:bob@example.test>',
    `Call-ID: ${tag}@example.test`,
    'CSeq: 1 MESSAGE',
    'Content-Type: text/plain',
    `Content-Length: ${bodyBytes.length}`,
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head, 'latin1'), bodyBytes]);
}

/** A TCP port with nobody listening: bind an ephemeral one, then release it. */
async function closedPort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// ---------------------------------------------------------------- pure helpers

describe('listen specs and helpers', () => {
  it('parses one spec, IPv6 in brackets, and comma lists', () => {
    expect(parseListenSpec('udp:127.0.0.1:5081')).toEqual([{ transport: 'udp', host: '127.0.0.1', port: 5081 }]);
    expect(parseListenSpec('tcp:[::1]:5081')).toEqual([{ transport: 'tcp', host: '::1', port: 5081 }]);
    expect(parseListenSpec(' UDP:0.0.0.0:0 , tcp:[0:0:0:0:0:0:0:1] ')).toEqual([
      { transport: 'udp', host: '0.0.0.0', port: 0 },
      { transport: 'tcp', host: '::1', port: 5060 },
    ]);
  });

  it('rejects what is not transport:IP[:port]', () => {
    for (const bad of ['', 'tls:127.0.0.1:5061', 'udp:localhost:5060', 'udp:::1:5060', 'tcp:[::1]:70000', 'udp:127.0.0.1:', 'udp:1.2.3:5']) {
      expect(() => parseListenSpec(bad), bad).toThrow(TransportError);
    }
  });

  it('withTcpCompanions adds TCP on every UDP port that lacks it (§18.2.1)', () => {
    const specs = parseListenSpec('udp:127.0.0.1:5081,udp:[::1]:5082,tcp:[::1]:5082');
    expect(withTcpCompanions(specs)).toEqual([...specs, { transport: 'tcp', host: '127.0.0.1', port: 5081 }]);
  });

  it('canonicalIp gives one spelling per address', () => {
    expect(canonicalIp('[0:0:0:0:0:0:0:1]')).toBe('::1');
    expect(canonicalIp('2001:DB8:0:0:0:0:0:10')).toBe('2001:db8::10');
    expect(canonicalIp('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(canonicalIp('fe80::1%eth0')).toBe('fe80::1%eth0');
    expect(canonicalIp('example.test')).toBeUndefined();
    expect(canonicalIp('999.1.1.1')).toBeUndefined();
  });
});

describe('chooseTransport (RFC 3261 §18.1.1)', () => {
  it('moves a UDP request over 1300 bytes to TCP when the path MTU is unknown', () => {
    expect(chooseTransport('udp', 1300)).toBe('udp');
    expect(chooseTransport('udp', 1301)).toBe('tcp');
  });

  it('moves a UDP request within 200 bytes of a known path MTU to TCP', () => {
    expect(chooseTransport('udp', 1300, { pathMtu: 1500 })).toBe('udp');
    expect(chooseTransport('udp', 1301, { pathMtu: 1500 })).toBe('tcp');
    expect(chooseTransport('udp', 1100, { pathMtu: 1280 })).toBe('tcp');
    expect(chooseTransport('udp', 8000, { pathMtu: 9000 })).toBe('udp');
  });

  it('never changes TCP or TLS', () => {
    expect(chooseTransport('tcp', 10)).toBe('tcp');
    expect(chooseTransport('tls', 100_000)).toBe('tls');
  });
});

// ---------------------------------------------------------------- sockets, per address family

const families = [
  { name: 'IPv4', host: '127.0.0.1', available: true },
  { name: 'IPv6', host: '::1', available: hasIpv6 },
];

for (const family of families) {
  const bracketed = family.host.includes(':') ? `[${family.host}]` : family.host;

  describe.skipIf(!family.available)(`TransportLayer over ${family.name} loopback`, () => {
    it('sends and receives UDP both ways, from the listening port (RFC 3581 §3)', async () => {
      const alice = await listen(`udp:${bracketed}:0`);
      const bob = await listen(`udp:${bracketed}:0`);
      const alicePort = portOf(alice, 'udp');
      const bobPort = portOf(bob, 'udp');

      const atBob = nextEvent(bob, 'message');
      const sent = await alice.send(sipMessage('u1'), { transport: 'udp', address: family.host, port: bobPort });
      expect(sent.local).toEqual({ address: family.host, port: alicePort });
      const request = await atBob;
      expect(request.transport).toBe('udp');
      expect(request.data.equals(sipMessage('u1'))).toBe(true);
      expect(request.remote).toEqual({ address: family.host, port: alicePort });
      expect(request.local).toEqual({ address: family.host, port: bobPort });
      expect(request.connectionId).toBeUndefined();

      // The reply goes to the packet source, from the socket the request came in on.
      const atAlice = nextEvent(alice, 'message');
      await bob.send(sipMessage('u1-reply'), { transport: 'udp', ...request.remote, local: request.local });
      const reply = await atAlice;
      expect(reply.data.equals(sipMessage('u1-reply'))).toBe(true);
      expect(reply.remote).toEqual({ address: family.host, port: bobPort });
    });

    it('drops datagrams over maxDatagramBytes with a diagnostic, and CRLF-only keep-alives', async () => {
      const bob = await listen(`udp:${bracketed}:0`, { maxDatagramBytes: 500 });
      const alice = await listen(`udp:${bracketed}:0`);
      const target = { transport: 'udp' as const, address: family.host, port: portOf(bob, 'udp') };
      const received = collectMessages(bob);

      const dropped = nextEvent(bob, 'transport-error', (d) => d.kind === 'oversized-datagram');
      await alice.send(Buffer.alloc(2000, 0x41), target);
      expect((await dropped).reason).toMatch(/2000-byte/);

      const keepalive = nextEvent(bob, 'keepalive');
      await alice.send(Buffer.from('\r\n\r\n'), target);
      expect(await keepalive).toMatchObject({ kind: 'ping', transport: 'udp' });

      await alice.send(sipMessage('small'), target);
      await untilCount(bob, received, 1);
      // loopback keeps order: the large and keep-alive datagrams were dropped, not delivered late
      expect(received.map((m) => m.data.toString('latin1'))).toEqual([sipMessage('small').toString('latin1')]);
      // and we refuse to send what our own limit would drop
      await expectTransportError(bob.send(Buffer.alloc(501), { ...target, port: portOf(alice, 'udp') }), 'too-large');
    });

    it('frames several messages written at once, and one message written byte by byte', async () => {
      const bob = await listen(`tcp:${bracketed}:0`);
      const received = collectMessages(bob);
      const client = await rawClient(family.host, portOf(bob, 'tcp'));

      const batch = [sipMessage('t1'), sipMessage('t2', ''), sipMessage('t3', 'ünïcödé 👍')];
      await client.write(Buffer.concat(batch));
      await untilCount(bob, received, 3);

      const slow = sipMessage('t4', 'split across many writes');
      for (let i = 0; i < slow.length; i++) await client.write(slow.subarray(i, i + 1));
      await untilCount(bob, received, 4);

      expect(received.map((m) => m.data.toString('utf8'))).toEqual([...batch, slow].map((m) => m.toString('utf8')));
      const ids = new Set(received.map((m) => m.connectionId));
      expect(ids.size).toBe(1);
      expect(received[0]!.transport).toBe('tcp');
      expect(received[0]!.remote).toEqual({ address: family.host, port: client.socket.localPort });
    });

    it('reuses one connection for two sends, and answers on it by connectionId (§18, §18.2.2)', async () => {
      const alice = await listen(`tcp:${bracketed}:0`);
      const bob = await listen(`tcp:${bracketed}:0`);
      const bobPort = portOf(bob, 'tcp');
      const atBob = collectMessages(bob);
      const atAlice = collectMessages(alice);
      let bobConnections = 0;
      bob.on('connection-open', () => bobConnections++);

      const target = { transport: 'tcp' as const, address: family.host, port: bobPort };
      const [first, second] = await Promise.all([alice.send(sipMessage('r1'), target), alice.send(sipMessage('r2'), target)]);
      await alice.send(sipMessage('r3'), target);
      await untilCount(bob, atBob, 3);
      expect(first.connectionId).toBeDefined();
      expect(second.connectionId).toBe(first.connectionId);
      expect(alice.connections()).toHaveLength(1);
      expect(bobConnections).toBe(1);
      expect(new Set(atBob.map((m) => m.connectionId)).size).toBe(1);

      // Bob answers on the connection the request came on; the address given is the
      // (unreachable) sent-by port, which must not be used while the connection is open.
      const request = atBob[0]!;
      const replied = await bob.send(sipMessage('r1-reply'), {
        transport: 'tcp',
        address: family.host,
        port: await closedPort(family.host),
        connectionId: request.connectionId!,
      });
      expect(replied.connectionId).toBe(request.connectionId);
      await untilCount(alice, atAlice, 1);
      expect(atAlice[0]!.data.equals(sipMessage('r1-reply'))).toBe(true);
      expect(atAlice[0]!.connectionId).toBe(first.connectionId);
      expect(alice.connections()).toHaveLength(1);
      expect(bob.connections()).toHaveLength(1);

      // Sending to the peer's source address and port also finds the inbound connection.
      await bob.send(sipMessage('r2-reply'), { transport: 'tcp', ...request.remote });
      await untilCount(alice, atAlice, 2);
      expect(bob.connections()).toHaveLength(1);
    });

    it('answers a raw client on its inbound connection by connectionId', async () => {
      const bob = await listen(`tcp:${bracketed}:0`);
      const client = await rawClient(family.host, portOf(bob, 'tcp'));
      const request = nextEvent(bob, 'message');
      await client.write(sipMessage('in1'));
      const inbound = await request;
      await bob.send(Buffer.from('SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n'), {
        transport: 'tcp',
        address: family.host,
        port: 5060,
        connectionId: inbound.connectionId!,
      });
      await client.waitForData('SIP/2.0 200 OK');
    });

    it('closes an idle connection after idleTimeoutMs (§18.1.1)', async () => {
      const bob = await listen(`tcp:${bracketed}:0`, { idleTimeoutMs: 150 });
      const opened = nextEvent(bob, 'connection-open');
      const closed = nextEvent(bob, 'connection-close');
      const client = await rawClient(family.host, portOf(bob, 'tcp'));
      const info = await opened;
      const event = await closed;
      expect(event.reason).toBe('idle');
      expect(event.connection.connectionId).toBe(info.connectionId);
      await within(client.closed, 5000, 'client close');
      expect(bob.connections()).toHaveLength(0);
    });

    it('a setIdleTimeout of 0 keeps a connection open past the idle timeout', async () => {
      const bob = await listen(`tcp:${bracketed}:0`, { idleTimeoutMs: 100 });
      const alice = await listen(`tcp:${bracketed}:0`, { idleTimeoutMs: 100 });
      const pinned = await alice.connect({ address: family.host, port: portOf(bob, 'tcp') });
      expect(alice.setIdleTimeout(pinned.connectionId, 0)).toBe(true);
      // Bob, not pinned, closes its side when idle; Alice sees the peer close, not an idle close.
      const aliceClose = await nextEvent(alice, 'connection-close');
      expect(aliceClose.reason).toBe('peer-closed');
    });

    it('closes only the connection that sends garbage, no Content-Length or too much', async () => {
      const bob = await listen(`tcp:${bracketed}:0`, { maxMessageBytes: 4096 });
      const port = portOf(bob, 'tcp');
      const diagnostics: EventArg<'transport-error'>[] = [];
      bob.on('transport-error', (d) => diagnostics.push(d));
      const received = collectMessages(bob);

      const good = await rawClient(family.host, port);
      await good.write(sipMessage('before'));
      await untilCount(bob, received, 1);

      const garbage = await rawClient(family.host, port);
      const noLength = await rawClient(family.host, port);
      const oversized = await rawClient(family.host, port);
      await garbage.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00]));
      await noLength.write('OPTIONS sip:bob@example.test SIP/2.0\r\nCall-ID: x\r\n\r\n');
      await oversized.write(`MESSAGE sip:bob@example.test SIP/2.0\r\nContent-Length: 100000\r\n\r\n`);
      await within(Promise.all([garbage.closed, noLength.closed, oversized.closed]), 5000, 'bad connections closing');

      const framing = diagnostics.filter((d) => d.kind === 'framing-error').map((d) => d.reason);
      expect(framing).toHaveLength(3);
      expect(framing.join('\n')).toMatch(/bad-start-line/);
      expect(framing.join('\n')).toMatch(/missing Content-Length/);
      expect(framing.join('\n')).toMatch(/too-large/);

      // The well-behaved connection and the listener both keep working.
      await good.write(sipMessage('after'));
      const fresh = await rawClient(family.host, port);
      await fresh.write(sipMessage('fresh'));
      await untilCount(bob, received, 3);
      expect(received.map((m) => m.data.toString('latin1'))).toEqual(
        [sipMessage('before'), sipMessage('after'), sipMessage('fresh')].map((m) => m.toString('latin1')),
      );
      expect(bob.connections()).toHaveLength(2);
    });

    it('disconnects a sender whose head does not complete within headerTimeoutMs', async () => {
      const bob = await listen(`tcp:${bracketed}:0`, { headerTimeoutMs: 150 });
      const client = await rawClient(family.host, portOf(bob, 'tcp'));
      const closed = nextEvent(bob, 'connection-close');
      await client.write('MESSAGE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/TCP');
      expect((await closed).reason).toBe('header-timeout');
      await within(client.closed, 5000, 'client close');
    });

    it('answers a double-CRLF ping with a single-CRLF pong (RFC 5626 §4.4.1)', async () => {
      const bob = await listen(`tcp:${bracketed}:0`);
      const client = await rawClient(family.host, portOf(bob, 'tcp'));
      const keepalive = nextEvent(bob, 'keepalive');
      await client.write('\r\n\r\n');
      expect(await keepalive).toMatchObject({ kind: 'ping', transport: 'tcp' });
      await client.waitForData('\r\n');
      expect(client.received().toString('latin1')).toBe('\r\n');
      // the connection still carries messages afterwards
      const message = nextEvent(bob, 'message');
      await client.write(sipMessage('after-ping'));
      expect((await message).data.equals(sipMessage('after-ping'))).toBe(true);
    });

    it('reports a pong from the peer of an outbound connection', async () => {
      const server = net.createServer((socket) => {
        socket.on('error', () => {});
        socket.once('data', () => socket.write('\r\n'));
      });
      await new Promise<void>((resolve) => server.listen(0, family.host, () => resolve()));
      try {
        const alice = await listen(`tcp:${bracketed}:0`);
        const pong = nextEvent(alice, 'keepalive');
        const { port } = server.address() as net.AddressInfo;
        const sent = await alice.send(Buffer.from('\r\n\r\n'), { transport: 'tcp', address: family.host, port });
        expect(await pong).toMatchObject({ kind: 'pong', connectionId: sent.connectionId });
      } finally {
        await Promise.all(layers.splice(0).map((layer) => layer.close()));
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });

    it('rejects a connect to a closed port with TransportError connect-failed (§18.4)', async () => {
      const alice = await listen(`tcp:${bracketed}:0`);
      const port = await closedPort(family.host);
      const error = await expectTransportError(alice.send(sipMessage('nobody'), { transport: 'tcp', address: family.host, port }), 'connect-failed');
      expect(error.message).toMatch(/ECONNREFUSED/);
      expect(alice.connections()).toHaveLength(0);
    });

    it('refuses inbound connections over maxConnectionsPerSource, keeping the first', async () => {
      const bob = await listen(`tcp:${bracketed}:0`, { maxConnectionsPerSource: 1 });
      const port = portOf(bob, 'tcp');
      const opened = nextEvent(bob, 'connection-open');
      const first = await rawClient(family.host, port);
      await opened;
      const refused = nextEvent(bob, 'transport-error', (d) => d.kind === 'connection-refused');
      const second = await rawClient(family.host, port);
      expect((await refused).reason).toMatch(/1 connections from that address/);
      await within(second.closed, 5000, 'refused client close');

      const message = nextEvent(bob, 'message');
      await first.write(sipMessage('still-here'));
      expect((await message).data.equals(sipMessage('still-here'))).toBe(true);
      expect(bob.connections()).toHaveLength(1);

      // Once the first goes away, the source may connect again.
      const gone = nextEvent(bob, 'connection-close');
      first.socket.end();
      await gone;
      const reopened = nextEvent(bob, 'connection-open');
      await rawClient(family.host, port);
      await reopened;
    });

    it('refuses outbound connects beyond maxConnections', async () => {
      const bob = await listen(`tcp:${bracketed}:0`);
      const carol = await listen(`tcp:${bracketed}:0`);
      const alice = await listen(`tcp:${bracketed}:0`, { maxConnections: 1 });
      await alice.connect({ address: family.host, port: portOf(bob, 'tcp') });
      await expectTransportError(alice.connect({ address: family.host, port: portOf(carol, 'tcp') }), 'limit');
    });

    it('binds UDP and TCP specs with port 0 on one shared port (§18.2.1)', async () => {
      const layer = await listen(`udp:${bracketed}:0,tcp:${bracketed}:0`);
      const [udp, tcp] = layer.localAddresses();
      expect(udp).toMatchObject({ transport: 'udp', host: family.host, family: family.name });
      expect(tcp).toMatchObject({ transport: 'tcp', host: family.host, family: family.name });
      expect(udp!.port).toBeGreaterThan(0);
      expect(tcp!.port).toBe(udp!.port);
    });
  });
}

// ---------------------------------------------------------------- errors and lifecycle

describe('TransportLayer errors and lifecycle', () => {
  it('fails to listen on a port already in use, and leaves nothing bound', async () => {
    const first = await listen('udp:127.0.0.1:0');
    const port = portOf(first, 'udp');
    const attempt = TransportLayer.listen(parseListenSpec(`tcp:127.0.0.1:0,udp:127.0.0.1:${port}`));
    const error = await expectTransportError(attempt, 'listen-failed');
    expect(error.message).toMatch(/EADDRINUSE/);
  });

  it('rejects bad targets and families it has no socket for', async () => {
    const layer = await listen('udp:127.0.0.1:0');
    await expectTransportError(layer.send(Buffer.from('x'), { transport: 'udp', address: 'example.test', port: 5060 }), 'invalid-address');
    await expectTransportError(layer.send(Buffer.from('x'), { transport: 'tcp', address: '127.0.0.1', port: 0 }), 'invalid-address');
    await expectTransportError(layer.send(Buffer.from('x'), { transport: 'udp', address: '::1', port: 5060 }), 'no-socket');
    await expectTransportError(
      layer.send(Buffer.from('x'), { transport: 'udp', address: '127.0.0.1', port: 5060, local: { address: '127.0.0.1', port: 1 } }),
      'no-socket',
    );
  });

  it('close() closes every listener and connection, then refuses to send', async () => {
    const bob = await TransportLayer.listen(parseListenSpec('udp:127.0.0.1:0,tcp:127.0.0.1:0'));
    const client = await rawClient('127.0.0.1', portOf(bob, 'tcp'));
    const closedEvent = nextEvent(bob, 'connection-close');
    await bob.close();
    expect((await closedEvent).reason).toBe('local');
    await within(client.closed, 5000, 'client close');
    await expectTransportError(bob.send(Buffer.from('x'), { transport: 'udp', address: '127.0.0.1', port: 5060 }), 'closed');
    // the port is free again
    const again = await listen(`udp:127.0.0.1:${portOf(bob, 'udp')},tcp:127.0.0.1:${portOf(bob, 'tcp')}`);
    expect(again.localAddresses()).toHaveLength(2);
    await bob.close(); // idempotent
  });

  it('a throwing message listener becomes a diagnostic, and the connection lives on', async () => {
    const bob = await listen('tcp:127.0.0.1:0');
    let calls = 0;
    bob.on('message', () => {
      calls++;
      if (calls === 1) throw new Error('handler bug');
    });
    const client = await rawClient('127.0.0.1', portOf(bob, 'tcp'));
    const diagnostic = nextEvent(bob, 'transport-error', (d) => d.kind === 'listener-error');
    await client.write(sipMessage('boom'));
    expect((await diagnostic).reason).toMatch(/handler bug/);
    const next = nextEvent(bob, 'message');
    await client.write(sipMessage('fine'));
    await next;
    expect(calls).toBe(2);
  });

  it('accepts onMessage / onError callbacks in the options', async () => {
    const seen: string[] = [];
    const errors: string[] = [];
    const bob = await listen('udp:127.0.0.1:0', {
      maxDatagramBytes: 100,
      onMessage: (m) => seen.push(m.data.toString('latin1')),
      onError: (reason) => errors.push(reason),
    });
    const alice = await listen('udp:127.0.0.1:0');
    const target = { transport: 'udp' as const, address: '127.0.0.1', port: portOf(bob, 'udp') };
    const dropped = nextEvent(bob, 'transport-error');
    await alice.send(Buffer.alloc(200, 0x41), target);
    await dropped;
    const message = nextEvent(bob, 'message');
    await alice.send(Buffer.from('OPTIONS sip:x SIP/2.0\r\n\r\n'), target);
    await message;
    expect(seen).toEqual(['OPTIONS sip:x SIP/2.0\r\n\r\n']);
    expect(errors).toHaveLength(1);
  });

  it('rejects a write pending on a connection that closes', async () => {
    // A peer that never reads: fill its window until a write stays pending, then close.
    const peers: net.Socket[] = [];
    const server = net.createServer((socket) => {
      peers.push(socket);
      socket.on('error', () => {});
      socket.pause();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    try {
      const alice = await listen('tcp:127.0.0.1:0', { maxPendingWriteBytes: 64 * 1024 * 1024 });
      const { port } = server.address() as net.AddressInfo;
      const info = await alice.connect({ address: '127.0.0.1', port });
      const big = Buffer.alloc(32 * 1024 * 1024);
      let settled = false;
      const pending = alice.send(big, { transport: 'tcp', address: '127.0.0.1', port, connectionId: info.connectionId });
      const outcome = pending.then(
        () => (settled = true),
        (error: unknown) => ((settled = true), Promise.reject(error)),
      );
      outcome.catch(() => {}); // examined below
      // One turn of the event loop lets send() reach socket.write; 32 MiB cannot all be flushed.
      await new Promise((resolve) => setImmediate(resolve));
      expect(settled).toBe(false);
      await alice.closeConnection(info.connectionId);
      await expectTransportError(outcome, 'connection-closed');
    } finally {
      await Promise.all(layers.splice(0).map((layer) => layer.close()));
      for (const peer of peers) peer.destroy(); // paused, it would never read our FIN
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
