#!/usr/bin/env node
// `npm start`. The desktop app (Electron main process, tray, renderer) is not built yet
// (issue #6), so this starts the command-line receiver with its defaults and says so.
// Extra arguments go to `sipnote listen`, e.g. `npm start -- --aor sip:me@127.0.0.1 --json`.
import { userInfo } from 'node:os';

const args = process.argv.slice(2);
const user = (process.env.USER || userInfo().username || 'me').replace(/[^A-Za-z0-9._~-]/g, '') || 'me';
const defaults = [];
if (!args.includes('--aor')) defaults.push('--aor', `sip:${user}@127.0.0.1`);
if (!args.includes('--listen')) defaults.push('--listen', 'udp:127.0.0.1:5060,tcp:127.0.0.1:5060');
if (!args.includes('--plaintext')) defaults.push('--plaintext');
console.error(
  'sipnote: the desktop app is not built yet (issue #6); starting `sipnote listen` with its defaults ' +
    `(${[...defaults, ...args].join(' ')}). Press Ctrl+C to stop.`,
);
process.argv = [process.argv[0], process.argv[1], 'listen', ...defaults, ...args];
await import('../bin/sipnote.js');
