/**
 * Child processes for interop tests: every process started here is tracked by PID and killed
 * by `stopAll()` (call it in afterEach), so a failing test never leaves a peer running.
 * Waiting is always on an event (a line of output, an exit), bounded by a timeout.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SIPNOTE_BIN = fileURLToPath(new URL('../../bin/sipnote.js', import.meta.url));

export interface Tracked {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
}

const running = new Set<ChildProcess>();

export function start(command: string, args: readonly string[], options: SpawnOptions = {}): Tracked {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  running.add(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', (error) => {
      running.delete(child);
      resolve(`spawn error: ${error.message}`);
    });
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

export function startSipnote(args: readonly string[], options: SpawnOptions = {}): Tracked {
  return start(process.execPath, [SIPNOTE_BIN, ...args], options);
}

/** Kills every process still running (SIGKILL after SIGTERM was ignored for 2 s). */
export async function stopAll(): Promise<void> {
  const children = [...running];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

/** Waits for a line on stdout (or `stream`) that satisfies `match`, failing after `ms` or on exit. */
export function waitForLine(proc: Tracked, match: (line: string) => boolean, ms = 10_000, stream: 'stdout' | 'stderr' = 'stdout'): Promise<string> {
  return new Promise((resolve, reject) => {
    const output = proc.child[stream];
    let buffered = '';
    const onData = (chunk: string): void => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (match(line)) {
          cleanup();
          resolve(line);
          return;
        }
      }
    };
    const onExit = (): void => {
      cleanup();
      reject(new Error(`process exited before the line was printed; stdout: ${proc.stdout()} stderr: ${proc.stderr()}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no matching line within ${ms} ms; stdout: ${proc.stdout()} stderr: ${proc.stderr()}`));
    }, ms);
    const cleanup = (): void => {
      clearTimeout(timer);
      output?.off('data', onData);
      proc.child.off('exit', onExit);
    };
    // Lines printed before we started listening count too.
    for (const line of proc[stream]().split('\n')) {
      if (match(line)) {
        clearTimeout(timer);
        resolve(line);
        return;
      }
    }
    output?.on('data', onData);
    proc.child.once('exit', onExit);
  });
}

/** The exit code, or a rejection if the process has not exited within `ms`. */
export function exitWithin(proc: Tracked, ms = 15_000): Promise<number | string> {
  return Promise.race([
    proc.exited,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`did not exit within ${ms} ms; stdout: ${proc.stdout()} stderr: ${proc.stderr()}`)), ms).unref(),
    ),
  ]);
}

/** A port free for both UDP and TCP on the address right now (for peers that need a number). */
export async function freePort(address = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, address, () => {
        const found = (server.address() as { port: number }).port;
        server.close(() => resolve(found));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, address, () => socket.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free port found');
}
