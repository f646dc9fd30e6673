/**
 * A real DNS server on loopback for RFC 3263 tests: dnsmasq (Debian dnsmasq-base), started by
 * PID through processes.ts, authoritative for `.test`, with the records given as dnsmasq
 * command-line options (`--srv-host=…`, `--naptr-record=…`, `--host-record=…`).
 */
import { expect } from 'vitest';
import { createDnsResolver, type DnsResolver } from '../../main/sip/dns/dns-resolver.js';
import { freePort, start, type Tracked } from './processes.js';

/**
 * Starts dnsmasq with `records` (command-line options) on 127.0.0.1, authoritative for
 * `.test` (`--local`: unknown names there are NXDOMAIN, not forwarded; there is no upstream).
 * Resolves with a Resolver pointed at it once dnsmasq has said it started and has answered
 * a first query.
 */
export async function startDns(records: readonly string[]): Promise<DnsResolver> {
  return (await startDnsServer(records)).resolver;
}

/** Like startDns, also giving the `127.0.0.1:PORT` address to hand to other programs (`sipnote --dns`). */
export async function startDnsServer(records: readonly string[]): Promise<{ resolver: DnsResolver; address: string }> {
  const port = await freePort();
  const dns = start('dnsmasq', [
    '--no-resolv',
    '--no-hosts',
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--listen-address=127.0.0.1',
    `--port=${port}`,
    '--bind-interfaces',
    '--pid-file', // no PID file: several may run at once
    '--log-facility=-', // log to stderr, where we wait for "started"
    '--local=/test/',
    '--host-record=ready.test,127.0.0.99',
    ...records,
  ]);
  await waitForStderr(dns, (line) => line.includes('started, version'));
  const resolver = createDnsResolver({ servers: [`127.0.0.1:${port}`], timeoutMs: 1000, tries: 2 });
  expect(await resolver.resolve4('ready.test')).toEqual(['127.0.0.99']);
  return { resolver, address: `127.0.0.1:${port}` };
}

/** processes.ts waits on stdout; dnsmasq talks on stderr. Bounded, and fails if it exits. */
function waitForStderr(proc: Tracked, match: (line: string) => boolean, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => proc.stderr().split('\n').some(match);
    if (check()) return resolve();
    const done = (error?: Error): void => {
      clearTimeout(timer);
      proc.child.stderr?.off('data', onData);
      proc.child.off('exit', onExit);
      if (error) reject(error);
      else resolve();
    };
    const onData = (): void => {
      if (check()) done();
    };
    const onExit = (): void => done(new Error(`dnsmasq exited: ${proc.stderr()}`));
    const timer = setTimeout(() => done(new Error(`dnsmasq did not start within ${ms} ms: ${proc.stderr()}`)), ms);
    proc.child.stderr?.on('data', onData);
    proc.child.once('exit', onExit);
  });
}

