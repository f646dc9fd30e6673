/**
 * A desk: the desktop core (a Messenger) on its own data dir with one peer-to-peer account on
 * 127.0.0.1, the events it has emitted, and ways to wait for one. The scaffolding of the tests
 * that run Messengers against each other or against raw peers.
 *
 * The Messenger gets exactly the options the test passes (plus its data dir, and
 * `networkPollMs: false` unless given): S/MIME is on unless `security: false` (plaintext-only
 * core), timers are the RFC defaults unless `timers` is given (FAST_SIP_TIMERS for loopback).
 */
import type { Account, ApiEvent, MessageState, NewAccount } from '../../shared/api.js';
import { Messenger, type MessengerOptions } from '../../main/im/messenger.js';
import { forgetIdentity } from '../../main/security/identity-store.js';
import { OsKeychain } from '../../main/security/keychain.js';
import type { TimerConfig } from '../../main/sip/transaction/timer-config.js';
import { tempDir, type Cleanups } from './cleanups.js';
import { eventually } from './eventually.js';
import { freePort } from './processes.js';

/** T1 50 ms, T2 400 ms, T4 500 ms: loopback answers in microseconds, so timeouts come quickly. */
export const FAST_SIP_TIMERS: TimerConfig = { t1: 50, t2: 400, t4: 500 };

/** Account settings for `user` peer to peer on 127.0.0.1:`port` (no registrar, no proxy, UDP), with `overrides`. */
export function peerToPeerAccount(user: string, port: number, overrides: Partial<NewAccount> = {}): NewAccount {
  return {
    sipAddress: `sip:${user}@127.0.0.1:${port}`,
    displayName: '',
    registrar: '',
    outboundProxy: '',
    transport: 'udp',
    register: false,
    authUser: '',
    localAddress: '127.0.0.1',
    localPort: port,
    ...overrides,
  };
}

export interface Desk {
  readonly messenger: Messenger;
  readonly account: Account;
  readonly dataDir: string;
  /** Where the account listens (UDP and TCP). */
  readonly port: number;
  /** Every event the Messenger emitted since it opened, in order. */
  readonly events: ApiEvent[];
  /** The first event (seen already or still to come) that matches; rejects after `ms` of real time. */
  next<T extends ApiEvent>(match: (event: ApiEvent) => event is T, ms?: number): Promise<T>;
  /** Resolves with what `check` returns once it is not undefined, re-checked at each event; rejects after `ms`. */
  until<T>(check: () => T | undefined, ms: number, what: string): Promise<T>;
}

export interface DeskOptions {
  /** Messenger.open options besides the data dir. */
  readonly messenger?: Omit<MessengerOptions, 'dataDir'>;
  /** An existing data dir (e.g. to reopen one); by default a fresh temp dir removed afterwards. */
  readonly dataDir?: string;
  /** The listening port; by default a free one. */
  readonly port?: number;
  /** Changes to the peer-to-peer account settings (e.g. another `sipAddress`, a `password`). */
  readonly account?: Partial<NewAccount>;
  /** How long `next` waits when not told (5000 ms). */
  readonly nextTimeoutMs?: number;
}

/**
 * Opens a desk for `user`; the Messenger is closed, its identity's keychain entry forgotten
 * (with S/MIME on) and its temp data dir removed by `cleanups`.
 */
export async function openDesk(cleanups: Cleanups, user: string, options: DeskOptions = {}): Promise<Desk> {
  const dataDir = options.dataDir ?? tempDir(cleanups, `sipnote-${user}-`);
  const messengerOptions = options.messenger ?? {};
  const messenger = await Messenger.open({ dataDir, networkPollMs: false, ...messengerOptions });
  cleanups.push(() => messenger.close());
  const events: ApiEvent[] = [];
  const listeners = new Set<() => void>();
  messenger.subscribe((event) => {
    events.push(event);
    for (const listener of [...listeners]) listener();
  });
  const subscribe = (listener: () => void): (() => void) => {
    listeners.add(listener);
    return () => listeners.delete(listener);
  };
  const port = options.port ?? (await freePort());
  const settings = peerToPeerAccount(user, port, options.account);
  const account = await messenger.call('accounts.add', settings);
  if (messengerOptions.security !== false) {
    cleanups.push(() => forgetIdentity(dataDir, settings.sipAddress, { keychain: new OsKeychain() }).catch(() => false));
  }
  const seen = (): string => events.map((event) => event.type).join(', ');
  const until = <T>(check: () => T | undefined, ms: number, what: string): Promise<T> => eventually(subscribe, check, ms, what, seen);
  return {
    messenger,
    account,
    dataDir,
    port,
    events,
    until,
    next: <T extends ApiEvent>(match: (event: ApiEvent) => event is T, ms = options.nextTimeoutMs ?? 5000): Promise<T> =>
      until(() => events.find(match), ms, 'a matching event'),
  };
}

/** For `next`: the `message-state` event of message `id` in `state`. */
export const messageInState =
  (id: number, state: MessageState) =>
  (event: ApiEvent): event is Extract<ApiEvent, { type: 'message-state' }> =>
    event.type === 'message-state' && event.message.id === id && event.message.state === state;

/** For `next`: the `message-received` event of a message whose text is `text`. */
export const messageReceived =
  (text: string) =>
  (event: ApiEvent): event is Extract<ApiEvent, { type: 'message-received' }> =>
    event.type === 'message-received' && event.message.text === text;
