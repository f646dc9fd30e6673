/**
 * The UAS's table of non-INVITE server transactions (main/sip/ua/server-transactions.ts): the
 * NonInviteServerTransaction rules of RFC 3261 §17.2.2 as the table carries them out, with one
 * clock timer for every Timer J, and merged-request identities (§8.2.2.2).
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_TIMERS, transactionLifetime } from '../../main/sip/transaction/timer-config.js';
import { ServerTransactions, type ServerTransaction } from '../../main/sip/ua/server-transactions.js';
import { ManualClock } from '../support/manual-clock.js';

const J = transactionLifetime(DEFAULT_TIMERS); // 64*T1 = 32 s over UDP

function table(): { clock: ManualClock; servers: ServerTransactions; sent: Array<[string, string]> } {
  const clock = new ManualClock(1000);
  const sent: Array<[string, string]> = [];
  const servers = new ServerTransactions(clock, DEFAULT_TIMERS, (transaction: ServerTransaction, response: Buffer) => {
    sent.push([transaction.key, response.toString()]);
  });
  return { clock, servers, sent };
}

describe('ServerTransactions', () => {
  it('absorbs retransmissions until the final response, then resends it until Timer J (§17.2.2)', () => {
    const { clock, servers, sent } = table();
    const tx = servers.create('k1', 'id1', 'udp', '127.0.0.1', 5062, undefined);
    servers.retransmission(tx);
    expect(sent).toEqual([]); // Trying: absorbed
    servers.respond(tx, 200, Buffer.from('200 one'));
    expect(sent).toEqual([['k1', '200 one']]);
    clock.advance(J - 1);
    servers.retransmission(servers.get('k1') as ServerTransaction);
    expect(sent).toEqual([['k1', '200 one'], ['k1', '200 one']]);
    servers.respond(tx, 500, Buffer.from('500 late')); // Completed: a second final is discarded
    expect(sent).toHaveLength(2);
    clock.advance(1);
    expect(servers.get('k1')).toBeUndefined();
    expect(servers.holderOf('id1')).toBeUndefined();
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
    expect(servers.get('k999')).toBeUndefined();
    expect(servers.get('k1000')).toBeDefined();
    clock.advance(20);
    expect(servers.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('ends a transaction over a reliable transport with its final response (Timer J = 0)', () => {
    const { clock, servers, sent } = table();
    const tx = servers.create('tcp1', 'id', 'tcp', '127.0.0.1', 5062, 'conn-1');
    servers.respond(tx, 200, Buffer.from('ok'));
    expect(sent).toEqual([['tcp1', 'ok']]);
    expect(servers.get('tcp1')).toBeUndefined();
    expect(clock.pendingTimers).toBe(0);
  });

  it('gives an identity to the first live transaction only, and frees it when that one ends (§8.2.2.2)', () => {
    const { clock, servers } = table();
    const first = servers.create('a', 'same', 'udp', '127.0.0.1', 5062, undefined);
    const merged = servers.create('b', 'same', 'udp', '127.0.0.1', 5062, undefined);
    expect(first.ownsIdentity).toBe(true);
    expect(merged.ownsIdentity).toBe(false);
    expect(servers.holderOf('same')).toBe('a');
    servers.respond(merged, 482, Buffer.from('482'));
    servers.respond(first, 200, Buffer.from('200'));
    clock.advance(J);
    expect(servers.holderOf('same')).toBeUndefined();
    expect(servers.size).toBe(0);
  });

  it('terminates a transaction whose response could not be sent (§17.2.4), and its timer stops', () => {
    const { clock, servers } = table();
    const tx = servers.create('k', 'id', 'udp', '127.0.0.1', 5062, undefined);
    servers.respond(tx, 200, Buffer.from('ok'));
    servers.transportError(tx);
    expect(servers.get('k')).toBeUndefined();
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
});
