/**
 * The whole S/MIME MESSAGE body against `openssl cms` (OpenSSL 3.0), both ways:
 *  (a) what protectMessage makes decrypts with `openssl cms -decrypt` (the peer's key, EC and
 *      RSA, and our own for the sent copy), and the SignedData inside verifies with
 *      `openssl cms -verify`, giving back exactly the signed CPIM entity, signingTime included;
 *  (b) a message built by openssl (the CPIM entity signed with an openssl-made key by
 *      `openssl cms -sign -nodetach -binary -md sha256`, then encrypted to our certificate with
 *      `openssl cms -encrypt -aes-128-gcm`) is accepted by unprotectMessage as encrypted-signed,
 *      also with OpenSSL's own S/MIME (base64) inner entity, without the certificate, to an RSA
 *      certificate, with the default SHA-1 KDF, and in legacy AES-CBC EnvelopedData; an unsigned
 *      AES-CBC body is refused.
 * Files go to a temp dir removed after each test; every openssl run is an execFile with a timeout.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseMimeEntity } from '../../main/im/smime/mime-entity.js';
import { buildMessageEntity, newMessageId, protectMessage, type OurIdentity } from '../../main/im/smime/protect.js';
import { MemoryReplayCache } from '../../main/im/smime/replay-cache.js';
import { unprotectMessage, type UnprotectVerdict } from '../../main/im/smime/unprotect.js';
import { createIdentity, exportCertificatePem, exportPrivateKeyPem, fingerprintSha256, type Identity } from '../../main/security/certificates.js';
import { pemDecode } from '../../main/security/cms/der.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';

const ALICE = 'sip:alice@example.com';
const BOB = 'sip:bob@example.org';

interface Run {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

function openssl(cwd: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, encoding: 'buffer', timeout: 20_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') return reject(error);
      resolve({ code: error ? (error.code as number) : 0, stdout, stderr: stderr.toString('utf8') });
    });
  });
}

async function opensslOk(cwd: string, args: readonly string[]): Promise<Run> {
  const run = await openssl(cwd, args);
  if (run.code !== 0) throw new Error(`openssl ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
  return run;
}

const cleanups = cleanupsAfterEach();
function workDir(): string {
  return tempDir(cleanups, 'sipnote-smime-msg-');
}

let alice: Identity; // ours, P-256
let bob: Identity; // ours, P-256
let bobRsa: Identity; // ours, RSA-2048

beforeAll(async () => {
  [alice, bob, bobRsa] = await Promise.all([
    createIdentity({ aor: ALICE }),
    createIdentity({ aor: BOB }),
    createIdentity({ aor: BOB, algorithm: 'RSA-2048' }),
  ]);
});

const identity = (id: Identity): OurIdentity => ({ certificateDer: id.certificateDer, privateKeyPkcs8: id.privateKeyPkcs8 });

function writeIdentity(dir: string, name: string, id: Identity): void {
  writeFileSync(join(dir, `${name}.pem`), exportCertificatePem(id.certificateDer));
  writeFileSync(join(dir, `${name}.key`), exportPrivateKeyPem(id.privateKeyPkcs8));
}

/** The body of a MIME entity (after the first empty line), as OpenSSL's -decrypt output holds it. */
function entityBody(bytes: Buffer): Buffer {
  const end = bytes.indexOf('\r\n\r\n');
  expect(end).toBeGreaterThan(0);
  return bytes.subarray(end + 4);
}

/** How `openssl cms -cmsout -print` shows a UTCTime: `Mar  4 10:15:30 2025 GMT`. */
function opensslTime(date: Date): string {
  const month = date.toUTCString().slice(8, 11);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${month} ${String(date.getUTCDate()).padStart(2, ' ')} ${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} ${date.getUTCFullYear()} GMT`;
}

describe('(a) protectMessage → openssl cms -decrypt, then -verify', () => {
  for (const [label, peer, includeSignerCertificate] of [
    ['EC peer, signer certificate embedded', () => bob, true],
    ['EC peer, signer certificate left out', () => bob, false],
    ['RSA peer, signer certificate embedded', () => bobRsa, true],
  ] as const) {
    it(label, async () => {
      const dir = workDir();
      writeIdentity(dir, 'bob', peer());
      writeIdentity(dir, 'alice', alice);
      const now = new Date();
      const text = 'Watson, come here - I want to see you. \u2713';
      const sent = await protectMessage({
        text,
        from: ALICE,
        to: BOB,
        now,
        ourIdentity: identity(alice),
        peerCertificateDer: peer().certificateDer,
        includeSignerCertificate,
      });
      writeFileSync(join(dir, 'body.der'), sent.body);

      // The peer decrypts; so do we (the sent copy), to the same bytes.
      await opensslOk(dir, ['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', 'body.der', '-recip', 'bob.pem', '-inkey', 'bob.key', '-out', 'layer2.mime']);
      await opensslOk(dir, ['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', 'body.der', '-recip', 'alice.pem', '-inkey', 'alice.key', '-out', 'self.mime']);
      const layer2 = readFileSync(join(dir, 'layer2.mime'));
      expect(readFileSync(join(dir, 'self.mime')).equals(layer2)).toBe(true);
      expect(layer2.subarray(0, 64).toString('latin1')).toBe('Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\n');
      const printed = (await opensslOk(dir, ['cms', '-cmsout', '-print', '-inform', 'DER', '-in', 'body.der'])).stdout.toString();
      expect(printed).toMatch(/authEnvelopedData|id-smime-ct-authEnvelopedData/);
      expect(printed).toContain('aes-128-gcm');

      writeFileSync(join(dir, 'signed.der'), entityBody(layer2));
      const verifyArgs = ['cms', '-verify', '-binary', '-inform', 'DER', '-in', 'signed.der', '-CAfile', 'alice.pem', '-out', 'layer3.mime'];
      const verified = await opensslOk(dir, includeSignerCertificate ? verifyArgs : [...verifyArgs, '-certfile', 'alice.pem']);
      expect(verified.stderr).toContain('Verification successful');
      const expected = buildMessageEntity({ text, from: ALICE, to: BOB, now: sent.dateTime, messageId: sent.messageId });
      expect(readFileSync(join(dir, 'layer3.mime')).equals(Buffer.from(expected))).toBe(true);

      // signingTime is the same second as the CPIM DateTime.
      const signedPrint = (await opensslOk(dir, ['cms', '-cmsout', '-print', '-inform', 'DER', '-in', 'signed.der'])).stdout.toString();
      expect(signedPrint).toContain('signingTime');
      expect(signedPrint).toContain(`UTCTIME:${opensslTime(sent.dateTime)}`);
    });
  }
});

describe('(b) openssl cms -sign / -encrypt → unprotectMessage', () => {
  /** An openssl-made P-256 signer for sip:alice (its own key and self-signed certificate). */
  async function opensslAlice(dir: string): Promise<{ certificateDer: Uint8Array }> {
    await opensslOk(dir, [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'alice.key', '-out', 'alice.pem',
      '-days', '2', '-subj', '/CN=Alice', '-addext', `subjectAltName=URI:${ALICE}`,
    ]);
    return { certificateDer: pemDecode(readFileSync(join(dir, 'alice.pem'), 'utf8')).der };
  }

  /** The CPIM entity, signed by openssl with alice's key; returns the signed DER (or the S/MIME text with outform SMIME). */
  async function opensslSign(dir: string, text: string, extra: readonly string[] = [], outform = 'DER'): Promise<Buffer> {
    const entity = buildMessageEntity({ text, from: ALICE, to: BOB, now: new Date(Math.floor(Date.now() / 1000) * 1000), messageId: newMessageId() });
    writeFileSync(join(dir, 'layer3.mime'), entity);
    await opensslOk(dir, [
      'cms', '-sign', '-nodetach', '-binary', '-md', 'sha256', '-signer', 'alice.pem', '-inkey', 'alice.key',
      '-in', 'layer3.mime', '-outform', outform, '-out', 'signed.out', ...extra,
    ]);
    return readFileSync(join(dir, 'signed.out'));
  }

  async function opensslEncrypt(dir: string, content: Uint8Array, recipientPem: string, cipher: string, extra: readonly string[]): Promise<Uint8Array> {
    writeFileSync(join(dir, 'layer2.mime'), content);
    await opensslOk(dir, ['cms', '-encrypt', '-binary', cipher, '-in', 'layer2.mime', '-recip', recipientPem, '-outform', 'DER', '-out', 'body.der', ...extra]);
    return new Uint8Array(readFileSync(join(dir, 'body.der')));
  }

  const signedEntity = (signed: Buffer): Uint8Array =>
    new Uint8Array(Buffer.concat([Buffer.from('Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: binary\r\n\r\n'), signed]));

  function bobReceives(body: Uint8Array, me: Identity, pinned?: Uint8Array, contentType = 'application/pkcs7-mime; smime-type=authEnveloped-data; name="smime.p7m"'): Promise<UnprotectVerdict> {
    return unprotectMessage({
      contentType,
      body,
      sipFrom: ALICE,
      ourAor: BOB,
      ourIdentity: identity(me),
      pinnedCertificateDer: (aor) => (aor === ALICE ? pinned : undefined),
      now: new Date(),
      replayCache: new MemoryReplayCache(),
    });
  }

  it('AES-128-GCM to our EC certificate (ECDH, SHA-256 KDF): accepted as encrypted-signed', async () => {
    const dir = workDir();
    const signer = await opensslAlice(dir);
    writeIdentity(dir, 'bob', bob);
    const body = await opensslEncrypt(dir, signedEntity(await opensslSign(dir, 'from openssl \u2713')), 'bob.pem', '-aes-128-gcm', ['-keyopt', 'ecdh_kdf_md:sha256']);
    const verdict = await bobReceives(body, bob);
    expect(verdict).toMatchObject({
      action: 'accept',
      label: 'encrypted-signed',
      text: 'from openssl \u2713',
      signerFingerprint: fingerprintSha256(signer.certificateDer),
      warnings: [],
    });
    if (verdict.action !== 'accept') throw new Error('unreachable');
    expect(verdict.pinNow).toEqual(signer.certificateDer);
    expect(verdict.cpim?.from).toBe(ALICE);
  });

  it('signer certificate left out (-nocerts), by key id, pinned: accepted; not pinned: 400 Unknown Signer Certificate', async () => {
    const dir = workDir();
    const signer = await opensslAlice(dir);
    writeIdentity(dir, 'bob', bob);
    const signed = await opensslSign(dir, 'no certificate', ['-nocerts', '-keyid', '-nosmimecap']);
    const body = await opensslEncrypt(dir, signedEntity(signed), 'bob.pem', '-aes-128-gcm', ['-keyopt', 'ecdh_kdf_md:sha256', '-keyid']);
    expect(await bobReceives(body, bob, signer.certificateDer)).toMatchObject({ action: 'accept', text: 'no certificate' });
    expect(await bobReceives(body, bob)).toMatchObject({ action: 'reject', status: 400, problem: 'unknown-signer' });
  });

  it('OpenSSL\'s own S/MIME inner entity (base64, LF line ends), default SHA-1 KDF: accepted', async () => {
    const dir = workDir();
    await opensslAlice(dir);
    writeIdentity(dir, 'bob', bob);
    const smime = await opensslSign(dir, 'smime text', [], 'SMIME');
    expect(smime.toString('latin1')).toContain('Content-Transfer-Encoding: base64');
    const body = await opensslEncrypt(dir, smime, 'bob.pem', '-aes-128-gcm', []);
    expect(await bobReceives(body, bob)).toMatchObject({ action: 'accept', label: 'encrypted-signed', text: 'smime text' });
  });

  it('AES-128-GCM to our RSA certificate (RSA-OAEP): accepted', async () => {
    const dir = workDir();
    await opensslAlice(dir);
    writeIdentity(dir, 'bob', bobRsa);
    const body = await opensslEncrypt(dir, signedEntity(await opensslSign(dir, 'to rsa')), 'bob.pem', '-aes-128-gcm', [
      '-keyopt', 'rsa_padding_mode:oaep', '-keyopt', 'rsa_oaep_md:sha256',
    ]);
    expect(await bobReceives(body, bobRsa)).toMatchObject({ action: 'accept', label: 'encrypted-signed', text: 'to rsa' });
  });

  it('legacy AES-128-CBC EnvelopedData: accepted with a signature inside (warned), refused without', async () => {
    const dir = workDir();
    await opensslAlice(dir);
    writeIdentity(dir, 'bob', bob);
    const signedBody = await opensslEncrypt(dir, signedEntity(await opensslSign(dir, 'cbc')), 'bob.pem', '-aes-128-cbc', ['-keyopt', 'ecdh_kdf_md:sha256']);
    expect(await bobReceives(signedBody, bob, undefined, 'application/pkcs7-mime; smime-type=enveloped-data')).toMatchObject({
      action: 'accept',
      label: 'encrypted-signed',
      text: 'cbc',
      warnings: ['legacy-encryption'],
    });

    const unsignedBody = await opensslEncrypt(dir, Buffer.from('Content-Type: text/plain\r\n\r\nnobody signed this'), 'bob.pem', '-aes-128-cbc', ['-keyopt', 'ecdh_kdf_md:sha256']);
    expect(await bobReceives(unsignedBody, bob, undefined, 'application/pkcs7-mime; smime-type=enveloped-data')).toMatchObject({
      action: 'reject',
      status: 400,
      problem: 'unsigned',
    });
  });

  it('encrypted by openssl to someone else: 493 with our certificate', async () => {
    const dir = workDir();
    await opensslAlice(dir);
    writeIdentity(dir, 'bob', bob);
    const body = await opensslEncrypt(dir, signedEntity(await opensslSign(dir, 'not for carol')), 'bob.pem', '-aes-128-gcm', ['-keyopt', 'ecdh_kdf_md:sha256']);
    const carol = await createIdentity({ aor: 'sip:bob@example.org' });
    expect(await bobReceives(body, carol)).toMatchObject({ action: 'reject', status: 493, problem: 'undecipherable' });
  });
});

describe('the layer-2 entity we write parses as a MIME entity', () => {
  it('for our own reader too', async () => {
    const sent = await protectMessage({ text: 'x', from: ALICE, to: BOB, now: new Date(), ourIdentity: identity(alice), peerCertificateDer: bob.certificateDer, includeSignerCertificate: false });
    const dir = workDir();
    writeIdentity(dir, 'bob', bob);
    writeFileSync(join(dir, 'body.der'), sent.body);
    await opensslOk(dir, ['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', 'body.der', '-recip', 'bob.pem', '-inkey', 'bob.key', '-out', 'layer2.mime']);
    const entity = parseMimeEntity(readFileSync(join(dir, 'layer2.mime')));
    expect(entity.contentType.params.get('smime-type')).toBe('signed-data');
  });
});
