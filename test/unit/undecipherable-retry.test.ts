/**
 * A MESSAGE encrypted to a certificate the peer cannot use, answered 493 Undecipherable with a
 * certs-only body (RFC 3261 §23.2; RFC 8591 §7): what main/im/secure-messaging.ts does with it
 * (`adoptUndecipherableCertificate`), the branches test/unit/secure-messaging.test.ts leaves out,
 * and what the desktop outbox makes of the refusal.
 *
 * secure-messaging.test.ts covers: none pinned → the offered certificate is pinned and the
 * message sent again to it; a pinned certificate other than the offered one → refused loudly
 * (`certificate-changed`), the pin unchanged. Here:
 *  - the offered certificate is the pinned one, which the user pinned while the send was under
 *    way (the message went to an older one): sent again to it, nothing pinned, nothing reported;
 *  - the offered certificate is the one the message was encrypted to: nothing new to try, the
 *    493 is the answer (one MESSAGE, no loop);
 *  - a peer that answers 493 every time: the retry to the certificate it offered is refused
 *    too, and that 493 is the answer (two MESSAGEs, no loop);
 *  - the desktop core (account-security.ts `deliver`, outbox-worker.ts `resultOf`): a 493 that
 *    offers a certificate other than the pinned one is a final failure with the reason (no
 *    automatic retry, the pin unchanged) and a `certificate-changed` event with both fingerprints.
 *
 * Identities are made in memory; the desktop case keeps its key in an in-memory keychain.
 */
import { describe, expect, it, vi } from 'vitest';
import { MessengerSecurity, type SecurityEvent } from '../../main/im/account-security.js';
import { resultOf } from '../../main/im/outbox-worker.js';
import { SecureMessaging, securePagerPolicy, type AccountIdentity, type SecurityNotice } from '../../main/im/secure-messaging.js';
import { CERTS_ONLY_CONTENT_TYPE } from '../../main/im/smime/media-types.js';
import { createIdentity, fingerprintSha256 } from '../../main/security/certificates.js';
import { certsOnly } from '../../main/security/cms/signed-data.js';
import { ContactCertificates } from '../../main/security/contact-certificates.js';
import { UserAgent, type IncomingMessage, type MessageDecision } from '../../main/sip/ua/user-agent.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';
import { MemoryKeychain } from '../support/keychains.js';

const cleanups = cleanupsAfterEach();

const TEMP_PREFIX = 'sipnote-undecipherable-';

async function newIdentity(aor: string): Promise<AccountIdentity> {
  const identity = await createIdentity({ aor });
  return { aor, certificateDer: identity.certificateDer, privateKeyPkcs8: identity.privateKeyPkcs8 };
}

const ALICE = 'sip:alice@127.0.0.1';

/** A user agent on 127.0.0.1 (ephemeral UDP port) whose MESSAGEs go to `answer`. */
async function agentAt(aor: (port: number) => string, answer: (message: IncomingMessage) => Promise<MessageDecision | undefined>): Promise<{ agent: UserAgent; uri: string }> {
  const agent = await UserAgent.start({
    aor: 'sip:bob@127.0.0.1',
    listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
    policy: securePagerPolicy(),
    onMessage: (message) => answer(message),
  });
  cleanups.push(() => agent.close());
  return { agent, uri: aor(agent.listening.find((spec) => spec.transport === 'udp')?.port ?? 0) };
}

/** Bob, who can read nothing: every MESSAGE gets 493 with `offered()` as certs-only. */
async function undecipheringBob(): Promise<{ uri: string; identity: AccountIdentity; messages: IncomingMessage[]; offer(der: Uint8Array): void }> {
  const messages: IncomingMessage[] = [];
  let offered: Uint8Array | undefined;
  const { uri } = await agentAt(
    (port) => `sip:bob@127.0.0.1:${port}`,
    async (message) => {
      messages.push(message);
      return { status: 493, reason: 'Undecipherable', contentType: CERTS_ONLY_CONTENT_TYPE, body: Buffer.from(certsOnly([offered!])) };
    },
  );
  const identity = await newIdentity(uri);
  offered = identity.certificateDer;
  return { uri, identity, messages, offer: (der) => void (offered = der) };
}

/** Bob as the CLI runs him: SecureMessaging answers, with his own identity. */
async function realBob(identity?: (uri: string) => Promise<AccountIdentity>): Promise<{ uri: string; identity: AccountIdentity; statuses: number[] }> {
  const statuses: number[] = [];
  let secure: SecureMessaging | undefined;
  const dataDir = tempDir(cleanups, TEMP_PREFIX);
  const { uri } = await agentAt(
    (port) => `sip:bob@127.0.0.1:${port}`,
    async (message) => {
      const verdict = await secure!.receive(message);
      if (verdict.kind === 'plaintext') throw new Error('bob takes no plaintext');
      if (verdict.kind === 'accepted') verdict.commit();
      statuses.push(verdict.decision?.status ?? 200);
      return verdict.decision;
    },
  );
  const bobIdentity = identity === undefined ? await newIdentity(uri) : await identity(uri);
  secure = new SecureMessaging({ dataDir, identity: bobIdentity });
  const opened = secure;
  cleanups.push(() => opened.close());
  return { uri, identity: bobIdentity, statuses };
}

/** Pins that serve `stale` on the first lookup (the certificate the send started with), the real pins after. */
class StaleFirstLookup extends ContactCertificates {
  private served = false;
  constructor(
    dataDir: string,
    private readonly stale: Uint8Array,
  ) {
    super(dataDir);
  }
  override async pinned(aor: string): Promise<Uint8Array | undefined> {
    if (this.served) return super.pinned(aor);
    this.served = true;
    return this.stale;
  }
}

/** Alice's sending side: a user agent and SecureMessaging on its own data dir. */
async function alice(options: { contacts?: (dataDir: string) => ContactCertificates } = {}): Promise<{ agent: UserAgent; secure: SecureMessaging; notices: SecurityNotice[]; contacts: ContactCertificates }> {
  const dataDir = tempDir(cleanups, TEMP_PREFIX);
  const notices: SecurityNotice[] = [];
  const agent = await UserAgent.start({ aor: ALICE, listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], policy: securePagerPolicy() });
  cleanups.push(() => agent.close());
  const contacts = options.contacts?.(dataDir) ?? new ContactCertificates(dataDir);
  const secure = new SecureMessaging({ dataDir, identity: await newIdentity(ALICE), contacts, onNotice: (notice) => notices.push(notice) });
  cleanups.push(() => secure.close());
  return { agent, secure, notices, contacts };
}

describe('after a 493 Undecipherable with a certs-only body', () => {
  it('sends again to the pinned certificate when the user pinned it while the message went to an older one', async () => {
    const bob = await realBob();
    const stale = await newIdentity(bob.uri);
    const sender = await alice({ contacts: (dataDir) => new StaleFirstLookup(dataDir, stale.certificateDer) });
    expect((await sender.contacts.pin(bob.uri, bob.identity.certificateDer)).status).toBe('pinned');

    const sent = await sender.secure.send(sender.agent, { to: bob.uri, text: 'to the key you pinned' });
    expect(sent).toMatchObject({ discovered: false, result: { status: 200 }, peerFingerprint: fingerprintSha256(bob.identity.certificateDer) });
    expect(bob.statuses).toEqual([493, 200]);
    // Nothing new was pinned and nothing reported as changed: only the retry.
    expect(sender.notices).toEqual([{ kind: 'retrying', peer: bob.uri, why: 'undecipherable' }]);
    expect(await sender.contacts.pinned(bob.uri)).toEqual(bob.identity.certificateDer);
  });

  it('does not send again when the offered certificate is the one the message was encrypted to', async () => {
    const bob = await undecipheringBob();
    const sender = await alice();
    await sender.contacts.pin(bob.uri, bob.identity.certificateDer);

    const sent = await sender.secure.send(sender.agent, { to: bob.uri, text: 'you cannot read this' });
    expect(sent.result).toMatchObject({ status: 493, outcome: 'failed' });
    expect(bob.messages).toHaveLength(1);
    expect(sender.notices).toEqual([]);
    expect(await sender.contacts.pinned(bob.uri)).toEqual(bob.identity.certificateDer);
  });

  it('stops after the retry when the peer refuses that too: the second 493 is the answer', async () => {
    const bob = await undecipheringBob();
    const stale = await newIdentity(bob.uri);
    // Nothing pinned; the send starts with a stale certificate (first lookup), so the first 493's
    // offer is taken on first use, and the peer refuses the retry too.
    const sender = await alice({ contacts: (dataDir) => new StaleFirstLookup(dataDir, stale.certificateDer) });

    const sent = await sender.secure.send(sender.agent, { to: bob.uri, text: 'still unreadable' });
    expect(sent.result.status).toBe(493);
    expect(sent.peerFingerprint).toBe(fingerprintSha256(bob.identity.certificateDer));
    expect(bob.messages).toHaveLength(2);
    expect(sender.notices.map((notice) => notice.kind)).toEqual(['pinned', 'retrying']);
    expect(sender.notices[0]).toMatchObject({ kind: 'pinned', source: 'undecipherable-response', fingerprint: fingerprintSha256(bob.identity.certificateDer) });
  });
});

describe('the desktop outbox, after a 493 offering a certificate other than the pinned one', () => {
  it('fails the message for good with the reason, keeps the pin, and raises certificate-changed with both fingerprints', async () => {
    // Bob made a new key on the same address; alice still has the old certificate pinned.
    let old: AccountIdentity | undefined;
    const bob = await realBob(async (uri) => {
      old = await newIdentity(uri);
      return newIdentity(uri);
    });
    const keychain = new MemoryKeychain();
    const events: SecurityEvent[] = [];
    const security = await MessengerSecurity.open({ dataDir: tempDir(cleanups, TEMP_PREFIX), keychain, passwordKeychain: keychain }, (event) => events.push(event));
    const account = await security.account({ id: 'alice-id', sipAddress: ALICE });
    cleanups.push(() => account.close());
    expect(account.problem).toBeUndefined();
    await security.contacts.pins.pin(bob.uri, old!.certificateDer);
    const agent = await UserAgent.start({ aor: ALICE, listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], policy: account.requestPolicy() });
    cleanups.push(() => agent.close());

    const outgoing = account.outgoing(bob.uri, false);
    expect(outgoing.security).toBe('encrypted-signed');
    const delivery = await account.deliver(agent, { peerUri: bob.uri, body: 'for the old key', ...outgoing });
    expect(bob.statuses).toEqual([493]);
    expect(delivery).toMatchObject({ kind: 'response', status: 493 });
    if (delivery.kind !== 'response') throw new Error('expected a response');
    expect(delivery.reason).toContain(`the certificate of ${bob.uri} has CHANGED`);
    expect(delivery.reason).toContain(fingerprintSha256(old!.certificateDer));
    expect(delivery.reason).toContain(fingerprintSha256(bob.identity.certificateDer));

    // The outbox: failed for good (no next attempt: the user decides), the reason kept.
    const stored = resultOf(delivery, 1, Date.now());
    expect(stored).toEqual({ state: 'failed', status: 493, reason: delivery.reason });

    expect(await security.contacts.pins.pinned(bob.uri)).toEqual(old!.certificateDer);
    await vi.waitFor(() => expect(events.some((event) => event.kind === 'certificate-changed')).toBe(true));
    expect(events.find((event) => event.kind === 'certificate-changed')).toMatchObject({
      pinnedFingerprint: fingerprintSha256(old!.certificateDer),
      presentedFingerprint: fingerprintSha256(bob.identity.certificateDer),
      contact: { aor: bob.uri, trust: 'changed' },
    });
  });
});
