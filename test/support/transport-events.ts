/** Waiting on a TransportLayer in tests: its bound ports, its next event of a kind, and its refusals. */
import { expect } from 'vitest';
import { TransportError } from '../../main/sip/transport/transport-error.js';
import type { TransportLayer, TransportLayerEvents } from '../../main/sip/transport/transport-layer.js';
import { within } from './within.js';

export function portOf(layer: TransportLayer, transport: 'udp' | 'tcp' | 'tls'): number {
  const found = layer.localAddresses().find((a) => a.transport === transport);
  if (!found) throw new Error(`no ${transport} listener`);
  return found.port;
}

export type EventArg<K extends keyof TransportLayerEvents> = TransportLayerEvents[K][0];

/** The next `event` matching `accept`, or a rejection after `ms` (a bound, not a sleep). */
export function nextEvent<K extends keyof TransportLayerEvents>(
  layer: TransportLayer,
  event: K,
  accept: (arg: EventArg<K>) => boolean = () => true,
  ms = 5000,
): Promise<EventArg<K>> {
  return new Promise((resolve, reject) => {
    const on = layer.on.bind(layer) as (e: K, l: (arg: EventArg<K>) => void) => void;
    const off = layer.off.bind(layer) as (e: K, l: (arg: EventArg<K>) => void) => void;
    const timer = setTimeout(() => {
      off(event, listener);
      reject(new Error(`no '${String(event)}' event within ${ms} ms`));
    }, ms);
    const listener = (arg: EventArg<K>): void => {
      if (!accept(arg)) return;
      clearTimeout(timer);
      off(event, listener);
      resolve(arg);
    };
    on(event, listener);
  });
}

/** Expects `promise` to reject (within 15 s) with a TransportError of `code`, and returns it. */
export async function expectTransportError(promise: Promise<unknown>, code: TransportError['code']): Promise<TransportError> {
  const error = await within(promise.then(() => undefined, (e: unknown) => e), 15_000, 'expected rejection');
  expect(error).toBeInstanceOf(TransportError);
  expect((error as TransportError).code).toBe(code);
  return error as TransportError;
}
