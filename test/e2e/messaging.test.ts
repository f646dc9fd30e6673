/**
 * End to end in a real browser: Debian's Chromium (playwright-core) against two `sipnote ui`
 * hosts, alice and bob, each with its own core and its own SIP user agent on loopback, peer to
 * peer, S/MIME by default (keys in the OS keychain: run under scripts/with-secret-service.sh).
 * Everything goes through the UI a user sees: onboarding, To/Message/Enter, the conversation
 * list, the thread, retry, the quick-send window, search, the contacts' fingerprints. Screenshots
 * of each view go to build/screenshots (looked at by a person; the assertions do not depend on them).
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

/** The hex digits of a fingerprint as shown (grouped, with colons and line breaks). */
function hexOf(text: string): string {
  return text.replace(/[^0-9A-Fa-f]/g, '').toUpperCase();
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

/** Onboarding, peer to peer, listening on 127.0.0.1:port (with the address `sip:user@127.0.0.1:port` unless given). */
async function createAccount(page: Page, user: string, port: number, screenshot?: string, address = `sip:${user}@127.0.0.1:${port}`): Promise<string> {
  await onboardPeerToPeer(page, { address, port, ...(screenshot === undefined ? {} : { beforeCreate: () => shot(page, screenshot) }) });
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
  collectPageProblems(alice, pageProblems, 'alice');
  collectPageProblems(bob, pageProblems, 'bob');
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

  it('onboards both (keys and certificates made), alice sends with To/Message/Enter, bob reads it encrypted, alice sees delivered', async () => {
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
    await sent.locator('.message-state:is(.delivered, .displayed)').waitFor({ timeout: 10_000 });
    expect(await sent.locator('.message-text').innerText()).toBe('Hello Bob!\nSecond line.');
    // S/MIME by default: signed and encrypted, and the badge says so.
    expect(await sent.locator('.badge.security').innerText()).toBe('Encrypted');
    expect(await sent.locator('.badge.security').getAttribute('class')).toContain('encrypted-signed');

    const fromAlice = bob.getByRole('button', { name: /^alice@127\.0\.0\.1.*1 unread/ });
    await fromAlice.waitFor({ timeout: 10_000 });
    expect(await fromAlice.innerText()).toContain('Hello Bob!');
    await fromAlice.click();
    const received = bob.locator('article', { hasText: 'Hello Bob!' });
    await received.waitFor();
    expect(await received.locator('.badge.security').innerText()).toBe('Encrypted');
    expect(await received.locator('.badge.security').getAttribute('aria-label')).toBe('Security: Encrypted and signed; the signature was verified');
    expect(await received.getAttribute('aria-posinset')).toBe('1');
    // Reading it cleared the unread count.
    await bob.getByRole('button', { name: /^alice@127\.0\.0\.1:\d+$/ }).waitFor();

    // Bob answers from the conversation; Alice sees it arrive in her open thread.
    await bob.getByRole('textbox', { name: /Message/ }).fill('Hi Alice, got it.');
    await bob.getByRole('textbox', { name: /Message/ }).press('Enter');
    await bob.locator('article', { hasText: 'Hi Alice, got it.' }).locator('.message-state:is(.delivered, .displayed)').waitFor({ timeout: 10_000 });
    await alice.locator('article', { hasText: 'Hi Alice, got it.' }).waitFor({ timeout: 10_000 });
    await shot(alice, 'conversation-light');
    await shot(bob, 'conversation-dark');
  });

  it('shows "Displayed" once bob has read it (read receipts), and "… is typing" while alice types (isComposing)', async () => {
    // Bob opened the conversation above: his display notification (RFC 5438) reached alice.
    await alice.locator('article', { hasText: 'Hello Bob!' }).locator('.message-state.displayed').waitFor({ timeout: 10_000 });
    // RFC 3994: alice types in the open thread; bob, who has it open too, sees it; her message ends it.
    const typingAtBob = bob.locator('.typing-pill');
    expect(await typingAtBob.count()).toBe(0);
    const message = alice.getByRole('textbox', { name: /Message/ });
    await message.pressSequentially('Typing this slowly');
    await typingAtBob.waitFor({ timeout: 10_000 });
    expect(await typingAtBob.innerText()).toMatch(/is typing…$/);
    await message.press('Enter');
    await bob.locator('article', { hasText: 'Typing this slowly' }).waitFor({ timeout: 10_000 });
    await typingAtBob.waitFor({ state: 'detached', timeout: 10_000 });
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
    collectPageProblems(quick, pageProblems, 'quick-send');
    await quick.setViewportSize({ width: 440, height: 220 });
    await quick.goto(`${aliceUi.origin}/#quick-send`);
    await quick.getByRole('textbox', { name: /^To/ }).waitFor();
    await quick.keyboard.type(`sip:bob@127.0.0.1:${bobPort}`);
    await quick.keyboard.press('Enter');
    await quick.keyboard.type('Sent from the quick window');
    await quick.keyboard.press('Enter');
    await quick.locator('.quick-status .message-state:is(.delivered, .displayed)').waitFor({ timeout: 10_000 });
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

    // Bob's fingerprint as alice pinned it (first use) is the one bob's own view shows: what
    // they would compare out of band. Alice marks it verified.
    await bob.getByRole('button', { name: 'Contacts' }).click();
    const bobOwn = bob.getByLabel(/^Your SHA-256 fingerprint: /);
    await bobOwn.waitFor();
    const bobFingerprint = hexOf(await bobOwn.innerText());
    expect(bobFingerprint).toMatch(/^[0-9A-F]{64}$/);
    await alice.getByRole('button', { name: 'Contacts' }).click();
    const bobContact = alice.getByRole('listitem', { name: /^bob@127\.0\.0\.1:\d+: Pinned on first use/ });
    await bobContact.waitFor();
    expect(hexOf(await bobContact.getByLabel(/^SHA-256 fingerprint: /).innerText())).toBe(bobFingerprint);
    await shot(alice, 'contacts-light');
    await bobContact.getByRole('button', { name: /^Mark bob@127\.0\.0\.1:\d+ verified$/ }).click();
    await alice.getByRole('listitem', { name: /^bob@127\.0\.0\.1:\d+: Verified by fingerprint/ }).waitFor();

    await alice.getByRole('button', { name: 'SIP log' }).click();
    const entry = alice.locator('.sip-log-entry', { hasText: 'MESSAGE sip:bob@127.0.0.1' }).first();
    await entry.waitFor();
    await entry.locator('summary').click();
    // On the wire: S/MIME, and none of the text.
    const wire = await entry.locator('pre').innerText();
    expect(wire).toMatch(/Content-Type: application\/pkcs7-mime; smime-type=authEnveloped-data/i);
    expect(wire).not.toContain('Hello Bob');
    await shot(alice, 'sip-log-light');

    await bob.getByRole('button', { name: 'SIP log' }).click();
    await bob.locator('.sip-log-entry').first().waitFor();
    await shot(bob, 'sip-log-dark');
    await bob.getByRole('button', { name: 'Settings' }).click();
    await bob.getByRole('heading', { name: 'Accounts' }).waitFor();
    await shot(bob, 'settings-dark');
  });

  it('refuses alice on a new install (a new certificate) until bob compares both fingerprints and accepts it', async () => {
    // The same address as alice, with a new key pair: a reinstall, or someone pretending.
    const newUi = await startUi();
    const newContext = await chromium.browser.newContext({ viewport: VIEWPORT, colorScheme: 'light' });
    try {
      const newAlice = await newContext.newPage();
      collectPageProblems(newAlice, pageProblems, 'new alice');
      await newAlice.goto(newUi.url);
      await createAccount(newAlice, 'alice', await freePort(), undefined, `sip:alice@127.0.0.1:${alicePort}`);
      await newAlice.getByRole('textbox', { name: /^To/ }).fill(`sip:bob@127.0.0.1:${bobPort}`);
      await newAlice.getByRole('textbox', { name: /Message/ }).fill('It is me, new laptop');
      await newAlice.getByRole('textbox', { name: /Message/ }).press('Enter');
      const refused = newAlice.locator('article', { hasText: 'It is me, new laptop' });
      await refused.locator('.message-state.failed').waitFor({ timeout: 10_000 });
      expect(await refused.locator('.failure-reason').innerText()).toMatch(/^403 /);

      // Bob sees the change, with the pinned and the presented fingerprint side by side.
      await bob.getByRole('button', { name: 'Contacts' }).click();
      const changed = bob.getByRole('listitem', { name: /^alice@127\.0\.0\.1:\d+: Certificate CHANGED/ });
      await changed.waitFor({ timeout: 10_000 });
      const pinned = hexOf(await changed.getByLabel(/^Pinned SHA-256 fingerprint: /).innerText());
      const presented = hexOf(await changed.getByLabel(/^New SHA-256 fingerprint: /).innerText());
      expect(pinned).not.toBe(presented);
      await newAlice.getByRole('button', { name: 'Contacts' }).click();
      expect(hexOf(await newAlice.getByLabel(/^Your SHA-256 fingerprint: /).innerText())).toBe(presented);
      await alice.getByRole('button', { name: 'Contacts' }).click();
      expect(hexOf(await alice.getByLabel(/^Your SHA-256 fingerprint: /).innerText())).toBe(pinned);
      expect(await bob.locator('article', { hasText: 'It is me, new laptop' }).count()).toBe(0);
      await shot(bob, 'certificate-changed-dark');

      await changed.getByRole('button', { name: /^Accept the new certificate of alice@127\.0\.0\.1:\d+$/ }).click();
      const accepted = bob.getByRole('listitem', { name: /^alice@127\.0\.0\.1:\d+: Pinned on first use/ });
      await accepted.waitFor();
      expect(hexOf(await accepted.getByLabel(/^SHA-256 fingerprint: /).innerText())).toBe(presented);

      await newAlice.keyboard.press('Control+n');
      await newAlice.getByRole('textbox', { name: /^To/ }).fill(`sip:bob@127.0.0.1:${bobPort}`);
      await newAlice.getByRole('textbox', { name: /Message/ }).fill('Accepted now?');
      await newAlice.getByRole('textbox', { name: /Message/ }).press('Enter');
      await newAlice.locator('article', { hasText: 'Accepted now?' }).locator('.message-state:is(.delivered, .displayed)').waitFor({ timeout: 10_000 });
      await bob.getByRole('button', { name: /^alice@127\.0\.0\.1.*1 unread/ }).click();
      const arrived = bob.locator('article', { hasText: 'Accepted now?' });
      await arrived.waitFor({ timeout: 10_000 });
      expect(await arrived.locator('.badge.security').innerText()).toBe('Encrypted');
    } finally {
      await newContext.close();
      await newUi.stop();
    }
  });

  it('raised no page errors, console errors or CSP violations', () => {
    // The 401 pages of the first test log a failed resource load; nothing else may.
    expect(pageProblems.filter((problem) => !/status of 401/.test(problem))).toEqual([]);
  });
});
