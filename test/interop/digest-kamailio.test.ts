/**
 * Our Digest credentials checked by Kamailio's auth module, a second independent verifier
 * that (unlike sipp) checks SHA-256 (RFC 8760), Proxy-Authorization, the nonce count of a
 * reused nonce (`nonce_count` on) and, with WITH_STRICT_DIGEST_URI, that the digest uri is the
 * Request-URI. Requests are written by hand over a raw UDP socket on 127.0.0.1, so the only
 * code under test is main/sip/auth:
 *  - REGISTER: 401 → Authorization → 200; the next REGISTER with preemptive credentials
 *    (same nonce, nc 00000002) → 200 at once;
 *  - MESSAGE to an offline user: 407 → Proxy-Authorization → 202 (stored); the next MESSAGE
 *    carries Proxy-Authorization unasked → 202 without a 407 (checklist item 168);
 *  - a wrong password: 407 again, and the client says `rejected` instead of retrying.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { DigestClient, type AuthorizationHeader, type DigestCredentials } from '../../main/sip/auth/digest-client.js';
import type { SipResponse } from '../../main/sip/message/sip-message.js';
import { startKamailio, type RunningKamailio } from '../support/kamailio.js';
import { stopAll } from '../support/processes.js';
import { RawUdpPeer } from '../support/raw-udp.js';

const running: RunningKamailio[] = [];
const peers: RawUdpPeer[] = [];

afterEach(async () => {
  for (const kamailio of running.splice(0)) await kamailio.stop();
  for (const peer of peers.splice(0)) await peer.close();
  await stopAll();
});

interface Sent {
  readonly method: 'REGISTER' | 'MESSAGE';
  readonly uri: string;
  readonly body: Buffer;
}

/** One UAC on a raw socket: builds requests, sends them, and waits for the final response by Via branch. */
class RawUac {
  private seen = 0;

  constructor(
    private readonly peer: RawUdpPeer,
    private readonly serverPort: number,
  ) {}

  async send(request: Sent, headers: ReadonlyArray<readonly [string, string]>, auth: readonly AuthorizationHeader[]): Promise<SipResponse> {
    const branch = `z9hG4bK${randomBytes(8).toString('hex')}`;
    const lines = [
      `${request.method} ${request.uri} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${this.peer.port};branch=${branch};rport`,
      'Max-Forwards: 70',
      ...headers.map(([name, value]) => `${name}: ${value}`),
      ...auth.map((h) => `${h.name}: ${h.value}`),
      `Content-Length: ${request.body.length}`,
    ];
    await this.peer.send(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8'), request.body]), this.serverPort);
    // Final responses only (Kamailio may send 100 Trying first); bounded by waitFor's timeout.
    for (;;) {
      const messages = await this.peer.waitFor(this.seen + 1, 5000);
      const message = messages[this.seen++];
      if (message?.kind === 'response' && message.status >= 200 && message.headers.get('Via')?.includes(branch) === true) return message;
    }
  }
}

async function setUp(defines: string[], password: string): Promise<{ uac: RawUac; client: DigestClient; asked: string[]; port: number }> {
  const kamailio = await startKamailio({ users: [{ user: 'alice', password: 'secret1' }, { user: 'bob', password: 'secret2' }], defines });
  running.push(kamailio);
  const peer = await RawUdpPeer.open();
  peers.push(peer);
  const asked: string[] = [];
  const credentials: DigestCredentials = { username: 'alice', password };
  const client = new DigestClient({
    getCredentials: (realm) => {
      asked.push(realm);
      return Promise.resolve(realm === 'example.test' ? credentials : undefined);
    },
  });
  return { uac: new RawUac(peer, kamailio.udpPort), client, asked, port: peer.port };
}

/** Sends `request` with preemptive credentials and answers challenges until a final non-401/407 (CSeq + 1 each time, same Call-ID). */
async function authenticated(
  uac: RawUac,
  client: DigestClient,
  request: Sent,
  headers: (cseq: number) => Array<readonly [string, string]>,
): Promise<{ statuses: number[]; auth: AuthorizationHeader[][] }> {
  const exchange = client.begin(request);
  let auth = exchange.preemptiveHeaders();
  const statuses: number[] = [];
  const sentAuth: AuthorizationHeader[][] = [];
  for (let cseq = 1; cseq <= 4; cseq++) {
    sentAuth.push(auth);
    const response = await uac.send(request, headers(cseq), auth);
    statuses.push(response.status);
    if (response.status !== 401 && response.status !== 407) break;
    const challenges = response.headers.getAll(response.status === 401 ? 'WWW-Authenticate' : 'Proxy-Authenticate');
    const decision = await exchange.authorize({ status: response.status, challenges });
    if (decision.action === 'fail') {
      statuses.push(-1);
      expect(decision.reason).toBe('rejected');
      break;
    }
    auth = [...decision.headers];
  }
  return { statuses, auth: sentAuth };
}

function registerHeaders(callId: string, port: number): (cseq: number) => Array<readonly [string, string]> {
  return (cseq) => [
    ['From', '<sip:alice@example.test>;tag=reg1'],
    ['To', '<sip:alice@example.test>'],
    ['Call-ID', callId],
    ['CSeq', `${cseq} REGISTER`],
    ['Contact', `<sip:alice@127.0.0.1:${port}>`],
    ['Expires', '60'],
  ];
}

function messageHeaders(callId: string): (cseq: number) => Array<readonly [string, string]> {
  return (cseq) => [
    ['From', `<sip:alice@example.test>;tag=${callId.slice(0, 8)}`],
    ['To', '<sip:bob@example.test>'],
    ['Call-ID', callId],
    ['CSeq', `${cseq} MESSAGE`],
    ['Content-Type', 'text/plain;charset=UTF-8'],
  ];
}

const newCallId = (): string => `${randomBytes(8).toString('hex')}@127.0.0.1`;

describe.each([
  ['MD5', [] as string[], undefined],
  ['SHA-256', ['WITH_SHA256', 'WITH_STRICT_DIGEST_URI'], 'SHA-256'],
])('Digest credentials verified by Kamailio (%s)', (_name, defines, algorithm) => {
  it('REGISTER 401 → 200, then preemptive; MESSAGE 407 → 202, then preemptive; the password is asked once', async () => {
    const { uac, client, asked, port } = await setUp(defines, 'secret1');

    const registerCallId = newCallId();
    const register: Sent = { method: 'REGISTER', uri: 'sip:example.test', body: Buffer.alloc(0) };
    const first = await authenticated(uac, client, register, registerHeaders(registerCallId, port));
    expect(first.statuses).toEqual([401, 200]);
    const answer = first.auth[1]![0]!;
    expect(answer.name).toBe('Authorization');
    if (algorithm !== undefined) expect(answer.value).toContain(`algorithm=${algorithm}`);

    const refresh = await authenticated(uac, client, register, (cseq) => registerHeaders(registerCallId, port)(cseq + 10));
    expect(refresh.statuses).toEqual([200]);
    expect(refresh.auth[0]![0]!.value).toContain('nc=00000002');

    const text = (words: string): Sent => ({ method: 'MESSAGE', uri: 'sip:bob@example.test', body: Buffer.from(words) });
    const message = await authenticated(uac, client, text('one'), messageHeaders(newCallId()));
    expect(message.statuses).toEqual([407, 202]);
    expect(message.auth[1]!.map((h) => h.name)).toContain('Proxy-Authorization');

    const next = await authenticated(uac, client, text('two'), messageHeaders(newCallId()));
    expect(next.statuses).toEqual([202]);
    expect(asked).toEqual(['example.test']);
  });

  it('a wrong password: challenged again, the client gives up with "rejected" after one retry', async () => {
    const { uac, client, asked } = await setUp(defines, 'wrong');
    const message: Sent = { method: 'MESSAGE', uri: 'sip:bob@example.test', body: Buffer.from('x') };
    const result = await authenticated(uac, client, message, messageHeaders(newCallId()));
    expect(result.statuses).toEqual([407, 407, -1]);
    expect(asked).toEqual(['example.test']);
  });
});
