/**
 * Interleaved pairs: how to compare two async operations on a shared, busy machine.
 *
 * Timing each operation in its own process, one after the other, compares two different
 * stretches of the machine's life: on the shared 2-core VM the same S/MIME code gave ratios from
 * 1.2x to 3.7x that way. Here both operations live in one process and take turns in short
 * batches (about 0.3 s): subject, baseline, baseline, subject, subject, baseline, … so that each
 * pair of batches sees nearly the same machine. Two figures come out of the pairs:
 *
 * - the median of the per-pair ratios (subject time per message ÷ baseline time per message):
 *   a slow stretch slows both batches of a pair, so it cancels out of that pair's ratio;
 * - the ratio of the best batches (fastest subject batch ÷ fastest baseline batch): each side's
 *   speed with the least interference, which other load can only make worse.
 *
 * Each batch also records CPU time, which waiting for a core does not inflate: the whole
 * process's (`process.cpuUsage`: the main thread, the libuv pool and V8's helper threads) and
 * the main thread's alone, where all JavaScript runs, from /proc/thread-self/schedstat
 * (nanoseconds on a core, and nanoseconds runnable but waiting for one).
 */
import { readFileSync } from 'node:fs';

import { median } from './harness.js';

/** The work of one message; `sequence` counts this operation's messages from 0. */
export type MessageOperation = (sequence: number) => Promise<unknown>;

export interface BatchMeasurement {
  readonly messages: number;
  readonly wallSeconds: number;
  /** User + system CPU seconds of the whole process (`process.cpuUsage`). */
  readonly processCpuSeconds: number;
  /** Seconds the main thread ran on a core; undefined without /proc schedstat. */
  readonly mainThreadCpuSeconds: number | undefined;
  /** Seconds the main thread was ready to run but waited for a core (other load). */
  readonly mainThreadWaitSeconds: number | undefined;
}

interface ThreadTimes {
  readonly cpuSeconds: number;
  readonly waitSeconds: number;
}

/**
 * The calling thread's (here: the main thread's) time on a core and time waiting in the run
 * queue, in seconds, from /proc/thread-self/schedstat (Linux, nanoseconds; the first two
 * fields). Undefined where that file does not exist.
 */
function mainThreadTimes(): ThreadTimes | undefined {
  try {
    const [onCpu, waiting] = readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ');
    const cpuSeconds = Number(onCpu) / 1e9;
    const waitSeconds = Number(waiting) / 1e9;
    return Number.isFinite(cpuSeconds) && Number.isFinite(waitSeconds) ? { cpuSeconds, waitSeconds } : undefined;
  } catch {
    return undefined;
  }
}

/** Runs `count` messages, numbered from `first`, with at most `inFlight` at a time. */
export async function runBatch(operation: MessageOperation, first: number, count: number, inFlight: number): Promise<BatchMeasurement> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await operation(first + next++);
  };
  const threadStart = mainThreadTimes();
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane));
  const wallSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  const threadEnd = mainThreadTimes();
  const both = threadStart !== undefined && threadEnd !== undefined;
  return {
    messages: count,
    wallSeconds,
    processCpuSeconds: (cpu.user + cpu.system) / 1e6,
    mainThreadCpuSeconds: both ? threadEnd.cpuSeconds - threadStart.cpuSeconds : undefined,
    mainThreadWaitSeconds: both ? threadEnd.waitSeconds - threadStart.waitSeconds : undefined,
  };
}

export interface InterleaveOptions {
  /** Messages started and not yet finished, at most, within a batch. */
  readonly inFlight: number;
  /** Seconds of alternating warm-up batches (both sides together) before the pairs, at least. */
  readonly warmupSeconds: number;
  /**
   * Messages each side runs during the warm-up, at least. On the loaded VM V8 took several
   * thousand S/MIME messages (5–10 s) to reach steady speed: its optimising compiler runs on
   * background threads that wait for a core like everything else.
   */
  readonly warmupMessages: number;
  /** The wall-clock length each batch is sized to, from the warm-up's rates. */
  readonly batchSeconds: number;
  /** How many pairs of batches to time. */
  readonly pairs: number;
}

/** One subject batch and the baseline batch next to it. */
export interface MeasuredPair {
  readonly subject: BatchMeasurement;
  readonly baseline: BatchMeasurement;
  /** Which of the two ran first (the order alternates from pair to pair). */
  readonly subjectFirst: boolean;
}

export interface InterleavedRun {
  /** Messages per batch, from the warm-up. */
  readonly subjectBatch: number;
  readonly baselineBatch: number;
  readonly pairs: readonly MeasuredPair[];
}

/** A batch shorter than this is grown (doubled) during the warm-up instead of sizing the pairs. */
const SHORTEST_USEFUL_BATCH_SECONDS = 0.05;

/**
 * Warms both operations up in alternating batches, sizes each side's batch to
 * `batchSeconds`, then times `pairs` pairs, the order alternating (S B, B S, S B, …) so that
 * neither side always runs right after a pause or right after the other's garbage.
 */
export async function runInterleaved(subject: MessageOperation, baseline: MessageOperation, options: InterleaveOptions): Promise<InterleavedRun> {
  const sides = [subject, baseline].map((operation) => ({
    operation,
    sequence: 0,
    count: options.inFlight,
    calibrationMessages: 0,
    calibrationSeconds: 0,
  }));
  const batch = async (side: (typeof sides)[number], count: number): Promise<BatchMeasurement> => {
    const measurement = await runBatch(side.operation, side.sequence, count, options.inFlight);
    side.sequence += count;
    return measurement;
  };

  // Warm-up: each side's batch doubles until it lasts 50 ms. The full-size batches of the
  // warm-up's second half (the code is optimised by then; the first ones run slower) give the
  // rate that sizes the timed batches.
  let warmed = 0;
  const warming = (): boolean =>
    warmed < options.warmupSeconds ||
    sides.some((side) => side.sequence < options.warmupMessages || side.calibrationSeconds === 0);
  while (warming()) {
    for (const side of sides) {
      const secondHalf = warmed >= options.warmupSeconds / 2 && side.sequence >= options.warmupMessages / 2;
      const { wallSeconds } = await batch(side, side.count);
      warmed += wallSeconds;
      if (wallSeconds < SHORTEST_USEFUL_BATCH_SECONDS) side.count *= 2;
      else if (secondHalf) {
        side.calibrationMessages += side.count;
        side.calibrationSeconds += wallSeconds;
      }
    }
  }
  const [subjectSide, baselineSide] = sides as [(typeof sides)[number], (typeof sides)[number]];
  const batchSize = (side: (typeof sides)[number]): number =>
    Math.max(options.inFlight, Math.round((side.calibrationMessages / side.calibrationSeconds) * options.batchSeconds));
  const subjectBatch = batchSize(subjectSide);
  const baselineBatch = batchSize(baselineSide);

  const pairs: MeasuredPair[] = [];
  for (let pair = 0; pair < options.pairs; pair++) {
    const subjectFirst = pair % 2 === 0;
    if (subjectFirst) {
      const subjectTime = await batch(subjectSide, subjectBatch);
      pairs.push({ subject: subjectTime, baseline: await batch(baselineSide, baselineBatch), subjectFirst });
    } else {
      const baselineTime = await batch(baselineSide, baselineBatch);
      pairs.push({ subject: await batch(subjectSide, subjectBatch), baseline: baselineTime, subjectFirst });
    }
  }
  return { subjectBatch, baselineBatch, pairs };
}

export interface SideSummary {
  /** Messages per second: the median batch and the best batch. */
  readonly medianRate: number;
  readonly bestRate: number;
  /** Median over the batches of process CPU µs per message. */
  readonly processCpuMicros: number;
  /** Median over the batches of main-thread CPU µs per message; undefined without schedstat. */
  readonly mainThreadCpuMicros: number | undefined;
}

export interface PairsSummary {
  readonly subject: SideSummary;
  readonly baseline: SideSummary;
  /** Subject time per message ÷ baseline time per message, for each pair. */
  readonly pairRatios: readonly number[];
  readonly medianPairRatio: number;
  /** The best subject batch's time per message ÷ the best baseline batch's. */
  readonly bestBatchRatio: number;
  /** Median share of a batch's wall time the main thread spent waiting for a core. */
  readonly mainThreadWaitShare: number | undefined;
}

const secondsPerMessage = (batch: BatchMeasurement): number => batch.wallSeconds / batch.messages;

function summariseSide(batches: readonly BatchMeasurement[]): SideSummary {
  const rates = batches.map((batch) => 1 / secondsPerMessage(batch));
  const mainThread = batches.flatMap((batch) => (batch.mainThreadCpuSeconds === undefined ? [] : [(batch.mainThreadCpuSeconds * 1e6) / batch.messages]));
  return {
    medianRate: median(rates),
    bestRate: Math.max(...rates),
    processCpuMicros: median(batches.map((batch) => (batch.processCpuSeconds * 1e6) / batch.messages)),
    mainThreadCpuMicros: mainThread.length === batches.length ? median(mainThread) : undefined,
  };
}

/** Summarises pairs, from one run or pooled from several processes. Needs at least one pair. */
export function summarisePairs(pairs: readonly MeasuredPair[]): PairsSummary {
  if (pairs.length === 0) throw new Error('no pairs to summarise');
  const subjects = pairs.map((pair) => pair.subject);
  const baselines = pairs.map((pair) => pair.baseline);
  const pairRatios = pairs.map((pair) => secondsPerMessage(pair.subject) / secondsPerMessage(pair.baseline));
  const best = (batches: readonly BatchMeasurement[]): number => Math.min(...batches.map(secondsPerMessage));
  const all = [...subjects, ...baselines];
  const waitShares = all.flatMap((batch) => (batch.mainThreadWaitSeconds === undefined ? [] : [batch.mainThreadWaitSeconds / batch.wallSeconds]));
  return {
    subject: summariseSide(subjects),
    baseline: summariseSide(baselines),
    pairRatios,
    medianPairRatio: median(pairRatios),
    bestBatchRatio: best(subjects) / best(baselines),
    mainThreadWaitShare: waitShares.length === all.length ? median(waitShares) : undefined,
  };
}
