/**
 * A CLI command run in-process on memory streams (main/cli/io.ts CommandIo): stdin holds the
 * given text and ends, and what the command writes to stdout and stderr comes back as text
 * with its exit code.
 */
import { PassThrough } from 'node:stream';
import type { CommandIo } from '../../main/cli/io.js';

export interface CommandRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runWithMemoryIo(command: (io: CommandIo) => Promise<number>, stdinText = ''): Promise<CommandRun> {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  stdin.end(stdinText);
  const code = await command({ stdin, stdout, stderr });
  return { code, stdout: out, stderr: err };
}
