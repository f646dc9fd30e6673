/**
 * S/MIME by default between two user agents on loopback (main/im/secure-messaging.ts): the
 * discovery of a peer's certificate by OPTIONS, trust on first use, the certificate left out
 * once the peer has it, the retries after 400 Unknown Signer Certificate and 493, the refusals
 * (415, a changed certificate), replays, plaintext; and the user agent's OPTIONS hook and Date
 * override these rely on. Identities are made in memory (no keychain needed here).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  SMIME_MEDIA_TYPES,
  SecureMessaging,
  SecureSendError,
  presentedCertificatePath,
  securePagerPolicy,
  type AccountIdentity,
  type ReceivedMessage,
  type SecurityNotice,
} from '../../main/im/secure-messaging.js';
import { deliveryImdnPayload } from '../../main/im/message-notifications.js';
import { CERTS_ONLY_CONTENT_TYPE, SMIME_ACCEPT } from '../../main/im/smime/media-types.js';
import { MemoryReplayCache } from '../../main/im/smime/replay-cache.js';
import { unprotectMessage } from '../../main/im/smime/unprotect.js';
import { createIdentity, fingerprintSha256 } from '../../main/security/certificates.js';
import { pemDecodeAll } from '../../main/security/cms/der.js';
import { certsOnly, readCertsOnly } from '../../main/security/cms/signed-data.js';
import { secureMessageEvent } from '../../main/cli/listen-command.js';
import { ContactCertificates } from '../../main/security/contact-certificates.js';
import { parseMessage } from '../../main/sip/message/parse.js';
import type { SipRequest } from '../../main/sip/message/sip-message.js';
import { UserAgent, type IncomingMessage, type MessageDecision, type SipTrace } from '../../main/sip/ua/user-agent.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';
import { RawUdpPeer } from '../support/raw-udp.js';
import { routedProtectedIm } from '../support/routed-im.js';

const cleanups = cleanupsAfterEach();

const TEMP_PREFIX = 'sipnote-secure-';

async function newIdentity(aor: string): Promise<AccountIdentity> {
  const identity = await createIdentity({ aor });
  return { aor, certificateDer: identity.certificateDer, privateKeyPkcs8: identity.privateKeyPkcs8 };
}

interface Peer {
  agent: UserAgent;
  secure: SecureMessaging;
  identity: AccountIdentity;
  dataDir: string;
  notices: SecurityNotice[];
  received: ReceivedMessage[];
  /** Messages accepted and committed (what a user would see). */
  shown: Array<Extract<ReceivedMessage, { kind: 'accepted' }>>;
  incoming: IncomingMessage[];
  traces: SipTrace[];
  uri: string;
  port: number;
  close(): Promise<void>;
}

/**
 * A user agent with S/MIME as the CLI sets it up: `receive` for MESSAGEs (commit after
 * "showing"), `answerOptions` for OPTIONS. `aor` may use `{port}` for the port it gets.
 */
async function peer(
  user: string,
  options: { dataDir?: string; identity?: AccountIdentity; acceptPlaintext?: boolean; contacts?: ContactCertificates; aor?: string; udpPort?: number; now?: () => Date } = {},
): Promise<Peer> {
  const dataDir = options.dataDir ?? tempDir(cleanups, TEMP_PREFIX);
  const traces: SipTrace[] = [];
  const received: ReceivedMessage[] = [];
  const shown: Peer['shown'] = [];
  const incoming: IncomingMessage[] = [];
  const notices: SecurityNotice[] = [];
  let secure: SecureMessaging | undefined;
  const agent = await UserAgent.start({
    aor: `sip:${user}@127.0.0.1`,
    listen: [
      { transport: 'udp', host: '127.0.0.1', port: options.udpPort ?? 0 },
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
    ],
    policy: securePagerPolicy(),
    onTrace: (trace) => traces.push(trace),
    onMessage: async (message: IncomingMessage): Promise<MessageDecision | void> => {
      incoming.push(message);
      const verdict = await (secure as SecureMessaging).receive(message);
      received.push(verdict);
      if (verdict.kind === 'accepted') {
        shown.push(verdict);
        verdict.commit();
      }
      // A plaintext verdict leaves the answer to the caller: this one takes it (200).
      return verdict.kind === 'plaintext' ? undefined : verdict.decision;
    },
    onOptions: (request) => (secure as SecureMessaging).answerOptions(request),
  });
  const port = agent.listening.find((spec) => spec.transport === 'udp')?.port ?? 0;
  const aor = options.aor ?? `sip:${user}@127.0.0.1:${port}`;
  const identity = options.identity ?? (await newIdentity(aor));
  secure = new SecureMessaging({
    dataDir,
    identity,
    onNotice: (notice) => notices.push(notice),
    ...(options.acceptPlaintext === undefined ? {} : { acceptPlaintext: options.acceptPlaintext }),
    ...(options.contacts === undefined ? {} : { contacts: options.contacts }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  const opened = secure;
  const close = async (): Promise<void> => {
    await agent.close();
    opened.close();
  };
  cleanups.push(close);
  return { agent, secure, identity, dataDir, notices, received, shown, incoming, traces, uri: `sip:${user}@127.0.0.1:${port}`, port, close };
}

function outgoing(traces: readonly SipTrace[], method: string): Buffer[] {
  return traces.filter((t) => t.direction === 'out' && t.data.subarray(0, method.length + 1).toString('latin1') === `${method} `).map((t) => t.data);
}

describe('sending with discovery, and receiving', () => {
  it('asks an unknown peer for its certificate (OPTIONS), pins both ways, and delivers encrypted-signed; the second message leaves our certificate out', async () => {
    const bob = await peer('bob');
    const alice = await peer('alice', { aor: 'sip:alice@127.0.0.1' });

    const first = await alice.secure.send(alice.agent, { to: bob.uri, text: 'the first secret' });
    expect(first).toMatchObject({ security: 'encrypted-signed', discovered: true, includedCertificate: true, peerFingerprint: fingerprintSha256(bob.identity.certificateDer) });
    expect(first.result).toMatchObject({ status: 200, outcome: 'delivered', transport: 'udp' });
    expect(bob.shown).toHaveLength(1);
    const got = bob.shown[0]!;
    expect(got.security).toBe('encrypted-signed');
    expect(got.message.text).toBe('the first secret');
    expect(got.message.signerFingerprint).toBe(fingerprintSha256(alice.identity.certificateDer));

    // Each side pinned the other's certificate: bob from the signed OPTIONS, alice from its 200.
    expect(await bob.secure.contacts.pinned('sip:alice@127.0.0.1')).toEqual(alice.identity.certificateDer);
    expect(await alice.secure.contacts.pinned(bob.uri)).toEqual(bob.identity.certificateDer);
    expect(alice.notices.map((n) => n.kind)).toEqual(['discovering', 'pinned']);
    expect(bob.notices).toEqual([{ kind: 'pinned', peer: 'sip:alice@127.0.0.1', fingerprint: fingerprintSha256(alice.identity.certificateDer), source: 'options-request' }]);

    // The wire: no text anywhere; the MESSAGE's SIP Date is the protected time (RFC 3428 §11.4).
    for (const trace of alice.traces) expect(trace.data.includes('the first secret')).toBe(false);
    const [options] = outgoing(alice.traces, 'OPTIONS');
    const [message] = outgoing(alice.traces, 'MESSAGE');
    const optionsRequest = parseMessage(options!) as SipRequest;
    expect(optionsRequest.headers.get('content-type')).toMatch(/^application\/pkcs7-mime; smime-type=signed-data/);
    expect(optionsRequest.headers.get('content-disposition')).toMatch(/handling=optional/);
    const messageRequest = parseMessage(message!) as SipRequest;
    expect(messageRequest.headers.get('content-type')).toMatch(/^application\/pkcs7-mime; smime-type=authEnveloped-data/);
    expect(messageRequest.headers.get('content-disposition')).toBe('attachment; filename=smime.p7m; handling=required');
    expect(new Date(messageRequest.headers.get('date')!).getTime()).toBe(got.message.protectedTime.getTime());

    const second = await alice.secure.send(alice.agent, { to: bob.uri, text: 'the second secret', transport: 'tcp' });
    expect(second).toMatchObject({ discovered: false, includedCertificate: false });
    expect(second.result).toMatchObject({ status: 200, transport: 'tcp' });
    expect(bob.shown.map((m) => m.message.text)).toEqual(['the first secret', 'the second secret']);
    // About 440 octets less without the certificate (RFC 8591 §7.1).
    const [firstBody, secondBody] = outgoing(alice.traces, 'MESSAGE').map((bytes) => parseMessage(bytes).body.length);
    expect(firstBody! - secondBody!).toBeGreaterThan(300);
  });

  it('answers a replay 200 and shows it once, also after a restart on the same data dir', async () => {
    const bob = await peer('bob');
    const alice = await peer('alice', { aor: 'sip:alice@127.0.0.1' });
    await alice.secure.send(alice.agent, { to: bob.uri, text: 'once only' });
    const [captured] = outgoing(alice.traces, 'MESSAGE');
    const raw = await RawUdpPeer.open();
    cleanups.push(() => raw.close());

    // The same body in a new transaction (new branch and Call-ID): the replay cache catches it.
    await raw.send(newTransaction(captured!), bob.port);
    const [answer] = await raw.waitFor(1);
    expect(answer).toMatchObject({ kind: 'response', status: 200 });
    expect(bob.received.map((r) => r.kind)).toEqual(['accepted', 'replay']);
    expect(bob.shown).toHaveLength(1);

    // A restart: a new agent and SecureMessaging on the same data dir, the very same bytes.
    const restarted = await peer('bob', { dataDir: bob.dataDir, identity: bob.identity });
    await raw.send(captured!, restarted.port);
    const [, again] = await raw.waitFor(2);
    expect(again).toMatchObject({ kind: 'response', status: 200 });
    expect(restarted.received.map((r) => r.kind)).toEqual(['replay']);
    expect(restarted.shown).toHaveLength(0);
  });
});

describe('late messages', () => {
  it('accepts a message whose protected time is over 5 minutes old, marked late, and the listen event says so', async () => {
    const bob = await peer('bob', { now: () => new Date(Date.now() + 10 * 60_000) });
    const alice = await peer('alice', { aor: 'sip:alice@127.0.0.1' });
    expect((await alice.secure.send(alice.agent, { to: bob.uri, text: 'sorry I am late' })).result.status).toBe(200);
    const got = bob.shown[0]!;
    expect(got.message.late).toBe(true);
    const event = secureMessageEvent(bob.incoming[0]!, got.security, got.message);
    expect(event).toMatchObject({ security: 'encrypted-signed', late: true, text: 'sorry I am late', body: 'sorry I am late', fingerprint: fingerprintSha256(alice.identity.certificateDer) });
    expect(event.cpim?.from).toBe('sip:alice@127.0.0.1');
  });
});

describe('what the peer answers', () => {
  it('sends again with our certificate after 400 Unknown Signer Certificate', async () => {
    const bob = await peer('bob');
    const alice = await peer('alice', { aor: 'sip:alice@127.0.0.1' });
    await alice.secure.send(alice.agent, { to: bob.uri, text: 'one' });
    // Bob loses alice's certificate; alice believes bob has it.
    await bob.secure.contacts.forget('sip:alice@127.0.0.1');
    const sent = await alice.secure.send(alice.agent, { to: bob.uri, text: 'two' });
    expect(sent).toMatchObject({ includedCertificate: true, result: { status: 200 } });
    expect(bob.received.map((r) => r.kind)).toEqual(['accepted', 'rejected', 'accepted']);
    expect((bob.received[1] as Extract<ReceivedMessage, { kind: 'rejected' }>).decision).toMatchObject({ status: 400, reason: 'Unknown Signer Certificate' });
    expect(alice.notices.at(-1)).toEqual({ kind: 'retrying', peer: bob.uri, why: 'unknown-signer' });
    expect(await bob.secure.contacts.pinned('sip:alice@127.0.0.1')).toEqual(alice.identity.certificateDer);
  });

  it('after a 493, encrypts to the offered certificate when none is pinned, and retries once', async () => {
    const bob = await peer('bob');
    const stale = await newIdentity(bob.uri);
    const aliceDir = tempDir(cleanups, TEMP_PREFIX);
    // The first lookup finds a stale certificate (what was pinned when the send began); by the
    // 493 the pin is gone, so the offered certificate is pinned and used.
    class StaleOnce extends ContactCertificates {
      private served = false;
      override async pinned(aor: string): Promise<Uint8Array | undefined> {
        if (this.served) return super.pinned(aor);
        this.served = true;
        return stale.certificateDer;
      }
    }
    const alice = await peer('alice', { aor: 'sip:alice@127.0.0.1', dataDir: aliceDir, contacts: new StaleOnce(aliceDir) });
    const sent = await alice.secure.send(alice.agent, { to: bob.uri, text: 'to the right key' });
    expect(sent).toMatchObject({ discovered: false, result: { status: 200 }, peerFingerprint: fingerprintSha256(bob.identity.certificateDer) });
    expect(bob.received.map((r) => r.kind)).toEqual(['rejected', 'accepted']);
    const refusal = (bob.received[0] as Extract<ReceivedMessage, { kind: 'rejected' }>).decision;
    expect(refusal).toMatchObject({ status: 493, contentType: CERTS_ONLY_CONTENT_TYPE });
    expect(alice.notices.map((n) => n.kind)).toEqual(['pinned', 'retrying']);
    expect(await alice.secure.contacts.pinned(bob.uri)).toEqual(bob.identity.certificateDer);
  });

  it('refuses loudly when a 493 offers a certificate other than the pinned one', async () => {
    const bob = await peer('bob');
    const alice = await peer('alice', { aor: 'sip:alice@127.0.0.1' });
    await alice.secure.send(alice.agent, { to: bob.uri, text: 'hello' });
    // Bob makes a new key and comes back on the same address; alice still has the old one pinned.
    await bob.close();
    const renewed = await peer('bob', { dataDir: tempDir(cleanups, TEMP_PREFIX), identity: await newIdentity(bob.uri), udpPort: bob.port });
    await expect(alice.secure.send(alice.agent, { to: bob.uri, text: 'who are you?' })).rejects.toMatchObject({ code: 'certificate-changed', result: { status: 493 } });
    const notice = alice.notices.at(-1);
    expect(notice).toMatchObject({
      kind: 'certificate-changed',
      peer: bob.uri,
      pinnedFingerprints: [fingerprintSha256(bob.identity.certificateDer)],
      presentedFingerprint: fingerprintSha256(renewed.identity.certificateDer),
      source: 'undecipherable-response',
    });
    // The pin is unchanged; the presented certificate waits in a file for `keys trust --replace`.
    expect(await alice.secure.contacts.pinned(bob.uri)).toEqual(bob.identity.certificateDer);
    const saved = await readFile(presentedCertificatePath(alice.dataDir, bob.uri), 'latin1');
    expect(pemDecodeAll(saved)[0]?.der).toEqual(renewed.identity.certificateDer);
  });

  it('refuses a changed signer certificate with 403 and a notice carrying both fingerprints', async () => {
    const bob = await peer('bob');
    const alice = await peer('alice', { aor: 'sip:alice@127.0.0.1' });
    await alice.secure.send(alice.agent, { to: bob.uri, text: 'hello' });
    // Alice re-creates her identity in the same data dir (forget + init).
    const reborn = await peer('alice', { aor: 'sip:alice@127.0.0.1', dataDir: alice.dataDir, identity: await newIdentity('sip:alice@127.0.0.1') });
    const sent = await reborn.secure.send(reborn.agent, { to: bob.uri, text: 'it is me, really' });
    expect(sent).toMatchObject({ includedCertificate: true, result: { status: 403, reason: 'Signer Certificate Changed' } });
    expect(bob.shown).toHaveLength(1);
    expect(bob.notices.at(-1)).toMatchObject({
      kind: 'certificate-changed',
      peer: 'sip:alice@127.0.0.1',
      pinnedFingerprints: [fingerprintSha256(alice.identity.certificateDer)],
      presentedFingerprint: fingerprintSha256(reborn.identity.certificateDer),
      presentedCertificateFile: presentedCertificatePath(bob.dataDir, 'sip:alice@127.0.0.1'),
      source: 'message',
    });
    expect(await bob.secure.contacts.pinned('sip:alice@127.0.0.1')).toEqual(alice.identity.certificateDer);
  });

  it('never downgrades: a peer without S/MIME fails discovery, and its 415 is an error', async () => {
    const plain = await UserAgent.start({ aor: 'sip:carol@127.0.0.1', listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], onMessage: () => undefined });
    cleanups.push(() => plain.close());
    const carol = `sip:carol@127.0.0.1:${plain.listening[0]!.port}`;
    const alice = await peer('alice', { aor: 'sip:alice@127.0.0.1' });
    const discovery = alice.secure.send(alice.agent, { to: carol, text: 'x' });
    await expect(discovery).rejects.toBeInstanceOf(SecureSendError);
    await expect(discovery).rejects.toMatchObject({ code: 'discovery-failed', message: expect.stringMatching(/without a certificate/) });

    // With a certificate pinned for carol (given out of band), the MESSAGE gets 415.
    await alice.secure.contacts.pin(carol, (await newIdentity(carol)).certificateDer);
    await expect(alice.secure.send(alice.agent, { to: carol, text: 'x' })).rejects.toMatchObject({ code: 'peer-lacks-smime', result: { status: 415 } });
  });

  it('fails discovery with the reason when the peer does not answer', async () => {
    const silent = await RawUdpPeer.open();
    cleanups.push(() => silent.close());
    const alice = await peer('alice', { aor: 'sip:alice@127.0.0.1' });
    const fast = await UserAgent.start({ aor: 'sip:alice@127.0.0.1', listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], timers: { t1: 5, t2: 40, t4: 50 } });
    cleanups.push(() => fast.close());
    await expect(alice.secure.send(fast, { to: `sip:dave@127.0.0.1:${silent.port}`, text: 'x' })).rejects.toMatchObject({
      code: 'discovery-failed',
      message: expect.stringMatching(/got no answer \(408/),
    });
  });
});

describe('plaintext and OPTIONS', () => {
  it('refuses plaintext with 415 listing the S/MIME types, unless plaintext is accepted (and then labels it)', async () => {
    const strict = await peer('bob');
    const lenient = await peer('carol', { acceptPlaintext: true });
    const alice = await UserAgent.start({ aor: 'sip:alice@127.0.0.1', listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] });
    cleanups.push(() => alice.close());
    const refused = await alice.exchangeMessage({ to: strict.uri, contentType: 'text/plain', body: Buffer.from('in the clear') });
    expect(refused.result.status).toBe(415);
    expect(refused.response?.headers.get('accept')).toBe(SMIME_ACCEPT);
    expect(strict.shown).toHaveLength(0);

    const taken = await alice.exchangeMessage({ to: lenient.uri, contentType: 'text/plain', body: Buffer.from('in the clear') });
    expect(taken.result.status).toBe(200);
    expect(lenient.received).toMatchObject([{ kind: 'plaintext', security: 'plaintext', contentType: 'text/plain' }]);
  });

  it('answers OPTIONS with our certificate as certs-only and one Accept listing the S/MIME types', async () => {
    const bob = await peer('bob');
    const alice = await UserAgent.start({ aor: 'sip:alice@127.0.0.1', listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] });
    cleanups.push(() => alice.close());
    const date = new Date('2026-01-02T03:04:05Z');
    const { result, response } = await alice.exchangeOptions({ to: bob.uri, contentType: 'text/plain', body: Buffer.alloc(0), date });
    expect(result.status).toBe(200);
    expect(response?.headers.getAll('accept')).toEqual([SMIME_ACCEPT]);
    expect(response?.headers.get('allow')).toBe('MESSAGE, OPTIONS');
    expect(response?.headers.get('content-type')).toBe(CERTS_ONLY_CONTENT_TYPE);
    expect(readCertsOnly(response!.body)).toEqual([bob.identity.certificateDer]);
    // The request was an OPTIONS with our Date (SendMessageInput.date).
    const request = parseMessage(bob.traces.find((t) => t.direction === 'in')!.data) as SipRequest;
    expect(request.method).toBe('OPTIONS');
    expect(request.headers.get('cseq')).toBe('1 OPTIONS');
    expect(request.headers.get('date')).toBe(date.toUTCString());
    expect(bob.notices).toEqual([]); // nothing to learn from an empty OPTIONS
  });

  it('pins the sender of a certs-only OPTIONS when nothing is pinned, and reports a different one without taking it', async () => {
    const bob = await peer('bob');
    const alice = await UserAgent.start({ aor: 'sip:alice@127.0.0.1', listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] });
    cleanups.push(() => alice.close());
    const first = await newIdentity('sip:alice@127.0.0.1');
    const second = await newIdentity('sip:alice@127.0.0.1');
    for (const identity of [first, second]) {
      const { result } = await alice.exchangeOptions({ to: bob.uri, contentType: CERTS_ONLY_CONTENT_TYPE, body: Buffer.from(certsOnly([identity.certificateDer])) });
      expect(result.status).toBe(200);
    }
    expect(await bob.secure.contacts.pinned('sip:alice@127.0.0.1')).toEqual(first.certificateDer);
    expect(bob.notices.map((n) => n.kind)).toEqual(['pinned', 'certificate-changed']);
    expect(bob.notices[1]).toMatchObject({ source: 'options-request', presentedFingerprint: fingerprintSha256(second.certificateDer) });
  });

  it('still answers 200 (capabilities only) when the OPTIONS handler fails, and without a handler', async () => {
    const failing = await UserAgent.start({
      aor: 'sip:bob@127.0.0.1',
      listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
      policy: securePagerPolicy(),
      onOptions: () => {
        throw new Error('broken');
      },
    });
    const bare = await UserAgent.start({ aor: 'sip:carol@127.0.0.1', listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] });
    const alice = await UserAgent.start({ aor: 'sip:alice@127.0.0.1', listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }] });
    cleanups.push(async () => {
      await Promise.all([failing.close(), bare.close(), alice.close()]);
    });
    const fromFailing = await alice.exchangeOptions({ to: `sip:bob@127.0.0.1:${failing.listening[0]!.port}`, contentType: 'text/plain', body: Buffer.alloc(0) });
    expect(fromFailing.result.status).toBe(200);
    expect(fromFailing.response?.headers.get('accept')).toBe([...SMIME_MEDIA_TYPES, 'text/plain', 'message/cpim', 'multipart/mixed', 'multipart/alternative'].join(', '));
    expect(fromFailing.response?.body.length).toBe(0);
    const fromBare = await alice.exchangeOptions({ to: `sip:carol@127.0.0.1:${bare.listening[0]!.port}`, contentType: 'text/plain', body: Buffer.alloc(0) });
    expect(fromBare.result.status).toBe(200);
    expect(fromBare.response?.headers.get('accept')).toBe('text/plain, message/cpim');
  });
});

describe('notifications through an IMDN server (RFC 5438 §6.5, §7.2.1, §12.1.3.1)', () => {
  it('sends the notification of a protected IM with IMDN-Record-Route to the top route, still encrypted for the sender', async () => {
    const bob = await peer('bob');
    const aliceAor = 'sip:alice@127.0.0.1';
    const alice = await newIdentity(aliceAor);
    // The IMDN server: a raw peer that receives bob's notification and answers 200.
    const relay = await RawUdpPeer.open();
    cleanups.push(() => relay.close());
    const route1 = `sip:imdn@127.0.0.1:${relay.port}`;
    const route2 = 'sip:imdn@relay-2.example.test';

    // alice's IM, signed and encrypted for bob, carries both routes under the signature.
    const im = await routedProtectedIm({
      from: aliceAor,
      sender: alice,
      to: bob.uri,
      cpimTo: bob.identity.aor,
      recipientCertificateDer: bob.identity.certificateDer,
      routes: [route1, route2],
      messageId: 'im-routed-1',
      dispositions: 'positive-delivery',
      text: 'via the relay',
      viaPort: relay.port,
    });
    await relay.send(im, bob.port);
    const [answer] = await relay.waitFor(1);
    expect(answer).toMatchObject({ kind: 'response', status: 200 });
    expect(bob.shown).toHaveLength(1);
    const envelope = bob.shown[0]!.message.cpim;
    expect(envelope?.recordRoute).toEqual([route1, route2]);

    // What the listener sends: to the top route, encrypted for alice (pinned from her signature).
    const delivery = deliveryImdnPayload(envelope, bob.secure.aor)!;
    expect(delivery.via).toBe(route1);
    const sending = bob.secure.send(bob.agent, { to: aliceAor, text: '', payload: delivery.payload, ...(delivery.via === undefined ? {} : { via: delivery.via }) });
    const all = await relay.waitFor(2);
    const notification = all[1]!;
    if (notification.kind !== 'request') throw new Error('expected the notification request');
    expect(notification.method).toBe('MESSAGE');
    expect(notification.uri).toBe(route1);
    // Opaque to the relay.
    expect(notification.headers.get('content-type')).toMatch(/^application\/pkcs7-mime; smime-type=authEnveloped-data/);
    expect(Buffer.from(notification.body).includes('imdn')).toBe(false);
    const header = (name: string): string => `${name}: ${notification.headers.get(name.toLowerCase())}`;
    const ok = ['SIP/2.0 200 OK', ...notification.headers.getAll('via').map((via) => `Via: ${via}`), header('From'), `${header('To')};tag=relay`, header('Call-ID'), header('CSeq'), 'Content-Length: 0', '', ''].join('\r\n');
    const via = notification.headers.get('via')!;
    const port = Number(/127\.0\.0\.1:(\d+)/.exec(via)![1]);
    await relay.send(ok, port);
    expect((await sending).result).toMatchObject({ status: 200 });

    // alice (what the relay forwards to) opens it: signed by bob, a delivery notification for her IM.
    const opened = await unprotectMessage({
      contentType: notification.headers.get('content-type')!,
      body: notification.body,
      sipFrom: bob.identity.aor,
      ourAor: aliceAor,
      ourIdentity: alice,
      now: new Date(),
      replayCache: new MemoryReplayCache(),
    });
    if (opened.action !== 'accept') throw new Error(`alice could not open the notification: ${opened.action}`);
    expect(opened.contentType).toBe('message/imdn+xml');
    expect(opened.cpim?.to).toEqual([aliceAor]);
    expect(new TextDecoder().decode(opened.content)).toContain('<message-id>im-routed-1</message-id>');
  });
});

/** The request with a new Via branch and Call-ID (a new transaction), body untouched. */
function newTransaction(request: Buffer): Buffer {
  const end = request.indexOf('\r\n\r\n');
  const head = request
    .subarray(0, end)
    .toString('latin1')
    .replace(/branch=z9hG4bK[^;\r\n]*/, 'branch=z9hG4bKreplayed')
    .replace(/^Call-ID: .*$/m, 'Call-ID: replayed-call');
  return Buffer.concat([Buffer.from(head, 'latin1'), request.subarray(end)]);
}
