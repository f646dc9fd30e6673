/**
 * Parser throughput: sipnote's `parseMessage` against npm `sip` 0.0.6 (kirm/sip.js) and
 * JsSIP 3.13.8, on the ten-datagram corpus of /work/shared/notes/performance.md §2.
 *
 *   npm run bench                 # ~35 s: 1 fresh process per parser, 2 s warm-up, 7 × 1 s rounds
 *   npm run bench -- --quick      # ~10 s: 0.5 s warm-up, 5 × 0.25 s rounds
 *   npm run bench -- --reps 3     # the note's full method: 3 interleaved processes per parser
 *   npm run bench -- --only sipnote --cpu-prof   # writes build/bench/profiles/*.cpuprofile
 *
 * The method is the note's (`bench.js`, `run-all.sh`): every parser runs in its own fresh
 * `node` process (this file, started with `--worker <name>`), so JIT state and heap shape do
 * not leak from one parser into the next. The worker warms up, calibrates a round to the
 * requested length, times the rounds and prints one JSON line; the parent collects the lines,
 * takes medians and prints the table.
 *
 * Fairness: sipnote parses lazily (header values are interpreted when first read) while the
 * peers parse a fixed set of headers eagerly. So every adapter below does the same job a UAS
 * does on each message: parse, then read every Via's branch, From and To (URI and tag),
 * Call-ID, CSeq, Content-Type, the body length, and the method and Request-URI or the status.
 * The timed function is the very function whose output the check table verifies.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { parseMessage } from '../main/sip/message/parse.js';
import { ParseError } from '../main/sip/message/parse-error.js';
import { CORPUS, type CorpusMessage, type ExpectedFields } from './corpus.js';
import { cliFlags, int, median, printTable } from './harness.js';

// ---------------------------------------------------------------------------------------------
// What a UAS reads from every message
// ---------------------------------------------------------------------------------------------

/**
 * The fields an adapter fills in for one message. One object is reused for every message of a
 * run, so the cost of filling it is a few stores, the same for every parser. Values that each
 * parser represents in its own way (URIs, Content-Type) are kept as `unknown`: they are read,
 * which forces a lazy parser to produce them, but never compared.
 */
interface UasFields {
  /** Request method, or the status code of a response. */
  first: string | number | undefined;
  requestUri: unknown;
  callId: string | undefined;
  cseqSeq: number | undefined;
  cseqMethod: string | undefined;
  fromUri: unknown;
  fromTag: string | null | undefined;
  toUri: unknown;
  toTag: string | null | undefined;
  topBranch: string | null | undefined;
  topViaHost: string | undefined;
  viaCount: number;
  /** Sum of the lengths of every Via's branch: proof that each one was read. */
  branchChars: number;
  contentType: unknown;
  bodyLength: number;
  /** The body as the parser hands it over (decoded for the check table only). */
  body: Buffer | string | null | undefined;
}

function emptyFields(): UasFields {
  return {
    first: undefined,
    requestUri: undefined,
    callId: undefined,
    cseqSeq: undefined,
    cseqMethod: undefined,
    fromUri: undefined,
    fromTag: undefined,
    toUri: undefined,
    toTag: undefined,
    topBranch: undefined,
    topViaHost: undefined,
    viaCount: 0,
    branchChars: 0,
    contentType: undefined,
    bodyLength: 0,
    body: undefined,
  };
}

type ParserName = 'sipnote' | 'sip' | 'jssip';
const PARSER_NAMES: readonly ParserName[] = ['sipnote', 'sip', 'jssip'];

interface ParserAdapter {
  readonly name: ParserName;
  /** What the parser is given, e.g. "Buffer → latin1 string". */
  readonly input: string;
  /**
   * Parses one datagram and reads the UAS fields into `out`. Returns false when the parser
   * rejects the message (throws, or returns nothing).
   */
  read(datagram: Buffer, out: UasFields): boolean;
  /** The body as UTF-8 text, for the check table. */
  bodyText(body: UasFields['body']): string;
}

// ---------------------------------------------------------------------------------------------
// sipnote
// ---------------------------------------------------------------------------------------------

const sipnoteAdapter: ParserAdapter = {
  name: 'sipnote',
  input: 'Buffer',
  read(datagram, out) {
    try {
      const msg = parseMessage(datagram);
      if (msg.kind === 'request') {
        out.first = msg.method;
        out.requestUri = msg.uri;
      } else {
        out.first = msg.status;
        out.requestUri = undefined;
      }
      const vias = msg.vias;
      out.topBranch = undefined;
      out.topViaHost = undefined;
      let branchChars = 0;
      for (let i = 0; i < vias.length; i++) {
        const via = vias[i]!;
        const branch = via.params.get('branch');
        if (branch) branchChars += branch.length;
        if (i === 0) {
          out.topBranch = branch;
          out.topViaHost = via.host;
        }
      }
      out.viaCount = vias.length;
      out.branchChars = branchChars;
      // URIs as text, as the others give them (npm `sip` keeps URIs as strings); `from.uri`
      // would parse the URI on first use.
      const from = msg.from;
      out.fromUri = from.uriText;
      out.fromTag = from.params.get('tag');
      const to = msg.to;
      out.toUri = to.uriText;
      out.toTag = to.params.get('tag') ?? null;
      out.callId = msg.callId;
      const cseq = msg.cseq;
      out.cseqSeq = cseq.seq;
      out.cseqMethod = cseq.method;
      // Raw, as npm `sip` keeps it; `msg.contentType` would parse it into type, subtype, params.
      out.contentType = msg.headers.get('content-type');
      out.bodyLength = msg.body.length;
      out.body = msg.body;
      return true;
    } catch (error) {
      if (error instanceof ParseError) return false;
      throw error;
    }
  },
  bodyText: (body) => (Buffer.isBuffer(body) ? body.toString('utf8') : String(body)),
};

// ---------------------------------------------------------------------------------------------
// npm `sip` 0.0.6 (kirm/sip.js): no type declarations, so the shapes it returns are declared
// here, only as far as the benchmark reads them (see node_modules/sip/sip.js: parse, parseVia,
// parseAOR, parseCSeq).
// ---------------------------------------------------------------------------------------------

type KirmParams = Record<string, string | null | undefined>;

interface KirmVia {
  version: string;
  protocol: string;
  host: string;
  port?: number;
  params: KirmParams;
}

/** From/To: display name still quoted, URI left as a string. */
interface KirmAddress {
  name?: string;
  uri: string;
  params: KirmParams;
}

interface KirmMessage {
  method?: string;
  uri?: string;
  status?: number;
  reason?: string;
  headers: {
    via?: KirmVia[];
    from?: KirmAddress;
    to?: KirmAddress;
    'call-id'?: string;
    cseq?: { seq: number; method: string };
    'content-type'?: string;
    [name: string]: unknown;
  };
  /** `substring(0, Content-Length)` of the text after the empty line. */
  content?: string;
}

interface KirmSipModule {
  /** Decodes a Buffer as latin1 itself (`s.toString('binary')`); returns undefined when it gives up. */
  parse(data: string): KirmMessage | undefined;
}

const require = createRequire(import.meta.url);

function loadKirmSip(): KirmSipModule {
  return require('sip') as KirmSipModule;
}

function makeKirmAdapter(kirm: KirmSipModule): ParserAdapter {
  return {
    name: 'sip',
    input: 'Buffer → latin1 string',
    read(datagram, out) {
      let msg: KirmMessage | undefined;
      try {
        // What its UDP transport does with a datagram (sip.js parseMessage: s.toString('binary')).
        msg = kirm.parse(datagram.toString('latin1'));
      } catch {
        return false;
      }
      if (msg === undefined) return false;
      if (msg.method !== undefined) {
        out.first = msg.method;
        out.requestUri = msg.uri;
      } else {
        out.first = msg.status;
        out.requestUri = undefined;
      }
      const headers = msg.headers;
      const vias = headers.via ?? [];
      out.topBranch = undefined;
      out.topViaHost = undefined;
      let branchChars = 0;
      for (let i = 0; i < vias.length; i++) {
        const via = vias[i]!;
        const branch = via.params.branch;
        if (branch) branchChars += branch.length;
        if (i === 0) {
          out.topBranch = branch;
          out.topViaHost = via.host;
        }
      }
      out.viaCount = vias.length;
      out.branchChars = branchChars;
      const from = headers.from;
      out.fromUri = from?.uri;
      out.fromTag = from?.params.tag;
      const to = headers.to;
      out.toUri = to?.uri;
      out.toTag = to?.params.tag ?? null;
      out.callId = headers['call-id'];
      const cseq = headers.cseq;
      out.cseqSeq = cseq?.seq;
      out.cseqMethod = cseq?.method;
      out.contentType = headers['content-type'];
      const body = msg.content ?? '';
      out.bodyLength = body.length;
      out.body = body;
      return true;
    },
    // latin1 text holds one byte per character: turn it back into the bytes, then decode.
    bodyText: (body) => Buffer.from(typeof body === 'string' ? body : '', 'latin1').toString('utf8'),
  };
}

// ---------------------------------------------------------------------------------------------
// JsSIP 3.13.8: lib/Parser.js has no .d.ts; the shapes come from lib/SIPMessage.js and
// lib/NameAddrHeader.js. It parses the first Via eagerly and keeps the others raw, so the adapter
// parses those on demand (`parseHeader('via', i)`) to read every branch, as the others do.
// ---------------------------------------------------------------------------------------------

interface JssipVia {
  host: string;
  port?: number;
  branch?: string;
}

interface JssipNameAddr {
  readonly uri: unknown;
  getParam(name: string): string | null | undefined;
}

interface JssipMessage {
  /** Requests; for a response JsSIP copies it from CSeq. */
  method?: string;
  ruri?: unknown;
  status_code?: number;
  via?: JssipVia;
  via_branch?: string;
  from?: JssipNameAddr;
  from_tag?: string | null;
  to?: JssipNameAddr;
  to_tag?: string | null;
  call_id?: string;
  cseq?: number;
  /** `substr(bodyStart, Content-Length)`: counts characters, not bytes. */
  body: string | null;
  getHeaders(name: string): string[];
  /** Parses (and caches) the idx-th header of that name with the PEG grammar. */
  parseHeader(name: string, idx?: number): unknown;
}

interface JssipParserModule {
  /** `ua` is only stored on IncomingRequest, never read while parsing: a stub `{}` will do. */
  parseMessage(data: string, ua: object): JssipMessage | undefined;
}

function loadJssipParser(): JssipParserModule {
  return require('jssip/lib/Parser') as JssipParserModule;
}

function makeJssipAdapter(jssip: JssipParserModule): ParserAdapter {
  const stubUa = {};
  return {
    name: 'jssip',
    input: 'Buffer → UTF-8 string',
    read(datagram, out) {
      let msg: JssipMessage | undefined;
      try {
        msg = jssip.parseMessage(datagram.toString('utf8'), stubUa);
      } catch {
        return false;
      }
      if (msg === undefined) return false;
      if (msg.status_code === undefined) {
        out.first = msg.method;
        out.requestUri = msg.ruri;
      } else {
        out.first = msg.status_code;
        out.requestUri = undefined;
      }
      const viaCount = msg.getHeaders('via').length;
      out.topBranch = undefined;
      out.topViaHost = undefined;
      let branchChars = 0;
      for (let i = 0; i < viaCount; i++) {
        const via = i === 0 ? msg.via : (msg.parseHeader('via', i) as JssipVia | undefined);
        const branch = via?.branch;
        if (branch) branchChars += branch.length;
        if (i === 0) {
          out.topBranch = msg.via_branch;
          out.topViaHost = via?.host;
        }
      }
      out.viaCount = viaCount;
      out.branchChars = branchChars;
      out.fromUri = msg.from?.uri;
      out.fromTag = msg.from_tag;
      out.toUri = msg.to?.uri;
      out.toTag = msg.to_tag ?? null;
      out.callId = msg.call_id;
      out.cseqSeq = msg.cseq;
      out.cseqMethod = msg.method;
      out.contentType = msg.parseHeader('content-type');
      out.bodyLength = msg.body === null ? 0 : msg.body.length;
      out.body = msg.body;
      return true;
    },
    bodyText: (body) => (typeof body === 'string' ? body : ''),
  };
}

function loadAdapter(name: ParserName): ParserAdapter {
  switch (name) {
    case 'sipnote':
      return sipnoteAdapter;
    case 'sip':
      return makeKirmAdapter(loadKirmSip());
    case 'jssip':
      return makeJssipAdapter(loadJssipParser());
  }
}

// ---------------------------------------------------------------------------------------------
// Check table: does each parser read the expected values from every corpus message?
// ---------------------------------------------------------------------------------------------

/** A difference from the expected values; `required` ones mean the parser failed the message. */
interface Mismatch {
  field: string;
  got: unknown;
  required: boolean;
}

interface MessageCheck {
  rejected: boolean;
  mismatches: Mismatch[];
}

function checkMessage(adapter: ParserAdapter, message: CorpusMessage): MessageCheck {
  const out = emptyFields();
  if (!adapter.read(message.bytes, out)) return { rejected: true, mismatches: [] };
  const e: ExpectedFields = message.expected;
  const mismatches: Mismatch[] = [];
  const compare = (field: string, got: unknown, want: unknown, required: boolean): void => {
    if (got !== want) mismatches.push({ field, got, required });
  };
  // Required: what identifies the transaction and dialog (RFC 3261 §17.1.3, §17.2.3, §12).
  compare('first', out.first, e.first, true);
  compare('callId', out.callId, e.callId, true);
  compare('cseq', `${String(out.cseqSeq)} ${String(out.cseqMethod)}`, `${e.cseqSeq} ${e.cseqMethod}`, true);
  compare('fromTag', out.fromTag, e.fromTag, true);
  compare('branch', out.topBranch, e.topBranch, true);
  // Informational: reported, but a difference here does not fail the message.
  compare('toTag', out.toTag, e.toTag, false);
  compare('vias', out.viaCount, e.viaCount, false);
  compare('viaHost', out.topViaHost, e.topViaHost, false);
  const body = adapter.bodyText(out.body);
  if (body !== e.body) mismatches.push({ field: 'body', got: `${body.length} chars`, required: false });
  return { rejected: false, mismatches };
}

function describeCheck(check: MessageCheck): string {
  if (check.rejected) return 'REJECTED';
  if (check.mismatches.length === 0) return 'ok';
  const parts = check.mismatches.map((m) => `${m.field}=${typeof m.got === 'string' ? JSON.stringify(m.got) : String(m.got)}`);
  const failed = check.mismatches.some((m) => m.required);
  return `${failed ? 'FAIL ' : 'note '}${parts.join(' ')}`;
}

/** Prints the check table; returns, per parser, the messages it failed (rejected or a required field wrong). */
function runChecks(adapters: readonly ParserAdapter[]): Map<ParserName, number[]> {
  const failures = new Map<ParserName, number[]>();
  const cells: string[][] = CORPUS.map((message, index) => [String(index), message.label, String(message.bytes.length)]);
  for (const adapter of adapters) {
    const failed: number[] = [];
    CORPUS.forEach((message, index) => {
      const check = checkMessage(adapter, message);
      if (check.rejected || check.mismatches.some((m) => m.required)) failed.push(index);
      cells[index]!.push(describeCheck(check));
    });
    failures.set(adapter.name, failed);
  }
  console.log('Check: fields read from each corpus message, against the expected literals in bench/corpus.ts.');
  console.log('  Required (a difference fails the message): start line, Call-ID, CSeq, From tag, top Via branch.');
  console.log('  Informational ("note"): To tag, Via count, top Via host, body text after UTF-8 decoding.');
  printTable(['#', 'message', 'bytes', ...adapters.map((a) => a.name)], cells);
  for (const adapter of adapters) {
    const failed = failures.get(adapter.name) ?? [];
    if (failed.length > 0) {
      console.log(`  ${adapter.name}: FAILED ${failed.length} of ${CORPUS.length} messages (#${failed.join(', #')}); its numbers below are marked.`);
    }
  }
  console.log('');
  return failures;
}

// ---------------------------------------------------------------------------------------------
// Worker: time one parser in this (fresh) process
// ---------------------------------------------------------------------------------------------

interface TimingOptions {
  warmupSeconds: number;
  roundSeconds: number;
  rounds: number;
}

interface WorkerResult {
  parser: ParserName;
  input: string;
  /** Corpus indices the parser rejected at start-up and that were left out of the loop. */
  skipped: number[];
  messagesPerRound: number;
  bytesPerMessage: number;
  /** msg/s of each timed round. */
  rates: number[];
  sink: number;
}

function runWorker(name: ParserName, timing: TimingOptions): WorkerResult {
  const adapter = loadAdapter(name);
  const out = emptyFields();
  const data: Buffer[] = [];
  const skipped: number[] = [];
  CORPUS.forEach((message, index) => {
    if (adapter.read(message.bytes, out)) data.push(message.bytes);
    else skipped.push(index);
  });
  if (data.length === 0) throw new Error(`${name} rejected every corpus message`);
  const bytes = data.reduce((sum, buf) => sum + buf.length, 0);

  let sink = 0;
  const pass = (times: number): void => {
    for (let k = 0; k < times; k++) {
      for (let i = 0; i < data.length; i++) {
        if (!adapter.read(data[i]!, out)) throw new Error(`${name} rejected message ${i} during the run`);
        // Consume the results, so that no part of the work can be optimised away.
        sink += out.branchChars + out.bodyLength + (out.callId?.length ?? 0);
      }
    }
  };
  const seconds = (since: bigint): number => Number(process.hrtime.bigint() - since) / 1e9;

  // Warm-up: grow the pass until one takes ≥ 50 ms, keep going until warmupSeconds have passed.
  let times = 10;
  const warmStart = process.hrtime.bigint();
  while (seconds(warmStart) < timing.warmupSeconds) {
    const t = process.hrtime.bigint();
    pass(times);
    if (seconds(t) < 0.05) times *= 2;
  }
  // Calibrate a round to roundSeconds.
  {
    const t = process.hrtime.bigint();
    pass(times);
    times = Math.max(1, Math.round((times * timing.roundSeconds) / seconds(t)));
  }
  const rates: number[] = [];
  for (let r = 0; r < timing.rounds; r++) {
    const t = process.hrtime.bigint();
    pass(times);
    rates.push((times * data.length) / seconds(t));
  }
  return {
    parser: name,
    input: adapter.input,
    skipped,
    messagesPerRound: times * data.length,
    bytesPerMessage: bytes / data.length,
    rates,
    sink,
  };
}

// ---------------------------------------------------------------------------------------------
// Parent: check, spawn one worker per parser (and repetition), summarise
// ---------------------------------------------------------------------------------------------

interface CliOptions {
  quick: boolean;
  reps: number;
  only: ParserName[];
  cpuProf: boolean;
  json: boolean;
  timing: TimingOptions;
}

function parseCli(argv: readonly string[]): CliOptions {
  const flags = cliFlags(argv);
  const quick = flags.has('--quick');
  const valueOf = flags.value;
  const numberOf = flags.positiveNumber;
  const onlyText = valueOf('--only');
  const only = onlyText === undefined ? [...PARSER_NAMES] : onlyText.split(',').map(parserName);
  return {
    quick,
    reps: Math.round(numberOf('--reps', 1)),
    only,
    cpuProf: argv.includes('--cpu-prof'),
    json: argv.includes('--json'),
    timing: {
      warmupSeconds: numberOf('--warmup', quick ? 0.5 : 2),
      roundSeconds: numberOf('--round', quick ? 0.25 : 1),
      rounds: Math.round(numberOf('--rounds', quick ? 5 : 7)),
    },
  };
}

function parserName(text: string): ParserName {
  const found = PARSER_NAMES.find((name) => name === text);
  if (found === undefined) throw new Error(`unknown parser ${JSON.stringify(text)}; known: ${PARSER_NAMES.join(', ')}`);
  return found;
}

const SCRIPT = fileURLToPath(import.meta.url);

function spawnWorker(name: ParserName, options: CliOptions): WorkerResult {
  const { warmupSeconds, roundSeconds, rounds } = options.timing;
  const nodeArgs: string[] = [];
  if (options.cpuProf) {
    const dir = join(dirname(SCRIPT), 'profiles');
    mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`);
  }
  const args = [
    ...nodeArgs,
    SCRIPT,
    '--worker',
    name,
    '--warmup',
    String(warmupSeconds),
    '--round',
    String(roundSeconds),
    '--rounds',
    String(rounds),
  ];
  // Generous bound: the planned time three times over, plus start-up.
  const timeoutMs = Math.round((warmupSeconds + roundSeconds * (rounds + 1)) * 3000 + 30_000);
  const child = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'inherit'] });
  if (child.error !== undefined) throw new Error(`worker ${name} failed: ${child.error.message}`);
  if (child.status !== 0) throw new Error(`worker ${name} exited with ${String(child.status ?? child.signal)}`);
  const line = child.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as WorkerResult;
}

interface Summary {
  parser: ParserName;
  input: string;
  skipped: number[];
  bytesPerMessage: number;
  rates: number[];
  median: number;
  min: number;
  max: number;
}


function summarise(results: readonly WorkerResult[]): Summary[] {
  const byParser = new Map<ParserName, WorkerResult[]>();
  for (const result of results) byParser.set(result.parser, [...(byParser.get(result.parser) ?? []), result]);
  const summaries: Summary[] = [];
  for (const [parser, runs] of byParser) {
    const first = runs[0]!;
    const rates = runs.flatMap((run) => run.rates);
    summaries.push({
      parser,
      input: first.input,
      skipped: first.skipped,
      bytesPerMessage: first.bytesPerMessage,
      rates,
      median: median(rates),
      min: Math.min(...rates),
      max: Math.max(...rates),
    });
  }
  return summaries;
}



function printResults(summaries: readonly Summary[], failures: ReadonlyMap<ParserName, number[]>, options: CliOptions): void {
  const { warmupSeconds, roundSeconds, rounds } = options.timing;
  console.log(
    `Throughput: ${options.reps} fresh process(es) per parser, ~${warmupSeconds} s warm-up, ${rounds} rounds of ~${roundSeconds} s each; ` +
      `median (min–max) over all rounds. MB = 10^6 bytes.`,
  );
  const rows = summaries.map((s) => {
    const failed = failures.get(s.parser) ?? [];
    const marks = [
      failed.length > 0 ? `* failed #${failed.join(',#')} in the check` : '',
      s.skipped.length > 0 ? `rejected #${s.skipped.join(',#')}, timed on ${CORPUS.length - s.skipped.length}/${CORPUS.length}` : '',
    ].filter((m) => m !== '');
    return [
      s.parser,
      s.input,
      int(s.median),
      `${int(s.min)}–${int(s.max)}`,
      ((s.median * s.bytesPerMessage) / 1e6).toFixed(1),
      (1e6 / s.median).toFixed(2),
      String(s.rates.length),
      marks.join('; '),
    ];
  });
  printTable(['parser', 'input', 'msg/s', 'min–max', 'MB/s', 'µs/msg', 'rounds', ''], rows);
  console.log('');

  const sipnote = summaries.find((s) => s.parser === 'sipnote');
  const peers = summaries.filter((s) => s.parser !== 'sipnote');
  if (sipnote === undefined || peers.length === 0) return;
  const ratio = (peer: Summary): string => {
    const r = sipnote.median / peer.median;
    const reading = r >= 1 ? `sipnote ${r.toFixed(2)}x as fast` : `sipnote takes ${(1 / r).toFixed(2)}x as long per message`;
    return `${r.toFixed(2)}x  (${reading})`;
  };
  console.log('Ratios of median msg/s (> 1: sipnote is faster):');
  for (const peer of peers) console.log(`  sipnote / ${peer.parser.padEnd(5)} = ${ratio(peer)}`);
  const fastest = peers.reduce((a, b) => (b.median > a.median ? b : a));
  console.log(`  ratio vs fastest peer (${fastest.parser}): ${(sipnote.median / fastest.median).toFixed(2)}x`);
  console.log('  Shared 2-vCPU VM: single rounds vary by about ±30 %; compare medians, and rerun before believing a change under ~1.3x.');
}

function main(argv: readonly string[]): void {
  const workerIndex = argv.indexOf('--worker');
  if (workerIndex >= 0) {
    const name = parserName(argv[workerIndex + 1] ?? '');
    const options = parseCli(argv);
    console.log(JSON.stringify(runWorker(name, options.timing)));
    return;
  }

  const options = parseCli(argv);
  const totalBytes = CORPUS.reduce((sum, m) => sum + m.bytes.length, 0);
  console.log(
    `sipnote parser benchmark — Node ${process.version}, corpus of ${CORPUS.length} datagrams, ` +
      `${totalBytes} bytes (${(totalBytes / CORPUS.length).toFixed(1)} B/msg)`,
  );
  console.log('');
  const failures = runChecks(options.only.map(loadAdapter));

  const results: WorkerResult[] = [];
  // Interleaved like the note's run-all.sh: sipnote, sip, jssip, sipnote, sip, jssip, …
  for (let rep = 0; rep < options.reps; rep++) {
    for (const name of options.only) {
      process.stderr.write(`  timing ${name} (process ${rep + 1}/${options.reps})…\n`);
      results.push(spawnWorker(name, options));
    }
  }
  console.log('');
  printResults(summarise(results), failures, options);
  if (options.json) for (const result of results) console.log(JSON.stringify(result));
  if (options.cpuProf) console.log(`\nCPU profiles: ${join(dirname(SCRIPT), 'profiles')}`);
}

main(process.argv.slice(2));
