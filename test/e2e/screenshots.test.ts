/**
 * The screenshots in README.md, taken from the real app: three `sipnote ui` hosts (Alice,
 * Bob, Carol) peer to peer on loopback, a few conversations set up through the UI (delivered
 * and failed messages, an unread one, a search), then Alice's window at a fixed viewport
 * (1100×720, deviceScaleFactor 1) in light and dark (prefers-color-scheme), the quick-send
 * window, search, and the contacts (certificate verification) view.
 *
 *   SIPNOTE_UPDATE_SCREENSHOTS=1 npx vitest run test/e2e/screenshots.test.ts
 *
 * writes them to docs/screenshots/ (commit the PNGs). Without the variable, the same pages
 * are only rendered and checked (no page errors, the content is there) and the images go to
 * build/screenshots, so CI never depends on pixels.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/processes.js';
import { launchChromium, type RunningChromium } from './chromium.js';
import { collectPageProblems, onboardPeerToPeer } from './onboarding.js';
import { ensureRendererBuilt, REPO_ROOT } from './renderer-build.js';
import { startUi, type RunningUi } from './ui-hosts.js';

const UPDATE = process.env.SIPNOTE_UPDATE_SCREENSHOTS === '1';
const OUTPUT = UPDATE ? join(REPO_ROOT, 'docs', 'screenshots') : join(REPO_ROOT, 'build', 'screenshots', 'readme');
const VIEWPORT = { width: 1100, height: 720 };
const QUICK_SEND_VIEWPORT = { width: 440, height: 220 };

interface Person {
  readonly name: string;
  readonly user: string;
  ui: RunningUi;
  context: BrowserContext;
  page: Page;
  port: number;
  address: string;
}

let chromium: RunningChromium;
const people: Person[] = [];
const pageProblems: string[] = [];

function person(user: string): Person {
  const found = people.find((candidate) => candidate.user === user);
  if (found === undefined) throw new Error(`no ${user}`);
  return found;
}

async function shot(page: Page, name: string): Promise<void> {
  // No caret blinking or animation half-way in a committed image.
  await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { blur?: () => void } | null } }).document.activeElement?.blur?.());
  await page.screenshot({ path: join(OUTPUT, `${name}.png`), animations: 'disabled', caret: 'hide' });
}

async function onboard(who: Person): Promise<void> {
  const { page } = who;
  await page.goto(who.ui.url);
  await onboardPeerToPeer(page, { address: who.address, port: who.port, displayName: who.name });
}

/** From the "New message" form; waits for the final state shown in the thread. */
/** Delivered, or already displayed when the peer has the conversation open (IMDN, RFC 5438). */
const ARRIVED = '.message-state:is(.delivered, .displayed)';

async function sendNew(from: Person, to: string, text: string, state: 'delivered' | 'failed'): Promise<void> {
  const { page } = from;
  await page.keyboard.press('Control+n');
  await page.getByRole('textbox', { name: /^To/ }).fill(to);
  await page.getByRole('textbox', { name: /Message/ }).fill(text);
  await page.getByRole('textbox', { name: /Message/ }).press('Enter');
  await page.locator('article', { hasText: text }).locator(state === 'delivered' ? ARRIVED : '.message-state.failed').waitFor({ timeout: 10_000 });
}

/** In the open conversation. */
async function reply(from: Person, text: string): Promise<void> {
  const { page } = from;
  await page.getByRole('textbox', { name: /^Message to/ }).fill(text);
  await page.getByRole('textbox', { name: /^Message to/ }).press('Enter');
  await page.locator('article', { hasText: text }).locator(ARRIVED).waitFor({ timeout: 10_000 });
}

async function openConversation(who: Person, name: string): Promise<void> {
  await who.page.getByRole('button', { name: new RegExp(`^${name}`) }).click();
  await who.page.getByRole('feed').waitFor();
}

async function arrives(who: Person, text: string): Promise<void> {
  await who.page.locator('.conversation-preview', { hasText: text }).or(who.page.locator('article', { hasText: text })).first().waitFor({ timeout: 10_000 });
}

beforeAll(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  await ensureRendererBuilt();
  chromium = await launchChromium();
  for (const [user, name] of [
    ['alice', 'Alice Archer'],
    ['bob', 'Bob Baker'],
    ['carol', 'Carol Chen'],
  ] as const) {
    const [ui, port] = await Promise.all([startUi(), freePort()]);
    const context = await chromium.browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1, colorScheme: 'light', reducedMotion: 'reduce' });
    const page = await context.newPage();
    collectPageProblems(page, pageProblems, user);
    people.push({ name, user, ui, context, page, port, address: `sip:${user}@127.0.0.1:${port}` });
  }
  await Promise.all(people.map(onboard));
}, 60_000);

afterAll(async () => {
  await chromium?.close();
  await Promise.all(people.map((who) => who.ui.stop()));
});

describe('the README screenshots', () => {
  it('sets up a few conversations: delivered, failed, unread', async () => {
    const alice = person('alice');
    const bob = person('bob');
    const carol = person('carol');

    await sendNew(bob, alice.address, 'Hi Alice! Are we still on for the design review at 3?', 'delivered');
    await arrives(alice, 'design review');
    await openConversation(alice, 'Bob Baker');
    await reply(alice, 'Yes, 3 pm in the small room. I will bring the new mock-ups.');
    await arrives(bob, 'new mock-ups');
    await reply(bob, 'Great. Could you also print the colour variants?');
    await arrives(alice, 'colour variants');
    await reply(alice, 'Sure, two copies each.\nSee you there!');

    const closedPort = await freePort();
    await sendNew(alice, `sip:dave@127.0.0.1:${closedPort};transport=tcp`, 'Dave, can you send me the invoice for October?', 'failed');

    await sendNew(carol, alice.address, 'The nightly build is green again 🎉', 'delivered');
    await alice.page.getByRole('button', { name: /^Carol Chen.*1 unread/ }).waitFor({ timeout: 10_000 });
    await openConversation(alice, 'Bob Baker');
    await alice.page.locator('article', { hasText: 'See you there!' }).waitFor();
  }, 60_000);

  it('the main window, light and dark', async () => {
    const { page } = person('alice');
    await page.emulateMedia({ colorScheme: 'light' });
    await shot(page, 'main-light');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot(page, 'main-dark');
    await page.emulateMedia({ colorScheme: 'light' });
    expect(await page.getByRole('feed').locator('article').count()).toBeGreaterThanOrEqual(4);
  });

  it('a failed message with its reason', async () => {
    const { page } = person('alice');
    await page.getByRole('button', { name: /^dave@127\.0\.0\.1/ }).click();
    await page.locator('.failure-reason').waitFor();
    await shot(page, 'failed-light');
  });

  it('search', async () => {
    const { page } = person('alice');
    await page.keyboard.press('Control+f');
    await page.getByRole('searchbox', { name: 'Search history' }).fill('you');
    await page.locator('.search-hit mark').first().waitFor();
    await shot(page, 'search-light');
  });

  it('the contacts view (certificate verification)', async () => {
    const { page } = person('alice');
    await page.getByRole('button', { name: 'Contacts' }).click();
    await page.getByRole('main').getByRole('heading', { level: 1 }).first().waitFor();
    // Whatever this build can show once the contacts are loaded: pinned certificates with their
    // fingerprints, the people without one, or why it cannot.
    await page.locator('main :is(.notice, .contact, .own-certificate, .contact-list, [role=status])').first().waitFor();
    await shot(page, 'contacts-light');
  });

  it('the quick-send window', async () => {
    const alice = person('alice');
    const quick = await alice.context.newPage();
    quick.on('pageerror', (error) => pageProblems.push(`quick-send: ${error.message}`));
    await quick.setViewportSize(QUICK_SEND_VIEWPORT);
    await quick.goto(`${alice.ui.origin}/#quick-send`);
    await quick.getByRole('textbox', { name: /^To/ }).fill(person('bob').address);
    await quick.keyboard.press('Enter');
    await quick.keyboard.type('Running 5 minutes late, start without me');
    await shot(quick, 'quick-send-light');
    // The screenshot took the focus away from the message: Enter goes to it again.
    await quick.getByRole('textbox', { name: /^Message/ }).press('Enter');
    await quick.locator(`.quick-status ${ARRIVED}`).waitFor({ timeout: 10_000 });
    await quick.close();
  });

  it('raised no page errors, console errors or CSP violations', () => {
    expect(pageProblems).toEqual([]);
  });
});
