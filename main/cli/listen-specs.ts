/** `udp:127.0.0.1:5081` <-> ListenSpec, as the CLI prints and reads them. */
import type { ListenSpec } from '../sip/transport/transport-layer.js';

export function formatListenSpec(spec: ListenSpec): string {
  const host = spec.host.includes(':') ? `[${spec.host}]` : spec.host;
  return `${spec.transport}:${host}:${spec.port}`;
}
