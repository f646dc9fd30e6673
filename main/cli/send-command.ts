/**
 * `sipnote send --from URI --to URI [--transport udp|tcp|tls] [--listen SPEC] [--data-dir DIR]
 *               [--plaintext [--content-type T]] [--json] [--congestion-safe-path] TEXT|-`
 *
 * By default the text goes S/MIME signed and encrypted (main/im/secure-messaging.ts) with the
 * identity of --from in the data dir; a peer whose certificate is not pinned yet is asked for
 * it first (OPTIONS). `--plaintext` sends the body as it is, unprotected.
 *
 * Exit codes: 0 a 2xx came back; 1 a final non-2xx, or the message was refused before sending
 * (no identity, the peer's certificate refused or changed, the peer lacks S/MIME, too large for
 * the path); 3 timeout or transport failure, of the MESSAGE or of the OPTIONS asking for the
 * peer's certificate (the message then waits in the outbox with --data-dir); 2 usage error (main.ts).
 *
 * With --data-dir, the message goes through that data dir's outbox (main/store, design.md
 * "Durability"): stored `queued` before any byte leaves (the S/MIME certificate discovery
 * included), `sending` when the attempt starts, then `delivered` (200), `accepted` (202) or
 * `failed` with the final status and reason. On start, `recoverAfterCrash` puts messages a killed
 * sender left in `sending` back in the queue (or fails them, with a reason, after too many
 * interruptions), and messages of this account that are due are sent too, oldest first, after
 * being reported on stderr. A failure that may pass (no response, a transport failure, 408, 480,
 * 500, 503, 504: main/im/retry-policy.ts) is stored with the time of its next attempt, which
 * `sipnote outbox` shows and `sipnote outbox --flush` (history-command.ts) acts on.
 */
import { IdentityError, loadIdentity } from '../security/identity-store.js';
import { KeychainUnavailableError, OsKeychain, type Keychain } from '../security/keychain.js';
import { PassphraseKeyError } from '../security/passphrase-key-file.js';
import { ContactCertificateError } from '../security/contact-certificates.js';
import { CmsError } from '../security/cms/der.js';
import { newCallId, newTag } from '../sip/ua/identifiers.js';
import { isSipUri, parseUri } from '../sip/uri.js';
import { DestinationError, MessageTooLargeError } from '../sip/ua/errors.js';
import type { SipTransportName } from '../sip/ua/message-request.js';
import type { SendResult } from '../sip/ua/outcome.js';
import { UserAgent } from '../sip/ua/user-agent.js';
import type { ListenSpec } from '../sip/transport/transport-layer.js';
import { SecureMessaging, SecureSendError, type AccountIdentity, type SecurityNotice } from '../im/secure-messaging.js';
import type { MessageSecurity, SendSummary } from '../../shared/cli-events.js';
import { accountAgentOptions, type AccountArgs } from './account-options.js';
import { resolveDataDir } from './data-dir.js';
import { readAllStdin, traceTo, type CommandIo } from './io.js';
import { openStore, type DeliveryUpdate, type Message, type Store } from '../store/index.js';
import { nextRetry, type AttemptOutcome } from '../im/retry-policy.js';
import { attemptCSeq, isMergedRetry, nextAttemptIdentity, type AttemptIdentity } from '../im/attempt-identity.js';
import { newMessageId, type ImdnRequest } from '../im/smime/protect.js';
import { REQUESTED_DISPOSITIONS } from '../im/message-notifications.js';

export interface SendArgs {
  from: string;
  account: AccountArgs;
  to: string;
  text: string;
  transport?: SipTransportName;
  listen: ListenSpec[];
  json: boolean;
  plaintext: boolean;
  contentType: string;
  congestionSafePath: boolean;
  dataDir?: string;
  t1?: number;
  verbose: boolean;
  /** Print every SIP message on stderr. */
  trace: boolean;
}

/** What commands need besides their arguments; tests pass their own. */
export interface SecurityDependencies {
  /** The keychain (default: the OS keychain). */
  readonly keychain?: Keychain;
  readonly env?: NodeJS.ProcessEnv;
}

export async function sendCommand(args: SendArgs, io: CommandIo, dependencies: SecurityDependencies = {}): Promise<number> {
  const body = args.text === '-' ? await readAllStdin(io.stdin) : Buffer.from(args.text, 'utf8');
  const dataDir = resolveDataDir(args.dataDir, dependencies.env);
  let secure: SecureMessaging | undefined;
  if (!args.plaintext) {
    const identity = await loadCommandIdentity(dataDir, args.from, io, dependencies);
    if (identity === undefined) return 1;
    secure = new SecureMessaging({ dataDir, identity, onNotice: noticePrinter(io, dataDir) });
  }
  // Stored before the user agent exists, so before any byte leaves.
  const outbox = args.dataDir === undefined ? undefined : openOutbox(dataDir, args, io, body, secure !== undefined);
  let agent: UserAgent;
  try {
    agent = await UserAgent.start({
      aor: args.from,
      listen: args.listen,
      ...(await accountAgentOptions(args.account, args.from, io)),
      congestionSafePath: args.congestionSafePath,
      ...(args.t1 === undefined ? {} : { timers: { t1: args.t1, t2: Math.max(args.t1 * 8, args.t1), t4: args.t1 * 10 } }),
      ...(args.verbose ? { onDiagnostic: (text: string) => io.stderr.write(`sipnote: ${text}\n`) } : {}),
      ...(args.trace ? { onTrace: traceTo(io) } : {}),
    });
  } catch (error) {
    secure?.close();
    outbox?.store.close();
    throw error;
  }
  try {
    // Messages a killed sender left behind go first: the outbox keeps per-peer order.
    if (outbox !== undefined) await sendEarlier(outbox, args, io, agent, secure);
    // The stored row is filed under the request's Call-ID, CSeq and From tag before it leaves.
    const identity = outbox === undefined ? { ...requestIdentity(args.from), cseq: attemptCSeq(1) } : retryIdentity(outbox.message, args.from);
    const attempt = outbox === undefined ? undefined : outbox.store.messages.markSending(outbox.message.id, identity);
    const messageId = outbox?.message.imdnMessageId ?? undefined;
    let outcome: { result: SendResult; security: MessageSecurity };
    try {
      outcome = await sendOnce(agent, secure, {
        to: args.to,
        body,
        contentType: args.contentType,
        identity,
        // A stored message asks for notifications: `listen --data-dir` moves it to delivered/displayed.
        ...(messageId === undefined ? {} : { messageId, imdn: REQUESTED_DISPOSITIONS }),
        ...(args.transport === undefined ? {} : { transport: args.transport }),
      });
    } catch (error) {
      if (attempt !== undefined) reportRetry(io, recordFailure(outbox!.store, attempt, error));
      throw error;
    }
    if (attempt !== undefined) reportRetry(io, recordResult(outbox!.store, attempt, outcome.result));
    const { result, security } = outcome;
    printSummary(args, io, result, security);
    if (result.status >= 200 && result.status < 300) return 0;
    if (result.outcome === 'timeout' || result.outcome === 'transport-error') {
      io.stderr.write(`sipnote: ${result.outcome === 'timeout' ? 'no response from' : 'could not reach'} ${args.to}\n`);
      return 3;
    }
    const why = result.authFailure === undefined ? '' : ` (${result.authFailure})`;
    io.stderr.write(`sipnote: not delivered: ${result.status} ${result.reason}${why}\n`);
    return 1;
  } catch (error) {
    if (error instanceof SecureSendError) {
      // The final response that ended it, for scripts; the reason, for people.
      if (error.result !== undefined && args.json) printSummary(args, io, error.result, 'encrypted-signed');
      // A changed certificate was already reported loudly, by the notice.
      io.stderr.write(error.code === 'certificate-changed' ? 'sipnote: the message was not sent\n' : `sipnote: ${error.message}\n`);
      // A discovery OPTIONS nobody answered is a timeout like a MESSAGE nobody answered: 3.
      const outcome = error.result?.outcome;
      return outcome === 'timeout' || outcome === 'transport-error' ? 3 : 1;
    }
    if (error instanceof MessageTooLargeError) {
      const why = secure === undefined ? '' : ' (an S/MIME message is about 1.4-1.6 KB, and the first one to a contact also carries your certificate)';
      io.stderr.write(`sipnote: ${error.message}${why}\n`);
      return 1;
    }
    if (error instanceof DestinationError) {
      io.stderr.write(`sipnote: ${error.message}\n`);
      return error.unreachable ? 3 : 1;
    }
    if (error instanceof ContactCertificateError || error instanceof CmsError) {
      io.stderr.write(`sipnote: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    secure?.close();
    await agent.close();
    outbox?.store.close();
  }
}

interface Outbox {
  readonly store: Store;
  /** This command's message, stored `queued`. */
  readonly message: Message;
}

/**
 * Opens the store, recovers from a crash, and enqueues the message: all committed before the
 * user agent exists, so before any byte leaves.
 */
function openOutbox(dataDir: string, args: SendArgs, io: CommandIo, body: Buffer, smime: boolean): Outbox {
  const store = openStore(dataDir);
  try {
    const recovered = store.messages.recoverAfterCrash();
    for (const message of recovered.requeued) io.stderr.write(`sipnote: message #${message.id} to ${message.peer} was interrupted while sending (sipnote stopped): queued again\n`);
    for (const message of recovered.failed) io.stderr.write(`sipnote: message #${message.id} to ${message.peer} failed: ${message.reason}\n`);
    const message = store.messages.enqueueOutgoing({
      account: args.from,
      peer: args.to,
      body: body.toString('utf8'),
      contentType: smime ? 'text/plain;charset=utf-8' : args.contentType,
      security: smime ? 'encrypted-signed' : 'plaintext',
      // Chosen once, carried by every attempt: the peer drops a retry it already has by it.
      imdnMessageId: newMessageId(),
    });
    return { store, message };
  } catch (error) {
    store.close();
    throw error;
  }
}

/**
 * Sends the due messages of this account queued before this one (left by a killed or failed
 * sender), each with its own state changes. Failures are recorded and reported, never thrown:
 * they do not stop this command's own message. A message whose protection this run cannot give
 * (S/MIME, with --plaintext) stays queued.
 */
async function sendEarlier(outbox: Outbox, args: SendArgs, io: CommandIo, agent: UserAgent, secure: SecureMessaging | undefined): Promise<void> {
  const { store } = outbox;
  const ours = new Set(store.messages.outbox(args.from).map((message) => message.id));
  for (const message of store.messages.dueOutbox()) {
    if (message.id >= outbox.message.id || !ours.has(message.id)) continue;
    if (message.security !== 'plaintext' && secure === undefined) continue;
    const identity = retryIdentity(message, args.from);
    const attempt = store.messages.markSending(message.id, identity);
    try {
      const { result } = await sendOnce(agent, message.security === 'plaintext' ? undefined : secure, storedSend(store, message, identity));
      const update = recordResult(store, attempt, result);
      io.stderr.write(`sipnote: earlier message #${message.id} to ${message.peer}: ${update.state} (${result.status} ${result.reason})\n`);
    } catch (error) {
      const update = recordFailure(store, attempt, error);
      io.stderr.write(`sipnote: earlier message #${message.id} to ${message.peer}: ${update.state}: ${update.reason}\n`);
    }
  }
}

/** A fresh Call-ID and From tag for one attempt (RFC 3261 §8.1.1.3-4). */
export function requestIdentity(from: string): { callId: string; fromTag: string } {
  const uri = parseUri(from);
  return { callId: newCallId(isSipUri(uri) ? uri.host : 'sipnote'), fromTag: newTag() };
}

/**
 * The identity of the next attempt of a stored message (main/im/attempt-identity.ts): the
 * Call-ID and From tag of its earlier attempt when it had one, a fresh pair for a first
 * attempt, and a CSeq numbered from the attempt count, higher on every retry (a retry is a new
 * request, RFC 3261 §8.1.1.5; reusing the first CSeq gets 482 from a receiver that still holds
 * the first transaction, §8.2.2.2). The receiver recognises a retry it already has by the
 * message's imdn.Message-ID, the same on every attempt; a plaintext message, which has none,
 * keeps CSeq 1 (attempt-identity.ts). The desktop outbox does the same (main/im/outbox-worker.ts).
 */
export function retryIdentity(
  message: { readonly callId: string | null; readonly fromTag: string | null; readonly attempts: number; readonly security: string },
  from: string,
): AttemptIdentity {
  return nextAttemptIdentity(message, () => requestIdentity(from));
}

/**
 * What `sendOnce` sends for a stored message: its text and type, this attempt's identity, and
 * its imdn.Message-ID (stored now if a row queued by an older build has none). Plaintext
 * text/plain carries no Message-ID: a retry after a lost 200 can show twice at the peer.
 */
export function storedSend(store: Store, message: Message, identity: AttemptIdentity): SendOnceInput {
  const messageId = message.security === 'plaintext' ? undefined : (message.imdnMessageId ?? store.messages.ensureImdnMessageId(message.id, newMessageId()));
  return { to: message.peerUri, body: Buffer.from(message.body, 'utf8'), contentType: message.contentType, identity, ...(messageId === undefined ? {} : { messageId, imdn: REQUESTED_DISPOSITIONS }) };
}

export interface SendOnceInput {
  to: string;
  body: Buffer;
  contentType: string;
  transport?: SipTransportName;
  /** Call-ID, From tag and (for a stored message) this attempt's CSeq. */
  identity?: { callId: string; fromTag: string; cseq?: number };
  /** The imdn.Message-ID of a stored message (S/MIME only). */
  messageId?: string;
  /** Notifications to ask for (S/MIME only, RFC 5438 §6.2). */
  imdn?: readonly ImdnRequest[];
}

/** One attempt: S/MIME when `secure` is given (and not bypassed), else the body as it is. */
export async function sendOnce(
  agent: UserAgent,
  secure: SecureMessaging | undefined,
  input: SendOnceInput,
): Promise<{ result: SendResult; security: MessageSecurity }> {
  const transport = input.transport === undefined ? {} : { transport: input.transport };
  const identity = input.identity === undefined ? {} : { identity: input.identity };
  if (secure !== undefined) {
    const messageId = input.messageId === undefined ? {} : { messageId: input.messageId };
    const imdn = input.imdn === undefined ? {} : { imdn: input.imdn };
    const sent = await secure.send(agent, { to: input.to, text: input.body.toString('utf8'), ...transport, ...identity, ...messageId, ...imdn });
    return { result: sent.result, security: sent.security };
  }
  const result = await agent.sendMessage({ to: input.to, body: input.body, contentType: input.contentType, ...transport, ...identity });
  return { result, security: 'plaintext' };
}

/**
 * 200 → delivered, 202 → accepted (a server stored it), anything else → failed with its status,
 * and with the time of the next attempt when the retry policy says it may pass.
 * `attempt` is what `markSending` returned for this attempt.
 */
export function recordResult(store: Store, attempt: DeliveryUpdate, result: SendResult, now: number = Date.now()): DeliveryUpdate {
  if (result.status >= 200 && result.status < 300) {
    return store.messages.markResult(attempt.id, { state: result.status === 202 ? 'accepted' : 'delivered', status: result.status, reason: result.reason });
  }
  const why = result.outcome === 'timeout' ? 'no response' : result.outcome === 'transport-error' ? 'could not reach the peer' : result.reason;
  // A 482 to a plaintext retry: the peer still holds our earlier attempt (attempt-identity.ts).
  const retryable: AttemptOutcome = isMergedRetry(result.status, attempt.attempts) ? { outcome: 'failed', status: 503 } : result;
  return store.messages.markResult(attempt.id, { state: 'failed', status: result.status, reason: why, ...retryAtFor(retryable, attempt.attempts, now) });
}

/**
 * An attempt that ended in an exception: failed, with the final response's status when there
 * was one. A destination that could not be resolved now (DNS down) is retried like a transport
 * failure; the other exceptions (certificates, size, a refusal) are final.
 */
export function recordFailure(store: Store, attempt: DeliveryUpdate, error: unknown, now: number = Date.now()): DeliveryUpdate {
  const result = error instanceof SecureSendError ? error.result : undefined;
  const reason = error instanceof Error ? error.message : String(error);
  const retryable: AttemptOutcome | undefined =
    result !== undefined ? result : error instanceof DestinationError && error.unreachable ? { outcome: 'transport-error', status: 503 } : undefined;
  return store.messages.markResult(attempt.id, {
    state: 'failed',
    ...(result === undefined ? {} : { status: result.status }),
    reason,
    ...(retryable === undefined ? {} : retryAtFor(retryable, attempt.attempts, now)),
  });
}

function retryAtFor(outcome: AttemptOutcome, attempts: number, now: number): { retryAt?: number } {
  const decision = nextRetry(outcome, attempts, now);
  return decision.retry ? { retryAt: decision.at } : {};
}

/** Tells the user when a failed message goes again by itself. */
function reportRetry(io: CommandIo, update: DeliveryUpdate): void {
  if (update.state === 'failed' && update.nextAttemptAt !== null) {
    io.stderr.write(`sipnote: message #${update.id} is kept in the outbox; next attempt ${new Date(update.nextAttemptAt).toISOString()} (sipnote outbox --flush)\n`);
  }
}

/** Ephemeral UDP and TCP sockets on the loopback or wildcard address of the target's family. */
export function defaultClientListen(to: string): ListenSpec[] {
  const uri = parseUri(to);
  const host = 'host' in uri ? uri.host.replace(/^\[|\]$/g, '') : '';
  const v6 = host.includes(':');
  const loopback = v6 ? host === '::1' : host.startsWith('127.') || host === 'localhost';
  const address = v6 ? (loopback ? '::1' : '::') : loopback ? '127.0.0.1' : '0.0.0.0';
  return [
    { transport: 'udp', host: address, port: 0 },
    { transport: 'tcp', host: address, port: 0 },
  ];
}

function printSummary(args: SendArgs, io: CommandIo, result: SendResult, security: MessageSecurity): void {
  const summary: SendSummary = {
    status: result.status,
    reason: result.reason,
    outcome: result.outcome,
    callId: result.callId,
    transport: result.transport,
    security,
    ...(result.retryAfter === undefined ? {} : { retryAfter: result.retryAfter }),
    ...(result.authFailure === undefined ? {} : { authFailure: result.authFailure }),
  };
  io.stdout.write(args.json ? `${JSON.stringify(summary)}\n` : `${result.status} ${result.reason} (${result.outcome}, ${security})\n`);
}

/**
 * The S/MIME identity of `aor` in `dataDir`, or undefined after telling the user what to do
 * (no identity: `sipnote keys init`; no keychain; a missing key or passphrase).
 */
export async function loadCommandIdentity(
  dataDir: string,
  aor: string,
  io: CommandIo,
  dependencies: SecurityDependencies = {},
  options: { readonly plaintextAlternative?: string } = {},
): Promise<AccountIdentity | undefined> {
  const env = dependencies.env ?? process.env;
  const passphrase = env.SIPNOTE_KEY_PASSPHRASE;
  try {
    const identity = await loadIdentity(dataDir, aor, {
      keychain: dependencies.keychain ?? new OsKeychain(),
      ...(passphrase === undefined || passphrase.length === 0 ? {} : { passphrase }),
    });
    return { aor: identity.aor, certificateDer: identity.certificateDer, privateKeyPkcs8: identity.privateKeyPkcs8 };
  } catch (error) {
    if (error instanceof IdentityError && error.code === 'not-found') {
      io.stderr.write(
        `sipnote: ${aor} has no S/MIME identity in ${dataDir}: messages are signed and encrypted by default. ` +
          `Create one with \`sipnote keys init --aor ${aor} --data-dir ${dataDir}\` (or import one with \`sipnote keys import\`)` +
          `${options.plaintextAlternative ?? ', or send unprotected with --plaintext'}\n`,
      );
      return undefined;
    }
    if (error instanceof IdentityError && error.code === 'passphrase-required') {
      io.stderr.write(`sipnote: ${error.message}: set SIPNOTE_KEY_PASSPHRASE\n`);
      return undefined;
    }
    if (error instanceof IdentityError || error instanceof KeychainUnavailableError || error instanceof PassphraseKeyError) {
      io.stderr.write(`sipnote: ${error.message}\n`);
      return undefined;
    }
    throw error;
  }
}

/** Prints security notices on stderr; a changed certificate loudly, with both fingerprints. */
export function noticePrinter(io: CommandIo, dataDir: string): (notice: SecurityNotice) => void {
  return (notice) => {
    switch (notice.kind) {
      case 'discovering':
        io.stderr.write(`sipnote: no certificate is pinned for ${notice.peer}: asking ${notice.peer} for it (OPTIONS)\n`);
        break;
      case 'pinned':
        io.stderr.write(
          `sipnote: pinned the certificate of ${notice.peer} on first use (SHA-256 ${notice.fingerprint}); ` +
            `compare it with ${notice.peer} out of band (sipnote keys show --peer ${notice.peer})\n`,
        );
        break;
      case 'retrying':
        io.stderr.write(
          notice.why === 'unknown-signer'
            ? `sipnote: ${notice.peer} does not have our certificate: sending again with it\n`
            : `sipnote: ${notice.peer} could not decrypt the message: sending again to the certificate it offered\n`,
        );
        break;
      case 'certificate-changed':
        io.stderr.write(
          [
            `sipnote: WARNING: THE CERTIFICATE OF ${notice.peer} HAS CHANGED. Nothing from or to it is accepted until you decide.`,
            `sipnote:   pinned:    SHA-256 ${notice.pinnedFingerprints.join(', ') || '(none)'}`,
            `sipnote:   presented: SHA-256 ${notice.presentedFingerprint}`,
            `sipnote:   Either ${notice.peer} made a new key (a new device, a reinstall), or someone else is pretending to be ${notice.peer}.`,
            `sipnote:   Compare the presented fingerprint with ${notice.peer} out of band (by phone, in person). To accept it:`,
            `sipnote:   sipnote keys trust --peer ${notice.peer} --cert ${notice.presentedCertificateFile} --replace --data-dir ${dataDir}`,
            '',
          ].join('\n'),
        );
        break;
    }
  };
}
