/**
 * `sipnote parse [FILE|-] [--json]`: reads one SIP message and prints its parsed form, or the
 * ParseError. A diagnostic for users pasting captures: it accepts LF-only line ends as pasted
 * from a terminal, and says exactly what is wrong when it fails.
 */
import { readFile } from 'node:fs/promises';
import { parseMessage } from '../sip/message/parse.js';
import { ParseError } from '../sip/message/parse-error.js';
import { checkCSeqMethod, validateEssentialHeaders, type SipMessage } from '../sip/message/sip-message.js';
import { formatUri } from '../sip/uri.js';
import { readAllStdin, type CommandIo } from './io.js';
import { UsageError } from './usage-error.js';

export async function parseCommand(args: { file?: string; json: boolean }, io: CommandIo): Promise<number> {
  const data = args.file === undefined || args.file === '-' ? await readAllStdin(io.stdin) : await readFileOrUsage(args.file);
  let message: SipMessage;
  try {
    message = parseMessage(data);
    validateEssentialHeaders(message);
    if (message.kind === 'request') checkCSeqMethod(message);
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    const failure = { error: 'ParseError', code: error.code, message: error.message, ...(error.header ? { header: error.header } : {}) };
    io.stdout.write(args.json ? `${JSON.stringify(failure)}\n` : `ParseError (${error.code}): ${error.message}\n`);
    return 1;
  }
  const view = describeMessage(message);
  io.stdout.write(args.json ? `${JSON.stringify(view)}\n` : formatHuman(view));
  return 0;
}

async function readFileOrUsage(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** A plain-data view of a message, with the essential headers interpreted. */
export function describeMessage(message: SipMessage): Record<string, unknown> {
  const startLine =
    message.kind === 'request'
      ? { kind: 'request', method: message.method, requestUri: message.uri, version: message.version }
      : { kind: 'response', status: message.status, reason: message.reason, version: message.version };
  const contentType = message.contentType;
  const textual = contentType === undefined || contentType.type === 'text' || contentType.subtype.endsWith('+xml');
  return {
    ...startLine,
    callId: message.callId,
    cseq: message.cseq,
    from: formatAddress(message.from),
    to: formatAddress(message.to),
    via: message.vias.map((via) => ({
      transport: via.transport,
      host: via.host,
      port: via.port,
      params: Object.fromEntries(via.params),
    })),
    headers: message.headers.entries().map((row) => [row.name, row.value]),
    bodyLength: message.body.length,
    body: textual ? message.body.toString('utf8') : message.body.toString('base64'),
    bodyEncoding: textual ? 'utf8' : 'base64',
  };
}

function formatAddress(nameAddr: SipMessage['from']): Record<string, unknown> {
  return { displayName: nameAddr.displayName, uri: formatUri(nameAddr.uri), params: Object.fromEntries(nameAddr.params) };
}

function formatHuman(view: Record<string, unknown>): string {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(view)) {
    if (key === 'headers') continue;
    lines.push(`${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
  }
  return `${lines.join('\n')}\n`;
}
