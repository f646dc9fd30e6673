/** The SIP transport layer (RFC 3261 §18): framing, sockets, TLS (§26, RFC 5922), the size-based transport choice. */
export { canonicalIp, endpointKey } from './address.js';
export type { AddressFamily, Endpoint } from './address.js';
export { chooseTransport, MTU_HEADROOM, UDP_LIMIT_UNKNOWN_MTU } from './choose-transport.js';
export type { SipTransportName } from './choose-transport.js';
export { DEFAULT_PONG_TIMEOUT_MS, FlowKeepalive } from './flow-keepalive.js';
export type { FlowKeepaliveAction, FlowKeepaliveOptions } from './flow-keepalive.js';
export { DEFAULT_SIP_PORT, DEFAULT_SIPS_PORT, formatListenSpec, parseListenSpec, withTcpCompanions } from './listen-spec.js';
export type { DatagramOrStream, ListenSpec, ParseListenSpecOptions } from './listen-spec.js';
export { canonicalServerName, checkSipServerIdentity, sipCertificateIdentities } from './server-identity.js';
export type { CertificateInput, SipCertificateIdentities } from './server-identity.js';
export type { ConnectionCloseReason, ConnectionInfo, TlsSessionInfo } from './stream-connection.js';
export { DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_MESSAGE_BYTES, StreamFramer } from './stream-framer.js';
export type { FramerEvent, FramerPhase, FramingErrorCode, StreamFramerOptions } from './stream-framer.js';
export { TransportError } from './transport-error.js';
export type { TransportErrorCode } from './transport-error.js';
export { TransportLayer } from './transport-layer.js';
export type {
  ConnectionClosedEvent,
  ConnectTarget,
  FlowFailedEvent,
  InboundMessage,
  KeepaliveEvent,
  KeepaliveOptions,
  LocalAddress,
  SendResult,
  SendTarget,
  TlsOptions,
  TransportDiagnostic,
  TransportDiagnosticKind,
  TransportLayerEvents,
  TransportLayerOptions,
} from './transport-layer.js';
