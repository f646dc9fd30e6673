import type { ApiClient } from './api-client.js';
import { BridgeApiClient } from './bridge-client.js';
import { WebSocketApiClient } from './ws-client.js';

/** Electron's preload bridge when there is one, else the browser host's WebSocket. */
export function createApiClient(): ApiClient {
  return window.sipnote !== undefined ? new BridgeApiClient(window.sipnote) : new WebSocketApiClient();
}
