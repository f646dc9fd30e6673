/**
 * Child processes for interop tests: every process started here is tracked by PID and killed
 * by `stopAll()` (call it in afterEach), so a failing test never leaves a peer running.
 * Waiting is always on an event (a line of output, an exit), bounded by a timeout.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
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

/**
 * Ports for `freePort` to pick from: just below the kernel's ephemeral range (Linux:
 * /proc/sys/net/ipv4/ip_local_port_range), so that no other test's outgoing connection or
 * bind(0) can be handed the port between the moment it is picked and the moment its user binds
 * it (seconds, for a UI that binds at onboarding). An ephemeral port picked with bind(0) and
 * released is free to be given out again at once, and the hostile-listener test alone opens a
 * thousand connections while other files run.
 */
const PICK_RANGE: { readonly low: number; readonly high: number } | undefined = (() => {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'latin1').trim().split(/\s+/).map(Number);
    if (low === undefined || !Number.isInteger(low) || low < 12000) return undefined;
    return { low: low - 10000, high: low - 1 };
  } catch {
    return undefined; // not Linux: the kernel's bind(0) it is
  }
})();

/** A port nobody listens on (TCP) right now, from PICK_RANGE (else the kernel's choice); -1 if taken. */
function candidatePort(address: string): Promise<number> {
  const wanted = PICK_RANGE === undefined ? 0 : PICK_RANGE.low + Math.floor(Math.random() * (PICK_RANGE.high - PICK_RANGE.low + 1));
  return new Promise<number>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(-1));
    server.listen(wanted, address, () => {
      const found = (server.address() as { port: number }).port;
      server.close(() => resolve(found));
    });
  });
}

/** A port free for both UDP and TCP on the address right now (for peers that need a number). */
export async function freePort(address = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await candidatePort(address);
    if (port < 0) continue;
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, address, () => socket.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free port found');
}

