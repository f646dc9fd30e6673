/**
 * Via values that look nearly usual but break a rule the Via readers enforce: a port or octet
 * out of range, a repeated or valueless parameter, a `received` that is no address, a host
 * name with a leading hyphen, an IPv6 reference that is no address. parseVia must refuse
 * each (parser-fast-paths.test.ts), and no fast path may take one (head-scanner.test.ts).
 */
export const INVALID_VIAS: readonly string[] = [
  'SIP/2.0/UDP 192.0.2.10:65536;branch=z9',
  'SIP/2.0/UDP 256.0.2.10;branch=z9',
  'SIP/2.0/UDP host;branch=a;branch=b',
  'SIP/2.0/UDP host;branch',
  'SIP/2.0/UDP host;received=host.example.com',
  'SIP/2.0/UDP host;rport=70000',
  'SIP/2.0/UDP -host.example.com',
  'SIP/2.0/UDP [1::2::3]:5060;branch=z9',
  'SIP/2.0/UDP [::1]:99999;branch=z9',
  'SIP/2.0/UDP host  ;branch=z9;branch=z9',
  'SIP/2.0/UDP host ;branch',
];
