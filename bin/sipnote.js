#!/usr/bin/env node
// The `sipnote` command. The TypeScript sources are compiled by `npm install` (prepare) or
// `npm run build`; this file only starts the compiled entry point.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../build/main/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error('sipnote is not built yet: run `npm install` (or `npm run build`) in the sipnote folder first.');
  process.exit(2);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
