/**
 * "The network came back", as a signal the outbox can act on (outbox-worker.ts `flush`).
 *
 * Node has no portable event for it, so the core polls `os.networkInterfaces()` on the
 * injected clock and reports a change in the set of addresses of the non-loopback interfaces:
 * an interface that comes up, gets a DHCP lease, joins another Wi-Fi or a VPN changes that set,
 * and each of those is a moment when a message that failed for want of a route may now get
 * through. The cost is one system call every few seconds. A shell that knows better (Electron's
 * `powerMonitor` "resume" and `net.online`) calls `Messenger.networkChanged()` directly; both
 * signals end in the same flush, and a flush with nothing to send costs one query.
 */
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import type { Clock } from '../sip/transaction/clock.js';

export const DEFAULT_NETWORK_POLL_MS = 5000;

export interface NetworkWatchOptions {
  readonly intervalMs?: number;
  /** The interfaces (tests inject a list). */
  readonly interfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
}

/** Calls `onChange` after each poll that finds a different set of addresses. Returns the stop function. */
export function watchNetwork(clock: Clock, onChange: () => void, options: NetworkWatchOptions = {}): () => void {
  const interval = options.intervalMs ?? DEFAULT_NETWORK_POLL_MS;
  const read = options.interfaces ?? networkInterfaces;
  let last = addressesOf(read());
  let cancel: (() => void) | undefined;
  let stopped = false;
  const poll = (): void => {
    if (stopped) return;
    const current = addressesOf(read());
    if (current !== last) {
      last = current;
      onChange();
    }
    arm();
  };
  const arm = (): void => {
    if (!stopped) cancel = clock.setTimer(clock.now() + interval, poll);
  };
  arm();
  return () => {
    stopped = true;
    cancel?.();
  };
}

/** The external addresses, one text, in a stable order. */
export function addressesOf(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): string {
  const addresses: string[] = [];
  for (const [name, infos] of Object.entries(interfaces)) {
    for (const info of infos ?? []) if (!info.internal) addresses.push(`${name} ${info.family} ${info.address}`);
  }
  return addresses.sort().join('\n');
}
