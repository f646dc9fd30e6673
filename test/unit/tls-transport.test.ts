/**
 * TLS in the transport layer (RFC 3261 §26, RFC 5922) and RFC 5626 §4.4.1 flow keep-alive.
 *
 * Certificates are made with openssl in a temporary folder, once for the file: self-signed
 * (no CA) server certificates whose names exercise the RFC 5922 identity rules. Everything runs
 * over real TLS on 127.0.0.1 (and ::1 when the host has it). Keep-alive timing runs on a
 * ManualClock; nothing here sleeps - the tests wait for events, each bounded.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { FlowKeepalive } from '../../main/sip/transport/flow-keepalive.js';
import { StreamFramer } from '../../main/sip/transport/stream-framer.js';
import { parseListenSpec } from '../../main/sip/transport/listen-spec.js';
import { checkSipServerIdentity, sipCertificateIdentities } from '../../main/sip/transport/server-identity.js';
import { TransportError } from '../../main/sip/transport/transport-error.js';
import { TransportLayer } from '../../main/sip/transport/transport-layer.js';
import type { TransportLayerEvents, TransportLayerOptions } from '../../main/sip/transport/transport-layer.js';
import { ManualClock } from '../support/manual-clock.js';
import { expectTransportError, nextEvent, portOf, type EventArg } from '../support/transport-events.js';
import { within } from '../support/within.js';

// ---------------------------------------------------------------- certificates

interface TestCertificate {
  cert: string;
  key: string;
  x509: X509Certificate;
}

let workDir = '';
const certs = {} as Record<
  'good' | 'dnsOnly' | 'wildcard' | 'wrongUri' | 'subdomain' | 'cnOnly' | 'userUri' | 'other',
  TestCertificate
>;

/** A self-signed EC P-256 server certificate with this CN and these subjectAltNames (none if undefined). */
function makeCertificate(name: string, cn: string, subjectAltName: string | undefined): TestCertificate {
  const config = join(workDir, `${name}.cnf`);
  const keyFile = join(workDir, `${name}.key`);
  const certFile = join(workDir, `${name}.pem`);
  writeFileSync(
    config,
    [
      '[req]',
      'distinguished_name = dn',
      'x509_extensions = ext',
      'prompt = no',
      '[dn]',
      `CN = ${cn}`,
      '[ext]',
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature',
      'extendedKeyUsage = serverAuth',
      ...(subjectAltName === undefined ? [] : [`subjectAltName = ${subjectAltName}`]),
      '',
    ].join('\n'),
  );
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-config', config, '-keyout', keyFile, '-out', certFile],
    { stdio: 'pipe', timeout: 20_000 },
  );
  const cert = readFileSync(certFile, 'utf8');
  return { cert, key: readFileSync(keyFile, 'utf8'), x509: new X509Certificate(cert) };
}

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), 'sipnote-tls-'));
  certs.good = makeCertificate('good', 'example.test', 'URI:sip:example.test,DNS:example.test,IP:127.0.0.1,IP:::1');
  certs.dnsOnly = makeCertificate('dns-only', 'cn.example.test', 'DNS:example.test,IP:127.0.0.1');
  certs.wildcard = makeCertificate('wildcard', 'sip.example.test', 'DNS:*.example.test');
  certs.wrongUri = makeCertificate('wrong-uri', 'example.test', 'URI:sip:other.test,DNS:example.test');
  certs.subdomain = makeCertificate('subdomain', 'sip.example.test', 'URI:sip:sip.example.test');
  certs.cnOnly = makeCertificate('cn-only', 'example.test', undefined);
  certs.userUri = makeCertificate('user-uri', 'example.test', 'URI:sip:alice@example.test,URI:sips:example.test,DNS:dns.example.test');
  certs.other = makeCertificate('other', 'example.test', 'URI:sip:example.test,DNS:example.test,IP:127.0.0.1');
});

afterAll(() => {
  if (workDir !== '') rmSync(workDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- helpers

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
const rawServers: net.Server[] = [];

afterEach(async () => {
  for (const socket of rawSockets.splice(0)) socket.destroy();
  await Promise.all(layers.splice(0).map((layer) => layer.close()));
  await Promise.all(rawServers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
});

async function listen(spec: string, options: TransportLayerOptions = {}): Promise<TransportLayer> {
  const layer = await TransportLayer.listen(spec === '' ? [] : parseListenSpec(spec, { allowTls: true }), options);
  layers.push(layer);
  return layer;
}

/** A TLS listener on 127.0.0.1 presenting `certificate`. */
function tlsServer(certificate: TestCertificate, options: TransportLayerOptions = {}, host = '127.0.0.1'): Promise<TransportLayer> {
  const bracketed = host.includes(':') ? `[${host}]` : host;
  return listen(`tls:${bracketed}:0`, { ...options, tls: { certificate: certificate.cert, key: certificate.key, ...options.tls } });
}

/** A layer with no listener that trusts `trusted` for its outbound TLS connections. */
function tlsClient(trusted: TestCertificate[], options: TransportLayerOptions = {}): Promise<TransportLayer> {
  return listen('', { ...options, tls: { trustedCertificates: trusted.map((c) => c.cert) } });
}


/** Resolves once `condition()` holds, checking now and after each `event` of `layer` (bounded). */
async function until<K extends keyof TransportLayerEvents>(layer: TransportLayer, event: K, condition: () => boolean, ms = 5000): Promise<void> {
  if (condition()) return;
  await nextEvent(layer, event, () => condition(), ms);
}

/** Every `event` of a layer, in order. */
function collect<K extends keyof TransportLayerEvents>(layer: TransportLayer, event: K): EventArg<K>[] {
  const seen: EventArg<K>[] = [];
  (layer.on.bind(layer) as (e: K, l: (arg: EventArg<K>) => void) => void)(event, (arg) => seen.push(arg));
  return seen;
}

function sipMessage(tag: string, body = `hello ${tag}`): Buffer {
  const bodyBytes = Buffer.from(body, 'utf8');
  const head = [
    'MESSAGE sip:bob@example.test SIP/2.0',
    'Via: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK-' + tag,
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

function okResponse(tag: string): Buffer {
  return Buffer.from(`SIP/2.0 200 OK\r\nCall-ID: ${tag}@example.test\r\nContent-Length: 0\r\n\r\n`, 'latin1');
}

interface RawTlsPeer {
  port: number;
  /** Server-side sockets, in accept order. */
  sockets: tls.TLSSocket[];
  /** SNI names the clients sent (false: none). */
  serverNames: (string | false)[];
  /** Resolves once the bytes received on any socket include `count` occurrences of `text`. */
  waitForCount: (text: string, count: number, ms?: number) => Promise<void>;
  /** Resolves once `count` TLS connections have been accepted. */
  waitForSockets: (count: number, ms?: number) => Promise<void>;
}

/**
 * A TLS server we fully control (not our transport): `onData` decides what each chunk gets.
 * Its sockets are destroyed and the server closed after each test.
 */
async function rawTlsPeer(certificate: TestCertificate, onData: (socket: tls.TLSSocket, chunk: Buffer) => void = () => {}): Promise<RawTlsPeer> {
  const sockets: tls.TLSSocket[] = [];
  const serverNames: (string | false)[] = [];
  let received = '';
  const waiters = new Set<() => void>();
  const server = tls.createServer({ cert: certificate.cert, key: certificate.key }, (socket) => {
    sockets.push(socket);
    rawSockets.push(socket);
    serverNames.push(socket.servername ?? false);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      onData(socket, chunk);
      for (const waiter of [...waiters]) waiter();
    });
    for (const waiter of [...waiters]) waiter();
  });
  server.on('tlsClientError', () => {});
  rawServers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const occurrences = (text: string): number => received.split(text).length - 1;
  const waitFor = (condition: () => boolean, what: string, ms: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!condition()) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`${what} not within ${ms} ms`));
      }, ms);
      waiters.add(check);
      check();
    });
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    serverNames,
    waitForCount: (text, count, ms = 5000) => waitFor(() => occurrences(text) >= count, `${count} x ${JSON.stringify(text)}`, ms),
    waitForSockets: (count, ms = 5000) => waitFor(() => sockets.length >= count, `${count} accepted connections`, ms),
  };
}

/** A plain TCP client (no TLS) to `port`. */
async function rawTcpClient(port: number): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  rawSockets.push(socket);
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, closed };
}

// ---------------------------------------------------------------- RFC 5922 identity rules

describe('checkSipServerIdentity (RFC 5922 §7.1-§7.3)', () => {
  it('matches a sip URI subjectAltName, whole and case-insensitively', () => {
    expect(checkSipServerIdentity('example.test', certs.good.x509)).toBeUndefined();
    expect(checkSipServerIdentity('EXAMPLE.Test', certs.good.x509)).toBeUndefined();
    expect(checkSipServerIdentity('example.test.', certs.good.x509)).toBeUndefined();
    expect(checkSipServerIdentity('example.test', certs.good.x509.raw)).toBeUndefined(); // DER bytes work too
    expect(sipCertificateIdentities(certs.good.x509)).toEqual({ source: 'uri', names: ['example.test'], ipAddresses: ['127.0.0.1', '::1'] });
  });

  it('ignores DNS names when a sip URI subjectAltName exists', () => {
    // URI:sip:other.test, DNS:example.test - the DNS name does not count.
    const error = checkSipServerIdentity('example.test', certs.wrongUri.x509);
    expect(error).toBeInstanceOf(TransportError);
    expect(error?.code).toBe('tls-identity');
    expect(error?.message).toMatch(/sip URI other\.test/);
    expect(checkSipServerIdentity('other.test', certs.wrongUri.x509)).toBeUndefined();
  });

  it('uses DNS subjectAltNames when there is no sip URI one', () => {
    expect(sipCertificateIdentities(certs.dnsOnly.x509)).toMatchObject({ source: 'dns', names: ['example.test'] });
    expect(checkSipServerIdentity('example.test', certs.dnsOnly.x509)).toBeUndefined();
    // the CN (cn.example.test) is not consulted when there are subjectAltNames
    expect(checkSipServerIdentity('cn.example.test', certs.dnsOnly.x509)?.code).toBe('tls-identity');
  });

  it('does not take a URI with a user part, or a sips: URI, as a domain identity', () => {
    const identities = sipCertificateIdentities(certs.userUri.x509);
    expect(identities).toEqual({ source: 'dns', names: ['dns.example.test'], ipAddresses: [] });
    expect(checkSipServerIdentity('example.test', certs.userUri.x509)?.code).toBe('tls-identity');
    expect(checkSipServerIdentity('dns.example.test', certs.userUri.x509)).toBeUndefined();
  });

  it('does not match a wildcard: *.example.test is not sip.example.test', () => {
    expect(checkSipServerIdentity('sip.example.test', certs.wildcard.x509)?.code).toBe('tls-identity');
    expect(checkSipServerIdentity('example.test', certs.wildcard.x509)?.code).toBe('tls-identity');
    expect(checkSipServerIdentity('a.b.example.test', certs.wildcard.x509)?.code).toBe('tls-identity');
    // the CN sip.example.test is not consulted either: the certificate has a subjectAltName
    expect(checkSipServerIdentity('*.example.test', certs.wildcard.x509)?.code).toBe('tls-identity');
    // Node's default check would have accepted it - the reason this checker exists
    expect(tls.checkServerIdentity('sip.example.test', certs.wildcard.x509.toLegacyObject())).toBeUndefined();
  });

  it('does not match a suffix, either way', () => {
    expect(checkSipServerIdentity('sip.example.test', certs.good.x509)?.code).toBe('tls-identity');
    expect(checkSipServerIdentity('example.test', certs.subdomain.x509)?.code).toBe('tls-identity');
    expect(checkSipServerIdentity('xample.test', certs.good.x509)?.code).toBe('tls-identity');
    expect(checkSipServerIdentity('sip.example.test', certs.subdomain.x509)).toBeUndefined();
  });

  it('uses the CN only when the certificate has no subjectAltName at all', () => {
    expect(sipCertificateIdentities(certs.cnOnly.x509)).toEqual({ source: 'cn', names: ['example.test'], ipAddresses: [] });
    expect(checkSipServerIdentity('example.test', certs.cnOnly.x509)).toBeUndefined();
    expect(checkSipServerIdentity('sip.example.test', certs.cnOnly.x509)?.code).toBe('tls-identity');
    // CN example.test, but a subjectAltName of sip:other.test: the CN does not count
    expect(checkSipServerIdentity('example.test', certs.wrongUri.x509)?.code).toBe('tls-identity');
  });

  it('matches an IP-literal target against iPAddress subjectAltNames only', () => {
    expect(checkSipServerIdentity('127.0.0.1', certs.good.x509)).toBeUndefined();
    expect(checkSipServerIdentity('[0:0:0:0:0:0:0:1]', certs.good.x509)).toBeUndefined();
    expect(checkSipServerIdentity('127.0.0.2', certs.good.x509)?.code).toBe('tls-identity');
    expect(checkSipServerIdentity('127.0.0.1', certs.cnOnly.x509)?.code).toBe('tls-identity');
  });

  it('refuses what is not a name, and a certificate it cannot read', () => {
    expect(checkSipServerIdentity('', certs.good.x509)?.code).toBe('tls-identity');
    expect(checkSipServerIdentity('exa mple.test', certs.good.x509)?.code).toBe('tls-identity');
    expect(checkSipServerIdentity('example.test', Buffer.from('not a certificate'))?.code).toBe('tls-identity');
  });
});

// ---------------------------------------------------------------- listening

describe('TLS listeners', () => {
  it('parses tls: specs when the caller can serve TLS, with 5061 as the default port', () => {
    expect(parseListenSpec('tls:127.0.0.1', { allowTls: true })).toEqual([{ transport: 'tls', host: '127.0.0.1', port: 5061 }]);
    expect(parseListenSpec('TLS:[::1]:5071,udp:127.0.0.1:0', { allowTls: true })).toEqual([
      { transport: 'tls', host: '::1', port: 5071 },
      { transport: 'udp', host: '127.0.0.1', port: 0 },
    ]);
    expect(() => parseListenSpec('tls:127.0.0.1:5061')).toThrow(/needs a certificate and key/);
  });

  it('binds tls next to udp and tcp, reports it in localAddresses, and pairs only udp with tcp', async () => {
    const layer = await tlsServer(certs.good, {});
    await layer.close();
    const all = await listen('udp:127.0.0.1:0,tls:127.0.0.1:0,tcp:127.0.0.1:0', { tls: { certificate: certs.good.cert, key: certs.good.key } });
    const [udp, secure, tcp] = all.localAddresses();
    expect(udp).toMatchObject({ transport: 'udp', host: '127.0.0.1', family: 'IPv4' });
    expect(secure).toMatchObject({ transport: 'tls', host: '127.0.0.1', family: 'IPv4' });
    expect(tcp).toMatchObject({ transport: 'tcp', host: '127.0.0.1' });
    expect(tcp!.port).toBe(udp!.port);
    expect(secure!.port).toBeGreaterThan(0);
    expect(secure!.port).not.toBe(udp!.port);
  });

  it('refuses a tls listener without certificate and key, and unusable certificates (tls-config)', async () => {
    await expectTransportError(TransportLayer.listen(parseListenSpec('tls:127.0.0.1:0', { allowTls: true })), 'tls-config');
    await expectTransportError(
      TransportLayer.listen(parseListenSpec('tls:127.0.0.1:0', { allowTls: true }), { tls: { certificate: certs.good.cert, key: certs.other.key } }),
      'tls-config',
    );
    await expectTransportError(TransportLayer.listen([], { tls: { trustedCertificates: ['-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n'] } }), 'tls-config');
  });
});

// ---------------------------------------------------------------- TLS connections

describe('TLS connections', () => {
  it('exchanges SIP messages both ways with a server the client trusts explicitly', async () => {
    const bob = await tlsServer(certs.good);
    const alice = await tlsClient([certs.good]);
    const port = portOf(bob, 'tls');

    const atBob = nextEvent(bob, 'message');
    const sent = await alice.send(sipMessage('t1'), { transport: 'tls', address: '127.0.0.1', port, serverName: 'example.test' });
    expect(sent).toMatchObject({ transport: 'tls', remote: { address: '127.0.0.1', port }, tls: { serverName: 'example.test' } });
    expect(sent.connectionId).toMatch(/^tls-/);
    expect(sent.tls?.protocol).toMatch(/^TLSv1\.[23]$/);

    const request = await atBob;
    expect(request.data.equals(sipMessage('t1'))).toBe(true);
    expect(request.tls).toBeDefined();
    expect(request.tls?.serverName).toBeUndefined(); // inbound: no client certificate
    expect(request.transport).toBe('tls'); // the SIP transport, for Via and the reply
    expect(request.connectionId).toMatch(/^tls-/);
    expect(request.remote).toEqual(sent.local);

    // Bob answers on the connection the request came on, as the UA does for TCP: by
    // connectionId, with the sent-by port (unreachable here) as fallback address.
    const atAlice = nextEvent(alice, 'message');
    const replied = await bob.send(okResponse('t1'), { transport: 'tcp', address: '127.0.0.1', port: 1, connectionId: request.connectionId! });
    expect(replied).toMatchObject({ transport: 'tls', connectionId: request.connectionId });
    const response = await atAlice;
    expect(response.data.equals(okResponse('t1'))).toBe(true);
    expect(response).toMatchObject({ connectionId: sent.connectionId, tls: { serverName: 'example.test' } });

    // The next request reuses the connection; so does a 'tls' reply by connectionId.
    const second = nextEvent(bob, 'message');
    const again = await alice.send(sipMessage('t2'), { transport: 'tls', address: '127.0.0.1', port, serverName: 'EXAMPLE.test' });
    expect(again.connectionId).toBe(sent.connectionId);
    const secondRequest = await second;
    const secondReply = nextEvent(alice, 'message');
    await bob.send(okResponse('t2'), { transport: 'tls', address: '127.0.0.1', port: 1, connectionId: secondRequest.connectionId! });
    await secondReply;
    expect(alice.connections()).toEqual([expect.objectContaining({ transport: 'tls', direction: 'outbound', tls: expect.objectContaining({ serverName: 'example.test' }) })]);
    expect(bob.connections()).toEqual([expect.objectContaining({ transport: 'tls', direction: 'inbound' })]);
  });

  it('reuses connections per (address, port, serverName), and a TLS send never takes a TCP connection', async () => {
    const bob = await tlsServer(certs.good);
    const alice = await tlsClient([certs.good]);
    const port = portOf(bob, 'tls');
    const byName = await alice.connect({ transport: 'tls', address: '127.0.0.1', port, serverName: 'example.test' });
    const byIp = await alice.connect({ transport: 'tls', address: '127.0.0.1', port }); // checks the iPAddress SAN
    expect(byIp.connectionId).not.toBe(byName.connectionId);
    expect(byIp.tls?.serverName).toBe('127.0.0.1');
    expect((await alice.connect({ transport: 'tls', address: '127.0.0.1', port, serverName: 'example.test' })).connectionId).toBe(byName.connectionId);
    expect(alice.connections()).toHaveLength(2);

    // Bob's inbound TLS connections are not picked for a request by address alone.
    const tcpBob = await listen('tcp:127.0.0.1:0');
    const plain = await alice.connect({ address: '127.0.0.1', port: portOf(tcpBob, 'tcp') });
    expect(plain.transport).toBe('tcp');
    const tlsTarget = { transport: 'tls' as const, address: '127.0.0.1', port, serverName: 'example.test', connectionId: plain.connectionId };
    expect((await alice.send(sipMessage('t3'), tlsTarget)).connectionId).toBe(byName.connectionId);
  });

  it('sends SNI with the server name, and none for an IP literal', async () => {
    const peer = await rawTlsPeer(certs.good);
    const alice = await tlsClient([certs.good]);
    await alice.connect({ transport: 'tls', address: '127.0.0.1', port: peer.port, serverName: 'Example.Test' });
    await alice.connect({ transport: 'tls', address: '127.0.0.1', port: peer.port, serverName: '127.0.0.1' });
    await peer.waitForSockets(2);
    expect(peer.serverNames).toEqual(['example.test', false]);
  });

  it('refuses a server whose certificate is not trusted (tls-certificate), leaving nothing open', async () => {
    const bob = await tlsServer(certs.good);
    const handshake = nextEvent(bob, 'transport-error', (d) => d.kind === 'tls-handshake');
    const stranger = await tlsClient([]); // system roots only
    const error = await expectTransportError(
      stranger.send(sipMessage('u1'), { transport: 'tls', address: '127.0.0.1', port: portOf(bob, 'tls'), serverName: 'example.test' }),
      'tls-certificate',
    );
    expect(error.message).toMatch(/self-signed|SELF_SIGNED/i);
    expect(stranger.connections()).toHaveLength(0);
    await handshake; // Bob saw the handshake fail and dropped the socket
    expect(bob.connections()).toHaveLength(0);

    // Trusting another certificate does not help either.
    const trustsOther = await tlsClient([certs.other]);
    await expectTransportError(trustsOther.connect({ transport: 'tls', address: '127.0.0.1', port: portOf(bob, 'tls'), serverName: 'example.test' }), 'tls-certificate');
  });

  it('closes a trusted connection whose certificate does not name the domain (tls-identity)', async () => {
    const wildcardServer = await tlsServer(certs.wildcard);
    const wrongUriServer = await tlsServer(certs.wrongUri);
    const alice = await tlsClient([certs.wildcard, certs.wrongUri]);
    // The server sees its side end: a failed handshake, or (TLS 1.3, where the client checks
    // the certificate after its last handshake message) a connection the client then closes.
    const endedAtServer = new Promise<void>((resolve) => {
      wildcardServer.on('connection-close', () => resolve());
      wildcardServer.on('transport-error', (d) => d.kind === 'tls-handshake' && resolve());
    });
    const wildcard = await expectTransportError(
      alice.send(sipMessage('w1'), { transport: 'tls', address: '127.0.0.1', port: portOf(wildcardServer, 'tls'), serverName: 'sip.example.test' }),
      'tls-identity',
    );
    expect(wildcard.message).toMatch(/\*\.example\.test/);
    await expectTransportError(
      alice.send(sipMessage('w2'), { transport: 'tls', address: '127.0.0.1', port: portOf(wrongUriServer, 'tls'), serverName: 'example.test' }),
      'tls-identity',
    );
    expect(alice.connections()).toHaveLength(0);
    await within(endedAtServer, 5000, 'server side of the refused connection ending');
    await until(wildcardServer, 'connection-close', () => wildcardServer.connections().length === 0);
  });

  it('rejects an invalid server name', async () => {
    const alice = await tlsClient([certs.good]);
    await expectTransportError(alice.send(sipMessage('n1'), { transport: 'tls', address: '127.0.0.1', port: 5061, serverName: '*.example.test' }), 'invalid-address');
  });

  it('does not answer over plain TCP when the TLS connection of the request is gone', async () => {
    const bob = await tlsServer(certs.good);
    const alice = await tlsClient([certs.good]);
    const atBob = nextEvent(bob, 'message');
    const sent = await alice.send(sipMessage('d1'), { transport: 'tls', address: '127.0.0.1', port: portOf(bob, 'tls'), serverName: 'example.test' });
    const request = await atBob;
    const gone = nextEvent(bob, 'connection-close');
    await alice.closeConnection(sent.connectionId!);
    expect((await gone).reason).toBe('peer-closed');
    const tcpSink = await listen('tcp:127.0.0.1:0');
    await expectTransportError(
      bob.send(okResponse('d1'), { transport: 'tcp', address: '127.0.0.1', port: portOf(tcpSink, 'tcp'), connectionId: request.connectionId! }),
      'connection-closed',
    );
    expect(bob.connections()).toHaveLength(0);
  });

  it('drops a plain TCP client on a TLS port and a handshake that does not finish, and keeps serving', async () => {
    const bob = await tlsServer(certs.good, { headerTimeoutMs: 150, maxConnectionsPerSource: 1 });
    const port = portOf(bob, 'tls');
    const diagnostics = collect(bob, 'transport-error');

    const plain = await rawTcpClient(port);
    plain.socket.write(sipMessage('clear'));
    await within(plain.closed, 5000, 'plain client dropped');
    await until(bob, 'transport-error', () => diagnostics.some((d) => d.kind === 'tls-handshake'));

    const silent = await rawTcpClient(port); // connects, never says hello
    await within(silent.closed, 5000, 'silent client dropped');
    await until(bob, 'transport-error', () => diagnostics.filter((d) => d.kind === 'tls-handshake').length >= 2);
    expect(diagnostics.filter((d) => d.kind === 'tls-handshake').map((d) => d.reason).join('\n')).toMatch(/not done within 150 ms/);

    // Both slots of this source were released: a real client gets in.
    const alice = await tlsClient([certs.good]);
    const message = nextEvent(bob, 'message');
    await alice.send(sipMessage('after'), { transport: 'tls', address: '127.0.0.1', port, serverName: 'example.test' });
    expect((await message).data.equals(sipMessage('after'))).toBe(true);
  });

  it('applies the stream rules to TLS: idle close, framing errors, per-source limit', async () => {
    const bob = await tlsServer(certs.good, { idleTimeoutMs: 200, maxConnectionsPerSource: 1 });
    const port = portOf(bob, 'tls');
    const alice = await tlsClient([certs.good]);
    const opened = await alice.connect({ transport: 'tls', address: '127.0.0.1', port, serverName: 'example.test' });
    const idle = await nextEvent(bob, 'connection-close');
    expect(idle.reason).toBe('idle');
    expect(idle.connection.transport).toBe('tls');
    await until(alice, 'connection-close', () => !alice.connections().some((c) => c.connectionId === opened.connectionId));

    const framing = nextEvent(bob, 'transport-error', (d) => d.kind === 'framing-error');
    const closed = nextEvent(alice, 'connection-close');
    await alice.send(Buffer.from('this is not SIP\r\n\r\n'), { transport: 'tls', address: '127.0.0.1', port, serverName: 'example.test' });
    expect((await framing).transport).toBe('tls');
    expect((await closed).reason).toBe('peer-closed');

    const first = await alice.connect({ transport: 'tls', address: '127.0.0.1', port, serverName: 'example.test' });
    const secondClient = await tlsClient([certs.good]);
    const refused = nextEvent(bob, 'transport-error', (d) => d.kind === 'connection-refused');
    await expect(secondClient.connect({ transport: 'tls', address: '127.0.0.1', port, serverName: 'example.test' })).rejects.toBeInstanceOf(TransportError);
    expect((await refused).transport).toBe('tls');
    expect(alice.connections().map((c) => c.connectionId)).toContain(first.connectionId);
  });

  it('close() drops handshakes in progress and resolves', async () => {
    const bob = await TransportLayer.listen(parseListenSpec('tls:127.0.0.1:0', { allowTls: true }), { tls: { certificate: certs.good.cert, key: certs.good.key } });
    const silent = await rawTcpClient(portOf(bob, 'tls'));
    await within(bob.close(), 5000, 'close with a handshake pending');
    await within(silent.closed, 5000, 'pending client dropped');
  });

  it.skipIf(!hasIpv6)('works over IPv6 loopback, checking the iPAddress SAN ::1', async () => {
    const bob = await tlsServer(certs.good, {}, '::1');
    const alice = await tlsClient([certs.good]);
    const atBob = nextEvent(bob, 'message');
    const sent = await alice.send(sipMessage('v6'), { transport: 'tls', address: '::1', port: portOf(bob, 'tls') });
    expect(sent.tls?.serverName).toBe('::1');
    expect((await atBob).remote.address).toBe('::1');
  });
});

// ---------------------------------------------------------------- keep-alive (RFC 5626 §4.4.1)

describe('FlowKeepalive state machine', () => {
  it('pings after 80-100% of the interval, drawn anew each time', () => {
    const draws = [0, 0.5, 0.999];
    const machine = new FlowKeepalive({ intervalMs: 100_000, random: () => draws.shift() ?? 0 }, 1000);
    expect(machine.deadline).toBe(1000 + 80_000);
    expect(machine.onTimer(80_999)).toBeUndefined(); // early: nothing
    expect(machine.onTimer(81_000)).toBe('send-ping');
    expect(machine.awaitingPong).toBe(true);
    expect(machine.deadline).toBe(91_000); // pong timeout: 10 s
    machine.onPong(81_050);
    expect(machine.deadline).toBe(81_000 + 90_000); // 80% + 0.5 * 20%
    expect(machine.onTimer(171_000)).toBe('send-ping');
    machine.onPong(171_010);
    expect(machine.deadline).toBeCloseTo(171_000 + 99_980, 6);
  });

  it('fails the flow when no pong comes within 10 s, and only then', () => {
    const machine = new FlowKeepalive({ intervalMs: 30_000, random: () => 1 }, 0);
    expect(machine.onTimer(30_000)).toBe('send-ping');
    expect(machine.onTimer(39_999)).toBeUndefined();
    expect(machine.onTimer(40_000)).toBe('flow-failed');
    expect(machine.failed).toBe(true);
    expect(machine.deadline).toBeUndefined();
    expect(machine.onTimer(100_000)).toBeUndefined();
  });

  it('keeps one ping outstanding, ignores unasked pongs, and waits for a late pong before the next ping', () => {
    const machine = new FlowKeepalive({ intervalMs: 5000, pongTimeoutMs: 10_000, random: () => 0 }, 0);
    machine.onPong(100); // not asked for
    expect(machine.deadline).toBe(4000);
    expect(machine.onTimer(4000)).toBe('send-ping');
    machine.onPong(12_000); // after the next ping would have been due (8000)
    expect(machine.deadline).toBe(12_000);
    expect(machine.onTimer(12_000)).toBe('send-ping');
    machine.stop();
    expect(machine.deadline).toBeUndefined();
    expect(machine.onTimer(50_000)).toBeUndefined();
  });

  it('refuses a non-positive interval or timeout', () => {
    expect(() => new FlowKeepalive({ intervalMs: 0 }, 0)).toThrow(RangeError);
    expect(() => new FlowKeepalive({ intervalMs: 1000, pongTimeoutMs: -1 }, 0)).toThrow(RangeError);
  });
});

describe('StreamFramer.awaitPong (pongs in a row)', () => {
  it('reads consecutive lone CRLFs as pongs while our ping awaits one', () => {
    const framer = new StreamFramer();
    framer.awaitPong();
    expect(framer.push(Buffer.from('\r\n'))).toEqual([{ type: 'keepalive-pong' }]);
    framer.awaitPong();
    expect(framer.push(Buffer.from('\r\n'))).toEqual([{ type: 'keepalive-pong' }]);
    // A pong glued to a message, and a real ping, still read as before.
    framer.awaitPong();
    expect(framer.push(Buffer.concat([Buffer.from('\r\n'), okResponse('p')])).map((e) => e.type)).toEqual(['keepalive-pong', 'message']);
    expect(framer.push(Buffer.from('\r\n\r\n'))).toEqual([{ type: 'keepalive-ping' }]);
  });

  it('without the hint, keeps favouring a ping split across segments', () => {
    const framer = new StreamFramer();
    expect(framer.push(Buffer.from('\r\n'))).toEqual([{ type: 'keepalive-pong' }]);
    expect(framer.push(Buffer.from('\r\n'))).toEqual([{ type: 'keepalive-ping' }]);
  });
});

describe('keep-alive over TLS', () => {
  it('pings on the clock, the server pongs, and the flow stays up', async () => {
    const clock = new ManualClock();
    const bob = await tlsServer(certs.good);
    const alice = await tlsClient([certs.good], { clock, random: () => 0 });
    const flow = await alice.connect({ transport: 'tls', address: '127.0.0.1', port: portOf(bob, 'tls'), serverName: 'example.test' });
    const failures = collect(alice, 'flow-failed');
    const pings = collect(bob, 'keepalive');
    expect(alice.startKeepalive(flow.connectionId, { intervalMs: 30_000 })).toBe(true);
    expect(clock.pendingTimers).toBe(1);

    clock.advance(23_999); // the first ping is due at 80% of 30 s
    expect(clock.pendingTimers).toBe(1);
    const pong = nextEvent(alice, 'keepalive', (k) => k.kind === 'pong');
    clock.advance(1);
    expect(await pong).toMatchObject({ kind: 'pong', transport: 'tls', connectionId: flow.connectionId });
    expect(pings).toEqual([expect.objectContaining({ kind: 'ping', transport: 'tls' })]);

    // After the pong, the 10 s deadline is gone; the next ping follows 24 s after the first.
    clock.advance(10_000);
    expect(failures).toHaveLength(0);
    const secondPong = nextEvent(alice, 'keepalive', (k) => k.kind === 'pong');
    clock.advance(14_000);
    await secondPong;
    expect(pings).toHaveLength(2);
    expect(failures).toHaveLength(0);

    // Stopping ends the timers; a local close then is not a flow failure.
    expect(alice.stopKeepalive(flow.connectionId)).toBe(true);
    expect(clock.pendingTimers).toBe(0);
    expect(alice.startKeepalive(flow.connectionId, { intervalMs: 30_000 })).toBe(true);
    await alice.closeConnection(flow.connectionId);
    expect(failures).toHaveLength(0);
    expect(clock.pendingTimers).toBe(0);
    expect(alice.startKeepalive(flow.connectionId, { intervalMs: 30_000 })).toBe(false);
  });

  it('reports a failed flow when the peer stops answering pings, and closes it', async () => {
    const clock = new ManualClock();
    let answered = 0;
    const peer = await rawTlsPeer(certs.good, (socket, chunk) => {
      if (chunk.toString('latin1') === '\r\n\r\n' && answered++ === 0) socket.write('\r\n'); // answers only the first ping
    });
    const alice = await tlsClient([certs.good], { clock, random: () => 1 });
    const flow = await alice.connect({ transport: 'tls', address: '127.0.0.1', port: peer.port, serverName: 'example.test' });
    const failures = collect(alice, 'flow-failed');
    alice.startKeepalive(flow.connectionId, { intervalMs: 20_000 });

    const pong = nextEvent(alice, 'keepalive', (k) => k.kind === 'pong');
    clock.advance(20_000);
    await peer.waitForCount('\r\n\r\n', 1);
    await pong;

    clock.advance(20_000); // second ping: no answer this time
    await peer.waitForCount('\r\n\r\n', 2);
    clock.advance(9_999);
    expect(failures).toHaveLength(0);
    const closed = nextEvent(alice, 'connection-close');
    clock.advance(1);
    expect(failures).toEqual([expect.objectContaining({ reason: 'no-pong', connection: expect.objectContaining({ connectionId: flow.connectionId }) })]);
    expect((await closed).reason).toBe('keepalive-timeout');
    expect(alice.connections()).toHaveLength(0);
    expect(failures).toHaveLength(1); // the close is not reported a second time
  });

  it('reports a failed flow when the connection closes under it', async () => {
    const clock = new ManualClock();
    const peer = await rawTlsPeer(certs.good);
    const alice = await tlsClient([certs.good], { clock });
    const flow = await alice.connect({ transport: 'tls', address: '127.0.0.1', port: peer.port, serverName: 'example.test' });
    alice.startKeepalive(flow.connectionId, { intervalMs: 60_000 });
    const failed = nextEvent(alice, 'flow-failed');
    await peer.waitForSockets(1);
    peer.sockets[0]!.destroy();
    expect(await failed).toMatchObject({ reason: 'connection-closed', detail: 'peer-closed' });
    expect(clock.pendingTimers).toBe(0);
  });

  it('keeps a TCP flow alive the same way', async () => {
    const clock = new ManualClock();
    const bob = await listen('tcp:127.0.0.1:0');
    const alice = await listen('tcp:127.0.0.1:0', { clock, random: () => 0.5 });
    const flow = await alice.connect({ address: '127.0.0.1', port: portOf(bob, 'tcp') });
    alice.startKeepalive(flow.connectionId, { intervalMs: 10_000 });
    const pong = nextEvent(alice, 'keepalive', (k) => k.kind === 'pong');
    clock.advance(9000);
    expect(await pong).toMatchObject({ transport: 'tcp', connectionId: flow.connectionId });
  });
});
