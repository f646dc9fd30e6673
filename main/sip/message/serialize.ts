/**
 * SipMessage -> bytes (RFC 3261 §7).
 *
 * Headers are written in order, one row each, with `Name: value` and CRLF. Content-Length is
 * always written from the body's octet count (never trusted from the header list), since a
 * stale value is the classic framing bug on streams (§18.3, §20.14).
 */
import type { SipMessage } from './sip-message.js';

export function serializeMessage(message: SipMessage): Buffer {
  const startLine =
    message.kind === 'request'
      ? `${message.method} ${message.uri} ${message.version}`
      : `${message.version} ${message.status} ${message.reason}`;
  let head = `${startLine}\r\n`;
  let wroteLength = false;
  for (const row of message.headers.entries()) {
    if (row.key === 'content-length') {
      if (wroteLength) continue;
      wroteLength = true;
      head += `${row.name}: ${message.body.length}\r\n`;
      continue;
    }
    head += `${row.name}: ${row.value}\r\n`;
  }
  if (!wroteLength) head += `Content-Length: ${message.body.length}\r\n`;
  head += '\r\n';
  if (message.body.length === 0) return Buffer.from(head, 'utf8');
  return Buffer.concat([Buffer.from(head, 'utf8'), message.body]);
}
