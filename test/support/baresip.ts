/**
 * baresip 1.0.0 (Debian 12 `baresip-core`) as an independent SIP user agent for interop
 * tests: one account registered through a proxy (the test's Kamailio), sending pager-mode
 * MESSAGEs (RFC 3428) to its one contact and printing the ones it receives.
 *
 * The config, accounts and contacts files are filled in from the templates in
 * test/interop/baresip/ into a fresh temp dir (baresip also writes `current_contact` there).
 * The process is tracked by PID through test/support/processes.ts, so `stopAll()` reaches it.
 *
 * Facts this relies on (verified, see /work/shared/peers/README.md §3):
 * - stdin must be a pipe: only then does the stdio module load, and only with it loaded does
 *   baresip print a received MESSAGE, as `\r<from uri>: "<body>"` (on stderr, seen here;
 *   the registration outcome and errors went to stdout).
 * - baresip sends a MESSAGE only to its *current contact* (the first line of `contacts`), here
 *   with the ctrl_tcp module's `message` command (netstring-framed JSON over TCP).
 * - a registration outcome is printed on stdout as `<user>@<domain>: {0/UDP/v4} 200 OK (...) [1 binding]`,
 *   a failure as `reg: sip:<user>@<domain>: 401 Unauthorized (...)`.
 * - `/quit` on stdin removes the registration (REGISTER with Expires: 0) before exiting; its
 *   Contact has a random user part per run, so a binding left behind would make the proxy
 *   fork later requests to a dead contact.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitWithin, freePort, start, waitForLine, type Tracked } from './processes.js';

export const BARESIP_TEMPLATE_DIR = fileURLToPath(new URL('../interop/baresip/', import.meta.url));

export interface BaresipOptions {
  /** The account: sip:<user>@<domain>, digest password `password`. */
  readonly user: string;
  readonly password: string;
  readonly domain?: string;
  /** The outbound proxy (and registrar): 127.0.0.1:<proxyPort> over `transport`. */
  readonly proxyPort: number;
  readonly transport: 'udp' | 'tcp';
  /** The one contact, i.e. where `sendMessage` sends to, e.g. sip:bob@example.test. */
  readonly peer: string;
}

export interface CtrlResponse {
  readonly response: true;
  readonly ok: boolean;
  readonly data: string;
  readonly token?: string;
}

export interface RunningBaresip {
  readonly proc: Tracked;
  readonly sipPort: number;
  readonly ctrlPort: number;
  readonly dir: string;
  /** One ctrl_tcp command (the long name of a menu command, e.g. `message`, `reginfo`). */
  command(command: string, params?: string): Promise<CtrlResponse>;
  /** Sends `text` as a MESSAGE to `peer`; resolves once baresip has taken the command. */
  sendMessage(text: string): Promise<void>;
  /**
   * The body of the first MESSAGE baresip printed as received from `from` (a SIP URI),
   * counting lines printed before the call; single-line bodies only (it prints the raw body).
   */
  waitForMessage(from: string, ms?: number): Promise<string>;
  /** `/quit` on stdin (un-REGISTERs), waits for the exit, removes the work dir. Idempotent. */
  stop(): Promise<void>;
}

const REGISTER_MS = 10_000;
const COMMAND_MS = 5_000;

/** Starts baresip and resolves once its registration got a 200; rejects with its output otherwise. */
export async function startBaresip(options: BaresipOptions): Promise<RunningBaresip> {
  const domain = options.domain ?? 'example.test';
  const dir = mkdtempSync(join(tmpdir(), 'sipnote-baresip-'));
  try {
    // Ports found free can be taken before baresip binds them: retry on a bind failure.
    for (let attempt = 1; ; attempt++) {
      const sipPort = await freePort();
      let ctrlPort = await freePort();
      while (ctrlPort === sipPort) ctrlPort = await freePort();
      writeFromTemplate(dir, 'config', { SIP_PORT: String(sipPort), CTRL_PORT: String(ctrlPort) });
      writeFromTemplate(dir, 'accounts', {
        USER: options.user,
        DOMAIN: domain,
        // the AoR's transport parameter makes baresip register (and send) over TCP
        AOR_PARAMS: options.transport === 'tcp' ? ';transport=tcp' : '',
        PASSWORD: options.password,
        PROXY_PORT: String(options.proxyPort),
        TRANSPORT: options.transport,
      });
      writeFromTemplate(dir, 'contacts', { CONTACT_NAME: 'peer', CONTACT_URI: options.peer });

      // stdio defaults to pipes in start(): stdin stays open (a pipe), as the stdio module needs
      const proc = start('baresip', ['-f', dir], { cwd: dir });
      const aor = `${options.user}@${domain}`;
      // success: `alice@example.test: {0/UDP/v4} 200 OK (...)`; failure: `reg: sip:alice@example.test: 401 ...`
      const outcome = await waitForLine(proc, (line) => line.startsWith(`${aor}: {0/`) || line.startsWith(`reg: sip:${aor}: `), REGISTER_MS).then(
        (line) => ({ line }),
        (error: unknown) => ({ error }),
      );
      const output = (): string => `stdout:\n${proc.stdout()}\nstderr:\n${proc.stderr()}`;
      // A SIP port in use makes baresip exit; a ctrl_tcp port in use only drops that module
      // ("ctrl_tcp: failed to listen ... Address already in use", printed before registering).
      const portTaken = /Address already in use/.test(output());
      if ('line' in outcome && / 200 OK /.test(outcome.line) && !portTaken) {
        return running(proc, dir, sipPort, ctrlPort);
      }
      await stopProcess(proc);
      if (portTaken && attempt < 3) continue;
      throw new Error(`baresip did not register ${aor}:\n${output()}`);
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

function writeFromTemplate(dir: string, name: string, values: Readonly<Record<string, string>>): void {
  const template = readFileSync(join(BARESIP_TEMPLATE_DIR, name), 'utf8');
  const text = template.replace(/\{\{([A-Z_]+)\}\}/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`baresip template ${name}: no value for {{${key}}}`);
    return value;
  });
  writeFileSync(join(dir, name), text);
}

function running(proc: Tracked, dir: string, sipPort: number, ctrlPort: number): RunningBaresip {
  const command = (name: string, params = ''): Promise<CtrlResponse> => ctrlCommand(ctrlPort, name, params);
  return {
    proc,
    sipPort,
    ctrlPort,
    dir,
    command,
    sendMessage: async (text) => {
      const response = await command('message', text);
      if (!response.ok) throw new Error(`baresip refused the message command: ${response.data}`);
    },
    waitForMessage: async (from, ms = 10_000) => {
      const prefix = `${from}: "`;
      // the stdio module starts the line with \r (it redraws its prompt)
      const line = await waitForOutputLine(proc, (l) => l.replace(/^\r/, '').startsWith(prefix) && l.endsWith('"'), ms);
      return line.replace(/^\r/, '').slice(prefix.length, -1);
    },
    stop: async () => {
      await stopProcess(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Like processes.ts's waitForLine, but on stdout or stderr (baresip 1.0.0 printed received
 * MESSAGEs on stderr, while its registration and error lines went to stdout): a complete line
 * that satisfies `match`, printed before or after the call, bounded by `ms`.
 */
function waitForOutputLine(proc: Tracked, match: (line: string) => boolean, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const { stdout, stderr } = proc.child;
    const find = (text: string): string | undefined => text.split('\n').slice(0, -1).find(match);
    const check = (): boolean => {
      const line = find(proc.stdout()) ?? find(proc.stderr());
      if (line === undefined) return false;
      cleanup();
      resolve(line);
      return true;
    };
    const onData = (): void => void check();
    const onExit = (): void => {
      if (check()) return;
      cleanup();
      reject(new Error(`baresip exited before the line was printed; stdout: ${proc.stdout()} stderr: ${proc.stderr()}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no matching line from baresip within ${ms} ms; stdout: ${proc.stdout()} stderr: ${proc.stderr()}`));
    }, ms);
    const cleanup = (): void => {
      clearTimeout(timer);
      stdout?.off('data', onData);
      stderr?.off('data', onData);
      proc.child.off('exit', onExit);
    };
    if (check()) return;
    // added after start()'s own listeners, so proc.stdout()/stderr() already hold the chunk
    stdout?.on('data', onData);
    stderr?.on('data', onData);
    proc.child.once('exit', onExit);
  });
}

/** `/quit` on stdin (a clean exit un-REGISTERs); SIGKILL if it has not exited within 3 s. */
async function stopProcess(proc: Tracked): Promise<void> {
  const { child } = proc;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.stdin?.write('/quit\n');
  try {
    await exitWithin(proc, 3000);
  } catch {
    child.kill('SIGKILL');
    await proc.exited;
  }
}

/**
 * ctrl_tcp: each JSON object is framed as a netstring, `<length>:<json>,`. baresip answers a
 * command with `{"response":true,"ok":…,"data":…,"token":…}` (events, which carry
 * `"event":true`, are skipped).
 */
function ctrlCommand(port: number, command: string, params: string): Promise<CtrlResponse> {
  return new Promise((resolve, reject) => {
    const token = `t${Date.now()}`;
    const json = Buffer.from(JSON.stringify({ command, params, token }));
    const socket = connect(port, '127.0.0.1');
    let buffered = Buffer.alloc(0);
    const finish = (error: Error | undefined, response?: CtrlResponse): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else if (response) resolve(response);
    };
    const timer = setTimeout(() => finish(new Error(`baresip ctrl_tcp: no answer to ${command} within ${COMMAND_MS} ms`)), COMMAND_MS);
    socket.once('error', (error) => finish(error));
    socket.once('connect', () => socket.write(Buffer.concat([Buffer.from(`${json.length}:`), json, Buffer.from(',')])));
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const colon = buffered.indexOf(':');
        if (colon < 0) return;
        const length = Number(buffered.subarray(0, colon).toString('latin1'));
        if (!Number.isInteger(length)) {
          finish(new Error(`baresip ctrl_tcp: not a netstring: ${buffered.toString('latin1')}`));
          return;
        }
        if (buffered.length < colon + 1 + length + 1) return;
        const object = JSON.parse(buffered.subarray(colon + 1, colon + 1 + length).toString('utf8')) as Record<string, unknown>;
        buffered = buffered.subarray(colon + 1 + length + 1);
        if (object['response'] === true && object['token'] === token) {
          finish(undefined, object as unknown as CtrlResponse);
          return;
        }
      }
    });
  });
}
