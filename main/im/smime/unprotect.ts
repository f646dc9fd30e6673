/**
 * The receiver's side of an S/MIME MESSAGE body: from the SIP Content-Type and body to a
 * verdict (accept, reject with a status, replay, certificate changed, or plaintext for the
 * caller's legacy policy). Sans-I/O apart from WebCrypto: our identity, the pinned
 * certificates, the clock and the replay cache are inputs.
 *
 * The checks, in order (design.md security section; RFC 8591, RFC 3428 §11.4, RFC 3261 §23.2):
 *
 *  1. Top-level type. Not one we open → 415 with Accept (RFC 8591 §7.3, RFC 3261 §8.2.3).
 *     text/plain, multipart/mixed|alternative and unsigned message/cpim → `plaintext`: the caller
 *     applies its per-contact legacy policy. A message/cpim whose payload is S/MIME (RFC 8591
 *     §9.1, protection of the payload only) is opened; its outer CPIM headers are ignored.
 *  2. Layers, decided by the CMS ContentInfo OID and never by the smime-type parameter:
 *     - AuthEnvelopedData / EnvelopedData: decrypt. No RecipientInfo for us, a failed GCM tag
 *       or key unwrap, or a cipher we lack → 493 with our certificate as certs-only (RFC 3261
 *       §23.2; never a 493 without it, which would mean "this UA does not encrypt" and hand an
 *       attacker a downgrade lever).
 *     - SignedData: exactly one signer, verified with the embedded certificate or, when the
 *       sender left it out (RFC 8591 §7.1), the pinned certificate(s) of the SIP From.
 *     Sign-then-encrypt is what RFC 8591 §4.3 requires of senders; encrypt-then-sign is also
 *     read (its SHOULD for receivers). At most one encryption and one signature layer.
 *     Encrypted but unsigned: AuthEnvelopedData → `plaintext` with `encrypted: true` (nobody
 *     vouches for the sender, RFC 8551 §2.4.4); legacy EnvelopedData (AES-CBC, malleable,
 *     RFC 8591 §12) → 400.
 *  3. Identity (RFC 8591 §12, RFC 3261 §23.2): a SIP URI of the signer's certificate must equal
 *     the SIP From AoR, the CPIM From must equal it too, and the CPIM To must name us (this is
 *     what stops surreptitious forwarding). A mismatch → 403.
 *  4. Dates (RFC 3428 §11.4): signingTime and CPIM DateTime must agree (±2 s by default) → else
 *     400; the protected time T is DateTime, or signingTime when there is no DateTime (bare
 *     text/plain signed content, the RFC 8591 §10 shape, or a CPIM without one); no date under
 *     the signature at all → 400.
 *  5. Freshness on T: more than 5 min ahead or more than 72 h old → 400 "Incorrect Date or
 *     Time"; older than 5 min → accepted with `late: true` (RFC 3428 §11.4: MAY accept, SHOULD
 *     warn of a possible replay). Then the certificate must be valid at T, and for signing
 *     (keyUsage) → else 403.
 *  6. Replay cache, key SHA-256(signer certificate) ‖ messageDigest → `replay` (the caller
 *     answers 200 again and shows nothing).
 *  7. Pinning (RFC 3261 §23.2): a certificate other than the pinned one(s) → `certificate-changed`;
 *     nothing pinned → accepted with `pinNow`. This comes last on purpose: the user is asked
 *     about a new certificate only for a message that passed everything else.
 *  8. Accept: the key goes into the replay cache (unless the caller does it itself, see
 *     `rememberReplay`), and the verdict carries the text, the protected CPIM envelope, the
 *     signer's certificate and fingerprint, and the label `encrypted-signed` or `signed`.
 *
 * Why 400 for a signer we do not know (signer certificate left out, and not pinned): RFC 8591
 * §7.1 lets a sender leave its certificate out when it believes we have it, and defines no
 * error for a wrong belief. 493 means "I cannot decrypt this" (RFC 3261 §21.4.28) and would make
 * the sender re-encrypt rather than include its certificate; 415 would claim we lack S/MIME
 * (a downgrade lever, RFC 3261 §23.2); 403 says "do not try again". 400 with the reason phrase
 * "Unknown Signer Certificate" says the request as sent cannot be processed, and a sender that
 * left its certificate out should send again with it.
 *
 * Every CmsError and ParseError becomes a verdict with a status and a reason; nothing hostile
 * in the body can make this function throw.
 */
import { fingerprintSha256 } from '../../security/certificates.js';
import { openEnvelope, type OpenedEnvelope } from '../../security/cms/auth-enveloped-data.js';
import { CmsError, OID, bytesEqual, readDer, readOid, readSequence } from '../../security/cms/der.js';
import { beginVerifySignedData, certsOnly, type VerifiedSignedData } from '../../security/cms/signed-data.js';
import { formatContentType, mediaTypeOf, parseContentType, type ContentType } from '../../sip/header-values.js';
import { ParseError } from '../../sip/message/parse-error.js';
import { TEXT_CHARSETS } from '../../sip/ua/request-policy.js';
import { aorOf, formatUri, isImUri, isSipUri, parseUri, uriEquals, type Uri } from '../../sip/uri.js';
import {
  CPIM_CORE_NAMESPACE,
  cpimDateTime,
  cpimFrom,
  cpimHeader,
  cpimHeaderAddress,
  cpimHeaders,
  cpimTo,
  parseCpim,
  sameCpimNamespace,
  type CpimMessage,
} from '../cpim.js';
import { CERTS_ONLY_CONTENT_TYPE, SMIME_ACCEPT, classifyBody } from './media-types.js';
import { decodeTransferEncoding, parseMimeEntity, type MimeEntity } from './mime-entity.js';
import { IMDN_NAMESPACE, type OurIdentity } from './protect.js';
import { replayKeyOf, type ReplayCache } from './replay-cache.js';

// ---------------------------------------------------------------------------------------------
// Input and verdicts

export interface FreshnessPolicy {
  /** A protected time further ahead than this → 400 Incorrect Date or Time. */
  readonly maxFutureSkewMs: number;
  /** Older than this → 400 Incorrect Date or Time (72 h: Kamailio msilo's default store time). */
  readonly maxAgeMs: number;
  /** Older than this (and not too old) → accepted with `late: true`. */
  readonly lateAfterMs: number;
  /** signingTime and CPIM DateTime may differ by this much (signingTime has whole seconds). */
  readonly maxSigningTimeSkewMs?: number;
}

export const DEFAULT_FRESHNESS_POLICY: Required<FreshnessPolicy> = {
  maxFutureSkewMs: 5 * 60_000,
  maxAgeMs: 72 * 3600_000,
  lateAfterMs: 5 * 60_000,
  maxSigningTimeSkewMs: 2_000,
};

export interface UnprotectInput {
  /** The SIP Content-Type header value. */
  readonly contentType: string;
  /** The SIP body. */
  readonly body: Uint8Array;
  /** The SIP Content-Transfer-Encoding header value, if any (RFC 8591 §5: base64 must be read). */
  readonly contentTransferEncoding?: string;
  /** The URI of the SIP From header (RFC 8591 §12: the identity the UA relies on). */
  readonly sipFrom: string;
  /** Our AoR: the CPIM To must name it. */
  readonly ourAor: string;
  readonly ourIdentity: OurIdentity;
  /**
   * The certificate(s) pinned for a contact, looked up by the canonical AoR string
   * `formatUri(aorOf(parseUri(sipFrom)))`. Several are allowed (one per device, or the old and
   * the new one after the user accepted a change, RFC 3261 §23.2).
   */
  readonly pinnedCertificateDer?: (aor: string) => Uint8Array | readonly Uint8Array[] | undefined;
  readonly now: Date;
  readonly replayCache: ReplayCache;
  readonly policy?: FreshnessPolicy;
  /**
   * Put the key of an accepted message into `replayCache` here (default true). A caller that
   * stores messages in the same SQLite database as the cache passes false and remembers
   * `replayKey` in the transaction that stores the message, so that a crash between the two
   * can neither lose the message nor show it twice.
   */
  readonly rememberReplay?: boolean;
}

export type MessageLabel = 'encrypted-signed' | 'signed';

/** The CPIM metadata under the signature (RFC 3862 §4, RFC 5438 §6). */
export interface ProtectedEnvelope {
  readonly from: string;
  readonly fromName?: string;
  readonly to: readonly string[];
  /** RFC 3862 §4.4. When absent, the CMS signingTime is the protected time. */
  readonly dateTime?: Date;
  readonly messageId?: string;
  /** imdn.Disposition-Notification values, e.g. `positive-delivery`, `display`. */
  readonly dispositionNotification: readonly string[];
  /**
   * imdn.IMDN-Record-Route URIs in order (RFC 5438 §6.5), when there are any: the notification
   * goes to the first and copies them all into IMDN-Route (§6.6, §7.2.1).
   */
  readonly recordRoute?: readonly string[];
}

export type UnprotectWarning =
  /** SignedData with SHA-1 (the RFC 3853 floor): verified, but weak. */
  | 'weak-digest'
  /** Legacy EnvelopedData (AES-CBC): confidential, integrity from the signature only. */
  | 'legacy-encryption'
  /** Encrypt-then-sign: the signer vouches for the ciphertext, maybe not for its authorship (RFC 8551 §3.7). */
  | 'signed-outside-encryption'
  /** The signed content was bare text/plain: no protected To, so forwarding cannot be detected. */
  | 'no-protected-recipient';

/** What an accepted (or held) message holds. */
export interface UnprotectedMessage {
  readonly label: MessageLabel;
  /** The text, for a text/plain payload in a charset we read; undefined for other payloads. */
  readonly text: string | undefined;
  /** The payload's Content-Type as written (`text/plain;charset=utf-8`, `message/imdn+xml`, …). */
  readonly contentType: string;
  readonly content: Uint8Array;
  /** The CPIM envelope; undefined when the signed content was bare text/plain (RFC 8591 §10). */
  readonly cpim: ProtectedEnvelope | undefined;
  /** T: the protected time the freshness checks used. */
  readonly protectedTime: Date;
  readonly signingTime?: Date;
  readonly signerFingerprint: string;
  readonly signerCertificateDer: Uint8Array;
  /** More than `lateAfterMs` old: show "delivered late / possible replay" (RFC 3428 §11.4). */
  readonly late: boolean;
  /** The replay-cache key, and until when it must be kept. */
  readonly replayKey: string;
  readonly replayExpiresAt: Date;
  readonly warnings: readonly UnprotectWarning[];
}

export interface AcceptVerdict extends UnprotectedMessage {
  readonly action: 'accept';
  /** Nothing was pinned for this AoR: pin this certificate now (trust on first use). */
  readonly pinNow?: Uint8Array;
}

/** Why a body was refused; stable, for logs and tests. The status each one gets is in brackets. */
export type RejectProblem =
  /** [415] a top-level type, smime-type, signed content type or CPIM Require we do not handle */
  | 'unsupported-media-type'
  /** [400] undecodable: bad Content-Type, MIME, CPIM, DER or base64; a layer repeated or nested too deep */
  | 'malformed'
  /** [493] not encrypted to us, GCM tag or key unwrap failed, or a cipher we lack */
  | 'undecipherable'
  /** [400] legacy EnvelopedData (AES-CBC) with no signature inside */
  | 'unsigned'
  /** [400] the signer left its certificate out and none is pinned for the SIP From */
  | 'unknown-signer'
  /** [400] the signature or the messageDigest does not match */
  | 'bad-signature'
  | 'unsupported-signature-algorithm'
  /** [403] no SIP URI of the signer certificate is the SIP From AoR */
  | 'identity-mismatch'
  /** [403] the signed CPIM From is not the SIP From AoR */
  | 'cpim-from-mismatch'
  /** [403] the signed CPIM To does not name us */
  | 'not-for-us'
  /** [400] signingTime and CPIM DateTime disagree */
  | 'date-mismatch'
  /** [400] no date under the signature (RFC 3428 §11.4) */
  | 'no-protected-date'
  /** [403] the signer certificate is not valid at the protected time, or not for signing */
  | 'certificate-not-valid'
  /** [400 Incorrect Date or Time] */
  | 'date-in-future'
  /** [400 Incorrect Date or Time] */
  | 'date-too-old'
  /** [500] our own key, certificate or AoR is unusable, or an unexpected error */
  | 'local-error';

export interface RejectVerdict {
  readonly action: 'reject';
  readonly status: 400 | 403 | 415 | 493 | 500;
  /** The SIP reason phrase. */
  readonly reason: string;
  readonly problem: RejectProblem;
  /** For logs: what exactly went wrong. Not for the wire. */
  readonly detail: string;
  /** Headers for the response (Accept on a 415). */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** The response body (our certificate as certs-only on a 493) and its Content-Type. */
  readonly body?: Uint8Array;
  readonly contentType?: string;
}

export interface ReplayVerdict {
  readonly action: 'replay';
  /** Answer 200 again (a retransmission after a lost 200 is harmless) and show nothing. */
  readonly status: 200;
  readonly replayKey: string;
  readonly signerFingerprint: string;
  readonly messageId?: string;
}

export interface CertificateChangedVerdict {
  readonly action: 'certificate-changed';
  /** What to answer while the user has not accepted the new certificate. */
  readonly status: 403;
  readonly reason: string;
  /** The canonical AoR the pin is kept under. */
  readonly aor: string;
  readonly presentedCertificateDer: Uint8Array;
  readonly presentedFingerprint: string;
  readonly pinnedFingerprints: readonly string[];
  /**
   * The message, verified with the presented certificate and otherwise acceptable. Not to be
   * shown as verified before the user accepts the certificate; its replay key is not
   * remembered.
   */
  readonly held: UnprotectedMessage;
}

export interface PlaintextVerdict {
  readonly action: 'plaintext';
  /** The Content-Type of `body`: the SIP one, or the decrypted entity's when `encrypted`. */
  readonly contentType: string;
  readonly body: Uint8Array;
  /** True when it came out of an AuthEnvelopedData without any signature: confidential, but anyone could have sent it. */
  readonly encrypted: boolean;
}

export type UnprotectVerdict = AcceptVerdict | RejectVerdict | ReplayVerdict | CertificateChangedVerdict | PlaintextVerdict;

// ---------------------------------------------------------------------------------------------
// The pipeline

/** Raised inside the pipeline to end it with a verdict. */
class Rejection extends Error {
  constructor(readonly verdict: RejectVerdict) {
    super(verdict.detail);
  }
}

function reject(
  status: RejectVerdict['status'],
  reason: string,
  problem: RejectProblem,
  detail: string,
  extra: Partial<Pick<RejectVerdict, 'headers' | 'body' | 'contentType'>> = {},
): Rejection {
  return new Rejection({
    action: 'reject',
    status,
    reason,
    problem,
    detail,
    headers: extra.headers ?? [],
    ...(extra.body ? { body: extra.body } : {}),
    ...(extra.contentType ? { contentType: extra.contentType } : {}),
  });
}

const malformed = (detail: string): Rejection => reject(400, 'Bad Request', 'malformed', detail);

/** Runs the receiver's checks (see the file comment). Never throws on hostile input. */
export async function unprotectMessage(input: UnprotectInput): Promise<UnprotectVerdict> {
  try {
    return await unprotect(input);
  } catch (error) {
    if (error instanceof Rejection) return error.verdict;
    if (error instanceof ParseError || error instanceof CmsError) return malformed(error.message).verdict;
    // A bug, or a WebCrypto failure on our side: answer, do not crash the UAS.
    return reject(500, 'Server Internal Error', 'local-error', `unexpected: ${(error as Error)?.message ?? String(error)}`).verdict;
  }
}

async function unprotect(input: UnprotectInput): Promise<UnprotectVerdict> {
  const type = parseOr400(() => sipContentType(input.contentType));
  switch (classifyBody(type)) {
    case 'unsupported':
      throw reject(415, 'Unsupported Media Type', 'unsupported-media-type', `${mediaTypeOf(type)} is not a body we open`, {
        headers: [['Accept', SMIME_ACCEPT]],
      });
    case 'plaintext':
      return { action: 'plaintext', contentType: input.contentType, body: input.body, encrypted: false };
    case 'cpim': {
      // RFC 8591 §9.1: the protection may wrap only the CPIM payload. The outer CPIM headers
      // are then unprotected, and nothing below looks at them.
      const outer = parseOr400(() => parseCpim(input.body));
      const payloadType = parseOr400(() => parseContentType(outer.contentType, 'Content-Type'));
      if (classifyBody(payloadType) !== 'cms') return { action: 'plaintext', contentType: input.contentType, body: input.body, encrypted: false };
      const encoding = outer.contentHeaders.find(([name]) => name.toLowerCase() === 'content-transfer-encoding')?.[1];
      return openCms(input, cmsBytes(outer.content, encoding));
    }
    case 'cms':
      return openCms(input, cmsBytes(input.body, input.contentTransferEncoding));
  }
}

/**
 * The DER of a pkcs7-mime body. A sender that went through a 7-bit hop base64-encodes it
 * (RFC 8591 §5); the Content-Transfer-Encoding header may have been lost on the way, but a DER
 * ContentInfo starts with 0x30 and base64 never does, so the body itself tells.
 */
function cmsBytes(body: Uint8Array, encoding: string | undefined): Uint8Array {
  if (encoding !== undefined) return parseOr400(() => decodeTransferEncoding(body, encoding));
  if (body.length > 0 && body[0] !== 0x30) return parseOr400(() => decodeTransferEncoding(body, 'base64'));
  return body;
}

interface Layers {
  encryption?: OpenedEnvelope;
  /** Read and checked up to the signature itself, which is `signatureChecked`. */
  signature?: VerifiedSignedData;
  /**
   * With `signature`: settles when its signature is verified (or throws the Rejection for a
   * bad one). When the signature was the last layer opened, its public-key operation may still
   * be running: the caller must await this before any verdict (see `checkSignedMessage`).
   */
  signatureChecked?: Promise<void>;
  signedInsideEncryption: boolean;
  /** The innermost entity: what the user sent. */
  entity: MimeEntity;
}

/** At most: encryption, signature, and one MIME wrapper each; more is abuse. */
const MAX_LAYERS = 4;

/**
 * The sender as the SIP From names it, read once per message: its AoR, the canonical text the
 * pins are kept under, and the pinned certificates (asked for once, so that the signature and
 * the pin comparison see the same set).
 */
interface Sender {
  readonly aor: Uri;
  readonly aorText: string;
  pinned(): readonly Uint8Array[];
}

function senderOf(input: UnprotectInput): Sender {
  const aor = senderAor(input.sipFrom);
  const aorText = formatUri(aor);
  let pinned: readonly Uint8Array[] | undefined;
  return {
    aor,
    aorText,
    pinned: () => (pinned ??= pinnedCertificates(input, aorText)),
  };
}

async function openCms(input: UnprotectInput, der: Uint8Array): Promise<UnprotectVerdict> {
  const sender = senderOf(input);
  const layers = await openLayers(input, sender, der);
  const { signature, encryption } = layers;
  if (!signature) {
    if (encryption?.authenticated) {
      return { action: 'plaintext', contentType: formatContentType(layers.entity.contentType), body: layers.entity.body, encrypted: true };
    }
    // AES-CBC without a signature can be altered undetected (RFC 8591 §12, Efail).
    throw reject(400, 'Unsigned Encrypted Body', 'unsigned', 'legacy EnvelopedData without a signature inside is not accepted');
  }
  return checkSignedMessage(input, sender, layers, signature);
}

async function openLayers(input: UnprotectInput, sender: Sender, first: Uint8Array): Promise<Layers> {
  let der = first;
  let encryption: OpenedEnvelope | undefined;
  let signature: VerifiedSignedData | undefined;
  let signatureChecked: Promise<void> | undefined;
  let signedInsideEncryption = false;
  try {
    for (let depth = 0; depth < MAX_LAYERS; depth++) {
      // A signature is verified before anything inside it is opened (or judged, on error).
      if (signatureChecked !== undefined) await signatureChecked;
      const contentType = contentInfoType(der);
      let content: Uint8Array;
      if (contentType === OID.authEnvelopedData || contentType === OID.envelopedData) {
        if (encryption) throw malformed('the body is encrypted twice');
        encryption = await decrypt(input.ourIdentity, der);
        content = encryption.content;
      } else if (contentType === OID.signedData) {
        // RFC 3261 §23.3: one signature per body.
        if (signature) throw malformed('the body is signed twice');
        ({ signature, signatureChecked } = beginVerify(der, sender.pinned()));
        signedInsideEncryption = encryption !== undefined;
        content = signature.content;
      } else {
        throw malformed(`the body holds CMS content type ${contentType}, not a signed or encrypted message`);
      }
      // The content is a MIME entity (RFC 8551 §3.1). Some senders put the inner ContentInfo in
      // bare; a MIME header line cannot start with 0x30 followed by DER, so try that first.
      if (looksLikeContentInfo(content)) {
        der = content;
        continue;
      }
      const entity = parseOr400(() => parseMimeEntity(content));
      if (classifyBody(entity.contentType) === 'cms') {
        der = cmsBytes(entity.body, undefined);
        continue;
      }
      const layers: Layers = { signedInsideEncryption, entity };
      if (encryption) layers.encryption = encryption;
      if (signature) layers.signature = signature;
      // Handed on unsettled: the caller's checks of the entity overlap the public-key operation.
      if (signatureChecked) layers.signatureChecked = signatureChecked;
      return layers;
    }
    throw malformed('too many nested S/MIME layers');
  } catch (error) {
    // A bad signature outranks whatever went wrong after it was read, as when it was verified first.
    if (signatureChecked !== undefined) await signatureChecked;
    throw error;
  }
}

/** The ContentInfo's contentType OID (RFC 5652 §3). */
function contentInfoType(der: Uint8Array): string {
  try {
    return readOid(readSequence(readDer(der, 'ContentInfo'), 'ContentInfo')[0], 'ContentInfo contentType');
  } catch (error) {
    throw malformed(error instanceof Error ? error.message : 'not a CMS ContentInfo');
  }
}

function looksLikeContentInfo(bytes: Uint8Array): boolean {
  if (bytes[0] !== 0x30) return false;
  try {
    contentInfoType(bytes);
    return true;
  } catch {
    return false;
  }
}

async function decrypt(ourIdentity: OurIdentity, der: Uint8Array): Promise<OpenedEnvelope> {
  let opened: OpenedEnvelope;
  try {
    opened = await openEnvelope(der, ourIdentity);
  } catch (error) {
    if (!(error instanceof CmsError)) throw error;
    switch (error.code) {
      case 'no-recipient':
      case 'decryption-failed':
      case 'unsupported-algorithm':
        // RFC 3261 §23.2 / RFC 8591 §7.3: 493, with our certificate so that the sender can
        // encrypt to the right key (RFC 3261 §21.4.28).
        throw reject(493, 'Undecipherable', 'undecipherable', error.message, {
          body: certsOnly([ourIdentity.certificateDer]),
          contentType: CERTS_ONLY_CONTENT_TYPE,
        });
      case 'key-mismatch':
      case 'invalid-argument':
        throw reject(500, 'Server Internal Error', 'local-error', error.message);
      default:
        throw malformed(error.message);
    }
  }
  if (opened.contentType !== OID.data) throw malformed(`the encrypted content is ${opened.contentType}, not a MIME entity (id-data)`);
  return opened;
}

/**
 * Reads a SignedData and starts verifying its signature (`beginVerifySignedData`): what it
 * returns is not verified until `signatureChecked` has resolved. Both the synchronous part and
 * the signature end in the same Rejections.
 */
function beginVerify(der: Uint8Array, candidates: readonly Uint8Array[]): { signature: VerifiedSignedData; signatureChecked: Promise<void> } {
  try {
    const pending = beginVerifySignedData(der, { candidateCertificatesDer: candidates });
    return { signature: pending.unverified, signatureChecked: pending.signatureChecked.catch(verificationRejection) };
  } catch (error) {
    return verificationRejection(error);
  }
}

function verificationRejection(error: unknown): never {
  if (!(error instanceof CmsError)) throw error;
  switch (error.code) {
    case 'unknown-signer':
      throw reject(400, 'Unknown Signer Certificate', 'unknown-signer', error.message);
    case 'bad-signature':
      throw reject(400, 'Invalid Signature', 'bad-signature', error.message);
    case 'unsupported-algorithm':
      throw reject(400, 'Unsupported Signature Algorithm', 'unsupported-signature-algorithm', error.message);
    default:
      throw malformed(error.message);
  }
}

/**
 * Steps 3 to 8 of the file comment. The checks of steps 3 to 5 read only the message, so they
 * run while the signature may still be in verification (`layers.signatureChecked`); nothing is
 * decided before it has settled, and a bad signature outranks what they found, as it did when
 * the signature was verified first. Steps 6 to 8 (the replay cache and the pins) come after.
 */
async function checkSignedMessage(input: UnprotectInput, sender: Sender, layers: Layers, signature: VerifiedSignedData): Promise<UnprotectVerdict> {
  let judged: JudgedMessage;
  try {
    judged = judgeSignedMessage(input, sender, layers, signature);
  } catch (error) {
    await layers.signatureChecked;
    throw error;
  }
  await layers.signatureChecked;
  const { message, envelope } = judged;
  const { replayKey: key, signerFingerprint, signerCertificateDer: signerDer } = message;
  const replay = (): ReplayVerdict => ({
    action: 'replay',
    status: 200,
    replayKey: key,
    signerFingerprint,
    ...(envelope?.messageId !== undefined ? { messageId: envelope.messageId } : {}),
  });

  // 6. Replay.
  if (input.replayCache.seen(key)) return replay();

  // 7. Pinning (RFC 3261 §23.2): a different certificate is loud, never silent.
  const aor = sender.aorText;
  const pinned = sender.pinned();
  if (pinned.length > 0 && !pinned.some((der) => bytesEqual(der, signerDer))) {
    return {
      action: 'certificate-changed',
      status: 403,
      reason: 'Signer Certificate Changed',
      aor,
      presentedCertificateDer: signerDer,
      presentedFingerprint: signerFingerprint,
      pinnedFingerprints: pinned.map((der) => fingerprintSha256(der)),
      held: message,
    };
  }

  // 8. Accept.
  if (input.rememberReplay !== false && !input.replayCache.remember(key, message.replayExpiresAt)) return replay();
  return { action: 'accept', ...message, ...(pinned.length === 0 ? { pinNow: signerDer } : {}) };
}

/** What steps 3 to 5 made of a signed message (see `checkSignedMessage`). */
interface JudgedMessage {
  readonly message: UnprotectedMessage;
  readonly envelope: ProtectedEnvelope | undefined;
}

/** Steps 3 to 5: the identities, the dates and the certificate; throws the Rejection of the first that fails. */
function judgeSignedMessage(input: UnprotectInput, sender: Sender, layers: Layers, signature: VerifiedSignedData): JudgedMessage {
  const policy = input.policy === undefined ? DEFAULT_FRESHNESS_POLICY : { ...DEFAULT_FRESHNESS_POLICY, ...input.policy };
  const warnings: UnprotectWarning[] = [];
  if (signature.digestAlgorithm === 'SHA-1') warnings.push('weak-digest');
  if (layers.encryption && !layers.encryption.authenticated) warnings.push('legacy-encryption');
  if (layers.encryption && !layers.signedInsideEncryption) warnings.push('signed-outside-encryption');

  // What was signed: our CPIM layout, or the bare text/plain of RFC 8591 §10.
  const entityType = mediaTypeOf(layers.entity.contentType);
  let cpim: CpimMessage | undefined;
  let payloadType: string;
  let payload: Uint8Array;
  if (entityType === 'message/cpim') {
    cpim = parseOr400(() => parseCpim(layers.entity.body));
    const unknownRequired = cpim.required.filter(
      (name) => !sameCpimNamespace(name.namespace, CPIM_CORE_NAMESPACE) && !sameCpimNamespace(name.namespace, IMDN_NAMESPACE),
    );
    if (unknownRequired.length > 0) {
      // RFC 3862 §3.5 names no failure response; 415 says "we cannot take this content".
      throw reject(415, 'Unsupported Media Type', 'unsupported-media-type', `CPIM Require names ${unknownRequired.map((n) => n.name).join(', ')}`, {
        headers: [['Accept', SMIME_ACCEPT]],
      });
    }
    payloadType = cpim.contentType;
    payload = cpim.content;
  } else if (entityType === 'text/plain') {
    warnings.push('no-protected-recipient');
    payloadType = formatContentType(layers.entity.contentType);
    payload = layers.entity.body;
  } else {
    throw reject(415, 'Unsupported Media Type', 'unsupported-media-type', `signed content of type ${entityType}`, {
      headers: [['Accept', SMIME_ACCEPT]],
    });
  }

  // 3. Identity: certificate ↔ SIP From ↔ CPIM From, and CPIM To ↔ us.
  const signerDer = signature.signerCertificateDer;
  const sipFromAor = sender.aor;
  let ourAor: Uri;
  try {
    ourAor = parsedAor(input.ourAor);
  } catch (error) {
    throw reject(500, 'Server Internal Error', 'local-error', `our AoR does not parse: ${(error as Error).message}`);
  }
  // Read once per distinct certificate (knownCertificate, keyed by the whole DER): the signer's own.
  const signer = signature.signerCertificate;
  const certificate = parseOr400(() => signer.info);
  // RFC 8591 §4.4.1: SIP URIs in the SAN; the RFC 3261 §23.1 `user@domain` form of old certificates as a fallback.
  const certificateIdentities = certificate.sipUris.length > 0 ? certificate.sipUris : certificate.emailAddresses.map((email) => `sip:${email}`);
  if (!certificateIdentities.some((uri) => sameAddress(uri, sipFromAor))) {
    throw reject(403, 'Signer Identity Mismatch', 'identity-mismatch', `the signer certificate (${certificateIdentities.join(', ') || 'no SIP URI'}) is not for ${formatUri(sipFromAor)}`);
  }
  let envelope: ProtectedEnvelope | undefined;
  if (cpim) {
    const message = cpim;
    const from = parseOr400(() => cpimFrom(message));
    if (!from) throw malformed('the signed CPIM has no From');
    if (!sameAddress(from.uri, sipFromAor)) {
      throw reject(403, 'Signer Identity Mismatch', 'cpim-from-mismatch', `the signed CPIM From ${from.uri} is not the SIP From ${formatUri(sipFromAor)}`);
    }
    const to = parseOr400(() => cpimTo(message));
    if (!to.some((address) => sameAddress(address.uri, ourAor))) {
      throw reject(403, 'Not Addressed To This User', 'not-for-us', `the signed CPIM To (${to.map((a) => a.uri).join(', ') || 'none'}) is not ${formatUri(ourAor)}`);
    }
    const dateTime = parseOr400(() => cpimDateTime(message));
    const messageId = cpimHeader(message, IMDN_NAMESPACE, 'Message-ID')?.value;
    const dispositionNotification: string[] = [];
    for (const header of cpimHeaders(message, IMDN_NAMESPACE, 'Disposition-Notification')) {
      for (const value of header.value.split(',')) {
        const trimmed = value.trim();
        if (trimmed !== '') dispositionNotification.push(trimmed);
      }
    }
    const recordRoute = parseOr400(() => cpimHeaders(message, IMDN_NAMESPACE, 'IMDN-Record-Route').map((header) => cpimHeaderAddress(header).uri));
    envelope = {
      from: from.uri,
      ...(from.name !== undefined ? { fromName: from.name } : {}),
      to: to.map((address) => address.uri),
      ...(dateTime ? { dateTime } : {}),
      ...(messageId !== undefined ? { messageId } : {}),
      dispositionNotification,
      ...(recordRoute.length > 0 ? { recordRoute } : {}),
    };
  }

  // 4. Dates under the signature.
  const signingTime = signature.signingTime;
  if (envelope?.dateTime && signingTime && Math.abs(envelope.dateTime.getTime() - signingTime.getTime()) > policy.maxSigningTimeSkewMs) {
    throw reject(400, 'Bad Request', 'date-mismatch', `signingTime ${signingTime.toISOString()} and CPIM DateTime ${envelope.dateTime.toISOString()} disagree`);
  }
  const protectedTime = envelope?.dateTime ?? signingTime;
  if (!protectedTime) throw reject(400, 'Bad Request', 'no-protected-date', 'no date under the signature (RFC 3428 §11.4)');

  // 5. Freshness (RFC 3428 §11.4).
  const age = input.now.getTime() - protectedTime.getTime();
  if (age < -policy.maxFutureSkewMs) {
    throw reject(400, 'Incorrect Date or Time', 'date-in-future', `the protected time ${protectedTime.toISOString()} is ${Math.round(-age / 1000)} s ahead`);
  }
  if (age > policy.maxAgeMs) {
    throw reject(400, 'Incorrect Date or Time', 'date-too-old', `the protected time ${protectedTime.toISOString()} is ${Math.round(age / 1000)} s old`);
  }

  // The certificate, at the protected time (a message signed while it was valid stays readable).
  if (protectedTime < certificate.notBefore || protectedTime > certificate.notAfter) {
    throw reject(403, 'Signer Certificate Not Valid', 'certificate-not-valid', `the signer certificate is not valid at ${protectedTime.toISOString()}`);
  }
  if (certificate.keyUsage.length > 0 && !certificate.keyUsage.includes('digitalSignature') && !certificate.keyUsage.includes('nonRepudiation')) {
    throw reject(403, 'Signer Certificate Not Valid', 'certificate-not-valid', 'the signer certificate is not for signatures (keyUsage)');
  }

  const text = decodeText(payloadType, payload);
  const key = replayKeyOf(signer.sha256Hex, signature.messageDigest);
  const signerFingerprint = signer.fingerprintSha256;
  const message: UnprotectedMessage = {
    label: layers.encryption ? 'encrypted-signed' : 'signed',
    text,
    contentType: payloadType,
    content: payload,
    cpim: envelope,
    protectedTime,
    ...(signingTime ? { signingTime } : {}),
    signerFingerprint,
    signerCertificateDer: signerDer,
    late: age > policy.lateAfterMs,
    replayKey: key,
    // The key must outlive the window in which the freshness check would still pass.
    replayExpiresAt: new Date(protectedTime.getTime() + policy.maxAgeMs + policy.maxFutureSkewMs),
    warnings,
  };
  return { message, envelope };
}

// ---------------------------------------------------------------------------------------------
// Helpers

function parseOr400<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ParseError || error instanceof CmsError) throw malformed(error.message);
    throw error;
  }
}

/**
 * The SIP Content-Type, remembered: a peer sends the same one with every message. Shared
 * objects, only read here and never handed out. Failures are not remembered. Bounded.
 */
const sipContentTypes = new Map<string, ContentType>();
const SIP_CONTENT_TYPE_CACHE_SIZE = 64;

function sipContentType(text: string): ContentType {
  const known = sipContentTypes.get(text);
  if (known !== undefined) return known;
  const type = parseContentType(text, 'Content-Type');
  if (sipContentTypes.size >= SIP_CONTENT_TYPE_CACHE_SIZE) sipContentTypes.clear();
  sipContentTypes.set(text, type);
  return type;
}

/** The AoR of the SIP From URI; one that does not parse is a malformed request. */
function senderAor(sipFrom: string): Uri {
  return parseOr400(() => parsedAor(sipFrom));
}

/**
 * `aorOf(parseUri(text))`, remembered: the same few addresses (the SIP From, our AoR, the
 * certificate's and the CPIM headers' URIs) come back in every message. The Uri objects are
 * shared, so nothing here may modify them; they never leave this module. Failures are not
 * remembered. Bounded: emptied when full.
 */
const parsedAors = new Map<string, Uri>();
const PARSED_AOR_CACHE_SIZE = 512;

function parsedAor(text: string): Uri {
  const known = parsedAors.get(text);
  if (known !== undefined) return known;
  const uri = aorOf(parseUri(text));
  if (parsedAors.size >= PARSED_AOR_CACHE_SIZE) parsedAors.clear();
  parsedAors.set(text, uri);
  return uri;
}

function pinnedCertificates(input: UnprotectInput, aor: string): readonly Uint8Array[] {
  const pinned = input.pinnedCertificateDer?.(aor);
  if (pinned === undefined) return [];
  return pinned instanceof Uint8Array ? [pinned] : pinned;
}

/**
 * Whether `text` names the same address as `aor`: equal AoRs (RFC 3261 §19.1.4 through
 * `uriEquals`), or an `im:` URI (RFC 3860, what CPIM uses) with the user and host of a `sip:`
 * one, since RFC 3428 §5 resolves the one to the other.
 */
function sameAddress(text: string, aor: Uri): boolean {
  let uri: Uri;
  try {
    uri = parsedAor(text);
  } catch {
    return false;
  }
  // `parsedAor` hands out one Uri per text, so the usual case (the same address written the
  // same way) is the same object; uriEquals is reflexive.
  if (uri === aor || uriEquals(uri, aor)) return true;
  const [im, sip] = isImUri(uri) ? [uri, aor] : isImUri(aor) ? [aor, uri] : [undefined, undefined];
  return (
    im !== undefined && sip !== undefined && isSipUri(sip) && sip.scheme === 'sip' && im.scheme === 'im' &&
    sip.port === undefined && im.user !== undefined && im.user === sip.user && im.host === sip.host
  );
}

/** The text of a text/plain payload in a charset we read (RFC 3428 §7 / RFC 2046 §4.1.2). */
function decodeText(contentType: string, content: Uint8Array): string | undefined {
  let decoder = textDecoders.get(contentType);
  if (decoder === undefined) {
    decoder = textDecoderFor(contentType);
    if (textDecoders.size >= TEXT_DECODER_CACHE_SIZE) textDecoders.clear();
    textDecoders.set(contentType, decoder);
  }
  return decoder === null ? undefined : decoder.decode(content);
}

/** By payload Content-Type as written: how to read it as text, or null when it is not text we read. */
const textDecoders = new Map<string, InstanceType<typeof TextDecoder> | null>();
const TEXT_DECODER_CACHE_SIZE = 64;

function textDecoderFor(contentType: string): InstanceType<typeof TextDecoder> | null {
  let type: ContentType;
  try {
    type = parseContentType(contentType, 'Content-Type');
  } catch {
    return null;
  }
  if (mediaTypeOf(type) !== 'text/plain') return null;
  const charset = (type.params.get('charset') ?? 'utf-8').toLowerCase();
  if (!TEXT_CHARSETS.has(charset)) return null;
  return new TextDecoder(charset === 'iso-8859-1' || charset === 'latin1' ? 'latin1' : 'utf-8');
}
