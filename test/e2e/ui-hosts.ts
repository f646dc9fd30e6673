/**
 * `sipnote ui` hosts for the end-to-end tests, run in-process through `uiCommand` (the same
 * function the CLI runs), each with its own Messenger, so the test controls when they stop.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { uiCommand, parseUiArgs, type UiOverrides, type UiStartedEvent } from '../../main/cli/ui-command.js';
import { RENDERER_BUILD } from './renderer-build.js';

export interface RunningUi {
  readonly url: string;
  readonly origin: string;
  readonly token: string;
  stop(): Promise<number>;
}

export async function startUi(argv: readonly string[] = [], overrides: UiOverrides = {}): Promise<RunningUi> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let output = '';
  let errors = '';
  stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  let release!: () => void;
  const stop = new Promise<void>((resolve) => (release = resolve));
  const dataDir = mkdtempSync(join(tmpdir(), 'sipnote-ui-'));
  const exited = uiCommand(parseUiArgs(['--json', '--data-dir', dataDir, ...argv]), { stdin: new PassThrough(), stdout, stderr }, stop, { rendererDir: RENDERER_BUILD, ...overrides });
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sipnote ui printed nothing within 10 s: ${errors}`)), 10_000);
    stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const first = output.split('\n')[0];
      if (output.includes('\n') && first !== undefined) {
        clearTimeout(timer);
        resolve(first);
      }
    });
    void exited.then((code) => reject(new Error(`sipnote ui exited ${code}: ${errors}`)));
  });
  const started = JSON.parse(line) as UiStartedEvent;
  const url = new URL(started.url);
  return {
    url: started.url,
    origin: url.origin,
    token: url.searchParams.get('token') ?? '',
    stop: async () => {
      release();
      const code = await exited;
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
}
