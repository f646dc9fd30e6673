/**
 * Contacts' certificates, pinned on first use (design.md, security model; RFC 3261 §23.2: a
 * UA "SHOULD" keep the certificates it has seen and warn when one changes). Self-signed
 * end-user certificates are not chained to anything, so the first certificate seen for a
 * contact is kept and every later one must be the same; a different one is never taken
 * silently: `pin` reports the conflict and only `replace`, called when the user has accepted
 * the new certificate (after comparing fingerprints out of band), changes the pin.
 *
 *   DATA_DIR/contacts/<AoR as file name>.pem     0600, one per contact:
 *     AoR: sip:bob@example.com                  explanatory text (RFC 7468 §5.2), for people
 *     SHA-256 Fingerprint: AB:CD:…                and for listing
 *     Pinned: 2026-05-01T12:00:00.000Z
 *     -----BEGIN CERTIFICATE----- …
 *
 * Files are simple to inspect and to hand to `openssl x509`; a later durable store may move
 * this into SQLite behind the same methods.
 *
 * `pinned` is asked for every message received, so the pins read are kept in memory, each with
 * the file's identity and times (device, inode, size, mtime and ctime in nanoseconds). Another
 * process (the CLI's `keys trust`, a second instance) may change a pin at any time, so every
 * lookup compares that stamp with a fresh `stat` of the file and reads it again when anything
 * differs. Our writes replace a file by rename, which gives it a new inode, and any write
 * changes its ctime; the stamp is taken before the read, so a change racing with the read only
 * causes another read later, never an old certificate kept under a new stamp.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { aorFileName, canonicalAor, certificateNamesAor } from './aor.js';
import { certificateInfo } from './certificates.js';
import { bytesEqual, copyBytes, pemDecodeAll, pemEncode } from './cms/der.js';
import { createPrivateFile, ensurePrivateDir, readFileIfExists, writePrivateFile } from './data-files.js';

export type ContactCertificateErrorCode =
  /** The certificate does not name the contact's AoR (RFC 8591 §4.4.1). */
  | 'aor-mismatch'
  /** Not a certificate we can read. */
  | 'bad-certificate'
  /** A pin file exists and cannot be read: refusing to treat that as "no pin". */
  | 'corrupt';

export class ContactCertificateError extends Error {
  override readonly name = 'ContactCertificateError';
  constructor(
    readonly code: ContactCertificateErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What `pin` did. */
export type PinResult =
  /** There was no certificate for the contact; this one is now pinned. */
  | { readonly status: 'pinned'; readonly certificateDer: Uint8Array }
  /** The same certificate was already pinned. */
  | { readonly status: 'unchanged'; readonly certificateDer: Uint8Array }
  /** Another certificate is pinned; nothing was changed. Ask the user, then `replace`. */
  | { readonly status: 'conflict'; readonly pinnedDer: Uint8Array; readonly offeredDer: Uint8Array };

export interface PinnedContact {
  readonly aor: string;
  readonly certificateDer: Uint8Array;
}

/** What was read from a pin file, and the stamp of the file it was read from. */
interface CachedPin {
  readonly stamp: string;
  /** Undefined: there was no file. */
  readonly der: Uint8Array | undefined;
}

/** Pins kept in memory per ContactCertificates; the oldest read is dropped first. */
const PIN_CACHE_SIZE = 1024;

export class ContactCertificates {
  private readonly dir: string;
  /** By pin file path. */
  private readonly cache = new Map<string, CachedPin>();

  constructor(readonly dataDir: string) {
    this.dir = join(dataDir, 'contacts');
  }

  /** The file a contact's pinned certificate lives in. */
  pathOf(aor: string): string {
    return join(this.dir, `${aorFileName(canonicalAor(aor))}.pem`);
  }

  /**
   * The pinned certificate of `aor` (DER, a copy the caller may keep), or undefined when none
   * is pinned. Reads the file only when it changed since the last read (see the file comment).
   */
  async pinned(aor: string): Promise<Uint8Array | undefined> {
    const path = this.pathOf(aor);
    const stamp = await fileStamp(path);
    const cached = this.cache.get(path);
    if (cached !== undefined && cached.stamp === stamp) return cached.der === undefined ? undefined : copyBytes(cached.der);
    const text = stamp === ABSENT ? undefined : await readFileIfExists(path);
    const der = text === undefined ? undefined : readPinFile(text, path);
    this.cache.delete(path);
    if (this.cache.size >= PIN_CACHE_SIZE) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    // A file that vanished between the stat and the read is remembered as absent under the
    // stamp of a file that existed: the next lookup sees ABSENT, which differs, and looks again.
    this.cache.set(path, { stamp, der: der === undefined ? undefined : copyBytes(der) });
    return der;
  }

  /**
   * Pins `certificateDer` for `aor` if nothing is pinned yet (atomically: of two concurrent
   * first uses one wins and the other compares against it). Never overwrites a different pin.
   * Throws ContactCertificateError('aor-mismatch') for a certificate that does not name `aor`.
   */
  async pin(aor: string, certificateDer: Uint8Array): Promise<PinResult> {
    const canonical = canonicalAor(aor);
    const der = copyBytes(certificateDer);
    const file = pinFileText(canonical, der);
    await ensurePrivateDir(this.dir);
    const path = this.pathOf(canonical);
    this.cache.delete(path);
    if (await createPrivateFile(path, file)) return { status: 'pinned', certificateDer: der };
    const existingText = await readFileIfExists(path);
    if (existingText === undefined) return this.pin(canonical, der); // forgotten in between
    const pinnedDer = readPinFile(existingText, path);
    return bytesEqual(pinnedDer, der) ? { status: 'unchanged', certificateDer: der } : { status: 'conflict', pinnedDer, offeredDer: der };
  }

  /** Pins `certificateDer` for `aor` in place of any other: only after the user accepted it. */
  async replace(aor: string, certificateDer: Uint8Array): Promise<void> {
    const canonical = canonicalAor(aor);
    const file = pinFileText(canonical, copyBytes(certificateDer));
    await ensurePrivateDir(this.dir);
    const path = this.pathOf(canonical);
    this.cache.delete(path);
    try {
      await writePrivateFile(path, file);
    } finally {
      this.cache.delete(path); // a lookup that ran during the write
    }
  }

  /** Removes the pin of `aor`; false when there was none. */
  async forget(aor: string): Promise<boolean> {
    const path = this.pathOf(aor);
    this.cache.delete(path);
    const existed = (await readFileIfExists(path)) !== undefined;
    try {
      await rm(path, { force: true });
    } finally {
      this.cache.delete(path);
    }
    return existed;
  }

  /** Every pinned contact, by AoR. */
  async list(): Promise<PinnedContact[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const contacts: PinnedContact[] = [];
    for (const name of names.filter((entry) => entry.endsWith('.pem') && !entry.startsWith('.')).sort()) {
      const path = join(this.dir, name);
      const text = await readFileIfExists(path);
      if (text === undefined) continue;
      const aor = /^AoR: (\S+)$/m.exec(text.toString('latin1'))?.[1];
      if (aor === undefined) throw new ContactCertificateError('corrupt', `${path} does not say whose certificate it is`);
      contacts.push({ aor, certificateDer: readPinFile(text, path) });
    }
    return contacts;
  }
}

const ABSENT = 'absent';

/** What identifies one version of a file (see the file comment), or ABSENT when there is none. */
async function fileStamp(path: string): Promise<string> {
  try {
    const info = await stat(path, { bigint: true });
    return `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return ABSENT;
    throw error;
  }
}

/** Checks that `der` is a certificate naming `canonical`, and returns the pin file for it. */
function pinFileText(canonical: string, der: Uint8Array): string {
  let info;
  try {
    info = certificateInfo(der);
  } catch (error) {
    throw new ContactCertificateError('bad-certificate', `not a certificate: ${(error as Error).message}`, { cause: error });
  }
  if (!certificateNamesAor(info, canonical)) {
    const names = [...info.sipUris, ...info.emailAddresses];
    throw new ContactCertificateError('aor-mismatch', `the certificate is for ${names.length > 0 ? names.join(', ') : info.subject}, not ${canonical}`);
  }
  return `AoR: ${canonical}\nSHA-256 Fingerprint: ${info.fingerprintSha256}\nPinned: ${new Date().toISOString()}\n${pemEncode('CERTIFICATE', der)}`;
}

function readPinFile(text: Buffer, path: string): Uint8Array {
  try {
    const der = pemDecodeAll(text.toString('latin1')).find((block) => block.label === 'CERTIFICATE')?.der;
    if (!der) throw new Error('no CERTIFICATE block');
    certificateInfo(der);
    return der;
  } catch (error) {
    throw new ContactCertificateError('corrupt', `${path} cannot be read (${(error as Error).message}); it is not treated as "no certificate pinned": repair or delete it`, { cause: error });
  }
}
