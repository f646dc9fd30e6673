/**
 * `sipnote keys import --cert FILE.p12` end to end: files made by `openssl pkcs12 -export`,
 * imported by the real CLI (node bin/sipnote.js, built by tsc -b) into a fresh data dir with
 * the private key in the real OS keychain, then `keys show` printing the fingerprint that
 * `openssl x509 -fingerprint -sha256` prints. Run it with a keychain:
 *
 *   sh scripts/with-secret-service.sh npx vitest run test/interop/pkcs12-cli.test.ts
 *
 * The passphrase comes from SIPNOTE_IMPORT_PASSPHRASE, from the hidden prompt (in-process,
 * with a terminal-like stdin), or is not needed (an empty one is tried first).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { keysCommand, parseKeysArgs } from '../../main/cli/keys-command.js';
import { OsKeychain } from '../../main/security/keychain.js';
import { runCleanups, tempDir, type Cleanups } from '../support/cleanups.js';
import { unavailableKeychain } from '../support/keychains.js';
import { runWithMemoryIo, type CommandRun } from '../support/memory-io.js';
import { opensslFingerprint } from '../support/openssl.js';
import { exitWithin, startSipnote, stopAll } from '../support/processes.js';
import { keychainGate } from '../support/secret-service.js';
import { throwawayIdentity } from '../support/throwaway-identity.js';

const gate = await keychainGate('test/interop/pkcs12-cli.test.ts');
const keychain = new OsKeychain({ timeoutMs: 15_000 });
const PASS = 'p12 passphrase';

const cleanups: Cleanups = [];
afterEach(async () => {
  await stopAll();
  await runCleanups(cleanups);
});

/** A data dir and an AoR whose identity (and keychain entry) is forgotten after the test. */
function account(name: string): { dataDir: string; aor: string } {
  return throwawayIdentity(cleanups, keychain, name, 'sipnote-p12-data-');
}

/** A key and a certificate for `aor` made by openssl in `dir`, exported as `name` with `passphrase` and `extra` args. */
function opensslP12(dir: string, aor: string, name: string, passphrase: string, options: { rsa?: boolean; extra?: readonly string[] } = {}): string {
  const newkey = options.rsa ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  execFileSync('openssl', ['req', '-x509', ...newkey, '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-subj', '/CN=P12 user', '-days', '30', '-addext', `subjectAltName=URI:${aor}`], { cwd: dir, stdio: 'ignore' });
  execFileSync('openssl', ['pkcs12', '-export', '-inkey', 'key.pem', '-in', 'cert.pem', '-out', name, '-passout', `pass:${passphrase}`, ...(options.extra ?? [])], { cwd: dir, stdio: 'ignore' });
  return join(dir, name);
}

/** Runs the real CLI to its end, with stdin closed (no terminal to ask on). */
async function sipnote(args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const base = { ...process.env };
  delete base.SIPNOTE_IMPORT_PASSPHRASE;
  const proc = startSipnote(args, { env: { ...base, ...env } });
  proc.child.stdin?.end();
  const code = await exitWithin(proc, 30_000);
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}

describe.skipIf(gate.skip)('sipnote keys import of a PKCS#12 file, with the OS keychain', () => {
  it.each([
    ['EC P-256, OpenSSL 3 defaults', 'alice.p12', {}],
    ['RSA-2048, -legacy, named .pfx', 'alice.pfx', { rsa: true, extra: ['-legacy'] }],
    ['EC P-256 in a file without a .p12 name (found by content)', 'alice-identity.bin', {}],
  ] as Array<[string, string, { rsa?: boolean; extra?: string[] }]>)('%s: import, then keys show prints the fingerprint openssl prints', async (_, name, options) => {
    const { dataDir, aor } = account('alice');
    const dir = tempDir(cleanups, 'sipnote-p12-');
    const file = opensslP12(dir, aor, name, PASS, options);

    const imported = await sipnote(['keys', 'import', '--aor', aor, '--cert', file, '--data-dir', dataDir], { SIPNOTE_IMPORT_PASSPHRASE: PASS });
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    expect(imported.stdout).toContain(`imported the identity of ${aor} (${options.rsa ? 'RSA-2048' : 'ECDSA-P256'})`);
    expect(imported.stdout).toMatch(/private key: in .*, account /);

    const expected = opensslFingerprint(readFileSync(join(dir, 'cert.pem'), 'utf8'));
    const shown = await sipnote(['keys', 'show', '--aor', aor, '--data-dir', dataDir]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`SHA-256 fingerprint: ${expected}`);
    expect(shown.stdout).toMatch(/private key: .*\(present\)/);
    const json = JSON.parse((await sipnote(['keys', 'show', '--aor', aor, '--data-dir', dataDir, '--json'])).stdout) as { fingerprintSha256: string; key: { storage: string; present: boolean } };
    expect(json).toMatchObject({ fingerprintSha256: expected, key: { storage: 'keychain', present: true } });
    // The certificate that contacts get is the one in the file.
    expect((await sipnote(['keys', 'export-cert', '--aor', aor, '--data-dir', dataDir])).stdout).toBe(readFileSync(join(dir, 'cert.pem'), 'utf8'));
  });

  it('keeps only the end-entity certificate of a file with a CA chain, and says so', async () => {
    const { dataDir, aor } = account('chain');
    const dir = tempDir(cleanups, 'sipnote-p12-');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=Corporate CA', '-days', '30'], { cwd: dir, stdio: 'ignore' });
    const file = opensslP12(dir, aor, 'with-chain.p12', PASS, { extra: ['-certfile', 'ca.pem'] });
    const imported = await sipnote(['keys', 'import', '--aor', aor, '--cert', file, '--data-dir', dataDir, '--json'], { SIPNOTE_IMPORT_PASSPHRASE: PASS });
    expect(imported.code, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ imported: true, aor, fingerprintSha256: opensslFingerprint(readFileSync(join(dir, 'cert.pem'), 'utf8')), otherCertificates: 1 });
  });

  it('a file exported with an empty passphrase imports without asking', async () => {
    const { dataDir, aor } = account('empty');
    const dir = tempDir(cleanups, 'sipnote-p12-');
    const file = opensslP12(dir, aor, 'empty.p12', '');
    const imported = await sipnote(['keys', 'import', '--aor', aor, '--cert', file, '--data-dir', dataDir]);
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
  });

  it('asks for the passphrase on the terminal with the hidden prompt', async () => {
    const { dataDir, aor } = account('prompt');
    const dir = tempDir(cleanups, 'sipnote-p12-');
    const file = opensslP12(dir, aor, 'prompt.p12', PASS);
    const stdin = Object.assign(new PassThrough(), { isTTY: true });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    let answered = false;
    stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
      // Type the passphrase once the question is on screen (an event, not a sleep); the
      // question is written just before readline starts waiting for the answer, hence setImmediate.
      if (!answered && err.includes('Passphrase of ')) {
        answered = true;
        setImmediate(() => stdin.write(`${PASS}\r`));
      }
    });
    const code = await keysCommand(parseKeysArgs(['import', '--aor', aor, '--cert', file, '--data-dir', dataDir]), { stdin, stdout, stderr }, { keychain, env: {} });
    expect(err).toContain(`Passphrase of ${file}: `);
    expect(err).not.toContain(PASS);
    expect(code).toBe(0);
    expect(out).toContain(`SHA-256 fingerprint: ${opensslFingerprint(readFileSync(join(dir, 'cert.pem'), 'utf8'))}`);
  });

  it('refuses a wrong passphrase, a missing one, a certificate for another AoR, and stores nothing', async () => {
    const { dataDir, aor } = account('refused');
    const dir = tempDir(cleanups, 'sipnote-p12-');
    const file = opensslP12(dir, aor, 'refused.p12', PASS);

    const wrong = await sipnote(['keys', 'import', '--aor', aor, '--cert', file, '--data-dir', dataDir, '--json'], { SIPNOTE_IMPORT_PASSPHRASE: 'not it' });
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout)).toMatchObject({ error: 'Pkcs12Error', code: 'bad-passphrase' });
    expect(wrong.stderr).toMatch(/wrong passphrase for the PKCS#12 file/);

    const missing = await sipnote(['keys', 'import', '--aor', aor, '--cert', file, '--data-dir', dataDir]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('set SIPNOTE_IMPORT_PASSPHRASE');

    const other = `sip:someone-else-${randomBytes(3).toString('hex')}@example.com`;
    const mismatch = await sipnote(['keys', 'import', '--aor', other, '--cert', file, '--data-dir', dataDir, '--json'], { SIPNOTE_IMPORT_PASSPHRASE: PASS });
    expect(mismatch.code).toBe(1);
    expect(JSON.parse(mismatch.stdout)).toMatchObject({ error: 'IdentityError', code: 'aor-mismatch' });

    expect(existsSync(join(dataDir, 'identities'))).toBe(false);
    expect((await sipnote(['keys', 'show', '--aor', aor, '--data-dir', dataDir])).code).toBe(1);
  });

  it('reports a truncated or random .p12 as unreadable (exit 1), and --key next to a PKCS#12 file as a usage error (exit 2)', async () => {
    const { dataDir, aor } = account('broken');
    const dir = tempDir(cleanups, 'sipnote-p12-');
    const file = opensslP12(dir, aor, 'whole.p12', PASS);
    writeFileSync(join(dir, 'truncated.p12'), readFileSync(file).subarray(0, 300));
    writeFileSync(join(dir, 'random.pfx'), randomBytes(2000));

    const truncated = await sipnote(['keys', 'import', '--aor', aor, '--cert', join(dir, 'truncated.p12'), '--data-dir', dataDir, '--json'], { SIPNOTE_IMPORT_PASSPHRASE: PASS });
    expect(truncated.code).toBe(1);
    expect(JSON.parse(truncated.stdout)).toMatchObject({ error: 'Pkcs12Error', code: 'malformed' });
    expect(truncated.stderr).toContain('truncated');

    const random = await sipnote(['keys', 'import', '--aor', aor, '--cert', join(dir, 'random.pfx'), '--data-dir', dataDir, '--json']);
    expect(random.code).toBe(1);
    expect(JSON.parse(random.stdout)).toMatchObject({ error: 'Pkcs12Error', code: 'malformed' });

    const withKey = await sipnote(['keys', 'import', '--aor', aor, '--cert', file, '--key', join(dir, 'key.pem'), '--data-dir', dataDir]);
    expect(withKey.code).toBe(2);
    expect(withKey.stderr).toContain('is a PKCS#12 file, which holds the key too: leave out --key');

    renameSync(join(dir, 'cert.pem'), join(dir, 'cert.crt'));
    const noKey = await sipnote(['keys', 'import', '--aor', aor, '--cert', join(dir, 'cert.crt'), '--data-dir', dataDir]);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('--key is required (unless --cert is a PKCS#12 .p12/.pfx file)');
  });
});

describe('sipnote keys import of a PKCS#12 file, without a keychain', () => {
  const unavailable = unavailableKeychain('the Secret Service (service org.sipnote.keys)', 'DBus error: Failed to connect to socket /nowhere', 'linux');

  function run(argv: string[], env: NodeJS.ProcessEnv): Promise<CommandRun> {
    return runWithMemoryIo((io) => keysCommand(parseKeysArgs(argv), io, { keychain: unavailable, env, pbkdf2Iterations: 2000 }));
  }

  it('--passphrase-key re-encrypts the key from the .p12 into a PBES2 file that openssl opens; a second import is refused before any passphrase is used', async () => {
    const dataDir = join(tempDir(cleanups, 'sipnote-p12-pp-'), 'data');
    const dir = tempDir(cleanups, 'sipnote-p12-');
    const aor = 'sip:offline-p12@example.com';
    const file = opensslP12(dir, aor, 'offline.p12', PASS, { extra: ['-legacy'] });
    const env = { SIPNOTE_IMPORT_PASSPHRASE: PASS, SIPNOTE_KEY_PASSPHRASE: 'the new key-file passphrase' };
    const imported = await run(['import', '--aor', aor, '--cert', file, '--passphrase-key', '--data-dir', dataDir, '--json'], env);
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    const view = JSON.parse(imported.stdout) as { fingerprintSha256: string; key: { storage: string; file: string } };
    expect(view.fingerprintSha256).toBe(opensslFingerprint(readFileSync(join(dir, 'cert.pem'), 'utf8')));
    expect(view.key.storage).toBe('passphrase-file');
    const publicFromStored = execFileSync('openssl', ['pkey', '-in', view.key.file, '-passin', 'pass:the new key-file passphrase', '-pubout'], { encoding: 'utf8' });
    const publicFromCertificate = execFileSync('openssl', ['x509', '-in', join(dir, 'cert.pem'), '-noout', '-pubkey'], { encoding: 'utf8' });
    expect(publicFromStored).toBe(publicFromCertificate);

    const again = await run(['import', '--aor', aor, '--cert', file, '--passphrase-key', '--data-dir', dataDir, '--json'], {});
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ error: 'IdentityError', code: 'exists' });
    expect(again.stderr).not.toContain('passphrase is needed');
  });
});

