/**
 * `sipnote listen --aor URI --listen SPEC[,SPEC…] [--register [--registrar URI] [--user NAME]]
 *                [--proxy URI] [--tls-cert F --tls-key F] [--trust-cert F] [--data-dir DIR] [--plaintext] [--json]
 *                [--rate-limit N[/B]] [--tcp-idle-timeout MS] [--tcp-message-timeout MS]`
 *
 * S/MIME by default (main/im/secure-messaging.ts), with the identity of --aor in the data dir:
 * MESSAGEs are decrypted and verified, their signers pinned on first use, replays answered 200
 * and shown once, a changed certificate refused (403) with a loud warning on stderr, and
 * plaintext refused with 415. OPTIONS are answered with our certificate. `--plaintext` also
 * accepts plaintext (labelled so), and without an identity it is the only thing accepted.
 *
 * With --register it stays registered while it runs (refreshing before expiry) and removes its
 * binding on SIGINT/SIGTERM; registration state is printed as `registered`,
 * `registration-failed` and `unregistered` events.
 *
 * Receives MESSAGEs until SIGINT/SIGTERM, then exits 0. With --json, prints one JSON object per
 * line: `{"event":"listening","listen":[…]}` once every socket is bound, then one
 * `{"event":"message",…}` per accepted MESSAGE (body as text for textual types, else base64),
 * with `security` (`encrypted-signed`, `signed`, `encrypted`, `plaintext`), the signer's
 * `fingerprint`, and `late` when the date under the signature is more than 5 minutes old.
 *
 * With --data-dir, every accepted MESSAGE is stored in that data dir's history (main/store)
 * before it is answered (design.md "Durability", write before acknowledge): the handler returns
 * its decision, and the UA sends the 2xx, only after the commit has been synced to disk. The
 * writes (insert, commit, sync) run on a worker thread with its own connection to the store
 * (history-worker.ts): the writes of one event-loop turn go there together, and the worker
 * commits whatever reached it in one transaction, so the listener goes on receiving while the
 * worker and the disk work, and one fsync covers many turns under load. A duplicate (same Call-ID,
 * CSeq and From tag, or same CPIM/IMDN Message-ID: a retransmission after our restart) gets the
 * same 200 and is neither stored nor printed again. A store failure throws, which the UA answers
 * with 500: the sender keeps the message and may try again. An S/MIME message's replay key is
 * committed right after its row (the replay cache is its own database; if we die in between,
 * the store's duplicate keys still absorb the resend).
 *
 * Notifications (RFC 5438), with --data-dir: a stored S/MIME IM that asks for positive delivery
 * gets it back after our 200, protected like the IM and paced (message-notifications.ts); a
 * notification for a message sent from this data dir moves it to delivered or displayed
 * (`sipnote history`/`outbox` show it) and is not stored as a message.
 */
import { parseContentType } from '../sip/header-values.js';
import { ParseError } from '../sip/message/parse-error.js';
import type { ListenSpec, TransportLimits } from '../sip/transport/transport-layer.js';
import { TEXT_CHARSETS } from '../sip/ua/request-policy.js';
import { UserAgent, type IncomingMessage, type MessageDecision } from '../sip/ua/user-agent.js';
import { PAGER_ACCEPTED_TYPES, PAGER_REQUEST_POLICY, readMessageBody, type BodyReading } from '../im/incoming-body.js';
import { SecureMessaging, securePagerPolicy, type ReceivedMessage } from '../im/secure-messaging.js';
import type { UnprotectedMessage } from '../im/smime/unprotect.js';
import type { ListenEvent, MessageEvent, MessageSecurity } from '../../shared/cli-events.js';
import { readIdentityRecord } from '../security/identity-store.js';
import { systemClock } from '../sip/transaction/clock.js';
import { Registration, type RegistrationEvent } from '../sip/ua/registration.js';
import { accountAgentOptions, type AccountArgs } from './account-options.js';
import { resolveDataDir } from './data-dir.js';
import type { IncomingInput } from '../store/index.js';
import { HistoryWorker } from './history-worker.js';
import { traceTo, type CommandIo } from './io.js';
import { formatListenSpec } from './listen-specs.js';
import { loadCommandIdentity, noticePrinter, type SecurityDependencies } from './send-command.js';
import { ControlBodyError, deliveryImdnPayload, NotificationPacer, readProtectedControl, type ControlBody } from '../im/message-notifications.js';
import type { ProtectedPayload } from '../im/smime/protect.js';

export interface ListenArgs {
  aor: string;
  account: AccountArgs;
  /** Register with a registrar while listening (RFC 3261 §10). */
  register: boolean;
  registrar?: string;
  expires?: number;
  /** Per-source request rate above which new requests get 503 with Retry-After. */
  rateLimit?: { perSecond: number; burst: number };
  /** TCP/TLS timeouts (--tcp-idle-timeout, --tcp-message-timeout); the transport's defaults otherwise. */
  transportLimits?: TransportLimits;
  listen: ListenSpec[];
  json: boolean;
  plaintext: boolean;
  dataDir?: string;
  t1?: number;
  verbose: boolean;
  /** Print every SIP message on stderr. */
  trace: boolean;
}

export async function listenCommand(args: ListenArgs, io: CommandIo, stop: Promise<void>, dependencies: SecurityDependencies = {}): Promise<number> {
  const output = new LinePrinter(io.stdout);
  /** Resolves once the line is handed to stdout (see LinePrinter). */
  const print = (value: ListenEvent, human: string): Promise<void> => output.print(args.json ? `${JSON.stringify(value)}\n` : `${human}\n`);
  const dataDir = resolveDataDir(args.dataDir, dependencies.env);
  // The history worker (a thread to start, a store to open) and the S/MIME side (an identity to
  // load, perhaps from the keychain) each take tens of ms: they start together. Whichever
  // fails, the other is closed, and the S/MIME side's failure is the one reported, as when the
  // store was opened only after it.
  // Without --plaintext a listener needs an S/MIME identity: when the data dir has none, it
  // stops without creating or migrating a store (a damaged record is left to the S/MIME side to report).
  const identityMissing = !args.plaintext && args.dataDir !== undefined && (await readIdentityRecord(dataDir, args.aor).then((record) => record === undefined, () => false));
  const historyOpening = args.dataDir === undefined || identityMissing ? undefined : HistoryWorker.open(dataDir);
  historyOpening?.catch(() => {}); // it may fail while S/MIME still loads: awaited below, not unhandled
  const secure = await openSecureMessaging(args, io, dataDir, dependencies).catch(async (error: unknown) => {
    await closeWhenOpen(historyOpening);
    throw error;
  });
  if (secure === 'failed') {
    await closeWhenOpen(historyOpening);
    return 1;
  }
  let history: HistoryWorker | undefined;
  try {
    history = await historyOpening;
  } catch (error) {
    secure?.close();
    throw error;
  }
  /** The line that shows a plaintext message (the SIP body itself, or what was read from it: `contentType`, `body`). */
  const shownLine = (message: IncomingMessage, reading: Extract<BodyReading, { kind: 'text' }>, security: MessageSecurity, contentType: string, body: Buffer): string => {
    if (!args.json) return `${message.from} -> ${message.to} [${security}]: ${reading.text}\n`;
    // The SIP body itself (every plaintext listener's message) needs no object to say so.
    return messageEventLine(message, reading, security, contentType === message.contentType && body === message.body ? message : { contentType, body });
  };
  /**
   * A plaintext body, taken only with --plaintext. Not `async`: the promise it returns is the
   * printer's (or the store's), one fewer per message (every message of a plaintext listener
   * comes through here).
   */
  const takePlaintext = (message: IncomingMessage, contentType: string, body: Buffer, security: MessageSecurity): Promise<void> | MessageDecision => {
    const reading = readMessageBody(contentType, body);
    if (reading.kind === 'rejected') {
      return { status: reading.status, reason: reading.reason, headers: [['Accept', PAGER_ACCEPTED_TYPES.join(', ')]] };
    }
    // Without --data-dir, showing a message is delivering it: the 200 waits until it is shown.
    if (history === undefined) return output.print(shownLine(message, reading, security, contentType, body));
    return history
      .record(
        incomingInput(args.aor, message, {
          body: reading.text,
          contentType,
          security,
          ...(reading.cpim?.messageId === undefined ? {} : { imdnMessageId: reading.cpim.messageId }),
          ...(reading.cpim?.dateTime === undefined ? {} : { sentAt: reading.cpim.dateTime.getTime() }),
        }),
      )
      .then((stored) => (stored ? output.print(shownLine(message, reading, security, contentType, body)) : undefined)); // not stored: a duplicate, the same 200, shown once
  };
  let agent: UserAgent | undefined;
  /** Notifications being signed, encrypted and sent: a shutdown waits for them (bounded). */
  const imdnSends = new Set<Promise<void>>();
  // Encrypted for the IM's sender (`peer`), sent to the top IMDN-Route when the IM had one (RFC 5438 §7.2.1).
  const imdnPacer = new NotificationPacer<{ readonly payload: ProtectedPayload; readonly via?: string }>(systemClock, (peer, { payload, via }) => {
    if (agent === undefined || secure === undefined) return;
    const sending: Promise<void> = secure
      .send(agent, { to: peer, text: '', payload, ...(via === undefined ? {} : { via }) })
      .then(
        () => undefined,
        (error: unknown) => {
          if (args.verbose) io.stderr.write(`sipnote: IMDN to ${via ?? peer}: ${error instanceof Error ? error.message : String(error)}\n`);
        },
      )
      .finally(() => imdnSends.delete(sending));
    imdnSends.add(sending);
  });
  const onMessage = (message: IncomingMessage): Promise<MessageDecision | void> | MessageDecision => {
    if (secure === undefined) return takePlaintext(message, message.contentType, message.body, 'plaintext');
    return onSecureMessage(secure, message);
  };
  const onSecureMessage = async (secure: SecureMessaging, message: IncomingMessage): Promise<MessageDecision | void> => {
    const received = await secure.receive(message);
    if (args.verbose) io.stderr.write(`sipnote: ${describeReceived(message, received)}\n`);
    switch (received.kind) {
      case 'accepted': {
        // Control bodies are never messages: a notification for a message sent from this data dir
        // (RFC 5438 §7.1.2) moves its state on; an isComposing status (RFC 3994) has nothing to
        // show in a listener; a malformed one is 400.
        let control: ControlBody | undefined;
        try {
          control = readProtectedControl(received.message.contentType, received.message.content);
        } catch (error) {
          if (!(error instanceof ControlBodyError)) throw error;
          received.abandon();
          return { status: 400, reason: `Bad Request (${error.message})` };
        }
        if (control?.kind === 'imdn') {
          const notifications = control.notifications;
          const changed = history === undefined ? [] : (await history.applyImdnNotifications(args.aor, message.from, notifications)).changed;
          received.commit();
          if (args.verbose) {
            if (history === undefined) io.stderr.write(`sipnote: a delivery notification from ${message.from} (no --data-dir: no outbox to update)\n`);
            for (const update of changed) io.stderr.write(`sipnote: message #${update.id} to ${update.peer}: ${update.state} (IMDN)\n`);
          }
          return;
        }
        if (control?.kind === 'composing') {
          received.commit();
          if (args.verbose) io.stderr.write(`sipnote: ${message.from} is ${control.status.state === 'active' ? 'typing' : 'idle'}\n`);
          return;
        }
        let stored = true;
        try {
          const event = secureMessageEvent(message, received.security, received.message);
          if (history !== undefined) {
            const opened = received.message;
            stored = await history.record(
              incomingInput(args.aor, message, {
                body: opened.text ?? event.body,
                contentType: opened.contentType,
                security: received.security,
                signerFingerprint: opened.signerFingerprint,
                ...(opened.cpim?.messageId === undefined ? {} : { imdnMessageId: opened.cpim.messageId }),
                sentAt: opened.protectedTime.getTime(),
                late: opened.late,
              }),
            );
          }
          if (stored) await print(event, `${message.from} -> ${message.to} [${describeProtection(received.security, received.message)}]: ${event.text}`);
        } catch (error) {
          // Not kept (the store failed: the UA answers 500): a resend must not be taken for a replay.
          received.abandon();
          throw error;
        }
        // Stored (or already stored) and shown, so remembered: a replay of it is answered 200
        // and never shown again.
        received.commit();
        // The positive-delivery notification it asked for (RFC 5438 §7.2.1), protected like it,
        // paced, after our 200 (queued behind this answer).
        const delivery = history === undefined || !stored ? undefined : deliveryImdnPayload(received.message.cpim, secure.aor);
        if (delivery !== undefined) imdnPacer.enqueue(message.from, `${message.from}\n${delivery.key}`, delivery);
        return;
      }
      case 'replay':
        return;
      case 'plaintext':
        return takePlaintext(message, received.contentType, received.body, received.security);
      case 'certificate-changed':
      case 'rejected':
        return received.decision;
    }
  };
  try {
    agent = await UserAgent.start({
      aor: args.aor,
      listen: args.listen,
      ...(await accountAgentOptions(args.account, args.aor, io)),
      ...(args.t1 === undefined ? {} : { timers: { t1: args.t1, t2: Math.max(args.t1 * 8, args.t1), t4: args.t1 * 10 } }),
      policy: secure === undefined ? PAGER_REQUEST_POLICY : securePagerPolicy(PAGER_REQUEST_POLICY),
      onMessage,
      ...(args.rateLimit === undefined ? {} : { rateLimit: args.rateLimit }),
      ...(args.transportLimits === undefined ? {} : { transportLimits: args.transportLimits }),
      ...(secure === undefined ? {} : { onOptions: (request) => secure.answerOptions(request) }),
      ...(args.verbose ? { onDiagnostic: (text: string) => io.stderr.write(`sipnote: ${text}\n`) } : {}),
      ...(args.trace ? { onTrace: traceTo(io) } : {}),
    });
  } catch (error) {
    secure?.close();
    await history?.close();
    throw error;
  }
  const bound = agent.listening.map(formatListenSpec);
  print({ event: 'listening', aor: args.aor, listen: bound }, `listening as ${args.aor} on ${bound.join(', ')}`);

  let registration: Registration | undefined;
  if (args.register) {
    registration = new Registration(
      agent,
      systemClock,
      { ...(args.registrar === undefined ? {} : { registrar: args.registrar }), ...(args.expires === undefined ? {} : { expires: args.expires }) },
      (event) => void print(registrationEvent(event), describeRegistration(event)),
    );
    void registration.start().catch((error: unknown) => {
      io.stderr.write(`sipnote: registration: ${error instanceof Error ? error.message : String(error)}\n`);
    });
  }
  await stop;
  // Delivery notifications still queued get a little time to go, at the pacer's pace (best
  // effort, RFC 5438 §7.1.4); a clean exit waits for nothing when none is waiting.
  const notifyDeadline = systemClock.now() + SHUTDOWN_NOTIFICATION_MS;
  const unsent = await imdnPacer.finish(notifyDeadline);
  if (unsent > 0) io.stderr.write(`sipnote: ${unsent} delivery notification${unsent === 1 ? '' : 's'} not sent: shutting down\n`);
  await untilSettledOr(imdnSends, notifyDeadline);
  // §10.2.2: remove our binding on a clean exit, so nothing is sent to a dead contact.
  await registration?.stop().catch((error: unknown) => {
    io.stderr.write(`sipnote: un-REGISTER failed: ${error instanceof Error ? error.message : String(error)}\n`);
  });
  await agent.close();
  secure?.close();
  await history?.close();
  output.flush();
  return 0;
}

/**
 * The listener's stdout: lines are collected and written together, once per turn of the event
 * loop. stdout is synchronous for files, pipes and terminals, so one write per message would be
 * a system call per message, which under load costs more than the rest of the message's
 * handling. `print` resolves once its line has been handed to stdout, so that whoever answers
 * a message can wait until it has been shown.
 */
class LinePrinter {
  #lines: string[] = [];
  #written: Promise<void> | undefined;

  constructor(private readonly out: NodeJS.WritableStream) {}

  print(line: string): Promise<void> {
    this.#lines.push(line);
    // After the I/O callbacks of this turn (all datagrams read in it): one write for them all.
    this.#written ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        this.flush();
        resolve();
      }),
    );
    return this.#written;
  }

  /** Writes every line collected so far. */
  flush(): void {
    const text = this.#lines.join('');
    this.#lines = [];
    this.#written = undefined;
    if (text.length > 0) this.out.write(text);
  }
}

/** What a received message adds to the SIP identity to be stored (see `incomingInput`). */
type StoredContent = Pick<IncomingInput, 'body' | 'contentType' | 'security'> &
  Partial<Pick<IncomingInput, 'signerFingerprint' | 'imdnMessageId' | 'sentAt' | 'late'>>;

/**
 * What the store keeps of an incoming message (HistoryWorker.record): its SIP identity (the
 * duplicate keys), when it came, and what was read from it. A plain object: it is copied to
 * the history's worker thread.
 */
function incomingInput(account: string, message: IncomingMessage, content: StoredContent): IncomingInput {
  return {
    account,
    peer: message.from,
    callId: message.callId,
    cseq: message.cseq,
    fromTag: message.fromTag,
    receivedAt: message.receivedAt.getTime(),
    ...(content.sentAt === undefined && message.date !== undefined ? { sentAt: message.date.getTime() } : {}),
    ...content,
  };
}

/**
 * The S/MIME side of the listener: undefined for plaintext only (--plaintext and no identity),
 * 'failed' after telling the user why there is neither.
 */
async function openSecureMessaging(args: ListenArgs, io: CommandIo, dataDir: string, dependencies: SecurityDependencies): Promise<SecureMessaging | undefined | 'failed'> {
  if (args.plaintext) {
    // Plaintext is allowed; S/MIME too when there is an identity (a missing one is no error here).
    const record = await readIdentityRecord(dataDir, args.aor);
    if (record === undefined) {
      io.stderr.write(`sipnote: ${args.aor} has no S/MIME identity in ${dataDir}: receiving plaintext only (sipnote keys init --aor ${args.aor} --data-dir ${dataDir} to receive S/MIME)\n`);
      return undefined;
    }
  }
  const identity = await loadCommandIdentity(dataDir, args.aor, io, dependencies, { plaintextAlternative: ', or accept only plaintext with --plaintext' });
  if (identity === undefined) return 'failed';
  return new SecureMessaging({ dataDir, identity, acceptPlaintext: args.plaintext, onNotice: noticePrinter(io, dataDir) });
}

/**
 * Closes a history worker that was being opened, once it is open. One that could not be opened
 * needs no closing, and its error is not reported: the listener stops for another reason.
 */
async function closeWhenOpen(opening: Promise<HistoryWorker> | undefined): Promise<void> {
  const history = await opening?.catch(() => undefined);
  await history?.close();
}

/** `encrypted-signed, SHA-256 AB:…`, and when it is late, when it was sent (RFC 3428 §11.4: warn of a possible replay). */
function describeProtection(security: MessageSecurity, opened: UnprotectedMessage): string {
  const late = opened.late ? `, LATE: sent ${opened.protectedTime.toISOString()}, possibly a replay` : '';
  return `${security}, SHA-256 ${opened.signerFingerprint}${late}`;
}

function describeReceived(message: IncomingMessage, received: ReceivedMessage): string {
  const from = `MESSAGE from ${message.from} (Call-ID ${message.callId})`;
  switch (received.kind) {
    case 'accepted':
      return `${from}: ${received.security}, signed by SHA-256 ${received.message.signerFingerprint}${received.message.warnings.length > 0 ? ` (${received.message.warnings.join(', ')})` : ''}`;
    case 'replay':
      return `${from}: a replay of a message already shown (SHA-256 ${received.fingerprint}); answered 200, not shown`;
    case 'plaintext':
      return `${from}: ${received.security}`;
    case 'certificate-changed':
      return `${from}: refused, the signer's certificate changed`;
    case 'rejected':
      return `${from}: refused with ${received.decision.status} ${received.decision.reason ?? ''}: ${received.detail}`;
  }
}

function registrationEvent(event: RegistrationEvent): ListenEvent {
  switch (event.state) {
    case 'registered':
      return { event: 'registered', registrar: event.registrar, contact: event.contact, expires: event.expires };
    case 'failed':
      return {
        event: 'registration-failed',
        registrar: event.registrar,
        status: event.status,
        reason: event.reason,
        ...(event.retryIn === undefined ? {} : { retryIn: event.retryIn }),
      };
    case 'unregistered':
      return { event: 'unregistered', registrar: event.registrar };
  }
}

function describeRegistration(event: RegistrationEvent): string {
  switch (event.state) {
    case 'registered':
      return `registered at ${event.registrar} as ${event.contact} for ${event.expires} s`;
    case 'failed':
      return `registration at ${event.registrar} failed: ${event.status} ${event.reason}${event.retryIn === undefined ? '' : `; retrying in ${event.retryIn} s`}`;
    case 'unregistered':
      return `unregistered from ${event.registrar}`;
  }
}

/**
 * `JSON.stringify(messageEvent(…)) + '\n'`, written directly: the fixed parts as text, only the
 * values through JSON.stringify, and a text/plain body's text escaped once for both `body` and
 * `text` (test/unit/listen-event-line.test.ts checks it against the object's serialization).
 * The parts made of values that repeat from one message to the next under load (the sender
 * and our AoR, the content type and the source address, the timestamps) are made once and
 * reused while their values stay the same: see `LinePart`.
 */
export function messageEventLine(
  message: IncomingMessage,
  reading: Extract<BodyReading, { kind: 'text' }>,
  security: MessageSecurity = 'plaintext',
  opened: { readonly contentType: string; readonly body: Buffer } = message,
): string {
  const json = JSON.stringify;
  const text = jsonString(reading.text);
  let line = LINE_HEAD.text(security, message.from, message.fromDisplayName, message.to);
  line += `,"callId":${jsonString(message.callId)},"cseq":${jsonNumber(message.cseq)}`;
  line += LINE_SOURCE.text(message.contentType, message.transport, message.remote.address, message.remote.port);
  if (message.date !== undefined) line += dateTimes.jsonField(',"date":', message.date);
  if (message.expiresAt !== undefined) line += `,"expiresAt":${json(message.expiresAt.toISOString())}`;
  line += receiveTimes.jsonField(',"receivedAt":', message.receivedAt);
  if (TEXT_PLAIN.test(opened.contentType) && reading.textType === 'text/plain') {
    // Decoded by readMessageBody already (see messageEvent): `body` is `text`.
    line += `,"body":${text},"bodyEncoding":"text","text":${text}`;
  } else {
    const body = bodyText(opened.contentType, opened.body);
    line += `,"body":${body.text === reading.text ? text : jsonString(body.text)},"bodyEncoding":${json(body.encoding)},"text":${text}`;
  }
  if (reading.attachments > 0) line += `,"attachments":${json(reading.attachments)}`;
  if (reading.cpim !== undefined) line += `,"cpim":${json(cpimFields(reading.cpim))}`;
  return `${line}}\n`;
}

/** How long a shutdown lets queued and in-flight delivery notifications go on (ms). */
const SHUTDOWN_NOTIFICATION_MS = 2000;

/** Waits for every promise in `pending` (they never reject) or until the clock reaches `deadline`. */
async function untilSettledOr(pending: ReadonlySet<Promise<void>>, deadline: number): Promise<void> {
  if (pending.size === 0) return;
  let cancel: (() => void) | undefined;
  const timeUp = new Promise<void>((resolve) => {
    cancel = systemClock.setTimer(deadline, resolve);
  });
  await Promise.race([Promise.all(pending), timeUp]);
  cancel?.();
}

/**
 * Characters JSON.stringify writes escaped in a string: the quote, the backslash, the controls
 * below U+0020, and lone surrogates (ES2019 well-formed JSON.stringify). A pair of surrogates
 * is written as it is, but any surrogate sends the string the slow way.
 */
const JSON_ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/;

/** How JSON.stringify writes the quote, the backslash and each control character. */
const JSON_ESCAPES: readonly string[] = (() => {
  const escapes: string[] = [];
  for (let code = 0; code < 0x20; code++) escapes[code] = `\\u${code.toString(16).padStart(4, '0')}`;
  Object.assign(escapes, { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r', 0x22: '\\"', 0x5c: '\\\\' });
  return escapes;
})();

/**
 * `JSON.stringify(text)`, written here: JSON.stringify enters the runtime and copies the whole
 * text, which for a message body (whose only escapes are often a closing CRLF) costs more than
 * finding what needs escaping, from the first such character on, and putting quotes around the
 * rest. A surrogate goes to JSON.stringify, which knows pairs from lone ones.
 */
function jsonString(text: string): string {
  const first = text.search(JSON_ESCAPED);
  if (first < 0) return `"${text}"`;
  let out = '"';
  let start = 0;
  for (let i = first; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x20 && code !== 0x22 && code !== 0x5c) {
      if (code < 0xd800 || code > 0xdfff) continue;
      return JSON.stringify(text);
    }
    out += text.slice(start, i) + JSON_ESCAPES[code]!;
    start = i + 1;
  }
  return `${out}${text.slice(start)}"`;
}

/** `JSON.stringify(value)` for a number: its decimal text when finite (the same Number::toString), else null. */
function jsonNumber(value: number): string {
  return Number.isFinite(value) ? `${value}` : 'null';
}

/**
 * A part of the event line made from up to four values, remembered with the values it was made
 * from and made again only when one of them changes. Under load nearly every message repeats
 * the last one's: JSON.stringify of each would cost more than the rest of the line.
 */
class LinePart<A, B, C, D> {
  #made = false;
  #a: A | undefined;
  #b: B | undefined;
  #c: C | undefined;
  #d: D | undefined;
  #text = '';

  constructor(private readonly make: (a: A, b: B, c: C, d: D) => string) {}

  text(a: A, b: B, c: C, d: D): string {
    if (!this.#made || a !== this.#a || b !== this.#b || c !== this.#c || d !== this.#d) {
      this.#text = this.make(a, b, c, d);
      this.#a = a;
      this.#b = b;
      this.#c = c;
      this.#d = d;
      this.#made = true;
    }
    return this.#text;
  }
}

/** `{"event":"message","security":…,"from":…[,"fromDisplayName":…],"to":…` */
const LINE_HEAD = new LinePart((security: MessageSecurity, from: string, fromDisplayName: string | undefined, to: string) => {
  const json = JSON.stringify;
  let head = `{"event":"message","security":${json(security)},"from":${json(from)}`;
  if (fromDisplayName !== undefined) head += `,"fromDisplayName":${json(fromDisplayName)}`;
  return `${head},"to":${json(to)}`;
});

/** `,"contentType":…,"transport":…,"remote":…` */
const LINE_SOURCE = new LinePart((contentType: string, transport: string, address: string, port: number) => {
  const json = JSON.stringify;
  return `,"contentType":${json(contentType)},"transport":${json(transport)},"remote":${json(`${address}:${port}`)}`;
});

/** The `cpim` of a plaintext message's event. */
function cpimFields(cpim: NonNullable<Extract<BodyReading, { kind: 'text' }>['cpim']>): NonNullable<MessageEvent['cpim']> {
  return {
    to: cpim.to,
    ...(cpim.from === undefined ? {} : { from: cpim.from }),
    ...(cpim.dateTime === undefined ? {} : { dateTime: cpim.dateTime.toISOString() }),
    ...(cpim.messageId === undefined ? {} : { messageId: cpim.messageId }),
  };
}

export function messageEvent(
  message: IncomingMessage,
  reading: Extract<BodyReading, { kind: 'text' }>,
  security: MessageSecurity = 'plaintext',
  /** What was read, when it is not the SIP body itself (the content of an unsigned encrypted body). */
  opened: { readonly contentType: string; readonly body: Buffer } = message,
): MessageEvent {
  // A text/plain body was decoded by readMessageBody already, in its charset by the same rules
  // as bodyText's: no need to parse its type and decode it twice.
  const body = TEXT_PLAIN.test(opened.contentType) && reading.textType === 'text/plain' ? { text: reading.text, encoding: 'text' as const } : bodyText(opened.contentType, opened.body);
  return {
    event: 'message',
    security,
    ...sipFields(message),
    body: body.text,
    bodyEncoding: body.encoding,
    text: reading.text,
    ...(reading.attachments > 0 ? { attachments: reading.attachments } : {}),
    ...(reading.cpim === undefined ? {} : { cpim: cpimFields(reading.cpim) }),
  };
}

/**
 * The event of an S/MIME message: `body` is the protected payload (the text, or base64 for
 * other payloads), not the ciphertext; `cpim` the envelope under the signature.
 */
export function secureMessageEvent(message: IncomingMessage, security: MessageSecurity, opened: UnprotectedMessage): MessageEvent {
  const content = Buffer.from(opened.content.buffer, opened.content.byteOffset, opened.content.byteLength);
  const body = bodyText(opened.contentType, content);
  const cpim = opened.cpim;
  return {
    event: 'message',
    security,
    fingerprint: opened.signerFingerprint,
    ...(opened.late ? { late: true } : {}),
    ...sipFields(message),
    body: body.text,
    bodyEncoding: body.encoding,
    text: opened.text ?? '',
    ...(cpim === undefined
      ? {}
      : {
          cpim: {
            to: cpim.to,
            from: cpim.from,
            ...(cpim.dateTime === undefined ? {} : { dateTime: cpim.dateTime.toISOString() }),
            ...(cpim.messageId === undefined ? {} : { messageId: cpim.messageId }),
          },
        }),
  };
}

/** What every message event says about the SIP request that carried it. */
function sipFields(
  message: IncomingMessage,
): Pick<MessageEvent, 'from' | 'fromDisplayName' | 'to' | 'callId' | 'cseq' | 'contentType' | 'transport' | 'remote' | 'date' | 'expiresAt' | 'receivedAt'> {
  return {
    from: message.from,
    ...(message.fromDisplayName === undefined ? {} : { fromDisplayName: message.fromDisplayName }),
    to: message.to,
    callId: message.callId,
    cseq: message.cseq,
    contentType: message.contentType,
    transport: message.transport,
    remote: `${message.remote.address}:${message.remote.port}`,
    ...(message.date === undefined ? {} : { date: dateTimes.iso(message.date) }),
    ...(message.expiresAt === undefined ? {} : { expiresAt: message.expiresAt.toISOString() }),
    receivedAt: receiveTimes.iso(message.receivedAt),
  };
}

/**
 * `toISOString` remembering its last answer. It costs about as much as building the rest of
 * an event, and under load consecutive messages share the millisecond they were received in,
 * and the second of their Date header.
 */
class IsoTimes {
  #ms = Number.NaN;
  #text = '';
  #field = '';
  #fieldName = '';

  iso(date: Date): string {
    const ms = date.getTime();
    if (ms !== this.#ms) {
      this.#text = date.toISOString();
      this.#ms = ms;
      this.#fieldName = '';
    }
    return this.#text;
  }

  /**
   * `name` followed by the JSON of `iso(date)`, e.g. `,"date":"2024-05-01T12:00:00.000Z"`. An
   * ISO date has nothing JSON escapes, so the quotes are all JSON.stringify would add.
   */
  jsonField(name: string, date: Date): string {
    const text = this.iso(date);
    if (name !== this.#fieldName) {
      this.#field = `${name}"${text}"`;
      this.#fieldName = name;
    }
    return this.#field;
  }
}

const receiveTimes = new IsoTimes();
const dateTimes = new IsoTimes();

/** A Content-Type value of type text/plain (whatever its parameters). */
const TEXT_PLAIN = /^[ \t]*text[ \t]*\/[ \t]*plain[ \t]*(?:;|$)/i;

/** Text for textual bodies in their charset (decoded only now, after framing), else base64. */
function bodyText(contentType: string, content: Buffer): { text: string; encoding: 'text' | 'base64' } {
  try {
    const type = parseContentType(contentType);
    const charset = type.params.get('charset')?.toLowerCase();
    const textual = type.type === 'text' || type.subtype === 'cpim' || type.subtype.endsWith('+xml');
    if (textual && (charset === undefined || charset === null || TEXT_CHARSETS.has(charset))) {
      const encoding = charset === 'iso-8859-1' || charset === 'latin1' ? 'latin1' : 'utf8';
      return { text: content.toString(encoding), encoding: 'text' };
    }
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
  }
  return { text: content.toString('base64'), encoding: 'base64' };
}
