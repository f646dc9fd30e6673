/**
 * `sipnote listen --aor URI --listen SPEC[,SPEC…] [--register [--registrar URI] [--user NAME]]
 *                [--proxy URI] [--tls-cert F --tls-key F] [--trust-cert F] [--data-dir DIR] [--plaintext] [--json]`
 *
 * With --register it stays registered while it runs (refreshing before expiry) and removes its
 * binding on SIGINT/SIGTERM; registration state is printed as `registered`,
 * `registration-failed` and `unregistered` events.
 *
 * Receives MESSAGEs until SIGINT/SIGTERM, then exits 0. With --json, prints one JSON object per
 * line: `{"event":"listening","listen":[…]}` once every socket is bound, then one
 * `{"event":"message",…}` per accepted MESSAGE (body as text for textual types, else base64).
 */
import { parseContentType } from '../sip/header-values.js';
import { ParseError } from '../sip/message/parse-error.js';
import type { ListenSpec } from '../sip/transport/transport-layer.js';
import { TEXT_CHARSETS } from '../sip/ua/request-policy.js';
import { UserAgent, type IncomingMessage, type MessageDecision } from '../sip/ua/user-agent.js';
import { PAGER_ACCEPTED_TYPES, PAGER_REQUEST_POLICY, readMessageBody, type BodyReading } from '../im/incoming-body.js';
import type { ListenEvent, MessageEvent } from '../../shared/cli-events.js';
import { systemClock } from '../sip/transaction/clock.js';
import { Registration, type RegistrationEvent } from '../sip/ua/registration.js';
import { accountAgentOptions, type AccountArgs } from './account-options.js';
import { traceTo, type CommandIo } from './io.js';
import { formatListenSpec } from './listen-specs.js';

export interface ListenArgs {
  aor: string;
  account: AccountArgs;
  /** Register with a registrar while listening (RFC 3261 §10). */
  register: boolean;
  registrar?: string;
  expires?: number;
  listen: ListenSpec[];
  json: boolean;
  plaintext: boolean;
  dataDir?: string;
  t1?: number;
  verbose: boolean;
  /** Print every SIP message on stderr. */
  trace: boolean;
}

export async function listenCommand(args: ListenArgs, io: CommandIo, stop: Promise<void>): Promise<number> {
  const print = (value: ListenEvent, human: string): void => {
    io.stdout.write(args.json ? `${JSON.stringify(value)}\n` : `${human}\n`);
  };
  if (args.dataDir !== undefined) {
    io.stderr.write('sipnote: --data-dir is accepted, but history storage is not built yet (durable messaging, issue #5); nothing is stored\n');
  }
  if (!args.plaintext) {
    io.stderr.write('sipnote: S/MIME is not built yet (issue #4): messages are received as plaintext\n');
  }
  const agent = await UserAgent.start({
    aor: args.aor,
    listen: args.listen,
    ...(await accountAgentOptions(args.account, args.aor, io)),
    ...(args.t1 === undefined ? {} : { timers: { t1: args.t1, t2: Math.max(args.t1 * 8, args.t1), t4: args.t1 * 10 } }),
    policy: PAGER_REQUEST_POLICY,
    onMessage: (message): MessageDecision | void => {
      const reading = readMessageBody(message.contentType, message.body);
      if (reading.kind === 'rejected') {
        return { status: reading.status, reason: reading.reason, headers: [['Accept', PAGER_ACCEPTED_TYPES.join(', ')]] };
      }
      print(messageEvent(message, reading), `${message.from} -> ${message.to}: ${reading.text}`);
    },
    ...(args.verbose ? { onDiagnostic: (text: string) => io.stderr.write(`sipnote: ${text}\n`) } : {}),
    ...(args.trace ? { onTrace: traceTo(io) } : {}),
  });
  const bound = agent.listening.map(formatListenSpec);
  print({ event: 'listening', aor: args.aor, listen: bound }, `listening as ${args.aor} on ${bound.join(', ')}`);

  let registration: Registration | undefined;
  if (args.register) {
    registration = new Registration(
      agent,
      systemClock,
      { ...(args.registrar === undefined ? {} : { registrar: args.registrar }), ...(args.expires === undefined ? {} : { expires: args.expires }) },
      (event) => print(registrationEvent(event), describeRegistration(event)),
    );
    void registration.start().catch((error: unknown) => {
      io.stderr.write(`sipnote: registration: ${error instanceof Error ? error.message : String(error)}\n`);
    });
  }
  await stop;
  // §10.2.2: remove our binding on a clean exit, so nothing is sent to a dead contact.
  await registration?.stop().catch((error: unknown) => {
    io.stderr.write(`sipnote: un-REGISTER failed: ${error instanceof Error ? error.message : String(error)}\n`);
  });
  await agent.close();
  return 0;
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

export function messageEvent(message: IncomingMessage, reading: Extract<BodyReading, { kind: 'text' }>): MessageEvent {
  const body = bodyText(message);
  return {
    event: 'message',
    from: message.from,
    ...(message.fromDisplayName === undefined ? {} : { fromDisplayName: message.fromDisplayName }),
    to: message.to,
    callId: message.callId,
    cseq: message.cseq,
    contentType: message.contentType,
    body: body.text,
    bodyEncoding: body.encoding,
    text: reading.text,
    ...(reading.attachments > 0 ? { attachments: reading.attachments } : {}),
    ...(reading.cpim === undefined
      ? {}
      : {
          cpim: {
            to: reading.cpim.to,
            ...(reading.cpim.from === undefined ? {} : { from: reading.cpim.from }),
            ...(reading.cpim.dateTime === undefined ? {} : { dateTime: reading.cpim.dateTime.toISOString() }),
            ...(reading.cpim.messageId === undefined ? {} : { messageId: reading.cpim.messageId }),
          },
        }),
    transport: message.transport,
    remote: `${message.remote.address}:${message.remote.port}`,
    ...(message.date === undefined ? {} : { date: message.date.toISOString() }),
    ...(message.expiresAt === undefined ? {} : { expiresAt: message.expiresAt.toISOString() }),
    receivedAt: message.receivedAt.toISOString(),
  };
}

/** Text for textual bodies in their charset (decoded only now, after framing), else base64. */
function bodyText(message: IncomingMessage): { text: string; encoding: 'text' | 'base64' } {
  try {
    const type = parseContentType(message.contentType);
    const charset = type.params.get('charset')?.toLowerCase();
    const textual = type.type === 'text' || type.subtype === 'cpim' || type.subtype.endsWith('+xml');
    if (textual && (charset === undefined || charset === null || TEXT_CHARSETS.has(charset))) {
      const encoding = charset === 'iso-8859-1' || charset === 'latin1' ? 'latin1' : 'utf8';
      return { text: message.body.toString(encoding), encoding: 'text' };
    }
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
  }
  return { text: message.body.toString('base64'), encoding: 'base64' };
}
