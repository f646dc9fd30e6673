/**
 * S/MIME on the wire, by default (issue #4; design.md, security model): the policy and the
 * flows around protect.ts and unprotect.ts that need the network and the data dir. Kept out of
 * the CLI so that the desktop core can use the same rules.
 *
 * Sending (`SecureMessaging.send`):
 *  1. The peer's certificate comes from the pinned contacts. Unknown → discovery first: an
 *     OPTIONS carrying our certificate in a signed body (`signOnly` of an empty text: proof that
 *     we hold the key, with our AoR, theirs and the time under the signature), whose 200 carries
 *     theirs as certs-only (RFC 3261 §23.2, "learn from OPTIONS"). It is pinned on first use.
 *     No usable answer → `SecureSendError('discovery-failed')`: nothing is sent. (Queuing the
 *     message until the peer can be reached is the outbox of issue #5.)
 *  2. `protectMessage`: sign, then encrypt to the peer and to ourselves. Our certificate goes in
 *     the SignedData until a 2xx to a message that carried it shows the peer has it (RFC 8591
 *     §7.1); this is remembered per (our certificate, peer) in `certificate-deliveries.json`.
 *  3. The MESSAGE goes out with the Content-Type/Content-Disposition of the protected body and a
 *     SIP Date equal to the protected time (RFC 3428 §11.4).
 *  4. Answers that change the plan, each acted on at most once:
 *     - 493 with a certs-only body (RFC 3261 §23.2): the peer cannot decrypt. Its certificate is
 *       pinned if none is, and the message is encrypted to it again. A certificate different
 *       from the pinned one is never taken silently: `SecureSendError('certificate-changed')`.
 *     - 400 "Unknown Signer Certificate" (unprotect.ts explains the choice): the peer lost our
 *       certificate; send again with it.
 *     - 415: the peer has no S/MIME. `SecureSendError('peer-lacks-smime')`; never a downgrade.
 *
 * Receiving (`SecureMessaging.receive`): `unprotectMessage` with the pinned certificates, our
 * identity and a persistent replay cache. An accepted message pins its signer on first use and
 * is handed to the caller, whose `commit()` (after it has shown or stored the message) puts the
 * replay key into the cache: remembered before the message is kept, a crash in between would
 * lose it, while a retransmission after a lost 200 must still be absorbed (RFC 3428 §11.4). A
 * replay gets 200 and is shown nowhere; a changed certificate gets 403 and a loud notice with
 * both fingerprints; plaintext is refused with 415 (Accept listing the S/MIME types, RFC 8591
 * §6) unless the caller accepts plaintext, and then it is labelled so.
 *
 * OPTIONS (`answerOptions`): our 200 carries our certificate as certs-only and an Accept listing
 * the S/MIME types; a signed or certs-only body in the OPTIONS pins the sender's certificate when
 * none is pinned yet (a different one is reported, never taken).
 */
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalAor, canonicalAorOrUndefined, aorFileName, certificateNamesAor } from '../security/aor.js';
import { certificateInfo, fingerprintSha256 } from '../security/certificates.js';
import { bytesEqual, pemEncode } from '../security/cms/der.js';
import { certsOnly, readCertsOnly } from '../security/cms/signed-data.js';
import { ContactCertificates } from '../security/contact-certificates.js';
import { ensurePrivateDir, readFileIfExists, writePrivateFile } from '../security/data-files.js';
import { mediaTypeOf, parseContentType } from '../sip/header-values.js';
import { ParseError } from '../sip/message/parse-error.js';
import type { SipRequest, SipResponse } from '../sip/message/sip-message.js';
import type { SipTransportName } from '../sip/ua/message-request.js';
import type { SendResult } from '../sip/ua/outcome.js';
import { DEFAULT_REQUEST_POLICY, type RequestPolicy } from '../sip/ua/request-policy.js';
import type { IncomingMessage, MessageDecision, OptionsAnswer, UserAgent } from '../sip/ua/user-agent.js';
import { formatUri } from '../sip/uri.js';
import { PAGER_ACCEPTED_TYPES } from './incoming-body.js';
import { CERTS_ONLY_CONTENT_TYPE, SMIME_ACCEPT } from './smime/media-types.js';
import { newMessageId, protectMessage, signOnly, type ImdnRequest, type OurIdentity, type ProtectedPayload } from './smime/protect.js';
import { SqliteReplayCache, type ReplayCache } from './smime/replay-cache.js';
import { unprotectMessage, type MessageLabel, type UnprotectedMessage } from './smime/unprotect.js';

/** Top-level media types of S/MIME bodies, for a request policy's accepted types. */
export const SMIME_MEDIA_TYPES: readonly string[] = ['application/pkcs7-mime', 'application/x-pkcs7-mime'];

/**
 * The UAS request policy of a pager that receives through `SecureMessaging`: S/MIME types and
 * the plaintext ones reach `receive`, which refuses plaintext itself with the precise S/MIME
 * Accept list (or takes it, for a caller that accepts plaintext).
 */
export function securePagerPolicy(base: RequestPolicy = DEFAULT_REQUEST_POLICY): RequestPolicy {
  return { ...base, acceptedTypes: [...SMIME_MEDIA_TYPES, ...PAGER_ACCEPTED_TYPES] };
}

/** The Content-Disposition of our OPTIONS body: a peer without S/MIME may ignore it and still answer (RFC 3261 §20.11). */
export const DISCOVERY_CONTENT_DISPOSITION = 'attachment; filename=smime.p7m; handling=optional';

/** The Content-Disposition of the certs-only body in our 200 to an OPTIONS. */
export const CERTIFICATE_CONTENT_DISPOSITION = 'attachment; filename=smime.p7c; handling=optional';

/** Our account's identity: its canonical AoR, certificate and private key. */
export interface AccountIdentity extends OurIdentity {
  /** The canonical AoR (security/aor.ts), a SIP URI of `certificateDer`. */
  readonly aor: string;
}

// ---------------------------------------------------------------------------------------------
// Notices: what the user should be told, as it happens

export type SecurityNotice =
  /** No certificate is pinned for `peer`: an OPTIONS asks for it. */
  | { readonly kind: 'discovering'; readonly peer: string }
  /** A contact's certificate was pinned on first use: its fingerprint is for out-of-band comparison. */
  | { readonly kind: 'pinned'; readonly peer: string; readonly fingerprint: string; readonly source: CertificateSource }
  /**
   * A contact presented a certificate other than the pinned one. Nothing was changed; the
   * presented certificate was saved to `presentedCertificateFile` so that the user can accept it
   * after comparing fingerprints (`sipnote keys trust --peer … --cert FILE --replace`).
   */
  | {
      readonly kind: 'certificate-changed';
      readonly peer: string;
      readonly pinnedFingerprints: readonly string[];
      readonly presentedFingerprint: string;
      readonly presentedCertificateFile: string;
      readonly source: CertificateSource;
    }
  /** The message is sent again: with our certificate (the peer did not know it) or to the peer's new certificate (a 493). */
  | { readonly kind: 'retrying'; readonly peer: string; readonly why: 'unknown-signer' | 'undecipherable' };

/** Where a contact's certificate came from. */
export type CertificateSource = 'options-request' | 'options-response' | 'message' | 'undecipherable-response';

// ---------------------------------------------------------------------------------------------
// Sending

export interface SecureSendInput {
  /** The peer's URI, as it goes into the Request-URI and To; its AoR names the certificate. */
  readonly to: string;
  readonly text: string;
  readonly transport?: SipTransportName;
  readonly imdn?: readonly ImdnRequest[];
  /**
   * Call-ID, From tag and CSeq for the first MESSAGE (a retry after 493/400 is a new request
   * with fresh ones). A stored message's later attempt passes a higher CSeq (outbox-worker.ts).
   */
  readonly identity?: { readonly callId: string; readonly fromTag: string; readonly cseq?: number };
  /**
   * The imdn.Message-ID (RFC 5438 §6.3); default: a fresh one. A stored message passes the one
   * it was given when queued, the same on every attempt: the receiver drops a copy by it.
   */
  readonly messageId?: string;
  /** Protected content other than `text` (an IMDN, an isComposing status): protect.ts `payload`. */
  readonly payload?: ProtectedPayload;
  /**
   * Where the MESSAGE goes (Request-URI and To) when not to `to`: the top IMDN-Route of a
   * notification, an IMDN server that relays it (RFC 5438 §7.2.1, §12.1.3.1). `to` still names
   * the certificate it is encrypted for and the CPIM To. A certificate that is not pinned is
   * still asked of `to`.
   */
  readonly via?: string;
}

export interface SecureSendResult {
  /** The outcome of the last MESSAGE sent. */
  readonly result: SendResult;
  readonly security: 'encrypted-signed';
  readonly messageId: string;
  /** SHA-256 fingerprint of the certificate the message was encrypted to. */
  readonly peerFingerprint: string;
  /** The peer's certificate was learned (OPTIONS) for this message. */
  readonly discovered: boolean;
  /** Our certificate was in the last MESSAGE sent. */
  readonly includedCertificate: boolean;
}

export type SecureSendFailure =
  /** The peer's certificate could not be learned: no answer, a refusal, or no certificate in the 200. */
  | 'discovery-failed'
  /** The peer offered a certificate that does not name its AoR, or is not valid now. */
  | 'bad-peer-certificate'
  /** The peer presented a certificate other than the pinned one. */
  | 'certificate-changed'
  /** The peer answered 415: it takes no S/MIME. */
  | 'peer-lacks-smime';

export class SecureSendError extends Error {
  override readonly name = 'SecureSendError';
  constructor(
    readonly code: SecureSendFailure,
    message: string,
    /** The final response that ended it, when there was one (the OPTIONS' or the MESSAGE's). */
    readonly result?: SendResult,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Receiving

/** What `receive` made of a MESSAGE. `decision` is the answer (undefined: 200). */
export type ReceivedMessage =
  | {
      readonly kind: 'accepted';
      readonly security: MessageLabel;
      readonly message: UnprotectedMessage;
      readonly decision: undefined;
      /** Puts the replay key into the cache: call it once the message is shown or stored. */
      commit(): void;
      /** Gives up on the message (it could not be kept): a resend is then not taken for a replay. */
      abandon(): void;
    }
  /** Seen before: answer 200 again and show nothing. */
  | { readonly kind: 'replay'; readonly decision: undefined; readonly fingerprint: string; readonly messageId?: string }
  /** Refused (403) until the user accepts the new certificate; a `certificate-changed` notice was given. */
  | { readonly kind: 'certificate-changed'; readonly decision: MessageDecision; readonly peer: string; readonly presentedFingerprint: string; readonly pinnedFingerprints: readonly string[] }
  /** Refused with `decision`; `detail` is for logs, not for the wire. */
  | { readonly kind: 'rejected'; readonly decision: MessageDecision; readonly problem: string; readonly detail: string }
  /**
   * Neither signed nor verified, and the caller accepts plaintext: read `body` (of type
   * `contentType`) as a plain message and label it `encrypted` or `plaintext`.
   */
  | { readonly kind: 'plaintext'; readonly security: 'encrypted' | 'plaintext'; readonly contentType: string; readonly body: Buffer };

// ---------------------------------------------------------------------------------------------

export interface SecureMessagingOptions {
  /** Where the pinned certificates, the replay cache and the delivery marks live. */
  readonly dataDir: string;
  readonly identity: AccountIdentity;
  /** Take unsigned MESSAGEs (labelled `plaintext`/`encrypted`) instead of answering 415. Default false. */
  readonly acceptPlaintext?: boolean;
  /** Default: the pin files of `dataDir`. */
  readonly contacts?: ContactCertificates;
  /** Default: SQLite in `dataDir/replay-cache.sqlite`, opened on first use. */
  readonly replayCache?: ReplayCache;
  readonly now?: () => Date;
  readonly onNotice?: (notice: SecurityNotice) => void;
}

/** The file name of the replay cache in the data dir. */
export const REPLAY_CACHE_FILE = 'replay-cache.sqlite';

export class SecureMessaging {
  readonly aor: string;
  readonly fingerprint: string;
  readonly contacts: ContactCertificates;
  private readonly identity: AccountIdentity;
  private readonly deliveries: CertificateDeliveries;
  private readonly now: () => Date;
  private replayCache: ReplayCache | undefined;
  private ownedReplayCache: SqliteReplayCache | undefined;
  /** Replay keys of accepted messages not yet committed: a duplicate arriving meanwhile is a replay. */
  private readonly inFlight = new Set<string>();

  constructor(private readonly options: SecureMessagingOptions) {
    this.identity = options.identity;
    this.aor = canonicalAor(options.identity.aor);
    this.fingerprint = fingerprintSha256(options.identity.certificateDer);
    this.contacts = options.contacts ?? new ContactCertificates(options.dataDir);
    this.deliveries = new CertificateDeliveries(options.dataDir);
    this.now = options.now ?? (() => new Date());
    this.replayCache = options.replayCache;
  }

  /** Closes the replay cache if this object opened it. */
  close(): void {
    this.ownedReplayCache?.close();
    this.ownedReplayCache = undefined;
    if (this.options.replayCache === undefined) this.replayCache = undefined;
  }

  // ---- UAC ------------------------------------------------------------------------------

  /**
   * Protects `text` for the peer and sends it (see the file comment). Resolves with the last
   * outcome, 2xx or not. Rejects with SecureSendError (nothing more can be done without the
   * user), MessageTooLargeError or DestinationError (from the user agent), CmsError for an
   * unusable key or certificate of ours, and I/O errors of the data dir.
   */
  async send(agent: UserAgent, input: SecureSendInput): Promise<SecureSendResult> {
    const peer = canonicalAor(input.to);
    let discovered = false;
    let peerCertificate = await this.contacts.pinned(peer);
    if (peerCertificate === undefined) {
      peerCertificate = await this.discover(agent, input.to, input.transport);
      discovered = true;
    }
    let includeCertificate = !(await this.deliveries.has(this.aor, this.fingerprint, peer));
    let retriedUndecipherable = false;
    const messageId = input.messageId ?? newMessageId();
    let identity = input.identity;
    for (;;) {
      const body = await protectMessage({
        text: input.text,
        from: this.aor,
        to: peer,
        now: this.now(),
        messageId,
        ourIdentity: this.identity,
        includeSignerCertificate: includeCertificate,
        peerCertificateDer: peerCertificate,
        ...(input.imdn === undefined ? {} : { imdn: input.imdn }),
        ...(input.payload === undefined ? {} : { payload: input.payload }),
      });
      const { result, response } = await agent.exchangeMessage({
        to: input.via ?? input.to,
        body: Buffer.from(body.body.buffer, body.body.byteOffset, body.body.byteLength),
        contentType: body.contentType,
        extraHeaders: [['Content-Disposition', body.contentDisposition]],
        date: body.dateTime,
        ...(input.transport === undefined ? {} : { transport: input.transport }),
        ...(identity === undefined ? {} : { identity }),
      });
      identity = undefined;
      const status = result.status;
      if (status >= 200 && status < 300) {
        if (includeCertificate) await this.deliveries.mark(this.aor, this.fingerprint, peer);
        return { result, security: 'encrypted-signed', messageId, peerFingerprint: fingerprintSha256(peerCertificate), discovered, includedCertificate: includeCertificate };
      }
      if (status === 415) {
        throw new SecureSendError(
          'peer-lacks-smime',
          `${peer} does not accept S/MIME messages (${status} ${result.reason}): the message was not sent. ` +
            'sipnote never falls back to plaintext by itself; send with --plaintext only if you accept that anyone on the way can read and alter it',
          result,
        );
      }
      if (status === 400 && /unknown signer certificate/i.test(result.reason) && !includeCertificate) {
        // The peer no longer has our certificate (a new device, a lost data dir): include it.
        await this.deliveries.clear(this.aor, peer);
        includeCertificate = true;
        this.notify({ kind: 'retrying', peer, why: 'unknown-signer' });
        continue;
      }
      if (status === 493 && !retriedUndecipherable && response !== undefined) {
        const offered = offeredCertificate(response, peer);
        if (offered !== undefined) {
          const next = await this.adoptUndecipherableCertificate(peer, peerCertificate, offered, result);
          if (next !== undefined) {
            retriedUndecipherable = true;
            peerCertificate = next;
            this.notify({ kind: 'retrying', peer, why: 'undecipherable' });
            continue;
          }
        }
      }
      return { result, security: 'encrypted-signed', messageId, peerFingerprint: fingerprintSha256(peerCertificate), discovered, includedCertificate: includeCertificate };
    }
  }

  /**
   * Learns the certificate of the peer at `to` with a signed OPTIONS and pins it (trust on first
   * use). Returns the pinned certificate. Throws SecureSendError.
   */
  async discover(agent: UserAgent, to: string, transport?: SipTransportName): Promise<Uint8Array> {
    const peer = canonicalAor(to);
    this.notify({ kind: 'discovering', peer });
    const probe = await signOnly({ text: '', from: this.aor, to: peer, now: this.now(), ourIdentity: this.identity, includeSignerCertificate: true });
    const { result, response } = await agent.exchangeOptions({
      to,
      body: Buffer.from(probe.body.buffer, probe.body.byteOffset, probe.body.byteLength),
      contentType: probe.contentType,
      extraHeaders: [
        ['Content-Disposition', DISCOVERY_CONTENT_DISPOSITION],
        ['Accept', SMIME_ACCEPT],
      ],
      date: probe.dateTime,
      ...(transport === undefined ? {} : { transport }),
    });
    const unknown = `no certificate is pinned for ${peer}, and asking ${peer} for it (OPTIONS)`;
    if (result.outcome === 'timeout' || result.outcome === 'transport-error') {
      throw new SecureSendError('discovery-failed', `${unknown} got no answer (${result.status} ${result.reason}): the message was not sent`, result);
    }
    if (response === undefined || result.status < 200 || result.status >= 300) {
      throw new SecureSendError('discovery-failed', `${unknown} was refused with ${result.status} ${result.reason}: the message was not sent`, result);
    }
    const offered = offeredCertificate(response, peer);
    if (offered === undefined) {
      throw new SecureSendError(
        'discovery-failed',
        `${unknown} got an answer without a certificate for ${peer}: it does not seem to support S/MIME. The message was not sent; ` +
          `if you have its certificate, pin it with \`sipnote keys trust --peer ${peer} --cert FILE\``,
        result,
      );
    }
    this.checkUsable(peer, offered, result);
    const pin = await this.contacts.pin(peer, offered);
    if (pin.status === 'conflict') {
      // Pinned by someone else in the meantime, and not this one.
      throw new SecureSendError('certificate-changed', await this.reportChanged(peer, [pin.pinnedDer], offered, 'options-response'), result);
    }
    if (pin.status === 'pinned') this.notify({ kind: 'pinned', peer, fingerprint: fingerprintSha256(offered), source: 'options-response' });
    return offered;
  }

  /** After a 493: the certificate to encrypt to next, or undefined when there is nothing new to try. Throws on a changed certificate. */
  private async adoptUndecipherableCertificate(peer: string, used: Uint8Array, offered: Uint8Array, result: SendResult): Promise<Uint8Array | undefined> {
    const pinned = await this.contacts.pinned(peer);
    if (pinned === undefined) {
      this.checkUsable(peer, offered, result);
      const pin = await this.contacts.pin(peer, offered);
      if (pin.status === 'conflict') throw new SecureSendError('certificate-changed', await this.reportChanged(peer, [pin.pinnedDer], offered, 'undecipherable-response'), result);
      if (pin.status === 'pinned') this.notify({ kind: 'pinned', peer, fingerprint: fingerprintSha256(offered), source: 'undecipherable-response' });
      return offered;
    }
    if (bytesEqual(pinned, offered)) {
      // The user re-pinned while we were sending: try the pinned one; else the peer cannot read
      // what is encrypted to its own certificate, and trying again would not change that.
      return bytesEqual(pinned, used) ? undefined : pinned;
    }
    throw new SecureSendError('certificate-changed', await this.reportChanged(peer, [pinned], offered, 'undecipherable-response'), result);
  }

  private checkUsable(peer: string, certificateDer: Uint8Array, result: SendResult): void {
    const info = certificateInfo(certificateDer);
    const now = this.now();
    if (now < info.notBefore || now > info.notAfter) {
      throw new SecureSendError(
        'bad-peer-certificate',
        `the certificate ${peer} offered (SHA-256 ${info.fingerprintSha256}) is valid only from ${info.notBefore.toISOString()} to ${info.notAfter.toISOString()}: the message was not sent`,
        result,
      );
    }
  }

  // ---- UAS ------------------------------------------------------------------------------

  /** Opens, checks and judges an incoming MESSAGE (see the file comment). Never throws for hostile input. */
  async receive(message: IncomingMessage): Promise<ReceivedMessage> {
    const sender = canonicalAorOrUndefined(message.from);
    const pinned = sender === undefined ? undefined : await this.contacts.pinned(sender);
    const replayCache = await this.openReplayCache();
    const verdict = await unprotectMessage({
      contentType: message.contentType,
      body: message.body,
      ...contentTransferEncoding(message.request),
      sipFrom: message.from,
      ourAor: this.aor,
      ourIdentity: this.identity,
      pinnedCertificateDer: () => pinned,
      now: this.now(),
      replayCache,
      // Remembered by `commit`, once the caller has kept the message.
      rememberReplay: false,
    });
    switch (verdict.action) {
      case 'reject':
        return {
          kind: 'rejected',
          problem: verdict.problem,
          detail: verdict.detail,
          decision: {
            status: verdict.status,
            reason: verdict.reason,
            headers: verdict.headers,
            ...(verdict.body === undefined ? {} : { body: Buffer.from(verdict.body) }),
            ...(verdict.contentType === undefined ? {} : { contentType: verdict.contentType }),
          },
        };
      case 'replay':
        return { kind: 'replay', decision: undefined, fingerprint: verdict.signerFingerprint, ...(verdict.messageId === undefined ? {} : { messageId: verdict.messageId }) };
      case 'plaintext':
        return this.plaintext(verdict.contentType, verdict.body, verdict.encrypted);
      case 'certificate-changed':
        return this.refuseChanged(verdict.aor, verdict.presentedCertificateDer, pinned === undefined ? [] : [pinned], 'message', verdict.reason);
      case 'accept':
        break;
    }
    const key = verdict.replayKey;
    if (this.inFlight.has(key)) return { kind: 'replay', decision: undefined, fingerprint: verdict.signerFingerprint, ...(verdict.cpim?.messageId === undefined ? {} : { messageId: verdict.cpim.messageId }) };
    if (verdict.pinNow !== undefined && sender !== undefined) {
      const pin = await this.contacts.pin(sender, verdict.pinNow);
      if (pin.status === 'conflict') return this.refuseChanged(sender, verdict.pinNow, [pin.pinnedDer], 'message', 'Signer Certificate Changed');
      if (pin.status === 'pinned') this.notify({ kind: 'pinned', peer: sender, fingerprint: verdict.signerFingerprint, source: 'message' });
    }
    this.inFlight.add(key);
    return {
      kind: 'accepted',
      security: verdict.label,
      message: verdict,
      decision: undefined,
      commit: () => {
        if (!this.inFlight.delete(key)) return;
        replayCache.remember(key, verdict.replayExpiresAt);
      },
      abandon: () => void this.inFlight.delete(key),
    };
  }

  /**
   * Our 200 to an OPTIONS: our certificate as certs-only and the S/MIME Accept list. A signed or
   * certs-only body in the request pins the sender's certificate when none is pinned.
   */
  async answerOptions(request: SipRequest): Promise<OptionsAnswer> {
    await this.learnFromOptions(request);
    const accept = this.options.acceptPlaintext === true ? `${SMIME_ACCEPT}, ${PAGER_ACCEPTED_TYPES.join(', ')}` : SMIME_ACCEPT;
    return {
      headers: [
        ['Accept', accept],
        ['Content-Disposition', CERTIFICATE_CONTENT_DISPOSITION],
      ],
      body: Buffer.from(certsOnly([this.identity.certificateDer])),
      contentType: CERTS_ONLY_CONTENT_TYPE,
    };
  }

  private async learnFromOptions(request: SipRequest): Promise<void> {
    if (request.body.length === 0) return;
    let sender: string | undefined;
    let contentType: string | undefined;
    try {
      sender = canonicalAorOrUndefined(formatUri(request.from.uri));
      contentType = request.headers.get('content-type');
    } catch (error) {
      if (error instanceof ParseError) return;
      throw error;
    }
    if (sender === undefined || contentType === undefined) return;
    const smimeType = smimeTypeOf(contentType);
    if (smimeType === undefined) return;
    const offered = offeredCertificate(request, sender);
    if (offered !== undefined) {
      await this.pinFromOptions(sender, offered);
      return;
    }
    if (smimeType === 'certs-only') return; // none for the sender's AoR
    const pinned = await this.contacts.pinned(sender);
    const verdict = await unprotectMessage({
      contentType,
      body: request.body,
      sipFrom: formatUri(request.from.uri),
      ourAor: this.aor,
      ourIdentity: this.identity,
      pinnedCertificateDer: () => pinned,
      now: this.now(),
      replayCache: await this.openReplayCache(),
      // A discovery probe is not a message: a copy of it only pins the same certificate again.
      rememberReplay: false,
    });
    if (verdict.action === 'accept' && verdict.pinNow !== undefined) await this.pinFromOptions(sender, verdict.pinNow);
    else if (verdict.action === 'certificate-changed') await this.reportChanged(sender, pinned === undefined ? [] : [pinned], verdict.presentedCertificateDer, 'options-request');
  }

  private async pinFromOptions(sender: string, certificateDer: Uint8Array): Promise<void> {
    const pin = await this.contacts.pin(sender, certificateDer);
    if (pin.status === 'pinned') this.notify({ kind: 'pinned', peer: sender, fingerprint: fingerprintSha256(certificateDer), source: 'options-request' });
    else if (pin.status === 'conflict') await this.reportChanged(sender, [pin.pinnedDer], certificateDer, 'options-request');
  }

  private plaintext(contentType: string, body: Uint8Array, encrypted: boolean): ReceivedMessage {
    if (this.options.acceptPlaintext === true) {
      return { kind: 'plaintext', security: encrypted ? 'encrypted' : 'plaintext', contentType, body: Buffer.from(body.buffer, body.byteOffset, body.byteLength) };
    }
    if (encrypted) {
      return {
        kind: 'rejected',
        problem: 'unsigned',
        detail: 'an encrypted body without a signature: anyone could have sent it',
        decision: { status: 400, reason: 'Unsigned Encrypted Body' },
      };
    }
    // RFC 8591 §7.3 / RFC 3261 §8.2.3: 415 listing what we do take; plaintext types are left
    // out on purpose (media-types.ts).
    return {
      kind: 'rejected',
      problem: 'plaintext-refused',
      detail: `a plaintext ${contentType} body; only S/MIME is accepted`,
      decision: { status: 415, reason: 'Unsupported Media Type (S/MIME required)', headers: [['Accept', SMIME_ACCEPT]] },
    };
  }

  private async refuseChanged(peer: string, presented: Uint8Array, pinned: readonly Uint8Array[], source: CertificateSource, reason: string): Promise<ReceivedMessage> {
    await this.reportChanged(peer, pinned, presented, source);
    return {
      kind: 'certificate-changed',
      peer,
      presentedFingerprint: fingerprintSha256(presented),
      pinnedFingerprints: pinned.map((der) => fingerprintSha256(der)),
      decision: { status: 403, reason },
    };
  }

  /** Saves the presented certificate for `keys trust --replace`, gives the notice, and returns a one-line description. */
  private async reportChanged(peer: string, pinned: readonly Uint8Array[], presented: Uint8Array, source: CertificateSource): Promise<string> {
    const presentedCertificateFile = await savePresentedCertificate(this.options.dataDir, peer, presented);
    const pinnedFingerprints = pinned.map((der) => fingerprintSha256(der));
    const presentedFingerprint = fingerprintSha256(presented);
    this.notify({ kind: 'certificate-changed', peer, pinnedFingerprints, presentedFingerprint, presentedCertificateFile, source });
    return (
      `the certificate of ${peer} has CHANGED (pinned: SHA-256 ${pinnedFingerprints.join(', ') || 'none'}; presented: SHA-256 ${presentedFingerprint}): nothing was sent. ` +
      `Compare the new fingerprint with ${peer} out of band; to accept it: sipnote keys trust --peer ${peer} --cert ${presentedCertificateFile} --replace --data-dir ${this.options.dataDir}`
    );
  }

  private async openReplayCache(): Promise<ReplayCache> {
    if (this.replayCache !== undefined) return this.replayCache;
    await ensureDataDir(this.options.dataDir);
    const file = join(this.options.dataDir, REPLAY_CACHE_FILE);
    // Created 0600 before SQLite opens it: its -wal and -shm files take the same mode.
    await (await open(file, 'a', 0o600)).close();
    this.ownedReplayCache = SqliteReplayCache.open(file, { now: this.now });
    this.replayCache = this.ownedReplayCache;
    return this.replayCache;
  }

  private notify(notice: SecurityNotice): void {
    this.options.onNotice?.(notice);
  }
}

// ---------------------------------------------------------------------------------------------
// "The peer has our certificate" (RFC 8591 §7.1)

/**
 * Which peers have our current certificate: set after a 2xx to a MESSAGE that carried it,
 * cleared when a peer says it does not know our certificate. Keyed by our certificate's
 * fingerprint, so a new identity starts over. One small JSON file in the data dir,
 * `certificate-deliveries.json`, replaced whole on every change (a lost update between two
 * processes only costs one message that carries the certificate again).
 */
export class CertificateDeliveries {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, 'certificate-deliveries.json');
  }

  async has(ourAor: string, ourFingerprint: string, peer: string): Promise<boolean> {
    return (await this.read())[canonicalAor(ourAor)]?.[canonicalAor(peer)] === ourFingerprint;
  }

  async mark(ourAor: string, ourFingerprint: string, peer: string): Promise<void> {
    const entries = await this.read();
    const ours = (entries[canonicalAor(ourAor)] ??= {});
    if (ours[canonicalAor(peer)] === ourFingerprint) return;
    ours[canonicalAor(peer)] = ourFingerprint;
    await this.write(entries);
  }

  async clear(ourAor: string, peer: string): Promise<void> {
    const entries = await this.read();
    const ours = entries[canonicalAor(ourAor)];
    if (ours?.[canonicalAor(peer)] === undefined) return;
    delete ours[canonicalAor(peer)];
    await this.write(entries);
  }

  private async read(): Promise<Record<string, Record<string, string>>> {
    const text = await readFileIfExists(this.path);
    if (text === undefined) return {};
    try {
      const parsed = JSON.parse(text.toString('utf8')) as { format?: unknown; delivered?: unknown };
      if (parsed.format === DELIVERIES_FORMAT && typeof parsed.delivered === 'object' && parsed.delivered !== null) {
        return parsed.delivered as Record<string, Record<string, string>>;
      }
    } catch {
      // Damaged: start over. The worst case is one message that carries our certificate again.
    }
    return {};
  }

  private async write(delivered: Record<string, Record<string, string>>): Promise<void> {
    await ensureDataDir(join(this.path, '..'));
    await writePrivateFile(this.path, `${JSON.stringify({ format: DELIVERIES_FORMAT, delivered }, null, 2)}\n`);
  }
}

const DELIVERIES_FORMAT = 'sipnote-certificate-deliveries/1';

// ---------------------------------------------------------------------------------------------
// Helpers

/** Where a presented (not accepted) certificate of `peer` is saved: DATA_DIR/presented-certificates/<AoR>.pem. */
export function presentedCertificatePath(dataDir: string, peer: string): string {
  return join(dataDir, 'presented-certificates', `${aorFileName(canonicalAor(peer))}.pem`);
}

/** Creates the data dir (0700) if it is missing; an existing one is left as the user made it. */
async function ensureDataDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

async function savePresentedCertificate(dataDir: string, peer: string, certificateDer: Uint8Array): Promise<string> {
  const path = presentedCertificatePath(dataDir, peer);
  await ensurePrivateDir(join(path, '..'));
  await writePrivateFile(path, pemEncode('CERTIFICATE', certificateDer));
  return path;
}

/**
 * The certificate for `peer` in a certs-only body of a response or request, if there is one
 * (`smime-type=certs-only`, or no smime-type and a SignedData without signers).
 */
function offeredCertificate(message: SipRequest | SipResponse, peer: string): Uint8Array | undefined {
  const contentType = message.headers.get('content-type');
  if (contentType === undefined || message.body.length === 0) return undefined;
  const smimeType = smimeTypeOf(contentType);
  if (smimeType !== 'certs-only' && smimeType !== '') return undefined;
  let certificates: Uint8Array[];
  try {
    certificates = readCertsOnly(message.body);
  } catch {
    return undefined;
  }
  return certificates.find((der) => {
    try {
      return certificateNamesAor(certificateInfo(der), peer);
    } catch {
      return false;
    }
  });
}

/**
 * The smime-type of an `application/pkcs7-mime` Content-Type, lower-cased; '' when the
 * parameter is missing (RFC 8551 §3.2.2: the CMS data says what it is); undefined for other types.
 */
function smimeTypeOf(contentType: string): string | undefined {
  try {
    const type = parseContentType(contentType, 'Content-Type');
    const media = mediaTypeOf(type);
    if (media !== 'application/pkcs7-mime' && media !== 'application/x-pkcs7-mime') return undefined;
    const smimeType = type.params.get('smime-type');
    return typeof smimeType === 'string' ? smimeType.toLowerCase() : '';
  } catch (error) {
    if (error instanceof ParseError) return undefined;
    throw error;
  }
}

function contentTransferEncoding(request: SipRequest): { contentTransferEncoding?: string } {
  const value = request.headers.get('content-transfer-encoding');
  return value === undefined ? {} : { contentTransferEncoding: value };
}
