/**
 * S/MIME, contacts and passwords for the desktop core (issues #4 and #6): what the Messenger
 * (messenger.ts) plugs in at its two seams, the outgoing delivery step and the incoming opening
 * step, with the same rules as the CLI (secure-messaging.ts does the protocol work):
 *
 * - Every account has an identity: a key pair and a self-signed certificate for its AoR, made
 *   when the account is created (onboarding) and loaded whenever it starts, the private key in
 *   the OS keychain (identity-store.ts). One made earlier by `sipnote keys init` in the same
 *   data dir is used as it is.
 * - Sending is signed and encrypted (RFC 8591), the peer's certificate learned by OPTIONS and
 *   pinned on first use. Plaintext goes out only when asked for explicitly: by the send itself
 *   (the CLI's `send --plaintext`), or by the contact's `legacy-plaintext` policy. Never as a
 *   fallback: a peer without S/MIME makes the message fail, with the reason.
 * - Receiving verifies and decrypts; the label says what was checked (`encrypted-signed`,
 *   `signed`), never more. Plaintext is refused with 415 unless the account accepts it (the
 *   CLI's `listen --plaintext`, the account setting `acceptPlaintext`) or the sender's policy
 *   is `legacy-plaintext`; then it is labelled `plaintext` (or `encrypted`, unsigned). A message
 *   signed with a certificate other than the pinned one is refused (403) and the user is told,
 *   with both fingerprints (a `certificate-changed` event); nothing changes until the user
 *   accepts the new certificate (contact-book.ts).
 * - Account passwords live in the keychain (account-passwords.ts), never in a file.
 * - Notifications (RFC 5438) and composing status (RFC 3994): every protected IM asks for
 *   delivery and display notifications under its signature; `open` hands a received
 *   notification or status over as `control` (never a message to store), and `sendProtected`
 *   sends ours signed and encrypted like an IM (RFC 5438 §14). Plaintext ones pass only where
 *   plaintext IMs would (the account's `acceptPlaintext`, a `legacy-plaintext` contact).
 */
import type { Contact, PasswordStorage, SecurityLabel } from '../../shared/api.js';
import { AccountPasswords } from '../security/account-passwords.js';
import { canonicalAor, canonicalAorOrUndefined } from '../security/aor.js';
import { ContactCertificateError, ContactCertificates } from '../security/contact-certificates.js';
import { IdentityError, initIdentity, loadIdentity, readIdentityRecord } from '../security/identity-store.js';
import { KeychainUnavailableError, OsKeychain, type Keychain } from '../security/keychain.js';
import { CmsError } from '../security/cms/der.js';
import type { SipRequest } from '../sip/message/sip-message.js';
import { ParseError } from '../sip/message/parse-error.js';
import { DestinationError, MessageTooLargeError } from '../sip/ua/errors.js';
import type { SendResult } from '../sip/ua/outcome.js';
import type { RequestPolicy } from '../sip/ua/request-policy.js';
import type { IncomingMessage, MessageDecision, OptionsAnswer, SendMessageInput, UserAgent } from '../sip/ua/user-agent.js';
import { ContactBook } from './contact-book.js';
import { PAGER_ACCEPTED_TYPES, PAGER_REQUEST_POLICY, readMessageBody } from './incoming-body.js';
import type { DeliveryResult } from './outbox-worker.js';
import { SecureMessaging, SecureSendError, securePagerPolicy, type SecurityNotice } from './secure-messaging.js';
import { SMIME_ACCEPT } from './smime/media-types.js';
import type { ProtectedPayload } from './smime/protect.js';
import type { ReceivedImdnRequest } from './imdn.js';
import { ControlBodyError, imdnRequestOf, plaintextImdnRequest, readControlBody, readProtectedControl, REQUESTED_DISPOSITIONS, type ControlBody } from './message-notifications.js';

/** Where the Messenger keeps its secrets and certificates. Without it the Messenger is a plaintext-only build. */
export interface SecurityEnvironment {
  /** The data dir: identities, pinned certificates, replay cache, contact book (shared with the CLI). */
  readonly dataDir: string;
  /** Where private keys go (default: the OS keychain, service `org.sipnote.keys`). */
  readonly keychain?: Keychain;
  /** Where account passwords go (default: the OS keychain, service `org.sipnote.passwords`). */
  readonly passwordKeychain?: Keychain;
  readonly now?: () => Date;
}

/** The Messenger's option: the environment without the data dir, which the Messenger has. */
export type SecurityOptions = Omit<SecurityEnvironment, 'dataDir'>;

/** What the Messenger is told as it happens, to pass on as API events. */
export type SecurityEvent =
  /** A contact was added, pinned, verified, or its policy changed. */
  | { readonly kind: 'contact-updated'; readonly contact: Contact }
  /** A contact presented a certificate other than the pinned one; nothing from or to it passes until the user decides. */
  | { readonly kind: 'certificate-changed'; readonly contact: Contact; readonly pinnedFingerprint?: string; readonly presentedFingerprint: string };

/** The account settings security depends on. */
export interface AccountSecuritySettings {
  readonly id: string;
  readonly sipAddress: string;
  /** Take plaintext (and unsigned) incoming messages, labelled so, instead of answering 415. */
  readonly acceptPlaintext?: boolean;
}

/** The content type of the text inside an S/MIME message, and of a plaintext one. */
const TEXT_PLAIN_UTF8 = 'text/plain;charset=utf-8';

/** The security of the whole Messenger: one per data dir. */
export class MessengerSecurity {
  /** Contact-book updates begun on the message paths and not finished yet (see close). */
  private readonly touching = new Set<Promise<void>>();
  readonly passwords: AccountPasswords;
  readonly keychain: Keychain;

  private constructor(
    readonly environment: SecurityEnvironment,
    readonly contacts: ContactBook,
    private readonly onEvent: (event: SecurityEvent) => void,
  ) {
    this.keychain = environment.keychain ?? new OsKeychain();
    this.passwords = new AccountPasswords(environment.dataDir, environment.passwordKeychain);
  }

  static async open(environment: SecurityEnvironment, onEvent: (event: SecurityEvent) => void): Promise<MessengerSecurity> {
    const contacts = await ContactBook.open(environment.dataDir, new ContactCertificates(environment.dataDir));
    return new MessengerSecurity(environment, contacts, onEvent);
  }

  /**
   * The security of one account: its identity loaded, or created when it has none (at
   * onboarding; or an account from a build without S/MIME). A failure (no keychain, a key
   * deleted from it) does not throw: the account gets an AccountSecurity whose `problem` says
   * why, which refuses to send S/MIME and answers S/MIME messages 480 until it is fixed.
   */
  async account(settings: AccountSecuritySettings): Promise<AccountSecurity> {
    const { dataDir } = this.environment;
    try {
      const aor = canonicalAor(settings.sipAddress);
      const stored =
        (await readIdentityRecord(dataDir, aor)) === undefined
          ? await initIdentity(dataDir, aor, { keychain: this.keychain, ...(this.environment.now === undefined ? {} : { now: this.environment.now() }) })
          : await loadIdentity(dataDir, aor, { keychain: this.keychain });
      const secure = new SecureMessaging({
        dataDir,
        identity: { aor: stored.aor, certificateDer: stored.certificateDer, privateKeyPkcs8: stored.privateKeyPkcs8 },
        acceptPlaintext: settings.acceptPlaintext === true,
        contacts: this.contacts.pins,
        ...(this.environment.now === undefined ? {} : { now: this.environment.now }),
        onNotice: (notice) => void this.notice(settings.id, notice),
      });
      return new AccountSecurity(this, settings, secure, undefined);
    } catch (error) {
      if (error instanceof ParseError || error instanceof IdentityError || error instanceof CmsError || error instanceof KeychainUnavailableError || isPassphraseError(error) || error instanceof ContactCertificateError) {
        return new AccountSecurity(this, settings, undefined, `no S/MIME identity for ${settings.sipAddress}: ${error.message}`);
      }
      throw error;
    }
  }

  /**
   * How a message from `accountId` to `peer` goes out, decided when it is queued: signed and
   * encrypted, plaintext only when the send asks for it or the contact's policy is
   * `legacy-plaintext`. The text inside is text/plain either way.
   */
  outgoing(accountId: string, peer: string, plaintextRequested: boolean): { readonly contentType: string; readonly security: SecurityLabel } {
    const plaintext = plaintextRequested || this.contacts.policyOf(accountId, peer) === 'legacy-plaintext';
    return { contentType: TEXT_PLAIN_UTF8, security: plaintext ? 'plaintext' : 'encrypted-signed' };
  }

  /**
   * Keeps the account's password in the keychain (undefined or '' removes it). When the
   * keychain cannot be used the password stays in memory for this session only, and
   * `problem` says why: the account still works, and the user sees where the password is.
   */
  async savePassword(accountId: string, password: string | undefined): Promise<{ readonly storage: PasswordStorage; readonly problem?: string }> {
    try {
      if (password === undefined || password === '') {
        await this.passwords.delete(accountId);
        return { storage: 'none' };
      }
      await this.passwords.set(accountId, password);
      return { storage: 'keychain' };
    } catch (error) {
      if (!(error instanceof KeychainUnavailableError)) throw error;
      return { storage: password === undefined || password === '' ? 'none' : 'session', problem: `the password is kept for this session only: ${error.message}` };
    }
  }

  /** The account's password from the keychain (undefined: none, or the keychain failed, with `problem`). */
  async loadPassword(accountId: string): Promise<{ readonly password?: string; readonly problem?: string }> {
    try {
      const password = await this.passwords.get(accountId);
      return password === undefined ? {} : { password };
    } catch (error) {
      if (!(error instanceof KeychainUnavailableError)) throw error;
      return { problem: `the password could not be read from the keychain: ${error.message}` };
    }
  }

  /**
   * A removed account: its password leaves the keychain and its contact entries the book.
   * Its identity (key and certificate) stays: contacts have it pinned, and the same account
   * added again, or the CLI, uses it (`sipnote keys forget` deletes it).
   */
  async forgetAccount(accountId: string): Promise<void> {
    await this.passwords.delete(accountId).catch(() => false);
    await this.contacts.removeAccount(accountId);
  }

  /** Tells the Messenger about a contact whose certificate was pinned or changed. */
  private async notice(accountId: string, notice: SecurityNotice): Promise<void> {
    try {
      if (notice.kind === 'pinned') {
        this.onEvent({ kind: 'contact-updated', contact: await this.contacts.ensure(accountId, notice.peer) });
      } else if (notice.kind === 'certificate-changed') {
        const contact = await this.contacts.ensure(accountId, notice.peer);
        const pinnedFingerprint = notice.pinnedFingerprints[0];
        this.onEvent({ kind: 'certificate-changed', contact, presentedFingerprint: notice.presentedFingerprint, ...(pinnedFingerprint === undefined ? {} : { pinnedFingerprint }) });
      }
    } catch {
      // The contact book could not be written: the refusal itself stands, only the event is lost.
    }
  }

  /** @internal for AccountSecurity: a contact we exchanged messages with; announced when new. */
  touch(accountId: string, peer: string, displayName?: string): Promise<void> {
    const known = this.contacts.has(accountId, peer);
    const touching = this.contacts.ensure(accountId, peer, displayName).then((contact) => {
      if (!known) this.onEvent({ kind: 'contact-updated', contact });
    });
    this.touching.add(touching);
    const settled = (): void => void this.touching.delete(touching);
    touching.then(settled, settled);
    return touching;
  }

  /**
   * Waits for the contact-book writes still running (touch is fire-and-forget on the message
   * paths), so that nothing is written into the data dir after the core has closed.
   */
  async close(): Promise<void> {
    await Promise.allSettled([...this.touching]);
    await this.contacts.flush();
  }
}

/** What the opening step made of an incoming MESSAGE. */
export type Opened =
  | {
      readonly kind: 'text';
      readonly text: string;
      readonly security: SecurityLabel;
      /** The type of the text as sent (inside the S/MIME body, for a protected one). */
      readonly contentType: string;
      /** SHA-256 of the signer's certificate, for a signed message. */
      readonly signerFingerprint?: string;
      /** The protected (or CPIM) time it was sent. */
      readonly sentAt?: number;
      /** Old but within the replay window: show it as late (RFC 3428 §11.4). */
      readonly late?: boolean;
      /** The signed imdn.Message-ID (RFC 5438 §6.3): a second message with it from the same peer is a duplicate. */
      readonly imdnMessageId?: string;
      /** What the IM asks to be notified of (RFC 5438 §7.2), read from its signed CPIM. */
      readonly imdnRequest?: ReceivedImdnRequest;
      /** Call once the message is stored: a replay of it is then answered 200 and shown nowhere. */
      commit(): void;
      /** Call when it could not be stored: a resend is then not taken for a replay. */
      abandon(): void;
    }
  /**
   * A notification (RFC 5438) or a composing status (RFC 3994), protected or (per the account's
   * policy) plaintext: acted on, never stored as a message. Commit once acted on.
   */
  | {
      readonly kind: 'control';
      readonly body: ControlBody;
      readonly security: SecurityLabel;
      /** Answered 200 (once acted on). */
      readonly decision: undefined;
      commit(): void;
      abandon(): void;
    }
  /** Answer with `decision` (undefined: 200, for a replay) and keep nothing. */
  | { readonly kind: 'answered'; readonly decision: MessageDecision | undefined; readonly why: string };

/** An outgoing message as the delivery step needs it (the store's `Message` is one). */
export interface OutgoingText {
  readonly peerUri: string;
  /** The text (the store keeps it as `body`). */
  readonly body: string;
  readonly contentType: string;
  readonly security: SecurityLabel;
  /** The imdn.Message-ID chosen when it was queued, the same on every attempt (attempt-identity.ts). */
  readonly imdnMessageId?: string | null;
}

/** The SIP identity of one attempt: Call-ID and From tag of the first, this attempt's CSeq (attempt-identity.ts). */
export interface DeliveryIdentity {
  readonly callId: string;
  readonly fromTag: string;
  readonly cseq?: number;
}

/** One account's S/MIME: its SecureMessaging, or the problem that keeps it from having one. */
export class AccountSecurity {
  constructor(
    private readonly owner: MessengerSecurity,
    private readonly settings: AccountSecuritySettings,
    private readonly secure: SecureMessaging | undefined,
    /** Why this account has no working identity; undefined when it has one. */
    readonly problem: string | undefined,
  ) {}

  /** SHA-256 of our certificate, for the user to read to contacts. */
  get fingerprint(): string | undefined {
    return this.secure?.fingerprint;
  }

  /** The user agent's request policy: S/MIME bodies reach `open`, which refuses plaintext itself. */
  requestPolicy(base: RequestPolicy = PAGER_REQUEST_POLICY): RequestPolicy {
    return securePagerPolicy(base);
  }

  /** Our 200 to an OPTIONS: our certificate (discovery, RFC 3261 §23.2); undefined leaves the default answer. */
  async answerOptions(request: SipRequest): Promise<OptionsAnswer | undefined> {
    return this.secure?.answerOptions(request);
  }

  /** How a message to `peer` goes out (MessengerSecurity.outgoing). */
  outgoing(peer: string, plaintextRequested: boolean): { readonly contentType: string; readonly security: SecurityLabel } {
    return this.owner.outgoing(this.settings.id, peer, plaintextRequested);
  }

  /**
   * The delivery step: sends `message` as its label says, one attempt, with the identity the
   * outbox chose (Call-ID and From tag of the first MESSAGE, this attempt's CSeq) and the
   * message's imdn.Message-ID. Never rejects: what stopped it
   * is in the result, with the status of the answer that did when there was one (a discovery
   * that timed out is a 408 the outbox may retry; a certificate that changed is final).
   */
  async deliver(agent: UserAgent, message: OutgoingText, identity?: DeliveryIdentity): Promise<DeliveryResult> {
    void this.owner.touch(this.settings.id, message.peerUri).catch(() => undefined);
    try {
      if (message.security === 'plaintext') return responseOf(await agent.sendMessage(plainRequest(message, identity)));
      if (this.secure === undefined) return { kind: 'not-sent', reason: `Not sent: ${this.problem ?? 'no S/MIME identity'}`, retryable: false };
      const sent = await this.secure.send(agent, {
        to: message.peerUri,
        text: message.body,
        // Delivery and display notifications, asked for under the signature (RFC 5438 §6, §14).
        imdn: REQUESTED_DISPOSITIONS,
        ...(identity === undefined ? {} : { identity: sipIdentity(identity) }),
        ...(message.imdnMessageId === undefined || message.imdnMessageId === null ? {} : { messageId: message.imdnMessageId }),
      });
      return responseOf(sent.result);
    } catch (error) {
      return notSentBySecurity(error);
    }
  }

  /** Opens an incoming MESSAGE (see the file comment). Never throws for hostile input. */
  async open(incoming: IncomingMessage): Promise<Opened> {
    const sender = canonicalAorOrUndefined(incoming.from);
    const legacyPeer = sender !== undefined && this.owner.contacts.policyOf(this.settings.id, sender) === 'legacy-plaintext';
    if (this.secure === undefined) {
      if (isSmime(incoming.contentType)) {
        return answered({ status: 480, reason: 'Temporarily Unavailable (S/MIME key not available)' }, this.problem ?? 'no identity');
      }
      if (this.settings.acceptPlaintext === true || legacyPeer) return readPlaintext(incoming.contentType, incoming.body, 'plaintext');
      return answered({ status: 415, reason: 'Unsupported Media Type (S/MIME required)', headers: [['Accept', SMIME_ACCEPT]] }, 'plaintext refused');
    }
    if (isBareComposing(incoming.contentType)) {
      // RFC 3994 §4: a status message without S/MIME, taken where plaintext IMs are.
      if (this.settings.acceptPlaintext === true || legacyPeer) return readPlaintext(incoming.contentType, incoming.body, 'plaintext');
      return answered({ status: 415, reason: 'Unsupported Media Type (S/MIME required)', headers: [['Accept', SMIME_ACCEPT]] }, 'plaintext isComposing refused');
    }
    const received = await this.secure.receive(incoming);
    switch (received.kind) {
      case 'accepted': {
        const opened = received.message;
        let control: ControlBody | undefined;
        try {
          control = readProtectedControl(opened.contentType, opened.content);
        } catch (error) {
          if (!(error instanceof ControlBodyError)) throw error;
          received.abandon();
          return answered({ status: 400, reason: 'Bad Request (malformed notification or status)' }, error.message);
        }
        if (control !== undefined) {
          return { kind: 'control', body: control, security: received.security, decision: undefined, commit: () => received.commit(), abandon: () => received.abandon() };
        }
        if (opened.text === undefined) {
          received.abandon();
          return answered({ status: 415, reason: `Unsupported Media Type (${opened.contentType} inside S/MIME)`, headers: [['Accept', SMIME_ACCEPT]] }, `signed content ${opened.contentType}`);
        }
        if (sender !== undefined) void this.owner.touch(this.settings.id, sender, incoming.fromDisplayName).catch(() => undefined);
        return {
          kind: 'text',
          text: opened.text,
          security: received.security,
          contentType: opened.contentType,
          signerFingerprint: opened.signerFingerprint,
          sentAt: (opened.cpim?.dateTime ?? opened.protectedTime).getTime(),
          ...(opened.late ? { late: true } : {}),
          ...(opened.cpim?.messageId === undefined ? {} : { imdnMessageId: opened.cpim.messageId }),
          ...withImdnRequest(imdnRequestOf(opened.cpim)),
          commit: () => received.commit(),
          abandon: () => received.abandon(),
        };
      }
      case 'replay':
        return { kind: 'answered', decision: undefined, why: 'a replay of a message already shown' };
      case 'plaintext':
        return readPlaintext(received.contentType, received.body, received.security);
      case 'certificate-changed':
        return answered(received.decision, `the certificate of ${received.peer} changed`);
      case 'rejected':
        if (received.problem === 'plaintext-refused' && legacyPeer) return readPlaintext(incoming.contentType, incoming.body, 'plaintext');
        return answered(received.decision, received.detail);
    }
  }

  /**
   * Sends a notification or composing status to `to`, protected like an IM (RFC 5438 §14):
   * signed and encrypted, with a fresh Message-ID and SIP identity, outside the outbox (nothing
   * is stored). `via`, when given, is where the MESSAGE goes instead (the top IMDN-Route of a
   * notification, §7.2.1); it is still encrypted for `to`. Resolves with the final response;
   * rejects like `SecureMessaging.send`.
   */
  async sendProtected(agent: UserAgent, to: string, payload: ProtectedPayload, via?: string): Promise<SendResult> {
    if (this.secure === undefined) throw new Error(this.problem ?? 'no S/MIME identity');
    return (await this.secure.send(agent, { to, text: '', payload, ...(via === undefined ? {} : { via }) })).result;
  }

  /** Our canonical AoR, the recipient a notification names. */
  get aor(): string | undefined {
    return this.secure?.aor;
  }

  close(): void {
    this.secure?.close();
  }
}

function withImdnRequest(request: ReceivedImdnRequest | undefined): { imdnRequest?: ReceivedImdnRequest } {
  return request === undefined ? {} : { imdnRequest: request };
}

/**
 * The delivery step of a protected message for an account that may have no security (a
 * Messenger without a security environment): such a message is not sent, never downgraded.
 */
export async function deliverProtected(
  security: AccountSecurity | undefined,
  agent: UserAgent,
  message: OutgoingText,
  identity?: DeliveryIdentity,
): Promise<DeliveryResult> {
  if (security === undefined) return { kind: 'not-sent', reason: `Not sent: it was queued ${message.security}, and S/MIME is not available now`, retryable: false };
  return security.deliver(agent, message, identity);
}

/**
 * A plaintext text/plain MESSAGE. It has no imdn.Message-ID, so a retry after a lost 200 can
 * show up twice at the peer (attempt-identity.ts).
 */
function plainRequest(message: OutgoingText, identity?: DeliveryIdentity): SendMessageInput {
  return {
    to: message.peerUri,
    body: Buffer.from(message.body, 'utf8'),
    contentType: message.contentType,
    ...(identity === undefined ? {} : { identity: sipIdentity(identity) }),
  };
}

function sipIdentity(identity: DeliveryIdentity): { readonly callId: string; readonly fromTag: string; readonly cseq?: number } {
  return { callId: identity.callId, fromTag: identity.fromTag, ...(identity.cseq === undefined ? {} : { cseq: identity.cseq }) };
}

function responseOf(result: SendResult): DeliveryResult {
  const reason = result.authFailure === undefined ? result.reason : `${result.reason} (${result.authFailure})`;
  return { kind: 'response', outcome: result.outcome, status: result.status, reason, ...(result.retryAfter === undefined ? {} : { retryAfter: result.retryAfter }) };
}

/**
 * What a refusal of ours (SecureSendError) or of the user agent comes to. A final answer that
 * stopped it keeps its status (and so the outbox's retry rules: a discovery OPTIONS that timed
 * out is retried like a MESSAGE that did), with our explanation as the reason; one that
 * "succeeded" (a 200 to OPTIONS without a certificate) is not a delivery.
 */
function notSentBySecurity(error: unknown): DeliveryResult {
  if (error instanceof SecureSendError) {
    const result = error.result;
    if (result !== undefined && result.status >= 300) {
      return { kind: 'response', outcome: result.outcome, status: result.status, reason: error.message, ...(result.retryAfter === undefined ? {} : { retryAfter: result.retryAfter }) };
    }
    return { kind: 'not-sent', reason: error.message, retryable: false };
  }
  if (error instanceof MessageTooLargeError) {
    return { kind: 'not-sent', reason: `Too large for this path: ${error.size} bytes, and RFC 3428 §8 allows ${error.limit} unless every hop is congestion-controlled (an S/MIME message is about 1.5 KB). If your server and your contacts use TCP or TLS, turn on "Congestion-safe path" in the account's settings`, retryable: false };
  }
  if (error instanceof DestinationError) {
    return error.unreachable ? { kind: 'not-sent', reason: `Unreachable: ${error.message}`, retryable: true } : { kind: 'not-sent', reason: `Bad address: ${error.message}`, retryable: false };
  }
  return { kind: 'not-sent', reason: `Not sent: ${error instanceof Error ? error.message : String(error)}`, retryable: false };
}

function readPlaintext(contentType: string, body: Buffer, security: SecurityLabel): Opened {
  try {
    const control = readControlBody(contentType, body);
    if (control !== undefined) return { kind: 'control', body: control, security, decision: undefined, commit: () => undefined, abandon: () => undefined };
  } catch (error) {
    if (!(error instanceof ControlBodyError)) throw error;
    return answered({ status: 400, reason: 'Bad Request (malformed notification or status)' }, error.message);
  }
  const reading = readMessageBody(contentType, body);
  if (reading.kind === 'rejected') {
    return answered({ status: reading.status, reason: reading.reason, headers: [['Accept', PAGER_ACCEPTED_TYPES.join(', ')]] }, reading.reason);
  }
  const sentAt = reading.cpim?.dateTime?.getTime();
  const imdnMessageId = reading.cpim?.messageId;
  return {
    kind: 'text',
    text: reading.text,
    security,
    contentType,
    ...(sentAt === undefined ? {} : { sentAt }),
    ...(imdnMessageId === undefined ? {} : { imdnMessageId }),
    ...withImdnRequest(plaintextImdnRequest(contentType, body)),
    commit: () => undefined,
    abandon: () => undefined,
  };
}

function answered(decision: MessageDecision, why: string): Opened {
  return { kind: 'answered', decision, why };
}

function isBareComposing(contentType: string): boolean {
  return /^\s*application\/im-iscomposing\+xml\s*(?:;|$)/i.test(contentType);
}

function isSmime(contentType: string): boolean {
  return /^\s*application\/(?:x-)?pkcs7-mime\b/i.test(contentType);
}

function isPassphraseError(error: unknown): error is Error {
  return error instanceof Error && error.name === 'PassphraseKeyError';
}
