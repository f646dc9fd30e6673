/**
 * The Electron preload: exposes exactly the API contract (shared/api.ts `SipnoteBridge`) to
 * the renderer as `window.sipnote`, through contextBridge, and nothing else: no ipcRenderer,
 * no Node. One channel carries every command to the main process, which validates the
 * arguments (Messenger.dispatch); one carries the core's events back.
 *
 * A sandboxed preload is one CommonJS file that may require only 'electron' (toolchain.md
 * §6), hence `.cts`, `import = require`, and the channel names written out here (checked
 * against shared/api.ts at compile time) instead of imported at run time.
 */
import electron = require('electron');
import type {
  ApiEvent,
  ApiResponse,
  CommandName,
  IPC_EVENT_CHANNEL as EventChannel,
  IPC_INVOKE_CHANNEL as InvokeChannel,
  SipnoteBridge,
} from '../../shared/api.js';

const INVOKE_CHANNEL: typeof InvokeChannel = 'sipnote:invoke';
const EVENT_CHANNEL: typeof EventChannel = 'sipnote:event';

const bridge: SipnoteBridge = {
  invoke(command: CommandName, args: unknown): Promise<ApiResponse<unknown>> {
    return electron.ipcRenderer.invoke(INVOKE_CHANNEL, command, args) as Promise<ApiResponse<unknown>>;
  },
  onEvent(listener: (event: ApiEvent) => void): () => void {
    const handler = (_event: electron.IpcRendererEvent, event: ApiEvent): void => listener(event);
    electron.ipcRenderer.on(EVENT_CHANNEL, handler);
    return () => {
      electron.ipcRenderer.removeListener(EVENT_CHANNEL, handler);
    };
  },
};

electron.contextBridge.exposeInMainWorld('sipnote', bridge);
