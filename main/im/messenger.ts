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
 * interrupted are recovered (sent again, or failed with a reason). Every attempt keeps the
 * Call-ID and From tag with a higher CSeq and the same imdn.Message-ID (attempt-identity.ts).
 *
 * Incoming messages: the body is opened (`openIncoming`), stored and committed, and only then
 * answered 200, so a crash cannot acknowledge a message that was not kept. Duplicates (same
 * Call-ID, CSeq, From tag, or the same imdn.Message-ID from the same peer: a retry after a lost
 * 200) are answered the same but stored and shown once.
 *
 * Security (issues #4 and #6, account-security.ts), with the `security` option: every account
 * has an S/MIME identity (made at onboarding, key in the OS keychain); `protectOutgoing` labels
 * a message when it is queued (signed and encrypted unless plaintext was asked for),
 * `deliverOutgoing` protects it on the wire, `openIncoming` verifies and decrypts (a changed
 * certificate is refused and reported); contacts and certificate trust come from the data
 * dir's pins; passwords live in the keychain. Without the option the core is plaintext only,
 * says so in its capabilities, and contacts answer `not-available`.
 *
 * Notifications (RFC 5438) and typing (RFC 3994), message-notifications.ts: every protected IM
 * asks for positive-delivery, negative-delivery and display notifications under its signature.
 * A stored IM that asked gets its delivery notification at once and its display notification
 * when the user reads the conversation (`conversations.markRead`), both paced per peer
 * (NotificationPacer) and protected like the IM (§14). Which display notifications are still
 * owed is kept in the store with the IM (committed with it), so one owed when sipnote stops is
 * sent when the conversation is read after the next start; each is taken from the store as it
 * is handed to the pacer (at most once: never twice, possibly never, as §7.1.4 allows). We
 * never send a negative-delivery one: an IM we could not keep is answered with a failure, not
 * a 200 (§12.1.3.1). A received notification moves our message to `delivered` or `displayed`
 * (forward only), or, a negative delivery, to `failed` (message-notifications.ts
 * `applyImdnNotifications`), and emits `message-state`. `conversations.setComposing` drives a
 * ComposingSender per conversation (status messages protected as an IM to that contact would
 * be, refreshes and the idle timeout on the clock); received status messages drive a
 * ComposingReceiver and the `composing` event.
 * Neither a notification nor a status message is ever stored or shown as a message.
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
import { openStore, StoreError, type AttemptIdentity, type DisplayNotificationRequest, type Message, type Store } from '../store/index.js';
import { ConfigStore, DEFAULT_SETTINGS, type StoredAccount } from './config-store.js';
import { PAGER_ACCEPTED_TYPES, PAGER_REQUEST_POLICY, readMessageBody } from './incoming-body.js';
import { MessageRepository } from './message-repository.js';
import { watchNetwork } from './network-watch.js';
import { OutboxWorker, type DeliveryResult } from './outbox-worker.js';
import type { RetryPolicyOptions } from './retry-policy.js';
import { SipLog } from './sip-log.js';
import { deliverProtected, MessengerSecurity, type AccountSecurity, type SecurityEvent, type SecurityOptions } from './account-security.js';
import { ContactBookError } from './contact-book.js';
import { newMessageId } from './smime/protect.js';
import type { RequestPolicy } from '../sip/ua/request-policy.js';
import { buildImdn, decideImdn, imdnDestination, type EndpointImdnNotification, type ImdnSchedulerOptions, type ReceivedImdnRequest } from './imdn.js';
import { buildIsComposing, ISCOMPOSING_CONTENT_TYPE, type ComposingSenderOptions, type IsComposingStatus } from './is-composing.js';
import {
  applyImdnNotifications,
  ComposingTracker,
  composingPayload,
  ControlBodyError,
  displayNotificationOf,
  imdnPayload,
  NotificationPacer,
  owedDisplayRequest,
  plaintextImdnRequest,
  readControlBody,
  type ControlBody,
} from './message-notifications.js';

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
   * identities and pins (shared with the CLI): on by default, as the product promises (every
   * message protected unless a contact or a send asks for plaintext). `false` runs a
   * plaintext-only core (capabilities say so, every message is labelled `plaintext`, contacts
   * are not available): for tests of parts that have nothing to do with S/MIME.
   */
  readonly security?: SecurityOptions | false;
  /** Pacing of outgoing notifications (imdn.ts ImdnScheduler defaults: 10 at once, then 5/s per peer). */
  readonly imdnPacing?: ImdnSchedulerOptions;
  /** isComposing timers (RFC 3994 §3.2 defaults: refresh 60 s, idle after 15 s). */
  readonly composing?: ComposingSenderOptions;
}

/** A notification waiting for its turn (NotificationPacer). */
interface PendingImdn {
  readonly accountId: string;
  /**
   * The IM's SIP From: where the notification goes unless the IM had an IMDN-Record-Route
   * (RFC 5438 §7.2.1, §12.1.3.1, `imdnDestination`), and whom a protected one is encrypted for.
   */
  readonly to: string;
  readonly request: ReceivedImdnRequest;
  readonly notification: EndpointImdnNotification;
  /** S/MIME like the IM (RFC 5438 §14), or plaintext CPIM for a plaintext IM. */
  readonly protected: boolean;
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
  /** Outgoing notifications, paced per peer (RFC 5438; a burst of IMs is not a burst of IMDNs). */
  private readonly imdnPacer: NotificationPacer<PendingImdn>;
  private readonly composing: ComposingTracker;

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
    this.imdnPacer = new NotificationPacer<PendingImdn>(
      this.clock,
      (_peer, item) => void this.sendImdn(item),
      options.imdnPacing,
      (peer, key, reason) => options.onDiagnostic?.(`IMDN ${key} to ${peer} not sent: ${reason}`),
    );
    this.composing = new ComposingTracker({
      clock: this.clock,
      send: (conversationId, status) => this.sendComposing(conversationId, status),
      changed: (conversationId, change) => {
        if (!this.closed) this.emit({ type: 'composing', conversationId, active: change.state === 'active' });
      },
      ...(options.composing === undefined ? {} : { sender: options.composing }),
    });
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
      'conversations.setComposing': (args) => this.setComposing(args.conversationId, args.active),
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
      if (options.security !== false) {
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
    this.imdnPacer.stop();
    this.composing.stop();
    await Promise.all([...this.accounts.values()].map((runtime) => this.stopAccount(runtime)));
    await this.security?.close();
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
      capabilities: { smime: this.security !== undefined, keychain: this.security !== undefined, history: 'sqlite', contacts: this.security !== undefined, composing: true },
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
        policy: withComposing(security?.requestPolicy(PAGER_REQUEST_POLICY) ?? PAGER_REQUEST_POLICY),
        ...(security === undefined ? {} : { onOptions: (request) => security.answerOptions(request) }),
        clock: this.clock,
        ...(this.options.timers === undefined ? {} : { timers: this.options.timers }),
        ...(settings.outboundProxy === '' ? {} : { outboundProxy: [withLooseRouting(settings.outboundProxy)] }),
        ...(settings.congestionSafePath === true ? { congestionSafePath: true } : {}),
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
    if (opened.kind === 'control') {
      // A notification or a composing status: acted on, never stored or shown as a message.
      this.controlReceived(runtime, incoming.from, opened.body);
      opened.commit?.();
      return undefined;
    }
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
        // A retry of a message we have (its 200 was lost) carries the same Message-ID: shown once.
        ...(opened.imdnMessageId === undefined ? {} : { imdnMessageId: opened.imdnMessageId }),
        ...(sentAt === undefined ? {} : { sentAt }),
        receivedAt,
        ...(opened.late === true ? { late: true } : {}),
        // Owed until the user reads it, committed with the IM: survives a restart (RFC 5438 §7.2).
        ...withDisplayNotification(displayNotificationOf(opened.imdnRequest)),
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
    // The peer stopped composing: it sent (RFC 3994 §3.3).
    this.composing.content(message.conversationId);
    if (opened.imdnRequest !== undefined) this.imdnForStored(runtime, incoming.from, opened.imdnRequest, opened.security !== 'plaintext');
    return undefined;
  }

  // ---- Notifications (RFC 5438) and isComposing (RFC 3994) ------------------------------------

  /**
   * A stored IM that asked for notifications: the delivery one goes now (paced); the display
   * one is owed in the store (stored with the IM) until the user reads the conversation
   * (`markRead`). Queued while the UA is still answering: the notification leaves after the 200
   * (protecting it takes longer than answering).
   */
  private imdnForStored(runtime: AccountRuntime, sipFrom: string, request: ReceivedImdnRequest, protect: boolean): void {
    const delivered = decideImdn(request, { type: 'delivered' }, { finalStatus: 200, readReceipts: true, alreadySent: new Set() });
    if (delivered.send) this.queueImdn({ accountId: runtime.settings.id, to: sipFrom, request, protected: protect, notification: delivered.notification });
  }

  /**
   * The display notifications owed in a conversation the user has just read (RFC 5438 §7.2.1),
   * taken from the store and handed to the pacer if the user consents to read receipts;
   * otherwise dropped, never to be sent (§12.1.3.1: the user's choice).
   *
   * Taken (deleted, committed) before they are queued, not after they are sent: a crash or a
   * quit between the two loses them, while clearing after sending could send one twice after a
   * crash. §7.2.1 allows one notification per disposition type per IM and §7.1.4 tells the
   * sender not to count on any, so at most once is the right side to err on. A notification
   * the pacer or the network loses is not sent again either, as before. While the account is
   * not running (it could not start), they are left owed for a later read: queued now, they
   * would be dropped unsent.
   */
  private sendOwedDisplayNotifications(conversation: ConversationView): void {
    if (this.settings.readReceipts && this.accounts.get(conversation.accountId)?.ua === undefined) return;
    for (const owed of this.store.messages.takeDisplayNotificationsOwed(conversation.id)) {
      if (!this.settings.readReceipts) continue;
      const accountId = this.accountIdOf(owed.message.account);
      // An account removed since (its conversations are no longer shown): nothing to send.
      if (accountId === undefined) continue;
      this.queueImdn({ accountId, to: owed.message.peerUri, request: owedDisplayRequest(owed), protected: owed.message.security !== 'plaintext', notification: { kind: 'display', status: 'displayed' } });
    }
  }

  private queueImdn(item: PendingImdn): void {
    const peer = `${item.accountId}\n${canonicalAddress(item.to)}`;
    this.imdnPacer.enqueue(peer, `${peer}\n${item.request.messageId}:${item.notification.kind}`, item);
  }

  /** Sends one notification (best effort, RFC 5438 §7.1.4: a failure is logged, not retried). */
  private async sendImdn(item: PendingImdn): Promise<void> {
    const runtime = this.accounts.get(item.accountId);
    const ua = runtime?.ua;
    if (runtime === undefined || ua === undefined || this.closed) return;
    try {
      if (item.protected) {
        const security = runtime.security;
        if (security?.aor === undefined) return;
        // Encrypted for the IM's sender, sent to the top IMDN-Route when the IM had one (§7.2.1).
        const destination = imdnDestination(item.request, item.to);
        await security.sendProtected(ua, item.to, imdnPayload(item.request, item.notification, security.aor), destination.via === 'imdn-route' ? destination.uri : undefined);
      } else {
        const built = buildImdn({ request: item.request, notification: item.notification, from: { uri: canonicalAddress(runtime.settings.sipAddress) }, dateTime: new Date(this.now()), sipFrom: item.to });
        await ua.exchangeMessage({ to: built.destination.uri, body: Buffer.from(built.body), contentType: built.contentType });
      }
    } catch (error) {
      this.options.onDiagnostic?.(`IMDN ${item.notification.kind} for ${item.request.messageId} to ${item.to} failed: ${describe(error)}`);
    }
  }

  /** A notification or a composing status from `sipFrom`. */
  private controlReceived(runtime: AccountRuntime, sipFrom: string, body: ControlBody): void {
    const account = canonicalAddress(runtime.settings.sipAddress);
    if (body.kind === 'composing') {
      const [conversationId] = this.store.conversations.idsWith(sipFrom, account);
      // Typing before any message: there is no conversation to show it in yet.
      if (conversationId !== undefined) this.composing.status(conversationId, body.status);
      return;
    }
    const { changed, ignored } = applyImdnNotifications(this.store.messages, account, sipFrom, body.notifications);
    for (const message of changed) this.messageChanged(message);
    for (const why of ignored) this.options.onDiagnostic?.(`IMDN from ${sipFrom}: ${why}`);
  }

  /** `conversations.setComposing`: the user types (or cleared the draft) in a conversation. */
  private setComposing(conversationId: number, active: boolean): null {
    this.conversationView(conversationId);
    if (active) this.composing.typing(conversationId);
    else this.composing.composingStopped(conversationId);
    return null;
  }

  /**
   * Sends a composing status to the conversation's peer, protected as an IM to it would be (the
   * contact's policy), outside the outbox. Resolves with the final status (415: the peer takes
   * no isComposing, we stop, RFC 3994 §4), undefined when nothing could be sent.
   */
  private async sendComposing(conversationId: number, status: IsComposingStatus): Promise<number | undefined> {
    const conversation = this.repository.conversation(conversationId);
    const runtime = conversation === undefined ? undefined : this.accounts.get(conversation.accountId);
    const ua = runtime?.ua;
    if (conversation === undefined || runtime === undefined || ua === undefined || this.closed) return undefined;
    const document = buildIsComposing(status);
    try {
      const how = protectOutgoing(this.security, conversation.accountId, conversation.target, false);
      if (how.security === 'plaintext') {
        const { result } = await ua.exchangeMessage({ to: conversation.target, body: Buffer.from(document), contentType: ISCOMPOSING_CONTENT_TYPE });
        return result.status;
      }
      if (runtime.security === undefined) return undefined;
      return (await runtime.security.sendProtected(ua, conversation.target, composingPayload(document))).status;
    } catch (error) {
      this.options.onDiagnostic?.(`isComposing to ${conversation.target} failed: ${describe(error)}`);
      return undefined;
    }
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
      // Chosen once, carried by every attempt: the peer drops a retry it already has by it.
      imdnMessageId: newMessageId(),
    });
    this.emit({ type: 'message-state', message: stored });
    this.emit({ type: 'conversation-updated', conversation: this.conversationView(stored.conversationId) });
    this.composing.contentSent(stored.conversationId);
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
   * stored message on the wire with the identity the outbox chose (the first attempt's Call-ID
   * and From tag, a higher CSeq on each retry: attempt-identity.ts) and the message's
   * imdn.Message-ID, and what came of it. Never rejects.
   */
  private async deliverOutgoing(message: Message, identity: AttemptIdentity): Promise<DeliveryResult> {
    const accountId = this.accountIdOf(message.account);
    const runtime = accountId === undefined ? undefined : this.accounts.get(accountId);
    const ua = runtime?.ua;
    if (ua === undefined) {
      return { kind: 'not-sent', reason: `Not sent: ${runtime?.error ?? 'the account is not running'}`, retryable: false };
    }
    try {
      if (message.security !== 'plaintext') {
        // A row queued without one (by an older build) gets it now, before its first protected attempt.
        const imdnMessageId = message.imdnMessageId ?? this.store.messages.ensureImdnMessageId(message.id, newMessageId());
        return await deliverProtected(runtime?.security, ua, { ...message, imdnMessageId }, identity);
      }
      // text/plain has no Message-ID: a retry after a lost 200 may show twice at the peer (attempt-identity.ts).
      const { result } = await ua.exchangeMessage({
        to: message.peerUri,
        body: Buffer.from(message.body, 'utf8'),
        contentType: message.contentType,
        identity: { callId: identity.callId, fromTag: identity.fromTag, cseq: identity.cseq },
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
    // Everything in it is shown now: display notifications for the IMs that asked (RFC 5438
    // §7.2.1), if the user consents to read receipts; otherwise none is ever sent for them.
    this.sendOwedDisplayNotifications(conversation);
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
      readonly imdnMessageId?: string;
      readonly imdnRequest?: ReceivedImdnRequest;
      commit?(): void;
      abandon?(): void;
    }
  /** A notification or a composing status: acted on, answered 200, never stored. */
  | { readonly kind: 'control'; readonly body: ControlBody; commit?(): void }
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
    return opened.kind === 'text' || opened.kind === 'control' ? opened : { kind: 'rejected', decision: opened.decision };
  }
  try {
    const control = readControlBody(incoming.contentType, incoming.body);
    if (control !== undefined) return { kind: 'control', body: control };
  } catch (error) {
    if (!(error instanceof ControlBodyError)) throw error;
    return { kind: 'rejected', decision: { status: 400, reason: 'Bad Request (malformed notification or status)' } };
  }
  const reading = readMessageBody(incoming.contentType, incoming.body);
  if (reading.kind === 'rejected') {
    return { kind: 'rejected', decision: { status: reading.status, reason: reading.reason, headers: [['Accept', PAGER_ACCEPTED_TYPES.join(', ')]] } };
  }
  const sentAt = reading.cpim?.dateTime?.getTime();
  const imdnMessageId = reading.cpim?.messageId;
  const imdnRequest = plaintextImdnRequest(incoming.contentType, incoming.body);
  return {
    kind: 'text',
    text: reading.text,
    security: 'plaintext',
    ...(sentAt === undefined ? {} : { sentAt }),
    ...(imdnMessageId === undefined ? {} : { imdnMessageId }),
    ...(imdnRequest === undefined ? {} : { imdnRequest }),
  };
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

/** The UA's policy, also taking bare isComposing status messages (RFC 3994 §4). */
function withComposing(policy: RequestPolicy): RequestPolicy {
  return policy.acceptedTypes.includes(ISCOMPOSING_CONTENT_TYPE) ? policy : { ...policy, acceptedTypes: [...policy.acceptedTypes, ISCOMPOSING_CONTENT_TYPE] };
}

/** The `displayNotification` field of an incoming record, when the IM asked for one. */
function withDisplayNotification(request: DisplayNotificationRequest | undefined): { displayNotification?: DisplayNotificationRequest } {
  return request === undefined ? {} : { displayNotification: request };
}

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
  if (error instanceof MessageTooLargeError) return { kind: 'not-sent', reason: `Too large for this path: ${error.size} bytes, and RFC 3428 §8 allows ${error.limit} unless every hop is congestion-controlled. If your server and your contacts use TCP or TLS, turn on "Congestion-safe path" in the account's settings`, retryable: false };
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
