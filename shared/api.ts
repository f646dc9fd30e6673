/**
 * THE contract between the core (main/im/messenger.ts) and every front end: the Electron
 * preload bridge, the browser host's WebSocket, and the renderer that talks to either.
 *
 * A front end sends a command by name with one argument object and gets an `ApiResponse`
 * back; it never calls the core any other way. The core validates every argument at run
 * time (shared/api-schema.ts, one `dispatch` in the Messenger) before anything reaches it, so
 * a malformed IPC or WebSocket frame is answered `invalid-arguments` and changes nothing.
 * Events flow the other way, to every subscriber.
 *
 * Everything here is JSON-safe (no Date, no Buffer, no Map): times are milliseconds since
 * the Unix epoch, optional fields are left out rather than null. No Node or DOM imports.
 */

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

export type TransportName = 'udp' | 'tcp' | 'tls';

/** What a user configures for one SIP account. An empty string means "none / the default". */
export interface AccountSettings {
  /** The address of record: `sip:alice@example.com`, or `sip:alice@192.0.2.1:5070` peer to peer. */
  readonly sipAddress: string;
  readonly displayName: string;
  /** The REGISTER Request-URI (RFC 3261 §10.2.6); '' = the domain of the SIP address. */
  readonly registrar: string;
  /** A loose-routing outbound proxy (RFC 3261 §8.1.1.1); '' = none. */
  readonly outboundProxy: string;
  /** Transport towards the registrar (and the default for sending). */
  readonly transport: TransportName;
  /** false = peer-to-peer mode: no server, messages go straight to the recipient's address. */
  readonly register: boolean;
  /** Digest user name (RFC 3261 §22); '' = the user part of the SIP address. */
  readonly authUser: string;
  /** Where to listen for UDP and TCP: an IP literal; '0.0.0.0' = every IPv4 address. */
  readonly localAddress: string;
  /** 0 = any free port (fine with a registrar; peer to peer needs a known one, e.g. 5060). */
  readonly localPort: number;
  /**
   * Also take incoming messages that are not signed (labelled `plaintext`, or `encrypted` when
   * encrypted but unsigned) instead of refusing them with 415, like `sipnote listen
   * --plaintext`. Absent = false: S/MIME only. Sending stays S/MIME either way.
   */
  readonly acceptPlaintext?: boolean;
  /**
   * The user asserts that every hop to the peers is congestion-controlled (TCP/TLS end to end),
   * which RFC 3428 §8 requires for a MESSAGE over 1300 octets, i.e. every S/MIME message (about
   * 1.4–2 KB). Absent = false. Peer to peer over TCP/TLS needs no assertion (the path is known);
   * through a server it must be asserted, or protected messages are refused with a reason that
   * names this setting (like `sipnote send --congestion-safe-path`).
   */
  readonly congestionSafePath?: boolean;
}

/** Registration at the registrar (RFC 3261 §10), as the account list and the tray show it. */
export type RegistrationState =
  | { readonly state: 'disabled' }
  | { readonly state: 'registering'; readonly registrar: string }
  | { readonly state: 'registered'; readonly registrar: string; readonly contact: string; readonly expires: number }
  | {
      readonly state: 'failed';
      readonly registrar: string;
      readonly status: number;
      readonly reason: string;
      /** Seconds until the next attempt; absent when it will not retry (wrong credentials). */
      readonly retryIn?: number;
    }
  | { readonly state: 'unregistered'; readonly registrar: string };

/** Where the password is kept. Never returned, never written to a file. */
export type PasswordStorage = 'none' | 'session' | 'keychain';

export interface Account extends AccountSettings {
  readonly id: string;
  readonly password: PasswordStorage;
  readonly registration: RegistrationState;
  /** The sockets actually bound, `udp:127.0.0.1:5081`; empty while stopped. */
  readonly listening: readonly string[];
  /** Why the account is not running (a port in use, say); absent when it runs. */
  readonly error?: string;
  /** SHA-256 of the account's own S/MIME certificate, for contacts to compare out of band. */
  readonly certificateFingerprint?: string;
}

/**
 * Where a message is (RFC 3428 §4, §7; RFC 5438 for `displayed`):
 * queued → sending → delivered (200 from the recipient) | accepted (202: a server stored it,
 * delivery still to come) | failed (status and reason); displayed comes from an IMDN;
 * cancelled is a user's decision. Incoming messages are `received`.
 */
export type MessageState = 'queued' | 'sending' | 'accepted' | 'delivered' | 'displayed' | 'failed' | 'cancelled' | 'received';

/**
 * What protected a message, as verified (incoming) or applied (outgoing). Never stronger than
 * what was checked. Outgoing messages are `encrypted-signed` (RFC 8591) unless the send or the
 * contact's policy asked for `plaintext`.
 */
export type SecurityLabel = 'encrypted-signed' | 'encrypted' | 'signed' | 'plaintext';

export type Direction = 'in' | 'out';

export interface MessageView {
  readonly id: number;
  readonly conversationId: number;
  readonly accountId: string;
  /** The conversation's peer (canonical address of record). */
  readonly peer: string;
  readonly direction: Direction;
  readonly text: string;
  readonly contentType: string;
  readonly security: SecurityLabel;
  readonly state: MessageState;
  /** The final SIP status of the last attempt (outgoing). */
  readonly status?: number;
  readonly reason?: string;
  readonly attempts: number;
  readonly createdAt: number;
  /** Incoming: the sender's Date; outgoing: when the last attempt started. */
  readonly sentAt?: number;
  readonly receivedAt?: number;
  /** Accepted although old (up to 72 hours), shown as late. */
  readonly late?: boolean;
  readonly callId?: string;
}

export interface ConversationView {
  readonly id: number;
  readonly accountId: string;
  /** Canonical address of record of the other side. */
  readonly peer: string;
  /** The address to send to (the peer as last seen or typed, with port and parameters). */
  readonly target: string;
  readonly displayName?: string;
  /** Incoming messages after the read mark. */
  readonly unread: number;
  /** Messages in the conversation. */
  readonly total: number;
  readonly lastMessage?: MessageView;
  readonly lastActivity: number;
}

/** A window of a conversation: messages[i] is the (from + i)-th oldest, 0-based. */
export interface HistoryPage {
  readonly conversationId: number;
  readonly from: number;
  readonly total: number;
  readonly messages: readonly MessageView[];
}

/** [start, end) offsets in `message.text` of what matched. */
export type TextRange = readonly [number, number];

export interface SearchHit {
  readonly message: MessageView;
  readonly ranges: readonly TextRange[];
}

/**
 * Certificate trust of a contact (design.md "Security"): `none` nothing pinned, `pinned`
 * trusted on first use, `verified` compared out of band, `changed` a different certificate
 * was presented (the old one stays pinned until the user decides: loud, never silent).
 */
export type TrustState = 'none' | 'pinned' | 'verified' | 'changed';
export type ContactPolicy = 'smime' | 'legacy-plaintext';

export interface Contact {
  readonly id: number;
  readonly accountId: string;
  readonly aor: string;
  readonly displayName?: string;
  /** SHA-256 of the pinned certificate, uppercase hex in colon-separated pairs. */
  readonly fingerprint?: string;
  /** With `changed`: the fingerprint of the certificate now presented. */
  readonly presentedFingerprint?: string;
  readonly trust: TrustState;
  readonly policy: ContactPolicy;
}

export type TrustAction = 'mark-verified' | 'accept-change' | 'reject-change';

export type Theme = 'system' | 'light' | 'dark';

export interface AppSettings {
  readonly theme: Theme;
  /** Desktop notifications for incoming messages. */
  readonly notifications: boolean;
  /** Start at login (Electron only). */
  readonly startAtLogin: boolean;
  /** Electron accelerator for the quick-send window, e.g. `CommandOrControl+Shift+M`. */
  readonly quickSendShortcut: string;
  /**
   * Tell senders when their messages have been read (RFC 5438 "display" notifications, which
   * need the user's consent, §7.2.1.1). Delivery notifications are sent either way.
   */
  readonly readReceipts: boolean;
}

export interface SipLogEntry {
  readonly id: number;
  readonly time: number;
  readonly accountId: string;
  readonly direction: Direction;
  readonly transport: TransportName;
  /** `address:port` of the other side. */
  readonly remote: string;
  /** The start line: `MESSAGE sip:bob@… SIP/2.0` or `SIP/2.0 200 OK`. */
  readonly summary: string;
  /** The message as text (bodies that are not text shown as `[N bytes]`), at most 16 KiB. */
  readonly text: string;
  readonly size: number;
}

/** What this build of the core can do, so a front end never pretends. */
export interface Capabilities {
  readonly smime: boolean;
  readonly keychain: boolean;
  /** `memory`: history is lost when the app quits (until the SQLite store lands). */
  readonly history: 'memory' | 'sqlite';
  readonly contacts: boolean;
  readonly composing: boolean;
}

export interface AppInfo {
  readonly name: string;
  readonly version: string;
  readonly capabilities: Capabilities;
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/** A command that takes no arguments takes `{}`. */
export type NoArgs = Readonly<Record<string, never>>;

export interface NewAccount extends AccountSettings {
  /** Kept in the OS keychain (session only in a build without one); never stored in a file. */
  readonly password?: string;
}

export interface AccountChanges extends Partial<AccountSettings> {
  /** '' forgets the password. */
  readonly password?: string;
}

interface Command<A, R> {
  readonly args: A;
  readonly result: R;
}

export interface ApiCommands {
  'app.info': Command<NoArgs, AppInfo>;

  'accounts.list': Command<NoArgs, readonly Account[]>;
  'accounts.add': Command<NewAccount, Account>;
  'accounts.update': Command<{ readonly id: string; readonly changes: AccountChanges }, Account>;
  'accounts.remove': Command<{ readonly id: string }, null>;

  /** Stores the message (queued) and answers at once; its states follow as `message-state` events. */
  /**
   * `plaintext: true` sends it unprotected (like `sipnote send --plaintext`); otherwise it is
   * signed and encrypted unless the contact's policy is `legacy-plaintext`.
   */
  'messages.send': Command<{ readonly accountId: string; readonly to: string; readonly text: string; readonly plaintext?: boolean }, MessageView>;
  /** A failed or cancelled message goes back to the queue. */
  'messages.retry': Command<{ readonly messageId: number }, MessageView>;
  /** A queued or failed message is given up. */
  'messages.cancel': Command<{ readonly messageId: number }, MessageView>;

  'conversations.list': Command<{ readonly accountId?: string }, readonly ConversationView[]>;
  /** `from` omitted: the newest `limit` messages. */
  'conversations.history': Command<{ readonly conversationId: number; readonly from?: number; readonly limit?: number }, HistoryPage>;
  'conversations.markRead': Command<{ readonly conversationId: number }, ConversationView>;
  /**
   * isComposing (RFC 3994): the user types in the conversation (`active: true`, on every
   * keystroke: only changes are sent, refreshed every 60 s) or cleared the draft (`false`: idle
   * now). Idle goes by itself 15 s after the last keystroke, and when a message is sent. The
   * peer's state comes as the `composing` event.
   */
  'conversations.setComposing': Command<{ readonly conversationId: number; readonly active: boolean }, null>;

  'search': Command<{ readonly query: string; readonly accountId?: string; readonly limit?: number }, readonly SearchHit[]>;

  'contacts.list': Command<{ readonly accountId?: string }, readonly Contact[]>;
  'contacts.trust': Command<{ readonly contactId: number; readonly action: TrustAction }, Contact>;
  'contacts.setPolicy': Command<{ readonly contactId: number; readonly policy: ContactPolicy }, Contact>;

  'settings.get': Command<NoArgs, AppSettings>;
  'settings.update': Command<Partial<AppSettings>, AppSettings>;

  'sipLog.list': Command<{ readonly accountId?: string; readonly limit?: number }, readonly SipLogEntry[]>;
  'sipLog.clear': Command<NoArgs, null>;
}

export type CommandName = keyof ApiCommands;
export type CommandArgs<C extends CommandName> = ApiCommands[C]['args'];
export type CommandResult<C extends CommandName> = ApiCommands[C]['result'];

export const COMMAND_NAMES = [
  'app.info',
  'accounts.list',
  'accounts.add',
  'accounts.update',
  'accounts.remove',
  'messages.send',
  'messages.retry',
  'messages.cancel',
  'conversations.list',
  'conversations.history',
  'conversations.markRead',
  'conversations.setComposing',
  'search',
  'contacts.list',
  'contacts.trust',
  'contacts.setPolicy',
  'settings.get',
  'settings.update',
  'sipLog.list',
  'sipLog.clear',
] as const satisfies readonly CommandName[];

// A command added to ApiCommands but not to COMMAND_NAMES fails to compile here.
type MissingCommand = Exclude<CommandName, (typeof COMMAND_NAMES)[number]>;
const everyCommandListed: MissingCommand extends never ? true : never = true;
void everyCommandListed;

export function isCommandName(value: unknown): value is CommandName {
  return typeof value === 'string' && (COMMAND_NAMES as readonly string[]).includes(value);
}

/**
 * - `invalid-arguments`: the arguments failed validation (nothing happened);
 * - `unknown-command`; `not-found`: no such account, conversation, message or contact;
 * - `invalid-state`: not now (retrying a delivered message, say);
 * - `not-available`: this build cannot do it yet (see Capabilities);
 * - `failed`: it was tried and went wrong (a port in use, say).
 */
export type ApiErrorCode = 'invalid-arguments' | 'unknown-command' | 'not-found' | 'invalid-state' | 'not-available' | 'failed';

export interface ApiErrorInfo {
  readonly code: ApiErrorCode;
  readonly message: string;
  /** With `invalid-arguments`: where and why, `to: not a sip:, sips: or im: address`. */
  readonly issues?: readonly string[];
}

export type ApiResponse<R> = { readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: ApiErrorInfo };

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/** What the shell asks the renderer to show (a `sip:` link, a notification click, the tray). */
export type OpenTarget =
  | { readonly view: 'compose'; readonly to?: string }
  | { readonly view: 'conversation'; readonly conversationId: number }
  | { readonly view: 'quick-send'; readonly to?: string };

export type ApiEvent =
  | { readonly type: 'message-received'; readonly message: MessageView; readonly conversation: ConversationView }
  /** A message was added (outgoing, queued) or its state changed. */
  | { readonly type: 'message-state'; readonly message: MessageView }
  | { readonly type: 'conversation-updated'; readonly conversation: ConversationView }
  | { readonly type: 'registration-changed'; readonly accountId: string; readonly registration: RegistrationState }
  | { readonly type: 'accounts-changed'; readonly accounts: readonly Account[] }
  /** The conversation's peer started (`active`) or stopped composing (RFC 3994; its refresh ran out, it went idle, or its message arrived). */
  | { readonly type: 'composing'; readonly conversationId: number; readonly active: boolean }
  | { readonly type: 'settings-changed'; readonly settings: AppSettings }
  | { readonly type: 'sip-log'; readonly entry: SipLogEntry }
  /** A contact was added, its certificate pinned or verified, its policy changed. */
  | { readonly type: 'contact-updated'; readonly contact: Contact }
  /**
   * A contact presented a certificate other than the pinned one: its messages are refused
   * (403) and none is sent to it until the user accepts the new one (`contacts.trust`
   * `accept-change`) or keeps refusing (`reject-change`). Both fingerprints, for comparison.
   */
  | { readonly type: 'certificate-changed'; readonly contact: Contact; readonly pinnedFingerprint?: string; readonly presentedFingerprint: string }
  | { readonly type: 'error'; readonly code: string; readonly message: string; readonly accountId?: string }
  | { readonly type: 'open'; readonly target: OpenTarget };

export type ApiEventType = ApiEvent['type'];

// ---------------------------------------------------------------------------------------------
// Transports
// ---------------------------------------------------------------------------------------------

/** What a front end adapter needs of the core: the Messenger implements it. */
export interface ApiEndpoint {
  /** Validates `args` for `command`, runs it, and never throws: failures are `ok: false`. */
  dispatch(command: string, args: unknown): Promise<ApiResponse<unknown>>;
  /** Returns the function that unsubscribes. */
  subscribe(listener: (event: ApiEvent) => void): () => void;
}

/** What the Electron preload exposes as `window.sipnote` (contextBridge), and nothing more. */
export interface SipnoteBridge {
  invoke(command: CommandName, args: unknown): Promise<ApiResponse<unknown>>;
  onEvent(listener: (event: ApiEvent) => void): () => void;
}

/** WebSocket frames of the browser host (JSON text frames). */
export interface RequestFrame {
  readonly id: number;
  readonly command: string;
  readonly args: unknown;
}

export type ServerFrame = { readonly id: number; readonly response: ApiResponse<unknown> } | { readonly event: ApiEvent };

/** The IPC channel names of the Electron shell. */
export const IPC_INVOKE_CHANNEL = 'sipnote:invoke';
export const IPC_EVENT_CHANNEL = 'sipnote:event';

/** The WebSocket path of the browser host. */
export const WS_PATH = '/api';
