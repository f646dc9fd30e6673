/**
 * `sipnote send --from URI --to URI [--transport udp|tcp] [--listen SPEC] [--plaintext] [--json]
 *               [--content-type T] [--congestion-safe-path] TEXT|-`
 *
 * Exit codes: 0 a 2xx came back; 1 a final non-2xx, or the message was refused before sending
 * (too large for the path); 3 timeout or transport failure; 2 usage error (main.ts).
 */
import { DestinationError, MessageTooLargeError } from '../sip/ua/errors.js';
import type { SipTransportName } from '../sip/ua/message-request.js';
import { UserAgent } from '../sip/ua/user-agent.js';
import type { ListenSpec } from '../sip/transport/transport-layer.js';
import type { SendSummary } from '../../shared/cli-events.js';
import { accountAgentOptions, type AccountArgs } from './account-options.js';
import { readAllStdin, traceTo, type CommandIo } from './io.js';

export interface SendArgs {
  from: string;
  account: AccountArgs;
  to: string;
  text: string;
  transport?: SipTransportName;
  listen: ListenSpec[];
  json: boolean;
  plaintext: boolean;
  contentType: string;
  congestionSafePath: boolean;
  t1?: number;
  verbose: boolean;
  /** Print every SIP message on stderr. */
  trace: boolean;
}

export async function sendCommand(args: SendArgs, io: CommandIo): Promise<number> {
  const body = args.text === '-' ? await readAllStdin(io.stdin) : Buffer.from(args.text, 'utf8');
  if (!args.plaintext) {
    io.stderr.write('sipnote: S/MIME is not built yet (issue #4): this message is sent as plaintext\n');
  }
  const agent = await UserAgent.start({
    aor: args.from,
    listen: args.listen,
    ...(await accountAgentOptions(args.account, args.from, io)),
    congestionSafePath: args.congestionSafePath,
    ...(args.t1 === undefined ? {} : { timers: { t1: args.t1, t2: Math.max(args.t1 * 8, args.t1), t4: args.t1 * 10 } }),
    ...(args.verbose ? { onDiagnostic: (text: string) => io.stderr.write(`sipnote: ${text}\n`) } : {}),
    ...(args.trace ? { onTrace: traceTo(io) } : {}),
  });
  try {
    const result = await agent.sendMessage({
      to: args.to,
      body,
      contentType: args.contentType,
      ...(args.transport === undefined ? {} : { transport: args.transport }),
    });
    const summary: SendSummary = {
      status: result.status,
      reason: result.reason,
      outcome: result.outcome,
      callId: result.callId,
      transport: result.transport,
      ...(result.retryAfter === undefined ? {} : { retryAfter: result.retryAfter }),
      ...(result.authFailure === undefined ? {} : { authFailure: result.authFailure }),
    };
    io.stdout.write(args.json ? `${JSON.stringify(summary)}\n` : `${result.status} ${result.reason} (${result.outcome})\n`);
    if (result.status >= 200 && result.status < 300) return 0;
    if (result.outcome === 'timeout' || result.outcome === 'transport-error') {
      io.stderr.write(`sipnote: ${result.outcome === 'timeout' ? 'no response from' : 'could not reach'} ${args.to}\n`);
      return 3;
    }
    const why = result.authFailure === undefined ? '' : ` (${result.authFailure})`;
    io.stderr.write(`sipnote: not delivered: ${result.status} ${result.reason}${why}\n`);
    return 1;
  } catch (error) {
    if (error instanceof MessageTooLargeError || error instanceof DestinationError) {
      io.stderr.write(`sipnote: ${error.message}\n`);
      return error instanceof DestinationError && error.unreachable ? 3 : 1;
    }
    throw error;
  } finally {
    await agent.close();
  }
}
