/**
 * The packaging configuration (electron-builder.yml) checked offline: electron-builder's
 * `--linux dir` build with a stand-in `electron` executable as electronDist (the real one
 * cannot be downloaded here), then the packed app.asar listed with @electron/asar. It must
 * hold the build outputs the app runs from and nothing else of ours: no sources, tests, maps
 * or declarations, and no development-only packages.
 *
 * The deb and AppImage themselves need tools electron-builder downloads (fpm, appimagetool),
 * so what would go into them is asked of electron-builder's own Linux helpers from an
 * afterPack hook of the same build: the icon set it installs, the .desktop entry it writes and
 * the deb's control fields (maintainer, homepage, vendor, section, synopsis, description).
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitWithin, start, stopAll } from '../support/processes.js';
import { ensureRendererBuilt, REPO_ROOT } from './renderer-build.js';

const require = createRequire(import.meta.url);
const asar = require('@electron/asar') as {
  listPackage(archive: string, options?: { isPack: boolean }): string[];
  extractFile(archive: string, filename: string): Buffer;
};

/** What the afterPack hook learns from electron-builder (see PACK_SCRIPT). */
interface LinuxPackaging {
  readonly icons: ReadonlyArray<{ readonly file: string; readonly size: number }>;
  readonly desktopEntry: string;
  readonly deb: {
    readonly name: string;
    readonly maintainer: string;
    readonly url: string;
    readonly vendor: string;
    readonly synopsis?: string;
    readonly description: string;
    readonly category?: string;
    readonly depends?: readonly string[];
  };
}

/**
 * The build, programmatically (the configuration given here is merged over
 * electron-builder.yml, as `-c.` flags are), with an afterPack hook that asks electron-builder's
 * LinuxTargetHelper and deb target what they would package. Run in its own process.
 */
const PACK_SCRIPT = `
const { writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { join } = require('node:path');
const [root, electronDist, output, report] = process.argv.slice(2);
const load = createRequire(join(root, 'package.json'));
const builder = load('electron-builder');
const { LinuxTargetHelper } = load('app-builder-lib/out/targets/LinuxTargetHelper.js');
const FpmTarget = load('app-builder-lib/out/targets/FpmTarget.js').default;
builder.build({
  projectDir: root,
  targets: builder.Platform.LINUX.createTarget('dir'),
  publish: 'never',
  config: {
    electronDist,
    directories: { output },
    // Rebuilding better-sqlite3 for Electron needs Electron's headers from the network.
    npmRebuild: false,
    afterPack: async (context) => {
      const packager = context.packager;
      const helper = new LinuxTargetHelper(packager);
      const deb = new FpmTarget('deb', packager, helper, output);
      writeFileSync(report, JSON.stringify({
        icons: await helper.icons,
        desktopEntry: await helper.computeDesktopEntry(packager.platformSpecificBuildOptions, 'sipnote'),
        deb: {
          ...(await deb.computeFpmMetaInfoOptions()),
          synopsis: deb.options.synopsis,
          description: helper.getDescription(deb.options),
          category: deb.options.packageCategory,
          depends: deb.options.depends,
        },
      }));
    },
  },
}).then(() => process.exit(0), (error) => { console.error(error); process.exit(1); });
`;

/** Width and height from a PNG's IHDR chunk (PNG §11.2.2). */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

let work: string;
let packaging: LinuxPackaging | undefined;

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
    const script = join(work, 'pack.cjs');
    const report = join(work, 'linux-packaging.json');
    writeFileSync(script, PACK_SCRIPT);
    const builder = start(process.execPath, [script, REPO_ROOT, dist, output, report], { cwd: REPO_ROOT, env: { ...process.env, CI: 'true' } });
    const code = await exitWithin(builder, 45_000);
    expect(code, builder.stderr() + builder.stdout()).toBe(0);
    packaging = JSON.parse(readFileSync(report, 'utf8')) as LinuxPackaging;

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
    const packedPackage = JSON.parse(asar.extractFile(join(unpacked, 'resources', 'app.asar'), 'package.json').toString('utf8')) as Record<string, unknown>;
    expect(packedPackage.author).toEqual({ name: 'sipnote contributors', email: 'sipnote@localhost' });
    // electron-builder requires a homepage for Linux packages and none exists yet: the reserved
    // .invalid TLD (RFC 2606) cannot send users to someone else's site. Replace it when there is one.
    expect(packedPackage.homepage).toBe('https://sipnote.invalid/');
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

  it('installs the icon set 16..512 drawn from icon.svg, and the ICO and ICNS for the other platforms', () => {
    expect(packaging, 'the build above ran').toBeDefined();
    const icons = packaging?.icons ?? [];
    expect(icons.map((icon) => icon.size)).toEqual([16, 24, 32, 48, 64, 128, 256, 512]);
    for (const icon of icons) {
      expect(icon.file).toBe(join(REPO_ROOT, 'packaging', 'icons', `${icon.size}x${icon.size}.png`));
      expect(pngSize(readFileSync(icon.file)), icon.file).toEqual({ width: icon.size, height: icon.size });
    }
    // ICO: reserved 0, type 1 (icon), 7 images, each a PNG (16..256).
    const ico = readFileSync(join(REPO_ROOT, 'packaging', 'icon.ico'));
    expect([ico.readUInt16LE(0), ico.readUInt16LE(2), ico.readUInt16LE(4)]).toEqual([0, 1, 7]);
    const largest = ico.readUInt32LE(6 + 6 * 16 + 12);
    expect(pngSize(ico.subarray(largest))).toEqual({ width: 256, height: 256 });
    // ICNS: magic and total length, the first entry a 16-pixel PNG.
    const icns = readFileSync(join(REPO_ROOT, 'packaging', 'icon.icns'));
    expect(icns.subarray(0, 4).toString('latin1')).toBe('icns');
    expect(icns.readUInt32BE(4)).toBe(icns.length);
    expect(icns.subarray(8, 12).toString('latin1')).toBe('icp4');
    expect(pngSize(icns.subarray(16))).toEqual({ width: 16, height: 16 });
  });

  it('writes the .desktop entry and the deb control fields from electron-builder.yml and package.json', () => {
    expect(packaging, 'the build above ran').toBeDefined();
    const entry = packaging?.desktopEntry ?? '';
    for (const line of [
      'Name=sipnote',
      'Exec=sipnote',
      'Icon=sipnote',
      'Categories=Network;InstantMessaging;',
      'MimeType=x-scheme-handler/sip;x-scheme-handler/sips;x-scheme-handler/im;',
      'StartupWMClass=sipnote',
    ]) {
      expect(entry.split('\n'), line).toContain(line);
    }
    expect(packaging?.deb).toEqual({
      name: 'sipnote',
      maintainer: 'sipnote contributors <sipnote@localhost>',
      url: 'https://sipnote.invalid/',
      vendor: 'sipnote contributors',
      synopsis: 'Pager-style SIP MESSAGE messenger',
      description: 'A pager-style instant messenger that speaks SIP MESSAGE (RFC 3428), with end-to-end S/MIME.',
      category: 'net',
      depends: ['libsecret-1-0'],
    });
  });
});
