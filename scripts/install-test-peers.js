#!/usr/bin/env node
// Installs the Debian packages the test suite talks to (real peers, not mocks), when missing.
// Run by `npm test` (pretest). Needs root and apt-get; says what it installs and why.
import { execFileSync, spawnSync } from 'node:child_process';

/** command on PATH -> Debian package that provides it, and what the tests use it for. */
const PEERS = [
  { command: 'sipp', pkg: 'sip-tester', why: 'SIP interop tests (sipp UAC/UAS scenarios)' },
  { command: 'openssl', pkg: 'openssl', why: 'S/MIME interop tests (openssl cms)' },
];

const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;

const missing = PEERS.filter((peer) => !has(peer.command));
if (missing.length === 0) {
  console.log(`test peers present: ${PEERS.map((p) => p.command).join(', ')}`);
  process.exit(0);
}

for (const peer of missing) console.log(`installing Debian package ${peer.pkg} (provides ${peer.command}) for ${peer.why}`);
if (process.getuid?.() !== 0 || !has('apt-get')) {
  console.error(
    `cannot install ${missing.map((p) => p.pkg).join(' ')}: run as root on Debian/Ubuntu, ` +
      `or install them yourself: apt-get install -y ${missing.map((p) => p.pkg).join(' ')}`,
  );
  process.exit(1);
}
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing.map((p) => p.pkg)], { stdio: 'inherit', env });
for (const peer of missing) {
  if (!has(peer.command)) {
    console.error(`${peer.pkg} was installed but ${peer.command} is still not on PATH`);
    process.exit(1);
  }
}
console.log('test peers installed');
