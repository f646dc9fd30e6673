import type { SipnoteBridge } from '../../shared/api.js';

declare global {
  interface Window {
    /** Set by the Electron preload (main/app/preload.cts); absent in a browser. */
    readonly sipnote?: SipnoteBridge;
  }
}
