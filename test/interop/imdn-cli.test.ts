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
import { createSocket, type RemoteInfo } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HistoryEntry, SendSummary } from '../../shared/cli-events.js';
import { exitWithin, freePort, startSipnote, stopAll, waitForLine, type Tracked } from '../support/processes.js';
import { keychainGate } from '../support/secret-service.js';

const gate = await keychainGate('test/interop/imdn-cli.test.ts');

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await stopAll();
});

async function run(args: readonly string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const proc = startSipnote(args);
  proc.child.stdin?.end();
  const code = await exitWithin(proc);
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

/** Forwards UDP to `target`; the target's 200s to MESSAGEs come back as 202 Accepted. */
async function acceptingRelay(target: number): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  let client: RemoteInfo | undefined;
  socket.on('message', (data, from) => {
    if (from.port !== target) {
      client = from;
      socket.send(data, target, '127.0.0.1');
      return;
    }
    const text = data.toString('latin1');
    const accepted = text.startsWith('SIP/2.0 200 ') && /^CSeq:\s*\d+\s+MESSAGE\s*$/im.test(text);
    if (client !== undefined) socket.send(accepted ? Buffer.from(text.replace(/^SIP\/2\.0 200 [^\r]*/, 'SIP/2.0 202 Accepted'), 'latin1') : data, client.port, client.address);
  });
  return socket.address().port;
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
    const root = await mkdtemp(join(tmpdir(), 'sipnote-imdn-cli-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const dirs = { alice: join(root, 'alice'), bob: join(root, 'bob') };
    const [alicePort, bobPort] = [await freePort(), await freePort()];
    const relayPort = await acceptingRelay(bobPort);
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
});
