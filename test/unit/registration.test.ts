/**
 * The registration client against a scripted registrar on a loopback UDP socket: the test
 * reads each REGISTER and answers it as a registrar would. Time (refresh, back-off) runs on a
 * ManualClock.
 */
import { describe, expect, it } from 'vitest';
import { serializeMessage } from '../../main/sip/message/serialize.js';
import type { SipRequest } from '../../main/sip/message/sip-message.js';
import { Registration, type RegistrationEvent } from '../../main/sip/ua/registration.js';
import { createResponse } from '../../main/sip/ua/responses.js';
import { UserAgent } from '../../main/sip/ua/user-agent.js';
import { cleanupsAfterEach } from '../support/cleanups.js';
import { ManualClock } from '../support/manual-clock.js';
import { RawUdpPeer } from '../support/raw-udp.js';

const cleanups = cleanupsAfterEach();

async function setup(): Promise<{ clock: ManualClock; ua: UserAgent; registrar: RawUdpPeer; events: RegistrationEvent[]; registration: Registration }> {
  const clock = new ManualClock();
  const ua = await UserAgent.start({ aor: 'sip:bob@example.test', listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }], clock });
  cleanups.push(() => ua.close());
  const registrar = await RawUdpPeer.open();
  cleanups.push(() => registrar.close());
  const events: RegistrationEvent[] = [];
  const registration = new Registration(ua, clock, { registrar: `sip:127.0.0.1:${registrar.port}`, expires: 600 }, (e) => events.push(e));
  return { clock, ua, registrar, events, registration };
}

/** Answers the n-th REGISTER (1-based) with `status` and headers. */
async function answer(registrar: RawUdpPeer, n: number, status: number, headers: Array<[string, string]> = [], withContactExpires?: number): Promise<SipRequest> {
  const requests = (await registrar.waitFor(n)) as SipRequest[];
  const request = requests[n - 1] as SipRequest;
  const extra: Array<[string, string]> = [...headers];
  if (withContactExpires !== undefined) extra.push(['Contact', `${request.headers.get('contact')?.replace(/;expires=\d+/, '')};expires=${withContactExpires}`]);
  const response = createResponse(request, status, { toTag: 'reg', headers: extra });
  const via = request.topVia;
  await registrar.send(serializeMessage(response), Number(via.params.get('rport') ?? via.port));
  return request;
}

function waitForEvents(events: RegistrationEvent[], count: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 5000;
    const check = (): void => {
      if (events.length >= count) resolve();
      else if (Date.now() > deadline) reject(new Error(`only ${events.length} events`));
      else setImmediate(check);
    };
    check();
  });
}

describe('Registration', () => {
  it('registers, takes the expiry granted to its own Contact, refreshes before it lapses with the same Call-ID and CSeq + 1', async () => {
    const { clock, registrar, events, registration } = await setup();
    void registration.start();
    const first = await answer(registrar, 1, 200, [], 120);
    expect(first.method).toBe('REGISTER');
    expect(first.uri).toBe(`sip:127.0.0.1:${registrar.port}`);
    expect(first.headers.get('to')).toBe('<sip:bob@example.test>');
    expect(first.headers.get('contact')).toMatch(/^<sip:bob@127\.0\.0\.1:\d+>;expires=600$/);
    expect(first.headers.get('allow')).toContain('MESSAGE');
    await waitForEvents(events, 1);
    expect(events[0]).toMatchObject({ state: 'registered', expires: 120 });

    clock.advance(59_999);
    expect(registrar.received).toHaveLength(1);
    clock.advance(1); // halfway through 120 s
    const refresh = await answer(registrar, 2, 200, [], 120);
    expect(refresh.callId).toBe(first.callId);
    expect(refresh.cseq.seq).toBe(first.cseq.seq + 1);
    expect(refresh.from.params.get('tag')).toBe(first.from.params.get('tag'));
    await waitForEvents(events, 2);

    const stopping = registration.stop();
    const removal = await answer(registrar, 3, 200);
    await stopping;
    expect(removal.headers.get('expires')).toBe('0');
    expect(removal.headers.get('contact')).toMatch(/;expires=0$/);
    expect(events.at(-1)).toMatchObject({ state: 'unregistered' });
  });

  it('retries at once with Min-Expires after a 423 (§10.2.8)', async () => {
    const { registrar, events, registration } = await setup();
    void registration.start();
    await answer(registrar, 1, 423, [['Min-Expires', '1800']]);
    const second = await answer(registrar, 2, 200, [], 1800);
    expect(second.headers.get('expires')).toBe('1800');
    await waitForEvents(events, 1);
    expect(events[0]).toMatchObject({ state: 'registered', expires: 1800 });
  });

  it('reports a failure and retries after Retry-After, never at once (§10.2.7)', async () => {
    const { clock, registrar, events, registration } = await setup();
    void registration.start();
    await answer(registrar, 1, 503, [['Retry-After', '45']]);
    await waitForEvents(events, 1);
    expect(events[0]).toMatchObject({ state: 'failed', status: 503, retryIn: 45 });
    clock.advance(44_999);
    expect(registrar.received).toHaveLength(1);
    clock.advance(1);
    await answer(registrar, 2, 200, [], 600);
    await waitForEvents(events, 2);
    expect(events[1]).toMatchObject({ state: 'registered' });
  });

  it('reports a challenge it cannot answer as a final failure with no retry', async () => {
    const { clock, registrar, events, registration } = await setup();
    void registration.start();
    await answer(registrar, 1, 401, [['WWW-Authenticate', 'Digest realm="example.test", nonce="abc", qop="auth"']]);
    await waitForEvents(events, 1);
    expect(events[0]).toMatchObject({ state: 'failed', status: 401, reason: 'Unauthorized (no credentials configured)' });
    expect(events[0]).not.toHaveProperty('retryIn');
    clock.advance(3_600_000);
    // Nothing is scheduled: no retry timer, and the transaction's own timers have run out.
    expect(clock.pendingTimers).toBe(0);
    expect(registrar.received).toHaveLength(1);
  });
});

describe('Registration over TCP (RFC 5626 flows)', () => {
  it('registers again at once when the connection it registered over is lost', async () => {
    const { createServer } = await import('node:net');
    const { parseMessage } = await import('../../main/sip/message/parse.js');
    const sockets: import('node:net').Socket[] = [];
    const registers: SipRequest[] = [];
    let onRegister: () => void = () => undefined;
    const server = createServer((socket) => {
      sockets.push(socket);
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk) => {
        buffered = Buffer.concat([buffered, chunk]);
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const request = parseMessage(buffered.subarray(0, end + 4), { framing: 'stream' }) as SipRequest;
        buffered = buffered.subarray(end + 4);
        registers.push(request);
        const contact = request.headers.get('contact') ?? '';
        socket.write(serializeMessage(createResponse(request, 200, { toTag: 'reg', headers: [['Contact', contact.replace(/;expires=\d+/, ';expires=600')]] })));
        onRegister();
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const port = (server.address() as { port: number }).port;

    const ua = await UserAgent.start({ aor: 'sip:bob@example.test', listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }, { transport: 'tcp', host: '127.0.0.1', port: 0 }] });
    cleanups.push(() => ua.close());
    const events: RegistrationEvent[] = [];
    const registration = new Registration(ua, new ManualClock(), { registrar: `sip:127.0.0.1:${port};transport=tcp` }, (e) => events.push(e));
    const second = new Promise<void>((resolve) => (onRegister = () => registers.length >= 2 && resolve()));
    await registration.start();
    expect(events[0]).toMatchObject({ state: 'registered' });
    expect(registers[0]?.headers.get('contact')).toMatch(/;transport=tcp>/);

    sockets[0]?.destroy(); // the registrar's side of the flow goes away
    await second;
    await waitForEvents(events, 3);
    expect(registers[1]?.callId).toBe(registers[0]?.callId);
    expect(registers[1]?.cseq.seq).toBe((registers[0]?.cseq.seq ?? 0) + 1);
    expect(events.map((e) => e.state)).toEqual(['registered', 'failed', 'registered']);
    expect(events[1]).toMatchObject({ reason: 'Flow lost (connection to the registrar closed)' });
  });
});
