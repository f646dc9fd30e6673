/**
 * The first message to someone whose certificate is unknown, while they are away (issue #4,
 * item 5), with real `sipnote` processes: each side with its own data dir and an identity made
 * by `sipnote keys init` (keys in the Secret Service session of scripts/with-secret-service.sh).
 *
 * Bob's port has a UDP socket that takes everything and answers nothing. `sipnote send
 * --data-dir A` stores the message, asks bob for his certificate (a signed OPTIONS) and gets no
 * answer (timer F, 64·T1 with --t1 50): it says so on stderr, exits 3 (a timeout, README
 * "send exits … 3 on a timeout or transport failure"), and keeps the message in the outbox with
 * its next attempt; nothing but the OPTIONS left. `sipnote outbox` lists it with that reason.
 * Then bob's `sipnote listen --data-dir B` runs on the port; `outbox --retry ID` makes the
 * message due now (a flush sends only what is due) and `outbox --flush` discovers bob's
 * certificate, pins it and delivers the message, which bob prints encrypted-signed.
 *
 * Run: `sh scripts/with-secret-service.sh npx vitest run test/interop/discovery-wait-cli.test.ts`
 */
import { createSocket, type Socket } from 'node:dgram';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HistoryEntry, MessageEvent } from '../../shared/cli-events.js';
import { fingerprintSha256 } from '../../main/security/certificates.js';
import { ContactCertificates } from '../../main/security/contact-certificates.js';
import { runCleanups, tempDir, type Cleanups } from '../support/cleanups.js';
import { exitWithin, freePort, startSipnote, stopAll, waitForLine } from '../support/processes.js';
import { keychainGate } from '../support/secret-service.js';

const gate = await keychainGate('test/interop/discovery-wait-cli.test.ts');

const ALICE = 'sip:alice@127.0.0.1';

const cleanups: Cleanups = [];
afterEach(async () => {
  await stopAll();
  await runCleanups(cleanups);
});

/** Runs a sipnote command to its end. */
async function run(args: readonly string[], ms = 15_000): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const proc = startSipnote(args);
  proc.child.stdin?.end();
  const code = await exitWithin(proc, ms);
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

const jsonLines = <T>(text: string): T[] =>
  text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as T);

/** A UDP socket on bob's port that keeps what arrives and answers nothing. */
async function silentPort(port: number): Promise<{ datagrams: Buffer[]; close(): Promise<void> }> {
  const socket: Socket = createSocket('udp4');
  const datagrams: Buffer[] = [];
  socket.on('message', (data) => datagrams.push(data));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, '127.0.0.1', () => resolve());
  });
  let open = true;
  const close = (): Promise<void> => {
    if (!open) return Promise.resolve();
    open = false;
    return new Promise((resolve) => socket.close(() => resolve()));
  };
  cleanups.push(close);
  return { datagrams, close };
}

describe.skipIf(gate.skip)('sipnote send to a peer whose certificate is unknown, while the peer is away', () => {
  it('exits 3 with the discovery failure, keeps the message in the outbox with the reason, and delivers it encrypted-signed by outbox --flush once the peer listens', async () => {
    const root = tempDir(cleanups, 'sipnote-discovery-wait-cli-');
    const dirs = { alice: join(root, 'alice'), bob: join(root, 'bob') };
    const port = await freePort();
    const bob = `sip:bob@127.0.0.1:${port}`;
    const inits = await Promise.all([run(['keys', 'init', '--aor', ALICE, '--data-dir', dirs.alice]), run(['keys', 'init', '--aor', bob, '--data-dir', dirs.bob])]);
    for (const init of inits) expect(init.code, init.stderr).toBe(0);
    const bobKeys = await run(['keys', 'show', '--aor', bob, '--data-dir', dirs.bob, '--json']);
    const aliceKeys = await run(['keys', 'show', '--aor', ALICE, '--data-dir', dirs.alice, '--json']);
    const fingerprints = {
      bob: (JSON.parse(bobKeys.stdout) as { fingerprintSha256: string }).fingerprintSha256,
      alice: (JSON.parse(aliceKeys.stdout) as { fingerprintSha256: string }).fingerprintSha256,
    };

    // Bob is away: his port takes datagrams and answers none.
    const away = await silentPort(port);
    const text = 'the key is under the third stone';
    const sent = await run(['send', '--from', ALICE, '--to', bob, '--data-dir', dirs.alice, '--t1', '50', text]);
    expect(sent.code, sent.stderr).toBe(3);
    expect(sent.stderr).toContain(`no certificate is pinned for ${bob}: asking ${bob} for it (OPTIONS)`);
    expect(sent.stderr).toContain(`sipnote: no certificate is pinned for ${bob}, and asking ${bob} for it (OPTIONS) got no answer`);
    expect(sent.stderr).toMatch(/message #\d+ is kept in the outbox; next attempt \S+ \(sipnote outbox --flush\)/);
    expect(sent.stdout).toBe('');
    // Only the OPTIONS (and its retransmissions) reached bob's port; none carried the text.
    const methods = new Set(away.datagrams.map((data) => data.toString('latin1').split(' ', 1)[0]));
    expect(methods).toEqual(new Set(['OPTIONS']));
    for (const datagram of away.datagrams) expect(datagram.includes(text)).toBe(false);
    expect(await new ContactCertificates(dirs.alice).pinned(bob)).toBeUndefined();

    // The outbox says what waits, and why.
    const listed = await run(['outbox', '--data-dir', dirs.alice, '--json']);
    expect(listed.code).toBe(0);
    const [waiting, ...others] = jsonLines<HistoryEntry>(listed.stdout);
    expect(others).toEqual([]);
    expect(waiting).toMatchObject({ direction: 'out', peer: bob, body: text, state: 'failed', security: 'encrypted-signed', status: 408, attempts: 1 });
    expect(waiting!.reason).toMatch(new RegExp(`^no certificate is pinned for ${bob}, and asking ${bob} for it \\(OPTIONS\\) got no answer`));
    expect(waiting!.nextAttemptAt).not.toBeNull();
    const human = await run(['outbox', '--data-dir', dirs.alice]);
    expect(human.stdout).toContain(`#${waiting!.id} -> ${bob} failed, 1 attempt; next attempt `);
    expect(human.stdout).toContain('; last: 408 no certificate is pinned for');

    // Bob comes back on his port.
    await away.close();
    const listener = startSipnote(['listen', '--aor', bob, '--listen', `udp:127.0.0.1:${port},tcp:127.0.0.1:${port}`, '--data-dir', dirs.bob, '--json']);
    await waitForLine(listener, (line) => line.includes('"listening"'));

    // The next attempt is 30 s away: --retry makes it due now, --flush sends it.
    const retry = await run(['outbox', '--retry', String(waiting!.id), '--data-dir', dirs.alice, '--json']);
    expect(retry.code, retry.stderr).toBe(0);
    const flush = await run(['outbox', '--flush', '--data-dir', dirs.alice, '--t1', '50', '--json']);
    expect(flush.code, flush.stderr).toBe(0);
    expect(jsonLines<HistoryEntry>(flush.stdout).map((entry) => [entry.id, entry.state, entry.status, entry.attempts, entry.security])).toEqual([
      [waiting!.id, 'delivered', 200, 2, 'encrypted-signed'],
    ]);
    expect(flush.stderr).toContain(`pinned the certificate of ${bob} on first use (SHA-256 ${fingerprints.bob})`);
    expect(fingerprintSha256((await new ContactCertificates(dirs.alice).pinned(bob))!)).toBe(fingerprints.bob);

    const event = JSON.parse(await waitForLine(listener, (line) => line.includes(text))) as MessageEvent;
    expect(event).toMatchObject({ security: 'encrypted-signed', fingerprint: fingerprints.alice, from: ALICE, text });
    expect((await run(['outbox', '--data-dir', dirs.alice])).stdout).toBe('the outbox is empty\n');

    listener.child.kill('SIGTERM');
    expect(await exitWithin(listener, 10_000)).toBe(0);
  }, 60_000);
});
