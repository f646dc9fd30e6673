/**
 * End to end in a real browser: Debian's Chromium (playwright-core) against two `sipnote ui`
 * hosts, alice and bob, each with its own core and its own SIP user agent on loopback, peer to
 * peer. Everything goes through the UI a user sees: onboarding, To/Message/Enter, the
 * conversation list, the thread, retry, the quick-send window, search. Screenshots of each
 * view go to build/screenshots (looked at by a person; the assertions do not depend on them).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/processes.js';
import { launchChromium, type RunningChromium } from './chromium.js';
import { ensureRendererBuilt, REPO_ROOT } from './renderer-build.js';
import { startUi, type RunningUi } from './ui-hosts.js';

const SCREENSHOTS = join(REPO_ROOT, 'build', 'screenshots');
const VIEWPORT = { width: 1200, height: 760 };

let chromium: RunningChromium;
let aliceUi: RunningUi;
let bobUi: RunningUi;
let aliceContext: BrowserContext;
let bobContext: BrowserContext;
let alice: Page;
let bob: Page;
let alicePort: number;
let bobPort: number;
const pageProblems: string[] = [];

function watch(page: Page, who: string): void {
  page.on('pageerror', (error) => pageProblems.push(`${who}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageProblems.push(`${who} console: ${message.text()}`);
  });
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

/** Onboarding, peer to peer, listening on 127.0.0.1:port. */
async function createAccount(page: Page, user: string, port: number, screenshot?: string): Promise<string> {
  const address = `sip:${user}@127.0.0.1:${port}`;
  await page.getByRole('heading', { name: 'Welcome to sipnote' }).waitFor();
  await page.getByRole('radio', { name: /Peer to peer/ }).check();
  await page.getByLabel('SIP address').fill(address);
  await page.getByLabel('Listen on address').fill('127.0.0.1');
  await page.getByLabel('Port', { exact: true }).fill(String(port));
  if (screenshot !== undefined) await shot(page, screenshot);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('textbox', { name: /^To/ }).waitFor();
  return address;
}

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await ensureRendererBuilt();
  [chromium, aliceUi, bobUi, alicePort, bobPort] = await Promise.all([launchChromium(), startUi(), startUi(), freePort(), freePort()]);
  aliceContext = await chromium.browser.newContext({ viewport: VIEWPORT, colorScheme: 'light' });
  bobContext = await chromium.browser.newContext({ viewport: VIEWPORT, colorScheme: 'dark' });
  alice = await aliceContext.newPage();
  bob = await bobContext.newPage();
  watch(alice, 'alice');
  watch(bob, 'bob');
}, 30_000);

afterAll(async () => {
  await chromium?.close();
  await Promise.all([aliceUi?.stop(), bobUi?.stop()]);
});

describe('sipnote ui in Chromium, alice and bob peer to peer', () => {
  it('refuses a page without the right token', async () => {
    const response = await alice.goto(`${aliceUi.origin}/?token=not-the-token`);
    expect(response?.status()).toBe(401);
    const bare = await alice.goto(`${aliceUi.origin}/`);
    expect(bare?.status()).toBe(401);
  });

  it('onboards both, alice sends with To/Message/Enter, bob reads it as plaintext, alice sees delivered', async () => {
    await Promise.all([alice.goto(aliceUi.url), bob.goto(bobUi.url)]);
    // The token went into a cookie and out of the address bar.
    expect(alice.url()).toBe(`${aliceUi.origin}/`);
    await createAccount(alice, 'alice', alicePort, 'onboarding-light');
    const bobAddress = await createAccount(bob, 'bob', bobPort, 'onboarding-dark');
    await shot(alice, 'compose-light');

    await alice.getByRole('textbox', { name: /^To/ }).fill(bobAddress);
    const message = alice.getByRole('textbox', { name: /Message/ });
    await message.fill('Hello Bob!');
    await message.press('Shift+Enter');
    await message.pressSequentially('Second line.');
    await message.press('Enter');

    const sent = alice.locator('article', { hasText: 'Hello Bob!' });
    await sent.locator('.message-state.delivered').waitFor({ timeout: 10_000 });
    expect(await sent.locator('.message-text').innerText()).toBe('Hello Bob!\nSecond line.');
    expect(await sent.locator('.badge.security').innerText()).toContain('Plaintext');

    const fromAlice = bob.getByRole('button', { name: /^alice@127\.0\.0\.1.*1 unread/ });
    await fromAlice.waitFor({ timeout: 10_000 });
    expect(await fromAlice.innerText()).toContain('Hello Bob!');
    await fromAlice.click();
    const received = bob.locator('article', { hasText: 'Hello Bob!' });
    await received.waitFor();
    expect(await received.locator('.badge.security').innerText()).toBe('Plaintext');
    expect(await received.getAttribute('aria-posinset')).toBe('1');
    // Reading it cleared the unread count.
    await bob.getByRole('button', { name: /^alice@127\.0\.0\.1:\d+$/ }).waitFor();

    // Bob answers from the conversation; Alice sees it arrive in her open thread.
    await bob.getByRole('textbox', { name: /Message/ }).fill('Hi Alice, got it.');
    await bob.getByRole('textbox', { name: /Message/ }).press('Enter');
    await bob.locator('article', { hasText: 'Hi Alice, got it.' }).locator('.message-state.delivered').waitFor({ timeout: 10_000 });
    await alice.locator('article', { hasText: 'Hi Alice, got it.' }).waitFor({ timeout: 10_000 });
    await shot(alice, 'conversation-light');
    await shot(bob, 'conversation-dark');
  });

  it('shows a failed send with its reason and a Retry that tries again', async () => {
    const closedPort = await freePort();
    await alice.keyboard.press('Control+n');
    await alice.getByRole('textbox', { name: /^To/ }).fill(`sip:nobody@127.0.0.1:${closedPort};transport=tcp`);
    await alice.getByRole('textbox', { name: /Message/ }).fill('Anyone there?');
    await alice.getByRole('textbox', { name: /Message/ }).press('Enter');
    const failed = alice.locator('article', { hasText: 'Anyone there?' });
    await failed.locator('.message-state.failed').waitFor({ timeout: 10_000 });
    expect(await failed.locator('.failure-reason').innerText()).toMatch(/^503 /);
    await shot(alice, 'failed-light');
    await failed.getByRole('button', { name: 'Retry' }).click();
    // It went back through the queue and failed again (the peer is still not there).
    await failed.locator('.message-state.failed').waitFor({ timeout: 10_000 });
    await failed.getByRole('button', { name: 'Retry' }).waitFor();
  });

  it('quick-send works by keyboard alone', async () => {
    const quick = await aliceContext.newPage();
    watch(quick, 'quick-send');
    await quick.setViewportSize({ width: 440, height: 220 });
    await quick.goto(`${aliceUi.origin}/#quick-send`);
    await quick.getByRole('textbox', { name: /^To/ }).waitFor();
    await quick.keyboard.type(`sip:bob@127.0.0.1:${bobPort}`);
    await quick.keyboard.press('Enter');
    await quick.keyboard.type('Sent from the quick window');
    await quick.keyboard.press('Enter');
    await quick.locator('.quick-status .message-state.delivered').waitFor({ timeout: 10_000 });
    await shot(quick, 'quick-send-light');
    await bob.locator('article', { hasText: 'Sent from the quick window' }).waitFor({ timeout: 10_000 });
    await quick.close();
  });

  it('finds old messages in search, and shows settings, contacts and the SIP log', async () => {
    await alice.keyboard.press('Control+f');
    await alice.getByRole('searchbox', { name: 'Search history' }).fill('second line');
    const hit = alice.locator('.search-hit', { hasText: 'Hello Bob!' });
    await hit.waitFor();
    expect(await hit.locator('mark').allInnerTexts()).toEqual(['Second', 'line']);
    await shot(alice, 'search-light');

    await alice.getByRole('button', { name: 'Settings' }).click();
    await alice.getByRole('heading', { name: 'Accounts' }).waitFor();
    await shot(alice, 'settings-light');

    await alice.getByRole('button', { name: 'Contacts' }).click();
    await alice.getByText('Certificate verification is not available in this build.').waitFor();
    await shot(alice, 'contacts-light');

    await alice.getByRole('button', { name: 'SIP log' }).click();
    const entry = alice.locator('.sip-log-entry', { hasText: 'MESSAGE sip:bob@127.0.0.1' }).first();
    await entry.waitFor();
    await entry.locator('summary').click();
    expect(await entry.locator('pre').innerText()).toContain('Content-Type: text/plain;charset=utf-8');
    await shot(alice, 'sip-log-light');

    await bob.getByRole('button', { name: 'SIP log' }).click();
    await bob.locator('.sip-log-entry').first().waitFor();
    await shot(bob, 'sip-log-dark');
    await bob.getByRole('button', { name: 'Settings' }).click();
    await bob.getByRole('heading', { name: 'Accounts' }).waitFor();
    await shot(bob, 'settings-dark');
  });

  it('raised no page errors, console errors or CSP violations', () => {
    // The 401 pages of the first test log a failed resource load; nothing else may.
    expect(pageProblems.filter((problem) => !/status of 401/.test(problem))).toEqual([]);
  });
});
