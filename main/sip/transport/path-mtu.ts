/**
 * The path MTU, where it is known (RFC 3261 §18.1.1, RFC 3428 §8).
 *
 * Both RFCs let a request over 1300 bytes travel over UDP when it stays 200 bytes below a KNOWN
 * path MTU. We know it in one case only: a loopback destination, whose path is the loopback
 * interface and whose MTU the kernel tells us (Linux: /sys/class/net/lo/mtu, typically 65536).
 * Everywhere else the MTU is unknown and the 1300-byte rule applies.
 */
import { readFileSync } from 'node:fs';

let loopbackMtu: number | null | undefined;

export function knownPathMtu(address: string): number | undefined {
  if (!isLoopbackAddress(address)) return undefined;
  if (loopbackMtu === undefined) loopbackMtu = readLoopbackMtu();
  return loopbackMtu ?? undefined;
}

function isLoopbackAddress(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address === '0:0:0:0:0:0:0:1';
}

function readLoopbackMtu(): number | null {
  try {
    const value = Number(readFileSync('/sys/class/net/lo/mtu', 'utf8').trim());
    return Number.isInteger(value) && value >= 576 ? value : null;
  } catch {
    // Not Linux, or no sysfs: the MTU stays unknown and the conservative rule applies.
    return null;
  }
}
