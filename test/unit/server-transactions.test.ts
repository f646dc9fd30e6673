/**
 * The UAS's table of non-INVITE server transactions (main/sip/ua/server-transactions.ts): the
 * NonInviteServerTransaction rules of RFC 3261 §17.2.2 as the table carries them out (in
 * flight as machines, in Completed over UDP as records), with one clock timer for every
 * Timer J, and merged-request identities (§8.2.2.2). The last test runs random sequences
 * against one plain NonInviteServerTransaction per key.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NonInviteServerTransaction } from '../../main/sip/transaction/non-invite-server.js';
import { DEFAULT_TIMERS, transactionLifetime } from '../../main/sip/transaction/timer-config.js';
import { ServerTransactions, type ResponseRoute, type ServerTransaction } from '../../main/sip/ua/server-transactions.js';
import { ManualClock } from '../support/manual-clock.js';

const J = transactionLifetime(DEFAULT_TIMERS); // 64*T1 = 32 s over UDP

function table(): { clock: ManualClock; servers: ServerTransactions; sent: Array<[string, string]> } {
  const clock = new ManualClock(1000);
  const sent: Array<[string, string]> = [];
  const servers = new ServerTransactions(clock, DEFAULT_TIMERS, (route: ResponseRoute, response: Buffer) => {
    sent.push([route.key, response.toString()]);
  });
  return { clock, servers, sent };
}

describe('ServerTransactions', () => {
  it('absorbs retransmissions until the final response, then resends it until Timer J (§17.2.2)', () => {
    const { clock, servers, sent } = table();
    const tx = servers.create('k1', 'id1', 'udp', '127.0.0.1', 5062, undefined);
    expect(servers.absorbRetransmission('k1')).toBe(true);
    expect(sent).toEqual([]); // Trying: absorbed
    servers.respond(tx, 200, Buffer.from('200 one'));
    expect(sent).toEqual([['k1', '200 one']]);
    clock.advance(J - 1);
    expect(servers.absorbRetransmission('k1')).toBe(true);
    expect(sent).toEqual([['k1', '200 one'], ['k1', '200 one']]);
    servers.respond(tx, 500, Buffer.from('500 late')); // Completed: a second final is discarded
    expect(sent).toHaveLength(2);
    clock.advance(1);
    expect(servers.has('k1')).toBe(false);
    expect(servers.absorbRetransmission('k1')).toBe(false);
    expect(servers.holdsIdentity('id1')).toBe(false);
    expect(servers.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('runs every Timer J on one clock timer, each ending 64*T1 after its own final response', () => {
    const { clock, servers } = table();
    const keys = Array.from({ length: 3000 }, (_, i) => `k${i}`);
    for (const [i, key] of keys.entries()) {
      const tx = servers.create(key, `id${i}`, 'udp', '127.0.0.1', 5062, undefined);
      servers.respond(tx, 200, Buffer.from('ok'));
      if (i % 1000 === 999) clock.advance(10);
    }
    expect(clock.pendingTimers).toBe(1);
    // Answered at 1000, 1010 and 1020 (a thousand each); now it is 1030.
    clock.advance(J - 31);
    expect(servers.size).toBe(3000);
    clock.advance(1); // 1000 + J
    expect(servers.size).toBe(2000);
    expect(servers.has('k999')).toBe(false);
    expect(servers.has('k1000')).toBe(true);
    clock.advance(20);
    expect(servers.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('ends a transaction over a reliable transport with its final response (Timer J = 0)', () => {
    const { clock, servers, sent } = table();
    const tx = servers.create('tcp1', 'id', 'tcp', '127.0.0.1', 5062, 'conn-1');
    servers.respond(tx, 200, Buffer.from('ok'));
    expect(sent).toEqual([['tcp1', 'ok']]);
    expect(servers.has('tcp1')).toBe(false);
    expect(clock.pendingTimers).toBe(0);
  });

  it('gives an identity to the first live transaction only, and frees it when that one ends (§8.2.2.2)', () => {
    const { clock, servers } = table();
    const first = servers.create('a', 'same', 'udp', '127.0.0.1', 5062, undefined);
    const merged = servers.create('b', 'same', 'udp', '127.0.0.1', 5062, undefined);
    expect(first.ownsIdentity).toBe(true);
    expect(merged.ownsIdentity).toBe(false);
    expect(servers.holdsIdentity('same')).toBe(true);
    servers.respond(merged, 482, Buffer.from('482'));
    servers.respond(first, 200, Buffer.from('200'));
    clock.advance(J);
    expect(servers.holdsIdentity('same')).toBe(false);
    expect(servers.size).toBe(0);
  });

  it('terminates a transaction whose response could not be sent (§17.2.4), and its timer stops', () => {
    const { clock, servers } = table();
    const tx = servers.create('k', 'id', 'udp', '127.0.0.1', 5062, undefined);
    servers.respond(tx, 200, Buffer.from('ok'));
    servers.transportError(tx);
    expect(servers.has('k')).toBe(false);
    const later = servers.create('k2', 'id2', 'udp', '127.0.0.1', 5062, undefined);
    servers.respond(later, 200, Buffer.from('ok'));
    clock.advance(J);
    expect(servers.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('ignores everything after close', () => {
    const { clock, servers, sent } = table();
    const tx = servers.create('k', 'id', 'udp', '127.0.0.1', 5062, undefined);
    servers.close();
    servers.respond(tx, 200, Buffer.from('ok'));
    expect(sent).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('sends the final response again to a retransmission in Completed, to the address it came from', () => {
    const { servers } = table();
    const routes: ResponseRoute[] = [];
    const clock = new ManualClock(0);
    const routed = new ServerTransactions(clock, DEFAULT_TIMERS, (route) => routes.push(route));
    const tx = routed.create('k', 'id', 'udp', '::1', 5070, undefined);
    routed.respond(tx, 202, Buffer.from('202'));
    expect(routed.absorbRetransmission('k')).toBe(true);
    expect(routes.map(({ key, transport, address, port }) => ({ key, transport, address, port }))).toEqual([
      { key: 'k', transport: 'udp', address: '::1', port: 5070 },
      { key: 'k', transport: 'udp', address: '::1', port: 5070 },
    ]);
    // A transport error on the resend ends it (§17.2.4).
    routed.transportError(routes[1]!);
    expect(routed.has('k')).toBe(false);
    expect(routed.holdsIdentity('id')).toBe(false);
    expect(servers.size).toBe(0);
  });

  it('does what one NonInviteServerTransaction per key does, over random inputs (model test)', () => {
    type Input =
      | { kind: 'request'; key: number; identity: number; udp: boolean }
      | { kind: 'respond'; key: number; status: number }
      | { kind: 'transport-error'; key: number }
      | { kind: 'advance'; ms: number };
    const input: fc.Arbitrary<Input> = fc.oneof(
      fc.record({ kind: fc.constant('request' as const), key: fc.nat(5), identity: fc.nat(3), udp: fc.boolean() }),
      fc.record({ kind: fc.constant('respond' as const), key: fc.nat(5), status: fc.constantFrom(100, 200, 202, 482, 500) }),
      fc.record({ kind: fc.constant('transport-error' as const), key: fc.nat(5) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: J }) }),
    );
    fc.assert(
      fc.property(fc.array(input, { maxLength: 80 }), (inputs) => {
        const { clock, servers, sent } = table();
        const handles = new Map<string, ServerTransaction>();
        // The model: one machine per live key, with its identity if it holds one.
        const model = new Map<string, { machine: NonInviteServerTransaction<string, string>; identity: string | undefined }>();
        const expected: Array<[string, string]> = [];
        const settle = (key: string, events: ReturnType<NonInviteServerTransaction<string, string>['respond']>): void => {
          for (const event of events) {
            if (event.type === 'send') expected.push([key, event.response]);
            if (event.type === 'terminated') model.delete(key);
          }
        };
        for (const step of inputs) {
          if (step.kind === 'advance') {
            clock.advance(step.ms);
            for (const [key, entry] of [...model]) settle(key, entry.machine.handleTimeout(clock.now()));
          } else if (step.kind === 'request') {
            const key = `key${step.key}`;
            const absorbed = servers.absorbRetransmission(key);
            const live = model.get(key);
            expect(absorbed).toBe(live !== undefined);
            if (live !== undefined) {
              settle(key, live.machine.receiveRequestRetransmission(clock.now()));
            } else {
              const identity = `id${step.identity}`;
              const owns = ![...model.values()].some((entry) => entry.identity === identity);
              const tx = servers.create(key, identity, step.udp ? 'udp' : 'tcp', '127.0.0.1', 5060, step.udp ? undefined : 'c1');
              expect(tx.ownsIdentity).toBe(owns);
              handles.set(key, tx);
              model.set(key, { machine: new NonInviteServerTransaction(key, { reliable: !step.udp, timers: DEFAULT_TIMERS }), identity: owns ? identity : undefined });
            }
          } else {
            const key = `key${step.key}`;
            const tx = handles.get(key);
            const live = model.get(key);
            if (tx === undefined) continue;
            if (step.kind === 'respond') {
              if (step.status === 100 && tx.transport === 'udp') continue; // RFC 4320 §4.1 forbids an early 100 over UDP (a TU bug the machine throws on)
              servers.respond(tx, step.status, Buffer.from(`${step.status} ${key}`));
              // A handle whose transaction has ended: the table discards the response, as the machine would.
              if (live !== undefined) settle(key, live.machine.respond(step.status, `${step.status} ${key}`, clock.now()));
            } else {
              servers.transportError(tx);
              if (live !== undefined) settle(key, live.machine.transportError(clock.now()));
            }
          }
          expect(sent).toEqual(expected);
          expect(servers.size).toBe(model.size);
          for (let k = 0; k <= 5; k++) expect(servers.has(`key${k}`)).toBe(model.has(`key${k}`));
          for (let i = 0; i <= 3; i++) expect(servers.holdsIdentity(`id${i}`)).toBe([...model.values()].some((entry) => entry.identity === `id${i}`));
        }
      }),
      { numRuns: 300 },
    );
  });
});
