/**
 * sipnote as a client of the Kamailio deployed from deploy/kamailio (started by the test on
 * loopback ports, stopped by PID): registration with a right and a wrong password, refresh,
 * un-REGISTER on SIGTERM, MESSAGE through the authenticating proxy (407 answered) over UDP,
 * TCP and TLS, and store-and-forward to an offline user (202, delivered on registration).
 * Every sipnote is a real `sipnote` process.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ListenEvent, MessageEvent, RegisteredEvent, RegistrationFailedEvent, SendSummary } from '../../shared/cli-events.js';
import { startKamailio, type RunningKamailio } from '../support/kamailio.js';
import { exitWithin, startSipnote, stopAll, waitForLine, type Tracked } from '../support/processes.js';

const USERS = [
  { user: 'alice', password: 'secret1' },
  { user: 'bob', password: 'secret2' },
];

let kamailio: RunningKamailio | undefined;
afterEach(async () => {
  await stopAll();
  await kamailio?.stop();
  kamailio = undefined;
});

type Transport = 'udp' | 'tcp' | 'tls';

function serverUri(k: RunningKamailio, transport: Transport): string {
  if (transport === 'tls') return `sip:127.0.0.1:${k.tlsPort};transport=tls`;
  return `sip:127.0.0.1:${transport === 'udp' ? k.udpPort : k.tcpPort};transport=${transport}`;
}

function trustArgs(k: RunningKamailio): string[] {
  if (k.caCertPem === undefined) return [];
  const file = join(k.dir, 'trusted.pem');
  writeFileSync(file, k.caCertPem);
  return ['--trust-cert', file];
}

function events(proc: Tracked): ListenEvent[] {
  return proc
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as ListenEvent);
}

/** bob's `sipnote listen --register` through the registrar on `transport`. */
function listenRegistered(k: RunningKamailio, transport: Transport, password = 'secret2', extra: string[] = []): Tracked {
  return startSipnote(
    ['listen', '--aor', 'sip:bob@example.test', '--listen', 'udp:127.0.0.1:0,tcp:127.0.0.1:0', '--register', '--registrar', serverUri(k, transport), '--json', '--plaintext', ...trustArgs(k), ...extra],
    { env: { ...process.env, SIPNOTE_PASSWORD: password } },
  );
}

async function sendFromAlice(k: RunningKamailio, transport: Transport, text: string): Promise<{ code: number | string; summary: SendSummary; stderr: string }> {
  const send = startSipnote(
    ['send', '--from', 'sip:alice@example.test', '--to', 'sip:bob@example.test', '--proxy', serverUri(k, transport), '--json', '--plaintext', '--trace', ...trustArgs(k), text],
    { env: { ...process.env, SIPNOTE_PASSWORD: 'secret1' } },
  );
  const code = await exitWithin(send);
  return { code, summary: JSON.parse(send.stdout()) as SendSummary, stderr: send.stderr() };
}

describe('sipnote with the deployed Kamailio', () => {
  it.each(['udp', 'tcp', 'tls'] as const)('registers bob over %s and relays alice’s MESSAGE to him through the proxy (407 answered)', async (transport) => {
    kamailio = await startKamailio({ users: USERS, tls: transport === 'tls' });
    const bob = listenRegistered(kamailio, transport);
    const registered = JSON.parse(await waitForLine(bob, (l) => l.includes('"registered"'))) as RegisteredEvent;
    expect(registered.expires).toBeGreaterThan(0);

    const text = `hello bob over ${transport} ✓`;
    const sent = await sendFromAlice(kamailio, transport, text);
    expect(sent.code, sent.stderr).toBe(0);
    expect(sent.summary).toMatchObject({ status: 200, outcome: 'delivered', transport });
    const received = JSON.parse(await waitForLine(bob, (l) => l.includes('"message"'))) as MessageEvent;
    expect(received).toMatchObject({ text, from: 'sip:alice@example.test' });
    // The proxy challenged, and the retry carried credentials (seen with --trace).
    expect(sent.stderr).toMatch(/<< .*\nSIP\/2\.0 407 /);
    expect(sent.stderr).toMatch(/\nProxy-Authorization: Digest username="alice", realm="example.test"/);
  });

  it('reports a wrong password as a final registration failure, with no retry loop', async () => {
    kamailio = await startKamailio({ users: USERS });
    const bob = listenRegistered(kamailio, 'udp', 'not-the-password');
    const failed = JSON.parse(await waitForLine(bob, (l) => l.includes('"registration-failed"'))) as RegistrationFailedEvent;
    expect(failed.status).toBe(401);
    expect(failed.retryIn).toBeUndefined();
    expect(failed.reason).toMatch(/rejected/);
  });

  it('refreshes the registration before it lapses, and removes it on SIGTERM (un-REGISTER)', async () => {
    kamailio = await startKamailio({ users: USERS, defines: ['MIN_EXPIRES=2'] });
    const bob = listenRegistered(kamailio, 'udp', 'secret2', ['--expires', '4']);
    await waitForLine(bob, (l) => l.includes('"registered"'));
    // Refreshed halfway through the 4 s granted: a second "registered" without anything else.
    await waitForLine(bob, () => events(bob).filter((e) => e.event === 'registered').length >= 2, 10_000);

    bob.child.kill('SIGTERM');
    expect(await exitWithin(bob)).toBe(0);
    expect(events(bob).at(-1)).toMatchObject({ event: 'unregistered' });
    // With the binding gone, the proxy stores alice's MESSAGE instead of relaying it.
    const sent = await sendFromAlice(kamailio, 'udp', 'are you there?');
    expect(sent.summary).toMatchObject({ status: 202, outcome: 'accepted' });
  });

  it('stores a MESSAGE for offline bob (202) and delivers it when he registers', async () => {
    kamailio = await startKamailio({ users: USERS });
    const sent = await sendFromAlice(kamailio, 'udp', 'for later ✓');
    expect(sent.code, sent.stderr).toBe(0);
    expect(sent.summary).toMatchObject({ status: 202, outcome: 'accepted' });

    const bob = listenRegistered(kamailio, 'udp');
    const received = JSON.parse(await waitForLine(bob, (l) => l.includes('"message"'))) as MessageEvent;
    expect(received).toMatchObject({ text: 'for later ✓', from: 'sip:alice@example.test' });
    expect(received.date).toBeDefined(); // msilo adds the time it stored the message
  });
});
