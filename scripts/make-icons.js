#!/usr/bin/env node
// Renders the app icon (renderer/public/icon.svg) into what electron-builder packs, under
// packaging/ (its buildResources folder):
//   packaging/icons/NxN.png   16, 24, 32, 48, 64, 128, 256, 512: the Linux icon set (deb, AppImage)
//   packaging/icon.ico        Windows: the PNGs up to 256 inside an ICO container
//   packaging/icon.icns       macOS: the PNGs inside an ICNS container
// The outputs are committed, so packaging needs no image tool; run this again after changing
// the SVG:  node scripts/make-icons.js
//
// The SVG is drawn by the Chromium the end-to-end tests use (playwright-core and Debian's
// /usr/bin/chromium, see test/e2e/chromium.ts) at each size, with a transparent background:
// no ImageMagick or librsvg needed. ICO and ICNS both allow PNG entries (ICO since Windows
// Vista, ICNS since Mac OS X 10.7 for these types), so they are assembled here byte by byte.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = join(root, 'renderer', 'public', 'icon.svg');
const output = join(root, 'packaging');
const ICON_SIZES = [16, 24, 32, 48, 64, 128, 256, 512];
const ICO_SIZES = [16, 24, 32, 48, 64, 128, 256];
// ICNS entry types holding PNG data, by pixel size.
const ICNS_TYPES = [
  ['icp4', 16],
  ['icp5', 32],
  ['icp6', 64],
  ['ic07', 128],
  ['ic08', 256],
  ['ic09', 512],
];

/** Draws the SVG at size×size CSS pixels with deviceScaleFactor 1: one PNG per size. */
async function render(svg, sizes) {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'], headless: true });
  try {
    const page = await browser.newPage({ viewport: { width: 512, height: 512 }, deviceScaleFactor: 1 });
    const url = `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`;
    const pngs = new Map();
    for (const size of sizes) {
      await page.setContent(`<!doctype html><style>html,body{margin:0;background:transparent}img{display:block}</style><img width="${size}" height="${size}" src="${url}">`);
      await page.locator('img').evaluate((image) => image.decode());
      pngs.set(size, await page.screenshot({ clip: { x: 0, y: 0, width: size, height: size }, omitBackground: true }));
    }
    return pngs;
  } finally {
    await browser.close();
  }
}

/** ICONDIR + one ICONDIRENTRY per image + the PNGs (a width or height of 256 is written as 0). */
function ico(pngs) {
  const header = Buffer.alloc(6);
  header.writeUInt16LE(0, 0);
  header.writeUInt16LE(1, 2); // 1 = icon
  header.writeUInt16LE(pngs.length, 4);
  const entries = [];
  let offset = 6 + 16 * pngs.length;
  for (const [size, png] of pngs) {
    const entry = Buffer.alloc(16);
    entry.writeUInt8(size >= 256 ? 0 : size, 0);
    entry.writeUInt8(size >= 256 ? 0 : size, 1);
    entry.writeUInt8(0, 2); // no palette
    entry.writeUInt8(0, 3);
    entry.writeUInt16LE(1, 4); // colour planes
    entry.writeUInt16LE(32, 6); // bits per pixel
    entry.writeUInt32LE(png.length, 8);
    entry.writeUInt32LE(offset, 12);
    offset += png.length;
    entries.push(entry);
  }
  return Buffer.concat([header, ...entries, ...pngs.map(([, png]) => png)]);
}

/** 'icns', total length, then per image: its type, its length including these 8 bytes, the PNG. */
function icns(entries) {
  const parts = entries.map(([type, png]) => {
    const head = Buffer.alloc(8);
    head.write(type, 0, 'latin1');
    head.writeUInt32BE(png.length + 8, 4);
    return Buffer.concat([head, png]);
  });
  const head = Buffer.alloc(8);
  head.write('icns', 0, 'latin1');
  head.writeUInt32BE(8 + parts.reduce((sum, part) => sum + part.length, 0), 4);
  return Buffer.concat([head, ...parts]);
}

async function main() {
  const svg = readFileSync(source, 'utf8');
  const pngs = await render(svg, ICON_SIZES);
  mkdirSync(join(output, 'icons'), { recursive: true });
  for (const [size, png] of pngs) writeFileSync(join(output, 'icons', `${size}x${size}.png`), png);
  writeFileSync(join(output, 'icon.ico'), ico(ICO_SIZES.map((size) => [size, pngs.get(size)])));
  writeFileSync(join(output, 'icon.icns'), icns(ICNS_TYPES.map(([type, size]) => [type, pngs.get(size)])));
  console.log(`wrote packaging/icons/{${ICON_SIZES.map((size) => `${size}x${size}`).join(',')}}.png, packaging/icon.ico, packaging/icon.icns`);
}

await main();
