/**
 * What a test leaves behind (sockets, Messengers, temp dirs, keychain entries) is undone after
 * it, last registered first, so that a thing is closed before what it stands on is removed.
 *
 *   const cleanups = cleanupsAfterEach();
 *   const dir = tempDir(cleanups, 'sipnote-example-');
 *   cleanups.push(() => messenger.close());
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';

/** One piece of undoing; may be async, and its result is ignored. */
export type Cleanup = () => unknown;

/** A list of cleanups that the caller has arranged to run (see `cleanupsAfterEach`). */
export type Cleanups = Cleanup[];

/** Run the cleanups in reverse order, each awaited before the next, emptying the list. */
export async function runCleanups(cleanups: Cleanups): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}

/** A cleanup list that runs after each test of the file (call at the top level of the file). */
export function cleanupsAfterEach(): Cleanups {
  const cleanups: Cleanups = [];
  afterEach(() => runCleanups(cleanups));
  return cleanups;
}

/** A fresh directory under the OS temp dir (`prefix` + random suffix), removed with `cleanups`. */
export function tempDir(cleanups: Cleanups, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
