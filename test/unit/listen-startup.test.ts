/**
 * `sipnote listen --data-dir` start-up (main/cli/listen-command.ts): the history worker and the
 * S/MIME side are opened together. When either fails the listener must still exit, with the
 * message and code it gave when they were opened one after the other: the S/MIME side's
 * failure first (exit 1), else the store's (exit 1). Each case is a real process: a history
 * worker left running would keep it alive, and `exitWithin` would fail.
 *
 * The key is kept in a passphrase-protected file (SIPNOTE_KEY_PASSPHRASE), so no keychain is
 * needed. Runs the compiled CLI: `npx tsc -b` first.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DATABASE_FILE } from '../../main/store/index.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';
import { exitWithin, startSipnote, stopAll, waitForLine } from '../support/processes.js';

const cleanups = cleanupsAfterEach();
afterEach(() => stopAll());

const AOR = 'sip:bob@127.0.0.1';
const ENV = { ...process.env, SIPNOTE_KEY_PASSPHRASE: 'listen start-up test passphrase' };

function listen(dataDir: string, extra: readonly string[] = []): ReturnType<typeof startSipnote> {
  return startSipnote(['listen', '--aor', AOR, '--listen', 'udp:127.0.0.1:0', '--data-dir', dataDir, '--json', ...extra], { env: ENV });
}

async function withIdentity(dataDir: string): Promise<void> {
  const init = startSipnote(['keys', 'init', '--aor', AOR, '--passphrase-key', '--data-dir', dataDir], { env: ENV });
  expect(await exitWithin(init)).toBe(0);
}

/** Not a SQLite database: the store cannot be opened. */
function corruptStore(dataDir: string): void {
  writeFileSync(join(dataDir, DATABASE_FILE), 'this is not a database, just some text that is long enough to be read as a header'.repeat(20));
}

describe('sipnote listen --data-dir start-up', () => {
  it('with both sides open: listens, and exits 0 when stopped', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-listen-startup-');
    await withIdentity(dataDir);
    const proc = listen(dataDir);
    expect(await waitForLine(proc, (line) => line.includes('"listening"'))).toContain(AOR);
    proc.child.kill('SIGTERM');
    expect(await exitWithin(proc)).toBe(0);
  });

  it('no identity: the identity message, exit 1, and no store created', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-listen-startup-');
    const proc = listen(dataDir);
    expect(await exitWithin(proc)).toBe(1);
    expect(proc.stderr()).toContain(`${AOR} has no S/MIME identity in ${dataDir}`);
    expect(proc.stdout()).toBe('');
    expect(existsSync(join(dataDir, DATABASE_FILE))).toBe(false);
  });

  it('S/MIME fails (the key cannot be opened), the store opens: the key’s error, exit 1, and the worker is closed', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-listen-startup-');
    await withIdentity(dataDir);
    const proc = startSipnote(['listen', '--aor', AOR, '--listen', 'udp:127.0.0.1:0', '--data-dir', dataDir, '--json'], {
      env: { ...process.env, SIPNOTE_KEY_PASSPHRASE: 'not the passphrase the key was saved with' },
    });
    expect(await exitWithin(proc)).toBe(1);
    expect(proc.stderr()).toMatch(/^sipnote: wrong passphrase/m);
    expect(proc.stdout()).toBe('');
  });

  it('the store fails, S/MIME opens: the store’s error, exit 1', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-listen-startup-');
    await withIdentity(dataDir);
    corruptStore(dataDir);
    const proc = listen(dataDir);
    expect(await exitWithin(proc)).toBe(1);
    expect(proc.stderr()).toMatch(/^sipnote: .*not a database/m);
    expect(proc.stdout()).toBe('');
  });

  it('both fail: only the S/MIME side’s message, exit 1', async () => {
    const dataDir = tempDir(cleanups, 'sipnote-listen-startup-');
    corruptStore(dataDir);
    const proc = listen(dataDir);
    expect(await exitWithin(proc)).toBe(1);
    expect(proc.stderr()).toContain(`${AOR} has no S/MIME identity in ${dataDir}`);
    expect(proc.stderr()).not.toMatch(/not a database/);
  });
});
