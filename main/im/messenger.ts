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
 * Outgoing messages (RFC 3428 §4, §7): stored `queued` before anything is sent (design.md
 * "Durability"), then `sending`, then from the user agent's SendResult: 200 → `delivered`,
 * 202 → `accepted` (a server stored it; not delivered yet), anything else → `failed` with
 * the status and reason; the user may retry or cancel a failed message.
 *
 * Incoming messages: the body is opened (main/im/incoming-body.ts), stored, and only then
 * answered 200, so a crash cannot acknowledge a message that was not kept. Duplicates
 * (same Call-ID, CSeq, From tag) are answered again but stored and shown once.
 *
 * Not here yet, with their seams: S/MIME (issue #4) plugs into `openIncoming` and
 * `protectOutgoing`, which today pass plaintext through and label it so; the SQLite store
 * (issue #5) replaces the in-memory `MessageRepository` and the JSON `ConfigStore`; the
 * keychain replaces the session-only password; contacts and certificate trust answer
 * `not-available` until then.
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
  ConversationView,
  HistoryPage,
  MessageState,
  MessageView,
  NewAccount,
  RegistrationState,
  SearchHit,
  SecurityLabel,
} from '../../shared/api.js';
import { validateCommand } from '../../shared/api-schema.js';
import { DigestClient } from '../sip/auth/digest-client.js';
import { ParseError } from '../sip/message/parse-error.js';
import { systemClock, type Clock } from '../sip/transaction/clock.js';
import type { TimerConfig } from '../sip/transaction/timer-config.js';
import type { ListenSpec } from '../sip/transport/transport-layer.js';
import { DestinationError, MessageTooLargeError } from '../sip/ua/errors.js';
import { Registration, type RegistrationEvent } from '../sip/ua/registration.js';
import { UserAgent, type IncomingMessage, type MessageDecision, type SipTrace } from '../sip/ua/user-agent.js';
import { aorOf, formatUri, isImUri, isSipUri, parseUri, type SipUri } from '../sip/uri.js';
import { DEFAULT_SETTINGS, MemoryConfigStore, type ConfigStore, type StoredAccount } from './config-store.js';
import { PAGER_ACCEPTED_TYPES, PAGER_REQUEST_POLICY, readMessageBody } from './incoming-body.js';
import { InMemoryMessageRepository, type MessageRepository, type StoredConversation, type StoredMessage } from './message-repository.js';
import { SipLog } from './sip-log.js';

export interface MessengerOptions {
  /** Accounts and settings; in memory when absent. */
  readonly config?: ConfigStore;
  /** History; in memory when absent (TEMPORARY until main/store, see message-repository.ts). */
  readonly repository?: MessageRepository;
  /** SIP timers run on this clock (tests inject a manual one). */
  readonly clock?: Clock;
  readonly timers?: TimerConfig;
  /** Wall-clock milliseconds for the times users see. */
  readonly now?: () => number;
  readonly sipLogCapacity?: number;
  /** How long `close` waits for each un-REGISTER (RFC 3261 §10.2.2) before giving up. */
  readonly unregisterTimeoutMs?: number;
  readonly version?: string;
  /** Problems with no other reporter (stray responses, unparseable input). */
  readonly onDiagnostic?: (text: string) => void;
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

/**
 * Which state may follow which (RFC 3428 §4, §7; RFC 5438 for displayed). Anything else is a
 * bug or a user acting on a stale view, answered `invalid-state`.
 */
const NEXT_STATES: Readonly<Record<MessageState, readonly MessageState[]>> = {
  queued: ['sending', 'failed', 'cancelled'],
  sending: ['delivered', 'accepted', 'failed'],
  accepted: ['delivered', 'displayed', 'failed'],
  delivered: ['displayed'],
  displayed: [],
  failed: ['queued', 'cancelled'],
  cancelled: ['queued'],
  received: [],
};

/** One account while the app runs: its settings and the SIP machinery working for it. */
interface AccountRuntime {
  settings: StoredAccount;
  /** Session only until the keychain lands; never written anywhere. */
  password: string | undefined;
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
  private readonly clock: Clock;
  private readonly now: () => number;
  private readonly sipLog: SipLog;
  private settings: AppSettings = DEFAULT_SETTINGS;
  private closed = false;
  private readonly handlers: Handlers;

  private constructor(private readonly options: MessengerOptions) {
    this.repository = options.repository ?? new InMemoryMessageRepository();
    this.config = options.config ?? new MemoryConfigStore();
    this.clock = options.clock ?? systemClock;
    this.now = options.now ?? Date.now;
    this.sipLog = new SipLog(options.sipLogCapacity ?? 1000);
    this.handlers = {
      'app.info': () => this.info(),
      'accounts.list': () => this.accountViews(),
      'accounts.add': (args) => this.addAccount(args),
      'accounts.update': (args) => this.updateAccount(args.id, args.changes),
      'accounts.remove': (args) => this.removeAccount(args.id),
      'messages.send': (args) => this.send(args.accountId, args.to, args.text),
      'messages.retry': (args) => this.retry(args.messageId),
      'messages.cancel': (args) => this.cancel(args.messageId),
      'conversations.list': (args) => this.repository.conversations(args.accountId).filter((c) => this.accounts.has(c.accountId)).map(conversationView),
      'conversations.history': (args) => this.history(args.conversationId, args.from, args.limit ?? DEFAULT_HISTORY_PAGE),
      'conversations.markRead': (args) => this.markRead(args.conversationId),
      'conversations.setComposing': () => notAvailable('Typing notifications (isComposing, RFC 3994) are not available in this build yet.'),
      'search': (args) => this.search(args.query, args.accountId, args.limit ?? DEFAULT_SEARCH_LIMIT),
      'contacts.list': () => notAvailable('Contacts and certificate trust come with S/MIME, which this build does not have yet.'),
      'contacts.trust': () => notAvailable('Certificate trust comes with S/MIME, which this build does not have yet.'),
      'contacts.setPolicy': () => notAvailable('Per-contact security policies come with S/MIME, which this build does not have yet.'),
      'settings.get': () => this.settings,
      'settings.update': (args) => this.updateSettings(args),
      'sipLog.list': (args) => this.sipLog.list({ ...(args.accountId === undefined ? {} : { accountId: args.accountId }), ...(args.limit === undefined ? {} : { limit: args.limit }) }),
      'sipLog.clear': () => {
        this.sipLog.clear();
        return null;
      },
    };
  }

  /** Loads the configuration and starts every account. An account that cannot start (a port in use) is kept, with its error. */
  static async open(options: MessengerOptions = {}): Promise<Messenger> {
    const messenger = new Messenger(options);
    const saved = await messenger.config.load();
    if (saved !== undefined) {
      messenger.settings = saved.settings;
      for (const settings of saved.accounts) {
        const runtime = newRuntime(settings);
        messenger.accounts.set(settings.id, runtime);
        await messenger.startAccount(runtime);
      }
    }
    return messenger;
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
    await Promise.all([...this.accounts.values()].map((runtime) => this.stopAccount(runtime)));
    this.listeners.clear();
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
      capabilities: { smime: false, keychain: false, history: 'memory', contacts: false, composing: false },
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
    this.accounts.set(runtime.settings.id, runtime);
    await this.saveConfig();
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
    runtime.settings = settings;
    if (password !== undefined) runtime.password = password === '' ? undefined : password;
    await this.saveConfig();
    await this.startAccount(runtime);
    this.emitAccounts();
    return accountView(runtime);
  }

  private async removeAccount(id: string): Promise<null> {
    const runtime = this.account(id);
    this.accounts.delete(id);
    await this.stopAccount(runtime);
    await this.saveConfig();
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

  private async saveConfig(): Promise<void> {
    await this.config.save({ accounts: [...this.accounts.values()].map((runtime) => runtime.settings), settings: this.settings });
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
    try {
      runtime.ua = await UserAgent.start({
        aor: settings.sipAddress,
        ...(settings.displayName === '' ? {} : { displayName: settings.displayName }),
        listen,
        policy: PAGER_REQUEST_POLICY,
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
    if (!settings.register) {
      this.setRegistration(runtime, { state: 'disabled' });
      return;
    }
    const registration = new Registration(
      runtime.ua,
      this.clock,
      { ...(settings.registrar === '' ? {} : { registrar: settings.registrar }), transport: settings.transport },
      (event) => {
        if (runtime.registration === registration) this.setRegistration(runtime, registrationState(event));
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
    const { registration, ua } = runtime;
    runtime.registration = undefined;
    runtime.ua = undefined;
    if (registration !== undefined) {
      // §10.2.2: remove the binding, but never hang a quit on a registrar that does not answer.
      await withTimeout(registration.stop(), this.options.unregisterTimeoutMs ?? 3000).catch(() => undefined);
    }
    await ua?.close();
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

  // ---- Incoming ----------------------------------------------------------------------------

  /** Stores, then answers (the UA sends 200 when this returns nothing). */
  private receive(runtime: AccountRuntime, incoming: IncomingMessage): MessageDecision | void {
    const opened = openIncoming(incoming);
    if (opened.kind === 'rejected') return opened.decision;
    const receivedAt = incoming.receivedAt.getTime();
    const sentAt = opened.sentAt ?? incoming.date?.getTime();
    const { inserted, message } = this.repository.recordIncoming({
      accountId: runtime.settings.id,
      peer: canonicalAddress(incoming.from),
      peerUri: incoming.from,
      ...(incoming.fromDisplayName === undefined ? {} : { displayName: incoming.fromDisplayName }),
      text: opened.text,
      contentType: incoming.contentType,
      security: opened.security,
      callId: incoming.callId,
      cseq: incoming.cseq,
      fromTag: incoming.fromTag,
      ...(sentAt === undefined ? {} : { sentAt }),
      receivedAt,
    });
    if (!inserted) return undefined;
    const conversation = this.conversationView(message.conversationId);
    this.emit({ type: 'message-received', message: messageView(message), conversation });
    this.emit({ type: 'conversation-updated', conversation });
    return undefined;
  }

  // ---- Outgoing ----------------------------------------------------------------------------

  private send(accountId: string, to: string, text: string): MessageView {
    this.account(accountId);
    const target = sendTarget(to);
    const protectedBody = protectOutgoing(text);
    const stored = this.repository.recordOutgoing({
      accountId,
      peer: canonicalAddress(target),
      peerUri: target,
      text,
      contentType: protectedBody.contentType,
      security: protectedBody.security,
      createdAt: this.now(),
    });
    this.emit({ type: 'message-state', message: messageView(stored) });
    this.emit({ type: 'conversation-updated', conversation: this.conversationView(stored.conversationId) });
    void this.attempt(stored.id);
    return messageView(stored);
  }

  private retry(messageId: number): MessageView {
    const message = this.message(messageId);
    if (message.direction !== 'out') throw new ApiFailure('invalid-state', 'only a message we sent can be retried');
    const queued = this.transition(message, { state: 'queued', status: null, reason: null });
    void this.attempt(messageId);
    return messageView(queued);
  }

  private cancel(messageId: number): MessageView {
    const message = this.message(messageId);
    if (message.direction !== 'out') throw new ApiFailure('invalid-state', 'only a message we sent can be cancelled');
    return messageView(this.transition(message, { state: 'cancelled' }));
  }

  /** One attempt to send a queued message, to a final state. Never throws. */
  private async attempt(messageId: number): Promise<void> {
    const queued = this.repository.message(messageId);
    if (queued === undefined || queued.state !== 'queued' || this.closed) return;
    const runtime = this.accounts.get(queued.accountId);
    const ua = runtime?.ua;
    if (ua === undefined) {
      const why = runtime?.error ?? 'the account is not running';
      this.transition(queued, { state: 'failed', reason: `Not sent: ${why}` });
      return;
    }
    const sending = this.transition(queued, { state: 'sending', attempts: queued.attempts + 1, sentAt: this.now() });
    try {
      const result = await ua.sendMessage({ to: sending.peerUri, body: Buffer.from(sending.text, 'utf8'), contentType: sending.contentType });
      const current = this.repository.message(messageId);
      if (current === undefined || current.state !== 'sending') return;
      const state: MessageState = result.outcome === 'delivered' ? 'delivered' : result.outcome === 'accepted' ? 'accepted' : 'failed';
      const reason = result.authFailure === undefined ? result.reason : `${result.reason} (${result.authFailure})`;
      this.transition(current, { state, status: result.status, reason, callId: result.callId });
    } catch (error) {
      const current = this.repository.message(messageId);
      if (current === undefined || current.state !== 'sending') return;
      this.transition(current, { state: 'failed', reason: failureReason(error) });
    }
  }

  private transition(message: StoredMessage, changes: Parameters<MessageRepository['update']>[1]): StoredMessage {
    if (!NEXT_STATES[message.state].includes(changes.state)) {
      throw new ApiFailure('invalid-state', `a ${message.state} message cannot become ${changes.state}`);
    }
    const updated = this.repository.update(message.id, changes);
    this.emit({ type: 'message-state', message: messageView(updated) });
    this.emit({ type: 'conversation-updated', conversation: this.conversationView(updated.conversationId) });
    return updated;
  }

  private message(id: number): StoredMessage {
    const message = this.repository.message(id);
    if (message === undefined) throw new ApiFailure('not-found', `no message ${id}`);
    return message;
  }

  // ---- History -----------------------------------------------------------------------------

  private conversationView(id: number): ConversationView {
    const conversation = this.repository.conversation(id);
    if (conversation === undefined) throw new ApiFailure('not-found', `no conversation ${id}`);
    return conversationView(conversation);
  }

  private history(conversationId: number, from: number | undefined, limit: number): HistoryPage {
    const conversation = this.repository.conversation(conversationId);
    if (conversation === undefined) throw new ApiFailure('not-found', `no conversation ${conversationId}`);
    const start = from ?? Math.max(0, conversation.total - limit);
    const page = this.repository.history(conversationId, start, limit);
    return { conversationId, from: start, total: page.total, messages: page.messages.map(messageView) };
  }

  private markRead(conversationId: number): ConversationView {
    if (this.repository.conversation(conversationId) === undefined) throw new ApiFailure('not-found', `no conversation ${conversationId}`);
    const conversation = conversationView(this.repository.markRead(conversationId));
    this.emit({ type: 'conversation-updated', conversation });
    return conversation;
  }

  private search(query: string, accountId: string | undefined, limit: number): SearchHit[] {
    return this.repository
      .search(query, { ...(accountId === undefined ? {} : { accountId }), limit })
      .map((hit) => ({ message: messageView(hit.message), ranges: hit.ranges }));
  }

  // ---- Settings ----------------------------------------------------------------------------

  private async updateSettings(changes: Partial<AppSettings>): Promise<AppSettings> {
    const defined = Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined));
    this.settings = { ...this.settings, ...defined };
    await this.saveConfig();
    this.emit({ type: 'settings-changed', settings: this.settings });
    return this.settings;
  }
}

// ---- Seams for S/MIME (issue #4) ---------------------------------------------------------------

type Opened =
  | { readonly kind: 'text'; readonly text: string; readonly security: SecurityLabel; readonly sentAt?: number }
  | { readonly kind: 'rejected'; readonly decision: MessageDecision };

/** What an incoming body says and how it was protected. Today: plaintext bodies only, labelled so. */
function openIncoming(incoming: IncomingMessage): Opened {
  const reading = readMessageBody(incoming.contentType, incoming.body);
  if (reading.kind === 'rejected') {
    return { kind: 'rejected', decision: { status: reading.status, reason: reading.reason, headers: [['Accept', PAGER_ACCEPTED_TYPES.join(', ')]] } };
  }
  const sentAt = reading.cpim?.dateTime?.getTime();
  return { kind: 'text', text: reading.text, security: 'plaintext', ...(sentAt === undefined ? {} : { sentAt }) };
}

/** The body to send and its label. Today: text/plain, labelled plaintext. */
function protectOutgoing(_text: string): { readonly contentType: string; readonly security: SecurityLabel } {
  return { contentType: TEXT_PLAIN_UTF8, security: 'plaintext' };
}

// ---- Helpers -------------------------------------------------------------------------------------

function newRuntime(settings: StoredAccount): AccountRuntime {
  return {
    settings,
    password: undefined,
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
    password: runtime.password === undefined ? 'none' : 'session',
    registration: runtime.registrationState,
    listening: runtime.ua?.listening.map((spec) => `${spec.transport}:${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}`) ?? [],
    ...(runtime.error === undefined ? {} : { error: runtime.error }),
  };
}

function messageView(message: StoredMessage): MessageView {
  const { peerUri: _peerUri, cseq: _cseq, fromTag: _fromTag, ...view } = message;
  return view;
}

function conversationView(conversation: StoredConversation): ConversationView {
  const { lastMessage, ...rest } = conversation;
  return lastMessage === undefined ? rest : { ...rest, lastMessage: messageView(lastMessage) };
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

function failureReason(error: unknown): string {
  if (error instanceof MessageTooLargeError) return `Too large: ${error.size} bytes (RFC 3428 §8 allows ${error.limit} on this path)`;
  if (error instanceof DestinationError) return error.unreachable ? `Unreachable: ${error.message}` : `Bad address: ${error.message}`;
  return `Not sent: ${describe(error)}`;
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
