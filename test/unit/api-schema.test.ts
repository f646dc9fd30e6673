/**
 * The API gate: every command's arguments are validated (shared/api-schema.ts) and a
 * malformed call is answered `invalid-arguments` before anything reaches the core.
 */
import { describe, expect, it } from 'vitest';
import { COMMAND_NAMES, type CommandName } from '../../shared/api.js';
import { COMMAND_SCHEMAS, LIMITS, validateCommand } from '../../shared/api-schema.js';
import { Messenger } from '../../main/im/messenger.js';
import { openStore } from '../../main/store/index.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';
import { peerToPeerAccount } from '../support/messenger-desk.js';

const ACCOUNT = peerToPeerAccount('alice', 0, { sipAddress: 'sip:alice@example.com', displayName: 'Alice' });

/** One valid argument object per command. */
const VALID: { readonly [C in CommandName]: unknown } = {
  'app.info': {},
  'accounts.list': {},
  'accounts.add': { ...ACCOUNT, password: 'secret' },
  'accounts.update': { id: 'abc_-1', changes: { register: true, registrar: 'sip:example.com' } },
  'accounts.remove': { id: 'abc' },
  'messages.send': { accountId: 'abc', to: 'sip:bob@example.com', text: 'hi' },
  'messages.retry': { messageId: 1 },
  'messages.cancel': { messageId: 2 },
  'conversations.list': {},
  'conversations.history': { conversationId: 1, from: 0, limit: 50 },
  'conversations.markRead': { conversationId: 1 },
  'conversations.setComposing': { conversationId: 1, active: true },
  'search': { query: 'hello', limit: 10 },
  'contacts.list': { accountId: 'abc' },
  'contacts.trust': { contactId: 1, action: 'accept-change' },
  'contacts.setPolicy': { contactId: 1, policy: 'legacy-plaintext' },
  'settings.get': {},
  'settings.update': { theme: 'dark' },
  'sipLog.list': { limit: 100 },
  'sipLog.clear': {},
};

const MALFORMED: ReadonlyArray<readonly [CommandName, unknown, string]> = [
  ['app.info', { extra: 1 }, 'an unknown key'],
  ['app.info', null, 'null'],
  ['accounts.list', [], 'an array'],
  ['accounts.add', { ...ACCOUNT, sipAddress: 'mailto:alice@example.com' }, 'a non-SIP address'],
  ['accounts.add', { ...ACCOUNT, sipAddress: 'sip:alice@example.com\r\nVia: evil' }, 'a header injection'],
  ['accounts.add', { ...ACCOUNT, localPort: 70000 }, 'a port out of range'],
  ['accounts.add', { ...ACCOUNT, localPort: 1.5 }, 'a fractional port'],
  ['accounts.add', { ...ACCOUNT, localAddress: 'example.com' }, 'a host name as listen address'],
  ['accounts.add', { ...ACCOUNT, transport: 'sctp' }, 'an unknown transport'],
  ['accounts.add', { ...ACCOUNT, register: 'yes' }, 'a string for a boolean'],
  ['accounts.add', { ...ACCOUNT, registrar: 'http://example.com' }, 'a non-SIP registrar'],
  ['accounts.add', { ...ACCOUNT, displayName: 'two\nlines' }, 'a line break in the display name'],
  ['accounts.add', { sipAddress: 'sip:a@b' }, 'missing fields'],
  ['accounts.add', { ...ACCOUNT, isAdmin: true }, 'an unknown key'],
  ['accounts.update', { id: 'abc', changes: { localPort: -1 } }, 'a negative port'],
  ['accounts.update', { id: 'abc', changes: { nonsense: 1 } }, 'an unknown key in changes'],
  ['accounts.update', { id: '../etc', changes: {} }, 'a bad id'],
  ['accounts.remove', { id: '' }, 'an empty id'],
  ['messages.send', { accountId: 'abc', to: 'bob@example.com', text: 'hi' }, 'an address without scheme'],
  ['messages.send', { accountId: 'abc', to: 'sip:bob@example.com', text: '' }, 'an empty text'],
  ['messages.send', { accountId: 'abc', to: 'sip:bob@example.com', text: 'x'.repeat(LIMITS.messageText + 1) }, 'a text too long'],
  ['messages.send', { accountId: 'abc', to: `sip:${'b'.repeat(LIMITS.address)}@example.com`, text: 'hi' }, 'an address too long'],
  ['messages.send', { accountId: 'abc', to: 'sip:bob@example.com', text: 42 }, 'a number as text'],
  ['messages.send', { accountId: 'abc', to: 'sip:bob@example.com' }, 'no text'],
  ['messages.retry', { messageId: 0 }, 'id 0'],
  ['messages.retry', { messageId: '1' }, 'a string id'],
  ['messages.cancel', { messageId: Number.MAX_SAFE_INTEGER + 2 }, 'an unsafe integer'],
  ['conversations.history', { conversationId: 1, limit: LIMITS.historyPage + 1 }, 'a page too large'],
  ['conversations.history', { conversationId: 1, from: -1 }, 'a negative position'],
  ['conversations.history', { conversationId: 1, from: Number.NaN }, 'NaN'],
  ['search', { query: '' }, 'an empty query'],
  ['search', { query: 'x'.repeat(LIMITS.search + 1) }, 'a query too long'],
  ['contacts.trust', { contactId: 1, action: 'trust-everything' }, 'an unknown action'],
  ['settings.update', { theme: 'purple' }, 'an unknown theme'],
  ['settings.update', { quickSendShortcut: '' }, 'an empty shortcut'],
  ['sipLog.list', { limit: 0 }, 'limit 0'],
];

describe('validateCommand', () => {
  it('has a schema for every command, and accepts a well-formed call of each', () => {
    expect(Object.keys(COMMAND_SCHEMAS).sort()).toEqual([...COMMAND_NAMES].sort());
    for (const command of COMMAND_NAMES) {
      const result = validateCommand(command, VALID[command]);
      expect(result.ok, `${command}: ${result.ok ? '' : result.error.message}`).toBe(true);
    }
  });

  it.each(MALFORMED.map(([command, args, why]) => ({ command, args, why })))('$command rejects $why', ({ command, args }) => {
    const result = validateCommand(command, args);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.code).toBe('invalid-arguments');
      expect(result.error.issues?.length).toBeGreaterThan(0);
    }
  });

  it('rejects unknown commands, including prototype names', () => {
    for (const command of ['nope', 'constructor', '__proto__', 'toString', 42, null, undefined]) {
      const result = validateCommand(command, {});
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error.code).toBe('unknown-command');
    }
  });

  it('names the field and the reason, without echoing a long value', () => {
    const result = validateCommand('messages.send', { accountId: 'abc', to: `mailto:${'x'.repeat(500)}`, text: 'hi' });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.issues).toEqual(['to: not a sip:, sips: or im: address']);
      expect(result.error.message.length).toBeLessThan(200);
    }
  });
});

const cleanups = cleanupsAfterEach();

describe('Messenger.dispatch', () => {
  it('answers malformed calls invalid-arguments without touching the history, the config or the network', async () => {
    const dir = tempDir(cleanups, 'sipnote-api-');
    const messenger = await Messenger.open({ dataDir: dir, security: false, networkPollMs: false });
    try {
      const events: unknown[] = [];
      messenger.subscribe((event) => events.push(event));
      for (const [command, args] of MALFORMED) {
        const response = await messenger.dispatch(command, args);
        expect(response.ok, `${command} ${JSON.stringify(args).slice(0, 80)}`).toBe(false);
        if (!response.ok) expect(response.error.code).toBe('invalid-arguments');
      }
      expect(events).toEqual([]);
      expect(await messenger.call('accounts.list', {})).toEqual([]);
    } finally {
      await messenger.close();
    }
    // Nothing reached the store: no account, no conversation, no message, no settings.
    const store = openStore(dir);
    try {
      expect(store.accounts.list()).toEqual([]);
      expect(store.conversations.list()).toEqual([]);
      expect(store.messages.history()).toEqual([]);
      expect(store.preferences.get('app')).toBeUndefined();
    } finally {
      store.close();
    }
  });

  it('never throws: an unknown command, a missing account, an unavailable feature are answers', async () => {
    const dir = tempDir(cleanups, 'sipnote-api-');
    const messenger = await Messenger.open({ dataDir: dir, security: false, networkPollMs: false });
    try {
      expect(await messenger.dispatch('rm -rf', {})).toMatchObject({ ok: false, error: { code: 'unknown-command' } });
      expect(await messenger.dispatch('messages.send', { accountId: 'nope', to: 'sip:bob@example.com', text: 'hi' })).toMatchObject({
        ok: false,
        error: { code: 'not-found' },
      });
      expect(await messenger.dispatch('contacts.list', {})).toMatchObject({ ok: false, error: { code: 'not-available' } });
      expect(await messenger.dispatch('app.info', {})).toMatchObject({ ok: true, value: { capabilities: { smime: false, history: 'sqlite' } } });
    } finally {
      await messenger.close();
    }
    expect(await messenger.dispatch('app.info', {})).toMatchObject({ ok: false, error: { code: 'invalid-state' } });
  });
});
