/**
 * Notifications in the browser host (renderer/src/lib/notifications.ts), in real Chromium
 * against two `sipnote ui` hosts peer to peer. Bob's browser context has the notifications
 * permission granted, and an init script records every Notification the page constructs (the
 * real constructor still runs; playwright cannot see the system's notification centre).
 *
 * An incoming message appears in the list AND raises a notification when its conversation is
 * not on screen; clicking the notification opens that conversation; with the conversation
 * open in a focused window, nothing is raised; with the setting off, nothing is raised.
 */
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/processes.js';
import { launchChromium, type RunningChromium } from './chromium.js';
import { collectPageProblems, onboardPeerToPeer } from './onboarding.js';
import { ensureRendererBuilt } from './renderer-build.js';
import { startUi, type RunningUi } from './ui-hosts.js';

/** Wraps the page's Notification so the test can read what was raised and click it. */
const RECORD_NOTIFICATIONS = `
(() => {
  const Real = window.Notification;
  if (Real === undefined) return;
  const raised = [];
  class Recorded extends Real {
    constructor(title, options) {
      super(title, options);
      raised.push({ title, body: options && options.body, tag: options && options.tag, notification: this });
    }
  }
  Object.defineProperty(Recorded, 'permission', { get: () => Real.permission });
  Recorded.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Recorded;
  window.__raisedNotifications = raised;
})();
`;

interface Raised {
  readonly title: string;
  readonly body: string;
  readonly tag: string;
}

let chromium: RunningChromium;
let aliceUi: RunningUi;
let bobUi: RunningUi;
let aliceContext: BrowserContext;
let bobContext: BrowserContext;
let alice: Page;
let bob: Page;
let bobAddress: string;
const pageProblems: string[] = [];

async function raised(page: Page): Promise<Raised[]> {
  return page.evaluate(() =>
    ((globalThis as unknown as { __raisedNotifications?: Raised[] }).__raisedNotifications ?? []).map(({ title, body, tag }) => ({ title, body, tag })),
  );
}

async function createAccount(page: Page, user: string, name: string, port: number): Promise<string> {
  const address = `sip:${user}@127.0.0.1:${port}`;
  await onboardPeerToPeer(page, { address, port, displayName: name });
  return address;
}

/** Alice writes to Bob from her open conversation (or a new message the first time). */
async function aliceSends(text: string): Promise<void> {
  const field = alice.getByRole('textbox', { name: /^Message/ });
  if (!(await alice.getByRole('feed').isVisible())) await alice.getByRole('textbox', { name: /^To/ }).fill(bobAddress);
  await field.fill(text);
  await field.press('Enter');
  // Delivered, or already displayed when Bob has the conversation open (IMDN, RFC 5438).
  await alice.locator('article', { hasText: text }).locator('.message-state:is(.delivered, .displayed)').waitFor({ timeout: 10_000 });
}

beforeAll(async () => {
  await ensureRendererBuilt();
  let alicePort: number;
  let bobPort: number;
  [chromium, aliceUi, bobUi, alicePort, bobPort] = await Promise.all([launchChromium(), startUi(), startUi(), freePort(), freePort()]);
  aliceContext = await chromium.browser.newContext({ viewport: { width: 1100, height: 720 } });
  bobContext = await chromium.browser.newContext({ viewport: { width: 1100, height: 720 } });
  await bobContext.grantPermissions(['notifications'], { origin: bobUi.origin });
  await bobContext.addInitScript({ content: RECORD_NOTIFICATIONS });
  alice = await aliceContext.newPage();
  bob = await bobContext.newPage();
  collectPageProblems(alice, pageProblems, 'alice');
  collectPageProblems(bob, pageProblems, 'bob');
  await Promise.all([alice.goto(aliceUi.url), bob.goto(bobUi.url)]);
  await createAccount(alice, 'alice', 'Alice Archer', alicePort);
  bobAddress = await createAccount(bob, 'bob', 'Bob Baker', bobPort);
}, 30_000);

afterAll(async () => {
  await chromium?.close();
  await Promise.all([aliceUi?.stop(), bobUi?.stop()]);
});

describe('notifications in the browser host', () => {
  it('an incoming message appears in the list with a notification event; clicking it opens the conversation', async () => {
    // Bob is on the "New message" form: the conversation is not on screen.
    expect(await bob.evaluate(() => (globalThis as unknown as { Notification: { permission: string } }).Notification.permission)).toBe('granted');
    await aliceSends('Lunch at noon?');
    const listed = bob.getByRole('button', { name: /^Alice Archer.*1 unread/ });
    await listed.waitFor({ timeout: 10_000 });
    expect(await listed.innerText()).toContain('Lunch at noon?');
    await expect.poll(() => raised(bob)).toEqual([{ title: 'Alice Archer', body: 'Lunch at noon?', tag: expect.stringMatching(/^sipnote-conversation-\d+$/) as unknown as string }]);

    await bob.evaluate(() => {
      const [first] = (globalThis as unknown as { __raisedNotifications: Array<{ notification: { dispatchEvent(event: unknown): boolean } }> }).__raisedNotifications;
      const { Event } = globalThis as unknown as { Event: new (type: string) => unknown };
      first?.notification.dispatchEvent(new Event('click'));
    });
    await bob.getByRole('feed').locator('article', { hasText: 'Lunch at noon?' }).waitFor();
    await bob.getByRole('button', { name: /^Alice Archer$/ }).waitFor();
  });

  it('raises nothing while the conversation is open in a focused window', async () => {
    expect(await bob.evaluate(() => (globalThis as unknown as { document: { hasFocus(): boolean } }).document.hasFocus())).toBe(true);
    await aliceSends('Or one o’clock?');
    await bob.getByRole('feed').locator('article', { hasText: 'one o’clock' }).waitFor({ timeout: 10_000 });
    expect(await raised(bob)).toHaveLength(1);
  });

  it('raises nothing when the setting is off', async () => {
    await bob.getByRole('button', { name: 'Settings' }).click();
    const setting = bob.getByRole('checkbox', { name: 'Notify me of incoming messages' });
    await setting.uncheck();
    // A reload reads the settings back from the core: the change has landed there. It also
    // leaves Bob on the "New message" form, where a message would otherwise notify.
    await bob.reload();
    await bob.getByRole('button', { name: 'Settings' }).click();
    expect(await setting.isChecked()).toBe(false);
    await bob.getByRole('button', { name: /New message/ }).click();
    await aliceSends('Never mind, see you tomorrow.');
    await bob.getByRole('button', { name: /^Alice Archer.*1 unread/ }).waitFor({ timeout: 10_000 });
    expect(await raised(bob)).toEqual([]);
  });

  it('raised no page errors or console errors', () => {
    expect(pageProblems).toEqual([]);
  });
});
