/** The SIP transport layer (RFC 3261 §18): framing, sockets, and the size-based transport choice. */
export { canonicalIp, endpointKey } from './address.js';
export type { AddressFamily, Endpoint } from './address.js';
export { chooseTransport, MTU_HEADROOM, UDP_LIMIT_UNKNOWN_MTU } from './choose-transport.js';
export type { SipTransportName } from './choose-transport.js';
export { DEFAULT_SIP_PORT, formatListenSpec, parseListenSpec, withTcpCompanions } from './listen-spec.js';
export type { DatagramOrStream, ListenSpec } from './listen-spec.js';
export type { ConnectionCloseReason, ConnectionInfo } from './stream-connection.js';
export { DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_MESSAGE_BYTES, StreamFramer } from './stream-framer.js';
export type { FramerEvent, FramerPhase, FramingErrorCode, StreamFramerOptions } from './stream-framer.js';
export { TransportError } from './transport-error.js';
export type { TransportErrorCode } from './transport-error.js';
export { TransportLayer } from './transport-layer.js';
export type {
  ConnectionClosedEvent,
  InboundMessage,
  KeepaliveEvent,
  LocalAddress,
  SendResult,
  SendTarget,
  TransportDiagnostic,
  TransportDiagnosticKind,
  TransportLayerEvents,
  TransportLayerOptions,
} from './transport-layer.js';
