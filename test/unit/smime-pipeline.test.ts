/**
 * The S/MIME message pipeline (main/im/smime): protectMessage / signOnly on the sender's side,
 * unprotectMessage on the receiver's, and the replay cache. Round trips between generated
 * identities, then every negative of issue #4's "Done when": replay (again, and after a
 * restart over the same SQLite file), a changed DateTime, From or body, a wrong signer, a changed
 * certificate, an unknown key, garbage and truncated CMS, dates in the future, too old and late.
 * Tampered messages are built with the right keys by the helpers below (`seal`): the attacker
 * model is a peer that signs malicious content, or a network that alters bytes.
 * Interop with `openssl cms` is in test/interop/openssl-smime-message.test.ts.
 */
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCpim } from '../../main/im/cpim.js';
import { AUTH_ENVELOPED_CONTENT_TYPE, SIGNED_CONTENT_TYPE, SMIME_ACCEPT, classifyBody } from '../../main/im/smime/media-types.js';
import { parseMimeEntity } from '../../main/im/smime/mime-entity.js';
import {
  buildMessageEntity,
  newMessageId,
  protectMessage,
  signEntity,
  signOnly,
  signedDataEntity,
  type OurIdentity,
} from '../../main/im/smime/protect.js';
import { MemoryReplayCache, SqliteReplayCache, replayKey, type ReplayCache } from '../../main/im/smime/replay-cache.js';
import {
  unprotectMessage,
  type AcceptVerdict,
  type CertificateChangedVerdict,
  type RejectVerdict,
  type UnprotectInput,
  type UnprotectVerdict,
} from '../../main/im/smime/unprotect.js';
import { createIdentity, fingerprintSha256, readCertificate, type Identity } from '../../main/security/certificates.js';
import { encryptAuthEnveloped, openEnvelope } from '../../main/security/cms/auth-enveloped-data.js';
import { CmsError } from '../../main/security/cms/der.js';
import { readCertsOnly, verifySignedData } from '../../main/security/cms/signed-data.js';
import { parseContentType } from '../../main/sip/header-values.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';

const ALICE = 'sip:alice@example.com';
const BOB = 'sip:bob@example.org';
const CAROL = 'sip:carol@example.net';
const MALLORY = 'sip:mallory@example.net';
/** The sender's clock; receivers use it too unless a test moves theirs. */
const NOW = new Date('2025-03-04T10:15:30.250Z');
const T = new Date('2025-03-04T10:15:30Z'); // NOW cut to the whole second
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

let alice: Identity;
let aliceNewDevice: Identity; // the same AoR, another key: a "changed certificate"
let bob: Identity;
let bobRsa: Identity;
let carol: Identity;
let mallory: Identity;
let malloryAsAlice: Identity; // a self-signed certificate that claims sip:alice

beforeAll(async () => {
  const issued = new Date(NOW.getTime() - 24 * HOUR);
  [alice, aliceNewDevice, bob, bobRsa, carol, mallory, malloryAsAlice] = await Promise.all([
    createIdentity({ aor: ALICE, now: issued }),
    createIdentity({ aor: ALICE, now: issued }),
    createIdentity({ aor: BOB, now: issued }),
    createIdentity({ aor: BOB, algorithm: 'RSA-2048', now: issued }),
    createIdentity({ aor: CAROL, now: issued }),
    createIdentity({ aor: MALLORY, now: issued }),
    createIdentity({ aor: ALICE, now: issued }),
  ]);
});

// ---------------------------------------------------------------------------------------------
// Helpers

const cleanups = cleanupsAfterEach();

function workDir(): string {
  return tempDir(cleanups, 'sipnote-smime-');
}

const identity = (id: Identity): OurIdentity => ({ certificateDer: id.certificateDer, privateKeyPkcs8: id.privateKeyPkcs8 });

/** alice → bob with defaults; `overrides` change any input. */
function protectFromAlice(overrides: Partial<Parameters<typeof protectMessage>[0]> = {}) {
  return protectMessage({
    text: 'Watson, come here - I want to see you.',
    from: ALICE,
    to: BOB,
    now: NOW,
    ourIdentity: identity(alice),
    peerCertificateDer: bob.certificateDer,
    includeSignerCertificate: true,
    ...overrides,
  });
}

/** Pins: AoR → certificate(s), as a contact store would keep them. */
type Pins = Record<string, Uint8Array | Uint8Array[]>;

/** bob receives `message` from SIP From alice, at NOW, nothing pinned, a fresh cache. */
function bobReceives(
  message: { contentType: string; body: Uint8Array },
  overrides: Partial<UnprotectInput> & { pins?: Pins } = {},
): Promise<UnprotectVerdict> {
  const { pins = {}, ...rest } = overrides;
  return unprotectMessage({
    contentType: message.contentType,
    body: message.body,
    sipFrom: ALICE,
    ourAor: BOB,
    ourIdentity: identity(bob),
    pinnedCertificateDer: (aor) => pins[aor],
    now: NOW,
    replayCache: new MemoryReplayCache(),
    ...rest,
  });
}

function expectAccept(verdict: UnprotectVerdict): AcceptVerdict {
  if (verdict.action !== 'accept') throw new Error(`expected accept, got ${JSON.stringify(summary(verdict))}`);
  return verdict;
}

function expectReject(verdict: UnprotectVerdict, status: number, problem: RejectVerdict['problem']): RejectVerdict {
  if (verdict.action !== 'reject') throw new Error(`expected reject ${status} ${problem}, got ${JSON.stringify(summary(verdict))}`);
  expect({ status: verdict.status, problem: verdict.problem }).toEqual({ status, problem });
  expect(verdict.reason).toMatch(/^[\x20-\x7e]+$/);
  return verdict;
}

function summary(verdict: UnprotectVerdict): unknown {
  if (verdict.action === 'reject') return { action: verdict.action, status: verdict.status, problem: verdict.problem, detail: verdict.detail };
  return { action: verdict.action };
}

interface SealOptions {
  /** The signed MIME entity (default: a correct CPIM entity from alice to bob at T). */
  readonly entity?: Uint8Array;
  readonly signer?: Identity;
  readonly signingTime?: Date;
  readonly includeSignerCertificate?: boolean;
  /** Certificates to encrypt to; an empty list means sign only. */
  readonly recipients?: readonly Identity[];
}

/**
 * The attacker's (or a buggy peer's) toolkit: signs any entity with any key and encrypts it
 * to anyone, through the same building blocks protectMessage uses.
 */
async function seal(options: SealOptions = {}): Promise<{ contentType: string; body: Uint8Array }> {
  const signer = options.signer ?? alice;
  const entity = options.entity ?? cpimEntity({});
  const signed = await signEntity(entity, {
    ourIdentity: identity(signer),
    signingTime: options.signingTime ?? T,
    includeSignerCertificate: options.includeSignerCertificate ?? true,
  });
  const recipients = options.recipients ?? [bob];
  if (recipients.length === 0) return { contentType: SIGNED_CONTENT_TYPE, body: signed };
  const body = await encryptAuthEnveloped({ content: signedDataEntity(signed), recipients });
  return { contentType: AUTH_ENVELOPED_CONTENT_TYPE, body };
}

function cpimEntity(fields: { from?: string; to?: string; dateTime?: Date; text?: string; messageId?: string }): Uint8Array {
  return buildMessageEntity({
    text: fields.text ?? 'hello bob',
    from: fields.from ?? ALICE,
    to: fields.to ?? BOB,
    now: fields.dateTime ?? T,
    messageId: fields.messageId ?? newMessageId(),
  });
}

const entityOf = (header: string, body: Uint8Array): Uint8Array => new Uint8Array(Buffer.concat([Buffer.from(header, 'latin1'), body]));

/** The content-encryption bytes of an AuthEnvelopedData: where the ciphertext sits in `der`. */
function ciphertextRange(der: Uint8Array): { start: number; end: number } {
  // The AuthEnvelopedData ends with encryptedContent [0] IMPLICIT and the 16-octet mac
  // (RFC 5083 §2.1): find the [0] whose end leaves exactly the mac's 18 octets.
  for (let i = der.length - 1; i > 0; i--) {
    if (der[i] === 0x80) {
      const lengthByte = der[i + 1]!;
      const length = lengthByte < 0x80 ? lengthByte : lengthByte === 0x81 ? der[i + 2]! : (der[i + 2]! << 8) | der[i + 3]!;
      const header = lengthByte < 0x80 ? 2 : lengthByte === 0x81 ? 3 : 4;
      // ciphertext [0], then mac OCTET STRING (2 + 16 octets) ends the structure
      if (i + header + length + 18 === der.length) return { start: i + header, end: i + header + length };
    }
  }
  throw new Error('no ciphertext found');
}

// ---------------------------------------------------------------------------------------------

describe('round trip alice → bob', () => {
  it('protects and unprotects: encrypted-signed, the CPIM envelope, the fingerprint, pin on first use', async () => {
    const sent = await protectFromAlice({ imdn: ['positive-delivery', 'display'] });
    expect(sent.contentType).toBe('application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m');
    expect(sent.contentDisposition).toBe('attachment; filename=smime.p7m; handling=required');
    expect(sent.dateTime).toEqual(T);
    expect(sent.messageId).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(Buffer.from(sent.body).includes('Watson')).toBe(false);

    const verdict = expectAccept(await bobReceives(sent));
    expect(verdict.label).toBe('encrypted-signed');
    expect(verdict.text).toBe('Watson, come here - I want to see you.');
    expect(verdict.contentType).toBe('text/plain;charset=utf-8');
    expect(verdict.cpim).toEqual({
      from: ALICE,
      to: [BOB],
      dateTime: T,
      messageId: sent.messageId,
      dispositionNotification: ['positive-delivery', 'display'],
    });
    expect(verdict.signingTime).toEqual(T);
    expect(verdict.protectedTime).toEqual(T);
    expect(verdict.signerFingerprint).toBe(fingerprintSha256(alice.certificateDer));
    expect(verdict.signerCertificateDer).toEqual(alice.certificateDer);
    expect(verdict.late).toBe(false);
    expect(verdict.pinNow).toEqual(alice.certificateDer);
    expect(verdict.warnings).toEqual([]);
    expect(verdict.replayExpiresAt).toEqual(new Date(T.getTime() + 72 * HOUR + 5 * MINUTE));
  });

  it('the layers are the ones RFC 8591 §4.3 asks for: SignedData (signingTime = DateTime) inside AuthEnvelopedData', async () => {
    const sent = await protectFromAlice();
    const opened = await openEnvelope(sent.body, identity(bob));
    expect(opened.authenticated).toBe(true);
    const layer2 = parseMimeEntity(opened.content);
    expect(layer2.headers).toEqual([['Content-Type', 'application/pkcs7-mime; smime-type=signed-data']]);
    const verified = await verifySignedData(layer2.body);
    expect(verified.signingTime).toEqual(T);
    expect(verified.signerCertificateSource).toBe('embedded');
    const layer3 = Buffer.from(verified.content).toString('utf8');
    expect(layer3).toBe(
      'Content-Type: message/cpim\r\n\r\n' +
        'From: <sip:alice@example.com>\r\nTo: <sip:bob@example.org>\r\nDateTime: 2025-03-04T10:15:30Z\r\n' +
        `NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: ${sent.messageId}\r\n\r\n` +
        'Content-Type: text/plain;charset=utf-8\r\n\r\nWatson, come here - I want to see you.',
    );
  });

  it('without the signer certificate, the pinned one verifies it; nothing to pin', async () => {
    const sent = await protectFromAlice({ includeSignerCertificate: false });
    const withCertificate = await protectFromAlice({ includeSignerCertificate: true });
    expect(withCertificate.body.length - sent.body.length).toBeGreaterThan(alice.certificateDer.length - 10);
    const verdict = expectAccept(await bobReceives(sent, { pins: { [ALICE]: alice.certificateDer } }));
    expect(verdict.pinNow).toBeUndefined();
    expect(verdict.signerFingerprint).toBe(fingerprintSha256(alice.certificateDer));
  });

  it('finds the pin under the canonical AoR whatever the SIP From carries (parameters, escapes, case of host)', async () => {
    const sent = await protectFromAlice({ includeSignerCertificate: false });
    const seen: string[] = [];
    const verdict = await bobReceives(sent, {
      sipFrom: 'sip:%61lice@EXAMPLE.com;transport=tcp',
      pinnedCertificateDer: (aor) => {
        seen.push(aor);
        return aor === ALICE ? alice.certificateDer : undefined;
      },
    });
    expect(expectAccept(verdict).pinNow).toBeUndefined();
    expect(new Set(seen)).toEqual(new Set([ALICE]));
  });

  it('accepts any of several pinned certificates (one per device)', async () => {
    const sent = await protectFromAlice({ ourIdentity: identity(aliceNewDevice), includeSignerCertificate: false });
    expectAccept(await bobReceives(sent, { pins: { [ALICE]: [alice.certificateDer, aliceNewDevice.certificateDer] } }));
  });

  it('encrypts to ourselves too, so that the sent copy can be read; encryptToSelf:false leaves us out', async () => {
    const sent = await protectFromAlice();
    expect((await openEnvelope(sent.body, identity(alice))).authenticated).toBe(true);
    const notToSelf = await protectFromAlice({ encryptToSelf: false });
    await expect(openEnvelope(notToSelf.body, identity(alice))).rejects.toMatchObject({ code: 'no-recipient' });
    expectAccept(await bobReceives(notToSelf));
    expect(sent.body.length - notToSelf.body.length).toBeGreaterThan(150);
  });

  it('encrypts to an RSA peer (RSA-OAEP key transport)', async () => {
    const sent = await protectFromAlice({ peerCertificateDer: bobRsa.certificateDer });
    const verdict = await bobReceives(sent, { ourIdentity: identity(bobRsa) });
    expect(expectAccept(verdict).text).toBe('Watson, come here - I want to see you.');
  });

  it('carries any Unicode text byte for byte', async () => {
    const text = 'Grüße 👋 — \u0000 line\r\nbreak \\ "quotes" \u202e';
    const verdict = expectAccept(await bobReceives(await protectFromAlice({ text })));
    expect(verdict.text).toBe(text);
  });

  it('signOnly gives a body labelled signed, readable without any key', async () => {
    const sent = await signOnly({ text: 'first contact', from: ALICE, to: BOB, now: NOW, ourIdentity: identity(alice), includeSignerCertificate: true });
    expect(sent.contentType).toBe('application/pkcs7-mime; smime-type=signed-data; name=smime.p7m');
    expect(Buffer.from(sent.body).includes('first contact')).toBe(true);
    const verdict = expectAccept(await bobReceives(sent, { ourIdentity: identity(carol) }));
    expect(verdict.label).toBe('signed');
    expect(verdict.text).toBe('first contact');
    expect(verdict.pinNow).toEqual(alice.certificateDer);
  });

  it('messageId: 96 random bits by default, the caller\'s when given, refused when unusable', async () => {
    const ids = new Set(Array.from({ length: 200 }, () => newMessageId()));
    expect(ids.size).toBe(200);
    for (const id of ids) expect(Buffer.from(id, 'base64url').length).toBe(12);
    const sent = await protectFromAlice({ messageId: 'my-id-42' });
    expect(sent.messageId).toBe('my-id-42');
    expect(expectAccept(await bobReceives(sent)).cpim?.messageId).toBe('my-id-42');
    await expect(protectFromAlice({ messageId: 'has space' })).rejects.toBeInstanceOf(RangeError);
    await expect(protectFromAlice({ messageId: '' })).rejects.toBeInstanceOf(RangeError);
  });

  it('refuses to send as an AoR that is not in our certificate', async () => {
    const error = await protectFromAlice({ from: MALLORY }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CmsError);
    expect((error as CmsError).code).toBe('invalid-argument');
    await expect(protectFromAlice({ from: 'not a uri' })).rejects.toBeInstanceOf(RangeError);
  });
});

describe('sizes (RFC 3428 §8: 1300 octets for the whole request)', () => {
  /** A realistic MESSAGE request head for `bodyLength` (the trimmed form of rfc8591-wire.md §3.4 is shorter). */
  function requestHead(bodyLength: number): string {
    return (
      'MESSAGE sip:bob@example.org SIP/2.0\r\n' +
      'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK.8f2a7c1e9d3b;rport\r\n' +
      'Max-Forwards: 70\r\n' +
      'From: <sip:alice@example.com>;tag=7b1d0e3a\r\n' +
      'To: <sip:bob@example.org>\r\n' +
      'Call-ID: 3c26700a-5f8b-4b52-9c1e-7b0f2a1d9e44\r\n' +
      'CSeq: 1 MESSAGE\r\n' +
      'Date: Tue, 04 Mar 2025 10:15:30 GMT\r\n' +
      `Content-Type: ${AUTH_ENVELOPED_CONTENT_TYPE}\r\n` +
      'Content-Disposition: attachment; filename=smime.p7m; handling=required\r\n' +
      `Content-Length: ${bodyLength}\r\n\r\n`
    );
  }

  it('measures a 40-character text to an EC peer, with and without the signer certificate and the self copy', async () => {
    const text = 'Watson, come here - I want to see you.!!';
    expect(text.length).toBe(40);
    const sizes: Record<string, number> = {};
    for (const includeSignerCertificate of [false, true]) {
      for (const encryptToSelf of [true, false]) {
        const sent = await protectFromAlice({ text, includeSignerCertificate, encryptToSelf });
        sizes[`cert=${includeSignerCertificate} self=${encryptToSelf}`] = sent.body.length;
      }
    }
    const request = (body: number): number => Buffer.byteLength(requestHead(body)) + body;
    // ECDSA signatures are 70–72 octets in DER, so sizes move by a few octets between runs.
    expect(sizes['cert=false self=true']).toBeLessThanOrEqual(1135);
    expect(sizes['cert=false self=false']).toBeLessThanOrEqual(960);
    expect(sizes['cert=true self=true']! - sizes['cert=false self=true']!).toBeGreaterThanOrEqual(alice.certificateDer.length);
    // Only the leanest form (no certificate, no self copy) comes near the limit with these headers.
    expect(request(sizes['cert=false self=false']!)).toBeLessThan(1450);
    expect(request(sizes['cert=true self=true']!)).toBeGreaterThan(1300);
  });
});

describe('replay', () => {
  it('the same body again is a replay (answer 200, show nothing), also after re-encryption', async () => {
    const cache = new MemoryReplayCache();
    const sent = await protectFromAlice();
    expectAccept(await bobReceives(sent, { replayCache: cache }));
    const again = await bobReceives(sent, { replayCache: cache, now: new Date(NOW.getTime() + 30 * MINUTE) });
    expect(again).toMatchObject({ action: 'replay', status: 200, messageId: sent.messageId, signerFingerprint: fingerprintSha256(alice.certificateDer) });

    // The same signed message, encrypted anew (a proxy cannot, but the key must not depend on it).
    const signed = await signEntity(cpimEntity({ messageId: 'fixed' }), { ourIdentity: identity(alice), signingTime: T, includeSignerCertificate: true });
    const first = await encryptAuthEnveloped({ content: signedDataEntity(signed), recipients: [bob] });
    const second = await encryptAuthEnveloped({ content: signedDataEntity(signed), recipients: [bob] });
    expect(Buffer.from(first).equals(Buffer.from(second))).toBe(false);
    expectAccept(await bobReceives({ contentType: AUTH_ENVELOPED_CONTENT_TYPE, body: first }, { replayCache: cache }));
    expect((await bobReceives({ contentType: AUTH_ENVELOPED_CONTENT_TYPE, body: second }, { replayCache: cache })).action).toBe('replay');
  });

  it('the same text sent twice is two messages (a new Message-ID each time)', async () => {
    const cache = new MemoryReplayCache();
    expectAccept(await bobReceives(await protectFromAlice({ text: 'ok' }), { replayCache: cache }));
    expectAccept(await bobReceives(await protectFromAlice({ text: 'ok' }), { replayCache: cache }));
  });

  it('is still a replay after a restart (a new cache object over the same SQLite file)', async () => {
    const file = join(workDir(), 'replay.sqlite');
    const sent = await protectFromAlice();
    // Pruning follows the injected clock: the system clock is years after NOW.
    const before = SqliteReplayCache.open(file, { now: () => NOW });
    try {
      expectAccept(await bobReceives(sent, { replayCache: before }));
      expect((await bobReceives(sent, { replayCache: before })).action).toBe('replay');
    } finally {
      before.close();
    }
    const after = SqliteReplayCache.open(file, { now: () => new Date(NOW.getTime() + 71 * HOUR) });
    try {
      expect((await bobReceives(sent, { replayCache: after, now: new Date(NOW.getTime() + 71 * HOUR) })).action).toBe('replay');
      expectAccept(await bobReceives(await protectFromAlice(), { replayCache: after }));
    } finally {
      after.close();
    }
  });

  it('rememberReplay:false leaves remembering to the caller, who uses replayKey', async () => {
    const cache = new MemoryReplayCache();
    const sent = await protectFromAlice();
    const verdict = expectAccept(await bobReceives(sent, { replayCache: cache, rememberReplay: false }));
    expect(cache.size).toBe(0);
    expect(verdict.replayKey).toBe(replayKey(alice.certificateDer, (await verifySignedData(parseMimeEntity((await openEnvelope(sent.body, identity(bob))).content).body)).messageDigest));
    cache.remember(verdict.replayKey, verdict.replayExpiresAt);
    expect((await bobReceives(sent, { replayCache: cache, rememberReplay: false })).action).toBe('replay');
    expect((await bobReceives(sent, { replayCache: cache })).action).toBe('replay');
  });

  it('a replay that races past seen() is caught by remember()', async () => {
    const inner = new MemoryReplayCache();
    const blind: ReplayCache = { seen: () => false, remember: (key, expiresAt) => inner.remember(key, expiresAt) };
    const sent = await protectFromAlice();
    expectAccept(await bobReceives(sent, { replayCache: blind }));
    expect((await bobReceives(sent, { replayCache: blind })).action).toBe('replay');
  });
});

describe('SqliteReplayCache', () => {
  it('remembers, reports duplicates, keeps the later expiry, prunes what expired, and survives reopening', () => {
    const file = join(workDir(), 'replay.sqlite');
    let clock = new Date('2025-03-04T00:00:00Z');
    const cache = SqliteReplayCache.open(file, { now: () => clock, pruneEvery: 1000 });
    expect(cache.remember('a', new Date('2025-03-05T00:00:00Z'))).toBe(true);
    expect(cache.remember('a', new Date('2025-03-08T00:00:00Z'))).toBe(false);
    expect(cache.remember('b', new Date('2025-03-04T12:00:00Z'))).toBe(true);
    expect(cache.seen('a') && cache.seen('b')).toBe(true);
    expect(cache.seen('c')).toBe(false);
    expect(cache.prune(new Date('2025-03-06T00:00:00Z'))).toBe(1); // b; a was extended
    expect(cache.seen('b')).toBe(false);
    cache.close();

    clock = new Date('2025-03-09T00:00:00Z'); // opening prunes with the injected clock
    const reopened = SqliteReplayCache.open(file, { now: () => clock });
    expect(reopened.seen('a')).toBe(false);
    expect(reopened.size).toBe(0);
    reopened.close();
  });

  it('prunes every pruneEvery inserts', () => {
    const clock = new Date('2025-03-04T00:00:00Z');
    const cache = SqliteReplayCache.open(join(workDir(), 'r.sqlite'), { now: () => clock, pruneEvery: 3 });
    cache.remember('old1', new Date('2025-03-01T00:00:00Z'));
    cache.remember('old2', new Date('2025-03-01T00:00:00Z'));
    expect(cache.size).toBe(2);
    cache.remember('new', new Date('2025-03-07T00:00:00Z'));
    expect(cache.size).toBe(1);
    cache.close();
  });
});

describe('tampering and identity (issue #4 negatives)', () => {
  it('a changed DateTime (signingTime and CPIM DateTime disagree) → 400', async () => {
    const sent = await seal({ entity: cpimEntity({ dateTime: new Date(T.getTime() - 10_000) }), signingTime: T });
    expectReject(await bobReceives(sent), 400, 'date-mismatch');
    // within the tolerance it passes
    const close = await seal({ entity: cpimEntity({ dateTime: new Date(T.getTime() + 1_500) }), signingTime: T });
    expectAccept(await bobReceives(close));
  });

  it('a CPIM From of someone else, signed with the right key → 403', async () => {
    const sent = await seal({ entity: cpimEntity({ from: CAROL }) });
    expectReject(await bobReceives(sent), 403, 'cpim-from-mismatch');
  });

  it('a SIP From that is not the signer → 403', async () => {
    const sent = await protectFromAlice();
    expectReject(await bobReceives(sent, { sipFrom: MALLORY }), 403, 'identity-mismatch');
  });

  it('a CPIM To that is not us (alice\'s message to carol, forwarded by carol to bob) → 403', async () => {
    const toCarol = await seal({ entity: cpimEntity({ to: CAROL }), recipients: [bob] });
    expectReject(await bobReceives(toCarol), 403, 'not-for-us');
  });

  it('a changed ciphertext or tag → 493 (undecipherable) with our certificate', async () => {
    const sent = await protectFromAlice();
    const { start, end } = ciphertextRange(sent.body);
    for (const at of [start, Math.floor((start + end) / 2), end - 1, sent.body.length - 1]) {
      const body = Uint8Array.from(sent.body);
      body[at] = body[at]! ^ 0x01;
      const verdict = expectReject(await bobReceives({ contentType: sent.contentType, body }), 493, 'undecipherable');
      expect(verdict.detail).toMatch(/tag/);
    }
  });

  it('a changed signed body (signed-only message) → 400 Invalid Signature', async () => {
    const sent = await signOnly({ text: 'pay 10 EUR', from: ALICE, to: BOB, now: NOW, ourIdentity: identity(alice), includeSignerCertificate: true });
    const at = Buffer.from(sent.body).indexOf('10 EUR');
    const body = Uint8Array.from(sent.body);
    body[at] = '9'.charCodeAt(0);
    expectReject(await bobReceives({ contentType: sent.contentType, body }), 400, 'bad-signature');
  });

  it('a wrong signer: mallory signs as himself → 403; a certificate that claims alice, alice pinned → certificate-changed', async () => {
    const asMallory = await seal({ signer: mallory });
    expectReject(await bobReceives(asMallory), 403, 'identity-mismatch');

    const forged = await seal({ signer: malloryAsAlice });
    const verdict = await bobReceives(forged, { pins: { [ALICE]: alice.certificateDer } });
    expect(verdict.action).toBe('certificate-changed');
  });

  it('a changed certificate → certificate-changed, not remembered; accepted once the user pins it', async () => {
    const cache = new MemoryReplayCache();
    const sent = await protectFromAlice({ ourIdentity: identity(aliceNewDevice) });
    const verdict = (await bobReceives(sent, { pins: { [ALICE]: alice.certificateDer }, replayCache: cache })) as CertificateChangedVerdict;
    expect(verdict).toMatchObject({
      action: 'certificate-changed',
      status: 403,
      aor: ALICE,
      presentedFingerprint: fingerprintSha256(aliceNewDevice.certificateDer),
      pinnedFingerprints: [fingerprintSha256(alice.certificateDer)],
    });
    expect(verdict.presentedCertificateDer).toEqual(aliceNewDevice.certificateDer);
    expect(verdict.held.text).toBe('Watson, come here - I want to see you.');
    expect(cache.size).toBe(0);
    // The user compares fingerprints and accepts: the same message now goes through.
    const accepted = expectAccept(await bobReceives(sent, { pins: { [ALICE]: [alice.certificateDer, aliceNewDevice.certificateDer] }, replayCache: cache }));
    expect(accepted.pinNow).toBeUndefined();
  });

  it('a bad signature outranks what the checks of the signed content find (they run while it is verified)', async () => {
    // Signed by alice, but with a content that fails a later check, then the signature broken.
    const withBrokenSignature = async (entity: Uint8Array): Promise<{ contentType: string; body: Uint8Array }> => {
      const signed = await signEntity(entity, { ourIdentity: identity(alice), signingTime: T, includeSignerCertificate: true });
      const broken = signed.slice();
      broken[broken.length - 1] = broken[broken.length - 1]! ^ 0x01; // the last octet of s
      return { contentType: AUTH_ENVELOPED_CONTENT_TYPE, body: await encryptAuthEnveloped({ content: signedDataEntity(broken), recipients: [bob] }) };
    };
    const fromMallory = cpimEntity({ from: MALLORY });
    const malformedCpim = entityOf('Content-Type: message/cpim\r\n\r\n', new TextEncoder().encode('this is not CPIM'));
    const notMime = new TextEncoder().encode('no header section at all');
    // With the signature intact, each of these is refused for its content…
    expectReject(await bobReceives(await seal({ entity: fromMallory })), 403, 'cpim-from-mismatch');
    expectReject(await bobReceives(await seal({ entity: malformedCpim })), 400, 'malformed');
    expectReject(await bobReceives(await seal({ entity: notMime })), 400, 'malformed');
    // …and with it broken, for the signature, as when nothing was looked at before it was verified.
    for (const entity of [fromMallory, malformedCpim, notMime, cpimEntity({})]) {
      expectReject(await bobReceives(await withBrokenSignature(entity), { pins: { [ALICE]: alice.certificateDer } }), 400, 'bad-signature');
    }
  });

  it('what is remembered between messages never lets a look-alike certificate pass as the pinned one', async () => {
    // A twin of alice's certificate: the same issuer, serial number and subjectKeyIdentifier
    // (what a SignerInfo names the signer by), the same SAN, mallory's key. Alice's certificate,
    // key and verdicts are in every cache first; then the twin, with and without its
    // certificate; then alice again.
    const pins = { [ALICE]: alice.certificateDer };
    const aliceCore = readCertificate(alice.certificateDer);
    const twinDer = malloryAsAlice.certificateDer.slice();
    const twinCore = readCertificate(twinDer);
    for (const [ours, theirs] of [
      [aliceCore.serialNumber, twinCore.serialNumber],
      [aliceCore.subjectKeyIdentifier!, twinCore.subjectKeyIdentifier!],
    ] as const) {
      expect(theirs.length).toBe(ours.length);
      twinDer.set(ours, theirs.byteOffset - twinDer.byteOffset);
    }
    expect(readCertificate(twinDer)).toMatchObject({ serialNumber: aliceCore.serialNumber, subjectKeyIdentifier: aliceCore.subjectKeyIdentifier, issuer: aliceCore.issuer });
    expect(readCertificate(twinDer).subjectPublicKeyInfo).not.toEqual(aliceCore.subjectPublicKeyInfo);
    const twin: Identity = { ...malloryAsAlice, certificateDer: twinDer };
    for (let round = 0; round < 3; round++) {
      expectAccept(await bobReceives(await seal({ includeSignerCertificate: false }), { pins }));
      expectAccept(await bobReceives(await seal({ includeSignerCertificate: true }), { pins }));
    }
    // Left out, the twin's signature is checked with the pinned key, and fails.
    expectReject(await bobReceives(await seal({ signer: twin, includeSignerCertificate: false }), { pins }), 400, 'bad-signature');
    // Included, it verifies with its own key, and is not the pinned certificate.
    const changed = (await bobReceives(await seal({ signer: twin, includeSignerCertificate: true }), { pins })) as CertificateChangedVerdict;
    expect(changed.action).toBe('certificate-changed');
    expect(changed.presentedCertificateDer).toEqual(twinDer);
    expect(changed.presentedFingerprint).toBe(fingerprintSha256(twinDer));
    expect(changed.presentedFingerprint).not.toBe(fingerprintSha256(alice.certificateDer));
    expect(changed.held.replayKey.split(':')[0]).toBe(fingerprintSha256(twinDer).replaceAll(':', '').toLowerCase());
    // And alice is still herself afterwards.
    const accepted = expectAccept(await bobReceives(await seal({ includeSignerCertificate: false }), { pins }));
    expect(accepted.signerCertificateDer).toEqual(alice.certificateDer);
    expect(accepted.signerFingerprint).toBe(fingerprintSha256(alice.certificateDer));
  });

  it('an unknown signer (certificate left out, nothing pinned) → 400 Unknown Signer Certificate', async () => {
    const sent = await protectFromAlice({ includeSignerCertificate: false });
    const verdict = expectReject(await bobReceives(sent), 400, 'unknown-signer');
    expect(verdict.reason).toBe('Unknown Signer Certificate');
    // …and one pinned for someone else does not help
    expectReject(await bobReceives(sent, { pins: { [CAROL]: alice.certificateDer } }), 400, 'unknown-signer');
  });

  it('an unknown key (encrypted to carol) → 493 with our certificate as certs-only', async () => {
    const sent = await protectFromAlice({ peerCertificateDer: carol.certificateDer });
    const verdict = expectReject(await bobReceives(sent), 493, 'undecipherable');
    expect(verdict.reason).toBe('Undecipherable');
    expect(verdict.contentType).toBe('application/pkcs7-mime; smime-type=certs-only');
    expect(readCertsOnly(verdict.body!)).toEqual([bob.certificateDer]);
  });

  it('a certificate not valid at the protected time → 403', async () => {
    const future = await createIdentity({ aor: ALICE, now: new Date(NOW.getTime() + 48 * HOUR) });
    expectReject(await bobReceives(await seal({ signer: future })), 403, 'certificate-not-valid');
  });

  it('two signature layers → 400', async () => {
    const inner = await signEntity(cpimEntity({}), { ourIdentity: identity(alice), signingTime: T, includeSignerCertificate: true });
    const outer = await signEntity(signedDataEntity(inner), { ourIdentity: identity(alice), signingTime: T, includeSignerCertificate: true });
    expectReject(await bobReceives({ contentType: SIGNED_CONTENT_TYPE, body: outer }), 400, 'malformed');
  });

  it('a signed CPIM without DateTime is judged on signingTime; with neither date → 400', async () => {
    const noDate = entityOf(
      'Content-Type: message/cpim\r\n\r\n',
      Buffer.from('From: <sip:alice@example.com>\r\nTo: <sip:bob@example.org>\r\n\r\nContent-Type: text/plain\r\n\r\nundated'),
    );
    const verdict = expectAccept(await bobReceives(await seal({ entity: noDate })));
    expect(verdict.protectedTime).toEqual(T);
    expect(verdict.cpim).toEqual({ from: ALICE, to: [BOB], dispositionNotification: [] });
    expectReject(await bobReceives(await seal({ entity: noDate, signingTime: new Date(T.getTime() - 73 * HOUR) })), 400, 'date-too-old');
  });

  it('a CPIM From as an im: URI matches the SIP From (RFC 3428 §5); a missing CPIM From → 400', async () => {
    expectAccept(await bobReceives(await seal({ entity: cpimEntity({ from: 'im:alice@example.com' }) })));
    const noFrom = entityOf('Content-Type: message/cpim\r\n\r\n', Buffer.from('To: <sip:bob@example.org>\r\n\r\nContent-Type: text/plain\r\n\r\nx'));
    expectReject(await bobReceives(await seal({ entity: noFrom })), 400, 'malformed');
  });

  it('a CPIM Require we do not know → 415', async () => {
    const cpim = buildCpim({
      from: { uri: ALICE },
      to: [{ uri: BOB }],
      dateTime: T,
      namespaces: { x: 'urn:example:unknown' },
      require: ['x.Thing'],
      extraHeaders: [{ ns: 'x', name: 'Thing', value: '1' }],
      contentType: 'text/plain',
      content: Buffer.from('hi'),
    });
    const verdict = expectReject(await bobReceives(await seal({ entity: entityOf('Content-Type: message/cpim\r\n\r\n', cpim) })), 415, 'unsupported-media-type');
    expect(verdict.headers).toEqual([['Accept', SMIME_ACCEPT]]);
  });
});

describe('dates (RFC 3428 §11.4)', () => {
  const at = (offsetMs: number): Date => new Date(T.getTime() + offsetMs);

  it('more than 5 minutes ahead → 400 Incorrect Date or Time', async () => {
    const sent = await protectFromAlice();
    const verdict = expectReject(await bobReceives(sent, { now: at(-5 * MINUTE - 1_000) }), 400, 'date-in-future');
    expect(verdict.reason).toBe('Incorrect Date or Time');
    expectAccept(await bobReceives(sent, { now: at(-4 * MINUTE) }));
  });

  it('older than 72 hours → 400 Incorrect Date or Time', async () => {
    const sent = await protectFromAlice();
    const verdict = expectReject(await bobReceives(sent, { now: at(72 * HOUR + 1_000) }), 400, 'date-too-old');
    expect(verdict.reason).toBe('Incorrect Date or Time');
  });

  it('between 5 minutes and 72 hours old → accepted, late', async () => {
    const sent = await protectFromAlice();
    expect(expectAccept(await bobReceives(sent, { now: at(4 * MINUTE) })).late).toBe(false);
    expect(expectAccept(await bobReceives(sent, { now: at(6 * MINUTE) })).late).toBe(true);
    expect(expectAccept(await bobReceives(sent, { now: at(71 * HOUR) })).late).toBe(true);
  });

  it('the thresholds come from the policy', async () => {
    const sent = await protectFromAlice();
    const policy = { maxFutureSkewMs: 1_000, maxAgeMs: 10 * MINUTE, lateAfterMs: MINUTE };
    expectReject(await bobReceives(sent, { now: at(11 * MINUTE), policy }), 400, 'date-too-old');
    expect(expectAccept(await bobReceives(sent, { now: at(2 * MINUTE), policy })).late).toBe(true);
    expectReject(await bobReceives(sent, { now: at(-2_000), policy }), 400, 'date-in-future');
  });
});

describe('media types and layouts', () => {
  it('415 with Accept for types we do not open', async () => {
    for (const contentType of [
      'application/octet-stream',
      'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=x',
      'application/pkcs7-mime; smime-type=certs-only',
      'application/pkcs7-mime; smime-type=compressed-data',
      'text/html',
    ]) {
      const verdict = expectReject(await bobReceives({ contentType, body: Buffer.from('x') }), 415, 'unsupported-media-type');
      expect(verdict.headers).toEqual([['Accept', SMIME_ACCEPT]]);
    }
    expect(SMIME_ACCEPT).toContain('smime-type=authEnveloped-data');
    expect(SMIME_ACCEPT).toContain('smime-type=auth-enveloped-data');
  });

  it('plaintext bodies are handed back for the caller\'s policy', async () => {
    const text = await bobReceives({ contentType: 'text/plain;charset=utf-8', body: Buffer.from('hi') });
    expect(text).toEqual({ action: 'plaintext', contentType: 'text/plain;charset=utf-8', body: Buffer.from('hi'), encrypted: false });
    const cpim = buildCpim({ from: { uri: ALICE }, to: [{ uri: BOB }], dateTime: T, contentType: 'text/plain', content: Buffer.from('hi') });
    expect((await bobReceives({ contentType: 'message/cpim', body: cpim })).action).toBe('plaintext');
    expect((await bobReceives({ contentType: 'multipart/mixed;boundary=b', body: Buffer.from('--b--') })).action).toBe('plaintext');
  });

  it('the smime-type parameter only routes: both spellings, a wrong one, none, and the x- name all open by the OID', async () => {
    const sent = await protectFromAlice();
    for (const contentType of [
      'application/pkcs7-mime; smime-type=auth-enveloped-data',
      'application/pkcs7-mime; smime-type=AuthEnveloped-Data',
      'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
      'application/pkcs7-mime; smime-type=signed-data',
      'application/pkcs7-mime',
      'application/x-pkcs7-mime; smime-type=enveloped-data',
    ]) {
      expect(expectAccept(await bobReceives({ contentType, body: sent.body })).label).toBe('encrypted-signed');
    }
  });

  it('reads a base64 body, with or without its Content-Transfer-Encoding header', async () => {
    const sent = await protectFromAlice();
    const base64 = Buffer.from(Buffer.from(sent.body).toString('base64').replace(/.{76}/g, '$&\r\n'));
    expectAccept(await bobReceives({ contentType: sent.contentType, body: base64 }, { contentTransferEncoding: 'base64' }));
    expectAccept(await bobReceives({ contentType: sent.contentType, body: base64 }));
    expectReject(await bobReceives({ contentType: sent.contentType, body: Buffer.from('not base64!') }), 400, 'malformed');
  });

  it('encrypted but unsigned: AuthEnvelopedData → plaintext, encrypted:true (nobody vouches for the sender)', async () => {
    const inner = entityOf('Content-Type: text/plain;charset=utf-8\r\n\r\n', Buffer.from('who sent this?'));
    const body = await encryptAuthEnveloped({ content: inner, recipients: [bob] });
    const verdict = await bobReceives({ contentType: AUTH_ENVELOPED_CONTENT_TYPE, body });
    expect(verdict).toEqual({ action: 'plaintext', contentType: 'text/plain;charset=utf-8', body: new Uint8Array(Buffer.from('who sent this?')), encrypted: true });
  });

  it('encrypt-then-sign (RFC 8591 §4.3: receivers SHOULD accept it) is accepted with a warning', async () => {
    const encrypted = await encryptAuthEnveloped({ content: cpimEntity({ text: 'reversed' }), recipients: [bob] });
    const signed = await signEntity(entityOf('Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data\r\n\r\n', encrypted), {
      ourIdentity: identity(alice),
      signingTime: T,
      includeSignerCertificate: true,
    });
    const verdict = expectAccept(await bobReceives({ contentType: SIGNED_CONTENT_TYPE, body: signed }));
    expect(verdict.label).toBe('encrypted-signed');
    expect(verdict.text).toBe('reversed');
    expect(verdict.warnings).toEqual(['signed-outside-encryption']);
  });

  it('signed bare text/plain (the RFC 8591 §10 shape): accepted on signingTime, without a protected To', async () => {
    const sent = await seal({ entity: entityOf('Content-Type: text/plain\r\n\r\n', Buffer.from('Watson, come here - I want to see you.')) });
    const verdict = expectAccept(await bobReceives(sent));
    expect(verdict.cpim).toBeUndefined();
    expect(verdict.protectedTime).toEqual(T);
    expect(verdict.text).toBe('Watson, come here - I want to see you.');
    expect(verdict.warnings).toEqual(['no-protected-recipient']);
  });

  it('a bare SignedData ContentInfo inside the encryption (no MIME header) is read too', async () => {
    const signed = await signEntity(cpimEntity({ text: 'bare' }), { ourIdentity: identity(alice), signingTime: T, includeSignerCertificate: true });
    const body = await encryptAuthEnveloped({ content: signed, recipients: [bob] });
    expect(expectAccept(await bobReceives({ contentType: AUTH_ENVELOPED_CONTENT_TYPE, body })).text).toBe('bare');
  });

  it('protection of the CPIM payload only (RFC 8591 §9.1): the outer CPIM is ignored', async () => {
    const sent = await seal({ entity: entityOf('Content-Type: text/plain;charset=utf-8\r\n\r\n', Buffer.from('payload only')) });
    const outer = buildCpim({
      from: { uri: CAROL }, // unprotected, and not believed
      to: [{ uri: BOB }],
      dateTime: T,
      contentType: AUTH_ENVELOPED_CONTENT_TYPE,
      content: sent.body,
    });
    const verdict = expectAccept(await bobReceives({ contentType: 'message/cpim', body: outer }));
    expect(verdict.text).toBe('payload only');
    expect(verdict.label).toBe('encrypted-signed');
  });

  it('classifyBody sorts the types', () => {
    const kind = (value: string) => classifyBody(parseContentType(value));
    expect(kind('application/pkcs7-mime;smime-type=signed-data')).toBe('cms');
    expect(kind('message/CPIM')).toBe('cpim');
    expect(kind('TEXT/plain')).toBe('plaintext');
    expect(kind('application/pkcs7-signature')).toBe('unsupported');
  });
});

describe('hostile input', () => {
  it('garbage and truncated CMS → 400, never a crash', async () => {
    const sent = await protectFromAlice();
    for (const body of [
      Buffer.alloc(0),
      Buffer.from([0x30]),
      Buffer.from([0x30, 0x80]),
      Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
      Buffer.from('garbage garbage'),
      sent.body.subarray(0, 10),
      sent.body.subarray(0, sent.body.length - 1),
      sent.body.subarray(0, sent.body.length >> 1),
    ]) {
      const verdict = await bobReceives({ contentType: AUTH_ENVELOPED_CONTENT_TYPE, body });
      expect(verdict.action).toBe('reject');
      expect((verdict as RejectVerdict).status).toBe(400);
    }
    expectReject(await bobReceives({ contentType: 'application/pkcs7-mime;;', body: sent.body }), 400, 'malformed');
    expectReject(await bobReceives(sent, { sipFrom: 'not a uri' }), 400, 'malformed');
  });

  it('random bodies under random S/MIME types give a verdict, never an exception', async () => {
    const types = [
      AUTH_ENVELOPED_CONTENT_TYPE,
      SIGNED_CONTENT_TYPE,
      'application/pkcs7-mime',
      'message/cpim',
      'application/pkcs7-mime; smime-type=enveloped-data',
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...types), fc.uint8Array({ maxLength: 600 }), fc.boolean(), async (contentType, bytes, der) => {
        // Half the time start like a DER SEQUENCE, to get past the first byte.
        const body = der ? Uint8Array.from([0x30, ...bytes]) : bytes;
        const verdict = await bobReceives({ contentType, body });
        expect(['reject', 'plaintext']).toContain(verdict.action);
        if (verdict.action === 'reject') expect([400, 415, 493]).toContain(verdict.status);
      }),
      { numRuns: 600 },
    );
  });

  it('flipped bytes of a protected message are rejected, or accepted unchanged (a byte only another recipient reads)', async () => {
    const sent = await protectFromAlice({ text: 'exact text' });
    await fc.assert(
      fc.asyncProperty(fc.nat(sent.body.length - 1), fc.integer({ min: 1, max: 255 }), async (at, xor) => {
        const body = Uint8Array.from(sent.body);
        body[at] = body[at]! ^ xor;
        const verdict = await bobReceives({ contentType: sent.contentType, body });
        if (verdict.action === 'accept') expect(verdict.text).toBe('exact text');
        else {
          expect(verdict.action).toBe('reject');
          expect([400, 493]).toContain((verdict as RejectVerdict).status);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('flipped bytes of a signed-only message never give another accepted text', async () => {
    const sent = await signOnly({ text: 'exact text', from: ALICE, to: BOB, now: NOW, ourIdentity: identity(alice), includeSignerCertificate: true });
    await fc.assert(
      fc.asyncProperty(fc.nat(sent.body.length - 1), fc.integer({ min: 1, max: 255 }), async (at, xor) => {
        const body = Uint8Array.from(sent.body);
        body[at] = body[at]! ^ xor;
        const verdict = await bobReceives({ contentType: sent.contentType, body }, { pins: { [ALICE]: alice.certificateDer } });
        if (verdict.action === 'accept') expect(verdict.text).toBe('exact text');
        else expect(['reject', 'certificate-changed']).toContain(verdict.action);
      }),
      { numRuns: 400 },
    );
  });
});
