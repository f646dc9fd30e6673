/**
 * What every end-to-end test does with a fresh page: collect the errors it reports (a page
 * error or a console error fails no test by itself, so the tests assert the list is empty), and
 * onboard a peer-to-peer account through the welcome form, as a user would.
 */
import type { Page } from 'playwright-core';

/** Appends the page's uncaught errors and console errors to `problems`, prefixed with `who` when given. */
export function collectPageProblems(page: Page, problems: string[], who?: string): void {
  const prefix = who === undefined ? '' : `${who}: `;
  const consolePrefix = who === undefined ? 'console: ' : `${who} console: `;
  page.on('pageerror', (error) => problems.push(`${prefix}${error.message}`));
  page.on('console', (message) => {
    // The location names the resource of a "Failed to load resource" error.
    const where = message.location().url;
    if (message.type() === 'error') problems.push(`${consolePrefix}${message.text()}${where === '' ? '' : ` (${where})`}`);
  });
}

export interface PeerToPeerOnboarding {
  /** The SIP address, e.g. `sip:alice@127.0.0.1:PORT`. */
  readonly address: string;
  /** Where to listen on 127.0.0.1. */
  readonly port: number;
  /** Left empty when not given. */
  readonly displayName?: string;
  /** Runs on the filled form, just before "Create account" (e.g. a screenshot). */
  readonly beforeCreate?: () => Promise<void>;
}

/** The welcome form, peer to peer on 127.0.0.1; resolves once the new-message form is shown. */
export async function onboardPeerToPeer(page: Page, account: PeerToPeerOnboarding): Promise<void> {
  await page.getByRole('heading', { name: 'Welcome to sipnote' }).waitFor();
  await page.getByRole('radio', { name: /Peer to peer/ }).check();
  await page.getByLabel('SIP address').fill(account.address);
  if (account.displayName !== undefined) await page.getByLabel(/^Display name/).fill(account.displayName);
  await page.getByLabel('Listen on address').fill('127.0.0.1');
  await page.getByLabel('Port', { exact: true }).fill(String(account.port));
  await account.beforeCreate?.();
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('textbox', { name: /^To/ }).waitFor();
}
