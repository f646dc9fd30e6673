/**
 * Parser throughput: sipnote's `parseMessage` against npm `sip` 0.0.6 (kirm/sip.js) and
 * JsSIP 3.13.8, on the ten-datagram corpus of /work/shared/notes/performance.md §2.
 *
 *   npm run bench                 # ~40 s: 1 process per parser, 2 s warm-up, 15 × 0.5 s CPU rounds, interleaved
 *   npm run bench -- --quick      # ~12 s: 0.5 s warm-up, 7 × 0.2 s rounds
 *   npm run bench -- --reps 3     # 3 sets of fresh processes, rounds pooled
 *   npm run bench -- --only sipnote --cpu-prof   # writes build/bench/profiles/*.cpuprofile
 *
 * Timing is by CPU time (`process.cpuUsage()` around each round, inside the worker), not wall
 * time: on a shared 2-core machine wall time mostly measures how long the process waited for a
 * core (issue #2: 0.73x in one run, 2.12x in the next, for the same code).
 *
 * Each parser still runs in its own `node` process (this file, started with `--worker <name>`),
 * kept alive for the whole run. One process for all three was considered and rejected: the
 * adapters' call sites and the builtins they share (`Buffer#toString`, `String#indexOf`/`slice`,
 * RegExp) would collect type feedback from three parsers, so whichever warmed up first would run
 * on more specialised code than the others, and each parser's garbage would be collected during
 * the others' rounds. Separate processes keep JIT state and heap apart; interleaving their
 * rounds (sipnote, sip, jssip, sipnote, sip, jssip, …, each asked over the IPC channel in turn)
 * puts all parsers' rounds in the same stretch of time, so a slow minute of the machine slows
 * all of them alike. Each worker keeps its own warm-up (done one at a time) before the rounds.
 * The report gives median and min CPU µs per message, and the ratios from each.
 *
 * Fairness: sipnote parses lazily (header values are interpreted when first read) while the
 * peers parse a fixed set of headers eagerly. So every adapter below does the same job a UAS
 * does on each message: parse, then read every Via's branch, From and To (URI and tag),
 * Call-ID, CSeq, Content-Type, the body length, and the method and Request-URI or the status.
 * The timed function is the very function whose output the check table verifies.
 */
import { fork, type ChildProcess } from 'node:child_process';
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
// Worker: one parser in its own process, timing rounds by CPU time when the parent asks
// ---------------------------------------------------------------------------------------------

interface TimingOptions {
  warmupSeconds: number;
  roundSeconds: number;
  rounds: number;
}

/** Parent → worker, over the IPC channel of `fork`. */
type WorkerCommand = { cmd: 'warmup'; warmupSeconds: number; roundSeconds: number } | { cmd: 'round' } | { cmd: 'exit' };

/** Worker → parent. */
type WorkerReply =
  | { type: 'ready'; input: string; skipped: number[]; bytesPerMessage: number; messagesPerRound: number }
  | { type: 'round'; messages: number; cpuMicros: number; wallNanos: number }
  | { type: 'done'; sink: number };

/**
 * The worker side. It reads the corpus once (leaving out what the parser rejects), then obeys
 * the parent: `warmup` (warm up, size a round to the requested CPU time, answer `ready`),
 * `round` (run one timed round, answer with its CPU and wall time), `exit`.
 *
 * A round is timed with `process.cpuUsage()` (user + system CPU of this process): time spent
 * waiting for a core that another process holds is not counted, which wall-clock time on a
 * loaded 2-core machine counts at random. It does count V8's helper threads (concurrent GC
 * marking, background compilation): that is work the parser causes, so it belongs in its cost.
 */
function runWorker(name: ParserName): void {
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
  /** CPU seconds of `pass(times)`. */
  const cpuPass = (times: number): number => {
    const start = process.cpuUsage();
    pass(times);
    const used = process.cpuUsage(start);
    return (used.user + used.system) / 1e6;
  };

  let times = 10;
  const send = (reply: WorkerReply): void => {
    process.send!(reply);
  };
  process.on('message', (command: WorkerCommand) => {
    switch (command.cmd) {
      case 'warmup': {
        // Grow the pass until one takes ≥ 50 ms of CPU, keep going until warmupSeconds of CPU
        // have been spent, then size a round to roundSeconds of CPU.
        let spent = 0;
        while (spent < command.warmupSeconds) {
          const cpu = cpuPass(times);
          spent += cpu;
          if (cpu < 0.05) times *= 2;
        }
        times = Math.max(1, Math.round((times * command.roundSeconds) / cpuPass(times)));
        send({ type: 'ready', input: adapter.input, skipped, bytesPerMessage: bytes / data.length, messagesPerRound: times * data.length });
        break;
      }
      case 'round': {
        const wallStart = process.hrtime.bigint();
        const cpuStart = process.cpuUsage();
        pass(times);
        const cpu = process.cpuUsage(cpuStart);
        const wallNanos = Number(process.hrtime.bigint() - wallStart);
        send({ type: 'round', messages: times * data.length, cpuMicros: cpu.user + cpu.system, wallNanos });
        break;
      }
      case 'exit':
        send({ type: 'done', sink });
        process.disconnect();
        break;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Parent: check, start one worker per parser, drive their rounds in turn, summarise
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
      roundSeconds: numberOf('--round', quick ? 0.2 : 0.5),
      rounds: Math.round(numberOf('--rounds', quick ? 7 : 15)),
    },
  };
}

function parserName(text: string): ParserName {
  const found = PARSER_NAMES.find((name) => name === text);
  if (found === undefined) throw new Error(`unknown parser ${JSON.stringify(text)}; known: ${PARSER_NAMES.join(', ')}`);
  return found;
}

const SCRIPT = fileURLToPath(import.meta.url);

/** The parent's handle on one worker process: send a command, await its one reply. */
interface Worker {
  readonly name: ParserName;
  ask(command: WorkerCommand, timeoutMs: number): Promise<WorkerReply>;
  /** Settles when the process has exited (after `exit`, it writes its CPU profile first). */
  readonly exited: Promise<void>;
  kill(): void;
}

function startWorker(name: ParserName, options: CliOptions): Worker {
  const execArgv: string[] = [];
  if (options.cpuProf) {
    const dir = join(dirname(SCRIPT), 'profiles');
    mkdirSync(dir, { recursive: true });
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`);
  }
  const child: ChildProcess = fork(SCRIPT, ['--worker', name], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let exited: string | undefined;
  let markExited: () => void = () => {};
  const exitedPromise = new Promise<void>((resolve) => (markExited = resolve));
  let pending: { resolve(reply: WorkerReply): void; reject(error: Error): void } | undefined;
  child.on('message', (reply: WorkerReply) => {
    const waiting = pending;
    pending = undefined;
    waiting?.resolve(reply);
  });
  child.on('exit', (code, signal) => {
    exited = `worker ${name} exited with ${String(code ?? signal)}`;
    pending?.reject(new Error(exited));
    pending = undefined;
    markExited();
  });
  return {
    name,
    exited: exitedPromise,
    ask(command, timeoutMs) {
      if (exited !== undefined) return Promise.reject(new Error(exited));
      return new Promise<WorkerReply>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending = undefined;
          reject(new Error(`worker ${name} did not answer ${command.cmd} within ${timeoutMs} ms`));
        }, timeoutMs);
        const settle = <T>(f: (value: T) => void) => (value: T): void => {
          clearTimeout(timer);
          f(value);
        };
        pending = { resolve: settle(resolve), reject: settle(reject) };
        child.send(command);
      });
    },
    kill() {
      if (exited === undefined) child.kill();
    },
  };
}

/** What one worker process measured. */
interface WorkerResult {
  parser: ParserName;
  input: string;
  skipped: number[];
  bytesPerMessage: number;
  /** CPU µs per message, one per round. */
  cpuMicrosPerMessage: number[];
  /** CPU time / wall time of each round: below 1 when the process had to wait for a core. */
  cpuShare: number[];
  sink: number;
}

/**
 * One set of fresh worker processes, one per parser: start them all, warm them up one at a
 * time (never two at once, so a warm-up does not compete for a core with another), then time
 * the rounds interleaved, A B C A B C …, so every parser's rounds are spread over the same
 * stretch of time and see the same load from the rest of the machine.
 */
async function runSet(options: CliOptions, rep: number): Promise<WorkerResult[]> {
  const { warmupSeconds, roundSeconds, rounds } = options.timing;
  // Generous bounds in wall time: the machine may be several times oversubscribed.
  const warmupTimeoutMs = Math.round((warmupSeconds + roundSeconds * 2) * 10_000 + 30_000);
  const roundTimeoutMs = Math.round(roundSeconds * 20_000 + 10_000);
  const workers = options.only.map((name) => startWorker(name, options));
  try {
    const results: WorkerResult[] = [];
    for (const worker of workers) {
      process.stderr.write(`  warming up ${worker.name} (process set ${rep + 1}/${options.reps})…\n`);
      const ready = await worker.ask({ cmd: 'warmup', warmupSeconds, roundSeconds }, warmupTimeoutMs);
      if (ready.type !== 'ready') throw new Error(`worker ${worker.name}: unexpected ${ready.type}`);
      results.push({
        parser: worker.name,
        input: ready.input,
        skipped: ready.skipped,
        bytesPerMessage: ready.bytesPerMessage,
        cpuMicrosPerMessage: [],
        cpuShare: [],
        sink: 0,
      });
    }
    process.stderr.write(`  timing ${rounds} interleaved rounds of ${options.only.join(', ')}…\n`);
    for (let r = 0; r < rounds; r++) {
      for (let w = 0; w < workers.length; w++) {
        const reply = await workers[w]!.ask({ cmd: 'round' }, roundTimeoutMs);
        if (reply.type !== 'round') throw new Error(`worker ${workers[w]!.name}: unexpected ${reply.type}`);
        results[w]!.cpuMicrosPerMessage.push(reply.cpuMicros / reply.messages);
        results[w]!.cpuShare.push((reply.cpuMicros * 1000) / reply.wallNanos);
      }
    }
    for (let w = 0; w < workers.length; w++) {
      const done = await workers[w]!.ask({ cmd: 'exit' }, roundTimeoutMs);
      if (done.type === 'done') results[w]!.sink = done.sink;
    }
    // Let them exit by themselves (killing one would lose its CPU profile), within a bound.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(workers.map((worker) => worker.exited)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, 30_000))),
    ]);
    clearTimeout(timer);
    return results;
  } finally {
    for (const worker of workers) worker.kill();
  }
}

interface Summary {
  parser: ParserName;
  input: string;
  skipped: number[];
  bytesPerMessage: number;
  /** CPU µs per message over all rounds of all process sets. */
  micros: number[];
  medianMicros: number;
  minMicros: number;
  maxMicros: number;
  medianCpuShare: number;
}

function summarise(results: readonly WorkerResult[]): Summary[] {
  const byParser = new Map<ParserName, WorkerResult[]>();
  for (const result of results) byParser.set(result.parser, [...(byParser.get(result.parser) ?? []), result]);
  const summaries: Summary[] = [];
  for (const [parser, runs] of byParser) {
    const first = runs[0]!;
    const micros = runs.flatMap((run) => run.cpuMicrosPerMessage);
    summaries.push({
      parser,
      input: first.input,
      skipped: first.skipped,
      bytesPerMessage: first.bytesPerMessage,
      micros,
      medianMicros: median(micros),
      minMicros: Math.min(...micros),
      maxMicros: Math.max(...micros),
      medianCpuShare: median(runs.flatMap((run) => run.cpuShare)),
    });
  }
  return summaries;
}

function printResults(summaries: readonly Summary[], failures: ReadonlyMap<ParserName, number[]>, options: CliOptions): void {
  const { warmupSeconds, roundSeconds, rounds } = options.timing;
  console.log(
    `Throughput by CPU time: ${options.reps} set(s) of fresh processes, one per parser; ~${warmupSeconds} s CPU warm-up each, ` +
      `then ${rounds} rounds of ~${roundSeconds} s CPU, interleaved parser by parser.`,
  );
  console.log(
    '  CPU µs/msg: median and min (best) over all rounds; msg/s and MB/s (10^6 bytes) per CPU-second, from the median.' +
      ' cpu/wall: how much of a round the process actually ran.',
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
      s.medianMicros.toFixed(3),
      s.minMicros.toFixed(3),
      s.maxMicros.toFixed(3),
      int(1e6 / s.medianMicros),
      ((s.bytesPerMessage / s.medianMicros)).toFixed(1),
      `${Math.round(s.medianCpuShare * 100)} %`,
      String(s.micros.length),
      marks.join('; '),
    ];
  });
  printTable(['parser', 'input', 'µs/msg med', 'min', 'max', 'msg/s', 'MB/s', 'cpu/wall', 'rounds', ''], rows);
  console.log('');

  const sipnote = summaries.find((s) => s.parser === 'sipnote');
  const peers = summaries.filter((s) => s.parser !== 'sipnote');
  if (sipnote === undefined || peers.length === 0) return;
  // Speed ratio = peer's CPU time per message / sipnote's, from the same statistic on both sides.
  const byMedian = (peer: Summary): number => peer.medianMicros / sipnote.medianMicros;
  const byMin = (peer: Summary): number => peer.minMicros / sipnote.minMicros;
  console.log('Ratios of CPU time per message, peer / sipnote (> 1: sipnote is faster), from medians and from mins:');
  for (const peer of peers) {
    const r = byMedian(peer);
    const reading = r >= 1 ? `sipnote ${r.toFixed(2)}x as fast` : `sipnote takes ${(1 / r).toFixed(2)}x as long per message`;
    console.log(`  sipnote vs ${peer.parser.padEnd(5)}  median ${r.toFixed(2)}x  min ${byMin(peer).toFixed(2)}x  (${reading})`);
  }
  console.log('  Rounds are CPU-timed and interleaved, so machine load mostly cancels out; still rerun before believing a change under ~5 %.');
  const fastest = peers.reduce((a, b) => (b.medianMicros < a.medianMicros ? b : a));
  console.log(`ratio vs fastest peer (${fastest.parser}): ${byMedian(fastest).toFixed(2)}x by median CPU time per message (${byMin(fastest).toFixed(2)}x by min)`);
}

async function main(argv: readonly string[]): Promise<void> {
  const workerIndex = argv.indexOf('--worker');
  if (workerIndex >= 0) {
    runWorker(parserName(argv[workerIndex + 1] ?? ''));
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
  for (let rep = 0; rep < options.reps; rep++) results.push(...(await runSet(options, rep)));
  const summaries = summarise(results);
  if (options.json) for (const result of results) console.log(JSON.stringify(result));
  if (options.cpuProf) console.log(`CPU profiles: ${join(dirname(SCRIPT), 'profiles')}\n`);
  printResults(summaries, failures, options);
}

await main(process.argv.slice(2));
