/**
 * The desktop's contacts and their certificate trust (issue #6; design.md "Security"), built
 * on the pins the CLI uses, so that one data dir means one truth for both:
 *
 *   DATA_DIR/contacts/<AoR>.pem                 the pinned certificate (contact-certificates.ts)
 *   DATA_DIR/presented-certificates/<AoR>.pem   a different certificate the contact presented,
 *                                               waiting for the user's decision (secure-messaging.ts)
 *   DATA_DIR/contact-book.json                  this file's own part, 0600: the contact ids the
 *                                               API hands out, per account, the sending policy,
 *                                               and which fingerprints the user verified
 *
 * Trust is derived, never stored beside the certificate it is about (RFC 3261 §23.2 asks the
 * user, not a flag, to decide):
 *   - `none`: nothing pinned;
 *   - `changed`: a presented certificate differs from the pinned one (the pin stays until the
 *     user accepts the new one; meanwhile every message signed with it is refused);
 *   - `verified`: the user compared the pinned fingerprint out of band and said so; the mark
 *     names that fingerprint, so an accepted new certificate is `pinned` again, not verified;
 *   - `pinned`: trusted on first use only.
 *
 * Pins belong to the data dir, not to an account (the CLI's SecureMessaging checks every
 * account's messages against the same pins), so every pinned contact is listed under every
 * account, each with its own id and policy; verification marks are per AoR.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Contact, ContactPolicy, TrustState } from '../../shared/api.js';
import { canonicalAor, canonicalAorOrUndefined } from '../security/aor.js';
import { fingerprintSha256 } from '../security/certificates.js';
import { bytesEqual, pemDecodeAll } from '../security/cms/der.js';
import { ContactCertificates } from '../security/contact-certificates.js';
import { ensurePrivateDir, readFileIfExists, writePrivateFile } from '../security/data-files.js';
import { presentedCertificatePath } from './secure-messaging.js';

/** The file of the book in the data dir. */
export const CONTACT_BOOK_FILE = 'contact-book.json';
const BOOK_FORMAT = 'sipnote-contact-book/1';

/** Why a contact command was refused; `code` is the API error code it becomes. */
export class ContactBookError extends Error {
  override readonly name = 'ContactBookError';
  constructor(
    readonly code: 'not-found' | 'invalid-state',
    message: string,
  ) {
    super(message);
  }
}

interface BookEntry {
  readonly id: number;
  readonly accountId: string;
  readonly aor: string;
  policy: ContactPolicy;
  displayName?: string;
}

interface BookFile {
  format: typeof BOOK_FORMAT;
  nextId: number;
  contacts: BookEntry[];
  /** Canonical AoR → the SHA-256 fingerprint the user verified. */
  verified: Record<string, string>;
}

export class ContactBook {
  readonly path: string;
  readonly pins: ContactCertificates;
  /** Writes, one after another, so that the file always ends as the last state. */
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    readonly dataDir: string,
    private readonly book: BookFile,
    pins: ContactCertificates,
  ) {
    this.path = join(dataDir, CONTACT_BOOK_FILE);
    this.pins = pins;
  }

  /** Reads the book (a missing or damaged one starts empty: pins and history are elsewhere). */
  static async open(dataDir: string, pins: ContactCertificates = new ContactCertificates(dataDir)): Promise<ContactBook> {
    const text = await readFileIfExists(join(dataDir, CONTACT_BOOK_FILE));
    return new ContactBook(dataDir, parseBook(text), pins);
  }

  /** The sending policy for `aor` under `accountId` (`smime` for a stranger). */
  policyOf(accountId: string, aor: string): ContactPolicy {
    const canonical = canonicalAorOrUndefined(aor);
    return this.book.contacts.find((entry) => entry.accountId === accountId && entry.aor === canonical)?.policy ?? 'smime';
  }

  /** Whether `aor` is a contact of `accountId` already. */
  has(accountId: string, aor: string): boolean {
    const canonical = canonicalAorOrUndefined(aor);
    return this.book.contacts.some((entry) => entry.accountId === accountId && entry.aor === canonical);
  }

  /** The contact `aor` of `accountId`, created (policy `smime`) when it is new. */
  async ensure(accountId: string, aor: string, displayName?: string): Promise<Contact> {
    const entry = await this.entryFor(accountId, canonicalAor(aor), displayName);
    return this.view(entry);
  }

  /** The contacts of `accountId` (every pin of the data dir, and whoever it wrote with), sorted by AoR. */
  async list(accountId: string, ownAor: string): Promise<Contact[]> {
    const own = canonicalAorOrUndefined(ownAor);
    for (const pin of await this.pins.list()) {
      if (pin.aor !== own) await this.entryFor(accountId, pin.aor);
    }
    const entries = this.book.contacts.filter((entry) => entry.accountId === accountId && entry.aor !== own).sort((a, b) => a.aor.localeCompare(b.aor) || a.id - b.id);
    return Promise.all(entries.map((entry) => this.view(entry)));
  }

  async get(id: number): Promise<Contact> {
    return this.view(this.entry(id));
  }

  /** The user compared the pinned fingerprint out of band. */
  async markVerified(id: number): Promise<Contact> {
    const entry = this.entry(id);
    const contact = await this.view(entry);
    if (contact.fingerprint === undefined) throw new ContactBookError('invalid-state', `${entry.aor} has no pinned certificate to verify`);
    if (contact.trust === 'changed') throw new ContactBookError('invalid-state', `the certificate of ${entry.aor} changed: accept or reject the new one first`);
    this.book.verified[entry.aor] = contact.fingerprint;
    await this.save();
    return this.view(entry);
  }

  /**
   * The user accepts the certificate the contact now presents: it replaces the pin (for the
   * CLI too) and is `pinned`, not verified, until the user verifies it as well.
   */
  async acceptChange(id: number): Promise<Contact> {
    const entry = this.entry(id);
    const presented = await this.presented(entry.aor);
    if (presented === undefined) throw new ContactBookError('invalid-state', `${entry.aor} presented no other certificate`);
    await this.pins.replace(entry.aor, presented);
    await rm(presentedCertificatePath(this.dataDir, entry.aor), { force: true });
    delete this.book.verified[entry.aor];
    await this.save();
    return this.view(entry);
  }

  /**
   * The user keeps the pinned certificate: the presented one is forgotten. A later message
   * signed with it is refused again, and asks again.
   */
  async rejectChange(id: number): Promise<Contact> {
    const entry = this.entry(id);
    if ((await this.presented(entry.aor)) === undefined) throw new ContactBookError('invalid-state', `${entry.aor} presented no other certificate`);
    await rm(presentedCertificatePath(this.dataDir, entry.aor), { force: true });
    return this.view(entry);
  }

  async setPolicy(id: number, policy: ContactPolicy): Promise<Contact> {
    const entry = this.entry(id);
    entry.policy = policy;
    await this.save();
    return this.view(entry);
  }

  /** Forgets the contacts of a removed account (pins and verification marks stay: they are the data dir's). */
  async removeAccount(accountId: string): Promise<void> {
    const before = this.book.contacts.length;
    this.book.contacts = this.book.contacts.filter((entry) => entry.accountId !== accountId);
    if (this.book.contacts.length !== before) await this.save();
  }

  /** What the API shows of a contact, from the pin files as they are now. */
  private async view(entry: BookEntry): Promise<Contact> {
    const pinned = await this.pins.pinned(entry.aor);
    const presented = pinned === undefined ? undefined : await this.presented(entry.aor);
    const fingerprint = pinned === undefined ? undefined : fingerprintSha256(pinned);
    const changed = pinned !== undefined && presented !== undefined && !bytesEqual(pinned, presented);
    let trust: TrustState = 'none';
    if (fingerprint !== undefined) trust = changed ? 'changed' : this.book.verified[entry.aor] === fingerprint ? 'verified' : 'pinned';
    return {
      id: entry.id,
      accountId: entry.accountId,
      aor: entry.aor,
      ...(entry.displayName === undefined ? {} : { displayName: entry.displayName }),
      ...(fingerprint === undefined ? {} : { fingerprint }),
      ...(changed ? { presentedFingerprint: fingerprintSha256(presented) } : {}),
      trust,
      policy: entry.policy,
    };
  }

  /** The certificate `aor` presented and the user has not decided on, if any. */
  private async presented(aor: string): Promise<Uint8Array | undefined> {
    const text = await readFileIfExists(presentedCertificatePath(this.dataDir, aor));
    if (text === undefined) return undefined;
    try {
      return pemDecodeAll(text.toString('latin1')).find((block) => block.label === 'CERTIFICATE')?.der;
    } catch {
      return undefined; // unreadable: nothing to accept
    }
  }

  private entry(id: number): BookEntry {
    const entry = this.book.contacts.find((known) => known.id === id);
    if (entry === undefined) throw new ContactBookError('not-found', `no contact ${id}`);
    return entry;
  }

  private async entryFor(accountId: string, canonical: string, displayName?: string): Promise<BookEntry> {
    const existing = this.book.contacts.find((entry) => entry.accountId === accountId && entry.aor === canonical);
    if (existing !== undefined) {
      if (displayName === undefined || displayName === '' || existing.displayName === displayName) return existing;
      existing.displayName = displayName;
      await this.save();
      return existing;
    }
    const entry: BookEntry = { id: this.book.nextId++, accountId, aor: canonical, policy: 'smime', ...(displayName === undefined || displayName === '' ? {} : { displayName }) };
    this.book.contacts.push(entry);
    await this.save();
    return entry;
  }

  /** Resolves once every write begun so far has finished (before the data dir may go away). */
  async flush(): Promise<void> {
    await this.saving.catch(() => undefined);
  }

  private save(): Promise<void> {
    const text = `${JSON.stringify(this.book, null, 2)}\n`;
    const write = async (): Promise<void> => {
      await ensurePrivateDir(this.dataDir);
      await writePrivateFile(this.path, text);
    };
    this.saving = this.saving.then(write, write);
    return this.saving;
  }
}

function parseBook(text: Buffer | undefined): BookFile {
  const empty: BookFile = { format: BOOK_FORMAT, nextId: 1, contacts: [], verified: {} };
  if (text === undefined) return empty;
  try {
    const parsed = JSON.parse(text.toString('utf8')) as Partial<BookFile>;
    if (parsed.format !== BOOK_FORMAT || !Array.isArray(parsed.contacts) || typeof parsed.nextId !== 'number') return empty;
    const contacts = parsed.contacts.filter(
      (entry): entry is BookEntry =>
        typeof entry === 'object' &&
        entry !== null &&
        Number.isSafeInteger(entry.id) &&
        typeof entry.accountId === 'string' &&
        typeof entry.aor === 'string' &&
        (entry.policy === 'smime' || entry.policy === 'legacy-plaintext'),
    );
    const verified: Record<string, string> = {};
    for (const [aor, fingerprint] of Object.entries(parsed.verified ?? {})) if (typeof fingerprint === 'string') verified[aor] = fingerprint;
    const nextId = Math.max(parsed.nextId, ...contacts.map((entry) => entry.id + 1), 1);
    return { format: BOOK_FORMAT, nextId, contacts, verified };
  } catch {
    return empty;
  }
}
