/**
 * The SIP log a user opens to see why something did not work: the last N SIP messages in and
 * out, from the user agent's trace hook, in a ring buffer (memory stays bounded however long
 * the app runs).
 *
 * Messages are shown as text. A body that is not text (S/MIME, a file) is replaced by
 * `[N bytes of TYPE]`; a long message is cut at 16 KiB. Passwords never travel in SIP (digest
 * sends a hash), so nothing secret reaches this log.
 */
import type { SipLogEntry, TransportName } from '../../shared/api.js';

export const SIP_LOG_TEXT_LIMIT = 16 * 1024;

export interface SipTraceInput {
  readonly time: number;
  readonly accountId: string;
  readonly direction: 'in' | 'out';
  readonly transport: TransportName;
  readonly remote: { readonly address: string; readonly port: number };
  readonly data: Uint8Array;
}

export class SipLog {
  private readonly entries: SipLogEntry[] = [];
  private nextId = 1;

  constructor(private readonly capacity = 1000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('the SIP log needs room for at least one entry');
  }

  add(trace: SipTraceInput): SipLogEntry {
    const { summary, text } = describeSipBytes(trace.data);
    const host = trace.remote.address.includes(':') ? `[${trace.remote.address}]` : trace.remote.address;
    const entry: SipLogEntry = {
      id: this.nextId++,
      time: trace.time,
      accountId: trace.accountId,
      direction: trace.direction,
      transport: trace.transport,
      remote: `${host}:${trace.remote.port}`,
      summary,
      text,
      size: trace.data.length,
    };
    this.entries.push(entry);
    if (this.entries.length > this.capacity) this.entries.splice(0, this.entries.length - this.capacity);
    return entry;
  }

  /** The newest `limit` entries, oldest first. */
  list(options: { readonly accountId?: string; readonly limit?: number } = {}): SipLogEntry[] {
    const matching = options.accountId === undefined ? this.entries : this.entries.filter((entry) => entry.accountId === options.accountId);
    return matching.slice(-(options.limit ?? this.capacity));
  }

  clear(): void {
    this.entries.length = 0;
  }
}

/** The start line, and the message as text with a non-text body summarised. */
export function describeSipBytes(data: Uint8Array): { summary: string; text: string } {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const split = bytes.indexOf('\r\n\r\n');
  const headEnd = split < 0 ? bytes.length : split;
  const head = bytes.subarray(0, headEnd).toString('latin1');
  const body = split < 0 ? Buffer.alloc(0) : bytes.subarray(split + 4);
  const firstLine = head.split(/\r?\n/, 1)[0] ?? '';
  const summary = firstLine.trim() === '' ? '(keep-alive)' : firstLine.slice(0, 200);
  const type = /^content-type\s*:\s*([^\r\n;]+)/im.exec(head)?.[1]?.trim().toLowerCase() ?? /^c\s*:\s*([^\r\n;]+)/im.exec(head)?.[1]?.trim().toLowerCase();
  let bodyText = '';
  if (body.length > 0) {
    bodyText = isTextual(type) ? body.toString('utf8') : `[${body.length} bytes${type === undefined ? '' : ` of ${type}`}]`;
  }
  let text = split < 0 ? head : `${head}\r\n\r\n${bodyText}`;
  if (text.length > SIP_LOG_TEXT_LIMIT) text = `${text.slice(0, SIP_LOG_TEXT_LIMIT)}\n[… ${text.length - SIP_LOG_TEXT_LIMIT} more characters]`;
  return { summary, text };
}

function isTextual(type: string | undefined): boolean {
  if (type === undefined) return false;
  return type.startsWith('text/') || type === 'message/cpim' || type === 'message/sipfrag' || type === 'application/sdp' || type.endsWith('+xml');
}
