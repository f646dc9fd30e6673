/**
 * The TCP/TLS listener's defences against peers that hold connections, quickly and precisely
 * (test/interop/hostile-listener.test.ts runs the same attacks, slowly, against a real listener):
 *
 * - the message deadline (headerTimeoutMs) runs from the first byte of a message to its last,
 *   body included (main/sip/transport/stream-connection.ts), over TCP and TLS;
 * - at maxConnections the inbound connection quiet longest, if quiet at least 1 s, makes room
 *   for a new one (main/sip/transport/transport-layer.ts, evictQuietestInbound); quiet means no
 *   message bytes: keep-alive pings do not count (StreamConnection.quietFor);
 * - `sipnote listen --tcp-idle-timeout / --tcp-message-timeout` (main/cli/main.ts).
 *
 * Time: the message deadline is a real timer in StreamConnection (no Clock is injected there),
 * so those tests use deadlines of a few hundred ms and wait on socket events, each bounded. A
 * trickling sender writes a byte every TRICKLE_MS: that paces the attack, nobody waits on it.
 * How long a connection has been quiet is measured with performance.now(), so the eviction
 * tests make time pass by shifting what performance.now() returns (`passTime`) instead of
 * waiting a second.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ListeningEvent } from '../../shared/cli-events.js';
import { listenCommand, type ListenArgs } from '../../main/cli/listen-command.js';
import { main } from '../../main/cli/main.js';
import { parseListenSpec } from '../../main/sip/transport/listen-spec.js';
import { StreamConnection } from '../../main/sip/transport/stream-connection.js';
import { TransportLayer, type TransportLayerOptions } from '../../main/sip/transport/transport-layer.js';
import { nextEvent, portOf, type EventArg } from '../support/transport-events.js';
import { within } from '../support/within.js';

// The real listenCommand, watched: the flag tests read the ListenArgs it was given (and most of
// them stub it for one call so that nothing binds); the end-to-end test lets it run.
vi.mock(import('../../main/cli/listen-command.js'), async (importOriginal) => {
  const original = await importOriginal();
  return { ...original, listenCommand: vi.fn(original.listenCommand) };
});

// ---------------------------------------------------------------- helpers

const layers: TransportLayer[] = [];
const sockets: net.Socket[] = [];
const intervals: NodeJS.Timeout[] = [];

afterEach(async () => {
  for (const interval of intervals.splice(0)) clearInterval(interval);
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(layers.splice(0).map((layer) => layer.close()));
  vi.restoreAllMocks();
});

async function listen(spec: string, options: TransportLayerOptions = {}): Promise<TransportLayer> {
  const layer = await TransportLayer.listen(parseListenSpec(spec, { allowTls: true }), options);
  layers.push(layer);
  return layer;
}

interface Client {
  socket: net.Socket;
  /** Resolves when the socket has closed (the server dropped it). */
  closed: Promise<void>;
  write: (data: string | Buffer) => Promise<void>;
}

function track(socket: net.Socket): Client {
  sockets.push(socket);
  socket.on('error', () => {}); // a reset from the server is an expected outcome here
  socket.resume(); // read (and drop) what the server sends, pongs included, so its close is seen
  return {
    socket,
    closed: new Promise<void>((resolve) => socket.once('close', () => resolve())),
    write: (data) => new Promise<void>((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve()))),
  };
}

/** A plain TCP client on 127.0.0.1 from `from` (any 127/8 address is ours on Linux loopback). */
async function tcpClient(port: number, from = '127.0.0.1'): Promise<Client> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: from });
  const client = track(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return client;
}

/** A TLS client that takes any certificate: the server side is what is under test. */
async function tlsClient(port: number): Promise<Client> {
  const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  const client = track(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  return client;
}

/** Connects a TCP client and resolves with it and the connection the layer opened for it. */
async function connectInbound(layer: TransportLayer, from = '127.0.0.1'): Promise<{ client: Client; info: EventArg<'connection-open'> }> {
  const opened = nextEvent(layer, 'connection-open', (info) => info.direction === 'inbound' && info.remote.address === from);
  const client = await tcpClient(portOf(layer, 'tcp'), from);
  const info = await opened;
  expect(info.remote.port).toBe(client.socket.localPort);
  return { client, info };
}

function messageHead(tag: string, contentLength: number): string {
  return [
    'MESSAGE sip:bob@example.test SIP/2.0',
    `Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK-${tag}`,
    'From: <sip:alice@example.test>;tag=a1',
    'To: <sip:bob@example.test>',
    `Call-ID: ${tag}@example.test`,
    'CSeq: 1 MESSAGE',
    'Content-Type: text/plain',
    `Content-Length: ${contentLength}`,
    '',
    '',
  ].join('\r\n');
}

function sipMessage(tag: string, body = `hello ${tag}`): Buffer {
  return Buffer.from(messageHead(tag, Buffer.byteLength(body)) + body, 'utf8');
}

/** How often a trickling sender writes one byte. */
const TRICKLE_MS = 20;

/**
 * Sends `head` and then one body byte every TRICKLE_MS until the socket closes (the body is
 * longer than the trickle can finish before the test's bound). Resolves once the head is
 * written; `bytesTrickled()` counts the body bytes written so far.
 */
async function trickleBody(client: Client, head: string): Promise<{ bytesTrickled: () => number }> {
  await client.write(head);
  let count = 0;
  const interval = setInterval(() => {
    if (client.socket.destroyed || !client.socket.writable) return clearInterval(interval);
    client.socket.write('x');
    count++;
  }, TRICKLE_MS);
  intervals.push(interval);
  return { bytesTrickled: () => count };
}

/** The deadline of the test of a message completed in time: long, so a loaded machine keeps the order. */
const RESET_DEADLINE_MS = 600;

/**
 * The first message completes a third of the way into its deadline, and the same chunk starts
 * a second message that then stalls. The close must come a whole deadline after that chunk,
 * not when the first message's deadline would have run out (two thirds of one after it).
 */
async function expectFreshDeadlineAfterCompletedMessage(layer: TransportLayer, client: Client): Promise<void> {
  const first = sipMessage('first');
  const received = nextEvent(layer, 'message', () => true, 4000);
  const closed = nextEvent(layer, 'connection-close', () => true, 4000);
  await client.write(first.subarray(0, 40)); // the first message's deadline starts here
  const secondStartedAt = await new Promise<number>((resolve, reject) => {
    // Pacing the sender, not waiting for an outcome.
    setTimeout(() => {
      const at = performance.now();
      const rest = Buffer.concat([first.subarray(40), Buffer.from('OPTIONS sip:bob@example.test SIP/2.0\r\nVia: ', 'latin1')]);
      client.write(rest).then(() => resolve(at), reject);
    }, RESET_DEADLINE_MS / 3);
  });
  expect((await received).data.equals(first)).toBe(true);
  const event = await closed;
  const sinceSecondStarted = performance.now() - secondStartedAt;
  expect(event.reason).toBe('header-timeout');
  expect(event.detail).toBe(`message head not complete within ${RESET_DEADLINE_MS} ms`);
  expect(sinceSecondStarted).toBeGreaterThanOrEqual(RESET_DEADLINE_MS - 10);
}

// ---------------------------------------------------------------- the message deadline

describe('the message deadline (headerTimeoutMs) covers head and body', () => {
  const DEADLINE_MS = 250;
  /** Far beyond every bound below: a close in these tests is never the idle timer's. */
  const IDLE_MS = 20_000;

  it('closes a TCP connection whose body trickles in a byte at a time, though every byte resets the idle timer', async () => {
    const bob = await listen('tcp:127.0.0.1:0', { headerTimeoutMs: DEADLINE_MS, idleTimeoutMs: IDLE_MS });
    const diagnostic = nextEvent(bob, 'transport-error', (d) => d.kind === 'header-timeout', 4000);
    const closed = nextEvent(bob, 'connection-close', () => true, 4000);
    const client = await tcpClient(portOf(bob, 'tcp'));
    const startedAt = performance.now();
    const trickle = await trickleBody(client, messageHead('trickle', 10_000 /* never finished: 200 s at the trickle's pace */));

    const event = await closed;
    const elapsed = performance.now() - startedAt;
    expect(event.reason).toBe('header-timeout');
    expect(event.detail).toBe(`message body not complete within ${DEADLINE_MS} ms`);
    expect((await diagnostic).connectionId).toBe(event.connection.connectionId);
    // The body kept coming while the deadline ran: bytes arrived after its start, and did not move it.
    expect(trickle.bytesTrickled()).toBeGreaterThan(2);
    expect(elapsed).toBeGreaterThanOrEqual(DEADLINE_MS - 5);
    await within(client.closed, 4000, 'the client seeing the close');
    expect(bob.connections()).toHaveLength(0);
  });

  it('gives the next message a fresh deadline when one completes in time', async () => {
    const bob = await listen('tcp:127.0.0.1:0', { headerTimeoutMs: RESET_DEADLINE_MS, idleTimeoutMs: IDLE_MS });
    await expectFreshDeadlineAfterCompletedMessage(bob, await tcpClient(portOf(bob, 'tcp')));
  });

  it('stops the deadline once a message split between head and body completes', async () => {
    const deadline = 150;
    const idle = 500;
    const bob = await listen('tcp:127.0.0.1:0', { headerTimeoutMs: deadline, idleTimeoutMs: idle });
    const message = sipMessage('split', 'a body that arrives in pieces');
    const received = nextEvent(bob, 'message', () => true, 4000);
    const closed = nextEvent(bob, 'connection-close', () => true, 4000);
    const client = await tcpClient(portOf(bob, 'tcp'));
    const headEnd = message.indexOf('\r\n\r\n') + 4;
    // Head and part of the body, then the rest: the body phase's timer must be cleared.
    await client.write(message.subarray(0, headEnd + 3));
    await client.write(message.subarray(headEnd + 3));
    const startedAt = performance.now();
    expect((await received).data.equals(message)).toBe(true);
    const event = await closed;
    expect(event.reason).toBe('idle');
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(idle - 50);
  });

  describe('over TLS', () => {
    let certificateDir = '';
    let certificate = { cert: '', key: '' };

    beforeAll(() => {
      certificateDir = mkdtempSync(join(tmpdir(), 'sipnote-hardening-'));
      const keyFile = join(certificateDir, 'key.pem');
      const certFile = join(certificateDir, 'cert.pem');
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=example.test', '-keyout', keyFile, '-out', certFile],
        { stdio: 'pipe', timeout: 20_000 },
      );
      certificate = { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
    });

    afterAll(() => {
      if (certificateDir !== '') rmSync(certificateDir, { recursive: true, force: true });
    });

    it('closes a TLS connection whose body trickles in a byte at a time', async () => {
      const bob = await listen('tls:127.0.0.1:0', {
        headerTimeoutMs: DEADLINE_MS,
        idleTimeoutMs: IDLE_MS,
        tls: { certificate: certificate.cert, key: certificate.key },
      });
      const opened = nextEvent(bob, 'connection-open', () => true, 4000);
      const closed = nextEvent(bob, 'connection-close', () => true, 4000);
      const client = await tlsClient(portOf(bob, 'tls'));
      // The handshake is over (its own deadline is done with) before the message starts.
      expect((await opened).transport).toBe('tls');
      const trickle = await trickleBody(client, messageHead('tls-trickle', 10_000));

      const event = await closed;
      expect(event.reason).toBe('header-timeout');
      expect(event.detail).toBe(`message body not complete within ${DEADLINE_MS} ms`);
      expect(trickle.bytesTrickled()).toBeGreaterThan(2);
      await within(client.closed, 4000, 'the client seeing the close');
    });

    it('gives the next message on a TLS connection a fresh deadline when one completes in time', async () => {
      const bob = await listen('tls:127.0.0.1:0', {
        headerTimeoutMs: RESET_DEADLINE_MS,
        idleTimeoutMs: IDLE_MS,
        tls: { certificate: certificate.cert, key: certificate.key },
      });
      await expectFreshDeadlineAfterCompletedMessage(bob, await tlsClient(portOf(bob, 'tls')));
    });
  });
});

// ---------------------------------------------------------------- eviction at the connection cap

describe('at maxConnections, the quietest inbound connection makes room (evictQuietestInbound)', () => {
  let shiftMs = 0;

  /** Makes `ms` pass for every performance.now() reading, without waiting. */
  function passTime(ms: number): void {
    shiftMs += ms;
  }

  beforeEach(() => {
    shiftMs = 0;
    const realNow = performance.now.bind(performance);
    vi.spyOn(performance, 'now').mockImplementation(() => realNow() + shiftMs);
  });

  /** Collects the layer's connection-evicted and connection-refused diagnostics. */
  function diagnostics(layer: TransportLayer): EventArg<'transport-error'>[] {
    const seen: EventArg<'transport-error'>[] = [];
    layer.on('transport-error', (d) => {
      if (d.kind === 'connection-evicted' || d.kind === 'connection-refused') seen.push(d);
    });
    return seen;
  }

  async function send(layer: TransportLayer, client: Client, tag: string): Promise<void> {
    const delivered = nextEvent(layer, 'message', (m) => m.remote.port === client.socket.localPort);
    await client.write(sipMessage(tag));
    await delivered;
  }

  const openIds = (layer: TransportLayer): string[] => layer.connections().map((c) => c.connectionId).sort();

  it('refuses a newcomer while no inbound connection has been quiet 1 s, and evicts once one has', async () => {
    const bob = await listen('tcp:127.0.0.1:0', { maxConnections: 2 });
    const seen = diagnostics(bob);
    const a = await connectInbound(bob);
    passTime(200);
    const b = await connectInbound(bob);
    passTime(600); // A quiet 800 ms, B 600 ms

    const refused = nextEvent(bob, 'transport-error', (d) => d.kind === 'connection-refused');
    const early = await tcpClient(portOf(bob, 'tcp'));
    expect((await refused).reason).toMatch(/2 connections open/);
    await within(early.closed, 4000, 'the refused client seeing the close');
    expect(seen.map((d) => d.kind)).toEqual(['connection-refused']);
    expect(openIds(bob)).toEqual([a.info.connectionId, b.info.connectionId].sort());

    passTime(300); // A quiet 1100 ms, B 900 ms: only A qualifies
    const evicted = nextEvent(bob, 'transport-error', (d) => d.kind === 'connection-evicted');
    const closedA = nextEvent(bob, 'connection-close', (e) => e.connection.connectionId === a.info.connectionId);
    const late = await connectInbound(bob);
    expect((await evicted).connectionId).toBe(a.info.connectionId);
    expect((await closedA).reason).toBe('evicted');
    await within(a.client.closed, 4000, 'the evicted client seeing the close');
    expect(openIds(bob)).toEqual([b.info.connectionId, late.info.connectionId].sort());
  });

  it('evicts the quietest, not the oldest nor the first that qualifies, and says so in a diagnostic', async () => {
    const bob = await listen('tcp:127.0.0.1:0', { maxConnections: 3 });
    const a = await connectInbound(bob);
    const b = await connectInbound(bob);
    const c = await connectInbound(bob);
    passTime(500);
    await send(bob, b.client, 'b');
    passTime(500);
    await send(bob, a.client, 'a');
    passTime(1500); // quiet: A 1500 ms, B 2000 ms, C 2500 ms - all qualify, C the longest

    const evicted = nextEvent(bob, 'transport-error', (d) => d.kind === 'connection-evicted');
    const closedC = nextEvent(bob, 'connection-close', (e) => e.connection.connectionId === c.info.connectionId);
    const d = await connectInbound(bob);
    const diagnostic = await evicted;
    expect(diagnostic).toMatchObject({ transport: 'tcp', connectionId: c.info.connectionId, remote: c.info.remote, local: c.info.local });
    const reason = /^closed the connection from 127\.0\.0\.1:(\d+), quiet for (\d+) ms, to admit one from 127\.0\.0\.1: 3 connections open$/.exec(diagnostic.reason);
    expect(reason, diagnostic.reason).not.toBeNull();
    expect(Number(reason![1])).toBe(c.info.remote.port);
    expect(Number(reason![2])).toBeGreaterThanOrEqual(2500); // 2500 ms passed, plus the test's own real time
    expect(Number(reason![2])).toBeLessThan(3500);
    const closeEvent = await closedC;
    expect(closeEvent.reason).toBe('evicted');
    expect(closeEvent.detail).toBe(diagnostic.reason);
    await within(c.client.closed, 4000, 'the evicted client seeing the close');

    // The newcomer is served, and so are the ones that stayed.
    await send(bob, d.client, 'd');
    await send(bob, a.client, 'a-again');
    await send(bob, b.client, 'b-again');
    expect(openIds(bob)).toEqual([a.info.connectionId, b.info.connectionId, d.info.connectionId].sort());
  });

  it('does not evict connections in active use: the oldest that just sent a message stays', async () => {
    const bob = await listen('tcp:127.0.0.1:0', { maxConnections: 2 });
    const seen = diagnostics(bob);
    const a = await connectInbound(bob);
    const b = await connectInbound(bob);
    passTime(5000);
    await send(bob, a.client, 'a');
    await send(bob, b.client, 'b');

    const refused = nextEvent(bob, 'transport-error', (d) => d.kind === 'connection-refused');
    const newcomer = await tcpClient(portOf(bob, 'tcp'));
    expect((await refused).reason).toMatch(/2 connections open/);
    await within(newcomer.closed, 4000, 'the refused client seeing the close');
    expect(seen.map((d) => d.kind)).toEqual(['connection-refused']);
    expect(openIds(bob)).toEqual([a.info.connectionId, b.info.connectionId].sort());
  });

  it('does not take keep-alive pings for use: a connection that only pings can be evicted', async () => {
    // Otherwise a peer could hold every slot for good with a CRLF ping per connection every
    // 0.9 s (4 bytes each): the lock-out the eviction is there to end. Real RFC 5626 flows
    // ping every minute or two, so they are quiet for longer than 1 s anyway.
    const bob = await listen('tcp:127.0.0.1:0', { maxConnections: 2 });
    const pinger = await connectInbound(bob);
    const talker = await connectInbound(bob);
    passTime(5000);
    const pinged = nextEvent(bob, 'keepalive', (k) => k.connectionId === pinger.info.connectionId);
    await pinger.client.write('\r\n\r\n');
    await pinged;
    await send(bob, talker.client, 'talker');

    const evicted = nextEvent(bob, 'transport-error', (d) => d.kind === 'connection-evicted');
    const newcomer = await connectInbound(bob);
    expect((await evicted).connectionId).toBe(pinger.info.connectionId);
    await within(pinger.client.closed, 4000, 'the evicted client seeing the close');
    expect(openIds(bob)).toEqual([talker.info.connectionId, newcomer.info.connectionId].sort());
  });

  it('quietFor counts from the last message bytes received: part of a message counts, a ping does not', async () => {
    // StreamConnection on its own, on an accepted socket: a 'data' listener added after its own
    // runs once it has taken the chunk in, which is what makes each step below observable.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = await tcpClient((server.address() as net.AddressInfo).port);
    const socket = await accepted;
    try {
      const endpoint = { address: '127.0.0.1', port: 0 };
      const connection = new StreamConnection(
        socket,
        { connectionId: 'tcp-test', transport: 'tcp', direction: 'inbound', local: endpoint, remote: endpoint },
        { idleTimeoutMs: 20_000, headerTimeoutMs: 20_000, maxHeadBytes: 8192, maxMessageBytes: 65_536, maxPendingWriteBytes: 65_536 },
        { onMessage: () => {}, onKeepalive: () => {}, onFramingError: () => {}, onClose: () => {} },
      );
      const taken = (): Promise<void> => new Promise((resolve) => socket.once('data', () => resolve()));
      const receive = async (data: string): Promise<void> => {
        const read = taken();
        await client.write(data);
        await read;
      };

      expect(connection.quietFor()).toBeLessThan(500); // since it opened
      passTime(5000);
      expect(connection.quietFor()).toBeGreaterThanOrEqual(5000);
      await receive('\r\n\r\n'); // a keep-alive ping: not use
      expect(connection.quietFor()).toBeGreaterThanOrEqual(5000);
      await receive(messageHead('slow', 4).slice(0, 30)); // the start of a message
      expect(connection.quietFor()).toBeLessThan(500);
      passTime(2000);
      await receive(messageHead('slow', 4).slice(30)); // the rest of the head
      expect(connection.quietFor()).toBeLessThan(500);
      passTime(2000);
      await receive('body'); // the body, completing the message
      expect(connection.quietFor()).toBeLessThan(500);
      passTime(2000);
      await receive('\r\n\r\n');
      expect(connection.quietFor()).toBeGreaterThanOrEqual(2000);
      await connection.close('local');
    } finally {
      socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('checks the per-source limit first: a newcomer refused by it evicts nobody', async () => {
    const bob = await listen('tcp:127.0.0.1:0', { maxConnections: 3, maxConnectionsPerSource: 2 });
    const seen = diagnostics(bob);
    const other = await connectInbound(bob, '127.0.0.2');
    const first = await connectInbound(bob);
    const second = await connectInbound(bob);
    passTime(1500); // all three qualify for eviction

    const refused = nextEvent(bob, 'transport-error', (d) => d.kind === 'connection-refused');
    const third = await tcpClient(portOf(bob, 'tcp'));
    expect((await refused).reason).toMatch(/2 connections from that address already/);
    await within(third.closed, 4000, 'the refused client seeing the close');
    expect(seen.map((d) => d.kind)).toEqual(['connection-refused']);
    expect(openIds(bob)).toEqual([other.info.connectionId, first.info.connectionId, second.info.connectionId].sort());

    // From an address under its limit, the same state does evict (the quietest: `other`).
    const evicted = nextEvent(bob, 'transport-error', (d) => d.kind === 'connection-evicted');
    const fresh = await connectInbound(bob, '127.0.0.3');
    expect((await evicted).connectionId).toBe(other.info.connectionId);
    await within(other.client.closed, 4000, 'the evicted client seeing the close');
    expect(openIds(bob)).toEqual([first.info.connectionId, second.info.connectionId, fresh.info.connectionId].sort());
  });

  it('never evicts an outbound connection, however quiet', async () => {
    const carol = await listen('tcp:127.0.0.1:0');
    const bob = await listen('tcp:127.0.0.1:0', { maxConnections: 2 });
    const seen = diagnostics(bob);
    const outbound = await bob.connect({ address: '127.0.0.1', port: portOf(carol, 'tcp') });
    passTime(3000);
    const a = await connectInbound(bob); // quiet 0; the outbound one 3000 ms

    const refused = nextEvent(bob, 'transport-error', (d) => d.kind === 'connection-refused');
    const early = await tcpClient(portOf(bob, 'tcp'));
    expect((await refused).reason).toMatch(/2 connections open/);
    await within(early.closed, 4000, 'the refused client seeing the close');
    expect(seen.map((d) => d.kind)).toEqual(['connection-refused']);

    passTime(1500); // the inbound one qualifies now; the outbound one, quieter, still does not
    const evicted = nextEvent(bob, 'transport-error', (d) => d.kind === 'connection-evicted');
    const late = await connectInbound(bob);
    expect((await evicted).connectionId).toBe(a.info.connectionId);
    await within(a.client.closed, 4000, 'the evicted client seeing the close');
    expect(openIds(bob)).toEqual([outbound.connectionId, late.info.connectionId].sort());
  });
});

// ---------------------------------------------------------------- sipnote listen flags

describe('sipnote listen --tcp-idle-timeout / --tcp-message-timeout', () => {
  interface Run {
    code: number;
    stderr: string;
  }

  async function run(argv: string[], stop?: Promise<void>, stdout = new PassThrough()): Promise<Run> {
    const errors = new PassThrough();
    let stderr = '';
    errors.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await main(argv, { stdin: new PassThrough(), stdout, stderr: errors }, stop);
    return { code, stderr };
  }

  const LISTEN = ['listen', '--aor', 'sip:bob@127.0.0.1', '--listen', 'tcp:127.0.0.1:0', '--plaintext'];

  /** The ListenArgs main() hands to listenCommand, which is stubbed for this one call. */
  async function listenArgsOf(flags: string[]): Promise<ListenArgs> {
    const command = vi.mocked(listenCommand);
    command.mockClear();
    command.mockImplementationOnce(async () => 0);
    const result = await run([...LISTEN, ...flags]);
    expect(result).toEqual({ code: 0, stderr: '' });
    expect(command).toHaveBeenCalledTimes(1);
    return command.mock.calls[0]![0];
  }

  it('hands valid values to the transport as transportLimits', async () => {
    expect((await listenArgsOf(['--tcp-idle-timeout', '45000', '--tcp-message-timeout', '2500'])).transportLimits).toEqual({
      idleTimeoutMs: 45_000,
      headerTimeoutMs: 2500,
    });
    expect((await listenArgsOf(['--tcp-idle-timeout=1'])).transportLimits).toEqual({ idleTimeoutMs: 1 });
    expect((await listenArgsOf(['--tcp-message-timeout', '86400000'])).transportLimits).toEqual({ headerTimeoutMs: 86_400_000 });
    // Neither flag: no transportLimits at all, so the transport's defaults apply.
    expect(await listenArgsOf([])).not.toHaveProperty('transportLimits');
  });

  it.each([
    ['--tcp-idle-timeout', '0'],
    ['--tcp-idle-timeout', '-1'],
    ['--tcp-idle-timeout', 'abc'],
    ['--tcp-idle-timeout', '1e9'],
    ['--tcp-idle-timeout', '1000000000'],
    ['--tcp-idle-timeout', '86400001'],
    ['--tcp-idle-timeout', '1.5'],
    ['--tcp-idle-timeout', ''],
    ['--tcp-message-timeout', '0'],
    ['--tcp-message-timeout', '-1'],
    ['--tcp-message-timeout', 'abc'],
    ['--tcp-message-timeout', '1e9'],
    ['--tcp-message-timeout', ' 500'],
  ])('%s=%j is a usage error (exit 2), and nothing is started', async (flag, value) => {
    const command = vi.mocked(listenCommand);
    command.mockClear();
    const result = await run([...LISTEN, `${flag}=${value}`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`^sipnote: ${flag} takes a number of milliseconds\\n`));
    expect(result.stderr).toContain('usage:');
    expect(command).not.toHaveBeenCalled();
  });

  it.each([['--tcp-idle-timeout'], ['--tcp-message-timeout']])('%s with no value, or a negative one not joined by =, is a usage error', async (flag) => {
    const command = vi.mocked(listenCommand);
    command.mockClear();
    for (const argv of [[...LISTEN, flag], [...LISTEN, flag, '-1']]) {
      const result = await run(argv);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('usage:');
    }
    expect(command).not.toHaveBeenCalled();
  });

  it('a listener started with the flags applies them to its TCP connections', async () => {
    let stopListener: () => void = () => undefined;
    const stop = new Promise<void>((resolve) => (stopListener = resolve));
    const output = new PassThrough();
    const listening = new Promise<number>((resolve) => {
      let buffered = '';
      output.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const line = buffered.split('\n').find((l) => l.includes('"listening"'));
        if (line !== undefined) resolve(Number((JSON.parse(line) as ListeningEvent).listen[0]?.split(':').pop()));
      });
    });
    const done = run([...LISTEN, '--json', '--tcp-idle-timeout', '300', '--tcp-message-timeout', '150'], stop, output);
    try {
      const port = await within(listening, 10_000, 'the listener starting');
      // A stalled head is dropped after the message timeout…
      const stalled = await tcpClient(port);
      const stalledAt = performance.now();
      await stalled.write('MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: ');
      await within(stalled.closed, 4000, 'the stalled connection closing');
      const stalledFor = performance.now() - stalledAt;
      // …and a silent connection after the idle timeout, which is the longer of the two.
      const silent = await tcpClient(port);
      const silentAt = performance.now();
      await within(silent.closed, 4000, 'the silent connection closing');
      const silentFor = performance.now() - silentAt;
      expect(stalledFor).toBeGreaterThanOrEqual(140);
      expect(silentFor).toBeGreaterThanOrEqual(290);
      expect(silentFor).toBeGreaterThan(stalledFor);
    } finally {
      stopListener();
      expect((await done).code).toBe(0);
    }
  });
});
