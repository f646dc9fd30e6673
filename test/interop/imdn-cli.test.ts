/**
 * IMDN (RFC 5438) with the CLI: `sipnote send --data-dir` asks for notifications; the
 * receiving `sipnote listen --data-dir` stores the IM and sends the positive-delivery
 * notification back (signed and encrypted like the IM); a `sipnote listen --data-dir` on the
 * sender's data dir takes it and moves the stored message on, so `sipnote history` shows it.
 *
 * A relay in front of bob plays a store-and-forward server that answers 202 Accepted (it
 * rewrites bob's 200), so the sender records `accepted` and only the notification can make the
 * message `delivered`:
 *
 *   send (alice) --UDP--> relay (bob's AoR) --UDP--> listen (bob, --data-dir B)
 *   listen (alice, --data-dir A)  <--UDP-- bob's IMDN, to alice's AoR
 *
 * Run with a keychain: `sh scripts/with-secret-service.sh npx vitest run test/interop/imdn-cli.test.ts`
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HistoryEntry, SendSummary } from '../../shared/cli-events.js';
import { runCleanups, tempDir, type Cleanups } from '../support/cleanups.js';
import { exitWithin, freePort, startSipnote, stopAll, waitForLine, type Tracked } from '../support/processes.js';
import { FAST_SIP_TIMERS, messageInState, openDesk } from '../support/messenger-desk.js';
import { keychainGate } from '../support/secret-service.js';
import { acceptedFor200, udpRelay } from '../support/udp-relay.js';

const gate = await keychainGate('test/interop/imdn-cli.test.ts');

const cleanups: Cleanups = [];
afterEach(async () => {
  await runCleanups(cleanups);
  await stopAll();
});

async function run(args: readonly string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const proc = startSipnote(args);
  proc.child.stdin?.end();
  const code = await exitWithin(proc);
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

async function listen(aor: string, port: number, dataDir: string): Promise<Tracked> {
  const proc = startSipnote(['listen', '--aor', aor, '--listen', `udp:127.0.0.1:${port}`, '--data-dir', dataDir, '--json', '--verbose']);
  await waitForLine(proc, (line) => line.includes('"listening"'));
  cleanups.push(async () => {
    proc.child.kill('SIGTERM');
    await exitWithin(proc);
  });
  return proc;
}

describe.skipIf(gate.skip)('sipnote listen --data-dir and IMDN', () => {
  it('sends the delivery notification for a stored IM; the sender’s listener moves its message from accepted to delivered', async () => {
    const root = tempDir(cleanups, 'sipnote-imdn-cli-');
    const dirs = { alice: join(root, 'alice'), bob: join(root, 'bob') };
    const [alicePort, bobPort] = [await freePort(), await freePort()];
    const relayPort = await udpRelay(cleanups, bobPort, acceptedFor200);
    const alice = `sip:alice@127.0.0.1:${alicePort}`;
    const bob = `sip:bob@127.0.0.1:${relayPort}`;
    for (const init of await Promise.all([run(['keys', 'init', '--aor', alice, '--data-dir', dirs.alice]), run(['keys', 'init', '--aor', bob, '--data-dir', dirs.bob])])) {
      expect(init.code, init.stderr).toBe(0);
    }
    cleanups.push(() => run(['keys', 'forget', '--aor', alice, '--data-dir', dirs.alice]));
    cleanups.push(() => run(['keys', 'forget', '--aor', bob, '--data-dir', dirs.bob]));
    const bobListener = await listen(bob, bobPort, dirs.bob);
    const aliceListener = await listen(alice, alicePort, dirs.alice);

    const sent = await run(['send', '--from', alice, '--to', bob, '--data-dir', dirs.alice, '--json', 'please confirm']);
    expect(sent.code, sent.stderr).toBe(0);
    expect(JSON.parse(sent.stdout) as SendSummary).toMatchObject({ status: 202, outcome: 'accepted', security: 'encrypted-signed' });
    await waitForLine(bobListener, (line) => line.includes('please confirm'));

    // Bob's notification reaches alice's listener, which updates the data dir the sender used.
    await waitForLine(aliceListener, (line) => /message #\d+ to sip:bob@.*: delivered \(IMDN\)/.test(line), 10_000, 'stderr');
    const history = await run(['history', '--data-dir', dirs.alice, '--json']);
    expect(history.code, history.stderr).toBe(0);
    const entries = history.stdout.trim().split('\n').map((line) => JSON.parse(line) as HistoryEntry);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ direction: 'out', state: 'delivered', status: 202, body: 'please confirm' });

    // The notification is not a message: alice's listener printed none, bob's history holds the IM only.
    expect(aliceListener.stdout()).not.toContain('"event":"message"');
    const bobHistory = await run(['history', '--data-dir', dirs.bob, '--json']);
    expect(bobHistory.stdout.trim().split('\n').map((line) => (JSON.parse(line) as HistoryEntry).body)).toEqual(['please confirm']);
  });

  it('never prints or stores a protected isComposing status as a message; says it on stderr with --verbose', async () => {
    const root = tempDir(cleanups, 'sipnote-control-cli-');
    const bobPort = await freePort();
    const bob = `sip:bob@127.0.0.1:${bobPort}`;
    const init = await run(['keys', 'init', '--aor', bob, '--data-dir', root]);
    expect(init.code, init.stderr).toBe(0);
    cleanups.push(() => run(['keys', 'forget', '--aor', bob, '--data-dir', root]));
    const proc = startSipnote(['listen', '--aor', bob, '--listen', `udp:127.0.0.1:${bobPort}`, '--data-dir', root, '--json', '--verbose']);
    await waitForLine(proc, (line) => line.includes('"listening"'));
    cleanups.push(async () => {
      proc.child.kill('SIGTERM');
      await exitWithin(proc);
    });
    // Alice is the desktop core: S/MIME by default, isComposing and IMDN requests included.
    const alice = await openDesk(cleanups, 'alice', { messenger: { timers: FAST_SIP_TIMERS } });
    const first = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bob, text: 'first' });
    await alice.next(messageInState(first.id, 'delivered'), 10_000);
    await waitForLine(proc, (line) => line.includes('"first"'));
    // Typing: a signed and encrypted application/im-iscomposing+xml MESSAGE; the listener says so on stderr only.
    const [conversation] = await alice.messenger.call('conversations.list', { accountId: alice.account.id });
    await alice.messenger.call('conversations.setComposing', { conversationId: conversation!.id, active: true });
    await waitForLine(proc, (line) => line.includes('is typing'), 10_000, 'stderr');
    const second = await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bob, text: 'second' });
    await alice.next(messageInState(second.id, 'delivered'), 10_000);
    await waitForLine(proc, (line) => line.includes('"second"'));
    const printed = proc.stdout().trim().split('\n').map((line) => JSON.parse(line) as { event: string; text?: string }).filter((event) => event.event === 'message');
    expect(printed.map((event) => event.text)).toEqual(['first', 'second']);
  });

  it('on SIGTERM sends the delivery notifications still queued, at its pace, and reports any it could not', async () => {
    const root = tempDir(cleanups, 'sipnote-imdn-shutdown-');
    const bobPort = await freePort();
    const relayPort = await udpRelay(cleanups, bobPort, acceptedFor200); // 202: only a notification makes a message delivered
    const bob = `sip:bob@127.0.0.1:${relayPort}`;
    const init = await run(['keys', 'init', '--aor', bob, '--data-dir', root]);
    expect(init.code, init.stderr).toBe(0);
    cleanups.push(() => run(['keys', 'forget', '--aor', bob, '--data-dir', root]));
    const proc = await listen(bob, bobPort, root);
    const alice = await openDesk(cleanups, 'alice', { messenger: { timers: FAST_SIP_TIMERS } });

    // A burst the pacer (10 at once, then 5 a second) cannot send as fast as it arrives.
    const total = 30;
    const ids: number[] = [];
    for (let i = 0; i < total; i++) ids.push((await alice.messenger.call('messages.send', { accountId: alice.account.id, to: bob, text: `burst ${i}` })).id);
    await waitForLine(proc, (line) => line.includes(`"burst ${total - 1}"`), 30_000);
    proc.child.kill('SIGTERM');
    expect(await exitWithin(proc)).toBe(0);

    // Every notification either went (its message is delivered) or is counted on stderr: none is dropped silently.
    const unsent = Number(/(\d+) delivery notifications? not sent/.exec(proc.stderr())?.[1] ?? '0');
    const delivered = (): number => new Set(alice.events.filter((event) => ids.some((id) => messageInState(id, 'delivered')(event))).map((event) => (event as { message: { id: number } }).message.id)).size;
    await alice.until(() => (delivered() >= total - unsent ? true : undefined), 10_000, `${total - unsent} messages delivered`);
    expect(delivered()).toBe(total - unsent);
  });
});
