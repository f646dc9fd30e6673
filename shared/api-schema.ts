/**
 * Run-time validation of every command argument in shared/api.ts, with valibot.
 *
 * The main process trusts nothing that crosses IPC or a WebSocket: `validateCommand` is the
 * gate the Messenger's one `dispatch` passes every call through, before anything reaches the
 * core. Objects are strict (an unknown key is an error, so a typo is not silently ignored),
 * strings are bounded, numbers are safe integers in range. The checks here are about shape;
 * the core still parses addresses properly (main/sip/uri.ts) and answers `invalid-arguments`
 * with the parser's reason.
 *
 * The schemas are tied to the types at compile time in both directions (see the end of the
 * file): a field added to a command's type but not to its schema does not compile.
 */
import * as v from 'valibot';
import type { ApiErrorInfo, CommandArgs, CommandName } from './api.js';
import { isCommandName } from './api.js';

/** Generous bounds: large enough for any real use, small enough that nobody can make us hold gigabytes. */
export const LIMITS = {
  address: 1024,
  shortText: 256,
  /** Characters in one message. RFC 3428 §8's 1300-octet rule is applied per path by the UA. */
  messageText: 100_000,
  search: 256,
  historyPage: 1000,
  searchResults: 500,
  sipLog: 2000,
} as const;

/** `sip:`, `sips:` or `im:` and something after it, no white space or controls (RFC 3261 §19.1, RFC 3860). */
const ADDRESS = /^(?:sips?|im):[^\s<>"\u0000-\u001f\u007f]+$/i;
const SIP_ADDRESS = /^sips?:[^\s<>"\u0000-\u001f\u007f]+$/i;
/** An IPv4 literal or an IPv6 literal without brackets: the listener's address. */
const IP_LITERAL = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}|[0-9a-f:.]*:[0-9a-f:.]*)$/i;
/** Printable, no line breaks: display names, user names, shortcuts. */
const SINGLE_LINE = /^[^\u0000-\u001f\u007f]*$/;

const singleLine = (max: number) => v.pipe(v.string(), v.maxLength(max), v.regex(SINGLE_LINE, 'must be one line of printable text'));
const address = v.pipe(v.string(), v.maxLength(LIMITS.address), v.regex(ADDRESS, 'not a sip:, sips: or im: address'));
const sipAddress = v.pipe(v.string(), v.maxLength(LIMITS.address), v.regex(SIP_ADDRESS, 'not a sip: or sips: address'));
/** '' or a sip:/sips: URI. */
const optionalSipUri = v.union([v.literal(''), sipAddress], 'must be empty or a sip: or sips: URI');
const id = v.pipe(v.string(), v.minLength(1), v.maxLength(64), v.regex(/^[A-Za-z0-9_-]+$/, 'not an id'));
const rowId = v.pipe(v.number(), v.safeInteger(), v.minValue(1));
const count = (max: number) => v.pipe(v.number(), v.safeInteger(), v.minValue(1), v.maxValue(max));
const transport = v.picklist(['udp', 'tcp', 'tls']);
const port = v.pipe(v.number(), v.safeInteger(), v.minValue(0), v.maxValue(65535));
const localAddress = v.pipe(v.string(), v.maxLength(45), v.regex(IP_LITERAL, 'not an IP address'));
const password = v.pipe(v.string(), v.maxLength(LIMITS.shortText));

const accountSettingsEntries = {
  sipAddress,
  displayName: singleLine(LIMITS.shortText),
  registrar: optionalSipUri,
  outboundProxy: optionalSipUri,
  transport,
  register: v.boolean(),
  authUser: singleLine(LIMITS.shortText),
  localAddress,
  localPort: port,
  acceptPlaintext: v.optional(v.boolean()),
  congestionSafePath: v.optional(v.boolean()),
};

const noArgs = v.strictObject({});

/** One account's settings, complete (the saved configuration is checked with it when read back). */
export const ACCOUNT_SETTINGS_SCHEMA = v.strictObject(accountSettingsEntries);

const appSettingsEntries = {
  theme: v.picklist(['system', 'light', 'dark']),
  notifications: v.boolean(),
  startAtLogin: v.boolean(),
  quickSendShortcut: v.pipe(singleLine(64), v.minLength(1)),
  readReceipts: v.boolean(),
};

/** The application settings, complete. */
export const APP_SETTINGS_SCHEMA = v.strictObject(appSettingsEntries);

export const COMMAND_SCHEMAS = {
  'app.info': noArgs,

  'accounts.list': noArgs,
  'accounts.add': v.strictObject({ ...ACCOUNT_SETTINGS_SCHEMA.entries, password: v.optional(password) }),
  'accounts.update': v.strictObject({
    id,
    changes: v.strictObject({ ...v.partial(ACCOUNT_SETTINGS_SCHEMA).entries, password: v.optional(password) }),
  }),
  'accounts.remove': v.strictObject({ id }),

  'messages.send': v.strictObject({
    accountId: id,
    to: address,
    text: v.pipe(v.string(), v.minLength(1, 'an empty message is not sent'), v.maxLength(LIMITS.messageText)),
    plaintext: v.optional(v.boolean()),
  }),
  'messages.retry': v.strictObject({ messageId: rowId }),
  'messages.cancel': v.strictObject({ messageId: rowId }),

  'conversations.list': v.strictObject({ accountId: v.optional(id) }),
  'conversations.history': v.strictObject({
    conversationId: rowId,
    from: v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(0))),
    limit: v.optional(count(LIMITS.historyPage)),
  }),
  'conversations.markRead': v.strictObject({ conversationId: rowId }),
  'conversations.setComposing': v.strictObject({ conversationId: rowId, active: v.boolean() }),

  'search': v.strictObject({
    query: v.pipe(v.string(), v.minLength(1), v.maxLength(LIMITS.search)),
    accountId: v.optional(id),
    limit: v.optional(count(LIMITS.searchResults)),
  }),

  'contacts.list': v.strictObject({ accountId: v.optional(id) }),
  'contacts.trust': v.strictObject({ contactId: rowId, action: v.picklist(['mark-verified', 'accept-change', 'reject-change']) }),
  'contacts.setPolicy': v.strictObject({ contactId: rowId, policy: v.picklist(['smime', 'legacy-plaintext']) }),

  'settings.get': noArgs,
  'settings.update': v.partial(APP_SETTINGS_SCHEMA),

  'sipLog.list': v.strictObject({ accountId: v.optional(id), limit: v.optional(count(LIMITS.sipLog)) }),
  'sipLog.clear': noArgs,
} satisfies { readonly [C in CommandName]: v.GenericSchema<unknown, CommandArgs<C>> };

export type ValidationResult<C extends CommandName> =
  | { readonly ok: true; readonly command: C; readonly args: CommandArgs<C> }
  | { readonly ok: false; readonly error: ApiErrorInfo };

/**
 * Checks that `command` is known and `args` fits its schema. Never throws. Issues name the
 * path, `to: not a sip:, sips: or im: address`, without echoing the (maybe long) value.
 */
export function validateCommand(command: unknown, args: unknown): ValidationResult<CommandName> {
  if (!isCommandName(command)) {
    return { ok: false, error: { code: 'unknown-command', message: `unknown command ${describeName(command)}` } };
  }
  if (typeof args !== 'object' || args === null || Array.isArray(args)) {
    return { ok: false, error: { code: 'invalid-arguments', message: `invalid arguments for ${command}: not an object`, issues: ['arguments must be an object'] } };
  }
  const schema: v.GenericSchema<unknown, CommandArgs<CommandName>> = COMMAND_SCHEMAS[command];
  const result = v.safeParse(schema, args);
  if (result.success) return { ok: true, command, args: result.output };
  const issues = result.issues.slice(0, 10).map((issue) => {
    const path = v.getDotPath(issue);
    return path === null ? issue.message : `${path}: ${issue.message}`;
  });
  return { ok: false, error: { code: 'invalid-arguments', message: `invalid arguments for ${command}: ${issues[0] ?? 'rejected'}`, issues } };
}

function describeName(command: unknown): string {
  if (typeof command !== 'string') return `(a ${command === null ? 'null' : typeof command})`;
  return JSON.stringify(command.length > 64 ? `${command.slice(0, 64)}…` : command);
}

// ---- Compile-time agreement between types and schemas ----------------------------------------
// `satisfies` above checks schema output → type. This checks type → schema: a key (also an
// optional or nested one) that exists in the type but not in the schema, and so would be
// rejected as unknown, fails to compile here.
type MissingKeys<T, S> = T extends object
  ? string extends keyof T
    ? never
    : Exclude<keyof T, keyof S> | { [K in keyof T & keyof S]: MissingKeys<NonNullable<T[K]>, NonNullable<S[K]>> }[keyof T & keyof S]
  : never;
type Uncovered = { [C in CommandName]: MissingKeys<CommandArgs<C>, v.InferOutput<(typeof COMMAND_SCHEMAS)[C]>> extends never ? never : C }[CommandName];
const schemasCoverTypes: [Uncovered] extends [never] ? true : Uncovered = true;
void schemasCoverTypes;
