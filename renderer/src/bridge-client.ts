/** ApiClient over the Electron preload bridge (`window.sipnote`, main/app/preload.cts). */
import type { ApiEvent, CommandArgs, CommandName, CommandResult, SipnoteBridge } from '../../shared/api.js';
import { ApiError, type ApiClient, type ConnectionState } from './api-client.js';

export class BridgeApiClient implements ApiClient {
  readonly kind = 'electron';

  constructor(private readonly bridge: SipnoteBridge) {}

  async call<C extends CommandName>(command: C, args: CommandArgs<C>): Promise<CommandResult<C>> {
    const response = await this.bridge.invoke(command, args);
    if (!response.ok) throw new ApiError(response.error.code, response.error.message, response.error.issues);
    return response.value as CommandResult<C>;
  }

  onEvent(listener: (event: ApiEvent) => void): () => void {
    return this.bridge.onEvent(listener);
  }

  /** IPC to the main process cannot drop while the window lives. */
  onConnection(listener: (state: ConnectionState) => void): () => void {
    listener('open');
    return () => undefined;
  }
}
