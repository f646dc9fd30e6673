/**
 * The Messenger over two real user agents on loopback (peer to peer), each on its own store in
 * a temp dir: accounts, sending with its states, receiving (stored before the 200), failure,
 * retry and cancel, history paging, search, read marks, the SIP log, settings, and what
 * survives a restart (accounts, settings, history; never the password).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ApiEvent, MessageView } from '../../shared/api.js';
import { Messenger } from '../../main/im/messenger.js';
import { describeSipBytes, SipLog } from '../../main/im/sip-log.js';
import type { SipRequest } from '../../main/sip/message/sip-message.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';
import { ManualClock } from '../support/manual-clock.js';
import { FAST_SIP_TIMERS, messageInState, messageReceived, openDesk, peerToPeerAccount, type Desk } from '../support/messenger-desk.js';
import { freePort } from '../support/processes.js';
import { RawUdpPeer } from '../support/raw-udp.js';

const cleanups = cleanupsAfterEach();

/** A fresh data dir, removed after the test. */
function dataDir(): string {
  return tempDir(cleanups, 'sipnote-messenger-');
}

/** A plaintext-only Messenger (`security: false`) with fast SIP timers and one peer-to-peer account on a free port. */
function peer(user: string, clock?: ManualClock): Promise<Desk> {
  return openDesk(cleanups, user, { messenger: { security: false, timers: FAST_SIP_TIMERS, ...(clock === undefined ? {} : { clock }) } });
}

/** The registrar's 200 OK to `request`, granting `expires` seconds to the Contact it carried (RFC 3261 §10.3 step 8). */
function registerOk(request: SipRequest, expires: number): string {
  const contact = request.headers.get('contact') ?? '';
  return [
    'SIP/2.0 200 OK',
    `Via: ${request.headers.get('via') ?? ''}`,
    `From: ${request.headers.get('from') ?? ''}`,
    `To: ${request.headers.get('to') ?? ''};tag=reg`,
    `Call-ID: ${request.callId}`,
    `CSeq: ${request.cseq.seq} REGISTER`,
    `Contact: ${contact.replace(/;expires=\d+/, '')};expires=${expires}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

describe('Messenger peer to peer over loopback', () => {
  it('sends alice → bob: queued, sending, delivered; bob stores it, counts it unread, and logs the SIP', async () => {
    const [alice, bob] = await Promise.all([peer('alice'), peer('bob')]);
    expect(alice.account.listening).toEqual([`udp:127.0.0.1:${alice.account.localPort}`, `tcp:127.0.0.1:${alice.account.localPort}`]);
    expect(alice.account.registration).toEqual({ state: 'disabled' });

    const queued = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bob.account.sipAddress, text: 'Hello Bob ✓' });
    expect(queued).toMatchObject({ state: 'queued', direction: 'out', security: 'plaintext', attempts: 0, peer: bob.account.sipAddress });
    await alice.next(messageInState(queued.id, 'sending'));
    const delivered = (await alice.next(messageInState(queued.id, 'delivered'))).message;
    expect(delivered).toMatchObject({ status: 200, reason: 'OK', attempts: 1 });
    expect(delivered.callId).toBeTruthy();

    const arrival = await bob.next(messageReceived('Hello Bob ✓'));
    expect(arrival.message).toMatchObject({ direction: 'in', state: 'received', security: 'plaintext', peer: alice.account.sipAddress });
    expect(arrival.conversation).toMatchObject({ peer: alice.account.sipAddress, unread: 1, total: 1 });
    const [conversation] = await bob.messenger.call('conversations.list', {});
    expect(conversation?.lastMessage?.text).toBe('Hello Bob ✓');
    const read = await bob.messenger.call('conversations.markRead', { conversationId: arrival.conversation.id });
    expect(read.unread).toBe(0);

    const log = await alice.messenger.call('sipLog.list', {});
    // With T1 = 50 ms a busy machine (bob commits to disk before answering) may see a retransmission: listed once here.
    expect([...new Set(log.map((entry) => `${entry.direction} ${entry.summary}`))]).toEqual([
      `out MESSAGE ${bob.account.sipAddress} SIP/2.0`,
      'in SIP/2.0 200 OK',
    ]);
    expect(log[0]?.text).toContain('Hello Bob ✓');
    await alice.messenger.call('sipLog.clear', {});
    expect(await alice.messenger.call('sipLog.list', {})).toEqual([]);
  });

  it('stores a message once even when the same request arrives again after its transaction ended', async () => {
    const clock = new ManualClock();
    const bob = await peer('bob', clock);
    const raw = await RawUdpPeer.open();
    cleanups.push(() => raw.close());
    const request = (branch: string): string =>
      [
        `MESSAGE ${bob.account.sipAddress} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=${branch}`,
        'Max-Forwards: 70',
        'From: <sip:mallory@127.0.0.1>;tag=fixed',
        `To: <${bob.account.sipAddress}>`,
        'Call-ID: same-call@127.0.0.1',
        'CSeq: 7 MESSAGE',
        'Content-Type: text/plain',
        'Content-Length: 5',
        '',
        'again',
      ].join('\r\n');
    await raw.send(request('z9hG4bK-one'), bob.account.localPort);
    await raw.waitFor(1);
    // Timer J (64·T1 over UDP, RFC 3261 §17.2.2) ends the server transaction, so the next copy is new to the transaction layer.
    clock.advance(64 * 50 + 1);
    // A proxy's re-send: a new branch (a new transaction), the same Call-ID, CSeq and From tag.
    await raw.send(request('z9hG4bK-two'), bob.account.localPort);
    const answers = await raw.waitFor(2);
    expect(answers.map((answer) => (answer.kind === 'response' ? answer.status : 0))).toEqual([200, 200]);
    const [conversation] = await bob.messenger.call('conversations.list', {});
    expect(conversation).toMatchObject({ total: 1, unread: 1 });
    expect(bob.events.filter((event) => event.type === 'message-received')).toHaveLength(1);
  });

  it('answers 415 to a body it cannot show, and stores nothing', async () => {
    const bob = await peer('bob');
    const raw = await RawUdpPeer.open();
    cleanups.push(() => raw.close());
    await raw.send(
      [
        `MESSAGE ${bob.account.sipAddress} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bK-img`,
        'Max-Forwards: 70',
        'From: <sip:mallory@127.0.0.1>;tag=t',
        `To: <${bob.account.sipAddress}>`,
        'Call-ID: image@127.0.0.1',
        'CSeq: 1 MESSAGE',
        'Content-Type: image/png',
        'Content-Length: 4',
        '',
        'PNG!',
      ].join('\r\n'),
      bob.account.localPort,
    );
    const [answer] = await raw.waitFor(1);
    expect(answer?.kind === 'response' ? answer.status : 0).toBe(415);
    expect(await bob.messenger.call('conversations.list', {})).toEqual([]);
  });

  it('fails a send to a closed TCP port with the reason; retry tries again; cancel gives up', async () => {
    const alice = await peer('alice');
    const closed = await freePort();
    const sent = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: `sip:nobody@127.0.0.1:${closed};transport=tcp`, text: 'hello?' });
    const failed = (await alice.next(messageInState(sent.id, 'failed'))).message;
    expect(failed).toMatchObject({ status: 503, attempts: 1 });
    // A transport error may pass later: the outbox will retry it by itself (after 30 s).
    expect(failed.reason).toMatch(/transport error.*; will retry$/);

    alice.events.length = 0;
    const retried = await alice.messenger.call('messages.retry', { messageId: sent.id });
    expect(retried).toMatchObject({ state: 'queued', attempts: 1 });
    const again = (await alice.next(messageInState(sent.id, 'failed'))).message;
    expect(again.attempts).toBe(2);

    const cancelled = await alice.messenger.call('messages.cancel', { messageId: sent.id });
    expect(cancelled.state).toBe('cancelled');
    // A cancelled message cannot be cancelled again, and a delivered one cannot be retried.
    expect(await alice.messenger.dispatch('messages.cancel', { messageId: sent.id })).toMatchObject({ ok: false, error: { code: 'invalid-state' } });
    expect(await alice.messenger.dispatch('messages.retry', { messageId: 999 })).toMatchObject({ ok: false, error: { code: 'not-found' } });
  });

  it('refuses addresses the SIP parser rejects, and sends to an im: address as sip:', async () => {
    const [alice, bob] = await Promise.all([peer('alice'), peer('bob')]);
    expect(await alice.messenger.dispatch('messages.send', { accountId: alice.account.id, to: 'sip:bob@[::1', text: 'x' })).toMatchObject({
      ok: false,
      error: { code: 'invalid-arguments' },
    });
    const port = bob.account.localPort;
    // im: has no port; bob listens on 5060 only in real life, so check the mapping on the stored target instead.
    const viaIm = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: 'im:carol@127.0.0.1', text: 'hi' });
    expect(viaIm.peer).toBe('sip:carol@127.0.0.1');
    const [conversation] = await alice.messenger.call('conversations.list', {});
    expect(conversation?.target).toBe('sip:carol@127.0.0.1');
    expect(port).toBeGreaterThan(0);
  });

  it('pages history by position, searches with highlight ranges, filters by account', async () => {
    const [alice, bob] = await Promise.all([peer('alice'), peer('bob')]);
    const sent: MessageView[] = [];
    for (let i = 1; i <= 5; i++) {
      const message = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bob.account.sipAddress, text: `note ${i} about Lunch` });
      sent.push(message);
      await alice.next(messageInState(message.id, 'delivered'));
    }
    const conversationId = sent[0]!.conversationId;
    const newest = await alice.messenger.call('conversations.history', { conversationId, limit: 2 });
    expect(newest).toMatchObject({ from: 3, total: 5 });
    expect(newest.messages.map((message) => message.text)).toEqual(['note 4 about Lunch', 'note 5 about Lunch']);
    const oldest = await alice.messenger.call('conversations.history', { conversationId, from: 0, limit: 2 });
    expect(oldest.messages.map((message) => message.text)).toEqual(['note 1 about Lunch', 'note 2 about Lunch']);
    expect((await alice.messenger.call('conversations.history', { conversationId, from: 10, limit: 2 })).messages).toEqual([]);

    const hits = await alice.messenger.call('search', { query: 'lunch 3' });
    expect(hits).toHaveLength(1);
    expect(hits[0]?.message.text).toBe('note 3 about Lunch');
    expect(hits[0]?.ranges).toEqual([
      [5, 6],
      [13, 18],
    ]);
    expect(await alice.messenger.call('search', { query: 'lunch', accountId: 'nobody' })).toEqual([]);
    expect(await alice.messenger.call('conversations.list', { accountId: 'nobody' })).toEqual([]);
    expect(await alice.messenger.dispatch('conversations.history', { conversationId: 999 })).toMatchObject({ ok: false, error: { code: 'not-found' } });
  });

  it('restarts an account on update, keeps a port clash as an error, and removes it', async () => {
    const [alice, bob] = await Promise.all([peer('alice'), peer('bob')]);
    const clash = await alice.messenger.call('accounts.update', { id: alice.account.id, changes: { localPort: bob.account.localPort } });
    expect(clash.error).toMatch(/cannot listen/);
    expect(clash.listening).toEqual([]);
    const failedSend = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bob.account.sipAddress, text: 'x' });
    expect((await alice.next(messageInState(failedSend.id, 'failed'))).message.reason).toMatch(/^Not sent: cannot listen/);

    const fixed = await alice.messenger.call('accounts.update', { id: alice.account.id, changes: { localPort: alice.account.localPort, displayName: 'Alice' } });
    expect(fixed.error).toBeUndefined();
    expect(fixed.displayName).toBe('Alice');
    expect(await alice.messenger.dispatch('accounts.add', peerToPeerAccount('alice', alice.account.localPort))).toMatchObject({ ok: false, error: { code: 'invalid-arguments' } });
    await alice.messenger.call('accounts.remove', { id: alice.account.id });
    expect(await alice.messenger.call('accounts.list', {})).toEqual([]);
    expect(await alice.messenger.call('conversations.list', {})).toEqual([]);
  });

  it('registers with a registrar, reports the state, and unregisters on close', async () => {
    const registrar = await RawUdpPeer.open();
    cleanups.push(() => registrar.close());
    const messenger = await Messenger.open({ dataDir: dataDir(), security: false, networkPollMs: false, timers: FAST_SIP_TIMERS });
    const events: ApiEvent[] = [];
    messenger.subscribe((event) => events.push(event));
    const port = await freePort();
    const account = await messenger.call('accounts.add', {
      ...peerToPeerAccount('carol', port),
      sipAddress: 'sip:carol@example.test',
      register: true,
      registrar: `sip:127.0.0.1:${registrar.port}`,
    });
    expect(account.registration).toEqual({ state: 'registering', registrar: `sip:127.0.0.1:${registrar.port}` });
    /** Answers the n-th REGISTER 200 OK, granting `expires` to the Contact it carried. */
    const answer = async (n: number, expires: number): Promise<string> => {
      const [request] = (await registrar.waitFor(n)).slice(n - 1);
      if (request?.kind !== 'request' || request.method !== 'REGISTER') throw new Error('expected a REGISTER');
      await registrar.send(registerOk(request, expires), port);
      return request.headers.get('contact') ?? '';
    };
    const registeredEvent = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not registered; saw ${JSON.stringify(events)}`)), 5000);
      messenger.subscribe((event) => {
        if (event.type === 'registration-changed' && event.registration.state === 'registered') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const contact = await answer(1, 600);
    expect(contact).toContain(`127.0.0.1:${port}`);
    await registeredEvent;
    const [registered] = await messenger.call('accounts.list', {});
    expect(registered?.registration).toMatchObject({ state: 'registered', expires: 600 });
    // close() removes the binding (expires=0, RFC 3261 §10.2.2) before it returns.
    const closing = messenger.close();
    const removal = await answer(2, 0);
    expect(removal).toMatch(/expires=0/);
    await closing;
  });

  it('sends a message waiting for its retry as soon as its account registers (again), not when the backoff ends', async () => {
    const clock = new ManualClock();
    const registrar = await RawUdpPeer.open();
    cleanups.push(() => registrar.close());
    const messenger = await Messenger.open({ dataDir: dataDir(), security: false, networkPollMs: false, clock, timers: FAST_SIP_TIMERS, unregisterTimeoutMs: 100 });
    cleanups.push(() => messenger.close());
    const events: ApiEvent[] = [];
    const waiters: Array<() => void> = [];
    messenger.subscribe((event) => {
      events.push(event);
      for (const wake of waiters.splice(0)) wake();
    });
    const until = async (match: (event: ApiEvent) => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (!events.some(match)) {
        if (Date.now() > deadline) throw new Error(`no ${what}; saw ${events.map((event) => event.type).join(', ')}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 100);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    };
    const port = await freePort();
    const account = await messenger.call('accounts.add', { ...peerToPeerAccount('carol', port), sipAddress: 'sip:carol@example.test', register: true, registrar: `sip:127.0.0.1:${registrar.port}` });
    const [register] = await registrar.waitFor(1);

    // Nobody at bob's address yet: a transport error, retried by the backoff in 30 s (manual clock: never).
    const bobPort = await freePort();
    const sent = await messenger.call('messages.send', { accountId: account.id, to: `sip:bob@127.0.0.1:${bobPort};transport=tcp`, text: 'once carol is registered' });
    await until((event) => event.type === 'message-state' && event.message.id === sent.id && event.message.state === 'failed', 'failure');
    const bob = await Messenger.open({ dataDir: dataDir(), security: false, networkPollMs: false });
    cleanups.push(() => bob.close());
    await bob.call('accounts.add', peerToPeerAccount('bob', bobPort));

    // The registrar answers: registered, and the outbox flushes carol's retries at once.
    if (register?.kind !== 'request') throw new Error('expected a REGISTER');
    await registrar.send(registerOk(register, 600), port);
    await until((event) => event.type === 'message-state' && event.message.id === sent.id && event.message.state === 'delivered', 'delivery after the registration');
    expect(clock.now()).toBe(0);
    const states = events.flatMap((event) => (event.type === 'message-state' && event.message.id === sent.id ? [event.message.state] : []));
    expect(states).toEqual(['queued', 'sending', 'failed', 'sending', 'delivered']);
  });

  it('keeps accounts, settings and history in the store of the data dir, never the password', async () => {
    const dir = dataDir();
    const bob = await peer('bob');
    const first = await Messenger.open({ dataDir: dir, security: false, networkPollMs: false, timers: FAST_SIP_TIMERS });
    const account = await first.call('accounts.add', { ...peerToPeerAccount('alice', await freePort()), register: false, password: 'hunter2-secret' });
    expect(account.password).toBe('session');
    await first.call('settings.update', { theme: 'dark' });
    const delivered = new Promise<void>((resolve) =>
      first.subscribe((event) => {
        if (event.type === 'message-state' && event.message.state === 'delivered') resolve();
      }),
    );
    const sent = await first.call('messages.send', { accountId: account.id, to: bob.account.sipAddress, text: 'kept across restarts' });
    await bob.next(messageReceived('kept across restarts'));
    await delivered;
    await first.close();
    for (const file of readdirSync(dir)) expect(readFileSync(join(dir, file)).includes('hunter2'), file).toBe(false);

    const second = await Messenger.open({ dataDir: dir, security: false, networkPollMs: false });
    cleanups.push(() => second.close());
    const [reloaded] = await second.call('accounts.list', {});
    expect(reloaded).toMatchObject({ id: account.id, sipAddress: account.sipAddress, password: 'none' });
    expect(await second.call('settings.get', {})).toMatchObject({ theme: 'dark', notifications: true });
    const [conversation] = await second.call('conversations.list', {});
    expect(conversation).toMatchObject({ accountId: account.id, peer: bob.account.sipAddress, total: 1 });
    expect(conversation?.lastMessage).toMatchObject({ id: sent.id, text: 'kept across restarts', state: 'delivered', status: 200 });
    expect((await second.call('search', { query: 'restarts' })).map((hit) => hit.message.id)).toEqual([sent.id]);

    // Removing the account keeps its history in the store; adding it again shows it again.
    await second.call('accounts.remove', { id: account.id });
    expect(await second.call('conversations.list', {})).toEqual([]);
    const again = await second.call('accounts.add', peerToPeerAccount('alice', account.localPort));
    expect((await second.call('conversations.list', {}))[0]).toMatchObject({ accountId: again.id, total: 1 });
  });

  it('imports the config.json of an earlier build once', async () => {
    const dir = dataDir();
    const account = { id: 'old1', ...peerToPeerAccount('dora', await freePort()) };
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ version: 1, accounts: [account], settings: { theme: 'light' } }));
    const messenger = await Messenger.open({ dataDir: dir, security: false, networkPollMs: false });
    cleanups.push(() => messenger.close());
    expect(await messenger.call('accounts.list', {})).toMatchObject([{ id: 'old1', sipAddress: account.sipAddress }]);
    expect(await messenger.call('settings.get', {})).toMatchObject({ theme: 'light' });
  });
});

describe('SipLog', () => {
  it('keeps the newest entries, summarises non-text bodies, cuts long ones', () => {
    const log = new SipLog(2);
    const trace = (text: string) => ({ time: 1, accountId: 'a', direction: 'in' as const, transport: 'udp' as const, remote: { address: '::1', port: 5060 }, data: Buffer.from(text) });
    log.add(trace('OPTIONS sip:a SIP/2.0\r\n\r\n'));
    log.add(trace('SIP/2.0 200 OK\r\n\r\n'));
    const last = log.add(trace('MESSAGE sip:a SIP/2.0\r\nContent-Type: application/pkcs7-mime\r\n\r\n\u0000\u0001'));
    expect(log.list().map((entry) => entry.summary)).toEqual(['SIP/2.0 200 OK', 'MESSAGE sip:a SIP/2.0']);
    expect(last.remote).toBe('[::1]:5060');
    expect(last.text).toContain('[2 bytes of application/pkcs7-mime]');
    expect(describeSipBytes(Buffer.from(`MESSAGE sip:a SIP/2.0\r\nContent-Type: text/plain\r\n\r\n${'x'.repeat(20_000)}`)).text).toMatch(/more characters\]$/);
    expect(describeSipBytes(Buffer.from('\r\n\r\n')).summary).toBe('(keep-alive)');
  });
});
