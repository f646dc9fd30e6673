/**
 * `sipnote keys …` end to end, in-process with injected streams, against the real OS keychain
 * (run with `sh scripts/with-secret-service.sh npx vitest run test/unit/keys-command.test.ts`).
 * What it prints is checked with openssl where openssl can check it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultDataDir, resolveDataDir } from '../../main/cli/data-dir.js';
import { keysCommand, parseKeysArgs, type KeysDependencies } from '../../main/cli/keys-command.js';
import { UsageError } from '../../main/cli/usage-error.js';
import { createIdentity, exportCertificatePem as certificatePem } from '../../main/security/certificates.js';
import { forgetIdentity, readIdentityRecord } from '../../main/security/identity-store.js';
import { KeychainUnavailableError, OsKeychain, type Keychain } from '../../main/security/keychain.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';
import { unavailableKeychain } from '../support/keychains.js';
import { opensslFingerprint } from '../support/openssl.js';
import { runWithMemoryIo, type CommandRun } from '../support/memory-io.js';
import { keychainGate } from '../support/secret-service.js';
import { throwawayIdentity } from '../support/throwaway-identity.js';

const gate = await keychainGate('test/unit/keys-command.test.ts');
const keychain = new OsKeychain({ timeoutMs: 15_000 });

function run(argv: string[], dependencies: KeysDependencies = { keychain }): Promise<CommandRun> {
  return runWithMemoryIo((io) => keysCommand(parseKeysArgs(argv), io, dependencies));
}

const cleanups = cleanupsAfterEach();

/** A data dir and an AoR whose identity (and keychain entry) is forgotten after the test. */
function account(name: string): { dataDir: string; aor: string } {
  return throwawayIdentity(cleanups, keychain, name, 'sipnote-keys-');
}

describe.skipIf(gate.skip)('sipnote keys with the OS keychain', () => {
  it('init, show, export-cert and forget, with openssl agreeing on the fingerprint', async () => {
    const { dataDir, aor } = account('alice');
    const init = await run(['init', '--aor', aor, '--data-dir', dataDir]);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    expect(init.stdout).toContain(`created the identity of ${aor} (ECDSA-P256)`);
    expect(init.stdout).toMatch(/private key: in the (Secret Service|macOS Keychain|Windows Credential Manager) \(service org\.sipnote\.keys\), account sip:/);

    const show = await run(['show', '--aor', aor, '--data-dir', dataDir, '--json']);
    expect(show.code).toBe(0);
    const view = JSON.parse(show.stdout) as { aor: string; fingerprintSha256: string; keyAlgorithm: string; sipUris: string[]; selfIssued: boolean; key: { storage: string; present: boolean; account: string } };
    expect(view).toMatchObject({ aor, keyAlgorithm: 'ECDSA-P256', sipUris: [aor], selfIssued: true, key: { storage: 'keychain', present: true } });
    expect(init.stdout).toContain(`SHA-256 fingerprint: ${view.fingerprintSha256}`);

    const exported = await run(['export-cert', '--aor', aor, '--data-dir', dataDir]);
    expect(exported.code).toBe(0);
    expect(exported.stdout).toMatch(/^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n$/);
    expect(opensslFingerprint(exported.stdout)).toBe(view.fingerprintSha256);
    const subject = execFileSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName'], { input: exported.stdout, encoding: 'utf8' });
    expect(subject).toContain(`URI:${aor}`);

    const text = await run(['show', '--aor', aor, '--data-dir', dataDir]);
    expect(text.stdout).toContain(`SHA-256 fingerprint: ${view.fingerprintSha256}`);
    expect(text.stdout).toContain('(self-signed)');
    expect(text.stdout).toMatch(/private key: +in .*\(present\)/);

    const forget = await run(['forget', '--aor', aor, '--data-dir', dataDir]);
    expect(forget.code).toBe(0);
    expect(await keychain.get(view.key.account)).toBeUndefined();
    const gone = await run(['show', '--aor', aor, '--data-dir', dataDir]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('has no identity');
    expect((await run(['forget', '--aor', aor, '--data-dir', dataDir])).code).toBe(1);
  });

  it('init --rsa makes an RSA-2048 identity; a second init is refused with exit 1', async () => {
    const { dataDir, aor } = account('bob');
    const init = await run(['init', '--aor', aor, '--rsa', '--data-dir', dataDir, '--json']);
    expect(init.code).toBe(0);
    expect(JSON.parse(init.stdout)).toMatchObject({ created: true, aor, keyAlgorithm: 'RSA-2048' });
    const again = await run(['init', '--aor', aor, '--data-dir', dataDir, '--json']);
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ error: 'IdentityError', code: 'exists' });
    expect(again.stderr).toContain('already has an identity');
  });

  it('import --cert --key takes an OpenSSL-made identity; show reports the key missing when it is deleted', async () => {
    const { dataDir, aor } = account('carol');
    const dir = tempDir(cleanups, 'sipnote-import-');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=Carol', '-days', '30', '-addext', `subjectAltName=URI:${aor}`], { stdio: 'ignore' });
    const imported = await run(['import', '--aor', aor, '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'), '--data-dir', dataDir]);
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    expect(imported.stdout).toContain(`imported the identity of ${aor}`);
    const exported = await run(['export-cert', '--aor', aor, '--data-dir', dataDir]);
    expect(exported.stdout).toBe(readFileSync(join(dir, 'cert.pem'), 'utf8'));
    const show = JSON.parse((await run(['show', '--aor', aor, '--data-dir', dataDir, '--json'])).stdout) as { fingerprintSha256: string; subject: string; key: { account: string } };
    expect(show.fingerprintSha256).toBe(opensslFingerprint(exported.stdout));
    expect(show.subject).toBe('CN=Carol');

    await keychain.delete(show.key.account);
    const missing = await run(['show', '--aor', aor, '--data-dir', dataDir]);
    expect(missing.code).toBe(0);
    expect(missing.stdout).toContain('(MISSING)');

    const noFile = await run(['import', '--aor', `sip:x-${randomBytes(3).toString('hex')}@example.com`, '--cert', join(dir, 'nope.pem'), '--key', join(dir, 'key.pem'), '--data-dir', dataDir]);
    expect(noFile.code).toBe(1);
    expect(noFile.stderr).toContain('cannot read');
  });

  it('uses $XDG_DATA_HOME/sipnote when no --data-dir is given', async () => {
    const xdg = tempDir(cleanups, 'sipnote-xdg-');
    const aor = `sip:xdg-${randomBytes(4).toString('hex')}@example.com`;
    cleanups.push(() => forgetIdentity(join(xdg, 'sipnote'), aor, { keychain }).catch(() => false));
    const env = { ...process.env, XDG_DATA_HOME: xdg };
    expect((await run(['init', '--aor', aor], { keychain, env })).code).toBe(0);
    expect(await readIdentityRecord(join(xdg, 'sipnote'), aor)).toBeDefined();
    if (process.platform !== 'win32') expect(statSync(join(xdg, 'sipnote')).mode & 0o777).toBe(0o700);
  });
});

describe('sipnote keys without a keychain', () => {
  const unavailable = unavailableKeychain('the Secret Service (service org.sipnote.keys)', 'DBus error: Failed to connect to socket /nowhere', 'linux');

  it('init fails with exit 1 and says how to get a keychain; nothing is written', async () => {
    const dataDir = join(tempDir(cleanups, 'sipnote-nokc-'), 'data');
    const result = await run(['init', '--aor', 'sip:alice@example.com', '--data-dir', dataDir, '--json'], { keychain: unavailable });
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: 'KeychainUnavailableError', code: 'no-service' });
    expect(result.stderr).toContain('gnome-keyring-daemon');
    expect(result.stderr).toContain('dbus-run-session');
    expect(existsSync(dataDir)).toBe(false);
  });

  it('--passphrase-key keeps the key in a PBES2 file (passphrase from SIPNOTE_KEY_PASSPHRASE) that openssl opens', async () => {
    const dataDir = join(tempDir(cleanups, 'sipnote-pp-'), 'data');
    const aor = 'sip:offline@example.com';
    const env = { ...process.env, SIPNOTE_KEY_PASSPHRASE: 'a passphrase for tests' };
    const init = await run(['init', '--aor', aor, '--passphrase-key', '--data-dir', dataDir, '--json'], { keychain: unavailable, env, pbkdf2Iterations: 2000 });
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    const view = JSON.parse(init.stdout) as { key: { storage: string; file: string } };
    expect(view.key.storage).toBe('passphrase-file');
    execFileSync('openssl', ['pkcs8', '-in', view.key.file, '-passin', 'pass:a passphrase for tests', '-out', '/dev/null']);
    const show = JSON.parse((await run(['show', '--aor', aor, '--data-dir', dataDir, '--json'], { keychain: unavailable, env })).stdout) as { key: { present: boolean } };
    expect(show.key.present).toBe(true);
    expect((await run(['forget', '--aor', aor, '--data-dir', dataDir], { keychain: unavailable, env })).code).toBe(0);
  });

  it('import opens an encrypted key with SIPNOTE_IMPORT_PASSPHRASE, and re-encrypts it under SIPNOTE_KEY_PASSPHRASE', async () => {
    const dataDir = join(tempDir(cleanups, 'sipnote-ppi-'), 'data');
    const dir = tempDir(cleanups, 'sipnote-ppi-in-');
    const aor = 'sip:importer@example.com';
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-passout', 'pass:the import passphrase', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=Importer', '-days', '30', '-addext', `subjectAltName=URI:${aor}`], { stdio: 'ignore' });
    expect(readFileSync(join(dir, 'key.pem'), 'utf8')).toContain('ENCRYPTED PRIVATE KEY');
    const argv = ['import', '--aor', aor, '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem'), '--passphrase-key', '--data-dir', dataDir];
    const base: NodeJS.ProcessEnv = { ...process.env, SIPNOTE_KEY_PASSPHRASE: 'the new key-file passphrase' };
    delete base.SIPNOTE_IMPORT_PASSPHRASE;
    const withoutImportPassphrase = await run(argv, { keychain: unavailable, env: base, pbkdf2Iterations: 2000 });
    expect(withoutImportPassphrase.code).toBe(1);
    expect(withoutImportPassphrase.stderr).toContain('SIPNOTE_IMPORT_PASSPHRASE');
    const imported = await run(argv, { keychain: unavailable, env: { ...base, SIPNOTE_IMPORT_PASSPHRASE: 'the import passphrase' }, pbkdf2Iterations: 2000 });
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    const record = await readIdentityRecord(dataDir, aor);
    if (record?.key.storage !== 'passphrase-file') throw new Error('expected a passphrase file');
    execFileSync('openssl', ['pkcs8', '-in', record.key.path, '-passin', 'pass:the new key-file passphrase', '-out', '/dev/null']);
  });

  it('--passphrase-key without SIPNOTE_KEY_PASSPHRASE and without a terminal fails instead of hanging', async () => {
    const dataDir = join(tempDir(cleanups, 'sipnote-pp-'), 'data');
    const env = { ...process.env };
    delete env.SIPNOTE_KEY_PASSPHRASE;
    const result = await run(['init', '--aor', 'sip:alice@example.com', '--passphrase-key', '--data-dir', dataDir], { keychain: unavailable, env });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('SIPNOTE_KEY_PASSPHRASE');
    expect(existsSync(dataDir)).toBe(false);
  });

  it('trust pins a contact certificate, refuses a different one until --replace, and forget --peer unpins', async () => {
    const dataDir = join(tempDir(cleanups, 'sipnote-trust-'), 'data');
    const dir = tempDir(cleanups, 'sipnote-certs-');
    const peer = 'sip:bob@example.com';
    const first = await createIdentity({ aor: peer });
    const second = await createIdentity({ aor: peer });
    writeFileSync(join(dir, 'first.pem'), certificatePem(first.certificateDer));
    writeFileSync(join(dir, 'second.der'), second.certificateDer);
    const options = { keychain: unavailable };

    const pinned = await run(['trust', '--peer', peer, '--cert', join(dir, 'first.pem'), '--data-dir', dataDir], options);
    expect(pinned.code).toBe(0);
    expect(pinned.stdout).toContain(`pinned: ${peer}\nSHA-256 fingerprint: ${first.info.fingerprintSha256}`);
    const file = join(dataDir, 'contacts', 'sip%3Abob@example.com.pem');
    expect(readFileSync(file, 'utf8')).toContain(certificatePem(first.certificateDer));
    expect(opensslFingerprint(readFileSync(file, 'utf8'))).toBe(first.info.fingerprintSha256);
    if (process.platform !== 'win32') expect(statSync(file).mode & 0o777).toBe(0o600);

    expect((await run(['trust', '--peer', 'sip:bob@EXAMPLE.com', '--cert', join(dir, 'first.pem'), '--data-dir', dataDir], options)).stdout).toContain('already pinned');

    const conflict = await run(['trust', '--peer', peer, '--cert', join(dir, 'second.der'), '--data-dir', dataDir, '--json'], options);
    expect(conflict.code).toBe(1);
    expect(JSON.parse(conflict.stdout)).toMatchObject({ code: 'conflict', pinned: first.info.fingerprintSha256, offered: second.info.fingerprintSha256 });
    expect(conflict.stderr).toContain('--replace');
    const stillFirst = JSON.parse((await run(['show', '--peer', peer, '--data-dir', dataDir, '--json'], options)).stdout) as { fingerprintSha256: string };
    expect(stillFirst.fingerprintSha256).toBe(first.info.fingerprintSha256);

    const replaced = await run(['trust', '--peer', peer, '--cert', join(dir, 'second.der'), '--replace', '--data-dir', dataDir], options);
    expect(replaced.code).toBe(0);
    expect(replaced.stdout).toContain('replaced');
    expect((await run(['show', '--peer', peer, '--data-dir', dataDir], options)).stdout).toContain(second.info.fingerprintSha256);

    const mismatch = await run(['trust', '--peer', 'sip:mallory@example.com', '--cert', join(dir, 'first.pem'), '--data-dir', dataDir], options);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toContain(`the certificate is for ${peer}, not sip:mallory@example.com`);

    expect((await run(['forget', '--peer', peer, '--data-dir', dataDir], options)).code).toBe(0);
    expect(existsSync(file)).toBe(false);
    expect((await run(['show', '--peer', peer, '--data-dir', dataDir], options)).code).toBe(1);
  });
});

describe('parseKeysArgs', () => {
  it('parses each action', () => {
    expect(parseKeysArgs(['init', '--aor', 'sip:Alice@Example.com;transport=tcp'])).toEqual({ action: 'init', aor: 'sip:Alice@example.com', algorithm: 'ECDSA-P256', passphraseKey: false, json: false });
    expect(parseKeysArgs(['init', '--aor', 'sip:a@b.c', '--rsa', '--passphrase-key', '--data-dir', 'd', '--json'])).toEqual({ action: 'init', aor: 'sip:a@b.c', algorithm: 'RSA-2048', passphraseKey: true, json: true, dataDir: 'd' });
    expect(parseKeysArgs(['show', '--peer', 'sip:b@c.d'])).toMatchObject({ action: 'show', aor: 'sip:b@c.d', subject: 'contact' });
    expect(parseKeysArgs(['export-cert', '--aor', 'sips:a@b.c'])).toEqual({ action: 'export-cert', aor: 'sips:a@b.c', json: false });
    expect(parseKeysArgs(['import', '--aor', 'sip:a@b.c', '--cert', 'c.pem', '--key', 'k.pem'])).toMatchObject({ action: 'import', certFile: 'c.pem', keyFile: 'k.pem' });
    expect(parseKeysArgs(['trust', '--aor', 'sip:me@b.c', '--peer', 'sip:b@c.d', '--cert', 'c.pem', '--replace'])).toMatchObject({ action: 'trust', peer: 'sip:b@c.d', replace: true });
    expect(parseKeysArgs(['forget', '--aor', 'sip:a@b.c'])).toMatchObject({ action: 'forget', subject: 'identity' });
  });

  it.each([
    [[], /needs an action/],
    [['frobnicate'], /unknown keys action/],
    [['init'], /--aor is required/],
    [['init', '--aor', 'tel:+1555'], /sip: or sips:/],
    [['init', '--aor', 'sip:a@b.c', 'extra'], /unexpected argument extra/],
    [['export-cert', '--aor', 'sip:a@b.c', '--rsa'], /does not take --rsa/],
    // import --cert without --key: a usage error only once the file is read and is no PKCS#12
    // (test/interop/pkcs12-cli.test.ts).
    [['trust', '--peer', 'sip:b@c.d'], /--cert is required/],
    [['show', '--aor', 'sip:a@b.c', '--peer', 'sip:b@c.d'], /either --aor/],
    [['forget'], /either --aor/],
  ] as Array<[string[], RegExp]>)('%j is a usage error', (argv, message) => {
    expect(() => parseKeysArgs(argv)).toThrow(UsageError);
    expect(() => parseKeysArgs(argv)).toThrow(message);
  });

  it('leaves unknown options to parseArgs (main.ts turns them into exit 2)', () => {
    expect(() => parseKeysArgs(['init', '--aor', 'sip:a@b.c', '--bogus'])).toThrow(expect.objectContaining({ code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' }));
  });
});

describe('data dir', () => {
  it('is $XDG_DATA_HOME/sipnote, else ~/.local/share/sipnote; relative XDG_DATA_HOME is ignored', () => {
    expect(defaultDataDir({ XDG_DATA_HOME: '/x/data' }, 'linux', '/home/u')).toBe('/x/data/sipnote');
    expect(defaultDataDir({}, 'linux', '/home/u')).toBe('/home/u/.local/share/sipnote');
    expect(defaultDataDir({ XDG_DATA_HOME: 'relative' }, 'linux', '/home/u')).toBe('/home/u/.local/share/sipnote');
    expect(defaultDataDir({}, 'darwin', '/Users/u')).toBe('/Users/u/Library/Application Support/sipnote');
    expect(resolveDataDir('some/dir', {})).toBe(join(process.cwd(), 'some/dir'));
  });
});
