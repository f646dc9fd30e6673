/**
 * The packaging configuration (electron-builder.yml) checked offline: `electron-builder
 * --linux dir` with a stand-in `electron` executable as electronDist (the real one cannot be
 * downloaded here), then the packed app.asar listed with @electron/asar. It must hold the
 * build outputs the app runs from and nothing else of ours: no sources, tests, maps or
 * declarations, and no development-only packages.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitWithin, start, stopAll } from '../support/processes.js';
import { ensureRendererBuilt, REPO_ROOT } from './renderer-build.js';

const require = createRequire(import.meta.url);
const asar = require('@electron/asar') as { listPackage(archive: string, options?: { isPack: boolean }): string[] };

let work: string;

beforeAll(async () => {
  await ensureRendererBuilt();
  work = mkdtempSync(join(tmpdir(), 'sipnote-pack-'));
});

afterAll(async () => {
  await stopAll();
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

describe('electron-builder --linux dir', () => {
  it('packs exactly the build outputs and the runtime dependencies', async () => {
    for (const built of ['build/main/app/main.js', 'build/main/app/preload.cjs', 'build/shared/api.js']) {
      expect(existsSync(join(REPO_ROOT, built)), `${built} (run \`npx tsc -b\`)`).toBe(true);
    }
    const dist = join(work, 'electron-dist');
    mkdirSync(dist);
    writeFileSync(join(dist, 'electron'), '#!/bin/sh\necho "stand-in for Electron"\n');
    chmodSync(join(dist, 'electron'), 0o755);
    const output = join(work, 'release');
    const builder = start(
      process.execPath,
      [
        join(REPO_ROOT, 'node_modules', 'electron-builder', 'cli.js'),
        '--linux',
        'dir',
        `-c.electronDist=${dist}`,
        `-c.directories.output=${output}`,
        // Rebuilding better-sqlite3 for Electron needs Electron's headers from the network.
        '-c.npmRebuild=false',
      ],
      { cwd: REPO_ROOT, env: { ...process.env, CI: 'true' } },
    );
    const code = await exitWithin(builder, 45_000);
    expect(code, builder.stderr() + builder.stdout()).toBe(0);

    const unpacked = join(output, 'linux-unpacked');
    expect(existsSync(join(unpacked, 'sipnote'))).toBe(true);
    const files = asar.listPackage(join(unpacked, 'resources', 'app.asar'), { isPack: false });
    const ours = files.filter((file) => !file.startsWith('/node_modules/'));

    for (const needed of [
      '/package.json',
      '/build/main/app/main.js',
      '/build/main/app/preload.cjs',
      '/build/main/im/messenger.js',
      '/build/main/host/browser-host.js',
      '/build/shared/api.js',
      '/build/shared/api-schema.js',
      '/build/renderer/index.html',
    ]) {
      expect(ours, needed).toContain(needed);
    }
    expect(ours.some((file) => /^\/build\/renderer\/assets\/index-[\w-]+\.js$/.test(file))).toBe(true);
    expect(ours.some((file) => /^\/build\/renderer\/assets\/index-[\w-]+\.css$/.test(file))).toBe(true);

    const leaks = ours.filter(
      (file) =>
        /\.(ts|cts|mts|map|svelte|tsbuildinfo)$/.test(file) ||
        /^\/(main|renderer|shared|test|bench|scripts|deploy|docs|release)(\/|$)/.test(file) ||
        /^\/build\/(tsc-|tsbuildinfo|screenshots|bench)/.test(file) ||
        /\.test\.js$/.test(file) ||
        /^\/(tsconfig|vite\.config|vitest\.config|electron-builder)/.test(file),
    );
    expect(leaks).toEqual([]);

    const packages = new Set(files.filter((file) => file.startsWith('/node_modules/')).map((file) => file.split('/').slice(2, file.startsWith('/node_modules/@') ? 4 : 3).join('/')));
    for (const runtime of ['valibot', 'ws', 'pkijs', 'asn1js']) expect(packages, runtime).toContain(runtime);
    for (const development of ['vitest', 'vite', 'svelte', 'playwright-core', 'electron', 'electron-builder', 'typescript', 'fast-check']) {
      expect(packages, development).not.toContain(development);
    }
  }, 60_000);
});
