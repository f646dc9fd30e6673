/**
 * `sipnote ui [--data-dir DIR] [--port N] [--json]`: the messenger in a browser. Starts the
 * core (a Messenger) and the browser host on 127.0.0.1, prints the address to open (it
 * carries the per-launch token), and runs until SIGINT/SIGTERM.
 *
 * With --json it prints one line, `{"event":"ui","url":"http://127.0.0.1:PORT/?token=…"}`.
 * History, outbox, accounts and settings are kept in the store of the data dir
 * (DATA_DIR/sipnote.db, never a password); the data dir is --data-dir or the default of every
 * sipnote command (data-dir.ts). Messages still in the outbox are sent when it starts.
 */
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startBrowserHost } from '../host/browser-host.js';
import { Messenger, type MessengerOptions } from '../im/messenger.js';
import { resolveDataDir } from './data-dir.js';
import type { CommandIo } from './io.js';
import { UsageError } from './usage-error.js';

export interface UiArgs {
  readonly dataDir?: string;
  /** 0 = any free port. */
  readonly port: number;
  readonly json: boolean;
}

/** The line `--json` prints once the host listens. */
export interface UiStartedEvent {
  readonly event: 'ui';
  readonly url: string;
}

/** Test and embedding hooks; the command line never sets these. */
export interface UiOverrides {
  readonly rendererDir?: string;
  readonly messenger?: Omit<MessengerOptions, 'dataDir'>;
  readonly env?: NodeJS.ProcessEnv;
}

export function parseUiArgs(argv: readonly string[]): UiArgs {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: {
      'data-dir': { type: 'string' },
      port: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const port = values.port === undefined ? 0 : Number(values.port);
  if (values.port !== undefined && !(/^\d{1,5}$/.test(values.port) && port <= 65535)) throw new UsageError('--port takes a port number (0-65535)');
  if (values['data-dir'] === '') throw new UsageError('--data-dir needs a folder');
  return { port, json: values.json, ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }) };
}

export async function uiCommand(args: UiArgs, io: CommandIo, stop: Promise<void>, overrides: UiOverrides = {}): Promise<number> {
  const rendererDir = overrides.rendererDir ?? defaultRendererDir();
  if (!existsSync(rendererDir)) {
    io.stderr.write(`sipnote: the user interface is not built (no ${rendererDir}): run \`npm run build\`\n`);
    return 1;
  }
  const dataDir = resolveDataDir(args.dataDir, overrides.env);
  let messenger: Messenger;
  try {
    // S/MIME, contacts and keychain passwords (account-security.ts): keys in the OS keychain.
    messenger = await Messenger.open({ ...overrides.messenger, dataDir });
  } catch (error) {
    io.stderr.write(`sipnote: cannot open the data dir ${dataDir}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  let host;
  try {
    host = await startBrowserHost({ endpoint: messenger, rendererDir, port: args.port });
  } catch (error) {
    await messenger.close();
    io.stderr.write(`sipnote: cannot start the browser host on 127.0.0.1:${args.port}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  if (args.json) {
    const started: UiStartedEvent = { event: 'ui', url: host.url };
    io.stdout.write(`${JSON.stringify(started)}\n`);
  } else {
    io.stdout.write(`sipnote is running at ${host.url}\nOpen that address in a browser on this machine (the token in it is the key). Ctrl+C stops it.\n`);
  }
  await stop;
  await host.close();
  await messenger.close();
  return 0;
}

/**
 * build/renderer, found from where this module runs: compiled (build/main/cli → build/renderer)
 * or from source under a TypeScript runner (main/cli → build/renderer).
 */
export function defaultRendererDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const twoUp = resolve(here, '..', '..');
  return basename(twoUp) === 'build' ? join(twoUp, 'renderer') : join(twoUp, 'build', 'renderer');
}
