/**
 * The end-to-end tests run against build/renderer; this rebuilds it (vite, ~1-2 s) when any
 * renderer or shared source is newer than the build, so a test never checks a stale UI.
 * Test files run in parallel workers: a lock directory makes sure only one builds at a time,
 * and the others wait for a marker written once the whole build is out. (Waiting for
 * index.html instead let a test load the page while vite was still writing its assets, and
 * fail on a 404.)
 */
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const RENDERER_BUILD = join(REPO_ROOT, 'build', 'renderer');
const LOCK = join(REPO_ROOT, 'build', '.renderer-build.lock');
/** Written once a build has finished (removed when one starts): next to the build, not in what is packaged. */
const BUILT_MARKER = join(REPO_ROOT, 'build', '.renderer-built');

function newestMtime(path: string): number {
  const stats = statSync(path, { throwIfNoEntry: false });
  if (stats === undefined) return 0;
  if (!stats.isDirectory()) return stats.mtimeMs;
  let newest = stats.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

function isFresh(): boolean {
  const built = statSync(BUILT_MARKER, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const sources = Math.max(
    newestMtime(join(REPO_ROOT, 'renderer')),
    newestMtime(join(REPO_ROOT, 'shared')),
    newestMtime(join(REPO_ROOT, 'vite.config.ts')),
  );
  return built > sources;
}

export async function ensureRendererBuilt(timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!isFresh()) {
    mkdirSync(join(REPO_ROOT, 'build'), { recursive: true });
    let locked = false;
    try {
      mkdirSync(LOCK);
      locked = true;
    } catch {
      // Someone else is building; a lock older than a minute is left over from a crash.
      const age = Date.now() - (statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 60_000) rmSync(LOCK, { recursive: true, force: true });
    }
    if (locked) {
      try {
        if (!isFresh()) {
          rmSync(BUILT_MARKER, { force: true });
          await build({ configFile: join(REPO_ROOT, 'vite.config.ts'), logLevel: 'warn' });
          writeFileSync(BUILT_MARKER, `${new Date().toISOString()}\n`);
        }
      } finally {
        rmSync(LOCK, { recursive: true, force: true });
      }
      return;
    }
    if (Date.now() > deadline) throw new Error('timed out waiting for another renderer build');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
