/**
 * The desktop's S/MIME, contacts and passwords (main/im/account-security.ts, contact-book.ts,
 * main/security/account-passwords.ts) over two real user agents on 127.0.0.1 and the real OS
 * keychain: identities made at account creation with the key in the keychain, encrypted-signed
 * delivery with discovery and pinning (no plaintext on the wire), truthful labels and
 * fingerprints, plaintext only when asked for, a changed certificate refused with an event
 * carrying both fingerprints and accepted only after the user accepts it, and passwords in the
 * keychain under their own service. Plus the API schema of the new arguments.
 *
 * Run with a keychain: `sh scripts/with-secret-service.sh npx vitest run test/unit/account-security.test.ts`
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, MessageView } from '../../shared/api.js';
import { validateCommand } from '../../shared/api-schema.js';
import { Messenger } from '../../main/im/messenger.js';
import { AccountSecurity, MessengerSecurity, type SecurityEvent } from '../../main/im/account-security.js';
import { CONTACT_BOOK_FILE } from '../../main/im/contact-book.js';
import { PAGER_REQUEST_POLICY } from '../../main/im/incoming-body.js';
import { securePagerPolicy } from '../../main/im/secure-messaging.js';
import { AccountPasswords, PASSWORD_KEYCHAIN_SERVICE } from '../../main/security/account-passwords.js';
import { forgetIdentity, readIdentityRecord } from '../../main/security/identity-store.js';
import { KEYCHAIN_SERVICE, OsKeychain } from '../../main/security/keychain.js';
import { UserAgent, type SipTrace } from '../../main/sip/ua/user-agent.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';
import { unavailableKeychain } from '../support/keychains.js';
import { FAST_SIP_TIMERS, messageInState, messageReceived, openDesk, peerToPeerAccount, type Desk } from '../support/messenger-desk.js';
import { freePort } from '../support/processes.js';
import { keychainGate, type KeychainGate } from '../support/secret-service.js';

const cleanups = cleanupsAfterEach();

let gate: KeychainGate;
beforeAll(async () => {
  gate = await keychainGate('test/unit/account-security.test.ts');
});

const TEMP_PREFIX = 'sipnote-account-security-';

interface Side {
  readonly aor: string;
  readonly dataDir: string;
  readonly security: MessengerSecurity;
  readonly account: AccountSecurity;
  readonly agent: UserAgent;
  readonly events: SecurityEvent[];
  readonly traces: SipTrace[];
  /** What the opening step handed over: text and label, or the answer. */
  readonly opened: Array<{ text?: string; security?: string; signer?: string; status?: number }>;
}

/**
 * One account as the Messenger runs it: a UA whose MESSAGEs go through `open` and whose
 * OPTIONS get our certificate. `aor` defaults to the UA's own address; `dataDir` may be shared.
 */
async function side(user: string, options: { dataDir?: string; aor?: (port: number) => string; acceptPlaintext?: boolean } = {}): Promise<Side> {
  const dataDir = options.dataDir ?? tempDir(cleanups, TEMP_PREFIX);
  const events: SecurityEvent[] = [];
  const traces: SipTrace[] = [];
  const opened: Side['opened'] = [];
  let account: AccountSecurity | undefined;
  // One port for UDP and TCP, as the Messenger binds them (RFC 3261 §18.2.1), and the UA's
  // address of record is the account's: the certificate must name the From.
  const port = await freePort();
  const aor = options.aor?.(port) ?? `sip:${user}@127.0.0.1:${port}`;
  const agent = await UserAgent.start({
    aor,
    listen: [
      { transport: 'udp', host: '127.0.0.1', port },
      { transport: 'tcp', host: '127.0.0.1', port },
    ],
    policy: securePagerPolicy(PAGER_REQUEST_POLICY),
    timers: FAST_SIP_TIMERS,
    onTrace: (trace) => traces.push(trace),
    onMessage: async (message) => {
      const result = await account!.open(message);
      if (result.kind === 'text') {
        opened.push({ text: result.text, security: result.security, ...(result.signerFingerprint === undefined ? {} : { signer: result.signerFingerprint }) });
        result.commit();
        return undefined;
      }
      opened.push(result.decision === undefined ? {} : { status: result.decision.status });
      return result.decision;
    },
    onOptions: (request) => account!.answerOptions(request),
  });
  cleanups.push(() => agent.close());
  const security = await MessengerSecurity.open({ dataDir }, (event) => events.push(event));
  account = await security.account({ id: `${user}-id`, sipAddress: aor, ...(options.acceptPlaintext === undefined ? {} : { acceptPlaintext: options.acceptPlaintext }) });
  cleanups.push(() => forgetIdentity(dataDir, aor, { keychain: security.keychain }).catch(() => false));
  cleanups.push(() => account!.close());
  return { aor, dataDir, security, account, agent, events, traces, opened };
}

function sentText(traces: readonly SipTrace[]): string {
  return traces.map((trace) => trace.data.toString('latin1')).join('\n');
}

describe('the API arguments of S/MIME', () => {
  it('accepts plaintext: true|false on messages.send and acceptPlaintext on accounts, and refuses anything else', () => {
    expect(validateCommand('messages.send', { accountId: 'a', to: 'sip:bob@example.com', text: 'hi', plaintext: true }).ok).toBe(true);
    expect(validateCommand('messages.send', { accountId: 'a', to: 'sip:bob@example.com', text: 'hi' }).ok).toBe(true);
    for (const plaintext of ['yes', 1, null, {}]) {
      const checked = validateCommand('messages.send', { accountId: 'a', to: 'sip:bob@example.com', text: 'hi', plaintext });
      expect(checked.ok).toBe(false);
      if (!checked.ok) expect(checked.error.issues?.[0]).toMatch(/^plaintext: /);
    }
    const account = peerToPeerAccount('a', 0, { sipAddress: 'sip:a@example.com' });
    expect(validateCommand('accounts.add', { ...account, acceptPlaintext: true }).ok).toBe(true);
    expect(validateCommand('accounts.add', { ...account, acceptPlaintext: 'true' }).ok).toBe(false);
    expect(validateCommand('accounts.update', { id: 'a', changes: { acceptPlaintext: false } }).ok).toBe(true);
    expect(validateCommand('accounts.update', { id: 'a', changes: { acceptPlaintext: 0 } }).ok).toBe(false);
    expect(validateCommand('accounts.add', { ...account, congestionSafePath: true }).ok).toBe(true);
    expect(validateCommand('accounts.add', { ...account, congestionSafePath: 'on' }).ok).toBe(false);
    expect(validateCommand('accounts.update', { id: 'a', changes: { congestionSafePath: false } }).ok).toBe(true);
    expect(validateCommand('accounts.update', { id: 'a', changes: { congestionSafePath: null } }).ok).toBe(false);
    expect(validateCommand('contacts.trust', { contactId: 1, action: 'trust-everything' }).ok).toBe(false);
    expect(validateCommand('contacts.trust', { contactId: 0, action: 'mark-verified' }).ok).toBe(false);
    expect(validateCommand('contacts.trust', { contactId: 1, action: 'mark-verified', fingerprint: 'AB' }).ok).toBe(false);
    expect(validateCommand('contacts.setPolicy', { contactId: 1, policy: 'plaintext' }).ok).toBe(false);
  });
});

describe('S/MIME between two accounts over loopback, keys in the OS keychain', () => {
  it('creates the identity with its key in the keychain, delivers encrypted-signed, labels and fingerprints truthfully, lists the pinned contact', async (context) => {
    if (gate.skip) context.skip();
    const [alice, bob] = await Promise.all([side('alice'), side('bob')]);
    // Onboarding made a key pair and certificate; the key is in the keychain, not the data dir.
    const record = await readIdentityRecord(alice.dataDir, alice.aor);
    expect(record?.key.storage).toBe('keychain');
    expect(alice.account.fingerprint).toBe(record?.info.fingerprintSha256);
    expect(alice.account.problem).toBeUndefined();

    const outgoing = alice.account.outgoing(bob.aor, false);
    expect(outgoing.security).toBe('encrypted-signed');
    const delivery = await alice.account.deliver(alice.agent, { peerUri: bob.aor, body: 'The eagle lands at noon', ...outgoing });
    expect(delivery).toMatchObject({ kind: 'response', status: 200, outcome: 'delivered' });
    expect(bob.opened).toEqual([{ text: 'The eagle lands at noon', security: 'encrypted-signed', signer: alice.account.fingerprint }]);
    // Nothing readable on the wire, either way.
    expect(sentText(alice.traces)).not.toContain('eagle');
    expect(sentText(bob.traces)).not.toContain('eagle');
    expect(sentText(alice.traces)).toMatch(/Content-Type: application\/pkcs7-mime; smime-type=authEnveloped-data/i);

    // Both sides pinned the other, and list it with the fingerprint, not yet verified.
    const [bobAtAlice] = await alice.security.contacts.list('alice-id', alice.aor);
    expect(bobAtAlice).toMatchObject({ aor: bob.aor, fingerprint: bob.account.fingerprint, trust: 'pinned', policy: 'smime', accountId: 'alice-id' });
    expect(bobAtAlice?.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const [aliceAtBob] = await bob.security.contacts.list('bob-id', bob.aor);
    expect(aliceAtBob).toMatchObject({ aor: alice.aor, fingerprint: alice.account.fingerprint, trust: 'pinned' });
    expect(bob.events.some((event) => event.kind === 'contact-updated' && event.contact.aor === alice.aor)).toBe(true);

    // The user compared fingerprints out of band.
    const verified = await alice.security.contacts.markVerified(bobAtAlice!.id);
    expect(verified.trust).toBe('verified');
    const book = JSON.parse(await readFile(join(alice.dataDir, CONTACT_BOOK_FILE), 'utf8')) as { verified: Record<string, string> };
    expect(book.verified[bob.aor]).toBe(bob.account.fingerprint);
  });

  it('refuses plaintext with 415 unless the account accepts it; sends plaintext only when asked, labelled so', async (context) => {
    if (gate.skip) context.skip();
    const [alice, bob, carol] = await Promise.all([side('alice'), side('bob'), side('carol', { acceptPlaintext: true })]);
    const plain = alice.account.outgoing(bob.aor, true);
    expect(plain.security).toBe('plaintext');
    const refused = await alice.account.deliver(alice.agent, { peerUri: bob.aor, body: 'in the clear', ...plain });
    expect(refused).toMatchObject({ kind: 'response', status: 415 });
    expect(bob.opened).toEqual([{ status: 415 }]);

    const taken = await alice.account.deliver(alice.agent, { peerUri: carol.aor, body: 'in the clear', ...plain });
    expect(taken).toMatchObject({ kind: 'response', status: 200 });
    expect(carol.opened).toEqual([{ text: 'in the clear', security: 'plaintext' }]);

    // A contact set to legacy-plaintext gets plaintext without asking each time.
    const contact = await alice.security.contacts.ensure('alice-id', carol.aor);
    await alice.security.contacts.setPolicy(contact.id, 'legacy-plaintext');
    expect(alice.account.outgoing(carol.aor, false).security).toBe('plaintext');
    expect(alice.account.outgoing(bob.aor, false).security).toBe('encrypted-signed');
  });

  it('refuses a message signed with a changed certificate, raises the event with both fingerprints, and takes it after the user accepts', async (context) => {
    if (gate.skip) context.skip();
    const bob = await side('bob');
    const alice = await side('alice', { aor: () => 'sip:alice@127.0.0.1' });
    expect(await alice.account.deliver(alice.agent, { peerUri: bob.aor, body: 'first, with the old key', ...alice.account.outgoing(bob.aor, false) })).toMatchObject({ kind: 'response', status: 200 });
    const oldFingerprint = alice.account.fingerprint!;

    // "alice" again, with a new key pair (another data dir: a reinstall, or an impostor).
    const newAlice = await side('alice', { aor: () => 'sip:alice@127.0.0.1' });
    expect(newAlice.account.fingerprint).not.toBe(oldFingerprint);
    const refused = await newAlice.account.deliver(newAlice.agent, { peerUri: bob.aor, body: 'trust me, new key', ...newAlice.account.outgoing(bob.aor, false) });
    expect(refused).toMatchObject({ kind: 'response', status: 403 });
    expect(bob.opened.map((entry) => entry.text ?? entry.status)).toEqual(['first, with the old key', 403]);
    const changed = bob.events.find((event): event is Extract<SecurityEvent, { kind: 'certificate-changed' }> => event.kind === 'certificate-changed');
    expect(changed).toMatchObject({ pinnedFingerprint: oldFingerprint, presentedFingerprint: newAlice.account.fingerprint, contact: { aor: 'sip:alice@127.0.0.1', trust: 'changed' } });
    expect(changed?.contact).toMatchObject({ fingerprint: oldFingerprint, presentedFingerprint: newAlice.account.fingerprint });

    // Verifying is refused while the change is pending; keeping the old one keeps refusing.
    await expect(bob.security.contacts.markVerified(changed!.contact.id)).rejects.toMatchObject({ code: 'invalid-state' });
    expect((await bob.security.contacts.rejectChange(changed!.contact.id)).trust).toBe('pinned');
    await newAlice.account.deliver(newAlice.agent, { peerUri: bob.aor, body: 'still me', ...newAlice.account.outgoing(bob.aor, false) });
    expect(bob.opened.at(-1)).toEqual({ status: 403 });
    const again = await bob.security.contacts.get(changed!.contact.id);
    expect(again).toMatchObject({ trust: 'changed', presentedFingerprint: newAlice.account.fingerprint });

    // The user compared the new fingerprint and accepts it: re-pinned (for the CLI too), not verified.
    const accepted = await bob.security.contacts.acceptChange(changed!.contact.id);
    expect(accepted).toMatchObject({ trust: 'pinned', fingerprint: newAlice.account.fingerprint });
    expect(accepted.presentedFingerprint).toBeUndefined();
    expect(await newAlice.account.deliver(newAlice.agent, { peerUri: bob.aor, body: 'accepted now', ...newAlice.account.outgoing(bob.aor, false) })).toMatchObject({ kind: 'response', status: 200 });
    expect(bob.opened.at(-1)).toEqual({ text: 'accepted now', security: 'encrypted-signed', signer: newAlice.account.fingerprint });
  });

  it('does not send to a peer without S/MIME, and says why (no fallback to plaintext)', async (context) => {
    if (gate.skip) context.skip();
    const alice = await side('alice');
    const legacyPort = await freePort();
    const plain = await UserAgent.start({
      aor: `sip:legacy@127.0.0.1:${legacyPort}`,
      listen: [
        { transport: 'udp', host: '127.0.0.1', port: legacyPort },
        { transport: 'tcp', host: '127.0.0.1', port: legacyPort },
      ],
      timers: FAST_SIP_TIMERS,
    });
    cleanups.push(() => plain.close());
    const legacy = `sip:legacy@127.0.0.1:${legacyPort}`;
    const delivery = await alice.account.deliver(alice.agent, { peerUri: legacy, body: 'secret', ...alice.account.outgoing(legacy, false) });
    expect(delivery.kind).toBe('not-sent');
    if (delivery.kind === 'not-sent') expect(delivery.reason).toMatch(/does not seem to support S\/MIME/);
    expect(sentText(alice.traces)).not.toMatch(/^MESSAGE /m);
  });
});

describe('account passwords in the OS keychain', () => {
  it('stores, reads back across instances, replaces and removes a password under its own service, scoped to the data dir', async (context) => {
    if (gate.skip) context.skip();
    const dataDir = tempDir(cleanups, TEMP_PREFIX);
    const passwords = new AccountPasswords(dataDir);
    cleanups.push(() => passwords.delete('acc1').catch(() => false));
    expect(PASSWORD_KEYCHAIN_SERVICE).not.toBe(KEYCHAIN_SERVICE);
    expect(await passwords.get('acc1')).toBeUndefined();
    await passwords.set('acc1', 'pässword 1');
    expect(await new AccountPasswords(dataDir).get('acc1')).toBe('pässword 1');
    // Filed under org.sipnote.passwords, not with the keys.
    expect(await new OsKeychain({ service: PASSWORD_KEYCHAIN_SERVICE }).get(passwords.entryOf('acc1'))).toBeDefined();
    expect(await new OsKeychain().get(passwords.entryOf('acc1'))).toBeUndefined();
    // Another data dir does not see it.
    expect(await new AccountPasswords(tempDir(cleanups, TEMP_PREFIX)).get('acc1')).toBeUndefined();
    await passwords.set('acc1', 'second');
    expect(await passwords.get('acc1')).toBe('second');
    await passwords.set('acc1', '');
    expect(await passwords.get('acc1')).toBeUndefined();
  });
});

// ---- Two Messengers (the desktop core) ---------------------------------------------------------

/** A Messenger on its own data dir, S/MIME by default (no `security` option), and one peer-to-peer account on 127.0.0.1. */
function desk(user: string, options: { dataDir?: string; sipAddress?: string; password?: string } = {}): Promise<Desk> {
  return openDesk(cleanups, user, {
    messenger: { timers: FAST_SIP_TIMERS },
    nextTimeoutMs: 8000,
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
    account: {
      ...(options.sipAddress === undefined ? {} : { sipAddress: options.sipAddress }),
      ...(options.password === undefined ? {} : { password: options.password }),
    },
  });
}

const certificateChanged = (event: ApiEvent): event is Extract<ApiEvent, { type: 'certificate-changed' }> => event.type === 'certificate-changed';

describe('two Messengers with S/MIME', () => {
  it('exchange encrypted-signed messages: no plaintext in the SIP log, true labels, fingerprints in the contacts', async (context) => {
    if (gate.skip) context.skip();
    const [alice, bob] = await Promise.all([desk('alice'), desk('bob')]);
    expect(alice.account.certificateFingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect((await alice.messenger.call('app.info', {})).capabilities).toMatchObject({ smime: true, keychain: true, contacts: true });

    const queued = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bob.account.sipAddress, text: 'Meet me by the old oak' });
    expect(queued).toMatchObject({ state: 'queued', security: 'encrypted-signed' });
    await alice.next(messageInState(queued.id, 'delivered'));
    const got = await bob.next(messageReceived('Meet me by the old oak'));
    expect(got.message).toMatchObject({ security: 'encrypted-signed', direction: 'in', contentType: expect.stringMatching(/^text\/plain/) });

    const logs = [...(await alice.messenger.call('sipLog.list', {})), ...(await bob.messenger.call('sipLog.list', {}))];
    expect(logs.map((entry) => entry.summary)).toEqual(expect.arrayContaining([expect.stringMatching(/^OPTIONS /), expect.stringMatching(/^MESSAGE /)]));
    for (const entry of logs) expect(entry.text).not.toContain('old oak');

    // Bob answers: alice is pinned at bob already, so no discovery; labels again true.
    const reply = await bob.messenger.call('messages.send', { accountId: bob.account.id, to: alice.account.sipAddress, text: 'Under the oak, at six' });
    await bob.next(messageInState(reply.id, 'delivered'));
    expect((await alice.next(messageReceived('Under the oak, at six'))).message.security).toBe('encrypted-signed');

    const [bobAtAlice] = await alice.messenger.call('contacts.list', { accountId: alice.account.id });
    expect(bobAtAlice).toMatchObject({ aor: bob.account.sipAddress, fingerprint: bob.account.certificateFingerprint, trust: 'pinned', policy: 'smime' });
    const verified = await alice.messenger.call('contacts.trust', { contactId: bobAtAlice!.id, action: 'mark-verified' });
    expect(verified.trust).toBe('verified');
    expect(alice.events.some((event) => event.type === 'contact-updated' && event.contact.trust === 'verified')).toBe(true);
    // No change pending: nothing to accept.
    await expect(alice.messenger.call('contacts.trust', { contactId: bobAtAlice!.id, action: 'accept-change' })).rejects.toMatchObject({ code: 'invalid-state' });
    await expect(alice.messenger.call('contacts.trust', { contactId: 9999, action: 'mark-verified' })).rejects.toMatchObject({ code: 'not-found' });

    // Plaintext only when the send asks for it, and labelled so; bob (S/MIME only) refuses it.
    const plain = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bob.account.sipAddress, text: 'clear as day', plaintext: true });
    expect(plain.security).toBe('plaintext');
    const refused = (await alice.next(messageInState(plain.id, 'failed'))).message;
    expect(refused.status).toBe(415);
  });

  it('refuse a changed certificate with an event carrying both fingerprints, and take it after the user accepts', async (context) => {
    if (gate.skip) context.skip();
    const bob = await desk('bob');
    const aliceAddress = `sip:alice@127.0.0.1:${await freePort()}`;
    const alice = await desk('alice', { sipAddress: aliceAddress });
    const first = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bob.account.sipAddress, text: 'hello from the old laptop' });
    await bob.next(messageReceived('hello from the old laptop'));
    await alice.next(messageInState(first.id, 'delivered'));

    // The same address on a new install: a new key pair, which bob has never seen.
    const newAlice = await desk('alice', { sipAddress: aliceAddress });
    expect(newAlice.account.certificateFingerprint).not.toBe(alice.account.certificateFingerprint);
    const sent = await newAlice.messenger.call('messages.send', { accountId: newAlice.account.id, to: bob.account.sipAddress, text: 'hello from the new laptop' });
    const failed = (await newAlice.next(messageInState(sent.id, 'failed'))).message;
    expect(failed.status).toBe(403);
    const changed = await bob.next(certificateChanged);
    expect(changed).toMatchObject({ pinnedFingerprint: alice.account.certificateFingerprint, presentedFingerprint: newAlice.account.certificateFingerprint });
    expect(changed.contact).toMatchObject({ aor: aliceAddress, trust: 'changed', fingerprint: alice.account.certificateFingerprint, presentedFingerprint: newAlice.account.certificateFingerprint });
    expect(bob.events.some((event) => event.type === 'message-received' && event.message.text === 'hello from the new laptop')).toBe(false);
    const listed = (await bob.messenger.call('contacts.list', {})).find((contact) => contact.aor === aliceAddress);
    expect(listed).toMatchObject({ trust: 'changed', presentedFingerprint: newAlice.account.certificateFingerprint });

    // Bob compared the new fingerprint with alice and accepts it; now her messages get through.
    // (A new message: a retry of the refused one reuses its Call-ID, From tag and CSeq, which
    // bob's UA still holds for Timer J and answers 482, RFC 3261 §8.2.2.2.)
    const accepted = await bob.messenger.call('contacts.trust', { contactId: changed.contact.id, action: 'accept-change' });
    expect(accepted).toMatchObject({ trust: 'pinned', fingerprint: newAlice.account.certificateFingerprint });
    const again = await newAlice.messenger.call('messages.send', { accountId: newAlice.account.id, to: bob.account.sipAddress, text: 'hello again, new laptop' });
    await newAlice.next(messageInState(again.id, 'delivered'));
    const received = (await bob.next(messageReceived('hello again, new laptop'))).message;
    expect(received.security).toBe('encrypted-signed');
  });

  it('keeps account passwords in the keychain, not in the data dir; they survive a restart and go with the account', async (context) => {
    if (gate.skip) context.skip();
    const dir = tempDir(cleanups, TEMP_PREFIX);
    const first = await desk('carol', { dataDir: dir, password: 'correct horse battery' });
    expect(first.account.password).toBe('keychain');
    const passwords = new AccountPasswords(dir);
    expect(await passwords.get(first.account.id)).toBe('correct horse battery');
    await first.messenger.close();
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isFile()) expect(readFileSync(path).includes('correct horse battery')).toBe(false);
    }

    const reopened = await Messenger.open({ dataDir: dir, networkPollMs: false, security: {} });
    cleanups.push(() => reopened.close());
    const [account] = await reopened.call('accounts.list', {});
    expect(account).toMatchObject({ id: first.account.id, password: 'keychain', certificateFingerprint: first.account.certificateFingerprint });
    await reopened.call('accounts.update', { id: first.account.id, changes: { password: 'new one' } });
    expect(await passwords.get(first.account.id)).toBe('new one');
    await reopened.call('accounts.remove', { id: first.account.id });
    expect(await passwords.get(first.account.id)).toBeUndefined();
  });
});

describe('without a usable keychain', () => {
  /** A keychain that is never there (no Secret Service on the bus). */
  const absent = unavailableKeychain('no keychain', 'no bus');

  it('keeps the account (password for the session only), says why, sends nothing protected and never falls back to plaintext', async () => {
    const dir = tempDir(cleanups, TEMP_PREFIX);
    const messenger = await Messenger.open({ dataDir: dir, networkPollMs: false, timers: FAST_SIP_TIMERS, security: { keychain: absent, passwordKeychain: absent } });
    cleanups.push(() => messenger.close());
    const events: ApiEvent[] = [];
    messenger.subscribe((event) => events.push(event));
    const port = await freePort();
    const account = await messenger.call('accounts.add', peerToPeerAccount('dave', port, { password: 'hunter2' }));
    expect(account.password).toBe('session');
    expect(account.certificateFingerprint).toBeUndefined();
    const problems = events.flatMap((event) => (event.type === 'error' ? [`${event.code}: ${event.message}`] : []));
    expect(problems).toEqual([expect.stringMatching(/^keychain: the password is kept for this session only/), expect.stringMatching(/^smime-identity: no S\/MIME identity for sip:dave@/)]);

    const failedEvent = new Promise<MessageView>((resolve) => {
      messenger.subscribe((event) => {
        if (event.type === 'message-state' && event.message.state === 'failed') resolve(event.message);
      });
    });
    const queued = await messenger.call('messages.send', { accountId: account.id, to: `sip:erin@127.0.0.1:${await freePort()}`, text: 'secret plans' });
    expect(queued.security).toBe('encrypted-signed');
    const failed = await failedEvent;
    expect(failed.id).toBe(queued.id);
    expect(failed.reason).toMatch(/^Not sent: no S\/MIME identity/);
    expect(events.some((event) => event.type === 'sip-log' && event.entry.summary.startsWith('MESSAGE'))).toBe(false);
  });
});
