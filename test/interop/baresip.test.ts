/**
 * Interop with an independent user agent, baresip 1.0.0 (its own SIP stack, libre), through
 * the Kamailio deployed from deploy/kamailio: baresip sends a MESSAGE (RFC 3428) to a
 * registered `sipnote listen`, and `sipnote send` sends one to a registered baresip, over UDP
 * and over TCP. Each test gets a fresh Kamailio, so no registration outlives it (baresip's
 * Contact has a random user part per run; a stale binding would make the proxy fork to it).
 * baresip is driven as described in test/support/baresip.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MessageEvent, RegisteredEvent, SendSummary } from '../../shared/cli-events.js';
import { startBaresip, type RunningBaresip } from '../support/baresip.js';
import { startKamailio, type RunningKamailio } from '../support/kamailio.js';
import { exitWithin, startSipnote, stopAll, waitForLine } from '../support/processes.js';

const USERS = [
  { user: 'alice', password: 'secret1' },
  { user: 'bob', password: 'secret2' },
];

let kamailio: RunningKamailio | undefined;
let baresip: RunningBaresip | undefined;
afterEach(async () => {
  await baresip?.stop();
  baresip = undefined;
  await stopAll();
  await kamailio?.stop();
  kamailio = undefined;
});

type Transport = 'udp' | 'tcp';

function proxyUri(k: RunningKamailio, transport: Transport): string {
  return `sip:127.0.0.1:${transport === 'udp' ? k.udpPort : k.tcpPort};transport=${transport}`;
}

describe('sipnote and baresip through the deployed Kamailio', () => {
  it.each(['udp', 'tcp'] as const)('baresip (alice) sends a MESSAGE over %s to registered sipnote (bob), which prints it', async (transport) => {
    kamailio = await startKamailio({ users: USERS });
    const bob = startSipnote(
      ['listen', '--aor', 'sip:bob@example.test', '--listen', 'udp:127.0.0.1:0,tcp:127.0.0.1:0', '--register', '--registrar', proxyUri(kamailio, transport), '--json', '--plaintext'],
      { env: { ...process.env, SIPNOTE_PASSWORD: 'secret2' } },
    );
    const registered = JSON.parse(await waitForLine(bob, (l) => l.includes('"registered"'))) as RegisteredEvent;
    expect(registered.expires).toBeGreaterThan(0);

    baresip = await startBaresip({
      user: 'alice',
      password: 'secret1',
      proxyPort: transport === 'udp' ? kamailio.udpPort : kamailio.tcpPort,
      transport,
      peer: 'sip:bob@example.test',
    });
    const text = `hello bob from baresip over ${transport}, "quoted" ✓`;
    await baresip.sendMessage(text);

    // The proxy relays a MESSAGE from one of its users only after a valid Proxy-Authorization,
    // so its arrival also shows baresip answered the 407.
    const received = JSON.parse(await waitForLine(bob, (l) => l.includes('"message"'))) as MessageEvent;
    expect(received).toMatchObject({
      text,
      body: text,
      from: 'sip:alice@example.test',
      to: 'sip:bob@example.test',
      transport,
    });
    expect(received.contentType).toMatch(/^text\/plain\b/);
  });

  it.each(['udp', 'tcp'] as const)('sipnote (alice) sends a MESSAGE over %s through the proxy (407 answered) to registered baresip (bob)', async (transport) => {
    kamailio = await startKamailio({ users: USERS });
    baresip = await startBaresip({
      user: 'bob',
      password: 'secret2',
      proxyPort: transport === 'udp' ? kamailio.udpPort : kamailio.tcpPort,
      transport,
      peer: 'sip:alice@example.test',
    });

    const text = `hello baresip from sipnote over ${transport}, "quoted" ✓`;
    const send = startSipnote(
      ['send', '--from', 'sip:alice@example.test', '--to', 'sip:bob@example.test', '--proxy', proxyUri(kamailio, transport), '--json', '--plaintext', '--trace', text],
      { env: { ...process.env, SIPNOTE_PASSWORD: 'secret1' } },
    );
    const code = await exitWithin(send);
    expect(code, send.stderr()).toBe(0);
    // 200, not 202: baresip itself answered (the proxy answers 202 only when it stores).
    expect(JSON.parse(send.stdout()) as SendSummary).toMatchObject({ status: 200, outcome: 'delivered', transport });
    expect(send.stderr()).toMatch(/<< .*\nSIP\/2\.0 407 /);
    expect(send.stderr()).toMatch(/\nProxy-Authorization: Digest username="alice", realm="example.test"/);

    expect(await baresip.waitForMessage('sip:alice@example.test')).toBe(text);
  });
});
