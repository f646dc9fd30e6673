/**
 * `stampReceived` (user-agent.ts, §18.2.1 and RFC 3581 §4) writes the usual `…;rport` Via row
 * by splicing the port and `received` into the row's text instead of formatting the parsed Via
 * again. Whatever the row, the request must come out exactly as with the general way, kept
 * here as it was: the Via rows, and the parsed top Via the transaction and the response read.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatVia, parseVia, splitHeaderList, type Via } from '../../main/sip/header-values.js';
import { parseMessage } from '../../main/sip/message/parse.js';
import { ParseError } from '../../main/sip/message/parse-error.js';
import type { SipRequest } from '../../main/sip/message/sip-message.js';
import { stampReceived } from '../../main/sip/ua/user-agent.js';

type Remote = { readonly remote: { readonly address: string; readonly port: number } };

/** stampReceived before the splice: every stamped row written by formatVia. */
function generalStampReceived(request: SipRequest, inbound: Remote): void {
  let top: Via;
  try {
    top = request.topVia;
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    const first = request.headers.getByKey('via');
    if (first === undefined) throw new ParseError('missing-header', 'Via header missing', 'Via');
    const elements = splitHeaderList(first);
    const only = parseVia(elements[0] ?? '')[0];
    if (only === undefined) throw new ParseError('bad-header-value', 'empty Via', 'Via');
    if (!generalStampVia(only, inbound)) return;
    elements[0] = formatVia(only);
    request.headers.replaceFirst('via', elements.join(', '));
    request.invalidate();
    return;
  }
  if (!generalStampVia(top, inbound)) return;
  const first = request.headers.getByKey('via') ?? '';
  const text = formatVia(top);
  request.headers.replaceFirst('via', first.includes(',') ? [text, ...splitHeaderList(first).slice(1)].join(', ') : text);
}

function generalStampVia(top: Via, inbound: Remote): boolean {
  const sentByHost = top.host.startsWith('[') ? top.host.slice(1, -1) : top.host;
  const address = inbound.remote.address;
  let changed = false;
  if (sentByHost.toLowerCase() !== address.toLowerCase()) {
    top.params.set('received', address);
    changed = true;
  }
  if (top.params.get('rport') === null) {
    top.params.set('received', address);
    top.params.set('rport', String(inbound.remote.port));
    changed = true;
  }
  return changed;
}

function request(vias: readonly string[]): SipRequest | undefined {
  const text = [
    'MESSAGE sip:bob@127.0.0.1 SIP/2.0',
    ...vias.map((via) => `Via: ${via}`),
    'From: <sip:alice@example.com>;tag=a',
    'To: <sip:bob@127.0.0.1>',
    'Call-ID: c@x',
    'CSeq: 1 MESSAGE',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  try {
    const message = parseMessage(Buffer.from(text, 'utf8'));
    return message.kind === 'request' ? message : undefined;
  } catch (error) {
    if (error instanceof ParseError) return undefined;
    throw error;
  }
}

type Outcome = { rows: Array<readonly [string, string]>; top: Array<[string, string | null]> | string } | { error: string };

function outcome(stamp: (request: SipRequest, inbound: Remote) => void, vias: readonly string[], inbound: Remote): Outcome | undefined {
  const message = request(vias);
  if (message === undefined) return undefined;
  try {
    stamp(message, inbound);
  } catch (error) {
    if (error instanceof ParseError) return { error: error.message };
    throw error;
  }
  let top: Array<[string, string | null]> | string;
  try {
    const via = message.topVia;
    top = [['host', via.host], ['port', String(via.port)], ['transport', via.transport], ...via.params.entries()];
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    top = error.message;
  }
  return { rows: message.headers.entries().map((row) => [row.name, row.value] as const), top };
}

function expectSame(vias: readonly string[], inbound: Remote): void {
  const general = outcome(generalStampReceived, vias, inbound);
  expect(outcome(stampReceived, vias, inbound)).toEqual(general);
}

const SOURCES: readonly Remote[] = [
  { remote: { address: '127.0.0.1', port: 5098 } },
  { remote: { address: '192.0.2.7', port: 40000 } },
  { remote: { address: '2001:db8::9', port: 5062 } },
  { remote: { address: 'fe80::1%eth0', port: 5062 } },
];

const ROWS: readonly string[] = [
  'SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bK-1-0;rport',
  'SIP/2.0/UDP 127.0.0.1:5098;rport;branch=z9hG4bK-1-0',
  'SIP/2.0/UDP 127.0.0.1:5098;rport',
  'SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx;rport',
  'SIP/2.0/TCP host.example.com:5060;branch=z9hG4bKx;rport',
  'SIP/2.0/TLS host.example.com.;rport;branch=z9hG4bKx',
  'SIP/2.0/UDP 127.0.0.1:05098;branch=z9hG4bKx;rport',
  'SIP/2.0/UDP 127.0.0.1:0;branch=z9hG4bKx;rport',
  'SIP/2.0/UDP Host.Example.com:5060;branch=z9hG4bKx;rport',
  'SIP/2.0/udp 127.0.0.1:5098;branch=z9hG4bKx;rport',
  'SIP/2.0/SCTP 127.0.0.1:5098;branch=z9hG4bKx;rport',
  'SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKx;rport;received=10.0.0.1',
  'SIP/2.0/UDP 127.0.0.1:5098;received=10.0.0.1;branch=z9hG4bKx;rport',
  'SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKx;rport=5098',
  'SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKx',
  'SIP/2.0/UDP 127.0.0.1:5098;BRANCH=z9hG4bKx;rport',
  'SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKx;RPORT',
  'SIP/2.0/UDP 127.0.0.1:5098;branch="z9hG4bKx";rport',
  'SIP/2.0/UDP 127.0.0.1:5098 ;branch=z9hG4bKx; rport',
  'SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKx;rport;rport',
  'SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKx;rport;x=1',
  'SIP/2.0/UDP [2001:db8::9]:5062;branch=z9hG4bKx;rport',
  'SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKx;rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKy',
  'SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKx;rport,SIP/2.0/UDP bad host',
  'SIP/2.0/UDP 999.0.0.1:5098;branch=z9hG4bKx;rport',
  'SIP/2.0/UDP 127.0.0.1:99999;branch=z9hG4bKx;rport',
];

describe('stampReceived', () => {
  it.each(ROWS)('%s: the same request as formatting the stamped Via', (row) => {
    for (const source of SOURCES) {
      expectSame([row], source);
      expectSame([row, 'SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp'], source);
    }
  });

  it('splices the usual row', () => {
    const message = request(['SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bK-1-0;rport']);
    if (message === undefined) throw new Error('the request does not parse');
    stampReceived(message, { remote: { address: '127.0.0.1', port: 5098 } });
    expect(message.headers.getByKey('via')).toBe('SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bK-1-0;rport=5098;received=127.0.0.1');
    expect(message.topVia.params.get('rport')).toBe('5098');
  });

  it('holds for generated Via rows', () => {
    const transport = fc.constantFrom('UDP', 'TCP', 'TLS', 'SCTP', 'udp', 'Tcp');
    const host = fc.constantFrom('127.0.0.1', '192.0.2.7', '10.0.0.01', 'a.example.com', 'A.example.com', 'example.com.', 'x-1.y', '[2001:db8::9]', '[::1]');
    const port = fc.option(fc.constantFrom('5060', '5098', '05060', '0', '65535', '65536', '1'), { nil: undefined });
    const param = fc.constantFrom(';branch=z9hG4bK-abc', ';branch=z9hG4bK.!%*_+`\'~-', ';rport', ';rport=1234', ';received=10.0.0.1', ';x', ';x=y', ';Rport', ' ;rport', ';branch="q"', ';maddr=1.2.3.4', ';ttl=5');
    const row = fc.tuple(transport, host, port, fc.array(param, { maxLength: 4 })).map(([t, h, p, params]) => `SIP/2.0/${t} ${h}${p === undefined ? '' : `:${p}`}${params.join('')}`);
    fc.assert(
      fc.property(fc.array(row, { minLength: 1, maxLength: 2 }), fc.constantFrom(...SOURCES), (rows, source) => {
        expectSame(rows, source);
        expectSame([rows.join(', ')], source);
      }),
      { numRuns: 2000 },
    );
  });
});
