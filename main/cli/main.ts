/**
 * The `sipnote` command line: `listen`, `send`, `history`, `outbox`, `keys`, `ui` and `parse`, for people and for scripts.
 * Exit codes: 0 success, 1 failure (a non-2xx, a parse error), 2 usage error, 3 timeout or
 * transport failure. Errors are one line on stderr; `--json` output is one object per line.
 */
import { parseArgs } from 'node:util';
import { parseListenSpecs, type ListenSpec } from '../sip/transport/transport-layer.js';
import { parseUri } from '../sip/uri.js';
import { ParseError } from '../sip/message/parse-error.js';
import { processIo, type CommandIo } from './io.js';
import { listenCommand } from './listen-command.js';
import { parseCommand } from './parse-command.js';
import { defaultClientListen, sendCommand } from './send-command.js';
import { UsageError } from './usage-error.js';
import { ACCOUNT_OPTIONS, readAccountArgs } from './account-options.js';
import { KEYS_USAGE, keysCommand, parseKeysArgs } from './keys-command.js';
import { parseUiArgs, uiCommand } from './ui-command.js';
import { historyCommand, outboxCommand, type HistoryArgs, type OutboxArgs } from './history-command.js';
import { MAX_HISTORY_LIMIT } from '../store/index.js';

const USAGE = `usage:
  sipnote listen --aor sip:bob@127.0.0.1 --listen udp:127.0.0.1:5081,tcp:127.0.0.1:5081[,tls:HOST:PORT]
                 [--register [--registrar URI] [--expires S]] [--data-dir DIR] [--plaintext] [--json]
  sipnote send --from sip:alice@127.0.0.1 --to sip:bob@127.0.0.1:5081 [--transport udp|tcp|tls] [--listen SPEC]
               [--data-dir DIR] [--congestion-safe-path] [--plaintext [--content-type TYPE]] [--json] TEXT|-
  sipnote parse [FILE|-] [--json]
  sipnote history [--data-dir DIR] [--peer URI] [--search TEXT] [--limit N] [--json]   stored messages, newest first
  sipnote outbox [--data-dir DIR] [--json]             outgoing messages not finished yet, and why
  sipnote outbox --flush [--data-dir DIR] [--json] [account options]   send every due message once
  sipnote outbox --retry ID | --cancel ID [--data-dir DIR] [--json]    send a failed one again / give it up
  sipnote ui [--data-dir DIR] [--port N] [--json]      the app in a browser, served on 127.0.0.1
${KEYS_USAGE}
Messages are S/MIME signed and encrypted by default, with the identity of --aor / --from in the
data dir (create it with \`sipnote keys init\`); a contact's certificate is asked for (OPTIONS)
and pinned on first use. --plaintext sends unprotected; for listen it also accepts plaintext.
options for listen and send:
  --data-dir DIR       your keys, pinned certificates, replay cache; given explicitly, also the message
                       history (messages are stored before they are acknowledged or sent) (default: $XDG_DATA_HOME/sipnote,
                       else ~/.local/share/sipnote)
  --user NAME          digest user name (default: the user part of the address); the password comes
                       from SIPNOTE_PASSWORD or a prompt
  --proxy URI          outbound proxy (a loose route)
  --tls-cert F --tls-key F   our TLS certificate and key (PEM), needed for a tls: listener
  --trust-cert F       a server certificate (PEM) to trust besides the system CAs; repeatable
  --dns HOST:PORT      DNS server for RFC 3263 lookups instead of the system's; repeatable
  --rate-limit N[/B]   listen: at most N requests/s per source address (burst B), else 503 with Retry-After
  --tcp-idle-timeout MS     listen: close a TCP/TLS connection after MS without traffic (default 32000)
  --tcp-message-timeout MS  listen: close a TCP/TLS connection whose message (head and body) or TLS
                            handshake is not complete MS after it began (default 10000)
  --t1 MS              RFC 3261 timer T1 (default 500)
  --verbose            diagnostics on stderr
  --trace              every SIP message sent and received, on stderr`;

export async function main(argv: readonly string[], io: CommandIo = processIo, stop?: Promise<void>): Promise<number> {
  try {
    return await run(argv, io, stop);
  } catch (error) {
    if (error instanceof UsageError || isParseArgsError(error)) {
      io.stderr.write(`sipnote: ${(error as Error).message}\n${USAGE}\n`);
      return 2;
    }
    io.stderr.write(`sipnote: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

async function run(argv: readonly string[], io: CommandIo, stop: Promise<void> | undefined): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'listen':
      return listenCommand(parseListenArgs(rest), io, stop ?? untilSignal());
    case 'send':
      return sendCommand(parseSendArgs(rest), io);
    case 'keys':
      return keysCommand(parseKeysArgs(rest), io);
    case 'ui':
      return uiCommand(parseUiArgs(rest), io, stop ?? untilSignal());
    case 'history':
      return historyCommand(parseHistoryArgs(rest), io);
    case 'outbox':
      return outboxCommand(parseOutboxArgs(rest), io);
    case 'parse': {
      const { values, positionals } = parseArgs({ args: rest, options: { json: { type: 'boolean', default: false } }, allowPositionals: true });
      if (positionals.length > 1) throw new UsageError('parse takes one FILE or -');
      return parseCommand({ json: values.json, ...(positionals[0] === undefined ? {} : { file: positionals[0] }) }, io);
    }
    case 'help':
    case '--help':
    case '-h':
      io.stdout.write(`${USAGE}\n`);
      return 0;
    case undefined:
      throw new UsageError('no command given');
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

const COMMON_OPTIONS = {
  json: { type: 'boolean', default: false },
  plaintext: { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
  trace: { type: 'boolean', default: false },
  listen: { type: 'string' },
  t1: { type: 'string' },
} as const;

function parseListenArgs(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      ...ACCOUNT_OPTIONS,
      aor: { type: 'string' },
      'data-dir': { type: 'string' },
      register: { type: 'boolean', default: false },
      registrar: { type: 'string' },
      expires: { type: 'string' },
      'rate-limit': { type: 'string' },
      'tcp-idle-timeout': { type: 'string' },
      'tcp-message-timeout': { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const aor = requireSipUri(values.aor, '--aor');
  const rateLimit = parseRateLimit(values['rate-limit']);
  const idleTimeoutMs = parseMilliseconds(values['tcp-idle-timeout'], '--tcp-idle-timeout');
  const headerTimeoutMs = parseMilliseconds(values['tcp-message-timeout'], '--tcp-message-timeout');
  const transportLimits = { ...(idleTimeoutMs === undefined ? {} : { idleTimeoutMs }), ...(headerTimeoutMs === undefined ? {} : { headerTimeoutMs }) };
  const t1 = parseT1(values.t1);
  if (values.registrar !== undefined) requireSipUri(values.registrar, '--registrar');
  if ((values.registrar !== undefined || values.expires !== undefined) && !values.register) {
    throw new UsageError('--registrar and --expires go with --register');
  }
  const expires = values.expires === undefined ? undefined : Number(values.expires);
  if (expires !== undefined && !(Number.isInteger(expires) && expires > 0)) throw new UsageError('--expires takes a number of seconds');
  return {
    aor,
    account: readAccountArgs(values),
    register: values.register,
    ...(values.registrar === undefined ? {} : { registrar: values.registrar }),
    ...(expires === undefined ? {} : { expires }),
    ...(rateLimit === undefined ? {} : { rateLimit }),
    ...(Object.keys(transportLimits).length === 0 ? {} : { transportLimits }),
    listen: values.listen === undefined ? [{ transport: 'udp', host: '127.0.0.1', port: 5060 }, { transport: 'tcp', host: '127.0.0.1', port: 5060 }] satisfies ListenSpec[] : listenSpecs(values.listen),
    json: values.json,
    plaintext: values.plaintext,
    verbose: values.verbose,
    trace: values.trace,
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(t1 === undefined ? {} : { t1 }),
  };
}

function parseSendArgs(args: string[]) {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      ...ACCOUNT_OPTIONS,
      from: { type: 'string' },
      to: { type: 'string' },
      transport: { type: 'string' },
      'content-type': { type: 'string' },
      'congestion-safe-path': { type: 'boolean', default: false },
      'data-dir': { type: 'string' },
    },
    allowPositionals: true,
  });
  const from = requireSipUri(values.from, '--from');
  const to = requireSipUri(values.to, '--to');
  if (positionals.length !== 1) throw new UsageError('send takes exactly one TEXT argument (or - to read stdin)');
  const transport = values.transport;
  if (transport !== undefined && transport !== 'udp' && transport !== 'tcp' && transport !== 'tls') throw new UsageError('--transport must be udp, tcp or tls');
  const chosen: 'udp' | 'tcp' | 'tls' | undefined = transport;
  const t1 = parseT1(values.t1);
  // An S/MIME message carries text/plain inside message/cpim (main/im/smime/protect.ts).
  if (values['content-type'] !== undefined && !values.plaintext) throw new UsageError('--content-type goes with --plaintext (S/MIME messages carry text/plain)');
  return {
    from,
    to,
    account: readAccountArgs(values),
    text: positionals[0] as string,
    listen: values.listen === undefined ? defaultClientListen(to) : listenSpecs(values.listen),
    json: values.json,
    plaintext: values.plaintext,
    verbose: values.verbose,
    trace: values.trace,
    contentType: values['content-type'] ?? 'text/plain;charset=utf-8',
    congestionSafePath: values['congestion-safe-path'],
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(chosen === undefined ? {} : { transport: chosen }),
    ...(t1 === undefined ? {} : { t1 }),
  };
}

function parseHistoryArgs(args: string[]): HistoryArgs {
  const { values, positionals } = parseArgs({
    args,
    options: {
      json: { type: 'boolean', default: false },
      'data-dir': { type: 'string' },
      peer: { type: 'string' },
      search: { type: 'string' },
      limit: { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  if (values.peer !== undefined) requireSipUri(values.peer, '--peer');
  let limit: number | undefined;
  if (values.limit !== undefined) {
    limit = Number(values.limit);
    if (!/^\d{1,7}$/.test(values.limit) || limit < 1 || limit > MAX_HISTORY_LIMIT) throw new UsageError(`--limit takes a number from 1 to ${MAX_HISTORY_LIMIT}`);
  }
  return {
    json: values.json,
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(values.peer === undefined ? {} : { peer: values.peer }),
    ...(values.search === undefined ? {} : { search: values.search }),
    ...(limit === undefined ? {} : { limit }),
  };
}

function parseOutboxArgs(args: string[]): OutboxArgs {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...ACCOUNT_OPTIONS,
      json: { type: 'boolean', default: false },
      'data-dir': { type: 'string' },
      flush: { type: 'boolean', default: false },
      retry: { type: 'string' },
      cancel: { type: 'string' },
      t1: { type: 'string' },
    },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const actions = [values.flush ? 'flush' : undefined, values.retry, values.cancel].filter((value) => value !== undefined);
  if (actions.length > 1) throw new UsageError('--flush, --retry and --cancel go one at a time');
  const account = readAccountArgs(values);
  const accountGiven = account.user !== undefined || account.proxy !== undefined || account.tlsCert !== undefined || account.trustCerts.length > 0 || account.dns.length > 0;
  if ((accountGiven || values.t1 !== undefined) && !values.flush) throw new UsageError('account options and --t1 go with --flush');
  const t1 = parseT1(values.t1);
  const id = (flag: string, text: string): number => {
    if (!/^\d{1,15}$/.test(text) || Number(text) < 1) throw new UsageError(`${flag} takes a message id (a number, as \`sipnote outbox\` shows it)`);
    return Number(text);
  };
  return {
    json: values.json,
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(values.flush ? { action: { kind: 'flush' }, account } : {}),
    ...(values.retry === undefined ? {} : { action: { kind: 'retry', id: id('--retry', values.retry) } }),
    ...(values.cancel === undefined ? {} : { action: { kind: 'cancel', id: id('--cancel', values.cancel) } }),
    ...(t1 === undefined ? {} : { t1 }),
  };
}

function listenSpecs(text: string): ListenSpec[] {
  try {
    return parseListenSpecs(text, { allowTls: true });
  } catch (error) {
    throw new UsageError(`--listen ${text}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function requireSipUri(value: string | undefined, flag: string): string {
  if (value === undefined) throw new UsageError(`${flag} is required`);
  try {
    const uri = parseUri(value);
    if (uri.scheme !== 'sip' && uri.scheme !== 'sips') throw new UsageError(`${flag} must be a sip: or sips: URI`);
  } catch (error) {
    if (error instanceof ParseError) throw new UsageError(`${flag} ${value}: ${error.message}`);
    throw error;
  }
  return value;
}

/** `--rate-limit N[/BURST]`: requests per second per source address, and the burst allowed. */
function parseRateLimit(value: string | undefined): { perSecond: number; burst: number } | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{1,6})(?:\/(\d{1,6}))?$/.exec(value);
  const perSecond = Number(match?.[1]);
  if (match === null || perSecond < 1) throw new UsageError('--rate-limit takes requests per second, optionally /BURST (e.g. 50/100)');
  return { perSecond, burst: match[2] === undefined ? perSecond * 2 : Math.max(1, Number(match[2])) };
}

/** A timeout flag: whole milliseconds, at least 1 and at most a day. */
function parseMilliseconds(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,8}$/.test(value) || Number(value) < 1 || Number(value) > 86_400_000) throw new UsageError(`${flag} takes a number of milliseconds`);
  return Number(value);
}

function parseT1(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,6}$/.test(value) || Number(value) < 1) throw new UsageError('--t1 takes a number of milliseconds');
  return Number(value);
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
}

function isParseArgsError(error: unknown): boolean {
  return error instanceof TypeError && typeof (error as NodeJS.ErrnoException).code === 'string' && (error as NodeJS.ErrnoException).code!.startsWith('ERR_PARSE_ARGS');
}
