#!/usr/bin/env node
// `npm start`: the desktop app when Electron's binary is installed, otherwise the same
// messenger in a browser through the browser host (`sipnote ui`), saying which it does.
// Extra arguments go to `sipnote ui` in the browser case, e.g. `npm start -- --port 8123`.
//
// The Electron binary is looked up without requiring the `electron` package: requiring it
// where the binary is missing starts a download (toolchain.md §1).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);

/** The installed Electron executable, or undefined. */
function electronBinary() {
  let packageDir;
  try {
    packageDir = dirname(createRequire(import.meta.url).resolve('electron'));
  } catch {
    return undefined;
  }
  const pathFile = join(packageDir, 'path.txt');
  if (!existsSync(pathFile)) return undefined;
  const relative = readFileSync(pathFile, 'utf8').trim();
  const distDir = process.env.ELECTRON_OVERRIDE_DIST_PATH || join(packageDir, 'dist');
  const binary = join(distDir, relative);
  return existsSync(binary) ? binary : undefined;
}

function requireBuilt(file) {
  if (!existsSync(join(root, file))) {
    console.error(`sipnote is not built yet (no ${file}): run \`npm run build\` first.`);
    process.exit(2);
  }
}

/** Opens the address in the desktop's browser, where there is a desktop. */
function openBrowser(url) {
  const platform = process.platform;
  let command;
  let commandArgs;
  if (platform === 'darwin') [command, commandArgs] = ['open', [url]];
  else if (platform === 'win32') [command, commandArgs] = ['cmd', ['/c', 'start', '""', url.replace(/&/g, '^&')]];
  else if (process.env.DISPLAY || process.env.WAYLAND_DISPLAY) [command, commandArgs] = ['xdg-open', [url]];
  else {
    console.error('sipnote: no desktop found (DISPLAY is not set): open the address above in a browser on this machine.');
    return;
  }
  const opener = spawn(command, commandArgs, { stdio: 'ignore', detached: true });
  opener.on('error', () => console.error(`sipnote: could not run ${command}: open the address above yourself.`));
  opener.unref();
}

const electron = electronBinary();
if (electron !== undefined) {
  requireBuilt('build/main/app/main.js');
  requireBuilt('build/renderer/index.html');
  console.error(`sipnote: starting the desktop app (Electron at ${electron}).`);
  const child = spawn(electron, [root, ...args], { stdio: 'inherit' });
  child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 0 : 1)));
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
} else {
  requireBuilt('build/main/cli/ui-command.js');
  requireBuilt('build/renderer/index.html');
  console.error('sipnote: Electron is not installed here, so the messenger runs in your browser instead (the browser host, `sipnote ui`).');
  const { parseUiArgs, uiCommand } = await import(new URL('../build/main/cli/ui-command.js', import.meta.url).href);
  let printed = '';
  let opened = false;
  const stdout = new Writable({
    write(chunk, _encoding, done) {
      process.stdout.write(chunk);
      printed += chunk.toString();
      const url = /https?:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]+/.exec(printed)?.[0];
      if (url !== undefined && !opened) {
        opened = true;
        openBrowser(url);
      }
      done();
    },
  });
  const stop = new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  let parsed;
  try {
    parsed = parseUiArgs(args);
  } catch (error) {
    console.error(`sipnote: ${error instanceof Error ? error.message : String(error)}\nusage: npm start -- [--data-dir DIR] [--port N] [--json]`);
    process.exit(2);
  }
  process.exitCode = await uiCommand(parsed, { stdin: process.stdin, stdout, stderr: process.stderr }, stop);
}
