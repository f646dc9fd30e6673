/**
 * The incoming insert path as `sipnote listen --data-dir` drives it: the history worker's store
 * side (main/cli/history-worker-thread.ts `performAll`), which takes the records that reached it
 * in one batch and applies them in one transaction: `recordIncoming` for each (insert, FTS5,
 * conversation counter), then the commit, which with `synchronous = FULL` (what the worker
 * opens) returns only once the WAL is synced. Reports, per message, the CPU time and the wall
 * time, for batches of 1, 8, 64 and 256 records, with FULL and with NORMAL next to it (NORMAL
 * shows what the fsync costs; the store never runs with it). Median over `--runs` fresh data
 * dirs. Not part of `npm test`.
 *
 *   npx tsc -b && node build/bench/store-insert.js          # FULL and NORMAL × batches 1,8,64,256, 5 runs: about 30 s
 *   node build/bench/store-insert.js --synchronous full --batch 1,64 --runs 9
 *   node build/bench/store-insert.js --messages 50000 --peers 200 --imdn --duplicates 5 --json
 *
 * Options: --synchronous full,normal (both); --batch N[,N…] records per transaction
 * (1,8,64,256); --messages N at most this many messages per run (20 000); --max-commits N at
 * most this many transactions per run (2 000: with FULL and batches of 1 each one waits for
 * the disk, so batch 1 stores 2 000 messages, batch 8 16 000); --runs N (5); --peers N distinct
 * senders (1, as with one SIPp client; more spreads the rows over conversations); --imdn (each
 * message carries an IMDN Message-ID, so the second unique index is written too); --duplicates
 * PERCENT (0: a share of the messages are retransmissions of an earlier one, the duplicate
 * path); --preload N (0: rows stored before the timed part, a history that is not empty);
 * --json (one JSON line per case).
 *
 * What the batch sizes stand for: the listener posts the records of one event-loop turn to the
 * worker as one message, and the worker puts every message that queued up while it was
 * committing into its next transaction (up to 1 024 records). So 1 is a quiet listener (every
 * message its own transaction and fsync), and the larger sizes are what load makes of it: the
 * busier the listener, the more records one fsync covers.
 *
 * Method:
 * - The worker's own function (`performAll`) on a store opened as the worker opens it, but in
 *   this process's main thread: the thread that runs it does nothing else, as the worker does
 *   nothing else. What this leaves out is the hand-over: the listener's structured clone of
 *   each turn's records and the worker's copy of them (a few µs per record).
 * - Inputs are built before the timed part (the SIP side's work is not measured here).
 * - CPU time is `process.cpuUsage` (user + system: the fsync's system time is in it), the
 *   figure to compare on the shared machine, where waiting for a core is not the store's
 *   cost. Wall time (`performance.now`) includes waiting for the disk, which CPU time does not
 *   see: with FULL it is what limits how many records a worker stores per second. The first
 *   tenth of the transactions is a warm-up and not counted.
 * - Each run is a fresh data dir in a fresh process (no JIT state or SQLite cache carried
 *   over). The cases alternate within each round of runs, so a busy stretch of the machine
 *   hits all of them; the report gives the median and the range.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { performAll, type HistoryOperation } from '../main/cli/history-worker-thread.js';
import { openStore, type IncomingInput } from '../main/store/index.js';

type Synchronous = 'full' | 'normal';

interface Options {
  synchronous: Synchronous[];
  batches: number[];
  messages: number;
  maxCommits: number;
  runs: number;
  peers: number;
  imdn: boolean;
  duplicatesPercent: number;
  preload: number;
  json: boolean;
  /** Internal: one measurement in this process, of the first `synchronous` and `batches`. */
  worker: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const options: Options = {
    synchronous: ['full', 'normal'],
    batches: [1, 8, 64, 256],
    messages: 20_000,
    maxCommits: 2_000,
    runs: 5,
    peers: 1,
    imdn: false,
    duplicatesPercent: 0,
    preload: 0,
    json: false,
    worker: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const number = (allowZero = false): number => {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) throw new Error(`${flag} needs a ${allowZero ? 'non-negative' : 'positive'} integer`);
      return value;
    };
    if (flag === '--synchronous') {
      const values = (argv[++i] ?? '').split(',');
      if (values.some((value) => value !== 'full' && value !== 'normal')) throw new Error('--synchronous takes full, normal or full,normal');
      options.synchronous = values as Synchronous[];
    } else if (flag === '--batch') {
      options.batches = (argv[++i] ?? '').split(',').map(Number);
      if (options.batches.some((size) => !Number.isInteger(size) || size <= 0)) throw new Error('--batch needs positive integers');
    } else if (flag === '--messages') options.messages = number();
    else if (flag === '--max-commits') options.maxCommits = number();
    else if (flag === '--runs') options.runs = number();
    else if (flag === '--peers') options.peers = number();
    else if (flag === '--imdn') options.imdn = true;
    else if (flag === '--duplicates') options.duplicatesPercent = number(true);
    else if (flag === '--preload') options.preload = number(true);
    else if (flag === '--json') options.json = true;
    else if (flag === '--worker') options.worker = true;
    else throw new Error(`unknown option ${flag}; see the comment at the top of bench/store-insert.ts`);
  }
  return options;
}

const ACCOUNT = 'sip:service@127.0.0.1';
const WORDS = ['hello', 'meeting', 'tomorrow', 'café', 'the', 'report', 'is', 'ready', 'call', 'me', 'back', 'привет', 'ok', 'thanks'];

/** The messages, deterministic: message i from peer i mod P, a body of a few words. */
function makeInputs(count: number, options: Options, offset: number): IncomingInput[] {
  const inputs: IncomingInput[] = [];
  let duplicateBudget = 0;
  for (let i = 0; i < count; i++) {
    duplicateBudget += options.duplicatesPercent;
    if (duplicateBudget >= 100 && inputs.length > 8) {
      duplicateBudget -= 100;
      inputs.push(inputs[inputs.length - 8]!); // a retransmission of a message a batch or so ago
      continue;
    }
    const n = offset + i;
    const words: string[] = [];
    for (let w = 0; w < 6 + (n % 9); w++) words.push(WORDS[(n * 7 + w * 3) % WORDS.length]!);
    inputs.push({
      account: ACCOUNT,
      peer: `sip:sipp${n % options.peers}@127.0.0.1:5061`,
      callId: `${n}-4711@127.0.0.1`,
      cseq: 1,
      fromTag: `${n}SIPpTag00${n}`,
      body: `${words.join(' ')} #${n}`,
      contentType: 'text/plain',
      security: 'plaintext',
      receivedAt: 1_700_000_000_000 + n,
      ...(options.imdn ? { imdnMessageId: `imdn-${n}` } : {}),
    });
  }
  return inputs;
}

/** What one run measures, per message. */
interface Sample {
  readonly cpuMicros: number;
  readonly wallMicros: number;
  /** Messages timed (after the warm-up). */
  readonly messages: number;
}

/** How many messages a run of this batch size stores: `--messages`, or fewer to stay within `--max-commits`. */
function messagesPerRun(options: Options, batch: number): number {
  return Math.min(options.messages, batch * options.maxCommits);
}

/** One measurement, in a fresh data dir: batches of `batch` records, each through `performAll`. */
function measure(options: Options, synchronous: Synchronous, batch: number): Sample {
  const dir = mkdtempSync(join(tmpdir(), 'sipnote-store-insert-'));
  try {
    const store = openStore(dir, { synchronous });
    try {
      if (options.preload > 0) {
        const history = makeInputs(options.preload, { ...options, duplicatesPercent: 0 }, 10_000_000);
        for (let i = 0; i < history.length; i += 10_000) {
          store.batch(() => history.slice(i, i + 10_000).forEach((input) => store.messages.recordIncoming(input)));
        }
      }
      // The batches as the worker receives them: operations, built before the timed part.
      const inputs = makeInputs(messagesPerRun(options, batch), options, 0);
      const batches: HistoryOperation[][] = [];
      for (let start = 0; start < inputs.length; start += batch) {
        batches.push(inputs.slice(start, start + batch).map((input) => ({ kind: 'record', input })));
      }
      const warmup = Math.floor(batches.length / 10);
      let timed = 0;
      let failed = 0;
      let cpuBefore: NodeJS.CpuUsage | undefined;
      let wallBefore = 0;
      for (let index = 0; index < batches.length; index++) {
        if (index === warmup) {
          cpuBefore = process.cpuUsage();
          wallBefore = performance.now();
        }
        const operations = batches[index]!;
        for (const outcome of performAll(store, operations)) if (typeof outcome === 'object' && 'error' in outcome) failed++;
        if (index >= warmup) timed += operations.length;
      }
      const wall = performance.now() - wallBefore;
      const cpu = process.cpuUsage(cpuBefore);
      if (failed > 0) throw new Error(`${failed} records failed`);
      return { cpuMicros: (cpu.user + cpu.system) / timed, wallMicros: (wall * 1000) / timed, messages: timed };
    } finally {
      store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const round = (value: number): number => Number(value.toFixed(2));

/** `median (min–max)`. */
function spread(values: readonly number[]): string {
  return `${median(values).toFixed(1)} (${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)})`;
}

function main(): void {
  const options = parseOptions(process.argv.slice(2));
  if (options.worker) {
    process.stdout.write(`${JSON.stringify(measure(options, options.synchronous[0]!, options.batches[0]!))}\n`);
    return;
  }
  const script = fileURLToPath(import.meta.url);
  const load = loadavg()[0]!.toFixed(2);
  const cases = options.synchronous.flatMap((synchronous) => options.batches.map((batch) => ({ synchronous, batch, samples: [] as Sample[] })));
  const describe = `at most ${options.messages} messages and ${options.maxCommits} commits per run, ${options.peers} peer(s)${options.imdn ? ', IMDN ids' : ''}${options.duplicatesPercent ? `, ${options.duplicatesPercent} % duplicates` : ''}${options.preload ? `, ${options.preload} rows before` : ''}`;
  if (!options.json) console.log(`store insert (history worker's path): ${describe}; ${options.runs} runs per case; load ${load}`);
  // The flags every child gets: the parent's, less the ones that choose the case or the output.
  const shared = process.argv.slice(2).filter((_, index, all) => !['--batch', '--synchronous'].includes(all[index - 1]!) && !['--batch', '--synchronous', '--json'].includes(all[index]!));
  // Interleaved: the cases alternate run by run, so a busy stretch of the shared machine hits all of them.
  for (let run = 0; run < options.runs; run++) {
    for (const current of cases) {
      const child = spawnSync(process.execPath, [script, ...shared, '--synchronous', current.synchronous, '--batch', String(current.batch), '--worker'], { encoding: 'utf8' });
      if (child.status !== 0) throw new Error(`worker failed: ${child.stderr}`);
      current.samples.push(JSON.parse(child.stdout) as Sample);
    }
  }
  if (!options.json) console.log('  synchronous  batch  CPU µs/msg, median (range)  wall µs/msg, median (range)  msg/s (wall, median)');
  for (const { synchronous, batch, samples } of cases) {
    const cpu = samples.map((sample) => sample.cpuMicros);
    const wall = samples.map((sample) => sample.wallMicros);
    if (options.json) {
      console.log(
        JSON.stringify({
          synchronous,
          batch,
          medianCpuMicrosPerMessage: round(median(cpu)),
          medianWallMicrosPerMessage: round(median(wall)),
          cpuRuns: cpu.map(round),
          wallRuns: wall.map(round),
          messagesTimed: samples[0]!.messages,
          peers: options.peers,
          imdn: options.imdn,
          duplicatesPercent: options.duplicatesPercent,
          preload: options.preload,
          load,
        }),
      );
    } else {
      const perSecond = Math.round(1e6 / median(wall)).toLocaleString('en-US');
      console.log(`  ${synchronous.padEnd(11)}  ${String(batch).padStart(5)}  ${spread(cpu).padEnd(26)}  ${spread(wall).padEnd(27)}  ${perSecond.padStart(7)}`);
    }
  }
  if (!options.json) console.log(`  load after: ${loadavg()[0]!.toFixed(2)}`);
}

main();
