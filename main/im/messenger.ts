/**
 * The Messenger: the one core object every front end talks to (design.md "One direction of
 * flow"). It owns the accounts (one UserAgent each, plus a Registration when the account uses
 * a registrar), the history, the SIP log and the settings, and implements shared/api.ts.
 *
 * Front ends (the Electron main process, the browser host, the CLI) are thin adapters: they
 * pass `(command, args)` from their transport to `dispatch` and forward events from
 * `subscribe`. `dispatch` is the single gate: it validates every argument with the schemas of
 * shared/api-schema.ts before any handler runs, and it never throws.
 *
 * Everything it keeps is in the SQLite store of the data dir (main/store): history, the outbox,
 * accounts and settings (config-store.ts). Passwords never are.
 *
 * Outgoing messages (RFC 3428 §4, §7): stored `queued` before anything is sent (design.md
 * "Durability"); the outbox worker (outbox-worker.ts) sends them in order per peer, each
 * attempt through `deliverOutgoing`: `sending`, then 200 → `delivered`, 202 → `accepted` (a
 * server stored it; not delivered yet), anything else → `failed` with the status and reason.
 * Timeouts, transport errors, 408 and 5xx are retried automatically with backoff (Retry-After
 * honoured), and at once when the account registers again or the network changes
 * (network-watch.ts); the user may retry or cancel a failed message. On open, attempts a crash
 * interrupted are recovered (sent again with the same Call-ID, From tag and CSeq, or failed
 * with a reason).
 *
 * Incoming messages: the body is opened (`openIncoming`), stored and committed, and only then
 * answered 200, so a crash cannot acknowledge a message that was not kept. Duplicates (same
 * Call-ID, CSeq, From tag) are answered the same but stored and shown once.
 *
 * Security (issues #4 and #6, account-security.ts), with the `security` option: every account
 * has an S/MIME identity (made at onboarding, key in the OS keychain); `protectOutgoing` labels
 * a message when it is queued (signed and encrypted unless plaintext was asked for),
 * `deliverOutgoing` protects it on the wire, `openIncoming` verifies and decrypts (a changed
 * certificate is refused and reported); contacts and certificate trust come from the data
 * dir's pins; passwords live in the keychain. Without the option the core is plaintext only,
 * says so in its capabilities, and contacts answer `not-available`.
 */
import { randomBytes } from 'node:crypto';
import type {
  Account,
  AccountChanges,
  AccountSettings,
  ApiEndpoint,
  ApiErrorCode,
  ApiEvent,
  ApiResponse,
  AppInfo,
  AppSettings,
  CommandArgs,
  CommandName,
  CommandResult,
  Contact,
  ContactPolicy,
  ConversationView,
  HistoryPage,
  MessageView,
  NewAccount,
  RegistrationState,
  SearchHit,
  SecurityLabel,
  TrustAction,
} from '../../shared/api.js';
import { validateCommand } from '../../shared/api-schema.js';
import { DigestClient } from '../sip/auth/digest-client.js';
import { ParseError } from '../sip/message/parse-error.js';
import { systemClock, type Clock } from '../sip/transaction/clock.js';
import type { TimerConfig } from '../sip/transaction/timer-config.js';
import type { ListenSpec } from '../sip/transport/transport-layer.js';
import { DestinationError, MessageTooLargeError } from '../sip/ua/errors.js';
import { Registration, type RegistrationEvent } from '../sip/ua/registration.js';
import { newCallId, newTag } from '../sip/ua/identifiers.js';
import { UserAgent, type IncomingMessage, type MessageDecision, type SipTrace } from '../sip/ua/user-agent.js';
import { aorOf, formatUri, isImUri, isSipUri, parseUri, type SipUri } from '../sip/uri.js';
import { openStore, StoreError, type AttemptIdentity, type Message, type Store } from '../store/index.js';
import { ConfigStore, DEFAULT_SETTINGS, type StoredAccount } from './config-store.js';
import { PAGER_ACCEPTED_TYPES, PAGER_REQUEST_POLICY, readMessageBody } from './incoming-body.js';
import { MessageRepository } from './message-repository.js';
import { watchNetwork } from './network-watch.js';
import { OutboxWorker, type DeliveryResult } from './outbox-worker.js';
import type { RetryPolicyOptions } from './retry-policy.js';
import { SipLog } from './sip-log.js';
import { deliverProtected, MessengerSecurity, type AccountSecurity, type SecurityEvent, type SecurityOptions } from './account-security.js';
import { ContactBookError } from './contact-book.js';

export interface MessengerOptions {
  /** The data dir: the store (DATA_DIR/sipnote.db) with history, outbox, accounts and settings. */
  readonly dataDir: string;
  /** Backoff of automatic retries (retry-policy.ts defaults: 30 s doubling to 1 h, 10 attempts). */
  readonly retryPolicy?: RetryPolicyOptions;
  /** How often to look for network changes (network-watch.ts); false: never (a shell calls `networkChanged`). */
  readonly networkPollMs?: number | false;
  /** SIP timers and the outbox's timers run on this clock (tests inject a manual one). */
  readonly clock?: Clock;
  readonly timers?: TimerConfig;
  /** Wall-clock milliseconds for the times users see and the outbox's retry times. */
  readonly now?: () => number;
  readonly sipLogCapacity?: number;
  /** How long `close` waits for each un-REGISTER (RFC 3261 §10.2.2) before giving up. */
  readonly unregisterTimeoutMs?: number;
  readonly version?: string;
  /** Problems with no other reporter (stray responses, unparseable input). */
  readonly onDiagnostic?: (text: string) => void;
  /**
   * S/MIME, contacts and keychain passwords (account-security.ts), with the data dir's
   * identities and pins (shared with the CLI). Absent: a plaintext-only core (capabilities say
   * so, every message is labelled `plaintext`); `sipnote ui` and the Electron app pass `{}`.
   */
  readonly security?: SecurityOptions;
}

/** A failure a handler reports on purpose: becomes `{ ok: false, error }`. */
export class ApiFailure extends Error {
  override readonly name = 'ApiFailure';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const TEXT_PLAIN_UTF8 = 'text/plain;charset=utf-8';
const DEFAULT_HISTORY_PAGE = 100;
const DEFAULT_SEARCH_LIMIT = 100;

/** One account while the app runs: its settings and the SIP machinery working for it. */
interface AccountRuntime {
  settings: StoredAccount;
  /** In memory while the app runs; kept in the OS keychain (`passwordStorage`), never in a file. */
  password: string | undefined;
  passwordStorage: 'session' | 'keychain';
  /** The account's S/MIME (identity, pins), while it runs with a security environment. */
  security: AccountSecurity | undefined;
  ua: UserAgent | undefined;
  registration: Registration | undefined;
  registrationState: RegistrationState;
  error: string | undefined;
}

type Handlers = { readonly [C in CommandName]: (args: CommandArgs<C>) => Promise<CommandResult<C>> | CommandResult<C> };

export class Messenger implements ApiEndpoint {
  private readonly accounts = new Map<string, AccountRuntime>();
  private readonly listeners = new Set<(event: ApiEvent) => void>();
  private readonly repository: MessageRepository;
  private readonly config: ConfigStore;
  private readonly worker: OutboxWorker;
  private readonly clock: Clock;
  private readonly now: () => number;
  private readonly sipLog: SipLog;
  private settings: AppSettings = DEFAULT_SETTINGS;
  private stopNetworkWatch: (() => void) | undefined;
  private security: MessengerSecurity | undefined;
  private closed = false;
  private readonly handlers: Handlers;

  private constructor(
    private readonly options: MessengerOptions,
    private readonly store: Store,
  ) {
    this.clock = options.clock ?? systemClock;
    this.now = options.now ?? Date.now;
    this.config = new ConfigStore(store);
    this.repository = new MessageRepository(store, { idOf: (aor) => this.accountIdOf(aor), aorOf: (id) => this.aorOfAccount(id) });
    this.worker = new OutboxWorker({
      messages: store.messages,
      clock: this.clock,
      now: this.now,
      handles: (aor) => this.accountIdOf(aor) !== undefined,
      newIdentity: (message) => ({ callId: newCallId(hostOf(message.account)), fromTag: newTag() }),
      deliver: (message, identity) => this.deliverOutgoing(message, identity),
      onChange: (message) => this.messageChanged(message),
      ...(options.retryPolicy === undefined ? {} : { retryPolicy: options.retryPolicy }),
      ...(options.onDiagnostic === undefined ? {} : { onDiagnostic: options.onDiagnostic }),
    });
    this.sipLog = new SipLog(options.sipLogCapacity ?? 1000);
    this.handlers = {
      'app.info': () => this.info(),
      'accounts.list': () => this.accountViews(),
      'accounts.add': (args) => this.addAccount(args),
      'accounts.update': (args) => this.updateAccount(args.id, args.changes),
      'accounts.remove': (args) => this.removeAccount(args.id),
      'messages.send': (args) => this.send(args.accountId, args.to, args.text, args.plaintext === true),
      'messages.retry': (args) => this.retry(args.messageId),
      'messages.cancel': (args) => this.cancel(args.messageId),
      'conversations.list': (args) => this.repository.conversations(args.accountId),
      'conversations.history': (args) => this.history(args.conversationId, args.from, args.limit ?? DEFAULT_HISTORY_PAGE),
      'conversations.markRead': (args) => this.markRead(args.conversationId),
      'conversations.setComposing': () => notAvailable('Typing notifications (isComposing, RFC 3994) are not available in this build yet.'),
      'search': (args) => this.search(args.query, args.accountId, args.limit ?? DEFAULT_SEARCH_LIMIT),
      'contacts.list': (args) => this.contactList(args.accountId),
      'contacts.trust': (args) => this.contactCommand(args.contactId, args.action),
      'contacts.setPolicy': (args) => this.contactCommand(args.contactId, args.policy),
      'settings.get': () => this.settings,
      'settings.update': (args) => this.updateSettings(args),
      'sipLog.list': (args) => this.sipLog.list({ ...(args.accountId === undefined ? {} : { accountId: args.accountId }), ...(args.limit === undefined ? {} : { limit: args.limit }) }),
      'sipLog.clear': () => {
        this.sipLog.clear();
        return null;
      },
    };
  }

  /**
   * Opens the store of `dataDir` (creating it), loads the configuration, starts every account
   * (one that cannot start, a port in use, is kept with its error), then the outbox: crash
   * recovery first, then whatever is due.
   */
  static async open(options: MessengerOptions): Promise<Messenger> {
    const store = openStore(options.dataDir, options.now === undefined ? {} : { now: options.now });
    let messenger: Messenger;
    try {
      messenger = new Messenger(options, store);
      messenger.config.importLegacyFile(options.dataDir);
      const saved = messenger.config.load(options.onDiagnostic);
      messenger.settings = saved.settings;
      for (const settings of saved.accounts) messenger.accounts.set(settings.id, newRuntime(settings));
      if (options.security !== undefined) {
        messenger.security = await MessengerSecurity.open({ dataDir: options.dataDir, ...options.security }, (event) => messenger.securityEvent(event));
      }
    } catch (error) {
      store.close();
      throw error;
    }
    for (const runtime of messenger.accounts.values()) await messenger.startAccount(runtime);
    messenger.worker.start();
    if (options.networkPollMs !== false) {
      messenger.stopNetworkWatch = watchNetwork(messenger.clock, () => messenger.networkChanged(), {
        ...(options.networkPollMs === undefined ? {} : { intervalMs: options.networkPollMs }),
      });
    }
    return messenger;
  }

  /**
   * The network changed (an interface came up, the machine woke): messages waiting for a
   * retry are sent now rather than when their backoff ends. Polled by the core
   * (network-watch.ts); a shell with a better signal (Electron's powerMonitor) calls it too.
   */
  networkChanged(): void {
    if (!this.closed) this.worker.flush();
  }

  // ---- The API gate ------------------------------------------------------------------------

  async dispatch(command: string, args: unknown): Promise<ApiResponse<unknown>> {
    const checked = validateCommand(command, args);
    if (!checked.ok) return { ok: false, error: checked.error };
    if (this.closed) return { ok: false, error: { code: 'invalid-state', message: 'sipnote is shutting down' } };
    const handler = this.handlers[checked.command] as (args: unknown) => unknown;
    try {
      const value = await handler(checked.args);
      return { ok: true, value: value === undefined ? null : value };
    } catch (error) {
      if (error instanceof ApiFailure) return { ok: false, error: { code: error.code, message: error.message } };
      this.options.onDiagnostic?.(`${checked.command} failed: ${describe(error)}`);
      return { ok: false, error: { code: 'failed', message: describe(error) } };
    }
  }

  /** Typed convenience for in-process callers (tests, the Electron main process): throws ApiFailure on failure. */
  async call<C extends CommandName>(command: C, args: CommandArgs<C>): Promise<CommandResult<C>> {
    const response = await this.dispatch(command, args);
    if (!response.ok) throw new ApiFailure(response.error.code, response.error.message);
    return response.value as CommandResult<C>;
  }

  subscribe(listener: (event: ApiEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Unregisters (bounded wait), closes every socket. Calls after this answer `invalid-state`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopNetworkWatch?.();
    // Attempts still in flight stay `sending` in the store: the next open recovers them.
    this.worker.stop();
    await Promise.all([...this.accounts.values()].map((runtime) => this.stopAccount(runtime)));
    this.listeners.clear();
    this.store.close();
  }

  private emit(event: ApiEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (error) {
        // One broken front end must not stop the others from hearing about a message.
        this.options.onDiagnostic?.(`an event listener failed: ${describe(error)}`);
      }
    }
  }

  private info(): AppInfo {
    return {
      name: 'sipnote',
      version: this.options.version ?? '0.1.0',
      capabilities: { smime: this.security !== undefined, keychain: this.security !== undefined, history: 'sqlite', contacts: this.security !== undefined, composing: false },
    };
  }

  // ---- Accounts ----------------------------------------------------------------------------

  private accountViews(): Account[] {
    return [...this.accounts.values()].map(accountView);
  }

  private async addAccount(input: NewAccount): Promise<Account> {
    const { password, ...settings } = input;
    checkAccountSettings(settings);
    this.checkUniqueAddress(settings.sipAddress, undefined);
    const runtime = newRuntime({ id: randomBytes(6).toString('base64url'), ...settings });
    runtime.password = password === undefined || password === '' ? undefined : password;
    this.config.saveAccount(runtime.settings);
    this.accounts.set(runtime.settings.id, runtime);
    await this.keepPassword(runtime, password);
    await this.startAccount(runtime);
    this.emitAccounts();
    return accountView(runtime);
  }

  private async updateAccount(id: string, changes: AccountChanges): Promise<Account> {
    const runtime = this.account(id);
    const { password, ...settingChanges } = changes;
    const settings: StoredAccount = { ...runtime.settings, ...settingChanges };
    checkAccountSettings(settings);
    this.checkUniqueAddress(settings.sipAddress, id);
    await this.stopAccount(runtime);
    // Another address is another account row in the store; the old one keeps its history.
    if (canonicalAddress(settings.sipAddress) !== canonicalAddress(runtime.settings.sipAddress)) this.config.removeAccount(runtime.settings);
    this.config.saveAccount(settings);
    runtime.settings = settings;
    if (password !== undefined) runtime.password = password === '' ? undefined : password;
    if (password !== undefined) await this.keepPassword(runtime, password);
    await this.startAccount(runtime);
    this.emitAccounts();
    return accountView(runtime);
  }

  private async removeAccount(id: string): Promise<null> {
    const runtime = this.account(id);
    this.accounts.delete(id);
    await this.stopAccount(runtime);
    this.config.removeAccount(runtime.settings);
    await this.security?.forgetAccount(id);
    this.emitAccounts();
    return null;
  }

  private account(id: string): AccountRuntime {
    const runtime = this.accounts.get(id);
    if (runtime === undefined) throw new ApiFailure('not-found', `no account ${id}`);
    return runtime;
  }

  private checkUniqueAddress(sipAddress: string, exceptId: string | undefined): void {
    const key = canonicalAddress(sipAddress);
    for (const [id, runtime] of this.accounts) {
      if (id !== exceptId && canonicalAddress(runtime.settings.sipAddress) === key) {
        throw new ApiFailure('invalid-arguments', `there is already an account for ${key}`);
      }
    }
  }

  private emitAccounts(): void {
    this.emit({ type: 'accounts-changed', accounts: this.accountViews() });
  }

  /** The id of the app's account with this canonical address of record (the store's key). */
  private accountIdOf(aor: string): string | undefined {
    for (const [id, runtime] of this.accounts) if (canonicalAddress(runtime.settings.sipAddress) === aor) return id;
    return undefined;
  }

  private aorOfAccount(id: string): string | undefined {
    const runtime = this.accounts.get(id);
    return runtime === undefined ? undefined : canonicalAddress(runtime.settings.sipAddress);
  }

  /**
   * Binds UDP and TCP on the same port (RFC 3261 §18.2.1) and, with a registrar, starts
   * registering (RFC 3261 §10). A failure is kept on the account for the user to see.
   */
  private async startAccount(runtime: AccountRuntime): Promise<void> {
    const settings = runtime.settings;
    runtime.error = undefined;
    const listen: ListenSpec[] = [
      { transport: 'udp', host: settings.localAddress, port: settings.localPort },
      { transport: 'tcp', host: settings.localAddress, port: settings.localPort },
    ];
    const user = (parseUri(settings.sipAddress) as SipUri).user;
    const username = settings.authUser !== '' ? settings.authUser : user;
    const security = await this.startSecurity(runtime);
    try {
      runtime.ua = await UserAgent.start({
        aor: settings.sipAddress,
        ...(settings.displayName === '' ? {} : { displayName: settings.displayName }),
        listen,
        policy: security?.requestPolicy(PAGER_REQUEST_POLICY) ?? PAGER_REQUEST_POLICY,
        ...(security === undefined ? {} : { onOptions: (request) => security.answerOptions(request) }),
        clock: this.clock,
        ...(this.options.timers === undefined ? {} : { timers: this.options.timers }),
        ...(settings.outboundProxy === '' ? {} : { outboundProxy: [withLooseRouting(settings.outboundProxy)] }),
        ...(username === undefined
          ? {}
          : {
              authenticator: new DigestClient({
                getCredentials: async () => (runtime.password === undefined ? undefined : { username, password: runtime.password }),
              }),
            }),
        onMessage: (message) => this.receive(runtime, message),
        onTrace: (trace) => this.trace(runtime, trace),
        ...(this.options.onDiagnostic === undefined ? {} : { onDiagnostic: this.options.onDiagnostic }),
      });
    } catch (error) {
      runtime.error = `cannot listen on ${settings.localAddress}:${settings.localPort}: ${describe(error)}`;
      this.emit({ type: 'error', code: 'account-start', message: runtime.error, accountId: settings.id });
      return;
    }
    // Its queued messages may go now.
    this.worker.kick();
    if (!settings.register) {
      this.setRegistration(runtime, { state: 'disabled' });
      return;
    }
    const registration = new Registration(
      runtime.ua,
      this.clock,
      { ...(settings.registrar === '' ? {} : { registrar: settings.registrar }), transport: settings.transport },
      (event) => {
        if (runtime.registration !== registration) return;
        const wasRegistered = runtime.registrationState.state === 'registered';
        this.setRegistration(runtime, registrationState(event));
        // Registered again (after a failure, or the first time): the registrar, and most likely
        // the proxy beside it, answers again, so retries waiting for their backoff go now.
        if (event.state === 'registered' && !wasRegistered) this.worker.flush(canonicalAddress(settings.sipAddress));
      },
    );
    runtime.registration = registration;
    const registrar = settings.registrar !== '' ? settings.registrar : registrarOf(settings.sipAddress);
    this.setRegistration(runtime, { state: 'registering', registrar });
    registration.start().catch((error: unknown) => {
      if (runtime.registration !== registration) return;
      this.setRegistration(runtime, { state: 'failed', registrar, status: 503, reason: describe(error) });
    });
  }

  private async stopAccount(runtime: AccountRuntime): Promise<void> {
    const { registration, ua, security } = runtime;
    runtime.registration = undefined;
    runtime.ua = undefined;
    runtime.security = undefined;
    if (registration !== undefined) {
      // §10.2.2: remove the binding, but never hang a quit on a registrar that does not answer.
      await withTimeout(registration.stop(), this.options.unregisterTimeoutMs ?? 3000).catch(() => undefined);
    }
    await ua?.close();
    security?.close();
    runtime.registrationState = runtime.settings.register ? { state: 'unregistered', registrar: registrarOf(runtime.settings.sipAddress) } : { state: 'disabled' };
  }

  private setRegistration(runtime: AccountRuntime, state: RegistrationState): void {
    runtime.registrationState = state;
    this.emit({ type: 'registration-changed', accountId: runtime.settings.id, registration: state });
  }

  private trace(runtime: AccountRuntime, trace: SipTrace): void {
    const entry = this.sipLog.add({ time: this.now(), accountId: runtime.settings.id, ...trace });
    this.emit({ type: 'sip-log', entry });
  }

  // ---- Security: identities, passwords, contacts (account-security.ts) -------------------------

  /** Loads (or, for a new account, creates) the identity, and the password from the keychain. */
  private async startSecurity(runtime: AccountRuntime): Promise<AccountSecurity | undefined> {
    if (this.security === undefined) return undefined;
    const { id } = runtime.settings;
    const security = await this.security.account(runtime.settings);
    runtime.security = security;
    if (security.problem !== undefined) this.emit({ type: 'error', code: 'smime-identity', message: security.problem, accountId: id });
    if (runtime.password === undefined) {
      const loaded = await this.security.loadPassword(id);
      if (loaded.password !== undefined) {
        runtime.password = loaded.password;
        runtime.passwordStorage = 'keychain';
      }
      if (loaded.problem !== undefined) this.emit({ type: 'error', code: 'keychain', message: loaded.problem, accountId: id });
    }
    return security;
  }

  /** The password goes to the keychain (or stays for this session when there is none). */
  private async keepPassword(runtime: AccountRuntime, password: string | undefined): Promise<void> {
    if (this.security === undefined) return;
    const kept = await this.security.savePassword(runtime.settings.id, password);
    runtime.passwordStorage = kept.storage === 'keychain' ? 'keychain' : 'session';
    if (kept.problem !== undefined) this.emit({ type: 'error', code: 'keychain', message: kept.problem, accountId: runtime.settings.id });
  }

  private securityEvent(event: SecurityEvent): void {
    if (this.closed) return;
    if (event.kind === 'contact-updated') this.emit({ type: 'contact-updated', contact: event.contact });
    else this.emit({ type: 'certificate-changed', contact: event.contact, presentedFingerprint: event.presentedFingerprint, ...(event.pinnedFingerprint === undefined ? {} : { pinnedFingerprint: event.pinnedFingerprint }) });
  }

  private async contactList(accountId: string | undefined): Promise<Contact[]> {
    const security = this.security ?? notAvailable('Contacts and certificate trust need S/MIME, which this core runs without.');
    const runtimes = accountId === undefined ? [...this.accounts.values()] : [this.account(accountId)];
    const lists = await Promise.all(runtimes.map((runtime) => security.contacts.list(runtime.settings.id, runtime.settings.sipAddress)));
    return lists.flat();
  }

  /** `contacts.trust` and `contacts.setPolicy`: the user's decisions about one contact. */
  private async contactCommand(contactId: number, action: TrustAction | ContactPolicy): Promise<Contact> {
    const security = this.security ?? notAvailable('Contacts and certificate trust need S/MIME, which this core runs without.');
    try {
      const known = await security.contacts.get(contactId);
      if (!this.accounts.has(known.accountId)) throw new ApiFailure('not-found', `no contact ${contactId}`);
      const book = security.contacts;
      const contact =
        action === 'mark-verified'
          ? await book.markVerified(contactId)
          : action === 'accept-change'
            ? await book.acceptChange(contactId)
            : action === 'reject-change'
              ? await book.rejectChange(contactId)
              : await book.setPolicy(contactId, action);
      this.emit({ type: 'contact-updated', contact });
      return contact;
    } catch (error) {
      if (error instanceof ContactBookError) throw new ApiFailure(error.code, error.message);
      throw error;
    }
  }

  // ---- Incoming ----------------------------------------------------------------------------

  /** Stores, then answers (the UA sends 200 when this returns nothing). */
  private async receive(runtime: AccountRuntime, incoming: IncomingMessage): Promise<MessageDecision | void> {
    const opened = await openIncoming(runtime.security, incoming);
    if (opened.kind === 'rejected') return opened.decision;
    const receivedAt = incoming.receivedAt.getTime();
    const sentAt = opened.sentAt ?? incoming.date?.getTime();
    let recorded: ReturnType<MessageRepository['recordIncoming']>;
    try {
      recorded = this.repository.recordIncoming({
        accountId: runtime.settings.id,
        peerUri: incoming.from,
        ...(incoming.fromDisplayName === undefined ? {} : { displayName: incoming.fromDisplayName }),
        text: opened.text,
        contentType: opened.contentType ?? incoming.contentType,
        security: opened.security,
        ...(opened.signerFingerprint === undefined ? {} : { signerFingerprint: opened.signerFingerprint }),
        callId: incoming.callId,
        cseq: incoming.cseq,
        fromTag: incoming.fromTag,
        ...(sentAt === undefined ? {} : { sentAt }),
        receivedAt,
        ...(opened.late === true ? { late: true } : {}),
      });
    } catch (error) {
      // Not kept (the UA answers 500): a resend must not be taken for a replay.
      opened.abandon?.();
      throw error;
    }
    // Kept: from now on a replay of it is answered 200 and shown nowhere.
    opened.commit?.();
    const { inserted, message } = recorded;
    // A duplicate is answered the same (200) and shown once.
    if (!inserted) return undefined;
    const conversation = this.conversationView(message.conversationId);
    this.emit({ type: 'message-received', message, conversation });
    this.emit({ type: 'conversation-updated', conversation });
    return undefined;
  }

  // ---- Outgoing ----------------------------------------------------------------------------

  /** Stores the message `queued` (committed) and hands it to the outbox worker. */
  private send(accountId: string, to: string, text: string, plaintext = false): MessageView {
    this.account(accountId);
    const target = sendTarget(to);
    const protectedBody = protectOutgoing(this.security, accountId, target, plaintext);
    const stored = this.repository.recordOutgoing({
      accountId,
      peerUri: target,
      text,
      contentType: protectedBody.contentType,
      security: protectedBody.security,
    });
    this.emit({ type: 'message-state', message: stored });
    this.emit({ type: 'conversation-updated', conversation: this.conversationView(stored.conversationId) });
    this.worker.kick();
    return stored;
  }

  /** A failed or cancelled message goes back to the queue, due now, behind nothing newer. */
  private retry(messageId: number): MessageView {
    const message = this.storedMessage(messageId);
    if (message.direction !== 'out') throw new ApiFailure('invalid-state', 'only a message we sent can be retried');
    this.storeTransition(() => this.store.messages.retry(messageId));
    const queued = this.messageChanged(this.storedMessage(messageId));
    this.worker.kick();
    return queued;
  }

  /** A queued or failed message is given up; one in flight cannot be unsent. */
  private cancel(messageId: number): MessageView {
    const message = this.storedMessage(messageId);
    if (message.direction !== 'out') throw new ApiFailure('invalid-state', 'only a message we sent can be cancelled');
    this.storeTransition(() => this.store.messages.cancel(messageId));
    const cancelled = this.messageChanged(this.storedMessage(messageId));
    // The next message to that peer may have been waiting behind this one.
    this.worker.kick();
    return cancelled;
  }

  /**
   * The outgoing delivery step (the seam S/MIME protects, issue #4): one attempt to put a
   * stored message on the wire with the identity the outbox chose (the first attempt's
   * Call-ID, From tag and CSeq again on a retry), and what came of it. Never rejects.
   */
  private async deliverOutgoing(message: Message, identity: AttemptIdentity): Promise<DeliveryResult> {
    const accountId = this.accountIdOf(message.account);
    const runtime = accountId === undefined ? undefined : this.accounts.get(accountId);
    const ua = runtime?.ua;
    if (ua === undefined) {
      return { kind: 'not-sent', reason: `Not sent: ${runtime?.error ?? 'the account is not running'}`, retryable: false };
    }
    try {
      if (message.security !== 'plaintext') return await deliverProtected(runtime?.security, ua, message, identity);
      const { result } = await ua.exchangeMessage({
        to: message.peerUri,
        body: Buffer.from(message.body, 'utf8'),
        contentType: message.contentType,
        identity: { callId: identity.callId, fromTag: identity.fromTag },
      });
      const reason = result.authFailure === undefined ? result.reason : `${result.reason} (${result.authFailure})`;
      return { kind: 'response', outcome: result.outcome, status: result.status, reason, ...(result.retryAfter === undefined ? {} : { retryAfter: result.retryAfter }) };
    } catch (error) {
      return notSent(error);
    }
  }

  /** Tells the front ends about a message's new state. */
  private messageChanged(message: Message): MessageView {
    const view = this.repository.view(message);
    if (this.closed) return view;
    this.emit({ type: 'message-state', message: view });
    const conversation = this.repository.conversation(message.conversationId);
    if (conversation !== undefined) this.emit({ type: 'conversation-updated', conversation });
    return view;
  }

  /** Runs a store transition; a refused one (a stale view: cancelling a delivered message) is `invalid-state`. */
  private storeTransition(run: () => unknown): void {
    try {
      run();
    } catch (error) {
      if (error instanceof StoreError && error.code === 'invalid-transition') throw new ApiFailure('invalid-state', error.message);
      if (error instanceof StoreError && error.code === 'not-found') throw new ApiFailure('not-found', error.message);
      throw error;
    }
  }

  private storedMessage(id: number): Message {
    const message = this.repository.message(id);
    if (message === undefined || this.accountIdOf(message.account) === undefined) throw new ApiFailure('not-found', `no message ${id}`);
    return message;
  }

  // ---- History -----------------------------------------------------------------------------

  private conversationView(id: number): ConversationView {
    const conversation = this.repository.conversation(id);
    if (conversation === undefined) throw new ApiFailure('not-found', `no conversation ${id}`);
    return conversation;
  }

  private history(conversationId: number, from: number | undefined, limit: number): HistoryPage {
    const start = from ?? Math.max(0, this.conversationView(conversationId).total - limit);
    const page = this.repository.history(conversationId, start, limit);
    if (page === undefined) throw new ApiFailure('not-found', `no conversation ${conversationId}`);
    return page;
  }

  private markRead(conversationId: number): ConversationView {
    const conversation = this.repository.markRead(conversationId);
    if (conversation === undefined) throw new ApiFailure('not-found', `no conversation ${conversationId}`);
    this.emit({ type: 'conversation-updated', conversation });
    return conversation;
  }

  private search(query: string, accountId: string | undefined, limit: number): SearchHit[] {
    return this.repository.search(query, { ...(accountId === undefined ? {} : { accountId }), limit });
  }

  // ---- Settings ----------------------------------------------------------------------------

  private updateSettings(changes: Partial<AppSettings>): AppSettings {
    const defined = Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined));
    this.settings = { ...this.settings, ...defined };
    this.config.saveSettings(this.settings);
    this.emit({ type: 'settings-changed', settings: this.settings });
    return this.settings;
  }
}

// ---- Seams for S/MIME (issue #4) ---------------------------------------------------------------

type Opened =
  | {
      readonly kind: 'text';
      readonly text: string;
      readonly security: SecurityLabel;
      readonly sentAt?: number;
      readonly contentType?: string;
      readonly signerFingerprint?: string;
      readonly late?: boolean;
      commit?(): void;
      abandon?(): void;
    }
  /** Answer with `decision` (undefined: 200, for a replay) and keep nothing. */
  | { readonly kind: 'rejected'; readonly decision: MessageDecision | undefined };

/**
 * What an incoming body says and how it was protected: with the account's security, S/MIME
 * opened and verified (account-security.ts, the CLI listener's rules); without, plaintext
 * bodies only, labelled so.
 */
async function openIncoming(security: AccountSecurity | undefined, incoming: IncomingMessage): Promise<Opened> {
  if (security !== undefined) {
    const opened = await security.open(incoming);
    return opened.kind === 'text' ? opened : { kind: 'rejected', decision: opened.decision };
  }
  const reading = readMessageBody(incoming.contentType, incoming.body);
  if (reading.kind === 'rejected') {
    return { kind: 'rejected', decision: { status: reading.status, reason: reading.reason, headers: [['Accept', PAGER_ACCEPTED_TYPES.join(', ')]] } };
  }
  const sentAt = reading.cpim?.dateTime?.getTime();
  return { kind: 'text', text: reading.text, security: 'plaintext', ...(sentAt === undefined ? {} : { sentAt }) };
}

/**
 * The type of the text to send and its label, decided when it is queued: signed and encrypted
 * unless the send or the contact's policy asks for plaintext; plaintext in a core without security.
 */
function protectOutgoing(
  security: MessengerSecurity | undefined,
  accountId: string,
  target: string,
  plaintext: boolean,
): { readonly contentType: string; readonly security: SecurityLabel } {
  return security === undefined ? { contentType: TEXT_PLAIN_UTF8, security: 'plaintext' } : security.outgoing(accountId, target, plaintext);
}

// ---- Helpers -------------------------------------------------------------------------------------

function newRuntime(settings: StoredAccount): AccountRuntime {
  return {
    settings,
    password: undefined,
    passwordStorage: 'session',
    security: undefined,
    ua: undefined,
    registration: undefined,
    registrationState: settings.register ? { state: 'unregistered', registrar: settings.registrar || registrarOf(settings.sipAddress) } : { state: 'disabled' },
    error: undefined,
  };
}

function accountView(runtime: AccountRuntime): Account {
  return {
    id: runtime.settings.id,
    sipAddress: runtime.settings.sipAddress,
    displayName: runtime.settings.displayName,
    registrar: runtime.settings.registrar,
    outboundProxy: runtime.settings.outboundProxy,
    transport: runtime.settings.transport,
    register: runtime.settings.register,
    authUser: runtime.settings.authUser,
    localAddress: runtime.settings.localAddress,
    localPort: runtime.settings.localPort,
    password: runtime.password === undefined ? 'none' : runtime.passwordStorage,
    ...(runtime.security?.fingerprint === undefined ? {} : { certificateFingerprint: runtime.security.fingerprint }),
    registration: runtime.registrationState,
    listening: runtime.ua?.listening.map((spec) => `${spec.transport}:${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}`) ?? [],
    ...(runtime.error === undefined ? {} : { error: runtime.error }),
  };
}

function registrationState(event: RegistrationEvent): RegistrationState {
  switch (event.state) {
    case 'registered':
      return { state: 'registered', registrar: event.registrar, contact: event.contact, expires: event.expires };
    case 'failed':
      return {
        state: 'failed',
        registrar: event.registrar,
        status: event.status,
        reason: event.reason,
        ...(event.retryIn === undefined ? {} : { retryIn: event.retryIn }),
      };
    case 'unregistered':
      return { state: 'unregistered', registrar: event.registrar };
  }
}

/** The settings must describe something we can run: parseable SIP URIs, a user part in the address. */
function checkAccountSettings(settings: AccountSettings): void {
  const address = parseSip(settings.sipAddress, 'sipAddress');
  if (address.user === undefined) throw new ApiFailure('invalid-arguments', 'sipAddress: needs a user part, e.g. sip:alice@example.com');
  if (settings.registrar !== '') parseSip(settings.registrar, 'registrar');
  if (settings.outboundProxy !== '') parseSip(settings.outboundProxy, 'outboundProxy');
}

function parseSip(text: string, field: string): SipUri {
  try {
    const uri = parseUri(text);
    if (!isSipUri(uri)) throw new ApiFailure('invalid-arguments', `${field}: not a sip: or sips: URI`);
    return uri;
  } catch (error) {
    if (error instanceof ParseError) throw new ApiFailure('invalid-arguments', `${field}: ${error.message}`);
    throw error;
  }
}

/**
 * The Request-URI for a message to `to`. An `im:` URI (RFC 3860) would be resolved through
 * DNS SRV `_im._sip` (RFC 3861); until that exists it is taken as the sip: URI of the same
 * address, which is what every deployed SIP pager does with it.
 */
function sendTarget(to: string): string {
  let uri;
  try {
    uri = parseUri(to.trim());
  } catch (error) {
    if (error instanceof ParseError) throw new ApiFailure('invalid-arguments', `to: ${error.message}`);
    throw error;
  }
  if (isImUri(uri)) {
    if (uri.scheme !== 'im' || uri.user === undefined) throw new ApiFailure('invalid-arguments', 'to: an im: address needs a user and a domain');
    return `sip:${uri.user}@${uri.host}`;
  }
  if (!isSipUri(uri)) throw new ApiFailure('invalid-arguments', 'to: not a sip:, sips: or im: address');
  return formatUri(uri);
}

/** The conversation key: scheme, user, host and port as written (uri.ts `aorOf`). */
function canonicalAddress(text: string): string {
  try {
    return formatUri(aorOf(parseUri(text)));
  } catch (error) {
    if (error instanceof ParseError) return text;
    throw error;
  }
}

function registrarOf(sipAddress: string): string {
  try {
    const uri = parseUri(sipAddress);
    if (isSipUri(uri)) return `${uri.scheme}:${uri.host}${uri.port === undefined ? '' : `:${uri.port}`}`;
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
  }
  return sipAddress;
}

/** An outbound proxy is a loose router: its Route entry carries `;lr` (RFC 3261 §16.12, §19.1.1). */
function withLooseRouting(proxy: string): string {
  const uri = parseUri(proxy);
  if (!isSipUri(uri) || uri.params.has('lr')) return proxy;
  uri.params.set('lr', null);
  return formatUri(uri);
}

/**
 * An attempt that could not even be tried. An address that does not resolve now (DNS down with
 * the network) may resolve later; a bad address or a message too large never will.
 */
function notSent(error: unknown): DeliveryResult {
  if (error instanceof MessageTooLargeError) return { kind: 'not-sent', reason: `Too large: ${error.size} bytes (RFC 3428 §8 allows ${error.limit} on this path)`, retryable: false };
  if (error instanceof DestinationError) {
    return error.unreachable
      ? { kind: 'not-sent', reason: `Unreachable: ${error.message}`, retryable: true }
      : { kind: 'not-sent', reason: `Bad address: ${error.message}`, retryable: false };
  }
  return { kind: 'not-sent', reason: `Not sent: ${describe(error)}`, retryable: false };
}

/** The host of an address of record, for the readable part of a Call-ID. */
function hostOf(aor: string): string {
  try {
    const uri = parseUri(aor);
    if (isSipUri(uri)) return uri.host;
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
  }
  return 'sipnote';
}

function notAvailable(message: string): never {
  throw new ApiFailure('not-available', message);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
