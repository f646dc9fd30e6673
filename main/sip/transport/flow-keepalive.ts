/**
 * The CRLF keep-alive of one client flow over TCP or TLS (RFC 5626 §4.4.1), as a state machine
 * that does no I/O: time goes in, "send a ping now" or "the flow has failed" comes out. The
 * transport layer runs it on a Clock and writes the bytes.
 *
 * Why it exists: an inbound MESSAGE to a desktop behind NAT can only arrive over the
 * connection its registration went out on, and NATs and firewalls drop idle mappings. So the
 * UA keeps that flow busy and notices quickly when it dies, to register a new one (§4.5).
 *
 * The rules of §4.4.1 it follows:
 * - a ping is a double CRLF; the server answers each with a pong, a single CRLF;
 * - if no pong arrives within 10 seconds of a ping, the flow MUST be treated as failed;
 * - the time between pings is drawn at random, each time anew, between 80% and 100% of the
 *   interval (the registrar's Flow-Timer, or a default; choosing it is the caller's job), so
 *   that many clients behind one NAT do not ping in step.
 *
 * The next ping is scheduled a fresh random interval after the previous ping was sent, but never
 * before that ping's pong came back: there is at most one ping outstanding. A pong that was not
 * asked for is ignored.
 */

/** §4.4.1: a flow without a pong this long after a ping has failed. */
export const DEFAULT_PONG_TIMEOUT_MS = 10_000;

export interface FlowKeepaliveOptions {
  /** Upper bound of the time between pings, in ms; each gap is 80-100% of it. */
  intervalMs: number;
  /** How long to wait for a pong. Default 10 s (§4.4.1). */
  pongTimeoutMs?: number;
  /** Uniform random numbers in [0, 1), for the gap between pings. Default Math.random. */
  random?: () => number;
}

export type FlowKeepaliveAction = 'send-ping' | 'flow-failed';

type State = 'waiting' | 'awaiting-pong' | 'failed' | 'stopped';

export class FlowKeepalive {
  private state: State = 'waiting';
  private dueAt: number;
  private lastPingAt: number;
  private readonly intervalMs: number;
  private readonly pongTimeoutMs: number;
  private readonly random: () => number;

  /** Starts at `now`: the first ping is due 80-100% of the interval later. */
  constructor(options: FlowKeepaliveOptions, now: number) {
    this.intervalMs = options.intervalMs;
    this.pongTimeoutMs = options.pongTimeoutMs ?? DEFAULT_PONG_TIMEOUT_MS;
    this.random = options.random ?? Math.random;
    if (!(Number.isFinite(this.intervalMs) && this.intervalMs > 0)) {
      throw new RangeError(`keep-alive interval must be a positive number of ms, not ${this.intervalMs}`);
    }
    if (!(Number.isFinite(this.pongTimeoutMs) && this.pongTimeoutMs > 0)) {
      throw new RangeError(`pong timeout must be a positive number of ms, not ${this.pongTimeoutMs}`);
    }
    this.lastPingAt = now;
    this.dueAt = now + this.nextGap();
  }

  /** When `onTimer` must next be called; undefined once the flow failed or was stopped. */
  get deadline(): number | undefined {
    return this.state === 'waiting' || this.state === 'awaiting-pong' ? this.dueAt : undefined;
  }

  get failed(): boolean {
    return this.state === 'failed';
  }

  /** Whether a ping is out and its pong not yet back. */
  get awaitingPong(): boolean {
    return this.state === 'awaiting-pong';
  }

  /** Call at (or after) `deadline`. Early calls do nothing. */
  onTimer(now: number): FlowKeepaliveAction | undefined {
    if (now < this.dueAt) return undefined;
    if (this.state === 'waiting') {
      this.state = 'awaiting-pong';
      this.lastPingAt = now;
      this.dueAt = now + this.pongTimeoutMs;
      return 'send-ping';
    }
    if (this.state === 'awaiting-pong') {
      this.state = 'failed';
      return 'flow-failed';
    }
    return undefined;
  }

  /** A single CRLF arrived on the flow. */
  onPong(now: number): void {
    if (this.state !== 'awaiting-pong') return;
    this.state = 'waiting';
    this.dueAt = Math.max(now, this.lastPingAt + this.nextGap());
  }

  stop(): void {
    if (this.state !== 'failed') this.state = 'stopped';
  }

  private nextGap(): number {
    const r = Math.min(Math.max(this.random(), 0), 1);
    return this.intervalMs * (0.8 + 0.2 * r);
  }
}
