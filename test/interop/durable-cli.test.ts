/**
 * Write before acknowledge, under a crash (issue #5, first "Done when"): a real
 * `sipnote listen --data-dir` receives a bounded flood of MESSAGEs over UDP on loopback, is
 * killed with SIGKILL in the middle, and restarted on the same port and data dir. The sender (a
 * raw UDP socket in this process, retransmitting every unanswered request like a UAC's timer A
 * would, RFC 3261 §17.1.2.2) keeps going, so some messages get their 200 from the restarted
 * listener, and some that the first one stored but had not answered are answered again as
 * duplicates. Afterwards `sipnote history --json` holds every message that got a 200, each
 * exactly once.
 *
 * Plaintext (--plaintext, no identity) for speed; the S/MIME path stores through the same writer.
 */
import { createSocket, type Socket } from 'node:dgram';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HistoryEntry, ListenEvent } from '../../shared/cli-events.js';
import { runCleanups, tempDir, type Cleanups } from '../support/cleanups.js';
import { exitWithin, freePort, startSipnote, stopAll, waitForLine, type Tracked } from '../support/processes.js';

const FLOOD = 300;
const BOB = 'sip:bob@127.0.0.1';

/** Sends MESSAGEs with distinct Call-IDs and retransmits each until its 200 arrives. */
class RetransmittingSender {
  readonly answered = new Map<string, number>();
  private readonly requests = new Map<string, Buffer>();
  private waiters: Array<() => void> = [];

  private constructor(
    private readonly socket: Socket,
    private readonly target: number,
  ) {
    socket.on('message', (data) => {
      const text = data.toString('utf8');
      const callId = /^Call-ID:\s*(\S+)/im.exec(text)?.[1];
      const status = /^SIP\/2\.0 (\d{3})/.exec(text)?.[1];
      if (callId === undefined || status === undefined || Number(status) < 200) return;
      this.answered.set(callId, Number(status));
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async open(target: number): Promise<RetransmittingSender> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return new RetransmittingSender(socket, target);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(index: number): void {
    const callId = `flood-${index}-${process.pid}@127.0.0.1`;
    const body = `message number ${index}`;
    const request = Buffer.from(
      [
        `MESSAGE ${BOB}:${this.target} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=z9hG4bK-flood-${index}-${process.pid}`,
        'Max-Forwards: 70',
        `From: <sip:alice@127.0.0.1>;tag=alice-${index}`,
        `To: <${BOB}>`,
        `Call-ID: ${callId}`,
        'CSeq: 1 MESSAGE',
        'Content-Type: text/plain;charset=utf-8',
        `Content-Length: ${Buffer.byteLength(body)}`,
        '',
        body,
      ].join('\r\n'),
    );
    this.requests.set(callId, request);
    this.transmit(request);
  }

  /** Sends every unanswered request again. */
  retransmitUnanswered(): void {
    for (const [callId, request] of this.requests) if (!this.answered.has(callId)) this.transmit(request);
  }

  /** Resolves once `count` requests have a final answer; rejects after `ms`. */
  async waitForAnswers(count: number, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.answered.size < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`only ${this.answered.size} of ${count} answered within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private transmit(request: Buffer): void {
    this.socket.send(request, this.target, '127.0.0.1');
  }
}

function startListener(port: number, dataDir: string): Tracked {
  return startSipnote(['listen', '--aor', BOB, '--listen', `udp:127.0.0.1:${port}`, '--data-dir', dataDir, '--plaintext', '--json']);
}

function printedCallIds(proc: Tracked): string[] {
  return proc
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as ListenEvent)
    .flatMap((event) => (event.event === 'message' ? [event.callId] : []));
}

const cleanups: Cleanups = [];
afterEach(async () => {
  await stopAll();
  await runCleanups(cleanups);
});

describe('sipnote listen --data-dir, killed in the middle of a flood', () => {
  it('has every message that got a 200 in its history exactly once', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-durable-');
    const port = await freePort();
    const first = startListener(port, dataDir);
    await waitForLine(first, (line) => line.includes('"listening"'));

    const sender = await RetransmittingSender.open(port);
    cleanups.push(() => sender.close());
    // 300 MESSAGEs at about 2 per ms, each retransmitted every 100 ms until answered.
    let sent = 0;
    const pump = setInterval(() => {
      for (let i = 0; i < 10 && sent < FLOOD; i++) sender.send(sent++);
    }, 5);
    const retransmit = setInterval(() => sender.retransmitUnanswered(), 100);
    cleanups.push(async () => {
      clearInterval(pump);
      clearInterval(retransmit);
    });

    // Midway: some answered, the flood still arriving.
    await sender.waitForAnswers(FLOOD / 4, 20_000);
    first.child.kill('SIGKILL');
    expect(await exitWithin(first, 5000)).toBe('SIGKILL');
    const answeredBeforeKill = sender.answered.size;
    expect(answeredBeforeKill).toBeLessThan(FLOOD);

    const second = startListener(port, dataDir);
    await waitForLine(second, (line) => line.includes('"listening"'));
    await sender.waitForAnswers(FLOOD, 30_000);
    clearInterval(pump);
    clearInterval(retransmit);
    expect(sent).toBe(FLOOD);
    expect(sender.answered.size).toBeGreaterThan(answeredBeforeKill);
    expect([...new Set(sender.answered.values())]).toEqual([200]);

    second.child.kill('SIGTERM');
    expect(await exitWithin(second, 10_000)).toBe(0);

    const history = startSipnote(['history', '--data-dir', dataDir, '--json', '--limit', '1000']);
    expect(await exitWithin(history, 15_000)).toBe(0);
    const entries = history
      .stdout()
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as HistoryEntry);
    const stored = entries.map((entry) => entry.callId);
    // None twice, and every answered message there.
    expect(new Set(stored).size).toBe(stored.length);
    const missing = [...sender.answered.keys()].filter((callId) => !stored.includes(callId));
    expect(missing).toEqual([]);
    expect(stored.length).toBe(FLOOD);
    for (const entry of entries) {
      expect(entry).toMatchObject({ direction: 'in', peer: 'sip:alice@127.0.0.1', state: 'received', security: 'plaintext' });
      expect(entry.body).toMatch(/^message number \d+$/);
      expect(new Date(entry.time).toISOString()).toBe(entry.time);
    }
    // Shown once at most across both runs (a message stored just before the kill may never have been printed).
    const printed = [...printedCallIds(first), ...printedCallIds(second)];
    expect(new Set(printed).size).toBe(printed.length);
  }, 90_000);
});

/**
 * Retry and offline (issue #5, "Retry and offline"): a send to a port nobody listens on fails
 * and stays in the outbox with the time of its next attempt (main/im/retry-policy.ts); once a
 * listener is there, `outbox --retry ID` makes it due now and `outbox --flush` delivers it.
 * A cancelled message is skipped by the flush.
 */
describe('sipnote outbox --retry / --cancel / --flush', () => {
  async function run(args: readonly string[], ms = 15_000): Promise<{ code: number | string; stdout: string; stderr: string }> {
    const proc = startSipnote(args);
    const code = await exitWithin(proc, ms);
    return { code, stdout: proc.stdout(), stderr: proc.stderr() };
  }
  const jsonLines = (text: string): HistoryEntry[] =>
    text
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as HistoryEntry);

  it('keeps a failed send with its next attempt, delivers it after --retry and --flush, and skips a cancelled one', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-retry-');
    const port = await freePort();
    const to = `${BOB}:${port}`;
    const send = (text: string) => run(['send', '--from', 'sip:alice@127.0.0.1', '--to', to, '--plaintext', '--data-dir', dataDir, '--t1', '50', text]);

    // Nobody listens: no response (timer F, 64·T1), exit 3, kept for a later attempt.
    const before = Date.now();
    const first = await send('first, retried');
    expect(first.code).toBe(3);
    expect(first.stderr).toMatch(/next attempt/);
    const second = await send('second, cancelled');
    expect(second.code).toBe(3);

    const waiting = await run(['outbox', '--data-dir', dataDir, '--json']);
    expect(waiting.code).toBe(0);
    const entries = jsonLines(waiting.stdout);
    expect(entries.map((entry) => [entry.body, entry.state, entry.attempts])).toEqual([
      ['first, retried', 'failed', 1],
      ['second, cancelled', 'failed', 1],
    ]);
    for (const entry of entries) {
      // The first backoff step: about 30 s after the attempt.
      const next = Date.parse(entry.nextAttemptAt as string);
      expect(next).toBeGreaterThanOrEqual(before + 30_000);
      expect(next).toBeLessThanOrEqual(Date.now() + 30_000);
    }
    const [retried, cancelled] = entries as [HistoryEntry, HistoryEntry];
    // Each stored attempt is filed under the Call-ID it went out with.
    expect(retried.callId).toMatch(/^[\w-]+@127\.0\.0\.1$/);
    expect(cancelled.callId).not.toBe(retried.callId);
    const listed = await run(['outbox', '--data-dir', dataDir]);
    expect(listed.stdout).toContain(`#${retried.id} -> ${to} failed, 1 attempt; next attempt `);

    // Nothing is due yet: a flush sends nothing.
    const early = await run(['outbox', '--flush', '--data-dir', dataDir, '--json']);
    expect(early.code).toBe(0);
    expect(early.stdout).toBe('');

    const bobDir = tempDir(cleanups, 'sipnote-retry-bob-');
    const listener = startSipnote(['listen', '--aor', BOB, '--listen', `udp:127.0.0.1:${port},tcp:127.0.0.1:${port}`, '--data-dir', bobDir, '--plaintext', '--json']);
    await waitForLine(listener, (line) => line.includes('"listening"'));

    const retry = await run(['outbox', '--retry', String(retried.id), '--data-dir', dataDir, '--json']);
    expect(retry.code).toBe(0);
    expect(jsonLines(retry.stdout)[0]).toMatchObject({ id: retried.id, state: 'queued' });
    const cancel = await run(['outbox', '--cancel', String(cancelled.id), '--data-dir', dataDir]);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toContain(`#${cancelled.id} -> ${to} cancelled`);
    // A cancelled message cannot be cancelled again.
    expect((await run(['outbox', '--cancel', String(cancelled.id), '--data-dir', dataDir])).code).toBe(1);

    const flush = await run(['outbox', '--flush', '--data-dir', dataDir, '--json']);
    expect(flush.code).toBe(0);
    expect(jsonLines(flush.stdout).map((entry) => [entry.id, entry.state, entry.status, entry.attempts])).toEqual([[retried.id, 'delivered', 200, 2]]);
    await waitForLine(listener, (line) => line.includes('first, retried'));
    expect(listener.stdout()).not.toContain('second, cancelled');

    const history = await run(['history', '--data-dir', dataDir, '--json']);
    expect(history.code).toBe(0);
    const states = new Map(jsonLines(history.stdout).map((entry) => [entry.body, entry.state]));
    expect(Object.fromEntries(states)).toEqual({ 'first, retried': 'delivered', 'second, cancelled': 'cancelled' });
    const empty = await run(['outbox', '--data-dir', dataDir]);
    expect(empty.stdout).toBe('the outbox is empty\n');

    listener.child.kill('SIGTERM');
    expect(await exitWithin(listener, 10_000)).toBe(0);
  }, 60_000);
});
