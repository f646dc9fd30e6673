/**
 * ApiClient over the browser host's WebSocket (`/api` on the page's own host). The token
 * travels in the HttpOnly cookie the host set on the first visit, so this code never sees it.
 * Requests wait while (re)connecting; a lost link rejects what was in flight and reconnects
 * with a growing pause, then reports `open` so the views reload.
 */
import { WS_PATH, type ApiEvent, type ApiResponse, type CommandArgs, type CommandName, type CommandResult, type ServerFrame } from '../../shared/api.js';
import { ApiError, Listeners, type ApiClient, type ConnectionState } from './api-client.js';

interface Pending {
  resolve(value: unknown): void;
  reject(error: ApiError): void;
}

export class WebSocketApiClient implements ApiClient {
  readonly kind = 'websocket';
  private socket: WebSocket | undefined;
  private state: ConnectionState = 'connecting';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly waiting: Array<() => void> = [];
  private readonly events = new Listeners<ApiEvent>();
  private readonly connection = new Listeners<ConnectionState>();
  private retryDelay = 500;

  constructor(private readonly url: string = socketUrl()) {
    this.connect();
  }

  call<C extends CommandName>(command: C, args: CommandArgs<C>): Promise<CommandResult<C>> {
    return new Promise<CommandResult<C>>((resolve, reject) => {
      const id = this.nextId++;
      const send = (): void => {
        this.pending.set(id, { resolve: (value) => resolve(value as CommandResult<C>), reject });
        this.socket?.send(JSON.stringify({ id, command, args }));
      };
      if (this.state === 'open') send();
      else this.waiting.push(send);
    });
  }

  onEvent(listener: (event: ApiEvent) => void): () => void {
    return this.events.add(listener);
  }

  onConnection(listener: (state: ConnectionState) => void): () => void {
    listener(this.state);
    return this.connection.add(listener);
  }

  private connect(): void {
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener('open', () => {
      this.retryDelay = 500;
      this.setState('open');
      for (const send of this.waiting.splice(0)) send();
    });
    socket.addEventListener('message', (event: MessageEvent<unknown>) => {
      if (typeof event.data !== 'string') return;
      this.receive(JSON.parse(event.data) as ServerFrame);
    });
    socket.addEventListener('close', () => {
      for (const pending of this.pending.values()) pending.reject(new ApiError('disconnected', 'the connection to sipnote was lost'));
      this.pending.clear();
      this.setState('closed');
      setTimeout(() => {
        this.setState('connecting');
        this.connect();
      }, this.retryDelay);
      this.retryDelay = Math.min(this.retryDelay * 2, 10_000);
    });
  }

  private receive(frame: ServerFrame): void {
    if ('event' in frame) {
      this.events.emit(frame.event);
      return;
    }
    const pending = this.pending.get(frame.id);
    if (pending === undefined) return;
    this.pending.delete(frame.id);
    settle(frame.response, pending);
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.connection.emit(state);
  }
}

function settle(response: ApiResponse<unknown>, pending: Pending): void {
  if (response.ok) pending.resolve(response.value);
  else pending.reject(new ApiError(response.error.code, response.error.message, response.error.issues));
}

function socketUrl(): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${WS_PATH}`;
}
