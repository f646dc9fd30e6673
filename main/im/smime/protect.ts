/**
 * The sender's side of an S/MIME MESSAGE body (RFC 8591, RFC 3428 §11; design.md security
 * section). Sans-I/O: keys, certificates and the clock are inputs, WebCrypto is the only
 * effect.
 *
 *   application/pkcs7-mime; smime-type=authEnveloped-data   AES-128-GCM (RFC 5083/5084),
 *     |                                                     to the peer and to ourselves
 *     Content-Type: application/pkcs7-mime; smime-type=signed-data
 *       |                                                   ECDSA P-256/SHA-256, signingTime = T
 *       Content-Type: message/cpim
 *         From, To, DateTime = T, NS imdn, imdn.Message-ID [, imdn.Disposition-Notification]
 *         Content-Type: text/plain;charset=utf-8
 *
 * Sign first, then encrypt (RFC 8591 §4.3). The date is under the signature twice, as the CMS
 * signingTime and the CPIM DateTime (RFC 3428 §11.4, §11.5), and both carry the same whole
 * second T. The CPIM To, under the signature too, stops surreptitious forwarding (the weakness
 * of sign-then-encrypt: Bob re-encrypting Alice's signed message to Carol). The
 * imdn.Message-ID, random, makes two identical texts sent in the same second two different
 * messages for the receiver's replay cache, and is the IMDN correlation id (RFC 5438 §6.3).
 *
 * The signer names itself by subjectKeyIdentifier when its certificate has one (about 40
 * octets smaller than issuer and serial number), and includes its certificate only when told
 * to (RFC 8591 §7.1): the caller leaves it out once the peer is known to have it (about 440
 * octets less). Even so a protected text does not fit the 1300 octets of RFC 3428 §8 with
 * ordinary SIP headers: a 40-character text to a P-256 peer gives a body of about 1127 octets,
 * or about 930 without the copy encrypted to ourselves (see `encryptToSelf`). The caller's size
 * gate sends it over a congestion-controlled transport instead.
 */
import { randomBytes } from 'node:crypto';
import { knownCertificate, sipUrisOfCertificate, type KnownCertificate } from '../../security/certificates.js';
import { encryptAuthEnveloped } from '../../security/cms/auth-enveloped-data.js';
import { CmsError, bytesEqual } from '../../security/cms/der.js';
import { signContent } from '../../security/cms/signed-data.js';
import { aorOf, parseUri, uriEquals, type Uri } from '../../sip/uri.js';
import { buildCpim } from '../cpim.js';
import {
  AUTH_ENVELOPED_CONTENT_TYPE,
  SIGNED_CONTENT_TYPE,
  SIGNED_ENTITY_HEADER,
  SMIME_CONTENT_DISPOSITION,
} from './media-types.js';
import { buildMimeEntity } from './mime-entity.js';

/** RFC 5438 §6.3: the namespace of imdn.Message-ID and imdn.Disposition-Notification. */
export const IMDN_NAMESPACE = 'urn:ietf:params:imdn';

/** RFC 5438 §6.2 dispositions we may ask for. */
export type ImdnRequest = 'positive-delivery' | 'negative-delivery' | 'display';

/** Our certificate and its private key (PKCS#8, from the keychain). */
export interface OurIdentity {
  readonly certificateDer: Uint8Array;
  readonly privateKeyPkcs8: Uint8Array;
}

export interface MessageContentInput {
  /** The user's text, sent as text/plain;charset=utf-8. */
  readonly text: string;
  /** Our AoR, e.g. `sip:alice@example.com`: the CPIM From. Must be a SIP URI of our certificate. */
  readonly from: string;
  /** The peer's AoR: the CPIM To. */
  readonly to: string;
  /** The clock: T = `now` cut to the whole second, for signingTime and DateTime alike. */
  readonly now: Date;
  /** The imdn.Message-ID; default: 96 random bits, base64url (16 characters). */
  readonly messageId?: string;
  /** Ask the peer for these notifications (imdn.Disposition-Notification, RFC 5438 §6.2). */
  readonly imdn?: readonly ImdnRequest[];
  /**
   * Content other than the user's text (then `text` is ignored): an IMDN (message/imdn+xml with
   * `Content-Disposition: notification`, RFC 5438 §7.2.1.1) or an isComposing status (RFC 3994),
   * protected like the IM (RFC 5438 §14).
   */
  readonly payload?: ProtectedPayload;
}

/** The CPIM content of a protected message that is not text. */
export interface ProtectedPayload {
  readonly contentType: string;
  readonly content: Uint8Array;
  /** CPIM content headers, e.g. `['Content-Disposition', 'notification']`. */
  readonly contentHeaders?: ReadonlyArray<readonly [string, string]>;
  /**
   * imdn.IMDN-Route URIs, in order (RFC 5438 §6.6): a notification copies the IMDN-Record-Route
   * of the IM it answers (§7.2.1), so that the IMDN servers on the way can route it back.
   */
  readonly imdnRoute?: readonly string[];
}

export interface SignOnlyInput extends MessageContentInput {
  readonly ourIdentity: OurIdentity;
  /** RFC 8591 §7.1: SHOULD include; leave it out only when the peer is known to have it. */
  readonly includeSignerCertificate: boolean;
}

export interface ProtectInput extends SignOnlyInput {
  /** The peer's certificate (EC P-256 or RSA) to encrypt to. */
  readonly peerCertificateDer: Uint8Array;
  /**
   * Also encrypt to our own certificate, so that our other devices (and we, from the wire) can
   * read the sent message. Default true. Costs one RecipientInfo: about 180 octets for a P-256
   * certificate, which decides whether a short text fits 1300 octets (RFC 3428 §8).
   */
  readonly encryptToSelf?: boolean;
}

export interface ProtectedBody {
  /** The SIP Content-Type header value. */
  readonly contentType: string;
  /** The SIP Content-Disposition header value (RFC 3261 §23.3). */
  readonly contentDisposition: string;
  /** The SIP body: a DER ContentInfo, sent binary (RFC 8591 §5). */
  readonly body: Uint8Array;
  /** The imdn.Message-ID the body carries (given or generated). */
  readonly messageId: string;
  /** T, the protected time; the caller writes it as the SIP Date header (RFC 3428 §11.4). */
  readonly dateTime: Date;
}

/** What a caller's `messageId` may look like: printable ASCII, no spaces (RFC 5438 §6.3 Token-ish). */
const MESSAGE_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * Builds, signs and encrypts a message: `text` → message/cpim → SignedData → AuthEnvelopedData
 * to `peerCertificateDer` and (unless `encryptToSelf` is false) to our own certificate.
 *
 * @throws RangeError for input that cannot be written (a malformed AoR or message id),
 *   CmsError (`invalid-argument` when `from` is not a SIP URI of our certificate,
 *   `unsupported-algorithm` / `malformed` for a key or certificate we cannot use).
 */
export async function protectMessage(input: ProtectInput): Promise<ProtectedBody> {
  const signed = await signMessageContent(input);
  const recipients = [{ certificateDer: input.peerCertificateDer }];
  // A note to self (same certificate) is encrypted once.
  if (input.encryptToSelf !== false && !bytesEqual(input.peerCertificateDer, input.ourIdentity.certificateDer)) {
    recipients.push({ certificateDer: input.ourIdentity.certificateDer });
  }
  const body = await encryptAuthEnveloped({ content: signedDataEntity(signed.signedData), recipients });
  return {
    contentType: AUTH_ENVELOPED_CONTENT_TYPE,
    contentDisposition: SMIME_CONTENT_DISPOSITION,
    body,
    messageId: signed.messageId,
    dateTime: signed.dateTime,
  };
}

/**
 * Builds and signs a message without encrypting it, for a peer whose certificate we do not
 * have yet (a first message, whose embedded certificate lets the peer answer in kind).
 * The receiver labels it `signed`, not `encrypted-signed`. Same errors as `protectMessage`.
 */
export async function signOnly(input: SignOnlyInput): Promise<ProtectedBody> {
  const signed = await signMessageContent(input);
  return {
    contentType: SIGNED_CONTENT_TYPE,
    contentDisposition: SMIME_CONTENT_DISPOSITION,
    body: signed.signedData,
    messageId: signed.messageId,
    dateTime: signed.dateTime,
  };
}

async function signMessageContent(input: SignOnlyInput): Promise<{ signedData: Uint8Array; messageId: string; dateTime: Date }> {
  assertOurAor(input.ourIdentity.certificateDer, input.from);
  const messageId = input.messageId ?? newMessageId();
  const dateTime = wholeSecond(input.now);
  const entity = buildMessageEntity({ ...input, messageId, now: dateTime });
  const signedData = await signEntity(entity, {
    ourIdentity: input.ourIdentity,
    signingTime: dateTime,
    includeSignerCertificate: input.includeSignerCertificate,
  });
  return { signedData, messageId, dateTime };
}

/**
 * The signed content: the MIME entity `Content-Type: message/cpim` CRLF CRLF followed by the
 * CPIM document (RFC 8551 §3.1: S/MIME signs whole entities; RFC 8591 §9.1: CPIM carries the
 * metadata under the protection). `now` is written as given (callers pass a whole second).
 */
export function buildMessageEntity(input: MessageContentInput & { readonly messageId: string }): Uint8Array {
  if (!MESSAGE_ID.test(input.messageId)) throw new RangeError(`not a usable imdn.Message-ID: ${JSON.stringify(input.messageId)}`);
  const extraHeaders = [{ ns: 'imdn', name: 'Message-ID', value: input.messageId }];
  if (input.imdn !== undefined && input.imdn.length > 0) {
    extraHeaders.push({ ns: 'imdn', name: 'Disposition-Notification', value: [...new Set(input.imdn)].join(', ') });
  }
  for (const route of input.payload?.imdnRoute ?? []) extraHeaders.push({ ns: 'imdn', name: 'IMDN-Route', value: `<${route}>` });
  const cpim = buildCpim({
    from: { uri: input.from },
    to: [{ uri: input.to }],
    dateTime: input.now,
    namespaces: { imdn: IMDN_NAMESPACE },
    extraHeaders,
    contentType: input.payload?.contentType ?? 'text/plain;charset=utf-8',
    content: input.payload?.content ?? new TextEncoder().encode(input.text),
    ...(input.payload?.contentHeaders === undefined ? {} : { contentHeaders: input.payload.contentHeaders }),
  });
  return buildMimeEntity('Content-Type: message/cpim\r\n\r\n', cpim);
}

/** Signs a MIME entity: DER ContentInfo of a SignedData (RFC 8591 §4.1, Appendix A shape). */
export function signEntity(
  entity: Uint8Array,
  options: { readonly ourIdentity: OurIdentity; readonly signingTime: Date; readonly includeSignerCertificate: boolean },
): Promise<Uint8Array> {
  const certificate = knownCertificate(options.ourIdentity.certificateDer).core;
  return signContent({
    content: entity,
    signerCertificateDer: options.ourIdentity.certificateDer,
    privateKeyPkcs8: options.ourIdentity.privateKeyPkcs8,
    signingTime: options.signingTime,
    includeCertificate: options.includeSignerCertificate,
    signerIdentifier: certificate.subjectKeyIdentifier ? 'subject-key-identifier' : 'issuer-and-serial',
  });
}

/** The MIME entity that carries a SignedData inside the encryption (RFC 8591 §4.3). */
export function signedDataEntity(signedData: Uint8Array): Uint8Array {
  return buildMimeEntity(SIGNED_ENTITY_HEADER, signedData);
}

/** 96 bits from the CSPRNG, base64url: unguessable and unique for the replay cache and IMDN. */
export function newMessageId(): string {
  return randomBytes(12).toString('base64url');
}

function wholeSecond(date: Date): Date {
  const time = date.getTime();
  if (Number.isNaN(time)) throw new RangeError('now is an invalid Date');
  return new Date(Math.floor(time / 1000) * 1000);
}

/**
 * The receiver refuses a message whose CPIM From is not a SIP URI of the signer's certificate
 * (RFC 8591 §12), so sending one is a configuration error, reported here and not by the peer.
 */
function assertOurAor(certificateDer: Uint8Array, from: string): void {
  // A sender sends as the same AoR with the same certificate message after message.
  const certificate = knownCertificate(certificateDer);
  if (checkedAors.get(certificate) === from) return;
  let ours: Uri;
  try {
    ours = aorOf(parseUri(from));
  } catch {
    throw new RangeError(`from is not a URI: ${JSON.stringify(from)}`);
  }
  for (const uri of sipUrisOfCertificate(certificate.der)) {
    try {
      if (uriEquals(aorOf(parseUri(uri)), ours)) {
        checkedAors.set(certificate, from);
        return;
      }
    } catch {
      // a SAN URI that does not parse matches nothing
    }
  }
  throw new CmsError('invalid-argument', `${from} is not a SIP URI of our certificate`);
}

/** The last `from` that `assertOurAor` found in each certificate (kept by `knownCertificate`, keyed by its bytes). */
const checkedAors = new WeakMap<KnownCertificate, string>();
