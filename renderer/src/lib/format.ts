/** Words and times as the user reads them. */
import type { MessageState, MessageView, RegistrationState, SecurityLabel } from '../../../shared/api.js';

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** `14:05` today, `Mar 3 14:05` before. */
export function shortTime(ms: number, now = Date.now()): string {
  const date = new Date(ms);
  const today = new Date(now);
  const sameDay = date.getFullYear() === today.getFullYear() && date.getMonth() === today.getMonth() && date.getDate() === today.getDate();
  return sameDay ? timeFormat.format(date) : `${dayFormat.format(date)} ${timeFormat.format(date)}`;
}

/** `14:05` today, `Mar 3` before: for the conversation list. */
export function listTime(ms: number, now = Date.now()): string {
  const date = new Date(ms);
  const today = new Date(now);
  const sameDay = date.getFullYear() === today.getFullYear() && date.getMonth() === today.getMonth() && date.getDate() === today.getDate();
  return sameDay ? timeFormat.format(date) : dayFormat.format(date);
}

export function fullTime(ms: number): string {
  return fullFormat.format(new Date(ms));
}

export const STATE_LABELS: Readonly<Record<MessageState, string>> = {
  queued: 'Queued',
  sending: 'Sending…',
  accepted: 'Accepted by server',
  delivered: 'Delivered',
  displayed: 'Displayed',
  failed: 'Failed',
  cancelled: 'Cancelled',
  received: 'Received',
};

/** What a state means, for the tooltip and screen readers (RFC 3428 §4, §7). */
export const STATE_DESCRIPTIONS: Readonly<Record<MessageState, string>> = {
  queued: 'Stored, waiting to be sent',
  sending: 'On its way',
  accepted: 'A server stored it (202 Accepted); it has not reached the recipient yet',
  delivered: "The recipient's device took it (200 OK); not necessarily read",
  displayed: 'The recipient displayed it',
  failed: 'Not delivered',
  cancelled: 'You gave up on it',
  received: 'Received',
};

export const SECURITY_LABELS: Readonly<Record<SecurityLabel, { readonly short: string; readonly long: string }>> = {
  'encrypted-signed': { short: 'Encrypted', long: 'Encrypted and signed; the signature was verified' },
  encrypted: { short: 'Encrypted, unsigned', long: 'Encrypted, but not signed: the sender is not proven' },
  signed: { short: 'Signed only', long: 'Signed and verified, but not encrypted: anyone on the path could read it' },
  plaintext: { short: 'Plaintext', long: 'Not encrypted and not signed: anyone on the path could read or change it' },
};

export function registrationText(state: RegistrationState): string {
  switch (state.state) {
    case 'disabled':
      return 'Peer to peer';
    case 'registering':
      return 'Registering…';
    case 'registered':
      return 'Registered';
    case 'failed':
      return `Registration failed: ${state.status} ${state.reason}${state.retryIn === undefined ? '' : ` (retrying in ${state.retryIn} s)`}`;
    case 'unregistered':
      return 'Not registered';
  }
}

/** `sip:bob@example.com` → `bob@example.com`; a display name wins. */
export function peerName(peer: string, displayName?: string): string {
  if (displayName !== undefined && displayName !== '') return displayName;
  return peer.replace(/^(sips?|im):/i, '');
}

/** Initials for the avatar. */
export function initials(name: string): string {
  const clean = name.replace(/@.*$/, '').replace(/[^\p{L}\p{N} ._-]/gu, '');
  const words = clean.split(/[ ._-]+/).filter((word) => word !== '');
  const letters = words.length >= 2 ? `${words[0]?.[0] ?? ''}${words[1]?.[0] ?? ''}` : clean.slice(0, 2);
  return letters.toUpperCase() || '?';
}

/** A typed address: `bob@example.com` becomes `sip:bob@example.com`. */
export function normalizeAddress(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return trimmed;
  return /^(sips?|im):/i.test(trimmed) ? trimmed : `sip:${trimmed}`;
}

export function preview(message: MessageView | undefined): string {
  if (message === undefined) return '';
  const text = message.text.replace(/\s+/g, ' ').trim();
  return message.direction === 'out' ? `You: ${text}` : text;
}
