/**
 * The only way the renderer reaches the core: an ApiClient. Two implementations, the same
 * contract (shared/api.ts): over the browser host's WebSocket (ws-client.ts) and over the
 * Electron preload bridge `window.sipnote` (bridge-client.ts). Components never know which.
 */
import type { ApiErrorCode, ApiEvent, CommandArgs, CommandName, CommandResult } from '../../shared/api.js';

export type ConnectionState = 'connecting' | 'open' | 'closed';

export interface ApiClient {
  readonly kind: 'websocket' | 'electron';
  /** Runs a command; rejects with ApiError when the core answers `ok: false` or the link is down. */
  call<C extends CommandName>(command: C, args: CommandArgs<C>): Promise<CommandResult<C>>;
  /** Returns the function that unsubscribes. */
  onEvent(listener: (event: ApiEvent) => void): () => void;
  /** The link to the core; a client that reconnects reports `open` again, and callers reload. */
  onConnection(listener: (state: ConnectionState) => void): () => void;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode | 'disconnected',
    message: string,
    readonly issues: readonly string[] = [],
  ) {
    super(message);
  }
}

/** A small fan-out used by both clients. */
export class Listeners<T> {
  private readonly set = new Set<(value: T) => void>();

  add(listener: (value: T) => void): () => void {
    this.set.add(listener);
    return () => this.set.delete(listener);
  }

  emit(value: T): void {
    for (const listener of [...this.set]) {
      try {
        listener(value);
      } catch (error) {
        console.error('sipnote: a listener failed', error);
      }
    }
  }
}
