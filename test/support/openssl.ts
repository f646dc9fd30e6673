/** OpenSSL as an independent judge of what our code makes (the `openssl` command on PATH). */
import { execFileSync } from 'node:child_process';

/** The SHA-256 fingerprint of a PEM certificate as `openssl x509 -fingerprint` prints it: `AB:CD:…`, upper case. */
export function opensslFingerprint(certificatePem: string): string {
  const printed = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], { input: certificatePem, encoding: 'utf8' }).trim();
  const match = /^sha256 Fingerprint=([0-9A-F:]+)$/i.exec(printed);
  if (!match?.[1]) throw new Error(`unexpected openssl output: ${printed}`);
  return match[1].toUpperCase();
}
