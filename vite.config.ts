/**
 * Builds the renderer (renderer/, Svelte 5) into build/renderer with relative asset URLs
 * (`base: './'`), so the same files load from the browser host and from Electron.
 * Type-checked by renderer/tsconfig.vite.json; the renderer itself by renderer/tsconfig.json
 * (tsc) and svelte-check (`npm run check:svelte`).
 */
import { fileURLToPath } from 'node:url';
import { svelte, vitePreprocess } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('./renderer', import.meta.url)),
  base: './',
  plugins: [svelte({ configFile: false, preprocess: vitePreprocess() })],
  build: {
    outDir: fileURLToPath(new URL('./build/renderer', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // The polyfill would be an inline script, which the CSP forbids; every target browser has modulepreload.
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  server: { host: '127.0.0.1', strictPort: true },
  clearScreen: false,
});
