/**
 * History at scale: inserts 1,000,000 messages through the store's real insert path into a
 * fresh data dir, then measures full-text search latency (newest first, LIMIT 50) and the
 * database size. Targets (issue "Durable messaging", Done when): insert in under 30 s, search
 * p99 under 10 ms including the most common words. Not part of `npm test`.
 *
 *   npm run bench:history                        # 1 M rows, about a minute
 *   npm run bench:history -- --rows 100000       # a quick run
 *   node build/bench/history.js --batch 10000 --calibrate --json
 *
 * Options: --rows N (1 000 000); --batch N rows per transaction (100 000); --queries N words
 * per set (200); --cache-mib N (the store's default, 64); --dir DIR (a fresh temp dir by
 * default; must not hold a database yet); --keep (leave the data dir); --calibrate (also time
 * the note's straightforward schema on this machine, for a ratio); --json (one JSON line).
 *
 * Method (after /work/shared/notes/performance.md §5 and appendix D, so the numbers compare):
 * - The same deterministic PRNG (mulberry32) and Zipf(s = 1) law over a 20 000-word
 *   vocabulary. The vocabulary starts with a fixed list of common chat words (so the commonest
 *   words are real ones, some accented or Cyrillic), then the note's pronounceable
 *   pseudo-words. Bodies average about 80 characters, with a long tail (short replies, some
 *   paragraphs).
 * - 200 peers under one account; 55 % incoming (`recordIncoming`, with random Call-ID, From
 *   tag and IMDN Message-ID, so both unique indexes see random keys), 45 % outgoing
 *   (`enqueueOutgoing` → `markSending` → `markResult`: delivered, displayed, accepted, or
 *   0.5 % failed, which stay in the outbox). All S/MIME-labelled with a signer fingerprint,
 *   as sipnote sends by default.
 * - Rows are written `--batch` at a time inside `Store.batch` (one transaction each) with the
 *   store's own settings (WAL, synchronous FULL, 8 KiB pages, 64 MiB cache). The clock is
 *   injected: each row is 1–5 000 ms after the previous one, as in the note.
 * - Insert time is the time spent inside the batches (the note's `insertTxSec`), including
 *   every commit and checkpoint; generating the rows is outside it but inside "wall".
 * - Search runs in a fresh `node` process that opens the store as the app would (so the
 *   insert's heap and caches do not colour it): `store.messages.search(word, { limit: 50 })`,
 *   i.e. the FTS5 query plus the joins and the mapping to `Message` objects. Word sets: (a)
 *   drawn by corpus frequency (seed 0xC0FFEE, as the note) plus the 10 commonest words, (b)
 *   drawn uniformly from the vocabulary. One untimed pass, then 2 timed passes; p50/p99/max
 *   over all timed queries. Also timed, without a target: search within one conversation, a
 *   history page, the conversation list, the outbox.
 * - Size: after `wal_checkpoint(TRUNCATE)`; per table and index from `dbstat`.
 *
 * The machine is a shared VM: the load average is printed before and after, and CPU time
 * next to wall time; a run under a high load is not a measurement of the store.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { DATABASE_FILE, openStore, type IncomingInput, type Store } from '../main/store/index.js';

// ─── Options ────────────────────────────────────────────────────────────────────────────────

interface Options {
  rows: number;
  batch: number;
  queries: number;
  dir: string | undefined;
  keep: boolean;
  json: boolean;
  cacheMiB: number | undefined;
  calibrate: boolean;
  /** Internal: the search phase, run in a child process on an existing --dir. */
  searchOnly: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const options: Options = {
    rows: 1_000_000,
    batch: 100_000,
    queries: 200,
    dir: undefined,
    keep: false,
    json: false,
    cacheMiB: undefined,
    calibrate: false,
    searchOnly: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const number = (): number => {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value <= 0) throw new Error(`${flag} needs a positive integer`);
      return value;
    };
    if (flag === '--rows') options.rows = number();
    else if (flag === '--batch') options.batch = number();
    else if (flag === '--queries') options.queries = number();
    else if (flag === '--cache-mib') options.cacheMiB = number();
    else if (flag === '--dir') options.dir = argv[++i];
    else if (flag === '--keep') options.keep = true;
    else if (flag === '--json') options.json = true;
    else if (flag === '--calibrate') options.calibrate = true;
    else if (flag === '--search-only') options.searchOnly = true;
    else throw new Error(`unknown option ${flag}; see the comment at the top of bench/history.ts`);
  }
  return options;
}

// ─── Deterministic data ─────────────────────────────────────────────────────────────────────

/** mulberry32, as in the note. */
class Random {
  constructor(private seed: number) {}

  next(): number {
    this.seed |= 0;
    this.seed = (this.seed + 0x6d2b79f5) | 0;
    let t = Math.imul(this.seed ^ (this.seed >>> 15), 1 | this.seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  token(length: number, alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_'): string {
    let text = '';
    for (let i = 0; i < length; i++) text += alphabet[this.below(alphabet.length)];
    return text;
  }
}

/** The commonest words of a chat, in rank order (rank 1 is in about 60 % of bodies). */
const COMMON_WORDS = (
  'the i you to a and it is that of in me for my on have be we are this not what just so but ' +
  'with do at can was all ok get like know if your will no yes when here how go up out now ' +
  'about there one think good see tomorrow time today back then come love need want thanks ' +
  'got see you later night morning call home work meeting lunch café naïve über привет где ' +
  'когда señor mañana über straße 😀 sorry please sure maybe really right well let still'
)
  .split(' ')
  .filter((word, index, all) => all.indexOf(word) === index);

const SYLLABLES = ['ka', 'lo', 'mi', 'ren', 'ta', 'vo', 'sel', 'an', 'pri', 'du', 'mo', 'gre', 'zu', 'nal', 'fi', 'ber', 'os', 'tek', 'ul', 'yam', 'che', 'dor', 'pa', 'wi'];
const VOCABULARY_SIZE = 20_000;

class Corpus {
  readonly vocabulary: string[] = [];
  private readonly cdf = new Float64Array(VOCABULARY_SIZE);

  constructor(private readonly random: Random) {
    const seen = new Set<string>();
    for (const word of COMMON_WORDS) {
      seen.add(word);
      this.vocabulary.push(word);
    }
    while (this.vocabulary.length < VOCABULARY_SIZE) {
      let word = '';
      const syllables = 1 + random.below(4);
      for (let i = 0; i < syllables; i++) word += SYLLABLES[random.below(SYLLABLES.length)];
      if (!seen.has(word)) {
        seen.add(word);
        this.vocabulary.push(word);
      }
    }
    let sum = 0;
    for (let i = 0; i < VOCABULARY_SIZE; i++) this.cdf[i] = sum += 1 / (i + 1);
    for (let i = 0; i < VOCABULARY_SIZE; i++) this.cdf[i]! /= sum;
  }

  /** A word with probability ∝ 1/rank. */
  zipfWord(random = this.random): string {
    const u = random.next();
    let lo = 0;
    let hi = VOCABULARY_SIZE - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return this.vocabulary[lo]!;
  }

  /** About 80 characters on average: mostly short lines, some paragraphs (capped at 1 000). */
  body(): string {
    const target = Math.min(1000, 6 + Math.round(-Math.log(1 - this.random.next()) * 74));
    let text = this.zipfWord();
    while (text.length < target) text += ' ' + this.zipfWord();
    return text;
  }
}

// ─── Measurements ───────────────────────────────────────────────────────────────────────────

interface Latency {
  p50: number;
  p99: number;
  max: number;
  n: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function latency(samples: readonly number[]): Latency {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? NaN), n: sorted.length };
}

function timeEach<T>(items: readonly T[], run: (item: T) => unknown, passes = 2): Latency {
  for (const item of items) run(item); // untimed: page cache and statement cache warm
  const samples: number[] = [];
  for (let pass = 0; pass < passes; pass++) {
    for (const item of items) {
      const start = process.hrtime.bigint();
      run(item);
      samples.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  }
  return latency(samples);
}

const seconds = (ns: bigint) => Number(ns) / 1e9;
const cpuSeconds = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1e6;

// ─── Insert ─────────────────────────────────────────────────────────────────────────────────

const ACCOUNT = 'sip:me@example.com';
const PEERS = Array.from({ length: 200 }, (_, i) => `sip:user${i}@example.org`);

interface OutgoingRow {
  peer: string;
  body: string;
  imdn: string;
  fate: number;
  callId: string;
  fromTag: string;
}

interface InsertResult {
  insertSec: number;
  insertCpuSec: number;
  wallSec: number;
  rowsPerSec: number;
  firstTenthSec: number;
  lastTenthSec: number;
}

function insertRows(store: Store, corpus: Corpus, random: Random, options: Options, clock: { now: number }): InsertResult {
  const signers = PEERS.map(() => random.token(64, '0123456789abcdef'));
  const ourSigner = random.token(64, '0123456789abcdef');
  const batchSeconds: number[] = [];
  let insideNs = 0n;
  let insideCpu = 0;
  let written = 0;
  const wallStart = process.hrtime.bigint();
  while (written < options.rows) {
    // Generate the batch first: only the store's work is timed.
    const rows: Array<{ at: number; incoming?: IncomingInput; outgoing?: OutgoingRow }> = [];
    for (let i = 0; i < options.batch && written < options.rows; i++, written++) {
      clock.now += 1 + random.below(5000);
      const peerIndex = random.below(PEERS.length);
      const peer = PEERS[peerIndex]!;
      if (random.next() < 0.55) {
        rows.push({
          at: clock.now,
          incoming: {
            account: ACCOUNT,
            peer,
            body: corpus.body(),
            contentType: 'text/plain; charset=utf-8',
            security: 'encrypted-signed',
            signerFingerprint: signers[peerIndex]!,
            callId: `${random.token(20)}@192.0.2.${1 + random.below(250)}`,
            cseq: 1 + random.below(20),
            fromTag: random.token(16, '0123456789abcdef'),
            imdnMessageId: random.token(16),
            sentAt: clock.now - random.below(2000),
            receivedAt: clock.now,
          },
        });
      } else {
        rows.push({
          at: clock.now,
          outgoing: {
            peer,
            body: corpus.body(),
            imdn: random.token(16),
            fate: random.next(),
            callId: `${random.token(20)}@192.0.2.1`,
            fromTag: random.token(16, '0123456789abcdef'),
          },
        });
      }
    }
    const cpuStart = process.cpuUsage();
    const start = process.hrtime.bigint();
    store.batch(() => {
      for (const row of rows) {
        clock.now = row.at;
        if (row.incoming) {
          store.messages.recordIncoming(row.incoming);
          continue;
        }
        const out = row.outgoing!;
        const { id } = store.messages.enqueueOutgoing({
          account: ACCOUNT,
          peer: out.peer,
          body: out.body,
          contentType: 'text/plain; charset=utf-8',
          security: 'encrypted-signed',
          signerFingerprint: ourSigner,
          imdnMessageId: out.imdn,
        });
        store.messages.markSending(id, { callId: out.callId, cseq: 1, fromTag: out.fromTag });
        if (out.fate < 0.7) store.messages.markResult(id, { state: 'delivered', status: 200, reason: 'OK' });
        else if (out.fate < 0.85) store.messages.markResult(id, { state: 'displayed', status: 200, reason: 'OK' });
        else if (out.fate < 0.995) store.messages.markResult(id, { state: 'accepted', status: 202, reason: 'Accepted' });
        else store.messages.markResult(id, { state: 'failed', status: 480, reason: 'Temporarily Unavailable' });
      }
    });
    const ns = process.hrtime.bigint() - start;
    insideNs += ns;
    insideCpu += cpuSeconds(process.cpuUsage(cpuStart));
    batchSeconds.push(seconds(ns));
  }
  const tenth = Math.max(1, Math.round(batchSeconds.length / 10));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  return {
    insertSec: seconds(insideNs),
    insertCpuSec: insideCpu,
    wallSec: seconds(process.hrtime.bigint() - wallStart),
    rowsPerSec: Math.round(options.rows / seconds(insideNs)),
    firstTenthSec: sum(batchSeconds.slice(0, tenth)),
    lastTenthSec: sum(batchSeconds.slice(-tenth)),
  };
}

// ─── Search (in a fresh process) ────────────────────────────────────────────────────────────

interface SearchResult {
  byFrequency: { latencyMs: Latency; matches: { p50: number; p99: number; max: number } };
  uniform: { latencyMs: Latency; matches: { p50: number; p99: number; max: number } };
  extra: Record<string, Latency>;
  outboxRows: number;
}

function searchPhase(dataDir: string, options: Options): SearchResult {
  const corpus = new Corpus(new Random(0x5eed1234)); // the same vocabulary as the insert
  const store = openStore(dataDir);
  const raw = new Database(join(dataDir, DATABASE_FILE), { readonly: true });
  try {
    const countMatches = raw.prepare('SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?').pluck();
    const wordRandom = new Random(0xc0ffee);
    const byFrequency = [
      ...corpus.vocabulary.slice(0, 10),
      ...Array.from({ length: options.queries }, () => corpus.zipfWord(wordRandom)),
    ];
    const uniform = Array.from({ length: options.queries }, () => corpus.vocabulary[wordRandom.below(VOCABULARY_SIZE)]!);
    const matchStats = (words: string[]) => {
      const counts = words
        .map((word) => countMatches.get(`{body} : "${word.replaceAll('"', '""')}"`) as number)
        .sort((a, b) => a - b);
      return { p50: percentile(counts, 50), p99: percentile(counts, 99), max: counts.at(-1) ?? 0 };
    };
    const search = (word: string) => store.messages.search(word, { limit: 50 });
    const somePeers = PEERS.slice(0, 20);
    return {
      byFrequency: { latencyMs: timeEach(byFrequency, search), matches: matchStats(byFrequency) },
      uniform: { latencyMs: timeEach(uniform, search), matches: matchStats(uniform) },
      extra: {
        searchInConversation: timeEach(
          somePeers.flatMap((peer) => corpus.vocabulary.slice(0, 5).map((word) => ({ peer, word }))),
          ({ peer, word }) => store.messages.search(word, { peer, limit: 50 }),
        ),
        historyPage: timeEach(somePeers, (peer) => store.messages.history({ peer, limit: 50 })),
        conversationList: timeEach([0, 1, 2, 3, 4], () => store.conversations.list()),
        outbox: timeEach([0, 1, 2, 3, 4], () => store.messages.outbox()),
        dueOutbox: timeEach([0, 1, 2, 3, 4], () => store.messages.dueOutbox()),
      },
      outboxRows: store.messages.outbox().length,
    };
  } finally {
    raw.close();
    store.close();
  }
}

function runSearchInChild(dataDir: string, options: Options): SearchResult {
  const child = spawnSync(
    process.execPath,
    [fileURLToPath(import.meta.url), '--search-only', '--dir', dataDir, '--queries', String(options.queries)],
    { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 },
  );
  if (child.status !== 0) throw new Error(`search process failed (${child.status ?? child.signal}): ${child.stderr}`);
  return JSON.parse(child.stdout) as SearchResult;
}

// ─── Calibration: the note's schema on this machine, today ──────────────────────────────────

/**
 * performance.md appendix D, `bench.js`: one table (id, peer, body, ts), a (peer, ts) index,
 * external-content FTS5 filled by a trigger, batches of 10 000, synchronous NORMAL. The note
 * measured 44.4 s for 1 M rows; this machine's figure today turns the 30 s target into a ratio.
 */
function calibrate(rows: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'sipnote-bench-calibrate-'));
  try {
    const db = new Database(join(dir, 'note.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(`
      CREATE TABLE messages (id INTEGER PRIMARY KEY, peer TEXT NOT NULL, body TEXT NOT NULL, ts INTEGER NOT NULL);
      CREATE INDEX messages_peer_ts ON messages(peer, ts);
      CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='messages', content_rowid='id');
      CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, body) VALUES (new.id, new.body);
      END;`);
    const insert = db.prepare('INSERT INTO messages (id, peer, body, ts) VALUES (?, ?, ?, ?)');
    const insertBatch = db.transaction((batch: Array<[number, string, string, number]>) => {
      for (const row of batch) insert.run(...row);
    });
    const random = new Random(0x5eed1234);
    const corpus = new Corpus(random);
    let ts = 1_700_000_000_000;
    let id = 0;
    let insideNs = 0n;
    while (id < rows) {
      const batch: Array<[number, string, string, number]> = [];
      for (let i = 0; i < 10_000 && id < rows; i++) {
        id++;
        ts += 1 + random.below(5000);
        let body = corpus.zipfWord();
        while (body.length < 76) body += ' ' + corpus.zipfWord();
        batch.push([id, PEERS[random.below(PEERS.length)]!, body, ts]);
      }
      const start = process.hrtime.bigint();
      insertBatch(batch);
      insideNs += process.hrtime.bigint() - start;
    }
    db.close();
    return seconds(insideNs);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ─── Report ─────────────────────────────────────────────────────────────────────────────────

function main(): void {
  const options = parseOptions(process.argv.slice(2));
  if (options.searchOnly) {
    if (options.dir === undefined) throw new Error('--search-only needs --dir');
    process.stdout.write(JSON.stringify(searchPhase(options.dir, options)));
    return;
  }
  const loadBefore = loadavg();
  const root = options.dir ?? mkdtempSync(join(tmpdir(), 'sipnote-bench-history-'));
  const dataDir = options.dir ?? join(root, 'data');
  const clock = { now: 1_700_000_000_000 };
  const store = openStore(dataDir, {
    now: () => clock.now,
    ...(options.cacheMiB === undefined ? {} : { cacheSizeKiB: options.cacheMiB * 1024 }),
  });
  if (store.migration.from !== 0) {
    store.close();
    throw new Error(`${dataDir} already holds a database; give an empty --dir`);
  }
  try {
    console.log(`history bench: ${options.rows.toLocaleString('en')} messages, batches of ${options.batch.toLocaleString('en')}, data dir ${dataDir}`);
    console.log(`load average before: ${loadBefore.map((x) => x.toFixed(2)).join(' ')}`);

    const random = new Random(0x5eed1234);
    const insert = insertRows(store, new Corpus(random), random, options, clock);
    console.log(
      `insert: ${insert.insertSec.toFixed(2)} s in transactions (${insert.rowsPerSec.toLocaleString('en')} rows/s, ` +
        `CPU ${insert.insertCpuSec.toFixed(2)} s); wall with row generation ${insert.wallSec.toFixed(2)} s; ` +
        `first/last tenth of the batches ${insert.firstTenthSec.toFixed(2)} / ${insert.lastTenthSec.toFixed(2)} s`,
    );
    store.checkpoint();
    store.close();

    const path = join(dataDir, DATABASE_FILE);
    const raw = new Database(path, { readonly: true });
    const structures = raw
      .prepare('SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC')
      .all() as { name: string; bytes: number }[];
    const bodyChars = raw.prepare('SELECT avg(length(body)) FROM messages').pluck().get() as number;
    raw.close();
    const dbBytes = statSync(path).size;
    const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
    console.log(
      `size: ${mb(dbBytes)} MB; average body ${bodyChars.toFixed(1)} chars; ` +
        structures.filter((s) => s.bytes > 1e6).map((s) => `${s.name} ${mb(s.bytes)}`).join(', '),
    );

    const search = runSearchInChild(dataDir, options);
    const show = (label: string, r: SearchResult['byFrequency']) =>
      console.log(
        `search ${label}: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms ` +
          `(n = ${r.latencyMs.n}; matching rows p50/p99/max ${r.matches.p50}/${r.matches.p99}/${r.matches.max})`,
      );
    show('by corpus frequency + 10 commonest', search.byFrequency);
    show('uniform over the vocabulary', search.uniform);
    const brief = (l: Latency | undefined) => (l ? `p50 ${l.p50} ms, p99 ${l.p99} ms` : 'n/a');
    console.log(
      `other reads: search in one conversation (5 commonest words × 20 peers) ${brief(search.extra.searchInConversation)}; ` +
        `history page ${brief(search.extra.historyPage)}; conversation list (${PEERS.length}) ${brief(search.extra.conversationList)}; ` +
        `outbox (${search.outboxRows} rows) ${brief(search.extra.outbox)}; due outbox ${brief(search.extra.dueOutbox)}`,
    );

    let calibrationSec: number | undefined;
    if (options.calibrate) {
      calibrationSec = calibrate(options.rows);
      console.log(
        `calibration: the note's straightforward schema (performance.md appendix D) took ${calibrationSec.toFixed(2)} s here ` +
          `for ${options.rows.toLocaleString('en')} rows (the note: 44.4 s for 1 M); sipnote's store / note's schema = ` +
          `${(insert.insertSec / calibrationSec).toFixed(2)}`,
      );
    }

    const loadAfter = loadavg();
    console.log(`load average after: ${loadAfter.map((x) => x.toFixed(2)).join(' ')}`);
    const insertTarget = 30 * (options.rows / 1_000_000);
    const worstP99 = Math.max(search.byFrequency.latencyMs.p99, search.uniform.latencyMs.p99);
    console.log(
      `targets: insert ${insert.insertSec.toFixed(1)} s < ${insertTarget.toFixed(1)} s ${insert.insertSec < insertTarget ? 'PASS' : 'FAIL'}` +
        `${options.rows === 1_000_000 ? '' : ' (scaled to the row count)'}; ` +
        `search p99 ${worstP99} ms < 10 ms ${worstP99 < 10 ? 'PASS' : 'FAIL'}`,
    );
    if (options.json) {
      console.log(
        JSON.stringify({ rows: options.rows, batch: options.batch, ...insert, dbBytes, avgBodyChars: bodyChars, structures, search, calibrationSec, loadBefore, loadAfter }),
      );
    }
  } finally {
    store.close();
    if (!options.keep && options.dir === undefined) rmSync(root, { recursive: true, force: true });
  }
}

main();
