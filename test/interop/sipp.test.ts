/**
 * Interop with SIPp (Debian sip-tester) on 127.0.0.1, both directions, UDP and TCP:
 * sipp's UAC scenario sends to `sipnote listen`, and `sipnote send` sends to a strict sipp UAS
 * that fails the call if the MESSAGE carries a Contact header (RFC 3428 §4) or lacks a
 * Content-Type. Every process is started by PID and stopped after each test.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { ListeningEvent, MessageEvent, SendSummary } from '../../shared/cli-events.js';
import { runCleanups, tempDir, type Cleanups } from '../support/cleanups.js';
import { exitWithin, freePort, start, startSipnote, stopAll, waitForLine } from '../support/processes.js';

const SCENARIOS = fileURLToPath(new URL('./sipp/', import.meta.url));
const cleanups: Cleanups = [];

afterEach(async () => {
  await stopAll();
  await runCleanups(cleanups);
});

function workDir(): string {
  return tempDir(cleanups, 'sipnote-sipp-');
}

describe.each([
  ['udp', 'u1'],
  ['tcp', 't1'],
] as const)('over %s', (transport, sippTransport) => {
  it('sipp UAC -> sipnote listen: the MESSAGE is accepted with 200 and printed as JSON', async () => {
    const listener = startSipnote(['listen', '--aor', 'sip:bob@127.0.0.1', '--listen', 'udp:127.0.0.1:0,tcp:127.0.0.1:0', '--json', '--plaintext']);
    const listening = JSON.parse(await waitForLine(listener, (l) => l.includes('"listening"'))) as ListeningEvent;
    const bound = listening.listen.find((spec) => spec.startsWith(`${transport}:`));
    expect(bound).toBeDefined();
    const port = Number(bound?.split(':').pop());

    const text = `Grüße from sipp over ${transport}`;
    const sippPort = await freePort();
    const sipp = start(
      'sipp',
      [`127.0.0.1:${port}`, '-sf', join(SCENARIOS, 'uac_message.xml'), '-s', 'bob', '-key', 'text', text,
        '-i', '127.0.0.1', '-p', String(sippPort), '-t', sippTransport, '-m', '1', '-nostdin', '-recv_timeout', '5000', '-timeout', '15s', '-timeout_error'],
      { cwd: workDir() },
    );
    expect(await exitWithin(sipp)).toBe(0);

    const line = await waitForLine(listener, (l) => l.includes('"message"'));
    const event = JSON.parse(line) as MessageEvent;
    expect(event.body).toBe(`${text}\r\n`); // sipp ends its body with CRLF and counts it
    expect(event.transport).toBe(transport);
    expect(event.contentType).toBe('text/plain;charset=UTF-8');
    expect(event.from).toBe(`sip:sipp@127.0.0.1:${sippPort}`);
    expect(event.to).toBe(`sip:bob@127.0.0.1:${port}`);

    listener.child.kill('SIGTERM');
    expect(await exitWithin(listener)).toBe(0);
  });

  it('sipnote send -> strict sipp UAS: 200, no Contact, Content-Type present, body intact', async () => {
    const dir = workDir();
    const port = await freePort();
    const sipp = start(
      'sipp',
      ['-sf', join(SCENARIOS, 'uas_message_strict.xml'), '-i', '127.0.0.1', '-p', String(port), '-t', sippTransport, '-m', '1',
        '-nostdin', '-timeout', '15s', '-timeout_error', '-trace_logs', '-log_file', join(dir, 'uas.log')],
      { cwd: dir },
    );
    // sipp prints nothing parseable when it is ready; a short retry loop on the send covers start-up.
    const text = `Hello sipp, über ${transport} ✓`;
    let summary: SendSummary | undefined;
    for (let attempt = 0; attempt < 20 && summary?.status !== 200; attempt++) {
      const send = startSipnote(['send', '--from', 'sip:alice@127.0.0.1', '--to', `sip:bob@127.0.0.1:${port}`, '--transport', transport, '--json', '--plaintext', '--t1', '100', text]);
      const code = await exitWithin(send);
      if (code === 0) summary = JSON.parse(send.stdout()) as SendSummary;
      else expect(code, send.stderr()).toBe(3); // not yet listening: transport error or timeout
    }
    expect(summary).toMatchObject({ status: 200, reason: 'OK', outcome: 'delivered', transport });
    expect(await exitWithin(sipp)).toBe(0);
    const log = readFileSync(join(dir, 'uas.log'), 'utf8');
    expect(log).toContain(`RECEIVED-BODY:${text}`);
    expect(log).toContain('RECEIVED-CTYPE: text/plain;charset=utf-8');
    expect(log).toMatch(/RECEIVED-CONTACT:\s*$/m);
  });
});
