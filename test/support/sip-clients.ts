/**
 * Legitimate senders for hostile-input tests: SIP MESSAGE clients on raw sockets, each bound to
 * a loopback address of its own (127.0.0.0/8 is all local on Linux), so a test can tell a
 * well-behaved source from an attacking one the way the listener does: by address.
 *
 * - UdpMessageClient retransmits an unanswered request like a UAC's Timer A (RFC 3261
 *   §17.1.2.2: T1, doubling, capped at T2), because a flood may cost a datagram or two.
 * - TcpMessageClient frames responses by Content-Length (§18.3), on one persistent connection
 *   (reopened if the listener closed it) or on a fresh connection per request, which makes
 *   every request pass the listener's admission of new connections.
 * - SteadySender sends one MESSAGE every interval from a client and files each final answer
 *   under the phase the test was in when the request went out (before, during, after an attack).
 *
 * Every socket opened here is closed by `close()`; nothing waits by sleeping.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { parseMessage } from '../../main/sip/message/parse.js';
import { StreamFramer } from '../../main/sip/transport/stream-framer.js';

export interface Target {
  readonly address: string;
  readonly port: number;
}

/** The final answer to one request; status 0 when none came (`detail` says why). */
export interface Answer {
  readonly callId: string;
  readonly status: number;
  readonly detail?: string;
  readonly retryAfter?: string;
  /** UDP: how many times the request was sent again before its answer. */
  readonly retransmissions: number;
}

let sequence = 0;

/** A unique Call-ID (and branch, tag) per request, readable in a failure message. */
export function nextCallId(label: string): string {
  return `${label}-${++sequence}-${process.pid}`;
}

/** A plaintext MESSAGE to sip:bob at `target`, with a Via naming `via` (sent-by) and `transport`. */
export function messageRequest(options: {
  target: Target;
  via: Target;
  transport: 'UDP' | 'TCP';
  callId: string;
  body?: string;
  /** A Content-Length other than the body's, for an attack. */
  contentLength?: number;
}): Buffer {
  const body = options.body ?? `hello from ${options.callId}`;
  const head = [
    `MESSAGE sip:bob@${options.target.address}:${options.target.port} SIP/2.0`,
    `Via: SIP/2.0/${options.transport} ${options.via.address}:${options.via.port};branch=z9hG4bK-${options.callId};rport`,
    'Max-Forwards: 70',
    `From: <sip:alice@${options.via.address}>;tag=t-${options.callId}`,
    `To: <sip:bob@${options.target.address}>`,
    `Call-ID: ${options.callId}`,
    'CSeq: 1 MESSAGE',
    'Content-Type: text/plain;charset=utf-8',
    `Content-Length: ${options.contentLength ?? Buffer.byteLength(body)}`,
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body, 'utf8')]);
}

/** Reads the final answer out of a response, or undefined for a provisional or unreadable one. */
function finalAnswer(data: Buffer): { callId: string; status: number; retryAfter?: string } | undefined {
  try {
    const message = parseMessage(data);
    if (message.kind !== 'response' || message.status < 200) return undefined;
    const retryAfter = message.headers.get('retry-after');
    return { callId: message.callId, status: message.status, ...(retryAfter === undefined ? {} : { retryAfter }) };
  } catch {
    return undefined;
  }
}

export interface MessageClient {
  readonly label: string;
  request(body?: string): Promise<Answer>;
  close(): Promise<void>;
}

interface Pending {
  settle: (answer: Omit<Answer, 'callId'>) => void;
}

const T1_MS = 500;
const T2_MS = 4000;

export class UdpMessageClient implements MessageClient {
  private readonly pending = new Map<string, Pending>();

  private constructor(
    readonly label: string,
    private readonly socket: UdpSocket,
    private readonly target: Target,
    private readonly timeoutMs: number,
  ) {
    socket.on('message', (data) => {
      const answer = finalAnswer(data);
      if (answer === undefined) return;
      this.pending.get(answer.callId)?.settle({ status: answer.status, ...(answer.retryAfter === undefined ? {} : { retryAfter: answer.retryAfter }), retransmissions: 0 });
    });
  }

  /** A UDP socket on `localAddress` (any free port) that sends to `target`. */
  static async open(localAddress: string, target: Target, options: { timeoutMs?: number; label?: string } = {}): Promise<UdpMessageClient> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, localAddress, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new UdpMessageClient(options.label ?? `udp ${localAddress}`, socket, target, options.timeoutMs ?? 8000);
  }

  get local(): Target {
    const { address, port } = this.socket.address();
    return { address, port };
  }

  /** Sends raw bytes (an attack) from this socket. */
  sendRaw(data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(data, this.target.port, this.target.address, (error) => (error ? reject(error) : resolve())));
  }

  request(body?: string): Promise<Answer> {
    const callId = nextCallId('udp');
    const data = messageRequest({ target: this.target, via: this.local, transport: 'UDP', callId, ...(body === undefined ? {} : { body }) });
    return new Promise((resolve) => {
      let retransmissions = 0;
      let interval = T1_MS;
      let retransmitTimer: NodeJS.Timeout | undefined;
      const settle = (answer: Omit<Answer, 'callId'>): void => {
        clearTimeout(retransmitTimer);
        clearTimeout(giveUp);
        this.pending.delete(callId);
        resolve({ ...answer, callId, retransmissions });
      };
      const transmit = (): void => {
        this.socket.send(data, this.target.port, this.target.address);
        retransmitTimer = setTimeout(() => {
          retransmissions++;
          interval = Math.min(interval * 2, T2_MS);
          transmit();
        }, interval);
      };
      const giveUp = setTimeout(() => settle({ status: 0, detail: `no answer within ${this.timeoutMs} ms`, retransmissions }), this.timeoutMs);
      this.pending.set(callId, { settle });
      transmit();
    });
  }

  close(): Promise<void> {
    for (const { settle } of [...this.pending.values()]) settle({ status: 0, detail: 'client closed', retransmissions: 0 });
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

export class TcpMessageClient implements MessageClient {
  private readonly pending = new Map<string, Pending>();
  private readonly sockets = new Set<Socket>();
  private persistent: Promise<Socket> | undefined;

  private constructor(
    readonly label: string,
    private readonly localAddress: string,
    private readonly target: Target,
    private readonly mode: 'persistent' | 'per-request',
    private readonly timeoutMs: number,
  ) {}

  static create(localAddress: string, target: Target, options: { mode?: 'persistent' | 'per-request'; timeoutMs?: number; label?: string } = {}): TcpMessageClient {
    const mode = options.mode ?? 'persistent';
    return new TcpMessageClient(options.label ?? `tcp ${localAddress} (${mode})`, localAddress, target, mode, options.timeoutMs ?? 8000);
  }

  async request(body?: string): Promise<Answer> {
    const callId = nextCallId('tcp');
    let socket: Socket;
    try {
      socket = await this.connection();
    } catch (error) {
      return { callId, status: 0, detail: `connect failed: ${(error as Error).message}`, retransmissions: 0 };
    }
    const local = { address: socket.localAddress ?? this.localAddress, port: socket.localPort ?? 0 };
    const data = messageRequest({ target: this.target, via: local, transport: 'TCP', callId, ...(body === undefined ? {} : { body }) });
    return new Promise((resolve) => {
      const settle = (answer: Omit<Answer, 'callId'>): void => {
        clearTimeout(giveUp);
        socket.off('close', onClose);
        this.pending.delete(callId);
        if (this.mode === 'per-request') socket.destroy();
        resolve({ ...answer, callId });
      };
      const onClose = (): void => settle({ status: 0, detail: 'the listener closed the connection before answering', retransmissions: 0 });
      const giveUp = setTimeout(() => settle({ status: 0, detail: `no answer within ${this.timeoutMs} ms`, retransmissions: 0 }), this.timeoutMs);
      this.pending.set(callId, { settle });
      socket.once('close', onClose);
      socket.write(data);
    });
  }

  /** The persistent connection (reopened when gone), or a new one per request. */
  private connection(): Promise<Socket> {
    if (this.mode === 'per-request') return this.open();
    if (this.persistent === undefined) {
      const opening = this.open();
      this.persistent = opening;
      const forget = (): void => {
        if (this.persistent === opening) this.persistent = undefined;
      };
      opening.then((socket) => socket.once('close', forget), forget);
    }
    return this.persistent;
  }

  private open(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: this.target.address, port: this.target.port, localAddress: this.localAddress, noDelay: true });
      this.sockets.add(socket);
      const framer = new StreamFramer();
      socket.on('data', (chunk: Buffer) => {
        for (const event of framer.push(chunk)) {
          if (event.type !== 'message') continue;
          const answer = finalAnswer(event.data);
          if (answer === undefined) continue;
          this.pending.get(answer.callId)?.settle({ status: answer.status, ...(answer.retryAfter === undefined ? {} : { retryAfter: answer.retryAfter }), retransmissions: 0 });
        }
      });
      socket.on('error', () => {}); // a reset shows up as 'close', which the request reports
      socket.once('close', () => this.sockets.delete(socket));
      socket.once('connect', () => resolve(socket));
      socket.once('close', () => reject(new Error('connection closed before it was established')));
    });
  }

  async close(): Promise<void> {
    for (const { settle } of [...this.pending.values()]) settle({ status: 0, detail: 'client closed', retransmissions: 0 });
    await Promise.all([...this.sockets].map((socket) => closeSocket(socket)));
  }
}

/** Destroys a TCP socket and resolves once it is closed. */
export function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.closed) return resolve();
    socket.once('close', () => resolve());
    socket.destroy();
  });
}

export interface PhasedAnswer extends Answer {
  readonly client: string;
  readonly phase: string;
}

/**
 * One MESSAGE every `intervalMs` from each client, at most one outstanding per client (a
 * pager-mode client waits for the answer before its next message to the same peer). Every
 * answer is kept with the phase set when its request went out.
 */
export class SteadySender {
  readonly answers: PhasedAnswer[] = [];
  private phase = 'before';
  private timer: NodeJS.Timeout | undefined;
  private readonly busy = new Set<MessageClient>();
  private readonly inFlight = new Set<Promise<void>>();
  private waiters: Array<() => void> = [];

  constructor(
    private readonly clients: readonly MessageClient[],
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
  }

  enter(phase: string): void {
    this.phase = phase;
  }

  /** Resolves once every client has `count` answers in `phase`; rejects after `ms`. */
  async waitForAnswers(phase: string, count: number, ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    const enough = (): boolean => this.clients.every((client) => this.answers.filter((a) => a.client === client.label && a.phase === phase).length >= count);
    while (!enough()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fewer than ${count} answers per client in phase ${phase} within ${ms} ms: ${this.summary()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves at the next answer from any client; rejects after `ms`. Paces a test's retries. */
  nextAnswer(ms = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no legitimate answer within ${ms} ms`)), ms);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Stops sending and resolves once every outstanding request has its answer. */
  async stop(): Promise<PhasedAnswer[]> {
    clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all([...this.inFlight]);
    return this.answers;
  }

  /** `client phase: status xN, ...`, for failure messages. */
  summary(): string {
    const counts = new Map<string, number>();
    for (const answer of this.answers) {
      const key = `${answer.client} ${answer.phase}: ${answer.status}${answer.detail === undefined ? '' : ` (${answer.detail})`}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return [...counts].map(([key, n]) => `${key} x${n}`).join('; ');
  }

  private tick(): void {
    for (const client of this.clients) {
      if (this.busy.has(client)) continue;
      this.busy.add(client);
      const phase = this.phase;
      const done = client.request().then((answer) => {
        this.busy.delete(client);
        this.answers.push({ ...answer, client: client.label, phase });
        for (const wake of this.waiters.splice(0)) wake();
      });
      this.inFlight.add(done);
      void done.finally(() => this.inFlight.delete(done));
    }
  }
}
