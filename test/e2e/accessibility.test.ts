/**
 * Accessibility and keyboard use, in real Chromium against one `sipnote ui` host: in every
 * view (onboarding, new message, a conversation with a failed message, search, contacts, SIP
 * log, settings, quick send) every control in Chromium's accessibility tree (through the
 * DevTools protocol, the tree a screen reader gets) has a role and an accessible name; and the
 * documented shortcuts (Ctrl+N, Ctrl+F, Alt+1…5, Home/End in the thread) work and put the
 * focus where the user types next.
 */
import type { CDPSession, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/processes.js';
import { launchChromium, type RunningChromium } from './chromium.js';
import { collectPageProblems } from './onboarding.js';
import { ensureRendererBuilt } from './renderer-build.js';
import { startUi, type RunningUi } from './ui-hosts.js';

/** Roles a user operates, which must each carry a name (WAI-ARIA 1.2 "name required"). */
const CONTROL_ROLES = new Set([
  'button',
  'checkbox',
  'combobox',
  'link',
  'listbox',
  'menuitem',
  'radio',
  'searchbox',
  'slider',
  'spinbutton',
  'switch',
  'tab',
  'textbox',
  'feed',
  'navigation',
  'region',
  'dialog',
  'PopUpButton',
]);

interface AxValue {
  readonly value?: unknown;
}

interface AxNode {
  readonly nodeId: string;
  readonly ignored: boolean;
  readonly role?: AxValue;
  readonly name?: AxValue;
  readonly properties?: ReadonlyArray<{ readonly name: string; readonly value: AxValue }>;
}

let chromium: RunningChromium;
let ui: RunningUi;
let page: Page;
let cdp: CDPSession;
let port: number;
const pageProblems: string[] = [];

/** Controls in the current accessibility tree that have no accessible name, as `role` strings. */
async function unnamedControls(target: CDPSession): Promise<string[]> {
  const { nodes } = (await target.send('Accessibility.getFullAXTree')) as { nodes: AxNode[] };
  const problems: string[] = [];
  for (const node of nodes) {
    if (node.ignored) continue;
    const role = String(node.role?.value ?? '');
    if (!CONTROL_ROLES.has(role)) continue;
    const hidden = node.properties?.some((property) => property.name === 'hidden' && property.value.value === true) ?? false;
    const name = String(node.name?.value ?? '').trim();
    if (!hidden && name === '') problems.push(role);
  }
  return problems;
}

/** Every interactive role in the tree, to see that a view was really checked. */
async function controlCount(target: CDPSession): Promise<number> {
  const { nodes } = (await target.send('Accessibility.getFullAXTree')) as { nodes: AxNode[] };
  return nodes.filter((node) => !node.ignored && CONTROL_ROLES.has(String(node.role?.value ?? ''))).length;
}

async function focusedLabel(target: Page): Promise<string> {
  return target.evaluate(() => {
    const { document } = globalThis as unknown as {
      document: { activeElement: { getAttribute(name: string): string | null; labels?: ArrayLike<{ textContent: string | null }> | null } | null };
    };
    const active = document.activeElement;
    if (active === null) return '';
    return active.getAttribute('aria-label') ?? active.labels?.[0]?.textContent?.trim() ?? '';
  });
}

beforeAll(async () => {
  await ensureRendererBuilt();
  [chromium, ui, port] = await Promise.all([launchChromium(), startUi(), freePort()]);
  const context = await chromium.browser.newContext({ viewport: { width: 1100, height: 720 } });
  page = await context.newPage();
  collectPageProblems(page, pageProblems);
  cdp = await context.newCDPSession(page);
  await cdp.send('Accessibility.enable');
  await page.goto(ui.url);
}, 30_000);

afterAll(async () => {
  await chromium?.close();
  await ui?.stop();
});

describe('every control has a role and a name; the keyboard shortcuts work', () => {
  it('onboarding', async () => {
    await page.getByRole('heading', { name: 'Welcome to sipnote' }).waitFor();
    expect(await unnamedControls(cdp)).toEqual([]);
    expect(await controlCount(cdp)).toBeGreaterThan(4);
    await page.getByRole('radio', { name: /Peer to peer/ }).check();
    await page.getByLabel('SIP address').fill(`sip:alice@127.0.0.1:${port}`);
    await page.getByLabel('Listen on address').fill('127.0.0.1');
    await page.getByLabel('Port', { exact: true }).fill(String(port));
    expect(await unnamedControls(cdp)).toEqual([]);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('textbox', { name: /^To/ }).waitFor();
  });

  it('new message (Ctrl+N puts the cursor in To), then a conversation with a failed message', async () => {
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.keyboard.press('Control+n');
    await page.getByRole('textbox', { name: /^To/ }).waitFor();
    expect(await focusedLabel(page)).toMatch(/^To/);
    expect(await unnamedControls(cdp)).toEqual([]);

    const closedPort = await freePort();
    await page.keyboard.type(`sip:nobody@127.0.0.1:${closedPort};transport=tcp`);
    await page.getByRole('textbox', { name: /Message/ }).fill('Anyone there?');
    await page.getByRole('textbox', { name: /Message/ }).press('Enter');
    await page.locator('article', { hasText: 'Anyone there?' }).locator('.message-state.failed').waitFor({ timeout: 10_000 });
    expect(await unnamedControls(cdp)).toEqual([]);
    // The thread is a focusable feed: End/Home move through it without a mouse.
    await page.getByRole('feed').focus();
    await page.keyboard.press('Home');
    await page.keyboard.press('End');
    expect(await page.getByRole('button', { name: 'Retry' }).isVisible()).toBe(true);
  });

  it('search (Ctrl+F puts the cursor in the search box)', async () => {
    await page.keyboard.press('Control+f');
    await page.getByRole('searchbox', { name: 'Search history' }).waitFor();
    expect(await focusedLabel(page)).toMatch(/Search history/);
    await page.keyboard.type('anyone');
    await page.locator('.search-hit').first().waitFor();
    expect(await unnamedControls(cdp)).toEqual([]);
  });

  it('Alt+3, Alt+4, Alt+5, Alt+1: contacts, SIP log, settings, messages', async () => {
    await page.getByRole('button', { name: 'Contacts' }).focus();
    for (const [key, view] of [
      ['Alt+3', 'Contacts'],
      ['Alt+4', 'SIP log'],
      ['Alt+5', 'Settings'],
      ['Alt+1', 'Messages'],
    ] as const) {
      await page.keyboard.press(key);
      await page.locator(`nav[aria-label="Views"] button[aria-current="page"][aria-label="${view}"]`).waitFor();
      expect(await unnamedControls(cdp), view).toEqual([]);
    }
  });

  it('quick send', async () => {
    const quick = await page.context().newPage();
    quick.on('pageerror', (error) => pageProblems.push(`quick-send: ${error.message}`));
    const quickCdp = await page.context().newCDPSession(quick);
    await quickCdp.send('Accessibility.enable');
    await quick.setViewportSize({ width: 440, height: 220 });
    await quick.goto(`${ui.origin}/#quick-send`);
    await quick.getByRole('textbox', { name: /^To/ }).waitFor();
    expect(await focusedLabel(quick)).toMatch(/^To/);
    expect(await unnamedControls(quickCdp)).toEqual([]);
    await quickCdp.detach();
    await quick.close();
  });

  it('raised no page errors or console errors', () => {
    expect(pageProblems).toEqual([]);
  });
});
