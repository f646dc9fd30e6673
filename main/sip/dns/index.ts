/** Locating SIP servers with DNS (RFC 3263), failover between them, and `im:` resolution (RFC 3861). */
export { classifyDnsError, createDnsResolver } from './dns-resolver.js';
export type { DnsResolver, DnsResolverOptions, NaptrRecord, SrvRecord } from './dns-resolver.js';
export { Failover, failureReason, TargetHealth } from './failover.js';
export type { AttemptOutcome, FailureReason, TargetHealthOptions } from './failover.js';
export { resolveImUri } from './im-resolution.js';
export type { ImResolution } from './im-resolution.js';
export { locateServers } from './locate-servers.js';
export type { AddressFamilyNumber, LocateOptions } from './locate-servers.js';
export { selectSipNaptrServices } from './naptr.js';
export type { SipNaptrService } from './naptr.js';
export { ServerLocationError } from './server-location-error.js';
export type { DnsLookupFailure, ServerLocationErrorCode } from './server-location-error.js';
export { defaultPort, targetKey } from './server-target.js';
export type { ServerTarget, SipTransportName, TargetSource } from './server-target.js';
export { isNoServiceTarget, orderSrvRecords } from './srv-order.js';
