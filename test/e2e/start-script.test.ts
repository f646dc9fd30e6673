/**
 * `npm start` (scripts/start.js) where Electron's binary is not installed, as on this
 * machine: it says so, starts the browser host, prints the address with its token, and
 * stops cleanly on SIGINT. Without a desktop (no DISPLAY) it says it cannot open a browser.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitWithin, start, stopAll, waitForLine } from '../support/processes.js';
import { ensureRendererBuilt, REPO_ROOT } from './renderer-build.js';

let dataHome: string;

beforeAll(async () => {
  await ensureRendererBuilt();
  dataHome = mkdtempSync(join(tmpdir(), 'sipnote-start-'));
});

afterAll(async () => {
  await stopAll();
  rmSync(dataHome, { recursive: true, force: true });
});

describe('npm start without Electron', () => {
  it('falls back to the browser host, says so, prints the address, and stops on SIGINT', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, XDG_DATA_HOME: dataHome };
    delete env.DISPLAY;
    delete env.WAYLAND_DISPLAY;
    const proc = start(process.execPath, [join(REPO_ROOT, 'scripts', 'start.js'), '--port', '0'], { env });
    const line = await waitForLine(proc, (text) => /^sipnote is running at http:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{43}$/.test(text));
    const url = new URL(line.replace('sipnote is running at ', ''));
    expect(proc.stderr()).toMatch(/Electron is not installed here, so the messenger runs in your browser/);
    const response = await fetch(`${url.origin}/`);
    expect(response.status).toBe(401);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "no desktop" notice: ${proc.stderr()}`)), 5000);
      const check = (): void => {
        if (!/no desktop found/.test(proc.stderr())) return;
        clearTimeout(timer);
        proc.child.stderr?.off('data', check);
        resolve();
      };
      proc.child.stderr?.on('data', check);
      check();
    });
    proc.child.kill('SIGINT');
    expect(await exitWithin(proc)).toBe(0);
  });
});
