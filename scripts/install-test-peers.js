#!/usr/bin/env node
// Installs the Debian packages the test suite talks to (real peers, not mocks), when missing.
// Run by `npm test` (pretest). Needs root and apt-get; says what it installs and why.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * What the tests need -> the Debian package that provides it, and what it is for. A package
 * counts as present when dpkg says it is installed; `command` (or `file`, for packages that
 * add no command) is what the tests use, and is checked after installing.
 */
const PEERS = [
  { command: 'sipp', pkg: 'sip-tester', why: 'SIP interop tests (sipp UAC/UAS scenarios)' },
  { command: 'openssl', pkg: 'openssl', why: 'S/MIME interop tests (openssl cms) and test certificates' },
  { command: 'dnsmasq', pkg: 'dnsmasq-base', why: 'RFC 3263 tests against a real resolver on loopback' },
  { command: 'kamailio', pkg: 'kamailio', why: 'the tested server deployment (deploy/kamailio)' },
  { command: 'kamailio', pkg: 'kamailio-sqlite-modules', why: 'Kamailio users, registrations and msilo in SQLite' },
  { command: 'kamailio', pkg: 'kamailio-tls-modules', why: 'Kamailio over TLS' },
  { command: 'sqlite3', pkg: 'sqlite3', why: 'creating the Kamailio database' },
  { command: 'dbus-run-session', pkg: 'dbus-daemon', why: 'a D-Bus session for the Secret Service in tests' },
  { command: 'gnome-keyring-daemon', pkg: 'gnome-keyring', why: 'a real Secret Service (OS keychain) in tests' },
  { command: 'secret-tool', pkg: 'libsecret-tools', why: 'checking what the tests put in the Secret Service' },
  { command: 'baresip', pkg: 'baresip-core', why: 'interop with an independent user agent through Kamailio' },
  { command: 'chromium', pkg: 'chromium', why: 'end-to-end tests of the renderer in a real browser' },
];

const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
const usable = (peer) => (peer.command !== undefined ? has(peer.command) : existsSync(peer.file));
const installed = (pkg) =>
  spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' }).stdout?.trim() === 'install ok installed';
const present = (peer) => (has('dpkg-query') ? installed(peer.pkg) && usable(peer) : usable(peer));

const missing = PEERS.filter((peer) => !present(peer));
if (missing.length === 0) {
  console.log(`test peers present: ${PEERS.map((p) => p.pkg).join(', ')}`);
  process.exit(0);
}

for (const peer of missing) console.log(`installing Debian package ${peer.pkg} (provides ${peer.command ?? peer.file}) for ${peer.why}`);
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
  if (!usable(peer)) {
    console.error(`${peer.pkg} was installed but ${peer.command ?? peer.file} is still missing`);
    process.exit(1);
  }
}
console.log('test peers installed');
