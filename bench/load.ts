/**
 * MESSAGE load over loopback UDP: the highest rate `sipnote listen` holds with 0 failed calls,
 * in two configurations, next to Kamailio answering the same scenario statelessly
 * (`sl_send_reply("200")`), with the p50/p99 response times and the ratios to Kamailio:
 *
 * - `sipnote`: `listen --plaintext --json`: parse, transactions, the UA's decision, the JSON
 *   event on stdout (to /dev/null), the 200. Issue #5's target: at least Kamailio's rate.
 * - `sipnote-store`: the same with `--data-dir`: every message stored (committed and synced)
 *   before its 200 (write before acknowledge). Target: at least half of Kamailio's rate.
 *
 *   npm run bench:load                    # ~3 min: 5 s per step, all three servers
 *   npm run bench:load -- --quick         # ~1.5 min: 2 s per step, fewer bisection steps
 *   npm run bench:load -- --only sipnote,kamailio  # a subset (sipnote, sipnote-store, kamailio)
 *   npm run bench:load -- --bigbuf        # Kamailio with maxbuffer=4194304 (performance.md §3)
 *   npm run bench:load -- --json          # also one JSON line with every step
 *   npm run bench:load -- --warmup 0      # no warm-up before each step (seconds; default 2, --quick 1)
 *   npm run bench:load -- --bin /tmp/old/bin/sipnote.js  # sipnote from another build (a before/after comparison)
 *
 * The method is performance.md §3 (appendix B), shortened to fit in two minutes:
 * - The scenario is bench/load/message-uac.xml (one MESSAGE per call, 200 expected; a UDP
 *   retransmission at 500 ms, doubling; a call fails with no 200 within 5 s).
 * - sipp runs with a 4 MB socket buffer (`-buff_size`), because with its default buffer sipp
 *   itself drops the responses first (the note's finding).
 * - Each step is one fresh server, warmed up by `--warmup` seconds (default 2) at 1,000/s,
 *   unmeasured (a listener that has been up a while has its hot paths compiled by the JIT),
 *   and then one sipp run of `rate × seconds` calls, bounded by
 *   `-timeout` inside sipp and a kill after that. A fresh server per step keeps the
 *   transactions of one step (kept 32 s by Timer J over UDP, RFC 3261 §17.2.2) out of the next.
 * - The rate doubles from 1,000/s until a step fails (or 32,000/s), then bisects between the
 *   highest held and the lowest failed rate. A rate is "held" when sipp exits 0, its final
 *   `-trace_stat` line has every call successful and 0 failed, and sipp's CallRate(C) is at
 *   least 95 % of the offered rate.
 * - Response times come from `-trace_rtt` (every call). sipp measures them in whole
 *   milliseconds on its own scheduler tick, so "0" means under a tick and a light-load p99 of
 *   a few ms is mostly quantisation.
 * - Server CPU is utime + stime from /proc of the server and its children, over the step, as a
 *   share of one core and per call. On a shared machine the held rate is noisy (sipp and the
 *   servers compete with everything else for the cores); the CPU per call much less so.
 *
 * Nothing here asserts anything about time; it prints what it measured. It does not run in
 * `npm test`. The servers and sipp are started by PID and stopped by PID, on 127.0.0.1 only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SCENARIO = join(REPO, 'bench/load/message-uac.xml');
const KAMAILIO_CFG = join(REPO, 'bench/load/kamailio.cfg');
const SIPNOTE_BIN = join(REPO, 'bin/sipnote.js');

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const SERVER_NAMES = ['sipnote', 'sipnote-store', 'kamailio'] as const;
type ServerName = (typeof SERVER_NAMES)[number];

/** Issue #5: sipnote / Kamailio (highest held rate) should be at least this, per configuration. */
const TARGET_RATIO: Readonly<Record<Exclude<ServerName, 'kamailio'>, number>> = { sipnote: 1, 'sipnote-store': 0.5 };

interface Options {
  readonly stepSeconds: number;
  readonly bisections: number;
  readonly startRate: number;
  /** Seconds of WARMUP_RATE load before each measured step (0: none). */
  readonly warmupSeconds: number;
  readonly maxRate: number;
  readonly servers: readonly ServerName[];
  readonly bigBuffer: boolean;
  readonly json: boolean;
  /** The sipnote entry point to run (bin/sipnote.js of this checkout by default). */
  readonly sipnoteBin: string;
}

function parseOptions(argv: readonly string[]): Options {
  const quick = argv.includes('--quick');
  const valueOf = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const number = (name: string, fallback: number): number => {
    const text = valueOf(name);
    const value = Number(text);
    if (text === undefined) return fallback;
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} needs a positive number`);
    return value;
  };
  const only = valueOf('--only');
  const servers: ServerName[] = only === undefined ? [...SERVER_NAMES] : only.split(',').map((s) => {
    const name = SERVER_NAMES.find((known) => known === s);
    if (name === undefined) throw new Error(`--only takes ${SERVER_NAMES.join(', ')}, not ${s}`);
    return name;
  });
  return {
    stepSeconds: number('--step', quick ? 2 : 5),
    bisections: number('--bisect', quick ? 1 : 2),
    startRate: number('--start', 1000),
    warmupSeconds: argv.includes('--warmup') && valueOf('--warmup') === '0' ? 0 : number('--warmup', quick ? 1 : 2),
    maxRate: number('--max', 32000),
    servers,
    bigBuffer: argv.includes('--bigbuf'),
    json: argv.includes('--json'),
    sipnoteBin: valueOf('--bin') ?? SIPNOTE_BIN,
  };
}

// ---------------------------------------------------------------------------------------------
// Processes (by PID, always stopped)
// ---------------------------------------------------------------------------------------------

const running = new Set<ChildProcess>();

function launch(command: string, args: readonly string[], cwd: string): ChildProcess {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  child.stderr?.resume(); // never let a full pipe stall the child
  child.once('exit', () => running.delete(child));
  return child;
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function exited(child: ChildProcess, ms: number): Promise<number | string> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve('killed (over time)');
    }, ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal ?? 'unknown');
    });
  });
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const child of running) child.kill('SIGKILL');
    process.exit(130);
  });
}

async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const found = (server.address() as { port: number }).port;
        server.close(() => resolve(found));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free port found');
}

/** Ready when any SIP response comes back to an OPTIONS (retransmitted every 100 ms, ≤ 10 s). */
function answersOnUdp(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    let tries = 0;
    const send = (): void => {
      if (++tries > 100) return finish(new Error(`nothing answers on udp:127.0.0.1:${port}`));
      const request = [
        `OPTIONS sip:bob@127.0.0.1:${port} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${socket.address().port};branch=z9hG4bKready${tries};rport`,
        'Max-Forwards: 70',
        'From: <sip:bench@127.0.0.1>;tag=ready',
        'To: <sip:bob@127.0.0.1>',
        `Call-ID: ready-${port}-${tries}`,
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      socket.send(request, port, '127.0.0.1');
    };
    const timer = setInterval(send, 100);
    const finish = (error?: Error): void => {
      clearInterval(timer);
      socket.close();
      if (error === undefined) resolve();
      else reject(error);
    };
    socket.on('message', (data) => {
      if (data.toString('latin1').startsWith('SIP/2.0 ')) finish();
    });
    socket.bind(0, '127.0.0.1', send);
  });
}

interface Server {
  readonly child: ChildProcess;
  readonly port: number;
}

async function startServer(name: ServerName, dir: string, options: Options): Promise<Server> {
  const port = await freePort();
  const sipnote = [options.sipnoteBin, 'listen', '--aor', 'sip:bob@127.0.0.1', '--listen', `udp:127.0.0.1:${port}`, '--plaintext', '--json'];
  const child =
    name === 'sipnote'
      ? launch(process.execPath, sipnote, dir)
      : name === 'sipnote-store'
        ? launch(process.execPath, [...sipnote, '--data-dir', join(dir, 'data')], dir) // a fresh store per step
      : launch(
          'kamailio',
          ['-f', KAMAILIO_CFG, '-l', `udp:127.0.0.1:${port}`, '-DD', '-E', '-Y', dir, '-P', join(dir, 'kamailio.pid'), '-m', '64', '-M', '8',
            ...(options.bigBuffer ? ['-A', 'BIGBUF'] : [])],
          dir,
        );
  await answersOnUdp(port);
  return { child, port };
}

/** utime + stime, in seconds, of a process and its direct children (Kamailio's workers). */
function cpuSeconds(pid: number): number {
  const ticksPerSecond = 100; // USER_HZ on Linux
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the parenthesised command name: state ppid … utime(14) stime(15).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(entry) !== pid && Number(fields[1]) !== pid) continue;
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / ticksPerSecond;
}

// ---------------------------------------------------------------------------------------------
// One step
// ---------------------------------------------------------------------------------------------

interface Step {
  readonly server: ServerName;
  readonly offered: number;
  readonly held: boolean;
  readonly sippExit: number | string;
  readonly successful: number;
  readonly failed: number;
  readonly retransmissions: number;
  /** sipp's CallRate(C): calls per second over the run, as sipp counted them. */
  readonly callRate: number;
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
  readonly maxMs: number | undefined;
  readonly serverCpuPercent: number;
  /**
   * Server CPU time per call, in µs: what a message costs the server, which the other
   * processes on a shared machine disturb far less than the rate it holds.
   */
  readonly serverCpuUsPerCall: number;
}

/** The load of the warm-up before each step: well below what either server holds. */
const WARMUP_RATE = 1000;

/**
 * Runs the scenario at WARMUP_RATE for `seconds`, unmeasured (no trace files), so that the step
 * measures a running server: sipnote's JIT has compiled its hot paths, as it has in a listener
 * that has been up for a while. Kamailio gets the same, so both are measured alike.
 */
async function warmUp(server: Server, seconds: number, dir: string): Promise<void> {
  const sipp = launch(
    'sipp',
    [`127.0.0.1:${server.port}`, '-sf', SCENARIO, '-s', 'bob', '-i', '127.0.0.1', '-p', String(await freePort()), '-t', 'u1',
      '-r', String(WARMUP_RATE), '-m', String(Math.round(WARMUP_RATE * seconds)), '-l', '5000', '-recv_timeout', '5000',
      '-timeout', `${Math.ceil(seconds) + 20}s`, '-buff_size', '4194304', '-nostdin'],
    dir,
  );
  await exited(sipp, (seconds + 30) * 1000);
}

function percentile(sorted: readonly number[], p: number): number | undefined {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function runStep(name: ServerName, rate: number, options: Options): Promise<Step> {
  const dir = mkdtempSync(join(tmpdir(), `sipnote-bench-load-${name}-`));
  let server: Server | undefined;
  try {
    server = await startServer(name, dir, options);
    if (options.warmupSeconds > 0) await warmUp(server, options.warmupSeconds, dir);
    const pid = server.child.pid ?? 0;
    const cpuBefore = cpuSeconds(pid);
    const started = performance.now();
    const calls = Math.round(rate * options.stepSeconds);
    const sipp = launch(
      'sipp',
      [`127.0.0.1:${server.port}`, '-sf', SCENARIO, '-s', 'bob', '-i', '127.0.0.1', '-p', String(await freePort()), '-t', 'u1',
        '-r', String(rate), '-m', String(calls), '-l', '5000', '-recv_timeout', '5000', '-timeout', `${Math.ceil(options.stepSeconds) + 20}s`,
        '-buff_size', '4194304', '-nostdin', '-trace_stat', '-fd', '1', '-trace_rtt', '-rtt_freq', '1000'],
      dir,
    );
    const sippExit = await exited(sipp, (options.stepSeconds + 30) * 1000);
    const wall = (performance.now() - started) / 1000;
    const serverCpu = cpuSeconds(pid) - cpuBefore;
    const serverCpuPercent = Math.round((serverCpu / wall) * 100);

    const files = readdirSync(dir);
    const statFile = files.find((f) => f.endsWith('_.csv'));
    const rttFile = files.find((f) => f.endsWith('_rtt.csv'));
    const stats = new Map<string, string>();
    if (statFile !== undefined) {
      const lines = readFileSync(join(dir, statFile), 'utf8').trim().split('\n');
      const header = (lines[0] ?? '').split(';');
      const last = (lines[lines.length - 1] ?? '').split(';');
      header.forEach((column, i) => stats.set(column, last[i] ?? ''));
    }
    const rtts =
      rttFile === undefined
        ? []
        : readFileSync(join(dir, rttFile), 'utf8').trim().split('\n').slice(1).map((line) => Number(line.split(';')[1])).filter(Number.isFinite).sort((a, b) => a - b);
    const successful = Number(stats.get('SuccessfulCall(C)') ?? 0);
    const failed = Number(stats.get('FailedCall(C)') ?? Number.NaN);
    const callRate = Math.round(Number(stats.get('CallRate(C)') ?? 0));
    return {
      server: name,
      offered: rate,
      // Held: every call answered 200 and sipp kept the offered pace (a server that answers
      // late throttles sipp through `-l`, which is not holding the rate).
      held: sippExit === 0 && failed === 0 && successful === calls && callRate >= 0.95 * rate,
      sippExit,
      successful,
      failed,
      retransmissions: Number(stats.get('Retransmissions(C)') ?? 0),
      callRate,
      p50Ms: percentile(rtts, 50),
      p99Ms: percentile(rtts, 99),
      maxMs: rtts[rtts.length - 1],
      serverCpuPercent,
      serverCpuUsPerCall: Math.round((serverCpu / calls) * 1e6),
    };
  } finally {
    if (server !== undefined) await stop(server.child);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Doubling until a step fails, then bisecting between the highest held and lowest failed. */
async function ladder(name: ServerName, options: Options, report: (step: Step) => void): Promise<Step[]> {
  const steps: Step[] = [];
  const run = async (rate: number): Promise<Step> => {
    const step = await runStep(name, rate, options);
    steps.push(step);
    report(step);
    return step;
  };
  let held = 0;
  let failedAt: number | undefined;
  for (let rate = options.startRate; rate <= options.maxRate; rate *= 2) {
    if ((await run(rate)).held) held = rate;
    else {
      failedAt = rate;
      break;
    }
  }
  for (let i = 0; i < options.bisections && failedAt !== undefined; i++) {
    const rate = Math.round((held + failedAt) / 2 / 500) * 500;
    if (rate <= held || rate >= failedAt) break;
    if ((await run(rate)).held) held = rate;
    else failedAt = rate;
  }
  return steps;
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const ms = (value: number | undefined): string => (value === undefined ? '–' : String(value));

function stepLine(step: Step): string {
  const verdict = step.held
    ? 'held'
    : step.failed > 0 || step.sippExit !== 0
      ? `FAILED (sipp exit ${step.sippExit})`
      : `not held (sipp kept ${Math.round((step.callRate / step.offered) * 100)} % of the pace)`;
  return `  ${step.server.padEnd(13)} ${String(step.offered).padStart(6)}/s offered  ${String(step.callRate).padStart(6)}/s measured  ` +
    `ok ${String(step.successful).padStart(7)}  failed ${String(step.failed).padStart(5)}  retrans ${String(step.retransmissions).padStart(6)}  ` +
    `p50 ${ms(step.p50Ms).padStart(4)} ms  p99 ${ms(step.p99Ms).padStart(5)} ms  server CPU ${String(step.serverCpuPercent).padStart(3)} % ${String(step.serverCpuUsPerCall).padStart(4)} µs/call  ${verdict}`;
}

function best(steps: readonly Step[]): Step | undefined {
  return steps.filter((s) => s.held).sort((a, b) => b.offered - a.offered)[0];
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  console.log(`MESSAGE load over loopback UDP: ${options.stepSeconds} s per step, sipp -buff_size 4194304${options.bigBuffer ? ', Kamailio maxbuffer=4194304' : ''}` +
    (options.sipnoteBin === SIPNOTE_BIN ? '' : `; sipnote from ${options.sipnoteBin}`));
  const results = new Map<ServerName, Step[]>();
  for (const name of options.servers) results.set(name, await ladder(name, options, (step) => console.log(stepLine(step))));

  console.log('\nHighest rate held with 0 failed calls (offered; sipp-measured), response time at that rate:');
  for (const [name, steps] of results) {
    const top = best(steps);
    console.log(top === undefined
      ? `  ${name}: none held (lowest step ${options.startRate}/s failed)`
      : `  ${name.padEnd(13)} ${top.offered >= options.maxRate ? '≥ ' : ''}${top.offered}/s (${top.callRate}/s)  p50 ${ms(top.p50Ms)} ms  p99 ${ms(top.p99Ms)} ms  server CPU ${top.serverCpuPercent} % (${top.serverCpuUsPerCall} µs/call)`);
  }
  const kamailio = best(results.get('kamailio') ?? []);
  for (const name of ['sipnote', 'sipnote-store'] as const) {
    const sipnote = best(results.get(name) ?? []);
    if (sipnote === undefined || kamailio === undefined) continue;
    const capped = kamailio.offered >= options.maxRate ? ' (Kamailio reached --max: the ratio is an upper bound)' : '';
    console.log(`\nratio ${name} / Kamailio (highest held rate): ${(sipnote.offered / kamailio.offered).toFixed(2)} (target ≥ ${TARGET_RATIO[name]})${capped}`);
    // Response times compared at the same load: the highest rate both held.
    const common = Math.min(sipnote.offered, kamailio.offered);
    const at = (server: ServerName): Step | undefined => (results.get(server) ?? []).find((s) => s.held && s.offered === common);
    const a = at(name);
    const b = at('kamailio');
    if (a !== undefined && b !== undefined) {
      console.log(`at ${common}/s: ${name} p50/p99 ${ms(a.p50Ms)}/${ms(a.p99Ms)} ms, Kamailio ${ms(b.p50Ms)}/${ms(b.p99Ms)} ms; ` +
        `server CPU ${a.serverCpuUsPerCall} vs ${b.serverCpuUsPerCall} µs/call (ratio ${(a.serverCpuUsPerCall / Math.max(1, b.serverCpuUsPerCall)).toFixed(2)})`);
    }
  }
  if (options.json) console.log(JSON.stringify({ options, steps: [...results.values()].flat() }));
}

main().catch(async (error: unknown) => {
  console.error(error instanceof Error ? error.stack : String(error));
  await Promise.all([...running].map(stop));
  process.exit(1);
});
