/**
 * A private Kamailio for one test, running THIS repository's deployment configuration
 * (deploy/kamailio/kamailio.cfg) on loopback: the config is copied into a fresh temp dir,
 * its SQLite database is created with deploy/kamailio/users.sh, a TLS certificate is made
 * with openssl when asked, free ports are picked, and Kamailio runs in the foreground as the
 * current user (`-DD -E`), tracked by PID through test/support/processes.ts.
 *
 * The server runs with WITH_LOOPBACK_ONLY: it refuses to register or relay to anything but
 * 127.0.0.0/8 and ::1, so no test can make it send off the box.
 *
 * Readiness is an event: an OPTIONS sent over UDP (retransmitted until answered, bounded)
 * gets a 200. Kamailio binds every listener before it forks its workers, so an answer over
 * UDP means TCP and TLS accept too. `stop()` ends it by PID; its children exit with it.
 * `kill()` and `startAgain()` stop it and start it again on the same ports and the same
 * database (a server restart in the middle of a conversation).
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, start, waitForLine, type Tracked } from './processes.js';

const run = promisify(execFile);

export const KAMAILIO_DEPLOY_DIR = fileURLToPath(new URL('../../deploy/kamailio/', import.meta.url));

export interface KamailioUser {
  readonly user: string;
  readonly password: string;
}

export interface KamailioOptions {
  /** Users to create (digest realm and domain = `domain`). */
  readonly users: readonly KamailioUser[];
  /** Also listen on TLS with a fresh self-signed certificate for `domain` and 127.0.0.1. */
  readonly tls?: boolean;
  /** The SIP domain served (default example.test). */
  readonly domain?: string;
  /** Extra cfg switches, e.g. ['WITH_SHA256'] or ['WITH_STRICT_DIGEST_URI']. */
  readonly defines?: readonly string[];
  /** Seconds between msilo's sweeps that delete delivered messages (default 1 in tests). */
  readonly msiloCheckTime?: number;
}

export interface RunningKamailio {
  /** UDP and TCP share one port number, as on a real server. */
  readonly udpPort: number;
  readonly tcpPort: number;
  /** Present when started with `tls: true`. */
  readonly tlsPort: number | undefined;
  readonly domain: string;
  /** Work dir: kamailio.cfg, kam.sqlite, cert/key, kamailio_ctl socket. */
  readonly dir: string;
  readonly dbPath: string;
  /** The PID of the current Kamailio main process. */
  readonly pid: number;
  /** The self-signed server certificate (PEM) to trust, when `tls: true`. */
  readonly caCertPem: string | undefined;
  /** Kamailio's log so far (stderr, `-E`). */
  log(): string;
  /** The first line of the log (already written or still to come) that `match` accepts. */
  waitForLog(match: (line: string) => boolean, ms?: number): Promise<string>;
  /** Stops Kamailio (SIGTERM, SIGKILL after 2 s) and removes the work dir. Idempotent. */
  stop(): Promise<void>;
  /** Stops the process by PID (`signal` first; SIGKILL to the group after 2 s), keeping the work dir and database. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again after `kill`: same config, ports and database; resolves when it answers. */
  startAgain(): Promise<void>;
}

const STARTUP_MS = 10_000;

export async function startKamailio(options: KamailioOptions): Promise<RunningKamailio> {
  const domain = options.domain ?? 'example.test';
  const dir = mkdtempSync(join(tmpdir(), 'sipnote-kamailio-'));
  try {
    copyFileSync(join(KAMAILIO_DEPLOY_DIR, 'kamailio.cfg'), join(dir, 'kamailio.cfg'));
    const dbPath = join(dir, 'kam.sqlite');
    const usersScript = join(KAMAILIO_DEPLOY_DIR, 'users.sh');
    await run(usersScript, [dbPath, 'init']);
    for (const { user, password } of options.users) {
      // the password goes over stdin, not argv
      await runWithStdin(usersScript, [dbPath, 'add', user, '-', domain], `${password}\n`);
    }

    let caCertPem: string | undefined;
    if (options.tls) {
      await run('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', join(dir, 'server.key'), '-out', join(dir, 'server.crt'), '-days', '2',
        '-subj', `/CN=${domain}`, '-addext', `subjectAltName=DNS:${domain},IP:127.0.0.1`,
      ]);
      caCertPem = readFileSync(join(dir, 'server.crt'), 'utf8');
    }

    // A port found free can be taken before Kamailio binds it: retry on a bind failure.
    for (let attempt = 1; ; attempt++) {
      const sipPort = await freePort();
      const tlsPort = options.tls ? await freePort() : undefined;
      const args = [
        '-f', join(dir, 'kamailio.cfg'), '-DD', '-E', '-Y', dir, '-P', join(dir, 'kamailio.pid'), '-m', '64', '-M', '8',
        '-A', 'WITH_LOOPBACK_ONLY',
        '-A', `SIP_DOMAIN="${domain}"`,
        '-A', 'LISTEN_ADDR=127.0.0.1',
        '-A', `UDP_PORT=${sipPort}`,
        '-A', `TCP_PORT=${sipPort}`,
        '-A', `MSILO_LOOP_URI="sip:127.0.0.1:${sipPort};transport=udp"`,
        '-A', `MSILO_CHECK_TIME=${options.msiloCheckTime ?? 1}`,
        '-A', `DBURL="sqlite://${dbPath}"`,
      ];
      if (tlsPort !== undefined) {
        args.push('-A', 'WITH_TLS', '-A', `TLS_PORT=${tlsPort}`,
          '-A', `TLS_CERT="${join(dir, 'server.crt')}"`, '-A', `TLS_KEY="${join(dir, 'server.key')}"`);
      }
      for (const define of options.defines ?? []) args.push('-A', define);

      // own process group, so stop() can also reach workers that outlive a killed main process
      const kamailio = start('kamailio', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      const ready = await answersOptions(kamailio, sipPort, domain);
      if (ready === 'ready') {
        if (kamailio.child.pid === undefined) throw new Error('kamailio has no pid');
        let current = kamailio;
        let earlierLogs = '';
        return {
          udpPort: sipPort,
          tcpPort: sipPort,
          tlsPort,
          domain,
          dir,
          dbPath,
          get pid() {
            return current.child.pid as number;
          },
          caCertPem,
          log: () => earlierLogs + current.stderr(),
          waitForLog: (match, ms) => waitForLine(current, match, ms, 'stderr'),
          stop: async () => {
            await stopProcess(current);
            rmSync(dir, { recursive: true, force: true });
          },
          kill: (signal = 'SIGTERM') => stopProcess(current, signal),
          startAgain: async () => {
            if (current.child.exitCode === null && current.child.signalCode === null) throw new Error('kamailio is still running');
            earlierLogs += current.stderr();
            current = start('kamailio', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
            const again = await answersOptions(current, sipPort, domain);
            if (again !== 'ready') throw new Error(`kamailio did not start again (${again}):\n${current.stderr().slice(-4000)}`);
          },
        };
      }
      await stopProcess(kamailio);
      if (ready === 'exited' && /Address already in use/.test(kamailio.stderr()) && attempt < 3) continue;
      throw new Error(`kamailio did not start (${ready}):\n${kamailio.stderr().slice(-4000)}`);
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

function runWithStdin(file: string, args: readonly string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, (error) => (error ? reject(error) : resolve()));
    child.stdin?.end(input);
  });
}

/**
 * Sends OPTIONS sip:<domain> over UDP every 50 ms until a 200 comes back ('ready'), the
 * process exits ('exited') or STARTUP_MS pass ('timeout').
 */
function answersOptions(kamailio: Tracked, port: number, domain: string): Promise<'ready' | 'exited' | 'timeout'> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    let settled = false;
    const finish = (outcome: 'ready' | 'exited' | 'timeout'): void => {
      if (settled) return;
      settled = true;
      clearInterval(ticker);
      clearTimeout(deadline);
      socket.close();
      resolve(outcome);
    };
    const ticker = setInterval(() => probe(), 50);
    const deadline = setTimeout(() => finish('timeout'), STARTUP_MS);
    void kamailio.exited.then(() => finish('exited'));
    socket.on('message', (data) => {
      if (data.toString('latin1').startsWith('SIP/2.0 200 ')) finish('ready');
    });
    socket.on('error', () => undefined); // ICMP port unreachable while Kamailio is not yet bound
    let sequence = 0;
    const probe = (): void => {
      if (settled) return;
      const { port: localPort } = socket.address();
      sequence++;
      const request =
        `OPTIONS sip:${domain} SIP/2.0\r\n` +
        `Via: SIP/2.0/UDP 127.0.0.1:${localPort};rport;branch=z9hG4bK-ready-${process.pid}-${sequence}\r\n` +
        'Max-Forwards: 70\r\n' +
        `From: <sip:probe@127.0.0.1>;tag=ready${sequence}\r\n` +
        `To: <sip:${domain}>\r\n` +
        `Call-ID: ready-${process.pid}-${Date.now()}-${sequence}\r\n` +
        'CSeq: 1 OPTIONS\r\n' +
        'Content-Length: 0\r\n\r\n';
      socket.send(request, port, '127.0.0.1');
    };
    socket.bind(0, '127.0.0.1', () => probe());
  });
}

/** SIGTERM (or `signal`) to the main process (it stops its workers), SIGKILL to the group after 2 s. */
async function stopProcess(proc: Tracked, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const { child } = proc;
  const pid = child.pid;
  if (child.exitCode === null && child.signalCode === null) {
    const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), 2000);
    child.kill(signal);
    await proc.exited;
    clearTimeout(timer);
  }
  killGroup(pid, 'SIGKILL'); // any worker left behind
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone
  }
}
