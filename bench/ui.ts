/**
 * The thread view at scale: a conversation of 100,000 messages, seeded into the core's store
 * (a fresh data dir, never through the UI) and served by a Messenger and the browser host to
 * the real renderer in Debian's Chromium (playwright-core). Targets (issue #6, Done when):
 * first render of the thread under 200 ms, and under 16 ms per frame while scrolling to the
 * top. Not part of `npm test`.
 *
 *   npm run bench:ui                             # 100,000 messages, 3 rounds
 *   npm run bench:ui -- --messages 10000 --rounds 1
 *   node build/bench/ui.js --trace build/bench/ui-trace.json   # also a Chromium trace of round 1
 *   node build/bench/ui.js --cpu-profile build/bench/ui.cpuprofile   # the page's JavaScript, round 1
 *
 * Options: --messages N (100 000); --rounds N (3; each in a fresh page); --wheel-frames N (120)
 * and --wheel-step PX (100); --fling-frames N (240) and --fling-step PX (1 200); --drag-frames N (480); --trace FILE (Chromium trace:
 * timeline, user timing); --cpu-profile FILE (V8 CPU profile of the page); --renderer DIR (another
 * build of the renderer, to compare two; build/renderer by default); --json.
 *
 * Method. Everything is timed inside the page with performance.now(), so the WebSocket and
 * playwright's own round trips do not count:
 * - First render: from the click on the conversation in the list (a `bench:open` mark) to the
 *   end of the first frame painted with the newest message in the DOM: a MutationObserver sees
 *   `article[aria-posinset=N]` appear, then a requestAnimationFrame callback posts a message
 *   that runs after that frame's style, layout and paint (`bench:first-render` mark). The
 *   renderer's own `sipnote:thread-ready` mark (ThreadView) is printed next to it.
 * - Scrolling to the top, one scroll step per frame, in three phases: "wheel" (ordinary
 *   reading: --wheel-step px a frame, 6,000 px/s at 60 Hz), "fling" (a fast touchpad fling:
 *   --fling-step px a frame, 72,000 px/s, a new screenful of rows every frame) then "drag" (dragging the
 *   scroll bar to the top: the rest of the way in --drag-frames equal steps, so every frame
 *   shows rows never seen before and most frames need a page fetched).
 * - Frame time: for each frame, from the frame's start (the timestamp requestAnimationFrame
 *   hands its callback) to the end of the frame's main-thread work (a message posted from the
 *   callback, delivered after style, layout and paint). It covers the scroll event, the
 *   Svelte update, the row measurement and the rendering. Also counted: frames whose interval
 *   since the previous frame exceeds 1.5 vsyncs (dropped frames: work done between frames,
 *   such as a page of history arriving, shows there).
 * - Main-thread CPU per frame: the renderer's TaskDuration, ScriptDuration, LayoutDuration and
 *   RecalcStyleDuration over each phase (DevTools Performance.getMetrics in thread time), per
 *   frame. Unlike the wall-clock frame times, these barely move with the machine's load, so
 *   they are the figures to compare between two builds (--renderer).
 * - p50/p99/max over all frames of all rounds; first render as the median of the rounds.
 *
 * The machine is a shared VM: the load average is printed; compare runs made together.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserServer, type CDPSession, type Page } from 'playwright-core';
import { startBrowserHost } from '../main/host/browser-host.js';
import { Messenger } from '../main/im/messenger.js';
import { cliFlags, median, printTable } from './harness.js';
import { seedLongThread } from './long-thread-seed.js';

const BUILT_RENDERER = fileURLToPath(new URL('../renderer/', import.meta.url));
const CHROMIUM_PATH = '/usr/bin/chromium';
// As test/e2e/chromium.ts, which this build cannot import (bench/ is its own project).
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];
const ACCOUNT_ID = 'bench';
const FIRST_RENDER_TARGET_MS = 200;
const FRAME_TARGET_MS = 16;

interface Options {
  messages: number;
  rounds: number;
  wheelFrames: number;
  wheelStep: number;
  flingFrames: number;
  flingStep: number;
  dragFrames: number;
  trace: string | undefined;
  cpuProfile: string | undefined;
  renderer: string;
  json: boolean;
}

function options(argv: readonly string[]): Options {
  const flags = cliFlags(argv);
  return {
    messages: Math.round(flags.positiveNumber('--messages', 100_000)),
    rounds: Math.round(flags.positiveNumber('--rounds', 3)),
    wheelFrames: Math.round(flags.positiveNumber('--wheel-frames', 120)),
    wheelStep: flags.positiveNumber('--wheel-step', 100),
    flingFrames: Math.round(flags.positiveNumber('--fling-frames', 240)),
    flingStep: flags.positiveNumber('--fling-step', 1_200),
    dragFrames: Math.round(flags.positiveNumber('--drag-frames', 480)),
    trace: flags.value('--trace'),
    cpuProfile: flags.value('--cpu-profile'),
    renderer: flags.value('--renderer') ?? BUILT_RENDERER,
    json: flags.has('--json'),
  };
}

interface FirstRender {
  /** Click to the end of the first frame painted with the newest message. */
  readonly firstRenderMs: number;
  /** Click to the renderer's own `sipnote:thread-ready` mark, when it set one. */
  readonly threadReadyMs: number | undefined;
}

interface FrameSample {
  /** Frame start to the end of its main-thread work. */
  readonly work: number;
  /** Since the previous frame's start. */
  readonly interval: number;
  /** Some row on screen was still a placeholder (its page of history not yet fetched). */
  readonly placeholders: boolean;
}

/** Clicks the conversation and times its first render, in the page. */
async function openThread(page: Page, total: number): Promise<FirstRender> {
  const button = page.getByRole('button', { name: /^carol@127\.0\.0\.1:5999/ });
  await button.waitFor();
  return button.evaluate(async (element, newest) => {
    // Runs in the page; the bench project has no DOM typings.
    interface PageGlobals {
      document: { querySelector(selector: string): unknown; body: unknown };
      MutationObserver: new (callback: () => void) => { observe(target: unknown, options: { childList: boolean; subtree: boolean }): void; disconnect(): void };
      MessageChannel: new () => { port1: { onmessage: (() => void) | null }; port2: { postMessage(value: unknown): void } };
      requestAnimationFrame(callback: (time: number) => void): number;
    }
    const page = globalThis as unknown as PageGlobals;
    const selector = `article[aria-posinset="${newest}"]`;
    const afterNextFrame = (): Promise<void> =>
      new Promise((resolve) =>
        page.requestAnimationFrame(() => {
          const channel = new page.MessageChannel();
          channel.port1.onmessage = () => resolve();
          channel.port2.postMessage(null);
        }),
      );
    performance.clearMarks();
    const opened = performance.mark('bench:open').startTime;
    const present = new Promise<void>((resolve) => {
      const observer = new page.MutationObserver(() => {
        if (page.document.querySelector(selector) === null) return;
        observer.disconnect();
        resolve();
      });
      observer.observe(page.document.body, { childList: true, subtree: true });
    });
    (element as unknown as { click(): void }).click();
    await present;
    await afterNextFrame();
    const rendered = performance.mark('bench:first-render').startTime;
    const ready = performance.getEntriesByName('sipnote:thread-ready', 'mark')[0];
    return { firstRenderMs: rendered - opened, threadReadyMs: ready === undefined ? undefined : ready.startTime - opened };
  }, total);
}

/**
 * Scrolls the feed up `step` px a frame for `frames` frames, or, with `untilTop`, until it is
 * at the top (measured rows can move the top a little further away while it scrolls); returns
 * each frame's work and interval.
 */
async function scrollFrames(page: Page, step: number, frames: number, untilTop: boolean): Promise<FrameSample[]> {
  return page.getByRole('feed').evaluate(
    async (element, plan) => {
      interface PageGlobals {
        MessageChannel: new () => { port1: { onmessage: (() => void) | null }; port2: { postMessage(value: unknown): void } };
        requestAnimationFrame(callback: (time: number) => void): number;
      }
      const page = globalThis as unknown as PageGlobals;
      const feed = element as unknown as { scrollTop: number; querySelector(selector: string): unknown };
      const samples: Array<{ work: number; interval: number; placeholders: boolean }> = [];
      let previousStart: number | undefined;
      // One more frame than steps: the frame after the last step is the one that handles its scroll event.
      const limit = plan.untilTop ? plan.frames * 2 : plan.frames;
      for (let frame = 0; frame <= limit; frame++) {
        const done = plan.untilTop ? feed.scrollTop === 0 && frame >= plan.frames : frame === plan.frames;
        const sample = await new Promise<{ start: number; end: number; placeholders: boolean }>((resolve) =>
          page.requestAnimationFrame((start) => {
            // What this frame paints: the rows the previous step's scroll event brought in.
            const placeholders = feed.querySelector('.message-placeholder') !== null;
            if (!done) feed.scrollTop = Math.max(0, feed.scrollTop - plan.step);
            const channel = new page.MessageChannel();
            channel.port1.onmessage = () => resolve({ start, end: performance.now(), placeholders });
            channel.port2.postMessage(null);
          }),
        );
        if (previousStart !== undefined) samples.push({ work: sample.end - sample.start, interval: sample.start - previousStart, placeholders: sample.placeholders });
        previousStart = sample.start;
        if (done) break;
      }
      return samples;
    },
    { step, frames, untilTop },
  );
}

/** Main-thread CPU time (thread ticks, so other processes' load does not inflate it), ms. */
interface CpuTime {
  task: number;
  script: number;
  layout: number;
  style: number;
  frames: number;
}

const NO_CPU: CpuTime = { task: 0, script: 0, layout: 0, style: 0, frames: 0 };

async function cpuTime(session: CDPSession): Promise<CpuTime> {
  const { metrics } = (await session.send('Performance.getMetrics')) as { metrics: Array<{ name: string; value: number }> };
  const value = (name: string): number => (metrics.find((metric) => metric.name === name)?.value ?? 0) * 1000;
  return { task: value('TaskDuration'), script: value('ScriptDuration'), layout: value('LayoutDuration'), style: value('RecalcStyleDuration'), frames: 0 };
}

function cpuBetween(before: CpuTime, after: CpuTime, frames: number): CpuTime {
  return { task: after.task - before.task, script: after.script - before.script, layout: after.layout - before.layout, style: after.style - before.style, frames };
}

function addCpu(a: CpuTime, b: CpuTime): CpuTime {
  return { task: a.task + b.task, script: a.script + b.script, layout: a.layout + b.layout, style: a.style + b.style, frames: a.frames + b.frames };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function summary(samples: readonly FrameSample[]): { frames: number; p50: number; p99: number; max: number; dropped: number; placeholders: number } {
  const work = samples.map((sample) => sample.work).sort((a, b) => a - b);
  return {
    frames: work.length,
    p50: percentile(work, 50),
    p99: percentile(work, 99),
    max: work.at(-1) ?? Number.NaN,
    dropped: samples.filter((sample) => sample.interval > 1.5 * (1000 / 60)).length,
    placeholders: samples.filter((sample) => sample.placeholders).length,
  };
}

function perFrame(cpu: CpuTime): { task: number; script: number; layout: number; style: number } {
  const frames = Math.max(1, cpu.frames);
  return { task: cpu.task / frames, script: cpu.script / frames, layout: cpu.layout / frames, style: cpu.style / frames };
}

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  if (!existsSync(join(opts.renderer, 'index.html'))) throw new Error(`no built renderer in ${opts.renderer}: run \`npx vite build\` (npm run bench:ui does)`);
  const seeding = performance.now();
  const dataDir = mkdtempSync(join(tmpdir(), 'sipnote-bench-ui-'));
  seedLongThread(dataDir, ACCOUNT_ID, opts.messages);
  const seededMs = performance.now() - seeding;
  const messenger = await Messenger.open({ dataDir, security: false, networkPollMs: false });
  const host = await startBrowserHost({ endpoint: messenger, rendererDir: opts.renderer });
  let server: BrowserServer | undefined;
  const loadBefore = loadavg()[0] ?? 0;
  const firstRenders: FirstRender[] = [];
  const wheel: FrameSample[] = [];
  const fling: FrameSample[] = [];
  const drag: FrameSample[] = [];
  let wheelCpu = NO_CPU;
  let flingCpu = NO_CPU;
  let dragCpu = NO_CPU;
  try {
    server = await chromium.launchServer({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
    const browser = await chromium.connect(server.wsEndpoint());
    for (let round = 0; round < opts.rounds; round++) {
      const context = await browser.newContext({ viewport: { width: 1200, height: 760 }, deviceScaleFactor: 1 });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(error.message));
      await page.goto(host.url);
      const tracing = round === 0 && opts.trace !== undefined;
      if (tracing) await browser.startTracing(page, { screenshots: false, categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'blink.user_timing', 'v8.execute'] });
      const profiler = round === 0 && opts.cpuProfile !== undefined ? await context.newCDPSession(page) : undefined;
      if (profiler !== undefined) {
        await profiler.send('Profiler.enable');
        await profiler.send('Profiler.setSamplingInterval', { interval: 100 });
        await profiler.send('Profiler.start');
      }
      firstRenders.push(await openThread(page, opts.messages));
      const feed = page.getByRole('feed');
      // Let the first render's follow-up work (measuring, the next page) settle before scrolling:
      // the scroll phases measure scrolling, not the tail of the first render.
      await page.waitForTimeout(300);
      const height = await feed.evaluate((element) => (element as unknown as { scrollHeight: number }).scrollHeight);
      const metrics = await context.newCDPSession(page);
      await metrics.send('Performance.enable', { timeDomain: 'threadTicks' });
      const beforeWheel = await cpuTime(metrics);
      const wheeled = await scrollFrames(page, opts.wheelStep, opts.wheelFrames, false);
      wheel.push(...wheeled);
      const beforeFling = await cpuTime(metrics);
      wheelCpu = addCpu(wheelCpu, cpuBetween(beforeWheel, beforeFling, wheeled.length));
      const flung = await scrollFrames(page, opts.flingStep, opts.flingFrames, false);
      const afterFling = await cpuTime(metrics);
      fling.push(...flung);
      flingCpu = addCpu(flingCpu, cpuBetween(beforeFling, afterFling, flung.length));
      const left = await feed.evaluate((element) => (element as unknown as { scrollTop: number }).scrollTop);
      const dragged = await scrollFrames(page, Math.ceil(left / opts.dragFrames), opts.dragFrames, true);
      drag.push(...dragged);
      dragCpu = addCpu(dragCpu, cpuBetween(afterFling, await cpuTime(metrics), dragged.length));
      await metrics.detach();
      if (profiler !== undefined && opts.cpuProfile !== undefined) {
        const { profile } = await profiler.send('Profiler.stop');
        mkdirSync(dirname(opts.cpuProfile), { recursive: true });
        writeFileSync(opts.cpuProfile, JSON.stringify(profile));
        if (!opts.json) console.log(`CPU profile of round 1: ${opts.cpuProfile} (open in DevTools → Performance)`);
      }
      if (tracing && opts.trace !== undefined) {
        const trace = await browser.stopTracing();
        mkdirSync(dirname(opts.trace), { recursive: true });
        writeFileSync(opts.trace, trace);
        if (!opts.json) console.log(`trace of round 1: ${opts.trace} (open in chrome://tracing or DevTools → Performance)`);
      }
      await page.locator('article[aria-posinset="1"]').waitFor({ timeout: 10_000 }).catch(async (error: unknown) => {
        const state = await feed.evaluate((element) => {
          const e = element as unknown as { scrollTop: number; scrollHeight: number; querySelectorAll(s: string): ArrayLike<{ getAttribute(n: string): string | null; dataset: { index?: string } }> };
          return { scrollTop: e.scrollTop, scrollHeight: e.scrollHeight, rows: Array.from(e.querySelectorAll('.thread-row')).map((row) => row.dataset.index).slice(0, 8), placeholders: e.querySelectorAll('.message-placeholder').length };
        });
        throw new Error(`the oldest message never showed: ${JSON.stringify(state)} (${String(error)})`);
      });
      if (problems.length > 0) throw new Error(`page errors: ${problems.join('; ')}`);
      if (round === 0 && !opts.json) console.log(`thread: ${opts.messages.toLocaleString('en-US')} messages (seeded in ${seededMs.toFixed(0)} ms), ${height.toLocaleString('en-US')} px tall`);
      await context.close();
    }
    await browser.close();
  } finally {
    await server?.close();
    await host.close();
    await messenger.close();
    rmSync(dataDir, { recursive: true, force: true });
  }

  const firstRender = median(firstRenders.map((first) => first.firstRenderMs));
  const ready = firstRenders.map((first) => first.threadReadyMs).filter((ms): ms is number => ms !== undefined);
  const wheelSummary = summary(wheel);
  const flingSummary = summary(fling);
  const dragSummary = summary(drag);
  const allSummary = summary([...wheel, ...fling, ...drag]);
  const result = {
    messages: opts.messages,
    rounds: opts.rounds,
    firstRenderMs: firstRender,
    firstRenderRoundsMs: firstRenders.map((first) => first.firstRenderMs),
    threadReadyMs: ready.length === 0 ? undefined : median(ready),
    wheel: wheelSummary,
    fling: flingSummary,
    drag: dragSummary,
    all: allSummary,
    cpuPerFrameMs: { wheel: perFrame(wheelCpu), fling: perFrame(flingCpu), drag: perFrame(dragCpu) },
    loadAverage: [loadBefore, loadavg()[0] ?? 0],
  };
  if (opts.json) {
    console.log(JSON.stringify(result));
    return;
  }
  const ms = (value: number): string => value.toFixed(1);
  console.log(`load average ${result.loadAverage.map((value) => value.toFixed(2)).join(' → ')}`);
  console.log(
    `first render: ${ms(firstRender)} ms median of ${opts.rounds} (${firstRenders.map((first) => ms(first.firstRenderMs)).join(', ')})` +
      `${result.threadReadyMs === undefined ? '' : `; thread-ready mark at ${ms(result.threadReadyMs)} ms`}  target < ${FIRST_RENDER_TARGET_MS} ms: ${firstRender < FIRST_RENDER_TARGET_MS ? 'met' : 'MISSED'}`,
  );
  printTable(
    ['scrolling to the top', 'frames', 'p50 ms', 'p99 ms', 'max ms', 'dropped', 'with placeholders'],
    [
      [`wheel (${opts.wheelStep} px/frame)`, wheelSummary],
      [`fling (${opts.flingStep} px/frame)`, flingSummary],
      [`drag (rest in ${opts.dragFrames} frames)`, dragSummary],
      ['all', allSummary],
    ].map(([name, s]) => {
      const row = s as ReturnType<typeof summary>;
      return [name as string, String(row.frames), ms(row.p50), ms(row.p99), ms(row.max), String(row.dropped), String(row.placeholders)];
    }),
  );
  console.log(`per-frame target < ${FRAME_TARGET_MS} ms (p99): ${allSummary.p99 < FRAME_TARGET_MS ? 'met' : 'MISSED'}`);
  printTable(
    ['main-thread CPU per frame (thread time, mean)', 'all tasks ms', 'script ms', 'layout ms', 'style ms'],
    [
      ['wheel', result.cpuPerFrameMs.wheel],
      ['fling', result.cpuPerFrameMs.fling],
      ['drag', result.cpuPerFrameMs.drag],
    ].map(([name, cpu]) => {
      const row = cpu as ReturnType<typeof perFrame>;
      return [name as string, ms(row.task), ms(row.script), ms(row.layout), ms(row.style)];
    }),
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
