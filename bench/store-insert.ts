/**
 * The incoming insert path as `sipnote listen --data-dir` drives it under load: N incoming
 * MESSAGEs recorded with `store.messages.recordIncoming`, through `GroupCommit`, in batches of
 * `--batch` messages per event-loop turn (what one turn collects under load: 8 to 64), with
 * the WAL sync lasting `--sync-turns` turns. Reports the CPU microseconds per message (insert,
 * FTS5, conversation counter, commit, GroupCommit's bookkeeping), median over `--runs` fresh
 * data dirs. Not part of `npm test`.
 *
 *   npx tsc -b && node build/bench/store-insert.js           # 20 000 messages, batches of 8 and 64, 5 runs
 *   node build/bench/store-insert.js --messages 50000 --runs 7 --peers 200 --imdn --json
 *   node build/bench/store-insert.js --batch 2,8 --sync-turns 4   # a sync as long as 4 turns
 *
 * Options: --messages N (20 000); --batch N[,N…] messages per turn (8,64); --sync-turns N how
 * many turns one WAL sync lasts (1: it ends within the turn that started it); --runs N (5); --peers N distinct
 * senders (1, as with one SIPp client; more spreads the rows over conversations); --imdn (each
 * message carries an IMDN Message-ID, so the second unique index is written too);
 * --duplicates PERCENT (0: a share of the messages are retransmissions of an earlier one, the
 * duplicate path); --preload N (0: rows stored before the timed part, a history that is not
 * empty); --json (one JSON line per batch size).
 *
 * Method:
 * - As the listener: the store is opened with `synchronous = normal` (the listener syncs the
 *   WAL itself, off the event loop, with GroupCommit's `sync`). The fsync is not what this
 *   measures; it runs on libuv's thread pool and one covers many batches. The `sync` given
 *   here is finished by the bench at the end of the `--sync-turns`th turn after it started
 *   (GroupCommit holds the writes that arrive meanwhile and commits them when it finishes).
 * - Inputs are built before the timed part (the SIP side's work is not measured here). A turn
 *   is `--batch` calls to `GroupCommit.run`, one `flush()` (as the setImmediate after a turn's
 *   datagrams), then the end of a sync if its time has come and the promise callbacks.
 * - CPU time (`process.cpuUsage`, user + system) rather than the wall clock: the machine is
 *   shared, and waiting for a core is not the store's cost. The first tenth of the messages is
 *   a warm-up and not counted; after it, everything in the loop is (the bench's own loop is
 *   small next to the store). Each run uses a fresh data dir, in a fresh process (so JIT
 *   state and SQLite's cache do not carry over); the report gives the median and the range.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GroupCommit, openStore, type IncomingInput } from '../main/store/index.js';

interface Options {
  messages: number;
  batches: number[];
  syncTurns: number;
  runs: number;
  peers: number;
  imdn: boolean;
  duplicatesPercent: number;
  preload: number;
  json: boolean;
  /** Internal: one measurement in this process, with one batch size. */
  worker: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const options: Options = {
    messages: 20_000,
    batches: [8, 64],
    syncTurns: 1,
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
    if (flag === '--messages') options.messages = number();
    else if (flag === '--batch') {
      options.batches = (argv[++i] ?? '').split(',').map(Number);
      if (options.batches.some((size) => !Number.isInteger(size) || size <= 0)) throw new Error('--batch needs positive integers');
    } else if (flag === '--sync-turns') options.syncTurns = number();
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

/** One measurement: CPU µs per message for one batch size, in a fresh data dir. */
async function measure(options: Options, batch: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'sipnote-store-insert-'));
  try {
    const store = openStore(dir, { synchronous: 'normal' });
    try {
      if (options.preload > 0) {
        const history = makeInputs(options.preload, { ...options, duplicatesPercent: 0 }, 10_000_000);
        for (let i = 0; i < history.length; i += 10_000) {
          store.batch(() => history.slice(i, i + 10_000).forEach((input) => store.messages.recordIncoming(input)));
        }
      }
      // The sync in progress: how many more turns it lasts, and how to end it.
      let sync: { turnsLeft: number; finish: () => void } | undefined;
      const group = new GroupCommit(
        store,
        () => {},
        () => new Promise<void>((resolve) => (sync = { turnsLeft: options.syncTurns, finish: resolve })),
      );
      const inputs = makeInputs(options.messages, options, 0);
      const warmup = Math.floor(inputs.length / 10 / batch) * batch;
      let before: NodeJS.CpuUsage | undefined;
      for (let start = 0; start < inputs.length; start += batch) {
        if (start >= warmup && before === undefined) before = process.cpuUsage();
        const end = Math.min(start + batch, inputs.length);
        for (let i = start; i < end; i++) {
          const input = inputs[i]!;
          void group.run(() => store.messages.recordIncoming(input));
        }
        group.flush();
        if (sync !== undefined && --sync.turnsLeft === 0) {
          const { finish } = sync;
          sync = undefined;
          finish();
        }
        await Promise.resolve(); // the sync's callbacks (commit of the held writes, next sync)
        await Promise.resolve();
      }
      while (sync !== undefined) {
        const { finish } = sync;
        sync = undefined;
        finish();
        await Promise.resolve();
        await Promise.resolve();
      }
      const used = process.cpuUsage(before);
      return (used.user + used.system) / (inputs.length - warmup);
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

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.worker) {
    process.stdout.write(`${JSON.stringify({ microsPerMessage: await measure(options, options.batches[0]!) })}\n`);
    return;
  }
  const script = fileURLToPath(import.meta.url);
  const load = loadavg()[0]!.toFixed(2);
  const describe = `${options.messages} messages, ${options.peers} peer(s), sync lasting ${options.syncTurns} turn(s)${options.imdn ? ', IMDN ids' : ''}${options.duplicatesPercent ? `, ${options.duplicatesPercent} % duplicates` : ''}${options.preload ? `, ${options.preload} rows before` : ''}`;
  if (!options.json) console.log(`store insert: ${describe}; ${options.runs} runs per batch size; load ${load}`);
  const samples = new Map<number, number[]>(options.batches.map((size) => [size, []]));
  // Interleaved: batch sizes alternate run by run, so a busy stretch of the shared machine hits both.
  for (let run = 0; run < options.runs; run++) {
    for (const size of options.batches) {
      const args = process.argv.slice(2).filter((_, index, all) => all[index - 1] !== '--batch' && all[index] !== '--batch' && all[index] !== '--json');
      const child = spawnSync(process.execPath, [script, ...args, '--batch', String(size), '--worker'], { encoding: 'utf8' });
      if (child.status !== 0) throw new Error(`worker failed: ${child.stderr}`);
      samples.get(size)!.push((JSON.parse(child.stdout) as { microsPerMessage: number }).microsPerMessage);
    }
  }
  for (const [size, values] of samples) {
    const result = {
      batch: size,
      medianMicrosPerMessage: Number(median(values).toFixed(2)),
      min: Number(Math.min(...values).toFixed(2)),
      max: Number(Math.max(...values).toFixed(2)),
      runs: values.map((value) => Number(value.toFixed(2))),
    };
    if (options.json) console.log(JSON.stringify({ ...result, syncTurns: options.syncTurns, messages: options.messages, peers: options.peers, imdn: options.imdn, duplicatesPercent: options.duplicatesPercent, preload: options.preload, load }));
    else console.log(`  ${String(size).padStart(3)} per turn: ${result.medianMicrosPerMessage.toFixed(1)} µs/message CPU (median; ${result.min.toFixed(1)}–${result.max.toFixed(1)}) runs ${result.runs.join(' ')}`);
  }
  if (!options.json) console.log(`  load after: ${loadavg()[0]!.toFixed(2)}`);
}

await main();
