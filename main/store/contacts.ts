/**
 * Contacts: a peer AoR under one of our accounts, with a display name, the sending policy and
 * the pinned certificate (design.md "Security": pinned on first use; a change is loud, never
 * silent; fingerprints are shown for out-of-band checks).
 *
 * The store only records decisions; deciding (is this certificate the pinned one? may we send
 * in plaintext?) is the security layer's job. The fingerprint is computed here from the DER,
 * so the two can never disagree.
 */
import type { AccountRepository } from './accounts.js';
import type { AorCanonicalizer } from './aor.js';
import { fingerprintOf } from './fingerprint.js';
import { atomically, type Db, type Statement } from './sql.js';
import { StoreError } from './store-error.js';
import type { Contact, ContactPolicy, TrustState } from './types.js';

export interface ContactInput {
  readonly account: string;
  readonly aor: string;
  /** Left unchanged when omitted on an existing contact. */
  readonly displayName?: string | null;
  /** Default for a new contact: `smime`. */
  readonly policy?: ContactPolicy;
}

interface ContactRow {
  id: number;
  account: string;
  aor: string;
  display_name: string | null;
  certificate: Buffer | null;
  certificate_sha256: Buffer | null;
  policy: ContactPolicy;
  trust: TrustState;
  created_at: number;
  updated_at: number;
}

const CONTACT_SELECT = 'SELECT k.*, a.aor AS account FROM contacts k JOIN accounts a ON a.id = k.account_id';

export class ContactRepository {
  private readonly selectById: Statement;
  private readonly selectByAor: Statement;
  private readonly selectOfAccount: Statement;
  private readonly insertRow: Statement;
  private readonly updateNameAndPolicy: Statement;
  private readonly updateCertificate: Statement;
  private readonly updateTrust: Statement;
  private readonly deleteRow: Statement;

  constructor(
    private readonly db: Db,
    private readonly aors: AorCanonicalizer,
    private readonly accounts: AccountRepository,
    private readonly now: () => number,
  ) {
    this.selectById = db.prepare(`${CONTACT_SELECT} WHERE k.id = ?`);
    this.selectByAor = db.prepare(`${CONTACT_SELECT} WHERE a.aor = ? AND k.aor = ?`);
    this.selectOfAccount = db.prepare(`${CONTACT_SELECT} WHERE a.aor = ? ORDER BY coalesce(k.display_name, k.aor), k.id`);
    this.insertRow = db.prepare(
      `INSERT INTO contacts (account_id, aor, display_name, policy, created_at, updated_at)
       VALUES (@accountId, @aor, @displayName, @policy, @now, @now)`,
    );
    this.updateNameAndPolicy = db.prepare(
      'UPDATE contacts SET display_name = @displayName, policy = @policy, updated_at = @now WHERE id = @id',
    );
    this.updateCertificate = db.prepare(
      `UPDATE contacts SET certificate = @certificate, certificate_sha256 = @fingerprint, trust = @trust,
       updated_at = @now WHERE id = @id`,
    );
    this.updateTrust = db.prepare('UPDATE contacts SET trust = @trust, updated_at = @now WHERE id = @id');
    this.deleteRow = db.prepare('DELETE FROM contacts WHERE id = ?');
  }

  get(id: number): Contact | undefined {
    const row = this.selectById.get(id) as ContactRow | undefined;
    return row && toContact(row);
  }

  find(account: string, aor: string): Contact | undefined {
    const row = this.selectByAor.get(this.aors.canonical(account), this.aors.canonical(aor)) as ContactRow | undefined;
    return row && toContact(row);
  }

  list(account: string): Contact[] {
    return (this.selectOfAccount.all(this.aors.canonical(account)) as ContactRow[]).map(toContact);
  }

  /** Creates the contact, or updates the display name and policy given. */
  upsert(input: ContactInput): Contact {
    const account = this.aors.canonical(input.account);
    const aor = this.aors.canonical(input.aor);
    return atomically(this.db, () => {
      const existing = this.selectByAor.get(account, aor) as ContactRow | undefined;
      const now = this.now();
      if (existing) {
        this.updateNameAndPolicy.run({
          id: existing.id,
          displayName: input.displayName !== undefined ? input.displayName : existing.display_name,
          policy: input.policy ?? existing.policy,
          now,
        });
      } else {
        this.insertRow.run({
          accountId: this.accounts.idOf(account),
          aor,
          displayName: input.displayName ?? null,
          policy: input.policy ?? 'smime',
          now,
        });
      }
      return toContact(this.selectByAor.get(account, aor) as ContactRow);
    });
  }

  setPolicy(id: number, policy: ContactPolicy): Contact {
    const existing = this.require(id);
    this.updateNameAndPolicy.run({ id, displayName: existing.displayName, policy, now: this.now() });
    return this.require(id);
  }

  /**
   * Pins `der` as the contact's certificate (replacing any other: call it on first use, or
   * after the user accepted a change) with trust `pinned`, or `verified` once the user has
   * compared the fingerprint out of band.
   */
  pinCertificate(id: number, der: Uint8Array, trust: 'pinned' | 'verified' = 'pinned'): Contact {
    this.require(id);
    if (der.length === 0) throw new StoreError('invalid-input', 'an empty certificate cannot be pinned');
    this.updateCertificate.run({
      id,
      certificate: Buffer.from(der),
      fingerprint: fingerprintOf(der),
      trust,
      now: this.now(),
    });
    return this.require(id);
  }

  /** Marks the pinned certificate verified, or flags that the peer presented another one. */
  setTrust(id: number, trust: 'pinned' | 'verified' | 'changed'): Contact {
    const existing = this.require(id);
    if (existing.certificate === null) {
      throw new StoreError('invalid-transition', `contact ${id} has no pinned certificate to trust`);
    }
    this.updateTrust.run({ id, trust, now: this.now() });
    return this.require(id);
  }

  /** Forgets the pinned certificate (trust back to `none`). */
  clearCertificate(id: number): Contact {
    this.require(id);
    this.updateCertificate.run({ id, certificate: null, fingerprint: null, trust: 'none', now: this.now() });
    return this.require(id);
  }

  /** Deletes the contact (not the conversation: history stays). */
  remove(id: number): boolean {
    return this.deleteRow.run(id).changes > 0;
  }

  private require(id: number): Contact {
    const contact = this.get(id);
    if (!contact) throw new StoreError('not-found', `no contact ${id}`);
    return contact;
  }
}

function toContact(row: ContactRow): Contact {
  return {
    id: row.id,
    account: row.account,
    aor: row.aor,
    displayName: row.display_name,
    certificate: row.certificate,
    fingerprint: row.certificate_sha256 === null ? null : row.certificate_sha256.toString('hex'),
    policy: row.policy,
    trust: row.trust,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
