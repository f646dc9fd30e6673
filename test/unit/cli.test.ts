/**
 * The `sipnote` command line: exit codes, JSON output, stdin, usage errors. Most cases run
 * `main()` in-process with injected streams; one runs the real bin file as a child process.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { ListeningEvent, MessageEvent, SendSummary } from '../../shared/cli-events.js';
import { main } from '../../main/cli/main.js';
import { buildCpim } from '../../main/im/cpim.js';
import { runCleanups, tempDir, type Cleanups } from '../support/cleanups.js';
import { startDnsServer } from '../support/dnsmasq.js';
import { runWithMemoryIo, type CommandRun } from '../support/memory-io.js';
import { exitWithin, freePort, startSipnote, stopAll, waitForLine } from '../support/processes.js';
import { RawUdpPeer } from '../support/raw-udp.js';

function run(argv: string[], stdin = '', stop?: Promise<void>): Promise<CommandRun> {
  return runWithMemoryIo((io) => main(argv, io, stop), stdin);
}

const cleanups: Cleanups = [];
afterEach(async () => {
  await runCleanups(cleanups);
  await stopAll();
});

const MESSAGE = 'MESSAGE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\nFrom: <sip:a@example.com>;tag=1\nTo: <sip:bob@example.com>\nCall-ID: pasted\nCSeq: 1 MESSAGE\nContent-Type: text/plain\nContent-Length: 2\n\nhi';

describe('sipnote parse', () => {
  it('prints the parsed form of a pasted capture (LF line ends) as JSON, exit 0', async () => {
    const result = await run(['parse', '-', '--json'], MESSAGE);
    expect(result.code).toBe(0);
    const view = JSON.parse(result.stdout) as { method: string; callId: string; body: string; via: Array<{ params: Record<string, string> }> };
    expect(view).toMatchObject({ method: 'MESSAGE', callId: 'pasted', body: 'hi' });
    expect(view.via[0]?.params.branch).toBe('z9hG4bKx');
  });

  it('reads a file, and reports a ParseError with exit 1', async () => {
    const dir = tempDir(cleanups, 'sipnote-cli-');
    writeFileSync(join(dir, 'bad.txt'), 'MESSAGE  sip:bob@example.com SIP/2.0\r\nCall-ID: x\r\n\r\n');
    const result = await run(['parse', join(dir, 'bad.txt'), '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: 'ParseError', code: 'bad-start-line' });
    const missing = await run(['parse', join(dir, 'nope.txt')]);
    expect(missing.code).toBe(2);
  });
});

describe('usage errors exit 2 with a reason on stderr', () => {
  it.each([
    [[]],
    [['frobnicate']],
    [['send', '--to', 'sip:bob@127.0.0.1', 'x']],
    [['send', '--from', 'sip:a@127.0.0.1', '--to', 'mailto:bob@x', 'x']],
    [['send', '--from', 'sip:a@127.0.0.1', '--to', 'sip:b@127.0.0.1', '--transport', 'sctp', 'x']],
    [['send', '--from', 'sip:a@127.0.0.1', '--to', 'sip:b@127.0.0.1']],
    [['listen', '--aor', 'sip:bob@127.0.0.1', '--listen', 'carrier-pigeon:1']],
    [['listen', '--aor', 'sip:bob@127.0.0.1', '--bogus']],
  ])('%j', async (argv) => {
    const result = await run(argv);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^sipnote: .+\n/);
    expect(result.stderr).toContain('usage:');
  });
});

describe('sipnote send and listen', () => {
  async function listener(extra: string[] = []): Promise<{ port: number; events: MessageEvent[]; stop: () => Promise<number> }> {
    let resolveStop: () => void = () => undefined;
    const stop = new Promise<void>((resolve) => (resolveStop = resolve));
    const output = new PassThrough();
    const events: MessageEvent[] = [];
    let buffered = '';
    let onListening: (event: ListeningEvent) => void = () => undefined;
    const listening = new Promise<ListeningEvent>((resolve) => (onListening = resolve));
    output.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const event = JSON.parse(line) as ListeningEvent | MessageEvent;
        if (event.event === 'listening') onListening(event);
        else events.push(event);
      }
    });
    const done = main(['listen', '--aor', 'sip:bob@127.0.0.1', '--listen', 'udp:127.0.0.1:0,tcp:127.0.0.1:0', '--json', '--plaintext', ...extra], { stdin: new PassThrough(), stdout: output, stderr: new PassThrough() }, stop);
    const event = await listening;
    const port = Number(event.listen[0]?.split(':').pop());
    const stopIt = async (): Promise<number> => {
      resolveStop();
      return done;
    };
    cleanups.push(async () => void (await stopIt()));
    return { port, events, stop: stopIt };
  }

  it('sends text from stdin and prints the status as JSON, exit 0; the listener exits 0 when stopped', async () => {
    const bob = await listener();
    const result = await run(['send', '--from', 'sip:alice@127.0.0.1', '--to', `sip:bob@127.0.0.1:${bob.port}`, '--json', '--plaintext', '-'], 'from stdin ✓');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout) as SendSummary).toMatchObject({ status: 200, reason: 'OK', outcome: 'delivered', transport: 'udp' });
    expect(bob.events[0]).toMatchObject({ event: 'message', body: 'from stdin ✓', bodyEncoding: 'text', transport: 'udp', from: 'sip:alice@127.0.0.1' });
    expect(await bob.stop()).toBe(0);
  });

  it('exits 1 on a final non-2xx (415 for a type the listener cannot take)', async () => {
    const bob = await listener();
    const result = await run(['send', '--from', 'sip:alice@127.0.0.1', '--to', `sip:bob@127.0.0.1:${bob.port}`, '--content-type', 'application/json', '--plaintext', '{}']);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('415');
    expect(result.stderr).toMatch(/not delivered: 415/);
  });

  it('sends a large message over UDP on loopback, whose MTU is known (RFC 3261 §18.1.1, RFC 3428 §8)', async () => {
    const bob = await listener();
    const text = 'ü'.repeat(1000); // 2000 bytes
    const result = await run(['send', '--from', 'sip:alice@127.0.0.1', '--to', `sip:bob@127.0.0.1:${bob.port}`, '--json', '--plaintext', text]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 200, transport: 'udp' });
    expect(bob.events[0]?.body).toBe(text);
  });

  it('opens a message/cpim body: the text and the CPIM envelope are printed; unsupported content gets 415', async () => {
    const bob = await listener();
    const cpim = Buffer.from(
      buildCpim({
        from: { uri: 'sip:alice@127.0.0.1', name: 'Alice' },
        to: [{ uri: 'sip:bob@127.0.0.1' }],
        dateTime: new Date('2026-11-25T10:00:00Z'),
        namespaces: { imdn: 'urn:ietf:params:imdn' },
        extraHeaders: [{ ns: 'imdn', name: 'Message-ID', value: 'm-123' }],
        contentType: 'text/plain; charset=utf-8',
        content: Buffer.from('wrapped ✓'),
      }),
    ).toString('utf8');
    const ok = await run(['send', '--from', 'sip:alice@127.0.0.1', '--to', `sip:bob@127.0.0.1:${bob.port}`, '--content-type', 'message/cpim', '--plaintext', '-'], cpim);
    expect(ok.code).toBe(0);
    expect(bob.events[0]).toMatchObject({ text: 'wrapped ✓', cpim: { from: 'sip:alice@127.0.0.1', to: ['sip:bob@127.0.0.1'], messageId: 'm-123', dateTime: '2026-11-25T10:00:00.000Z' } });
    const json = cpim.replace('text/plain; charset=utf-8', 'application/json');
    const refused = await run(['send', '--from', 'sip:alice@127.0.0.1', '--to', `sip:bob@127.0.0.1:${bob.port}`, '--content-type', 'message/cpim', '--plaintext', '-'], json);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^415 /);
    expect(bob.events).toHaveLength(1);
  });

  it('exits 3 on a transport failure and on a timeout', async () => {
    const silent = await RawUdpPeer.open();
    cleanups.push(() => silent.close());
    const refused = await run(['send', '--from', 'sip:alice@127.0.0.1', '--to', `sip:bob@127.0.0.1:${silent.port}`, '--transport', 'tcp', '--plaintext', 'x']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/could not reach/);
    const timeout = await run(['send', '--from', 'sip:alice@127.0.0.1', '--to', `sip:bob@127.0.0.1:${silent.port}`, '--t1', '5', '--json', '--plaintext', 'x']);
    expect(timeout.code).toBe(3);
    expect(JSON.parse(timeout.stdout)).toMatchObject({ status: 408, outcome: 'timeout' });
    expect(silent.received.length).toBeGreaterThan(1); // it retransmitted over UDP
  });

  it('runs as the installed bin; without --plaintext it protects with S/MIME and says how to create keys when there are none', async () => {
    const bob = await listener();
    const dataDir = tempDir(cleanups, 'sipnote-cli-');
    const send = startSipnote(['send', '--from', 'sip:alice@127.0.0.1', '--to', `sip:bob@127.0.0.1:${bob.port}`, '--data-dir', dataDir, 'hi']);
    expect(await exitWithin(send)).toBe(1);
    expect(send.stderr()).toMatch(/sipnote keys init --aor sip:alice@127\.0\.0\.1/);
    expect(bob.events).toHaveLength(0);
    const plain = startSipnote(['send', '--from', 'sip:alice@127.0.0.1', '--to', `sip:bob@127.0.0.1:${bob.port}`, '--plaintext', 'hi']);
    expect(await exitWithin(plain)).toBe(0);
    expect(plain.stdout()).toMatch(/^200 OK/);
  });
});

/** A `sipnote listen` in-process on loopback, collecting its message events. */
function listenerForDns(): Promise<{ port: number; events: MessageEvent[] }> {
  let resolveStop: () => void = () => undefined;
  const stop = new Promise<void>((resolve) => (resolveStop = resolve));
  const output = new PassThrough();
  const events: MessageEvent[] = [];
  let buffered = '';
  return new Promise((resolve) => {
    output.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const event = JSON.parse(line) as ListeningEvent | MessageEvent;
        if (event.event === 'listening') resolve({ port: Number(event.listen[0]?.split(':').pop()), events });
        else events.push(event);
      }
    });
    const done = main(['listen', '--aor', 'sip:bob@example.test', '--listen', 'udp:127.0.0.1:0,tcp:127.0.0.1:0', '--json', '--plaintext'], { stdin: new PassThrough(), stdout: output, stderr: new PassThrough() }, stop);
    cleanups.push(async () => {
      resolveStop();
      await done;
    });
  });
}

describe('RFC 3263 through the command line', () => {
  it('follows SRV records to the second server when the first refuses the connection', async () => {
    const bob = await listenerForDns();
    const dead = await freePort(); // nothing listens there
    const dns = await startDnsServer([
      `--srv-host=_sip._tcp.example.test,a.example.test,${dead},10,0`,
      `--srv-host=_sip._tcp.example.test,b.example.test,${bob.port},20,0`,
      '--host-record=a.example.test,127.0.0.1',
      '--host-record=b.example.test,127.0.0.1',
    ]);
    const result = await run(['send', '--from', 'sip:alice@example.test', '--to', 'sip:bob@example.test', '--dns', dns.address, '--listen', 'udp:127.0.0.1:0,tcp:127.0.0.1:0', '--json', '--plaintext', 'found you']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 200, transport: 'tcp' });
    expect(bob.events.map((e) => e.text)).toEqual(['found you']);
  });
});

describe('sipnote listen --rate-limit', () => {
  it('answers requests over the per-source rate with 503 and Retry-After, never silently', async () => {
    const proc = startSipnote(['listen', '--aor', 'sip:bob@127.0.0.1', '--listen', 'udp:127.0.0.1:0,tcp:127.0.0.1:0', '--plaintext', '--json', '--rate-limit', '1/2']);
    const listening = JSON.parse(await waitForLine(proc, (l) => l.includes('"listening"'))) as ListeningEvent;
    const port = Number(listening.listen[0]?.split(':').pop());
    const peer = await RawUdpPeer.open();
    cleanups.push(() => peer.close());
    for (let i = 0; i < 6; i++) {
      const body = `m${i}`;
      await peer.send(
        [`MESSAGE sip:bob@127.0.0.1 SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bKrl${i};rport`, 'Max-Forwards: 70', 'From: <sip:flood@127.0.0.1>;tag=f', 'To: <sip:bob@127.0.0.1>', `Call-ID: rl-${i}`, `CSeq: 1 MESSAGE`, 'Content-Type: text/plain', `Content-Length: ${body.length}`, '', body].join('\r\n'),
        port,
      );
    }
    // Every request is answered: the burst of 2 with 200, the rest with 503 (a slow machine
    // may refill a token in between, so only the shape is checked, not exact counts).
    const responses = await peer.waitFor(6);
    const statuses = responses.map((r) => (r.kind === 'response' ? r.status : 0));
    expect(statuses.every((status) => status === 200 || status === 503)).toBe(true);
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(2);
    expect(statuses.filter((status) => status === 503).length).toBeGreaterThanOrEqual(1);
    const refused = responses.find((r) => r.kind === 'response' && r.status === 503);
    expect(refused?.headers.get('retry-after')).toMatch(/^\d+/);
  });
});
