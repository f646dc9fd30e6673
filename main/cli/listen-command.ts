/**
 * `sipnote listen --aor URI --listen SPEC[,SPEC…] [--data-dir DIR] [--plaintext] [--json]`
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
import type { ListeningEvent, MessageEvent } from '../../shared/cli-events.js';
import type { CommandIo } from './io.js';
import { formatListenSpec } from './listen-specs.js';

export interface ListenArgs {
  aor: string;
  listen: ListenSpec[];
  json: boolean;
  plaintext: boolean;
  dataDir?: string;
  t1?: number;
  verbose: boolean;
}

export async function listenCommand(args: ListenArgs, io: CommandIo, stop: Promise<void>): Promise<number> {
  const print = (value: ListeningEvent | MessageEvent, human: string): void => {
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
  });
  const bound = agent.listening.map(formatListenSpec);
  print({ event: 'listening', aor: args.aor, listen: bound }, `listening as ${args.aor} on ${bound.join(', ')}`);
  await stop;
  await agent.close();
  return 0;
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
