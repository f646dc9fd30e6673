/**
 * Load: sipp pushes MESSAGEs at a real `sipnote listen --plaintext --json` over UDP, then over
 * TCP, at a modest fixed rate for a fixed time (default 300/s for 30 s = 9,000 per transport),
 * on 127.0.0.1 only. The scenario is bench/load/message-uac.xml (performance.md §3): one
 * MESSAGE per call, a 200 expected; anything else (a 503, a timeout after the UDP
 * retransmissions) fails the call.
 *
 * Passing means the rate was held with 0 failed and 0 lost: sipp exits 0, its final
 * `-trace_stat` line counts every call successful and none failed, and the listener printed
 * exactly one `message` event per call (counted after it exited, so a duplicate shows too).
 * Nothing is asserted about time; the rate reached and the response-time repartition are
 * printed for the reader.
 *
 * Bounded: sipp stops after rate × seconds calls (`-m`), gives up on a call after 5 s
 * (`-recv_timeout`) and on the run after seconds + 30 s (`-timeout`). The whole file takes
 * about 2 × (seconds + 3) s. `SIPNOTE_LOAD_SECONDS` and `SIPNOTE_LOAD_RATE` override the
 * defaults (e.g. `SIPNOTE_LOAD_SECONDS=5` for a quick run).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { ListeningEvent } from '../../shared/cli-events.js';
import { exitWithin, freePort, start, startSipnote, stopAll, waitForLine, type Tracked } from '../support/processes.js';

const SCENARIO = fileURLToPath(new URL('../../bench/load/message-uac.xml', import.meta.url));
const SECONDS = positiveNumber(process.env['SIPNOTE_LOAD_SECONDS'], 30);
const RATE = positiveNumber(process.env['SIPNOTE_LOAD_RATE'], 300);
const CALLS = Math.round(RATE * SECONDS);

const dirs: string[] = [];

afterEach(async () => {
  await stopAll();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function positiveNumber(text: string | undefined, fallback: number): number {
  const value = Number(text);
  return text !== undefined && Number.isFinite(value) && value > 0 ? value : fallback;
}

/**
 * Counts `message` events on the listener's stdout without keeping them: the tracked process
 * buffers all of its output, which for thousands of events is megabytes, so once the
 * `listening` line has been read, the buffering listener is replaced by a counter.
 */
function countMessageEvents(listener: Tracked): { count: () => number; reached: (n: number, ms: number) => Promise<void>; drained: Promise<void> } {
  const stdout = listener.child.stdout;
  if (stdout === null) throw new Error('listener has no stdout pipe');
  stdout.removeAllListeners('data');
  let count = 0;
  let partial = '';
  let wake: (() => void) | undefined;
  stdout.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.includes('"event":"message"')) count++;
    wake?.();
  });
  // 'exit' can come before the last output: the count is final once the pipe has closed.
  const drained = new Promise<void>((resolve) => stdout.once('close', () => resolve()));
  const reached = async (n: number, ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    while (count < n) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  return { count: () => count, reached, drained };
}

/** The last `-trace_stat` line of sipp's CSV, as column → value. */
function finalStatistics(dir: string): Map<string, string> {
  const file = readdirSync(dir).find((name) => name.endsWith('_.csv'));
  if (file === undefined) throw new Error(`sipp wrote no statistics file in ${dir}`);
  const lines = readFileSync(join(dir, file), 'utf8').trim().split('\n');
  const header = (lines[0] ?? '').split(';');
  const last = (lines[lines.length - 1] ?? '').split(';');
  return new Map(header.map((name, i) => [name, last[i] ?? '']));
}

describe.each([
  ['udp', 'u1'],
  ['tcp', 't1'],
] as const)('load over %s', (transport, sippTransport) => {
  it(
    `holds ${RATE} MESSAGE/s for ${SECONDS} s with 0 failed and 0 lost`,
    async () => {
      const listener = startSipnote(['listen', '--aor', 'sip:bob@127.0.0.1', '--listen', `${transport}:127.0.0.1:0`, '--json', '--plaintext']);
      const listening = JSON.parse(await waitForLine(listener, (line) => line.includes('"listening"'))) as ListeningEvent;
      const port = Number(listening.listen.find((spec) => spec.startsWith(`${transport}:`))?.split(':').pop());
      expect(port).toBeGreaterThan(0);
      const events = countMessageEvents(listener);

      const dir = mkdtempSync(join(tmpdir(), 'sipnote-load-'));
      dirs.push(dir);
      const sipp = start(
        'sipp',
        [`127.0.0.1:${port}`, '-sf', SCENARIO, '-s', 'bob', '-i', '127.0.0.1', '-p', String(await freePort()), '-t', sippTransport,
          '-r', String(RATE), '-m', String(CALLS), '-l', '5000', '-recv_timeout', '5000', '-timeout', `${Math.ceil(SECONDS) + 30}s`,
          '-buff_size', '4194304', '-nostdin', '-trace_stat', '-fd', '1'],
        { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      const sippExit = await exitWithin(sipp, (SECONDS + 40) * 1000);

      const stats = finalStatistics(dir);
      const successful = Number(stats.get('SuccessfulCall(C)'));
      const failed = Number(stats.get('FailedCall(C)'));
      const repartition = [...stats].filter(([name]) => name.startsWith('ResponseTimeRepartition1_')).map(([name, value]) => `${name.slice(25)}:${value}`);
      console.log(
        `load ${transport}: offered ${RATE}/s × ${SECONDS} s; sipp CallRate(C) ${stats.get('CallRate(C)')}/s, ` +
          `${successful} successful, ${failed} failed, ${stats.get('Retransmissions(C)')} retransmissions; ` +
          `response time ms ${repartition.join(' ')}`,
      );
      expect(sippExit, sipp.stderr()).toBe(0);
      expect(failed).toBe(0);
      expect(successful).toBe(CALLS);

      // Every 200 was sent after the event was printed; let the pipe drain, then stop the
      // listener and count again, so a late duplicate would show.
      await events.reached(CALLS, 10_000);
      listener.child.kill('SIGTERM');
      expect(await exitWithin(listener)).toBe(0);
      await events.drained;
      expect(events.count()).toBe(CALLS);
    },
    (SECONDS + 60) * 1000,
  );
});
