/**
 * Our Digest credentials checked by an independent verifier: SIPp's `<verifyauth>` (MD5,
 * qop=auth) in sipp/uas_message_401.xml. The request bytes are written by hand over a raw UDP
 * socket on 127.0.0.1 — MESSAGE, read the 401, MESSAGE again with CSeq + 1 and the same
 * Call-ID (RFC 3261 §8.1.3.5, §22.2) carrying the DigestClient's Authorization — so the
 * only code under test is main/sip/auth. sipp answers 200 and exits 0 if the digest verifies,
 * else 403 and exits 1. Every process and socket is closed after each test.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DigestClient, type DigestCredentials } from '../../main/sip/auth/digest-client.js';
import type { SipMessage, SipResponse } from '../../main/sip/message/sip-message.js';
import { runCleanups, tempDir, type Cleanups } from '../support/cleanups.js';
import { exitWithin, freePort, start, stopAll, type Tracked } from '../support/processes.js';
import { RawUdpPeer } from '../support/raw-udp.js';

const SCENARIOS = fileURLToPath(new URL('./sipp/', import.meta.url));
const peers: RawUdpPeer[] = [];
const cleanups: Cleanups = [];

afterEach(async () => {
  await stopAll();
  for (const peer of peers.splice(0)) await peer.close();
  await runCleanups(cleanups);
});

function startVerifier(port: number, dir: string): Tracked {
  return start(
    'sipp',
    ['-sf', join(SCENARIOS, 'uas_message_401.xml'), '-key', 'user', 'alice', '-key', 'pass', 'secret1', '-i', '127.0.0.1', '-p', String(port), '-t', 'u1', '-m', '1',
      '-nostdin', '-timeout', '15s', '-timeout_error', '-trace_logs', '-log_file', join(dir, 'uas.log')],
    { cwd: dir },
  );
}

interface Dialogless {
  readonly requestUri: string;
  readonly localPort: number;
  readonly callId: string;
  readonly fromTag: string;
  readonly body: string;
}

function messageBytes(call: Dialogless, cseq: number, extraHeaders: ReadonlyArray<readonly [string, string]> = []): Buffer {
  const body = Buffer.from(call.body, 'utf8');
  const lines = [
    `MESSAGE ${call.requestUri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${call.localPort};branch=z9hG4bK${randomBytes(8).toString('hex')};rport`,
    'Max-Forwards: 70',
    `From: <sip:alice@127.0.0.1>;tag=${call.fromTag}`,
    `To: <${call.requestUri}>`,
    `Call-ID: ${call.callId}`,
    `CSeq: ${cseq} MESSAGE`,
    ...extraHeaders.map(([name, value]) => `${name}: ${value}`),
    'Content-Type: text/plain;charset=UTF-8',
    `Content-Length: ${body.length}`,
  ];
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8'), body]);
}

/** Waits (bounded) for a received response that satisfies `match`, looking at every datagram so far. */
async function responseWhere(peer: RawUdpPeer, match: (response: SipResponse) => boolean, ms = 5000): Promise<SipResponse> {
  const deadline = Date.now() + ms;
  for (let count = 1; ; count++) {
    const messages: SipMessage[] = await peer.waitFor(count, Math.max(1, deadline - Date.now()));
    const found = messages.find((m): m is SipResponse => m.kind === 'response' && match(m));
    if (found !== undefined) return found;
  }
}

async function runExchange(password: string): Promise<{ final: SipResponse; statuses: number[]; sippExit: number | string; log: string; authorization: string }> {
  const dir = tempDir(cleanups, 'sipnote-digest-sipp-');
  const port = await freePort();
  const sipp = startVerifier(port, dir);
  const peer = await RawUdpPeer.open();
  peers.push(peer);
  const call: Dialogless = {
    requestUri: `sip:bob@127.0.0.1:${port}`,
    localPort: peer.port,
    callId: `${randomBytes(8).toString('hex')}@127.0.0.1`,
    fromTag: randomBytes(4).toString('hex'),
    body: 'Hello through digest',
  };

  // sipp says nothing when it is ready: the first MESSAGE is retransmitted (same bytes, like
  // RFC 3261 Timer E) until its 401 arrives.
  const first = messageBytes(call, 1);
  let challenge: SipResponse | undefined;
  for (let attempt = 0; attempt < 40 && challenge === undefined; attempt++) {
    await peer.send(first, port);
    try {
      challenge = await responseWhere(peer, (r) => r.status === 401, 250);
    } catch {
      // not up yet
    }
  }
  if (challenge === undefined) throw new Error(`no 401 from sipp; stderr: ${sipp.stderr()}`);

  const credentials: DigestCredentials = { username: 'alice', password };
  const client = new DigestClient({ getCredentials: (realm) => Promise.resolve(realm === 'example.test' ? credentials : undefined) });
  const exchange = client.begin({ method: 'MESSAGE', uri: call.requestUri, body: Buffer.from(call.body, 'utf8') });
  const decision = await exchange.authorize({ status: 401, challenges: challenge.headers.getAll('WWW-Authenticate') });
  if (decision.action !== 'retry') throw new Error(`no retry: ${JSON.stringify(decision)}`);
  expect(decision.headerName).toBe('Authorization');

  await peer.send(messageBytes(call, 2, decision.headers.map((h) => [h.name, h.value])), port);
  const final = await responseWhere(peer, (r) => r.status >= 200 && r.status !== 401);
  const sippExit = await exitWithin(sipp);
  const statuses = (await peer.waitFor(peer.received.length)).map((m) => (m.kind === 'response' ? m.status : 0));
  return { final, statuses, sippExit, log: readFileSync(join(dir, 'uas.log'), 'utf8'), authorization: decision.headerValue };
}

describe('Digest credentials verified by sipp <verifyauth> (MD5, qop=auth) over UDP', () => {
  it('the right password: 200 OK, sipp exit code 0', async () => {
    const { final, sippExit, log, authorization } = await runExchange('secret1');
    expect(final.status).toBe(200);
    expect(final.cseq.seq).toBe(2);
    expect(sippExit).toBe(0);
    expect(log).toContain('RECEIVED-BODY:Hello through digest');
    expect(log).toContain(`AUTHORIZATION: ${authorization}`);
    expect(authorization).toMatch(/qop=auth, nc=00000001/);
  });

  it('a wrong password: 403, sipp exit code 1', async () => {
    const { final, statuses, sippExit } = await runExchange('not-the-password');
    expect(final.status).toBe(403);
    expect(statuses).not.toContain(200);
    expect(sippExit).toBe(1);
  });
});
