/**
 * RFC 3263 server location against a real DNS server: dnsmasq (Debian package dnsmasq-base)
 * on 127.0.0.1 and a free port, answering from records given on its command line, queried by
 * node:dns's Resolver (c-ares) with setServers. Shows NAPTR and SRV ordering as a real
 * resolver delivers it (dnsmasq answers records in its own order), the real error codes for
 * "no such name", "." targets and a refused query, and failover over real sockets: the first
 * SRV target is a loopback port nobody listens on (TCP connect refused), the second a
 * TransportLayer that answers.
 *
 * Every dnsmasq is started by PID through test/support/processes.ts and stopped after each
 * test; every socket is closed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createDnsResolver, Failover, locateServers, resolveImUri, ServerLocationError } from '../../main/sip/dns/index.js';
import type { DnsResolver, ServerTarget } from '../../main/sip/dns/index.js';
import { TransportError, TransportLayer } from '../../main/sip/transport/index.js';
import type { InboundMessage } from '../../main/sip/transport/index.js';
import { isImUri, isSipUri, parseUri } from '../../main/sip/uri.js';
import type { ImUri, SipUri } from '../../main/sip/uri.js';
import { startDns } from '../support/dnsmasq.js';
import { freePort, stopAll } from '../support/processes.js';

const layers: TransportLayer[] = [];

afterEach(async () => {
  await stopAll();
  await Promise.all(layers.splice(0).map((layer) => layer.close()));
});

function sip(text: string): SipUri {
  const uri = parseUri(text);
  if (!isSipUri(uri)) throw new Error(`not a SIP URI: ${text}`);
  return uri;
}

function im(text: string): ImUri {
  const uri = parseUri(text);
  if (!isImUri(uri)) throw new Error(`not an IM URI: ${text}`);
  return uri;
}

function brief(targets: readonly ServerTarget[]): string[] {
  return targets.map((t) => `${t.transport} ${t.family === 6 ? `[${t.address}]` : t.address}:${t.port} ${t.targetName}`);
}

async function locateError(promise: Promise<unknown>): Promise<ServerLocationError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ServerLocationError);
  return error as ServerLocationError;
}

// The RFC 3263 §4.1 layout: NAPTR for TLS, TCP, UDP; TCP has two servers at priority 10
// (weights 10 and 30) and a backup at priority 20.
const ORDER_ZONE = [
  '--naptr-record=order.test,100,50,s,SIP+D2U,,_sip._udp.order.test',
  '--naptr-record=order.test,90,50,s,SIP+D2T,,_sip._tcp.order.test',
  '--naptr-record=order.test,50,50,s,SIPS+D2T,,_sips._tcp.order.test',
  // --srv-host=name,target,port,priority,weight
  '--srv-host=_sip._tcp.order.test,light.order.test,5061,10,10',
  '--srv-host=_sip._tcp.order.test,heavy.order.test,5062,10,30',
  '--srv-host=_sip._tcp.order.test,backup.order.test,5063,20,0',
  '--srv-host=_sip._udp.order.test,light.order.test,5070,0,0',
  '--srv-host=_sips._tcp.order.test,light.order.test,5081,0,0',
  '--host-record=light.order.test,127.0.0.11,::1',
  '--host-record=heavy.order.test,127.0.0.12',
  '--host-record=backup.order.test,127.0.0.13',
];

describe('RFC 3263 against dnsmasq on 127.0.0.1', () => {
  it('NAPTR order, then SRV priority and weight; unsupported TLS dropped', async () => {
    const resolver = await startDns(ORDER_ZONE);
    // Priority 10 holds heavy (weight 30) and light (weight 10), sorted by name, so the running
    // sums are 30 and 40. A draw is floor(r * 41): 0..30 picks heavy, 31..40 light.
    const locate = (r: number): Promise<ServerTarget[]> => locateServers(sip('sip:bob@order.test'), { resolver, supportedTransports: ['udp', 'tcp'], random: () => r });

    const heavyFirst = await locate(0.5); // draw 20
    expect(brief(heavyFirst)).toEqual([
      'tcp 127.0.0.12:5062 heavy.order.test',
      'tcp 127.0.0.11:5061 light.order.test',
      'tcp [::1]:5061 light.order.test',
      'tcp 127.0.0.13:5063 backup.order.test',
      'udp 127.0.0.11:5070 light.order.test',
      'udp [::1]:5070 light.order.test',
    ]);
    expect(heavyFirst.every((t) => t.source === 'naptr' && t.host === 'order.test')).toBe(true);

    expect(brief(await locate(0.9)).slice(0, 4)).toEqual([ // draw 36
      'tcp 127.0.0.11:5061 light.order.test',
      'tcp [::1]:5061 light.order.test',
      'tcp 127.0.0.12:5062 heavy.order.test',
      'tcp 127.0.0.13:5063 backup.order.test',
    ]);
  });

  it('sips: keeps only SIPS+D2T; families [6, 4] lists IPv6 first', async () => {
    const resolver = await startDns(ORDER_ZONE);
    const targets = await locateServers(sip('sips:bob@order.test'), { resolver, supportedTransports: ['udp', 'tcp', 'tls'], families: [6, 4] });
    expect(brief(targets)).toEqual(['tls [::1]:5081 light.order.test', 'tls 127.0.0.11:5081 light.order.test']);
  });

  it('no NAPTR, no SRV: A/AAAA at the default port; explicit port: A/AAAA only', async () => {
    const resolver = await startDns(['--host-record=plain.test,127.0.0.21']);
    const fallback = await locateServers(sip('sip:plain.test'), { resolver, supportedTransports: ['udp', 'tcp'] });
    expect(brief(fallback)).toEqual(['udp 127.0.0.21:5060 plain.test']);
    expect(fallback[0]!.source).toBe('a-aaaa');
    const explicit = await locateServers(sip('sip:plain.test:5099;transport=tcp'), { resolver, supportedTransports: ['udp', 'tcp'] });
    expect(brief(explicit)).toEqual(['tcp 127.0.0.21:5099 plain.test']);
  });

  it('real negative answers: "." target, NXDOMAIN, and a refused query', async () => {
    const resolver = await startDns(['--srv-host=_sip._udp.closed.test', '--host-record=closed.test,127.0.0.22']);
    const closed = await locateError(locateServers(sip('sip:closed.test'), { resolver, supportedTransports: ['udp'] }));
    expect(closed.code).toBe('service-unavailable');

    const missing = await locateError(locateServers(sip('sip:missing.test'), { resolver, supportedTransports: ['udp'] }));
    expect(missing.code).toBe('no-records');

    // Outside --local=/test/ and with no upstream, dnsmasq answers REFUSED: DNS did not answer.
    const refused = await locateError(locateServers(sip('sip:elsewhere.example'), { resolver, supportedTransports: ['udp'] }));
    expect(refused.code).toBe('lookup-failed');
    expect(refused.unreachable).toBe(true);
    expect(new Set(refused.lookupFailures.map((f) => f.code))).toEqual(new Set(['EREFUSED']));
  });

  it('im: through _im._sip SRV (RFC 3861, RFC 5509)', async () => {
    const resolver = await startDns(['--srv-host=_im._sip.im.test,relay.im.test,5075,0,0', '--host-record=relay.im.test,127.0.0.31']);
    const { requestUri, targets } = await resolveImUri(im('im:alice@im.test'), { resolver, supportedTransports: ['udp', 'tcp'] });
    expect(requestUri).toMatchObject({ scheme: 'sip', user: 'alice', host: 'im.test' });
    expect(brief(targets)).toEqual(['udp 127.0.0.31:5075 relay.im.test']);
  });

  it('fails over from an SRV target that refuses the TCP connection to the next one, which answers', async () => {
    // The second SRV target: a TransportLayer that answers every request with 200.
    const server = await TransportLayer.listen([{ transport: 'tcp', host: '127.0.0.1', port: 0 }]);
    layers.push(server);
    const received: InboundMessage[] = [];
    server.on('message', (message) => {
      received.push(message);
      const via = /^Via: .*$/m.exec(message.data.toString('latin1'))?.[0] ?? '';
      const response = `SIP/2.0 200 OK\r\n${via}\r\nContent-Length: 0\r\n\r\n`;
      void server.send(Buffer.from(response), { transport: 'tcp', ...message.remote, connectionId: message.connectionId! });
    });
    const livePort = server.localAddresses()[0]!.port;
    const deadPort = await freePort(); // nothing listens there: connect is refused
    const resolver = await startDns([
      '--naptr-record=failover.test,10,10,s,SIP+D2T,,_sip._tcp.failover.test',
      `--srv-host=_sip._tcp.failover.test,dead.failover.test,${deadPort},10,0`,
      `--srv-host=_sip._tcp.failover.test,live.failover.test,${livePort},20,0`,
      '--host-record=dead.failover.test,127.0.0.1',
      '--host-record=live.failover.test,127.0.0.1',
    ]);

    const targets = await locateServers(sip('sip:bob@failover.test'), { resolver, supportedTransports: ['tcp'], families: [4] });
    expect(brief(targets)).toEqual([`tcp 127.0.0.1:${deadPort} dead.failover.test`, `tcp 127.0.0.1:${livePort} live.failover.test`]);

    const client = await TransportLayer.listen([{ transport: 'tcp', host: '127.0.0.1', port: 0 }], { connectTimeoutMs: 5_000 });
    layers.push(client);
    const responses: string[] = [];
    const responded = new Promise<void>((resolve) =>
      client.on('message', (message) => {
        responses.push(message.data.toString('latin1'));
        resolve();
      }),
    );

    const failover = new Failover(targets);
    const errors: string[] = [];
    let attempt = 0;
    for (let target = failover.next(); target !== undefined; target = failover.next()) {
      // RFC 3263 §4.3: each attempt is a new transaction: same request, new branch.
      const request =
        `OPTIONS sip:bob@failover.test SIP/2.0\r\n` +
        `Via: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK-failover-${++attempt}\r\n` +
        `Max-Forwards: 70\r\nTo: <sip:bob@failover.test>\r\nFrom: <sip:alice@failover.test>;tag=1\r\n` +
        `Call-ID: failover-test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`;
      try {
        await client.send(Buffer.from(request), { transport: 'tcp', address: target.address, port: target.port });
      } catch (error) {
        expect(error).toBeInstanceOf(TransportError);
        errors.push(`${(error as TransportError).code} ${target.port}`);
        if (failover.report(target, { kind: 'transport-error' })) continue;
        break;
      }
      await responded;
      expect(failover.report(target, { kind: 'response', status: 200 })).toBe(false);
      break;
    }

    expect(errors).toEqual([`connect-failed ${deadPort}`]);
    expect(failover.tried.map((t) => t.port)).toEqual([deadPort, livePort]);
    expect(received).toHaveLength(1);
    expect(received[0]!.data.toString('latin1')).toContain('branch=z9hG4bK-failover-2');
    expect(responses[0]).toMatch(/^SIP\/2\.0 200 OK\r\n/);
  });
});
