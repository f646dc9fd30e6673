/**
 * OsKeychain against the real OS keychain (on Linux a real Secret Service: run this file with
 * `sh scripts/with-secret-service.sh npx vitest run test/unit/keychain.test.ts`), and its
 * errors when there is none, in a child process whose session bus leads nowhere.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterEach, describe, expect, it } from 'vitest';
import {
  KEYCHAIN_SERVICE,
  KeychainUnavailableError,
  MAX_SECRET_BYTES,
  OsKeychain,
  classifyKeychainError,
  howToGetAKeychain,
} from '../../main/security/keychain.js';
import { REPO_ROOT, exitWithin, start, stopAll } from '../support/processes.js';
import { keychainGate } from '../support/secret-service.js';

const gate = await keychainGate('test/unit/keychain.test.ts');
const onLinux = process.platform === 'linux';
const hasSecretTool = onLinux && spawnSync('sh', ['-c', 'command -v secret-tool'], { stdio: 'ignore' }).status === 0;

const keychain = new OsKeychain({ timeoutMs: 15_000 });
const created: string[] = [];
afterEach(async () => {
  for (const account of created.splice(0)) await keychain.delete(account).catch(() => false);
  await stopAll();
});

function newAccount(): string {
  const account = `sip:test-${randomBytes(6).toString('hex')}@example.com#${randomBytes(8).toString('hex')}`;
  created.push(account);
  return account;
}

describe.skipIf(gate.skip)('OsKeychain on the real OS keychain', () => {
  it('is reachable here (a Secret Service on Linux)', () => {
    expect(gate.problem).toBeUndefined();
  });

  it('stores, returns, replaces and deletes a secret; missing accounts give undefined / false', async () => {
    const account = newAccount();
    expect(await keychain.get(account)).toBeUndefined();
    const first = new Uint8Array(randomBytes(138));
    await keychain.set(account, first);
    expect(await keychain.get(account)).toEqual(first);
    const second = new Uint8Array(randomBytes(40));
    await keychain.set(account, second);
    expect(await keychain.get(account)).toEqual(second);
    expect(await keychain.delete(account)).toBe(true);
    expect(await keychain.get(account)).toBeUndefined();
    expect(await keychain.delete(account)).toBe(false);
  });

  it('is binary-safe: every octet value, NUL and invalid UTF-8 included, up to the 2560-octet limit', async () => {
    const account = newAccount();
    const everyOctet = Uint8Array.from({ length: 512 }, (_, i) => (i * 7) % 256);
    await keychain.set(account, everyOctet);
    expect(await keychain.get(account)).toEqual(everyOctet);
    const largest = new Uint8Array(randomBytes(MAX_SECRET_BYTES));
    await keychain.set(account, largest);
    expect(await keychain.get(account)).toEqual(largest);
    await expect(keychain.set(account, new Uint8Array(MAX_SECRET_BYTES + 1))).rejects.toThrow(RangeError);
  });

  it('keeps accounts apart', async () => {
    const [a, b] = [newAccount(), newAccount()];
    await keychain.set(a, Uint8Array.of(1));
    await keychain.set(b, Uint8Array.of(2));
    expect(await keychain.get(a)).toEqual(Uint8Array.of(1));
    await keychain.delete(a);
    expect(await keychain.get(b)).toEqual(Uint8Array.of(2));
  });

  it.skipIf(!hasSecretTool)('files entries in the Secret Service under service org.sipnote.keys, where secret-tool finds them', async () => {
    const account = newAccount();
    const secret = Uint8Array.of(0, 1, 2, 0xff, 0xfe, 0x0a, 0x41);
    await keychain.set(account, secret);
    // secret-tool prints the label and secret on stdout, the attributes on stderr. The search
    // names our account too: other test files add and delete entries of this service at the
    // same time, and `search --all` fails when an item it found is gone before it reads it.
    const search = spawnSync('secret-tool', ['search', '--all', 'service', KEYCHAIN_SERVICE, 'username', account], { encoding: 'latin1' });
    expect(search.status, search.stderr).toBe(0);
    const listing = `${search.stdout}${search.stderr}`;
    expect(listing).toContain(`attribute.service = ${KEYCHAIN_SERVICE}`);
    expect(listing).toContain(`attribute.username = ${account}`);
    const looked = execFileSync('secret-tool', ['lookup', 'service', KEYCHAIN_SERVICE, 'username', account]);
    expect(new Uint8Array(looked)).toEqual(secret);
    await keychain.delete(account);
    const after = spawnSync('secret-tool', ['search', '--all', 'service', KEYCHAIN_SERVICE, 'username', account], { encoding: 'latin1' });
    expect(`${after.stdout}${after.stderr}`).not.toContain(account);
  });
});

/**
 * Runs keychain.ts in a child process with the given environment: the module is transpiled
 * from its source here (it imports nothing but @napi-rs/keyring), so the child tests the code
 * as it is now, not a stale build. Prints the outcome of one `set` as JSON.
 */
async function setInChild(env: NodeJS.ProcessEnv, command: readonly string[] = []): Promise<{ ok?: true; name?: string; reason?: string; message?: string }> {
  const source = readFileSync(join(REPO_ROOT, 'main/security/keychain.ts'), 'utf8');
  const code = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
  const driver = `
    const keychain = new OsKeychain({ timeoutMs: 10000 });
    try {
      await keychain.set('sip:probe@example.com#child', new Uint8Array([1, 2, 3]));
      await keychain.delete('sip:probe@example.com#child');
      console.log(JSON.stringify({ ok: true }));
    } catch (error) {
      console.log(JSON.stringify({ name: error.name, reason: error.reason, message: error.message }));
    }`;
  const node = [process.execPath, '--input-type=module', '-e', `${code}\n${driver}`];
  const [program, ...args] = [...command, ...node] as [string, ...string[]];
  const child = start(program, args, { cwd: REPO_ROOT, env });
  expect(await exitWithin(child, 20_000)).toBe(0);
  const line = child.stdout().trim().split('\n').pop() ?? '';
  return JSON.parse(line) as { ok?: true; name?: string; reason?: string; message?: string };
}

describe.skipIf(!onLinux)('no Secret Service reachable', () => {
  it('a session bus that leads nowhere gives KeychainUnavailableError(no-service) with the how-to, not a fallback', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/sipnote-test-bus' };
    delete env.DISPLAY;
    const outcome = await setInChild(env);
    expect(outcome.ok).toBeUndefined();
    expect(outcome.name).toBe('KeychainUnavailableError');
    expect(outcome.reason).toBe('no-service');
    expect(outcome.message).toContain('/nonexistent/sipnote-test-bus');
    expect(outcome.message).toContain('Secret Service');
    expect(outcome.message).toContain('gnome-keyring-daemon');
    expect(outcome.message).toContain('KeePassXC');
    expect(outcome.message).toContain('dbus-run-session');
    expect(outcome.message).toContain('--passphrase-key');
  });

  it('no session bus at all (no address, no display) is no-service too', async () => {
    const env = { ...process.env };
    delete env.DBUS_SESSION_BUS_ADDRESS;
    delete env.DISPLAY;
    // libdbus would also look for $XDG_RUNTIME_DIR/bus; point that at an empty directory.
    const runtime = mkdtempSync(join(tmpdir(), 'sipnote-nobus-'));
    try {
      const outcome = await setInChild({ ...env, XDG_RUNTIME_DIR: runtime });
      expect(outcome).toMatchObject({ name: 'KeychainUnavailableError', reason: 'no-service' });
    } finally {
      rmSync(runtime, { recursive: true, force: true });
    }
  });

  const hasDbusRunSession = onLinux && spawnSync('sh', ['-c', 'command -v dbus-run-session'], { stdio: 'ignore' }).status === 0;
  it.skipIf(!hasDbusRunSession)('a bus whose Secret Service has no unlocked default keyring gives no-keyring', async () => {
    // A fresh bus; D-Bus activation may start gnome-keyring, which then has no login keyring.
    const home = mkdtempSync(join(tmpdir(), 'sipnote-nokeyring-'));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_RUNTIME_DIR: home, XDG_CONFIG_HOME: join(home, 'config'), XDG_CACHE_HOME: join(home, 'cache') };
      delete env.DISPLAY;
      delete env.DBUS_SESSION_BUS_ADDRESS;
      const outcome = await setInChild(env, ['dbus-run-session', '--']);
      expect(outcome.name).toBe('KeychainUnavailableError');
      expect(['no-keyring', 'no-service']).toContain(outcome.reason);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('classifyKeychainError', () => {
  // Messages observed from @napi-rs/keyring 2.1.2 with gnome-keyring 42 (../shared/notes/crypto.md §1).
  const cases: Array<[string, string]> = [
    ['Platform failure: DBus error: Using X11 for dbus-daemon autolaunch was disabled at compile time, set your DBUS_SESSION_BUS_ADDRESS instead', 'no-service'],
    ['Platform failure: DBus error: Failed to connect to socket /nonexistent/bus: No such file or directory', 'no-service'],
    ["Couldn't access platform storage: Secret Service: no result found", 'no-keyring'],
    ["Couldn't access platform storage: Secret Service: unlock prompt was dismissed", 'locked'],
    ['Something else entirely', 'failed'],
  ];
  it.each(cases)('%s -> %s', (message, reason) => {
    const error = classifyKeychainError(Object.assign(new Error(message), { code: 'GenericFailure' }), 'linux');
    expect(error).toBeInstanceOf(KeychainUnavailableError);
    expect(error.reason).toBe(reason);
    expect(error.detail).toBe(message);
    expect(error.message).toContain(message);
    expect(error.message).toContain('dbus-run-session');
  });

  it('reads the cause chain keyring-rs nests', () => {
    const inner = new Error('Failed to connect to socket /x: No such file or directory');
    expect(classifyKeychainError(new Error('Platform failure', { cause: inner }), 'linux').reason).toBe('no-service');
  });

  it('tells macOS and Windows users what applies to them', () => {
    expect(howToGetAKeychain('darwin')).toContain('macOS Keychain');
    expect(howToGetAKeychain('win32')).toContain('Windows Credential Manager');
    expect(howToGetAKeychain('darwin')).not.toContain('dbus');
  });
});
