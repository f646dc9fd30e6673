/**
 * S/MIME throughput: sipnote's `protectMessage` and `unprotectMessage` (main/im/smime) against
 * the bare WebCrypto operations they are made of, composed by hand. The issue's target: the
 * pipeline takes at most 1.5× the time of its WebCrypto operations.
 *
 *   npm run bench:smime                      # ~65 s: 8 fresh processes, 2 s warm-up, 5 × 1 s rounds
 *   npm run bench:smime -- --quick           # ~15 s: 0.5 s warm-up, 3 × 0.3 s rounds
 *   npm run bench:smime -- --reps 3          # 3 interleaved processes per measurement
 *   npm run bench:smime -- --only protect --in-flight 1 --cpu-prof   # build/bench/profiles/*.cpuprofile
 *
 * The method is bench/parse.ts's: every measurement runs in its own fresh `node` process (this
 * file, started with `--worker <kind> --in-flight <n>`), warms up, calibrates a round to the
 * requested length, times the rounds and prints one JSON line; the parent takes medians and
 * prints the table and the ratios. A measurement is one kind at one concurrency:
 *
 * - 1 in flight: each message awaited before the next starts (the latency view);
 * - 32 in flight: as /work/shared/notes/performance.md §4 measured WebCrypto, enough to keep
 *   the libuv pool (4 threads) and both cores busy (the throughput view).
 *
 * The fixture (the same in every process): two EC P-256 identities from `createIdentity`, Alice
 * sending to Bob, a 100-character text, Alice's certificate left out of the SignedData (Bob has
 * it pinned: the steady state of a conversation, RFC 8591 §7.1), encrypted to Bob and to Alice
 * herself (the `encryptToSelf` default). That gives a signed entity of about 700 octets inside
 * the AuthEnvelopedData.
 *
 * What each kind does per message:
 *
 * - `protect`: `protectMessage` with a fresh `now` and a random imdn.Message-ID.
 * - `unprotect`: `unprotectMessage` as Bob, with Alice's certificate pinned and a
 *   MemoryReplayCache that remembers every accepted message. The messages come from a pool of
 *   distinct protected messages made before the clock starts; the pool is walked in order and
 *   each pass over it gets a new cache, so no message is ever seen twice by the same cache, and
 *   the worker checks that every verdict is `accept` (a replay would skip half the work).
 * - `webcrypto-protect` / `webcrypto-unprotect`: the WebCrypto calls the pipelines make, in the
 *   same order and with the same parallelism (see `webcryptoProtect`), on the same sizes, with
 *   every long-term key imported beforehand and nothing else: no DER, MIME, CPIM, URI or
 *   certificate handling. Per-message calls that no implementation can avoid stay in (the
 *   content key, the ephemeral keys, the KEK import, the import of the sender's ephemeral
 *   point). The content digest is node:crypto's `createHash`, as in signed-data.ts.
 *
 * The ratio is the pipeline's time per message over the WebCrypto composition's, from the
 * median rates; "round trip" is one protect plus one unprotect.
 */
import { spawnSync } from 'node:child_process';
import { createHash, type webcrypto } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { createIdentity, readCertificate, type Identity } from '../main/security/certificates.js';
import { OID, bytesEqual, derAlgorithm, derExplicit, derOctetString, derOid, derSequence, derSetOf, derTime } from '../main/security/cms/der.js';
import { buildMessageEntity, protectMessage, signEntity, signedDataEntity, type ProtectedBody } from '../main/im/smime/protect.js';
import { MemoryReplayCache } from '../main/im/smime/replay-cache.js';
import { unprotectMessage } from '../main/im/smime/unprotect.js';
import { cliFlags, int, median, printTable } from './harness.js';

type CryptoKey = webcrypto.CryptoKey;
const subtle = globalThis.crypto.subtle;

// ---------------------------------------------------------------------------------------------
// The fixture: two identities and a text
// ---------------------------------------------------------------------------------------------

const ALICE = 'sip:alice@example.com';
const BOB = 'sip:bob@example.com';
/** 100 characters, 101 octets in UTF-8 (one é). */
const TEXT = 'Running late: the train is stuck by the old bridge. Please start the café meeting without me. Sorry!';

/** Messages made before timing starts, for the unprotect kinds; far more than 32 in flight. */
const POOL_SIZE = 512;

interface Fixture {
  readonly alice: Identity;
  readonly bob: Identity;
}

async function makeFixture(): Promise<Fixture> {
  if (TEXT.length !== 100) throw new Error(`the text has ${TEXT.length} characters, not 100`);
  const [alice, bob] = await Promise.all([createIdentity({ aor: ALICE }), createIdentity({ aor: BOB })]);
  return { alice, bob };
}

// ---------------------------------------------------------------------------------------------
// The pipelines
// ---------------------------------------------------------------------------------------------

/** What the app's send path does per message (main/im/secure-messaging.ts `send`), minus the SIP. */
function protectOnce(fixture: Fixture): Promise<ProtectedBody> {
  return protectMessage({
    text: TEXT,
    from: ALICE,
    to: BOB,
    now: new Date(),
    ourIdentity: fixture.alice,
    includeSignerCertificate: false,
    peerCertificateDer: fixture.bob.certificateDer,
  });
}

/**
 * What a UAS does per message (main/im/secure-messaging.ts `receive`, which remembers the replay
 * key in its own transaction instead), with Alice pinned; throws unless the message is accepted.
 */
async function unprotectOnce(fixture: Fixture, message: ProtectedBody, replayCache: MemoryReplayCache): Promise<number> {
  const verdict = await unprotectMessage({
    contentType: message.contentType,
    body: message.body,
    sipFrom: ALICE,
    ourAor: BOB,
    ourIdentity: fixture.bob,
    pinnedCertificateDer: () => fixture.alice.certificateDer,
    now: new Date(),
    replayCache,
  });
  if (verdict.action !== 'accept') throw new Error(`unprotectMessage answered ${verdict.action}: ${JSON.stringify(verdict).slice(0, 300)}`);
  if (verdict.text !== TEXT) throw new Error('unprotectMessage returned another text');
  return verdict.content.length;
}

// ---------------------------------------------------------------------------------------------
// The same WebCrypto operations, composed by hand
// ---------------------------------------------------------------------------------------------

const ECDH_P256 = { name: 'ECDH', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

/**
 * Long-term keys, imported once, and byte strings of the real sizes. The pipelines cache their
 * private keys and the signer's public key too; protectMessage does not cache the recipients'
 * public keys (see `webcryptoProtect`).
 */
interface WebCryptoFixture {
  /** Alice's ECDSA key, to sign. */
  readonly signingKey: CryptoKey;
  /** Alice's public key for ECDSA, to verify (what Bob imports from her pinned certificate). */
  readonly verifyingKey: CryptoKey;
  /** The recipients' public keys for ECDH: Bob (the peer) first, then Alice (herself). */
  readonly recipientKeys: readonly CryptoKey[];
  /** Bob's private key for ECDH, to open. */
  readonly bobAgreementKey: CryptoKey;
  /** The signed MIME entity `Content-Type: message/cpim` … as protectMessage builds it. */
  readonly content: Uint8Array;
  /** The DER SET OF signed attributes (contentType, signingTime, messageDigest last). */
  readonly signedAttributesTemplate: Uint8Array;
  /** The MIME entity around the SignedData: what AES-GCM encrypts (about 700 octets). */
  readonly signedEntity: Uint8Array;
  /** Where `content` sits inside `signedEntity` (its eContent). */
  readonly contentOffset: number;
  /** ECC-CMS-SharedInfo for AES-128 wrap without UKM (RFC 5753 §7.2). */
  readonly sharedInfo: Uint8Array;
}

async function makeWebCryptoFixture(fixture: Fixture): Promise<WebCryptoFixture> {
  const { alice, bob } = fixture;
  const alicePoint = readCertificate(alice.certificateDer).subjectPublicKey;
  const bobPoint = readCertificate(bob.certificateDer).subjectPublicKey;
  const [signingKey, verifyingKey, bobPublic, alicePublic, bobAgreementKey] = await Promise.all([
    subtle.importKey('pkcs8', alice.privateKeyPkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']),
    subtle.importKey('raw', alicePoint, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']),
    subtle.importKey('raw', bobPoint, ECDH_P256, false, []),
    subtle.importKey('raw', alicePoint, ECDH_P256, false, []),
    subtle.importKey('pkcs8', bob.privateKeyPkcs8, ECDH_P256, false, ['deriveBits']),
  ]);
  // Real bytes from the pipeline's own builders, made once: only their sizes matter here.
  // protectMessage cuts the time to the whole second (RFC 3428 §11.4), which DateTime shows.
  const now = new Date(Math.floor(Date.now() / 1000) * 1000);
  const content = buildMessageEntity({ text: TEXT, from: ALICE, to: BOB, now, messageId: 'AAAAAAAAAAAAAAAA' });
  const signedData = await signEntity(content, { ourIdentity: alice, signingTime: now, includeSignerCertificate: false });
  const signedEntity = signedDataEntity(signedData);
  const contentOffset = Buffer.from(signedEntity).indexOf(Buffer.from(content));
  if (contentOffset < 0) throw new Error('the signed content is not inside the signed entity');
  const signedAttributesTemplate = derSetOf([
    derSequence(derOid(OID.contentType), derSetOf([derOid(OID.data)])),
    derSequence(derOid(OID.signingTime), derSetOf([derTime(now)])),
    derSequence(derOid(OID.messageDigest), derSetOf([derOctetString(new Uint8Array(32))])),
  ]);
  const sharedInfo = derSequence(derAlgorithm(OID.aes128Wrap), derExplicit(2, derOctetString(Uint8Array.of(0, 0, 0, 128))));
  return {
    signingKey,
    verifyingKey,
    recipientKeys: [bobPublic, alicePublic],
    bobAgreementKey,
    content,
    signedAttributesTemplate,
    signedEntity,
    contentOffset,
    sharedInfo,
  };
}

/** What one recipient needs to open a message: its share of the key agreement. */
interface WrappedKey {
  readonly ephemeralPoint: ArrayBuffer;
  readonly encryptedKey: ArrayBuffer;
}

/** The output of `webcryptoProtect`: the pieces a CMS writer would put into DER. */
interface SealedPieces {
  readonly recipients: readonly WrappedKey[];
  readonly nonce: Uint8Array;
  /** Ciphertext ‖ tag, as WebCrypto returns it. */
  readonly sealed: ArrayBuffer;
  readonly signedAttributes: Uint8Array;
  /** r ‖ s, as WebCrypto returns it. */
  readonly signature: ArrayBuffer;
}

/** X9.63 KDF with SHA-256 for a 128-bit KEK: one digest, then the KEK import (key-agreement.ts `keyEncryptionKey`). */
async function keyEncryptionKey(w: WebCryptoFixture, sharedSecret: ArrayBuffer, usage: 'wrapKey' | 'unwrapKey'): Promise<CryptoKey> {
  const input = new Uint8Array(sharedSecret.byteLength + 4 + w.sharedInfo.length);
  input.set(new Uint8Array(sharedSecret), 0);
  input[sharedSecret.byteLength + 3] = 1;
  input.set(w.sharedInfo, sharedSecret.byteLength + 4);
  const digest = await subtle.digest('SHA-256', input);
  return subtle.importKey('raw', new Uint8Array(digest, 0, 16), 'AES-KW', false, [usage]);
}

/**
 * protectMessage's WebCrypto calls, in its order: the content digest (node:crypto) and the
 * ECDSA signature of the signed attributes; then an AES-128-GCM content key; then, side by
 * side, AES-GCM over the signed entity and for each recipient a fresh ephemeral ECDH key pair,
 * the export of its public point and deriveBits, the KDF, and AES-KW wrap.
 * The one call protectMessage makes beyond these is left out on purpose: it imports each
 * recipient's public key from the certificate for every message (`importRecipientKey`),
 * which an implementation can do once per peer.
 */
async function webcryptoProtect(w: WebCryptoFixture): Promise<SealedPieces> {
  const signedAttributes = w.signedAttributesTemplate.slice();
  signedAttributes.set(createHash('sha256').update(w.content).digest(), signedAttributes.length - 32);
  const signature = await subtle.sign(ECDSA_SHA256, w.signingKey, signedAttributes);
  const contentKey = await subtle.generateKey({ name: 'AES-GCM', length: 128 }, true, ['encrypt']);
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(12));
  const [sealed, ...recipients] = await Promise.all([
    subtle.encrypt({ name: 'AES-GCM', iv: nonce, tagLength: 128 }, contentKey, w.signedEntity),
    ...w.recipientKeys.map((recipientKey) => wrapFor(w, recipientKey, contentKey)),
  ]);
  return { recipients: recipients as WrappedKey[], nonce, sealed: sealed as ArrayBuffer, signedAttributes, signature };
}

async function wrapFor(w: WebCryptoFixture, recipientKey: CryptoKey, contentKey: CryptoKey): Promise<WrappedKey> {
  const ephemeral = (await subtle.generateKey(ECDH_P256, false, ['deriveBits'])) as webcrypto.CryptoKeyPair;
  const [ephemeralPoint, sharedSecret] = await Promise.all([
    subtle.exportKey('raw', ephemeral.publicKey),
    subtle.deriveBits({ name: 'ECDH', public: recipientKey }, ephemeral.privateKey, 256),
  ]);
  const kek = await keyEncryptionKey(w, sharedSecret, 'wrapKey');
  const encryptedKey = await subtle.wrapKey('raw', contentKey, kek, 'AES-KW');
  return { ephemeralPoint, encryptedKey };
}

/**
 * unprotectMessage's WebCrypto calls, in its order, as Bob: import of the sender's ephemeral
 * point, deriveBits, the KDF, AES-KW unwrap, AES-GCM decrypt, then the content digest
 * (node:crypto) and ECDSA verify of the signed attributes. Returns the plaintext length.
 */
async function webcryptoUnprotect(w: WebCryptoFixture, pieces: SealedPieces): Promise<number> {
  const ours = pieces.recipients[0]!;
  const ephemeralKey = await subtle.importKey('raw', ours.ephemeralPoint, ECDH_P256, false, []);
  const sharedSecret = await subtle.deriveBits({ name: 'ECDH', public: ephemeralKey }, w.bobAgreementKey, 256);
  const kek = await keyEncryptionKey(w, sharedSecret, 'unwrapKey');
  const contentKey = await subtle.unwrapKey('raw', ours.encryptedKey, kek, 'AES-KW', { name: 'AES-GCM' }, false, ['decrypt']);
  const plaintext = await subtle.decrypt({ name: 'AES-GCM', iv: pieces.nonce, tagLength: 128 }, contentKey, pieces.sealed);
  const content = new Uint8Array(plaintext, w.contentOffset, w.content.length);
  const digest = createHash('sha256').update(content).digest();
  if (!bytesEqual(digest, pieces.signedAttributes.subarray(pieces.signedAttributes.length - 32))) throw new Error('content digest mismatch');
  if (!(await subtle.verify(ECDSA_SHA256, w.verifyingKey, pieces.signature, pieces.signedAttributes))) throw new Error('signature does not verify');
  return plaintext.byteLength;
}

// ---------------------------------------------------------------------------------------------
// Worker: time one kind at one concurrency in this (fresh) process
// ---------------------------------------------------------------------------------------------

type KindName = 'protect' | 'webcrypto-protect' | 'unprotect' | 'webcrypto-unprotect';
const KIND_NAMES: readonly KindName[] = ['protect', 'webcrypto-protect', 'unprotect', 'webcrypto-unprotect'];

/** The work of one message; `sequence` counts the messages of the run from 0. */
type MessageOperation = (sequence: number) => Promise<unknown>;

interface BatchTime {
  /** Wall-clock seconds. */
  seconds: number;
  /** CPU seconds of the whole process, user + system: the main thread and the libuv pool. */
  cpuSeconds: number;
  /** CPU seconds of the main thread alone (Linux only, 10 ms resolution): the JavaScript side. */
  mainThreadCpuSeconds: number | undefined;
}

/**
 * User + system CPU seconds of the main thread so far, from /proc (fields 14 and 15, in clock
 * ticks of 1/100 s, USER_HZ), or undefined where there is no /proc. The main thread is where all
 * JavaScript runs, the pipeline's own work included; WebCrypto's work runs on the libuv pool.
 */
function mainThreadCpuSeconds(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** Runs `count` messages with at most `inFlight` at a time. */
async function runBatch(operation: MessageOperation, first: number, count: number, inFlight: number): Promise<BatchTime> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await operation(first + next++);
  };
  const mainStart = mainThreadCpuSeconds();
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  const mainEnd = mainThreadCpuSeconds();
  return {
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    mainThreadCpuSeconds: mainStart === undefined || mainEnd === undefined ? undefined : mainEnd - mainStart,
  };
}

/** Makes `count` messages with `inFlight` at a time, in order. */
async function makePool<T>(count: number, inFlight: number, make: () => Promise<T>): Promise<T[]> {
  const pool = new Array<T>(count);
  await runBatch(async (i) => {
    pool[i] = await make();
  }, 0, count, inFlight);
  return pool;
}

interface Sizes {
  /** The SIP body protectMessage returns (DER ContentInfo). */
  body: number;
  /** What AES-GCM encrypts. */
  signedEntity: number;
  /** The signed MIME entity (message/cpim). */
  content: number;
  signedAttributes: number;
}

async function prepare(kind: KindName, fixture: Fixture): Promise<MessageOperation> {
  switch (kind) {
    case 'protect':
      return () => protectOnce(fixture);
    case 'unprotect': {
      const pool = await makePool(POOL_SIZE, 32, () => protectOnce(fixture));
      // One cache per pass over the pool: no message is seen twice by the same cache. A message
      // still in flight from the previous pass keeps the cache it was given.
      let cache = new MemoryReplayCache();
      let pass = 0;
      return (sequence) => {
        const messagePass = Math.floor(sequence / POOL_SIZE);
        if (messagePass !== pass) {
          pass = messagePass;
          cache = new MemoryReplayCache();
        }
        return unprotectOnce(fixture, pool[sequence % POOL_SIZE]!, cache);
      };
    }
    case 'webcrypto-protect': {
      const w = await makeWebCryptoFixture(fixture);
      return () => webcryptoProtect(w);
    }
    case 'webcrypto-unprotect': {
      const w = await makeWebCryptoFixture(fixture);
      const pool = await makePool(POOL_SIZE, 32, () => webcryptoProtect(w));
      return (sequence) => webcryptoUnprotect(w, pool[sequence % POOL_SIZE]!);
    }
  }
}

async function measureSizes(fixture: Fixture): Promise<Sizes> {
  const w = await makeWebCryptoFixture(fixture);
  const message = await protectOnce(fixture);
  return { body: message.body.length, signedEntity: w.signedEntity.length, content: w.content.length, signedAttributes: w.signedAttributesTemplate.length };
}

interface TimingOptions {
  warmupSeconds: number;
  roundSeconds: number;
  rounds: number;
}

interface WorkerResult {
  kind: KindName;
  inFlight: number;
  messagesPerRound: number;
  /** messages/s of each timed round. */
  rates: number[];
  /** CPU µs per message of each timed round (all threads of the process). */
  cpuMicros: number[];
  /** Main-thread CPU µs per message of each timed round; empty without /proc. */
  mainThreadCpuMicros: number[];
  setupSeconds: number;
  sizes: Sizes;
}

async function runWorker(kind: KindName, inFlight: number, timing: TimingOptions): Promise<WorkerResult> {
  const setupStart = process.hrtime.bigint();
  const fixture = await makeFixture();
  const sizes = await measureSizes(fixture);
  const operation = await prepare(kind, fixture);
  const setupSeconds = Number(process.hrtime.bigint() - setupStart) / 1e9;

  let sequence = 0;
  const batch = async (count: number): Promise<BatchTime> => {
    const time = await runBatch(operation, sequence, count, inFlight);
    sequence += count;
    return time;
  };

  // Warm-up: grow the batch until one takes ≥ 50 ms, keep going until warmupSeconds have
  // passed; the batches of full size also calibrate the round.
  let count = inFlight;
  let warmed = 0;
  let calibrationMessages = 0;
  let calibrationSeconds = 0;
  while (warmed < timing.warmupSeconds || calibrationSeconds === 0) {
    const { seconds } = await batch(count);
    warmed += seconds;
    if (seconds < 0.05) count *= 2;
    else {
      calibrationMessages += count;
      calibrationSeconds += seconds;
    }
  }
  const messagesPerRound = Math.max(inFlight, Math.round((calibrationMessages / calibrationSeconds) * timing.roundSeconds));
  const rates: number[] = [];
  const cpuMicros: number[] = [];
  const mainThreadCpuMicros: number[] = [];
  for (let round = 0; round < timing.rounds; round++) {
    const time = await batch(messagesPerRound);
    rates.push(messagesPerRound / time.seconds);
    cpuMicros.push((time.cpuSeconds * 1e6) / messagesPerRound);
    if (time.mainThreadCpuSeconds !== undefined) mainThreadCpuMicros.push((time.mainThreadCpuSeconds * 1e6) / messagesPerRound);
  }
  return { kind, inFlight, messagesPerRound, rates, cpuMicros, mainThreadCpuMicros, setupSeconds, sizes };
}

// ---------------------------------------------------------------------------------------------
// Parent: spawn one worker per kind, concurrency and repetition; summarise
// ---------------------------------------------------------------------------------------------

interface CliOptions {
  quick: boolean;
  reps: number;
  only: KindName[];
  inFlight: number[];
  cpuProf: boolean;
  json: boolean;
  timing: TimingOptions;
}

function parseCli(argv: readonly string[]): CliOptions {
  const flags = cliFlags(argv);
  const quick = flags.has('--quick');
  const valueOf = flags.value;
  const numberOf = flags.positiveNumber;
  const onlyText = valueOf('--only');
  const inFlightText = valueOf('--in-flight');
  return {
    quick,
    reps: Math.round(numberOf('--reps', 1)),
    only: onlyText === undefined ? [...KIND_NAMES] : expandKinds(onlyText),
    inFlight: inFlightText === undefined ? [1, 32] : inFlightText.split(',').map((text) => positiveInteger(text, '--in-flight')),
    cpuProf: argv.includes('--cpu-prof'),
    json: argv.includes('--json'),
    timing: {
      warmupSeconds: numberOf('--warmup', quick ? 0.5 : 2),
      roundSeconds: numberOf('--round', quick ? 0.3 : 1),
      rounds: Math.round(numberOf('--rounds', quick ? 3 : 5)),
    },
  };
}

/** `--only protect` means the pipeline and its WebCrypto composition; a full kind name means just it. */
function expandKinds(text: string): KindName[] {
  const kinds = new Set<KindName>();
  for (const name of text.split(',')) {
    if (name === 'protect' || name === 'unprotect') {
      kinds.add(name);
      kinds.add(`webcrypto-${name}`);
    } else {
      kinds.add(kindName(name));
    }
  }
  return KIND_NAMES.filter((kind) => kinds.has(kind));
}

function kindName(text: string): KindName {
  const found = KIND_NAMES.find((name) => name === text);
  if (found === undefined) throw new Error(`unknown kind ${JSON.stringify(text)}; known: ${KIND_NAMES.join(', ')}`);
  return found;
}

function positiveInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${flag} needs positive integers, not ${JSON.stringify(text)}`);
  return value;
}

const SCRIPT = fileURLToPath(import.meta.url);

function spawnWorker(kind: KindName, inFlight: number, options: CliOptions): WorkerResult {
  const { warmupSeconds, roundSeconds, rounds } = options.timing;
  const nodeArgs: string[] = [];
  if (options.cpuProf) {
    const dir = join(dirname(SCRIPT), 'profiles');
    mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=smime-${kind}-${inFlight}-${Date.now()}.cpuprofile`);
  }
  const args = [
    ...nodeArgs,
    SCRIPT,
    '--worker',
    kind,
    '--in-flight',
    String(inFlight),
    '--warmup',
    String(warmupSeconds),
    '--round',
    String(roundSeconds),
    '--rounds',
    String(rounds),
  ];
  // Generous bound: the planned time three times over, plus start-up and the message pool.
  const timeoutMs = Math.round((warmupSeconds + roundSeconds * rounds) * 3000 + 60_000);
  const child = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'inherit'] });
  if (child.error !== undefined) throw new Error(`worker ${kind}@${inFlight} failed: ${child.error.message}`);
  if (child.status !== 0) throw new Error(`worker ${kind}@${inFlight} exited with ${String(child.status ?? child.signal)}`);
  const line = child.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as WorkerResult;
}

interface Summary {
  kind: KindName;
  inFlight: number;
  rates: number[];
  median: number;
  min: number;
  max: number;
  /** Median CPU µs per message. */
  cpuMicros: number;
  /** Median main-thread CPU µs per message, when measured. */
  mainThreadCpuMicros: number | undefined;
}


function summarise(results: readonly WorkerResult[]): Summary[] {
  const groups = new Map<string, WorkerResult[]>();
  for (const result of results) {
    const key = `${result.kind}@${result.inFlight}`;
    groups.set(key, [...(groups.get(key) ?? []), result]);
  }
  return [...groups.values()].map((runs) => {
    const rates = runs.flatMap((run) => run.rates);
    const mainThread = runs.flatMap((run) => run.mainThreadCpuMicros);
    return {
      kind: runs[0]!.kind,
      inFlight: runs[0]!.inFlight,
      rates,
      median: median(rates),
      min: Math.min(...rates),
      max: Math.max(...rates),
      cpuMicros: median(runs.flatMap((run) => run.cpuMicros)),
      mainThreadCpuMicros: mainThread.length > 0 ? median(mainThread) : undefined,
    };
  });
}



const KIND_LABELS: Readonly<Record<KindName, string>> = {
  protect: 'protectMessage',
  'webcrypto-protect': '  its WebCrypto operations',
  unprotect: 'unprotectMessage',
  'webcrypto-unprotect': '  its WebCrypto operations',
};

const TARGET = 1.5;

function printResults(summaries: readonly Summary[], options: CliOptions): void {
  const { warmupSeconds, roundSeconds, rounds } = options.timing;
  console.log(
    `Throughput: ${options.reps} fresh process(es) per row, ~${warmupSeconds} s warm-up, ${rounds} rounds of ~${roundSeconds} s each; ` +
      'median (min–max) over all rounds.',
  );
  const find = (kind: KindName, inFlight: number): Summary | undefined => summaries.find((s) => s.kind === kind && s.inFlight === inFlight);
  const rows: string[][] = [];
  for (const inFlight of options.inFlight) {
    for (const kind of KIND_NAMES) {
      const s = find(kind, inFlight);
      if (s === undefined) continue;
      const mainThread = s.mainThreadCpuMicros === undefined ? '–' : int(s.mainThreadCpuMicros);
      rows.push([KIND_LABELS[kind], String(inFlight), int(s.median), `${int(s.min)}–${int(s.max)}`, int(1e6 / s.median), int(s.cpuMicros), mainThread, String(s.rates.length)]);
    }
  }
  printTable(['', 'in flight', 'msg/s', 'min–max', 'µs/msg', 'CPU µs/msg', 'main thread', 'rounds'], rows);
  console.log('  CPU µs/msg: user + system time of the whole process (main thread and libuv pool) per message, median.');
  console.log('  main thread: the part of it on the main thread, where all JavaScript runs (WebCrypto computes on the pool).');
  console.log('');

  // Time per message of the pipeline over that of its WebCrypto operations; the round trip is
  // one protect and one unprotect, so its times add up. The CPU ratio is the same for CPU time,
  // which other load on the machine disturbs much less than wall-clock time.
  const ratioRows: string[][] = [];
  const verdicts: string[] = [];
  for (const inFlight of options.inFlight) {
    const cost = (kind: KindName): { time: number; cpu: number } | undefined => {
      const s = find(kind, inFlight);
      return s === undefined ? undefined : { time: 1 / s.median, cpu: s.cpuMicros };
    };
    const sum = (a: ReturnType<typeof cost>, b: ReturnType<typeof cost>): ReturnType<typeof cost> =>
      a === undefined || b === undefined ? undefined : { time: a.time + b.time, cpu: a.cpu + b.cpu };
    const row = (label: string, pipeline: ReturnType<typeof cost>, primitives: ReturnType<typeof cost>): void => {
      if (pipeline === undefined || primitives === undefined) return;
      const ratio = pipeline.time / primitives.time;
      const met = ratio <= TARGET;
      ratioRows.push([
        label,
        String(inFlight),
        int(1 / pipeline.time),
        int(1 / primitives.time),
        `${ratio.toFixed(2)}x`,
        met ? 'met' : 'MISSED',
        `${(pipeline.cpu / primitives.cpu).toFixed(2)}x`,
      ]);
      if (!met) verdicts.push(`${label} with ${inFlight} in flight`);
    };
    const [p, pw, u, uw] = [cost('protect'), cost('webcrypto-protect'), cost('unprotect'), cost('webcrypto-unprotect')];
    row('protect', p, pw);
    row('unprotect', u, uw);
    row('round trip', sum(p, u), sum(pw, uw));
  }
  if (ratioRows.length === 0) return;
  console.log(`Pipeline vs its WebCrypto operations: time per message, pipeline ÷ WebCrypto (target ≤ ${TARGET}x).`);
  console.log('Round trip = one protect + one unprotect: msg/s = 1 / (1/protect + 1/unprotect).');
  printTable(['', 'in flight', 'pipeline msg/s', 'WebCrypto msg/s', 'ratio', `≤ ${TARGET}x`, 'CPU ratio'], ratioRows);
  console.log('');
  console.log(verdicts.length === 0 ? `Target met: every ratio is at most ${TARGET}x.` : `Target MISSED for: ${verdicts.join('; ')}.`);
  console.log(
    '  Shared 2-vCPU VM: the speed of a whole process can differ by 1.5x from the next one; ' +
      (options.reps === 1 ? 'rerun with --reps 3 before believing a ratio.' : 'compare the ratios, not the rates of different runs.'),
  );
}

async function main(argv: readonly string[]): Promise<void> {
  const workerIndex = argv.indexOf('--worker');
  if (workerIndex >= 0) {
    const kind = kindName(argv[workerIndex + 1] ?? '');
    const options = parseCli(argv);
    const inFlight = options.inFlight[0] ?? 1;
    console.log(JSON.stringify(await runWorker(kind, inFlight, options.timing)));
    return;
  }

  const options = parseCli(argv);
  const threadPool = process.env['UV_THREADPOOL_SIZE'] ?? '4 (default)';
  console.log(
    `sipnote S/MIME benchmark — Node ${process.version}, OpenSSL ${process.versions.openssl}, ` +
      `${availableParallelism()} CPUs, libuv pool ${threadPool}, load average before the run ${loadavg()[0]!.toFixed(2)}`,
  );

  const results: WorkerResult[] = [];
  // Interleaved: each pipeline right next to its WebCrypto composition, repetition by repetition.
  for (const inFlight of options.inFlight) {
    for (let rep = 0; rep < options.reps; rep++) {
      for (const kind of options.only) {
        process.stderr.write(`  timing ${kind}, ${inFlight} in flight (process ${rep + 1}/${options.reps})…\n`);
        results.push(spawnWorker(kind, inFlight, options));
      }
    }
  }
  const sizes = results[0]?.sizes;
  if (sizes !== undefined) {
    console.log(
      `Alice → Bob, EC P-256, ${TEXT.length}-character text, signer certificate left out (pinned), encrypted to Bob and to Alice: ` +
        `message/cpim entity ${sizes.content} B, signed attributes ${sizes.signedAttributes} B, ` +
        `signed entity (AES-GCM plaintext) ${sizes.signedEntity} B, SIP body ${sizes.body} B.`,
    );
  }
  console.log('');
  printResults(summarise(results), options);
  if (options.json) for (const result of results) console.log(JSON.stringify(result));
  if (options.cpuProf) console.log(`\nCPU profiles: ${join(dirname(SCRIPT), 'profiles')}`);
}

await main(process.argv.slice(2));
