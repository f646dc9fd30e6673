/**
 * The server deployment (deploy/kamailio) proven end to end on 127.0.0.1: each test starts a
 * fresh Kamailio from this repository's kamailio.cfg + users.sh (test/support/kamailio.ts) and
 * talks to it with SIPp (Debian sip-tester) and with small Node sockets that build SIP by hand
 * and compute digest responses with node:crypto (an implementation independent of ours).
 *
 * Proven: registrar with digest auth (RFC 3261 §22: 401, qop=auth; wrong password → 401 again;
 * foreign auth user → 403), proxy auth of MESSAGE (407), relay to the registered contact over
 * UDP and TCP, msilo store-and-forward (202, RFC 3428 §7) delivered on the next REGISTER with the
 * body byte-identical (SQLite BLOB, add_date 0), delivery over a client's own TCP and TLS
 * connection (flow reuse), the TLS certificate, and the SHA-256 switch (RFC 8760).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as tcpConnect, createServer, Socket as TcpSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { startKamailio, type KamailioOptions, type RunningKamailio } from '../support/kamailio.js';
import { exitWithin, freePort, start, stopAll, type Tracked } from '../support/processes.js';

const SCENARIOS = fileURLToPath(new URL('./sipp/', import.meta.url));
const USERS = [
  { user: 'alice', password: 'secret1' },
  { user: 'bob', password: 'secret2' },
];

// ---------------------------------------------------------------------------------------------
// Per-test resources: every Kamailio, process, socket and temp dir is released in afterEach.

const servers: RunningKamailio[] = [];
const peers: SipPeer[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await stopAll();
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
  await Promise.all(servers.splice(0).map((server) => server.stop()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function kamailio(options: Partial<KamailioOptions> = {}): Promise<RunningKamailio> {
  const server = await startKamailio({ users: USERS, ...options });
  servers.push(server);
  return server;
}

function workDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sipnote-kamdeploy-'));
  dirs.push(dir);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// SIPp

type SippTransport = 'u1' | 't1';

function sipp(args: readonly string[], dir: string): Tracked {
  return start('sipp', [...args, '-nostdin', '-timeout', '15s', '-timeout_error'], { cwd: dir });
}

/** Bob's UAS: receives one MESSAGE, answers 200, logs RECEIVED-BODY:/RECEIVED-FROM: to uas.log. */
async function startBobUas(dir: string, transport: SippTransport): Promise<{ port: number; proc: Tracked }> {
  const port = await freePort();
  const proc = sipp(
    ['-sf', join(SCENARIOS, 'uas_message.xml'), '-i', '127.0.0.1', '-p', String(port), '-t', transport, '-m', '1',
      '-trace_logs', '-log_file', join(dir, 'uas.log'), '-trace_msg', '-message_file', join(dir, 'uas.msgs')],
    dir,
  );
  await portTaken(port, transport === 'u1' ? 'udp' : 'tcp', proc);
  return { port, proc };
}

/** sipp prints no "ready" line: wait until its socket holds the port (a bind attempt fails). */
async function portTaken(port: number, protocol: 'udp' | 'tcp', proc: Tracked, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`sipp exited early: ${proc.stdout()} ${proc.stderr()}`);
    if (!(await canBind(port, protocol))) return;
    if (Date.now() > deadline) throw new Error(`nothing bound ${protocol} port ${port} within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function canBind(port: number, protocol: 'udp' | 'tcp'): Promise<boolean> {
  return new Promise((resolve) => {
    if (protocol === 'udp') {
      const socket = createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
    } else {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    }
  });
}

async function sippRegister(server: RunningKamailio, dir: string, transport: SippTransport, contact: string, password = 'secret2'): Promise<number | string> {
  const proc = sipp(
    [`127.0.0.1:${server.udpPort}`, '-sf', join(SCENARIOS, 'uac_register.xml'), '-key', 'user', 'bob', '-key', 'dom', server.domain,
      '-key', 'contact', contact, '-key', 'expires', '600', '-au', 'bob', '-ap', password,
      '-i', '127.0.0.1', '-p', String(await freePort()), '-t', transport, '-m', '1',
      '-trace_logs', '-log_file', join(dir, 'register.log')],
    dir,
  );
  return exitWithin(proc);
}

async function sippAliceMessage(server: RunningKamailio, dir: string, transport: SippTransport, text: string): Promise<number | string> {
  const proc = sipp(
    [`127.0.0.1:${server.udpPort}`, '-sf', join(SCENARIOS, 'uac_message_via_proxy.xml'), '-key', 'user', 'alice', '-key', 'dom', server.domain,
      '-key', 'to', 'bob', '-key', 'text', text, '-au', 'alice', '-ap', 'secret1',
      '-i', '127.0.0.1', '-p', String(await freePort()), '-t', transport, '-m', '1',
      '-trace_logs', '-log_file', join(dir, 'alice.log')],
    dir,
  );
  return exitWithin(proc);
}

const readLog = (dir: string, name: string): string => readFileSync(join(dir, name), 'utf8');

// ---------------------------------------------------------------------------------------------
// A minimal SIP peer over a Node socket: hand-built requests, Content-Length framing on streams.

interface SipMessage {
  readonly startLine: string;
  /** Lower-case header name → values in order. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  readonly body: Buffer;
}

const header = (message: SipMessage, name: string): string | undefined => message.headers.get(name.toLowerCase())?.[0];
const statusOf = (message: SipMessage): number => Number(/^SIP\/2\.0 (\d{3})/.exec(message.startLine)?.[1] ?? NaN);
const methodOf = (message: SipMessage): string | undefined => /^([A-Z]+) \S+ SIP\/2\.0$/.exec(message.startLine)?.[1];

const COMPACT: Record<string, string> = { v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact', l: 'content-length', c: 'content-type' };

function parseHead(head: string): { startLine: string; headers: Map<string, string[]> } {
  const lines = head.split('\r\n');
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const raw = line.slice(0, colon).trim().toLowerCase();
    const name = COMPACT[raw] ?? raw;
    headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
  }
  return { startLine: lines[0] ?? '', headers };
}

type PeerTransport = 'UDP' | 'TCP' | 'TLS';

class SipPeer {
  private readonly inbox: SipMessage[] = [];
  private waiters: Array<() => void> = [];
  private streamBuffer = Buffer.alloc(0);
  private closedFlag = false;

  private constructor(
    readonly transport: PeerTransport,
    readonly localPort: number,
    private readonly remotePort: number,
    private readonly udp: UdpSocket | undefined,
    private readonly stream: TcpSocket | TLSSocket | undefined,
  ) {
    udp?.on('message', (data) => this.deliver(data));
    stream?.on('data', (data: Buffer) => this.onStreamData(data));
    stream?.on('close', () => {
      this.closedFlag = true;
      this.wake();
    });
    stream?.on('error', () => undefined);
  }

  static async udp(remotePort: number): Promise<SipPeer> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const peer = new SipPeer('UDP', socket.address().port, remotePort, socket, undefined);
    peers.push(peer);
    return peer;
  }

  static async tcp(remotePort: number): Promise<SipPeer> {
    const socket = tcpConnect({ host: '127.0.0.1', port: remotePort });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const peer = new SipPeer('TCP', socket.localPort ?? 0, remotePort, undefined, socket);
    peers.push(peer);
    return peer;
  }

  static async tls(remotePort: number, caPem: string, servername: string): Promise<{ peer: SipPeer; socket: TLSSocket }> {
    const socket = tlsConnect({ host: '127.0.0.1', port: remotePort, ca: caPem, servername });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const peer = new SipPeer('TLS', socket.localPort ?? 0, remotePort, undefined, socket);
    peers.push(peer);
    return { peer, socket };
  }

  send(data: Buffer): void {
    if (this.udp) this.udp.send(data, this.remotePort, '127.0.0.1');
    else this.stream?.write(data);
  }

  /** The next unread message that satisfies `match` (it is removed from the inbox). */
  async next(match: (message: SipMessage) => boolean, ms = 5000): Promise<SipMessage> {
    const deadline = Date.now() + ms;
    for (;;) {
      const index = this.inbox.findIndex(match);
      if (index >= 0) return this.inbox.splice(index, 1)[0] as SipMessage;
      const left = deadline - Date.now();
      if (left <= 0 || this.closedFlag) {
        throw new Error(`no matching SIP message within ${ms} ms; inbox: ${this.inbox.map((m) => m.startLine).join(' | ')}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    if (this.udp) {
      const udp = this.udp;
      this.udp.removeAllListeners('message');
      return new Promise((resolve) => {
        try {
          udp.close(() => resolve());
        } catch {
          resolve(); // already closed
        }
      });
    }
    // a graceful close (FIN both ways), so the far end has dropped the connection when this resolves
    const stream = this.stream;
    if (!stream || stream.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => stream.destroy(), 2000);
      stream.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      stream.end();
    });
  }

  /** Drops a TCP connection with a RST (no TIME_WAIT: the local port is free at once). */
  abort(): Promise<void> {
    const stream = this.stream;
    if (!(stream instanceof TcpSocket) || stream.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      stream.once('close', () => resolve());
      stream.resetAndDestroy();
    });
  }

  private onStreamData(data: Buffer): void {
    this.streamBuffer = Buffer.concat([this.streamBuffer, data]);
    for (;;) {
      // CRLF keep-alives between messages (RFC 5626 §3.5.1)
      while (this.streamBuffer.subarray(0, 2).toString('latin1') === '\r\n') this.streamBuffer = this.streamBuffer.subarray(2);
      const end = this.streamBuffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const { headers } = parseHead(this.streamBuffer.subarray(0, end).toString('latin1'));
      const length = Number(headers.get('content-length')?.[0] ?? 0);
      if (this.streamBuffer.length < end + 4 + length) return;
      this.deliver(this.streamBuffer.subarray(0, end + 4 + length));
      this.streamBuffer = this.streamBuffer.subarray(end + 4 + length);
    }
  }

  private deliver(data: Buffer): void {
    const end = data.indexOf('\r\n\r\n');
    if (end < 0) return;
    const { startLine, headers } = parseHead(data.subarray(0, end).toString('latin1'));
    this.inbox.push({ startLine, headers, body: Buffer.from(data.subarray(end + 4)) });
    this.wake();
  }

  private wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }
}

// ---------------------------------------------------------------------------------------------
// Requests and digest (RFC 3261 §22.4 with RFC 2617 qop=auth; RFC 8760 SHA-256)

interface RequestSpec {
  readonly method: 'REGISTER' | 'MESSAGE' | 'OPTIONS';
  readonly uri: string;
  readonly from: string;
  readonly to: string;
  readonly callId: string;
  readonly cseq: number;
  readonly contact?: string;
  readonly expires?: number;
  readonly authorization?: readonly [string, string];
  readonly contentType?: string;
  readonly body?: Buffer;
}

function buildRequest(peer: SipPeer, spec: RequestSpec, sentByPort = peer.localPort): Buffer {
  const body = spec.body ?? Buffer.alloc(0);
  const lines = [
    `${spec.method} ${spec.uri} SIP/2.0`,
    `Via: SIP/2.0/${peer.transport} 127.0.0.1:${sentByPort};rport;branch=z9hG4bK${randomBytes(8).toString('hex')}`,
    'Max-Forwards: 70',
    `From: <${spec.from}>;tag=${spec.callId.slice(0, 8)}`,
    `To: <${spec.to}>`,
    `Call-ID: ${spec.callId}`,
    `CSeq: ${spec.cseq} ${spec.method}`,
  ];
  if (spec.contact) lines.push(`Contact: <${spec.contact}>`);
  if (spec.expires !== undefined) lines.push(`Expires: ${spec.expires}`);
  if (spec.authorization) lines.push(`${spec.authorization[0]}: ${spec.authorization[1]}`);
  if (spec.contentType) lines.push(`Content-Type: ${spec.contentType}`);
  lines.push(`Content-Length: ${body.length}`, '', '');
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), body]);
}

function challengeParams(value: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const match of value.replace(/^Digest\s+/i, '').matchAll(/([a-zA-Z-]+)=("([^"]*)"|[^,\s]+)/g)) {
    params.set((match[1] ?? '').toLowerCase(), match[3] ?? match[2] ?? '');
  }
  return params;
}

function digestResponse(challenge: string, method: string, uri: string, user: string, password: string): string {
  const params = challengeParams(challenge);
  const algorithm = params.get('algorithm') ?? 'MD5';
  const hash = (text: string): string => createHash(algorithm.toUpperCase() === 'SHA-256' ? 'sha256' : 'md5').update(text).digest('hex');
  const realm = params.get('realm') ?? '';
  const nonce = params.get('nonce') ?? '';
  const cnonce = randomBytes(8).toString('hex');
  const nc = '00000001';
  const ha1 = hash(`${user}:${realm}:${password}`);
  const ha2 = hash(`${method}:${uri}`);
  const qop = params.get('qop')?.split(',').map((q) => q.trim()).includes('auth') ? 'auth' : undefined;
  const response = qop ? hash(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`) : hash(`${ha1}:${nonce}:${ha2}`);
  const parts = [`username="${user}"`, `realm="${realm}"`, `nonce="${nonce}"`, `uri="${uri}"`, `response="${response}"`, `algorithm=${algorithm}`];
  if (qop) parts.push(`qop=${qop}`, `nc=${nc}`, `cnonce="${cnonce}"`);
  const opaque = params.get('opaque');
  if (opaque !== undefined) parts.push(`opaque="${opaque}"`);
  return `Digest ${parts.join(', ')}`;
}

/** Sends a request; answers one 401/407 with (authUser, password); returns every response's status and the last response. */
async function requestWithAuth(
  peer: SipPeer,
  spec: Omit<RequestSpec, 'cseq' | 'authorization'>,
  credentials: { readonly user: string; readonly password: string },
  sentByPort?: number,
): Promise<{ statuses: number[]; challenge: string | undefined; final: SipMessage }> {
  const statuses: number[] = [];
  const awaitFinal = async (cseq: number): Promise<SipMessage> => {
    const response = await peer.next((m) => statusOf(m) >= 200 && header(m, 'call-id') === spec.callId && header(m, 'cseq') === `${cseq} ${spec.method}`);
    statuses.push(statusOf(response));
    return response;
  };
  peer.send(buildRequest(peer, { ...spec, cseq: 1 }, sentByPort));
  const first = await awaitFinal(1);
  const status = statusOf(first);
  if (status !== 401 && status !== 407) return { statuses, challenge: undefined, final: first };
  const challenge = header(first, status === 401 ? 'www-authenticate' : 'proxy-authenticate') ?? '';
  const authorization = digestResponse(challenge, spec.method, spec.uri, credentials.user, credentials.password);
  peer.send(buildRequest(peer, { ...spec, cseq: 2, authorization: [status === 401 ? 'Authorization' : 'Proxy-Authorization', authorization] }, sentByPort));
  return { statuses, challenge, final: await awaitFinal(2) };
}

function register(
  peer: SipPeer,
  server: RunningKamailio,
  options: { user: string; password: string; contact: string; authUser?: string; expires?: number; sentByPort?: number },
): ReturnType<typeof requestWithAuth> {
  const aor = `sip:${options.user}@${server.domain}`;
  return requestWithAuth(
    peer,
    { method: 'REGISTER', uri: `sip:${server.domain}`, from: aor, to: aor, callId: `reg-${randomBytes(6).toString('hex')}`, contact: options.contact, expires: options.expires ?? 600 },
    { user: options.authUser ?? options.user, password: options.password },
    options.sentByPort,
  );
}

function sendMessage(
  peer: SipPeer,
  server: RunningKamailio,
  options: { from: string; to: string; password: string; authUser?: string; body: Buffer; contentType: string },
): ReturnType<typeof requestWithAuth> {
  return requestWithAuth(
    peer,
    { method: 'MESSAGE', uri: options.to, from: options.from, to: options.to, callId: `msg-${randomBytes(6).toString('hex')}`, contentType: options.contentType, body: options.body },
    { user: options.authUser ?? /^sip:([^@]+)@/.exec(options.from)?.[1] ?? '', password: options.password },
  );
}

/** Answers a received request with a final response on the same transport. */
function reply(peer: SipPeer, request: SipMessage, status: number, reason: string): void {
  const lines = [`SIP/2.0 ${status} ${reason}`];
  for (const via of request.headers.get('via') ?? []) lines.push(`Via: ${via}`);
  lines.push(`From: ${header(request, 'from')}`, `To: ${header(request, 'to')};tag=bob${randomBytes(4).toString('hex')}`,
    `Call-ID: ${header(request, 'call-id')}`, `CSeq: ${header(request, 'cseq')}`, 'Content-Length: 0', '', '');
  peer.send(Buffer.from(lines.join('\r\n'), 'latin1'));
}

const isMessage = (m: SipMessage): boolean => methodOf(m) === 'MESSAGE';

function storedBodies(server: RunningKamailio): Buffer[] {
  const db = new Database(server.dbPath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT body FROM silo ORDER BY id').all() as Array<{ body: Buffer }>).map((row) => row.body);
  } finally {
    db.close();
  }
}

// =============================================================================================

describe('registrar (REGISTER with digest auth)', () => {
  it('challenges with 401 (realm = domain, qop=auth) and accepts the right password with 200 (sipp)', async () => {
    const server = await kamailio();
    const dir = workDir();
    expect(await sippRegister(server, dir, 'u1', '127.0.0.1:5999')).toBe(0);
    const log = readLog(dir, 'register.log');
    expect(log).toMatch(/CHALLENGE:\s*Digest realm="example\.test", nonce="[^"]+", qop="auth"/);
    expect(log).toMatch(/REGISTERED contact=.*sip:bob@127\.0\.0\.1:5999/);
  });

  it('re-challenges a wrong password (401), refuses a foreign auth user (403) and, in test mode, a non-loopback Contact (403)', async () => {
    const server = await kamailio();
    const peer = await SipPeer.udp(server.udpPort);
    const contact = `sip:bob@127.0.0.1:${peer.localPort}`;

    const wrong = await register(peer, server, { user: 'bob', password: 'not-secret2', contact });
    expect(wrong.statuses).toEqual([401, 401]);

    const impostor = await register(peer, server, { user: 'bob', authUser: 'alice', password: 'secret1', contact });
    expect(impostor.statuses).toEqual([401, 403]);

    const offBox = await register(peer, server, { user: 'bob', password: 'secret2', contact: 'sip:bob@192.0.2.1:5060' });
    expect(offBox.statuses).toEqual([401, 403]);

    const right = await register(peer, server, { user: 'bob', password: 'secret2', contact });
    expect(right.statuses).toEqual([401, 200]);
    expect(header(right.final, 'contact')).toContain(contact);
  });

  it('WITH_SHA256: challenges with algorithm=SHA-256 and accepts a SHA-256 digest (RFC 8760)', async () => {
    const server = await kamailio({ defines: ['WITH_SHA256'] });
    const peer = await SipPeer.udp(server.udpPort);
    const result = await register(peer, server, { user: 'bob', password: 'secret2', contact: `sip:bob@127.0.0.1:${peer.localPort}` });
    expect(result.challenge).toMatch(/algorithm=SHA-256/);
    expect(result.statuses).toEqual([401, 200]);
    const wrong = await register(peer, server, { user: 'bob', password: 'wrong', contact: `sip:bob@127.0.0.1:${peer.localPort}` });
    expect(wrong.statuses).toEqual([401, 401]);
  });

  it('WITH_STRICT_DIGEST_URI: refuses credentials whose digest uri is not the Request-URI (sipp\'s), accepts ours', async () => {
    const server = await kamailio({ defines: ['WITH_STRICT_DIGEST_URI'] });
    const dir = workDir();
    // sipp answers with uri="sip:127.0.0.1:<port>" for Request-URI sip:example.test: a 400 fails its call
    expect(await sippRegister(server, dir, 'u1', '127.0.0.1:5999')).toBe(1);
    const peer = await SipPeer.udp(server.udpPort);
    const result = await register(peer, server, { user: 'bob', password: 'secret2', contact: `sip:bob@127.0.0.1:${peer.localPort}` });
    expect(result.statuses).toEqual([401, 200]);
  });
});

describe.each([
  ['UDP', 'u1'],
  ['TCP', 't1'],
] as const)('MESSAGE relay over %s (sipp alice -> Kamailio -> sipp bob)', (_name, transport) => {
  it('alice answers 407, the MESSAGE reaches bob\'s registered UAS and his 200 comes back', async () => {
    const server = await kamailio();
    const dir = workDir();
    const bob = await startBobUas(dir, transport);
    expect(await sippRegister(server, dir, transport, `127.0.0.1:${bob.port}`)).toBe(0);

    const text = `Grüße, bob ✓ over ${transport}`;
    expect(await sippAliceMessage(server, dir, transport, text)).toBe(0);
    const aliceLog = readLog(dir, 'alice.log');
    expect(aliceLog).toMatch(/CHALLENGE:\s*Digest realm="example\.test", nonce="[^"]+", qop="auth"/);
    expect(aliceLog).toContain('FINAL:200');

    expect(await exitWithin(bob.proc)).toBe(0);
    const uasLog = readLog(dir, 'uas.log');
    expect(uasLog).toContain(`RECEIVED-BODY:${text}`);
    expect(uasLog).toMatch(/RECEIVED-FROM:\s*<sip:alice@example\.test>/);
    // relayed, not regenerated: Kamailio removed alice's credentials before forwarding
    expect(readLog(dir, 'uas.msgs')).not.toMatch(/Proxy-Authorization:/i);
  });
});

describe('offline store-and-forward (msilo, SQLite)', () => {
  it('answers 202 for offline bob and delivers the stored text, unprefixed (add_date 0), when his UAS registers (sipp)', async () => {
    const server = await kamailio();
    const dir = workDir();
    const text = 'while you were away: "quotes", back\\slash; colons: and ünïcode ✓';
    expect(await sippAliceMessage(server, dir, 'u1', text)).toBe(0);
    expect(readLog(dir, 'alice.log')).toContain('FINAL:202');
    expect(storedBodies(server).map((body) => body.toString('utf8'))).toEqual([`${text}\r\n`]);

    const bob = await startBobUas(dir, 'u1');
    expect(await sippRegister(server, dir, 'u1', `127.0.0.1:${bob.port}`)).toBe(0);
    expect(await exitWithin(bob.proc)).toBe(0);
    // msilo prefixes "[Offline message - <date>] " to text/plain bodies unless add_date is 0
    expect(readLog(dir, 'uas.log')).toContain(`RECEIVED-BODY:${text}`);
  });

  it('keeps a binary body byte for byte (BLOB) and adds a Date header with the storage time', async () => {
    const server = await kamailio();
    const alice = await SipPeer.udp(server.udpPort);
    // every byte value, NULs and a bare CRLFCRLF included: what an S/MIME (DER) body looks like to msilo
    const body = Buffer.concat([Buffer.from([0x30, 0x82, 0x00, 0x00]), Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from('\r\n\r\n\0end')]);
    const sent = await sendMessage(alice, server, {
      from: 'sip:alice@example.test', to: 'sip:bob@example.test', password: 'secret1',
      body, contentType: 'application/pkcs7-mime;smime-type=enveloped-data;name=smime.p7m',
    });
    expect(sent.statuses).toEqual([407, 202]);
    expect(storedBodies(server)).toEqual([body]);

    const bob = await SipPeer.udp(server.udpPort);
    const registered = register(bob, server, { user: 'bob', password: 'secret2', contact: `sip:bob@127.0.0.1:${bob.localPort}` });
    const delivered = await bob.next(isMessage);
    reply(bob, delivered, 200, 'OK');
    expect((await registered).statuses).toEqual([401, 200]);

    expect(delivered.body.equals(body)).toBe(true);
    expect(header(delivered, 'from')).toMatch(/^<sip:alice@example\.test>/);
    expect(header(delivered, 'date')).toMatch(/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    // known msilo limitation: parameters of Content-Type are not kept
    expect(header(delivered, 'content-type')).toBe('application/pkcs7-mime');
  });
  it('stores a message while another process holds the database a moment (db_sqlite has no busy timeout; route[STORE] tries again)', async () => {
    const server = await kamailio();
    const alice = await SipPeer.udp(server.udpPort);
    // A real SQLite lock from a second connection, as m_dump's read or msilo's sweep takes one.
    const other = new Database(server.dbPath);
    try {
      other.exec('BEGIN IMMEDIATE'); // the write lock: Kamailio can still read (the digest check), not write
      const sent = sendMessage(alice, server, { from: 'sip:alice@example.test', to: 'sip:bob@example.test', password: 'secret1', body: Buffer.from('held up'), contentType: 'text/plain' });
      // Released once Kamailio's write has met it (db_sqlite logs the failed commit).
      await server.waitForLog((line) => line.includes('database is locked'), 10_000);
      other.exec('COMMIT');
      expect((await sent).statuses).toEqual([407, 202]);
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
    }
    expect(storedBodies(server).map((body) => body.toString('utf8'))).toEqual(['held up']);
  });
});

describe('MESSAGE policy', () => {
  it('re-challenges a wrong password (407), refuses a foreign auth user (403), an unknown callee (404) and a foreign sender (403)', async () => {
    const server = await kamailio();
    const alice = await SipPeer.udp(server.udpPort);
    const body = Buffer.from('hi');
    const base = { from: 'sip:alice@example.test', to: 'sip:bob@example.test', body, contentType: 'text/plain' };

    expect((await sendMessage(alice, server, { ...base, password: 'wrong' })).statuses).toEqual([407, 407]);
    expect((await sendMessage(alice, server, { ...base, authUser: 'bob', password: 'secret2' })).statuses).toEqual([407, 403]);
    expect((await sendMessage(alice, server, { ...base, to: 'sip:nobody@example.test', password: 'secret1' })).statuses).toEqual([407, 404]);
    // without WITH_FEDERATION the server only serves its own users
    expect((await sendMessage(alice, server, { ...base, from: 'sip:mallory@elsewhere.test', password: 'x' })).statuses).toEqual([403]);
    expect((await sendMessage(alice, server, { ...base, to: 'sip:carol@elsewhere.test', password: 'secret1' })).statuses).toEqual([407, 403]);
  });
});

describe('flows: delivery over the connection the client registered on', () => {
  it('TCP: bob\'s Contact names a port nobody listens on, yet the MESSAGE arrives over his connection; once it is closed, messages are stored (202) and delivered on his next REGISTER', async () => {
    const server = await kamailio();
    const dir = workDir();
    const deadPort = await freePort(); // bob's "listening" port: nobody is there
    const contact = `sip:bob@127.0.0.1:${deadPort};transport=tcp`;

    const bob = await SipPeer.tcp(server.tcpPort);
    expect((await register(bob, server, { user: 'bob', password: 'secret2', contact, sentByPort: deadPort })).statuses).toEqual([401, 200]);

    const sending = sippAliceMessage(server, dir, 'u1', 'over your own connection');
    const relayed = await bob.next(isMessage);
    reply(bob, relayed, 200, 'OK');
    expect(await sending).toBe(0);
    expect(readLog(dir, 'alice.log')).toContain('FINAL:200');
    expect(relayed.startLine).toBe(`MESSAGE ${contact} SIP/2.0`);
    expect(relayed.body.toString('utf8')).toBe('over your own connection\r\n');

    // the flow is gone: Kamailio must not connect to bob's old ephemeral port (whoever holds it
    // now is not bob), it stores the message instead
    await bob.abort();
    const stranger = createServer();
    let strangerConnections = 0;
    stranger.on('connection', (socket) => {
      strangerConnections++;
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => stranger.once('error', reject).listen(bob.localPort, '127.0.0.1', resolve));
    const dir2 = workDir();
    try {
      expect(await sippAliceMessage(server, dir2, 'u1', 'stored for the next flow')).toBe(0);
    } finally {
      await new Promise((resolve) => stranger.close(resolve));
    }
    expect(readLog(dir2, 'alice.log')).toContain('FINAL:202');
    expect(strangerConnections).toBe(0);

    const bobAgain = await SipPeer.tcp(server.tcpPort);
    const registered = register(bobAgain, server, { user: 'bob', password: 'secret2', contact, sentByPort: deadPort });
    const dumped = await bobAgain.next(isMessage);
    reply(bobAgain, dumped, 200, 'OK');
    expect((await registered).statuses).toEqual([401, 200]);
    expect(dumped.body.toString('utf8')).toBe('stored for the next flow\r\n');
  });

  it('TLS: presents the certificate for the domain and 127.0.0.1, answers OPTIONS, and delivers to bob over his TLS connection', async () => {
    const server = await kamailio({ tls: true });
    expect(server.tlsPort).toBeTypeOf('number');
    const tlsPort = server.tlsPort ?? 0;
    const caPem = server.caCertPem ?? '';

    // node:tls verified the chain against caPem and the name against the SAN (servername)
    const { peer: bob, socket } = await SipPeer.tls(tlsPort, caPem, 'example.test');
    expect(socket.authorized).toBe(true);
    const certificate = socket.getPeerCertificate();
    expect(certificate.subject.CN).toBe('example.test');
    expect(certificate.subjectaltname).toContain('DNS:example.test');
    expect(certificate.subjectaltname).toContain('IP Address:127.0.0.1');

    bob.send(buildRequest(bob, { method: 'OPTIONS', uri: `sip:127.0.0.1:${tlsPort};transport=tls`, from: 'sip:bob@example.test', to: `sip:127.0.0.1:${tlsPort}`, callId: 'tls-options', cseq: 1 }));
    const options = await bob.next((m) => header(m, 'call-id') === 'tls-options');
    expect(statusOf(options)).toBe(200);
    expect(header(options, 'allow')).toContain('MESSAGE');

    const contact = `sip:bob@127.0.0.1:${bob.localPort};transport=tls`;
    expect((await register(bob, server, { user: 'bob', password: 'secret2', contact })).statuses).toEqual([401, 200]);

    const dir = workDir();
    const sending = sippAliceMessage(server, dir, 't1', 'secret over TLS');
    const relayed = await bob.next(isMessage);
    reply(bob, relayed, 200, 'OK');
    expect(await sending).toBe(0);
    expect(readLog(dir, 'alice.log')).toContain('FINAL:200');
    expect(relayed.body.toString('utf8')).toBe('secret over TLS\r\n');
    expect(header(relayed, 'via')).toMatch(/^SIP\/2\.0\/TLS 127\.0\.0\.1:/);
  });
});
