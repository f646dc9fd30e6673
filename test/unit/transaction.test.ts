/**
 * Non-INVITE client and server transactions (RFC 3261 §17.1.2, §17.2.2, RFC 4320 §4) on
 * virtual time: every schedule below is checked to the millisecond against the RFC.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { ManualClock } from '../support/manual-clock.js';
import { systemClock } from '../../main/sip/transaction/clock.js';
import { TransactionDriver } from '../../main/sip/transaction/driver.js';
import {
  NonInviteClientTransaction,
  type ClientEvent,
  type NonInviteClientOptions,
} from '../../main/sip/transaction/non-invite-client.js';
import {
  NonInviteServerTransaction,
  type NonInviteServerOptions,
  type ServerEvent,
} from '../../main/sip/transaction/non-invite-server.js';
import {
  DEFAULT_TIMERS,
  timeUntilTimerEReachesT2,
  type TimerConfig,
} from '../../main/sip/transaction/timer-config.js';
import { TransactionUsageError } from '../../main/sip/transaction/usage-error.js';

/** Requests and responses are opaque to the machines; strings make the logs readable. */
type Req = string;
type Res = string;
type Logged<E> = { at: number; event: E };

const REQUEST = 'MESSAGE sip:bob@example.com';
const UDP = { reliable: false } as const;
const TCP = { reliable: true } as const;

function clientOnClock(options: NonInviteClientOptions) {
  const clock = new ManualClock();
  const log: Logged<ClientEvent<Req, Res>>[] = [];
  const tx = new NonInviteClientTransaction<Req, Res>(REQUEST, options);
  const driver = new TransactionDriver(tx, clock, (event) => log.push({ at: clock.now(), event }));
  const respond = (status: number) => driver.feed((t, now) => t.receiveResponse(status, `${status}`, now));
  const timesOf = (type: ClientEvent<Req, Res>['type']) => log.filter((e) => e.event.type === type).map((e) => e.at);
  return { clock, tx, driver, log, respond, timesOf };
}

function serverOnClock(options: NonInviteServerOptions<Res>) {
  const clock = new ManualClock();
  const log: Logged<ServerEvent<Res>>[] = [];
  const tx = new NonInviteServerTransaction<Req, Res>(REQUEST, options);
  const driver = new TransactionDriver(tx, clock, (event) => log.push({ at: clock.now(), event }));
  const respond = (status: number, response = `${status}`) => driver.feed((t, now) => t.respond(status, response, now));
  const retransmission = () => driver.feed((t, now) => t.receiveRequestRetransmission(now));
  const sent = () => log.flatMap((e) => (e.event.type === 'send' ? [{ at: e.at, response: e.event.response }] : []));
  return { clock, tx, driver, log, respond, retransmission, sent };
}

/**
 * The request transmission times RFC 3261 §17.1.2.2 prescribes for an unanswered request over
 * UDP, computed straight from the text: first at 0, Timer E then fires after T1, and each time
 * it fires in Trying it is reset to min(2 × previous, T2), until Timer F (64*T1) ends it all.
 */
function rfcTryingSchedule(timers: TimerConfig): number[] {
  const times = [0];
  const timerF = 64 * timers.t1;
  for (let at = timers.t1, interval = timers.t1; at < timerF; ) {
    times.push(at);
    interval = Math.min(2 * interval, timers.t2);
    at += interval;
  }
  return times;
}

describe('timer configuration (RFC 3261 Table 4)', () => {
  it('defaults to T1 = 500 ms, T2 = 4 s, T4 = 5 s', () => {
    expect(DEFAULT_TIMERS).toEqual({ t1: 500, t2: 4000, t4: 5000 });
  });

  it('Timer E reaches T2 after T1 + 2T1 + 4T1 = 3.5 s with the defaults (RFC 4320 §4.1)', () => {
    expect(timeUntilTimerEReachesT2(DEFAULT_TIMERS)).toBe(3500);
    expect(timeUntilTimerEReachesT2({ t1: 100, t2: 4000, t4: 5000 })).toBe(6300); // 100+200+…+3200
  });

  it('rejects non-positive timer values', () => {
    expect(() => new NonInviteClientTransaction(REQUEST, { reliable: false, timers: { t1: 0, t2: 4000, t4: 5000 } })).toThrow(
      RangeError,
    );
    expect(() => new NonInviteServerTransaction(REQUEST, { reliable: false, timers: { t1: 500, t2: NaN, t4: 5000 } })).toThrow(
      RangeError,
    );
  });
});

describe('non-INVITE client transaction (RFC 3261 §17.1.2)', () => {
  it('over UDP retransmits at T1, 2T1, 4T1 … capped at T2, and times out at 64*T1 with no final', () => {
    const { clock, tx, driver, log, timesOf } = clientOnClock(UDP);
    driver.feed((t, now) => t.start(now));
    expect(tx.state).toBe('trying');

    clock.advance(40_000);

    const expected = [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500];
    expect(rfcTryingSchedule(DEFAULT_TIMERS)).toEqual(expected); // the helper itself follows the RFC
    expect(timesOf('send')).toEqual(expected);
    expect(log.slice(-2)).toEqual([
      { at: 32_000, event: { type: 'timeout' } },
      { at: 32_000, event: { type: 'terminated' } },
    ]);
    expect(log.filter((e) => e.event.type === 'final' || e.event.type === 'provisional')).toEqual([]);
    expect(tx.state).toBe('terminated');
    expect(tx.pollTimeout()).toBeUndefined();
    expect(clock.pendingTimers).toBe(0);
  });

  it('follows the same RFC schedule for any T1 and T2', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 1, max: 20_000 }), (t1, t2) => {
        const timers = { t1, t2, t4: 5000 };
        const { clock, driver, timesOf } = clientOnClock({ reliable: false, timers });
        driver.feed((t, now) => t.start(now));
        clock.advance(64 * t1 + 1);
        expect(timesOf('send')).toEqual(rfcTryingSchedule(timers));
        expect(timesOf('timeout')).toEqual([64 * t1]);
      }),
      { numRuns: 200 },
    );
  });

  it('moves to Proceeding on a 1xx and then retransmits every T2 until Timer F', () => {
    const { clock, tx, driver, log, respond, timesOf } = clientOnClock(UDP);
    driver.feed((t, now) => t.start(now));
    clock.advance(600);
    respond(100);
    expect(tx.state).toBe('proceeding');
    expect(log.at(-1)).toEqual({ at: 600, event: { type: 'provisional', response: '100' } });

    clock.advance(40_000);
    // Timer E armed in Trying for 1500 still fires then; from there it is reset to T2 (§17.1.2.2).
    expect(timesOf('send')).toEqual([0, 500, 1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500]);
    expect(timesOf('timeout')).toEqual([32_000]);
    expect(timesOf('terminated')).toEqual([32_000]);
  });

  it('passes every 1xx in Proceeding to the TU', () => {
    const { clock, tx, driver, respond, timesOf } = clientOnClock(UDP);
    driver.feed((t, now) => t.start(now));
    respond(100);
    clock.advance(1000);
    respond(180);
    expect(tx.state).toBe('proceeding');
    expect(timesOf('provisional')).toEqual([0, 1000]);
  });

  it('stops retransmitting on a final response, absorbs its retransmissions, and ends at Timer K = T4 over UDP', () => {
    const { clock, tx, driver, log, respond, timesOf } = clientOnClock(UDP);
    driver.feed((t, now) => t.start(now));
    clock.advance(2000);
    respond(200);
    expect(tx.state).toBe('completed');
    expect(log.at(-1)).toEqual({ at: 2000, event: { type: 'final', response: '200' } });

    clock.advance(1000);
    respond(200); // retransmission of the final: absorbed
    respond(100); // late provisional: absorbed
    expect(log.at(-1)?.at).toBe(2000);

    clock.advance(60_000);
    expect(timesOf('send')).toEqual([0, 500, 1500]);
    expect(timesOf('final')).toEqual([2000]);
    expect(timesOf('terminated')).toEqual([2000 + 5000]);
    expect(timesOf('timeout')).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('over TCP sends once, never retransmits, and terminates at once on a final (Timer K = 0)', () => {
    const { clock, tx, driver, log, respond, timesOf } = clientOnClock(TCP);
    driver.feed((t, now) => t.start(now));
    clock.advance(10_000);
    respond(100);
    clock.advance(5000);
    respond(404);
    expect(tx.state).toBe('terminated');
    expect(log.slice(-2)).toEqual([
      { at: 15_000, event: { type: 'final', response: '404' } },
      { at: 15_000, event: { type: 'terminated' } },
    ]);
    expect(timesOf('send')).toEqual([0]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('over TCP still times out at 64*T1, having sent the request only once', () => {
    const { clock, driver, timesOf } = clientOnClock(TCP);
    driver.feed((t, now) => t.start(now));
    clock.advance(40_000);
    expect(timesOf('send')).toEqual([0]);
    expect(timesOf('timeout')).toEqual([32_000]);
  });

  it('reports a transport error once and terminates, in Trying and in Proceeding', () => {
    for (const provisionalFirst of [false, true]) {
      const { clock, tx, driver, log, respond, timesOf } = clientOnClock(UDP);
      driver.feed((t, now) => t.start(now));
      clock.advance(700);
      if (provisionalFirst) respond(100);
      driver.feed((t, now) => t.transportError(now));
      expect(tx.state).toBe('terminated');
      expect(log.slice(-2).map((e) => e.event)).toEqual([{ type: 'transport-error' }, { type: 'terminated' }]);
      driver.feed((t, now) => t.transportError(now));
      respond(200);
      clock.advance(60_000);
      expect(timesOf('send')).toEqual([0, 500]);
      expect(timesOf('transport-error')).toEqual([700]);
      expect(timesOf('final')).toEqual([]);
      expect(timesOf('timeout')).toEqual([]);
    }
  });

  it('ignores a transport error after the final response', () => {
    const tx = new NonInviteClientTransaction<Req, Res>(REQUEST, UDP);
    tx.start(0);
    tx.receiveResponse(200, '200', 100);
    expect(tx.transportError(200)).toEqual([]);
    expect(tx.state).toBe('completed');
  });

  it('ignores a final response that arrives after Timer F', () => {
    const tx = new NonInviteClientTransaction<Req, Res>(REQUEST, UDP);
    tx.start(0);
    expect(tx.handleTimeout(32_000).filter((e) => e.type === 'timeout')).toHaveLength(1);
    expect(tx.receiveResponse(200, '200', 32_001)).toEqual([]);
    expect(tx.receiveResponse(100, '100', 32_002)).toEqual([]);
    expect(tx.state).toBe('terminated');
  });

  it('is safe to poll early or late: early does nothing, late fires each overdue timer once', () => {
    const tx = new NonInviteClientTransaction<Req, Res>(REQUEST, UDP);
    expect(tx.pollTimeout()).toBeUndefined(); // nothing runs before start
    tx.start(1000);
    expect(tx.pollTimeout()).toBe(1500);
    expect(tx.handleTimeout(1499)).toEqual([]);
    // The event loop stalled for 9 s: one retransmission, not a burst, and E goes on from now.
    expect(tx.handleTimeout(10_000)).toEqual([{ type: 'send', request: REQUEST }]);
    expect(tx.pollTimeout()).toBe(11_000);
    // Late past Timer F: the overdue E (11 000) comes before F (33 000), so one last resend,
    // then the timeout.
    expect(tx.handleTimeout(40_000)).toEqual([{ type: 'send', request: REQUEST }, { type: 'timeout' }, { type: 'terminated' }]);
    expect(tx.handleTimeout(50_000)).toEqual([]);
  });

  it('lets Timer F win over Timer E when both are due at the same instant', () => {
    // T1 = 100, T2 = 100: E fires every 100 ms, so it is due exactly at F = 6400.
    const tx = new NonInviteClientTransaction<Req, Res>(REQUEST, { reliable: false, timers: { t1: 100, t2: 100, t4: 500 } });
    tx.start(0);
    for (let now = 100; now < 6400; now += 100) tx.handleTimeout(now);
    expect(tx.handleTimeout(6400)).toEqual([{ type: 'timeout' }, { type: 'terminated' }]);
  });

  it('refuses misuse: start twice, input before start, impossible status codes', () => {
    const tx = new NonInviteClientTransaction<Req, Res>(REQUEST, UDP);
    expect(() => tx.receiveResponse(200, '200', 0)).toThrow(TransactionUsageError);
    expect(() => tx.transportError(0)).toThrow(TransactionUsageError);
    tx.start(0);
    expect(() => tx.start(1)).toThrow(TransactionUsageError);
    expect(() => tx.receiveResponse(99, 'x', 1)).toThrow(RangeError);
    expect(() => tx.receiveResponse(700, 'x', 1)).toThrow(RangeError);
    expect(() => tx.receiveResponse(200.5, 'x', 1)).toThrow(RangeError);
    expect(tx.state).toBe('trying');
  });
});

describe('non-INVITE server transaction (RFC 3261 §17.2.2, RFC 4320)', () => {
  it('absorbs request retransmissions in Trying', () => {
    const { tx, retransmission, log } = serverOnClock(UDP);
    retransmission();
    retransmission();
    expect(log).toEqual([]);
    expect(tx.state).toBe('trying');
  });

  it('replays the last provisional in Proceeding', () => {
    const { tx, respond, retransmission, sent } = serverOnClock(TCP);
    respond(100, '100 first');
    expect(tx.state).toBe('proceeding');
    respond(100, '100 second');
    retransmission();
    expect(sent().map((s) => s.response)).toEqual(['100 first', '100 second', '100 second']);
  });

  it('sends the final, replays it on every retransmission in Completed, and ends at Timer J = 64*T1 over UDP', () => {
    const { clock, tx, respond, retransmission, sent, log } = serverOnClock(UDP);
    clock.advance(100);
    respond(200, '200 OK');
    expect(tx.state).toBe('completed');
    clock.advance(1000);
    retransmission();
    clock.advance(20_000);
    retransmission();
    expect(sent()).toEqual([
      { at: 100, response: '200 OK' },
      { at: 1100, response: '200 OK' },
      { at: 21_100, response: '200 OK' },
    ]);
    clock.advance(60_000);
    expect(log.filter((e) => e.event.type === 'terminated').map((e) => e.at)).toEqual([100 + 32_000]);
    expect(tx.state).toBe('terminated');
    retransmission(); // a stray retransmission after J: the caller would start a new transaction
    expect(sent()).toHaveLength(3);
    expect(clock.pendingTimers).toBe(0);
  });

  it('terminates at once over TCP (Timer J = 0)', () => {
    const { clock, tx, respond, log } = serverOnClock(TCP);
    clock.advance(50);
    respond(486);
    expect(tx.state).toBe('terminated');
    expect(log).toEqual([
      { at: 50, event: { type: 'send', response: '486' } },
      { at: 50, event: { type: 'terminated' } },
    ]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('does not send a second final response after Completed', () => {
    const { clock, respond, retransmission, sent, log } = serverOnClock(UDP);
    respond(200, '200 OK');
    respond(500, '500 late');
    respond(100, '100 late');
    retransmission();
    expect(sent().map((s) => s.response)).toEqual(['200 OK', '200 OK']);
    expect(log.filter((e) => e.event.type === 'response-discarded').map((e) => e.event)).toEqual([
      { type: 'response-discarded', response: '500 late', reason: 'completed' },
      { type: 'response-discarded', response: '100 late', reason: 'completed' },
    ]);
    clock.advance(32_000);
    respond(202, '202 later still');
    expect(log.at(-1)?.event).toEqual({ type: 'response-discarded', response: '202 later still', reason: 'terminated' });
  });

  it('moves from Proceeding to Completed on a final', () => {
    const { tx, respond, retransmission, sent } = serverOnClock(TCP);
    respond(100);
    respond(200);
    expect(tx.state).toBe('terminated'); // TCP: Completed is left at once
    retransmission();
    expect(sent().map((s) => s.response)).toEqual(['100', '200']);
  });

  it('informs the TU of a transport error and terminates (§17.2.4)', () => {
    for (const before of [[], [200]] as const) {
      const { tx, driver, respond, retransmission, log, clock } = serverOnClock(UDP);
      for (const status of before) respond(status);
      driver.feed((t, now) => t.transportError(now));
      expect(tx.state).toBe('terminated');
      expect(log.slice(-2).map((e) => e.event)).toEqual([{ type: 'transport-error' }, { type: 'terminated' }]);
      const length = log.length;
      driver.feed((t, now) => t.transportError(now));
      retransmission();
      expect(log).toHaveLength(length);
      expect(clock.pendingTimers).toBe(0);
    }
  });

  describe('RFC 4320 §4 rules for provisional and 408 responses', () => {
    it('refuses provisional responses other than 100 (§4.1)', () => {
      const { tx, respond, log } = serverOnClock(TCP);
      for (const status of [101, 180, 183, 199]) expect(() => respond(status)).toThrow(TransactionUsageError);
      expect(tx.state).toBe('trying');
      expect(log).toEqual([]);
    });

    it('refuses 408 (§4.2)', () => {
      const { tx, respond } = serverOnClock(UDP);
      expect(() => respond(408)).toThrow(TransactionUsageError);
      expect(tx.state).toBe('trying');
      respond(200);
      expect(tx.state).toBe('completed');
    });

    it('refuses a 100 over UDP before the client Timer E would reach T2, and allows it from then on (§4.1)', () => {
      const { clock, tx, respond, sent } = serverOnClock({ reliable: false, receivedAt: 1000 });
      clock.advanceTo(4499);
      expect(() => respond(100)).toThrow(TransactionUsageError);
      expect(tx.state).toBe('trying');
      clock.advanceTo(4500);
      respond(100);
      expect(sent()).toEqual([{ at: 4500, response: '100' }]);
    });

    it('allows a 100 over a reliable transport at any time (§4.1)', () => {
      const { respond, sent } = serverOnClock({ reliable: true, receivedAt: 0 });
      respond(100);
      expect(sent()).toEqual([{ at: 0, response: '100' }]);
    });

    it('sends the 100 itself when no response is ready by the time Timer E reaches T2 (§4.1)', () => {
      const { clock, tx, sent, retransmission, respond } = serverOnClock({
        reliable: false,
        receivedAt: 0,
        createTrying: () => '100 Trying',
      });
      clock.advance(3499);
      expect(sent()).toEqual([]);
      clock.advance(1);
      expect(sent()).toEqual([{ at: 3500, response: '100 Trying' }]);
      expect(tx.state).toBe('proceeding');
      clock.advance(500);
      retransmission();
      respond(200);
      expect(sent().map((s) => s.response)).toEqual(['100 Trying', '100 Trying', '200']);
    });

    it('does not send the automatic 100 once a final response went out', () => {
      const { clock, sent, respond } = serverOnClock({ reliable: true, receivedAt: 0, createTrying: () => '100 Trying' });
      clock.advance(1000);
      respond(200);
      clock.advance(60_000);
      expect(sent().map((s) => s.response)).toEqual(['200']);
    });

    it('needs receivedAt to time the automatic 100', () => {
      expect(() => new NonInviteServerTransaction<Req, Res>(REQUEST, { reliable: false, createTrying: () => '100' })).toThrow(
        TransactionUsageError,
      );
    });
  });
});

describe('property: random inputs on virtual time', () => {
  type ClientStep =
    | { kind: 'advance'; ms: number }
    | { kind: 'response'; status: number }
    | { kind: 'transport-error' }
    | { kind: 'poll-early' };

  const clientStep: fc.Arbitrary<ClientStep> = fc.oneof(
    fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 12_000 }) }),
    fc.record({ kind: fc.constant('response' as const), status: fc.integer({ min: 100, max: 699 }) }),
    fc.record({ kind: fc.constant('transport-error' as const) }),
    fc.record({ kind: fc.constant('poll-early' as const) }),
  );

  it('the client reports exactly one outcome, terminates once, and never sends after termination', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(clientStep, { maxLength: 40 }), (reliable, steps) => {
        const { clock, tx, driver, log } = clientOnClock({ reliable });
        driver.feed((t, now) => t.start(now));
        for (const step of steps) {
          switch (step.kind) {
            case 'advance':
              clock.advance(step.ms);
              break;
            case 'response':
              driver.feed((t, now) => t.receiveResponse(step.status, `${step.status}`, now));
              break;
            case 'transport-error':
              driver.feed((t, now) => t.transportError(now));
              break;
            case 'poll-early':
              driver.feed((t, now) => t.handleTimeout(now)); // an extra, possibly early, poll
              break;
          }
          expect(clock.pendingTimers).toBeLessThanOrEqual(1); // the driver keeps one timer at most
          const armed = tx.pollTimeout();
          if (armed !== undefined) expect(armed).toBeGreaterThan(clock.now());
        }
        clock.advance(100_000); // every timer of the transaction has run out by now

        const types = log.map((e) => e.event.type);
        const outcomes = types.filter((t) => t === 'final' || t === 'timeout' || t === 'transport-error');
        expect(outcomes).toHaveLength(1);
        expect(types.filter((t) => t === 'terminated')).toHaveLength(1);
        expect(types.at(-1)).toBe('terminated'); // nothing at all after termination
        expect(types.indexOf('terminated')).toBeGreaterThan(types.indexOf(outcomes[0]!));
        expect(types.slice(types.indexOf(outcomes[0]!)).filter((t) => t === 'send' || t === 'provisional')).toEqual([]);
        if (reliable) expect(types.filter((t) => t === 'send')).toHaveLength(1);
        expect(tx.state).toBe('terminated');
        expect(clock.pendingTimers).toBe(0);
      }),
      { numRuns: 1000 },
    );
  });

  type ServerStep =
    | { kind: 'advance'; ms: number }
    | { kind: 'respond'; status: number }
    | { kind: 'retransmission' }
    | { kind: 'transport-error' };

  const serverStep: fc.Arbitrary<ServerStep> = fc.oneof(
    fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 12_000 }) }),
    fc.record({ kind: fc.constant('respond' as const), status: fc.integer({ min: 100, max: 699 }) }),
    fc.record({ kind: fc.constant('respond' as const), status: fc.constantFrom(100, 180, 200, 202, 408, 486) }),
    fc.record({ kind: fc.constant('retransmission' as const) }),
    fc.record({ kind: fc.constant('transport-error' as const) }),
  );

  it('the server never sends two different finals and throws only for what RFC 4320 forbids', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.array(serverStep, { maxLength: 40 }), (reliable, autoTrying, steps) => {
        let responseNumber = 0;
        const { clock, tx, driver, log, sent } = serverOnClock({
          reliable,
          receivedAt: 0,
          ...(autoTrying ? { createTrying: () => `100 auto #${responseNumber++}` } : {}),
        });
        const finalsHandedOver: string[] = [];
        for (const step of steps) {
          if (step.kind === 'advance') clock.advance(step.ms);
          else if (step.kind === 'retransmission') driver.feed((t, now) => t.receiveRequestRetransmission(now));
          else if (step.kind === 'transport-error') driver.feed((t, now) => t.transportError(now));
          else {
            const { status } = step;
            const response = `${status} #${responseNumber++}`;
            const liveBefore = tx.state === 'trying' || tx.state === 'proceeding';
            const forbidden =
              (status > 100 && status < 200) ||
              status === 408 ||
              (status === 100 && !reliable && clock.now() < timeUntilTimerEReachesT2(DEFAULT_TIMERS));
            if (liveBefore && forbidden) {
              expect(() => driver.feed((t, now) => t.respond(status, response, now))).toThrow(TransactionUsageError);
            } else {
              driver.feed((t, now) => t.respond(status, response, now));
              if (status >= 200) finalsHandedOver.push(response);
            }
          }
          expect(clock.pendingTimers).toBeLessThanOrEqual(1);
        }
        clock.advance(100_000);

        const statusOf = (response: string) => Number(response.split(' ')[0]);
        const finalsSent = sent().filter((s) => statusOf(s.response) >= 200);
        const distinctFinals = new Set(finalsSent.map((s) => s.response));
        expect(distinctFinals.size).toBeLessThanOrEqual(1);
        if (distinctFinals.size === 1) {
          expect([...distinctFinals][0]).toBe(finalsHandedOver[0]); // the first final wins
          const discarded = log.filter((e) => e.event.type === 'response-discarded');
          expect(discarded.length).toBeGreaterThanOrEqual(finalsHandedOver.length - 1);
        }
        const types = log.map((e) => e.event.type);
        expect(types.filter((t) => t === 'terminated').length).toBeLessThanOrEqual(1);
        const end = types.indexOf('terminated');
        if (end >= 0) expect(types.slice(end + 1).filter((t) => t === 'send')).toEqual([]);
        // Left alone, a transaction with a final response always ends (Timer J).
        if (finalsSent.length > 0) expect(tx.state).toBe('terminated');
        // Over UDP no 100 ever leaves before Timer E would have reached T2.
        if (!reliable) {
          for (const s of sent()) if (statusOf(s.response) === 100) expect(s.at).toBeGreaterThanOrEqual(3500);
        }
        expect(clock.pendingTimers).toBe(0);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('driver on the system clock', () => {
  it('runs a transaction to its timeout with real timers (T1 = 2 ms, so Timer F = 128 ms)', async () => {
    const timers = { t1: 2, t2: 16, t4: 20 };
    const tx = new NonInviteClientTransaction<Req, Res>(REQUEST, { reliable: false, timers });
    const events: { at: number; type: string }[] = [];
    const startedAt = systemClock.now();
    const done = new Promise<void>((resolve) => {
      const driver = new TransactionDriver(tx, systemClock, (event) => {
        events.push({ at: systemClock.now() - startedAt, type: event.type });
        if (event.type === 'terminated') resolve();
      });
      driver.feed((t, now) => t.start(now));
    });
    // The timers are unref()ed, so keep the test's own timer referenced as a bound.
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise((_, reject) => (bound = setTimeout(() => reject(new Error('no timeout event')), 5000)))]);
    clearTimeout(bound);
    const timeout = events.find((e) => e.type === 'timeout');
    expect(timeout?.at).toBeGreaterThanOrEqual(128);
    expect(events.filter((e) => e.type === 'send').length).toBeGreaterThanOrEqual(3);
    expect(tx.state).toBe('terminated');
  });

  it('never fires a timer before its time, and a cancelled timer never fires', async () => {
    const fired: string[] = [];
    const at = systemClock.now() + 15;
    let firedAt = 0;
    const cancel = systemClock.setTimer(at - 5, () => fired.push('cancelled'));
    cancel();
    let bound: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      systemClock.setTimer(at, () => {
        firedAt = systemClock.now();
        fired.push('kept');
        resolve();
      });
      bound = setTimeout(resolve, 2000); // referenced, so the unref()ed timer gets its chance
    });
    clearTimeout(bound);
    expect(fired).toEqual(['kept']);
    expect(firedAt).toBeGreaterThanOrEqual(at);
  });
});
