/**
 * Certificate fingerprints: SHA-256 over the DER certificate, shown as lowercase hex and stored
 * as the 32 raw bytes (half the size of the hex text, on every signed message).
 */
import { createHash } from 'node:crypto';
import { StoreError } from './store-error.js';

export function fingerprintOf(der: Uint8Array): Buffer {
  return createHash('sha256').update(der).digest();
}

/** Accepts `ab12…` or the colon-separated `AB:12:…` form people copy from other tools. */
export function fingerprintBytes(text: string): Buffer {
  const hex = text.replaceAll(':', '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new StoreError('invalid-input', `not a SHA-256 fingerprint: ${JSON.stringify(text)}`);
  }
  return Buffer.from(hex, 'hex');
}
