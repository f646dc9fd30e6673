/**
 * S/MIME by default between two real `sipnote` processes (issue #4, "Done when"): each with its
 * own data dir and an identity made by `sipnote keys init` (private keys in the one Secret
 * Service session that scripts/with-secret-service.sh provides), no `keys trust` beforehand.
 *
 * The sender discovers the listener's certificate (OPTIONS), over UDP and over TCP; the listener
 * reports `encrypted-signed` and the sender's fingerprint, as `keys show --json` gives it; none
 * of the text is on the wire (the sender's --trace, and for UDP the datagrams themselves, caught
 * by a relay the test puts between the two: the listener's AoR points at it). Then the
 * refusals: a replay (the captured datagram, again after a restart) gets 200 and is printed
 * once; a re-created sender identity is refused with the loud warning; plaintext gets 415.
 *
 *   sender --UDP--> relay (tapPort) --UDP--> listener (udpPort)     bob's AoR: sip:bob@127.0.0.1:tapPort
 *   sender --TCP----------------------------> listener (tcp:tapPort)
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ListenEvent, MessageEvent, SendSummary } from '../../shared/cli-events.js';
import { fingerprintSha256 } from '../../main/security/certificates.js';
import { ContactCertificates } from '../../main/security/contact-certificates.js';
import { exitWithin, freePort, startSipnote, stopAll, waitForLine, type Tracked } from '../support/processes.js';
import { RawUdpPeer } from '../support/raw-udp.js';
import { keychainGate } from '../support/secret-service.js';

const gate = await keychainGate('test/interop/smime-cli.test.ts');

const ALICE = 'sip:alice@127.0.0.1';
const CAROL = 'sip:carol@127.0.0.1';

/** Forwards UDP between any client and the listener, keeping what the clients sent. */
class UdpRelay {
  readonly fromClients: Buffer[] = [];
  private lastClient: RemoteInfo | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly listenerPort: number,
  ) {
    socket.on('message', (data, from) => {
      if (from.port === this.listenerPort) {
        if (this.lastClient !== undefined) socket.send(data, this.lastClient.port, this.lastClient.address);
        return;
      }
      this.fromClients.push(data);
      this.lastClient = from;
      socket.send(data, this.listenerPort, '127.0.0.1');
    });
  }

  static async open(port: number, listenerPort: number): Promise<UdpRelay> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, '127.0.0.1', () => resolve());
    });
    return new UdpRelay(socket, listenerPort);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** Resolves once stderr matches `pattern` (an event, not a sleep); rejects after `ms` or on exit. */
function waitForStderr(proc: Tracked, pattern: RegExp, ms = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      if (!pattern.test(proc.stderr())) return false;
      cleanup();
      resolve(proc.stderr());
      return true;
    };
    const onExit = (): void => {
      if (check()) return;
      cleanup();
      reject(new Error(`exited before stderr matched ${pattern}; stderr: ${proc.stderr()}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`stderr did not match ${pattern} within ${ms} ms; stderr: ${proc.stderr()}`));
    }, ms);
    const onData = (): void => void setImmediate(check);
    const cleanup = (): void => {
      clearTimeout(timer);
      proc.child.stderr?.off('data', onData);
      proc.child.off('exit', onExit);
    };
    if (check()) return;
    proc.child.stderr?.on('data', onData);
    proc.child.once('exit', onExit);
  });
}

/** Runs a sipnote command to its end. */
async function run(args: readonly string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const proc = startSipnote(args);
  proc.child.stdin?.end();
  const code = await exitWithin(proc);
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

async function keysJson(args: readonly string[]): Promise<{ fingerprintSha256: string }> {
  const result = await run(['keys', ...args, '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { fingerprintSha256: string };
}

function messageEvents(proc: Tracked): MessageEvent[] {
  return proc
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as ListenEvent)
    .filter((event): event is MessageEvent => event.event === 'message');
}

/** The request with a new Via branch and Call-ID (a new transaction), the body untouched. */
function asNewTransaction(request: Buffer): Buffer {
  const end = request.indexOf('\r\n\r\n');
  const head = request
    .subarray(0, end)
    .toString('latin1')
    .replace(/branch=z9hG4bK[^;\r\n]*/, 'branch=z9hG4bKreplayed')
    .replace(/^Call-ID: .*$/m, 'Call-ID: replayed-call');
  return Buffer.concat([Buffer.from(head, 'latin1'), request.subarray(end)]);
}

describe.skipIf(gate.skip)('sipnote send and listen: S/MIME by default', () => {
  let root: string;
  let dirs: { alice: string; carol: string; bob: string; nobody: string };
  let tapPort: number;
  let udpPort: number;
  let bob: string;
  let relay: UdpRelay;
  let fingerprints: { alice: string; carol: string; bob: string };
  let listener: Tracked | undefined;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'sipnote-smime-cli-'));
    dirs = { alice: join(root, 'alice'), carol: join(root, 'carol'), bob: join(root, 'bob'), nobody: join(root, 'nobody') };
    tapPort = await freePort();
    udpPort = await freePort();
    bob = `sip:bob@127.0.0.1:${tapPort}`;
    relay = await UdpRelay.open(tapPort, udpPort);
    const inits = await Promise.all([
      run(['keys', 'init', '--aor', ALICE, '--data-dir', dirs.alice]),
      run(['keys', 'init', '--aor', CAROL, '--data-dir', dirs.carol]),
      run(['keys', 'init', '--aor', bob, '--data-dir', dirs.bob]),
    ]);
    for (const init of inits) expect(init.code, init.stderr).toBe(0);
    const [alice, carol, bobKeys] = await Promise.all([
      keysJson(['show', '--aor', ALICE, '--data-dir', dirs.alice]),
      keysJson(['show', '--aor', CAROL, '--data-dir', dirs.carol]),
      keysJson(['show', '--aor', bob, '--data-dir', dirs.bob]),
    ]);
    fingerprints = { alice: alice.fingerprintSha256, carol: carol.fingerprintSha256, bob: bobKeys.fingerprintSha256 };
  });

  afterAll(async () => {
    await stopAll();
    await relay?.close();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  afterEach(async () => {
    if (listener === undefined) return;
    listener.child.kill('SIGTERM');
    expect(await exitWithin(listener)).toBe(0);
    listener = undefined;
  });

  async function startListener(): Promise<Tracked> {
    const proc = startSipnote(['listen', '--aor', bob, '--listen', `udp:127.0.0.1:${udpPort},tcp:127.0.0.1:${tapPort}`, '--data-dir', dirs.bob, '--json']);
    await waitForLine(proc, (line) => line.includes('"listening"'));
    listener = proc;
    return proc;
  }

  async function send(from: string, dataDir: string, text: string, extra: readonly string[] = []): Promise<{ code: number | string; stdout: string; stderr: string }> {
    return run(['send', '--from', from, '--to', bob, '--data-dir', dataDir, '--json', '--trace', ...extra, text]);
  }

  it('discovers the certificate and delivers encrypted-signed over UDP and over TCP, with none of the text on the wire; replays are answered 200 and printed once, also after a restart', async () => {
    const bobProc = await startListener();

    // UDP, through the relay: alice has never heard of bob's certificate.
    const udpText = 'meet me at the old mill at nine';
    const alice = await send(ALICE, dirs.alice, udpText, ['--transport', 'udp']);
    expect(alice.code, alice.stderr).toBe(0);
    expect(JSON.parse(alice.stdout) as SendSummary).toMatchObject({ status: 200, outcome: 'delivered', transport: 'udp', security: 'encrypted-signed' });
    expect(alice.stderr).toMatch(/^>> udp 127\.0\.0\.1:\d+\nOPTIONS sip:bob@/m);
    expect(alice.stderr).toMatch(/^>> udp 127\.0\.0\.1:\d+\nMESSAGE sip:bob@/m);
    expect(alice.stderr).toContain(`pinned the certificate of ${bob} on first use (SHA-256 ${fingerprints.bob})`);
    expect(alice.stderr).not.toContain(udpText);
    const udpEvent = JSON.parse(await waitForLine(bobProc, (line) => line.includes(udpText))) as MessageEvent;
    expect(udpEvent).toMatchObject({ security: 'encrypted-signed', fingerprint: fingerprints.alice, from: ALICE, text: udpText, transport: 'udp' });
    expect(udpEvent.contentType).toMatch(/^application\/pkcs7-mime; smime-type=authEnveloped-data/);

    // What really crossed the wire: an OPTIONS and a MESSAGE, neither with the text. The MESSAGE
    // (our certificate inside) is over 1300 octets and stayed on UDP: loopback's MTU is known.
    const captured = relay.fromClients.filter((datagram) => datagram.subarray(0, 8).toString('latin1') === 'MESSAGE ');
    expect(relay.fromClients.some((datagram) => datagram.subarray(0, 8).toString('latin1') === 'OPTIONS ')).toBe(true);
    expect(captured).toHaveLength(1);
    expect(captured[0]!.length).toBeGreaterThan(1300);
    for (const datagram of relay.fromClients) expect(datagram.includes(udpText)).toBe(false);

    // Each side pinned the other's certificate, as `keys show` fingerprints it.
    expect(fingerprintSha256((await new ContactCertificates(dirs.alice).pinned(bob))!)).toBe(fingerprints.bob);
    expect(fingerprintSha256((await new ContactCertificates(dirs.bob).pinned(ALICE))!)).toBe(fingerprints.alice);

    // TCP, straight to the listener: carol discovers bob's certificate over TCP.
    const tcpText = 'bring the blue folder';
    const carol = await send(CAROL, dirs.carol, tcpText, ['--transport', 'tcp']);
    expect(carol.code, carol.stderr).toBe(0);
    expect(JSON.parse(carol.stdout) as SendSummary).toMatchObject({ status: 200, transport: 'tcp', security: 'encrypted-signed' });
    expect(carol.stderr).toMatch(/^>> tcp 127\.0\.0\.1:\d+\nOPTIONS sip:bob@/m);
    expect(carol.stderr).toMatch(/^>> tcp 127\.0\.0\.1:\d+\nMESSAGE sip:bob@/m);
    expect(carol.stderr).not.toContain(tcpText);
    const tcpEvent = JSON.parse(await waitForLine(bobProc, (line) => line.includes(tcpText))) as MessageEvent;
    expect(tcpEvent).toMatchObject({ security: 'encrypted-signed', fingerprint: fingerprints.carol, from: CAROL, text: tcpText, transport: 'tcp' });

    // A replay of alice's datagram in a new transaction: 200 from the replay cache, not printed.
    const raw = await RawUdpPeer.open();
    try {
      await raw.send(asNewTransaction(captured[0]!), udpPort);
      const [first] = await raw.waitFor(1);
      expect(first).toMatchObject({ kind: 'response', status: 200 });

      // The listener stops (all it printed is in), and a new one on the same data dir gets the
      // very same bytes: 200 again, nothing printed.
      bobProc.child.kill('SIGTERM');
      expect(await exitWithin(bobProc)).toBe(0);
      listener = undefined;
      expect(messageEvents(bobProc).map((event) => event.text)).toEqual([udpText, tcpText]);
      const restarted = await startListener();
      await raw.send(captured[0]!, udpPort);
      const [, second] = await raw.waitFor(2);
      expect(second).toMatchObject({ kind: 'response', status: 200 });

      // A fresh message after the replay: alice's certificate is left out now, and the restarted
      // listener verifies it with the pinned one. It is the only thing printed.
      const laterText = 'one more thing';
      const later = await send(ALICE, dirs.alice, laterText, ['--transport', 'udp']);
      expect(later.code, later.stderr).toBe(0);
      expect(later.stderr).not.toMatch(/OPTIONS sip:bob@/);
      await waitForLine(restarted, (line) => line.includes(laterText));
      expect(messageEvents(restarted).map((event) => [event.text, event.security, event.fingerprint])).toEqual([[laterText, 'encrypted-signed', fingerprints.alice]]);
      const laterDatagram = relay.fromClients.filter((datagram) => datagram.subarray(0, 8).toString('latin1') === 'MESSAGE ').at(-1)!;
      expect(laterDatagram.length).toBeLessThan(captured[0]!.length - 300);
    } finally {
      await raw.close();
    }
  });

  it('refuses a re-created sender identity with 403 and a loud warning naming both fingerprints', async () => {
    const bobProc = await startListener();
    expect((await run(['keys', 'forget', '--aor', ALICE, '--data-dir', dirs.alice])).code).toBe(0);
    const reborn = await keysJson(['init', '--aor', ALICE, '--data-dir', dirs.alice]);
    expect(reborn.fingerprintSha256).not.toBe(fingerprints.alice);

    const result = await send(ALICE, dirs.alice, 'it is really me');
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout) as SendSummary).toMatchObject({ status: 403, reason: 'Signer Certificate Changed' });
    expect(result.stderr).toMatch(/not delivered: 403 Signer Certificate Changed/);
    const stderr = await waitForStderr(bobProc, /HAS CHANGED[\s\S]*presented:/);
    expect(stderr).toContain(`WARNING: THE CERTIFICATE OF ${ALICE} HAS CHANGED`);
    expect(stderr).toContain(`pinned:    SHA-256 ${fingerprints.alice}`);
    expect(stderr).toContain(`presented: SHA-256 ${reborn.fingerprintSha256}`);
    expect(stderr).toMatch(new RegExp(`sipnote keys trust --peer ${ALICE} --cert \\S+\\.pem --replace --data-dir \\S+`));
    expect(messageEvents(bobProc)).toEqual([]);
  });

  it('refuses plaintext with 415 and an Accept listing the S/MIME types', async () => {
    await startListener();
    const result = await send(ALICE, dirs.alice, 'in the clear', ['--plaintext']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout) as SendSummary).toMatchObject({ status: 415, security: 'plaintext' });
    expect(result.stderr).toMatch(/^<< udp [\s\S]*SIP\/2\.0 415 [^\n]*\n[\s\S]*^Accept: application\/pkcs7-mime;smime-type=authEnveloped-data/m);
  });

  it('tells the user to run `sipnote keys init` when there is no identity', async () => {
    const sent = await run(['send', '--from', 'sip:nobody@127.0.0.1', '--to', bob, '--data-dir', dirs.nobody, 'x']);
    expect(sent.code).toBe(1);
    expect(sent.stderr).toContain(`sipnote keys init --aor sip:nobody@127.0.0.1 --data-dir ${dirs.nobody}`);
    const listened = await run(['listen', '--aor', 'sip:nobody@127.0.0.1', '--listen', 'udp:127.0.0.1:0', '--data-dir', dirs.nobody]);
    expect(listened.code).toBe(1);
    expect(listened.stderr).toContain('sipnote keys init --aor sip:nobody@127.0.0.1');
  });
});
