/**
 * Pinned contact certificates (trust on first use, loud on change) and the AoR file names
 * they are stored under.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { aorFileName, canonicalAor, certificateNamesAor } from '../../main/security/aor.js';
import { createIdentity } from '../../main/security/certificates.js';
import { ContactCertificateError, ContactCertificates } from '../../main/security/contact-certificates.js';
import { cleanupsAfterEach, tempDir } from '../support/cleanups.js';

const cleanups = cleanupsAfterEach();

function store(): ContactCertificates {
  return new ContactCertificates(join(tempDir(cleanups, 'sipnote-contacts-'), 'data'));
}

describe('ContactCertificates', () => {
  it('pins on first use, reports the same certificate as unchanged and another as a conflict', async () => {
    const contacts = store();
    const [first, second] = [await createIdentity({ aor: 'sip:bob@example.com' }), await createIdentity({ aor: 'sip:bob@example.com' })];
    expect(await contacts.pinned('sip:bob@example.com')).toBeUndefined();
    expect((await contacts.pin('sip:bob@example.com', first.certificateDer)).status).toBe('pinned');
    expect((await contacts.pin('sip:bob@Example.com;transport=tcp', first.certificateDer)).status).toBe('unchanged');
    const conflict = await contacts.pin('sip:bob@example.com', second.certificateDer);
    expect(conflict).toEqual({ status: 'conflict', pinnedDer: first.certificateDer, offeredDer: second.certificateDer });
    expect(await contacts.pinned('sip:bob@example.com')).toEqual(first.certificateDer);
    await contacts.replace('sip:bob@example.com', second.certificateDer);
    expect(await contacts.pinned('sip:bob@example.com')).toEqual(second.certificateDer);
    expect(await contacts.list()).toEqual([{ aor: 'sip:bob@example.com', certificateDer: second.certificateDer }]);
    expect(await contacts.forget('sip:bob@example.com')).toBe(true);
    expect(await contacts.forget('sip:bob@example.com')).toBe(false);
    expect(await contacts.list()).toEqual([]);
  });

  it('of two concurrent first uses with different certificates, exactly one is pinned', async () => {
    const contacts = store();
    const candidates = await Promise.all(Array.from({ length: 6 }, () => createIdentity({ aor: 'sip:race@example.com' })));
    const results = await Promise.all(candidates.map((candidate) => contacts.pin('sip:race@example.com', candidate.certificateDer)));
    expect(results.filter((result) => result.status === 'pinned')).toHaveLength(1);
    expect(results.filter((result) => result.status === 'conflict')).toHaveLength(5);
    const winner = results.find((result) => result.status === 'pinned');
    expect(await contacts.pinned('sip:race@example.com')).toEqual(winner?.status === 'pinned' ? winner.certificateDer : undefined);
  });

  it('refuses a certificate that does not name the contact, and garbage', async () => {
    const contacts = store();
    const bob = await createIdentity({ aor: 'sip:bob@example.com' });
    await expect(contacts.pin('sip:mallory@example.com', bob.certificateDer)).rejects.toMatchObject({ name: 'ContactCertificateError', code: 'aor-mismatch' });
    await expect(contacts.pin('sip:bob@example.com', Uint8Array.of(0x30, 0x00))).rejects.toMatchObject({ code: 'bad-certificate' });
    expect(await contacts.pinned('sip:mallory@example.com')).toBeUndefined();
  });

  it('a damaged pin file is an error, never "nothing pinned" (which would let any certificate in)', async () => {
    const contacts = store();
    const bob = await createIdentity({ aor: 'sip:bob@example.com' });
    await contacts.pin('sip:bob@example.com', bob.certificateDer);
    const path = contacts.pathOf('sip:bob@example.com');
    writeFileSync(path, readFileSync(path, 'utf8').replace(/-----BEGIN CERTIFICATE-----\n.{10}/, '-----BEGIN CERTIFICATE-----\n!!!!!!!!!!'));
    await expect(contacts.pinned('sip:bob@example.com')).rejects.toBeInstanceOf(ContactCertificateError);
    await expect(contacts.pin('sip:bob@example.com', bob.certificateDer)).rejects.toMatchObject({ code: 'corrupt' });
  });

  it('a pin changed by another process is seen at the next lookup, though pins are kept in memory', async () => {
    const ours = store();
    const theirs = new ContactCertificates(ours.dataDir); // another process: its own memory, the same files
    const [first, second] = [await createIdentity({ aor: 'sip:bob@example.com' }), await createIdentity({ aor: 'sip:bob@example.com' })];
    expect(await ours.pinned('sip:bob@example.com')).toBeUndefined();
    await theirs.pin('sip:bob@example.com', first.certificateDer);
    expect(await ours.pinned('sip:bob@example.com')).toEqual(first.certificateDer);
    expect(await ours.pinned('sip:bob@example.com')).toEqual(first.certificateDer);
    await theirs.replace('sip:bob@example.com', second.certificateDer);
    expect(await ours.pinned('sip:bob@example.com')).toEqual(second.certificateDer);
    await theirs.forget('sip:bob@example.com');
    expect(await ours.pinned('sip:bob@example.com')).toBeUndefined();
    await theirs.pin('sip:bob@example.com', first.certificateDer);
    expect(await ours.pinned('sip:bob@example.com')).toEqual(first.certificateDer);
  });

  it('notices a pin file rewritten in place with the same size after it was read', async () => {
    const contacts = store();
    const [first, second] = [await createIdentity({ aor: 'sip:bob@example.com' }), await createIdentity({ aor: 'sip:bob@example.com' })];
    await contacts.pin('sip:bob@example.com', first.certificateDer);
    expect(await contacts.pinned('sip:bob@example.com')).toEqual(first.certificateDer);
    const path = contacts.pathOf('sip:bob@example.com');
    const text = readFileSync(path, 'utf8');
    // Same length, same inode: only the times tell (a hand edit, or a tool that writes in place).
    writeFileSync(path, text.replace(/-----BEGIN CERTIFICATE-----\n.{10}/, '-----BEGIN CERTIFICATE-----\n!!!!!!!!!!'));
    await expect(contacts.pinned('sip:bob@example.com')).rejects.toMatchObject({ code: 'corrupt' });
    writeFileSync(path, text);
    expect(await contacts.pinned('sip:bob@example.com')).toEqual(first.certificateDer);
    await contacts.replace('sip:bob@example.com', second.certificateDer);
    expect(await contacts.pinned('sip:bob@example.com')).toEqual(second.certificateDer);
  });

  it('hands out copies: changing what pinned returned does not change the pin', async () => {
    const contacts = store();
    const bob = await createIdentity({ aor: 'sip:bob@example.com' });
    await contacts.pin('sip:bob@example.com', bob.certificateDer);
    const pinned = await contacts.pinned('sip:bob@example.com');
    pinned?.fill(0);
    expect(await contacts.pinned('sip:bob@example.com')).toEqual(bob.certificateDer);
  });
});

describe('AoR names', () => {
  it('canonicalises like uri.ts aorOf and refuses non-SIP URIs', () => {
    expect(canonicalAor(' sip:Bob@Example.COM:5070;transport=tcp?subject=x ')).toBe('sip:Bob@example.com:5070');
    expect(canonicalAor('sips:%61lice@[2001:DB8::1]')).toBe('sips:alice@[2001:db8::1]');
    expect(() => canonicalAor('tel:+15551234')).toThrow(/sip: or sips:/);
    expect(() => canonicalAor('not a uri')).toThrow();
  });

  it('makes file names that keep case, avoid : and /, and stay short', () => {
    expect(aorFileName('sip:bob@example.com')).toBe('sip%3Abob@example.com');
    expect(aorFileName('sip:Bob@example.com')).toBe('sip%3A%42ob@example.com');
    expect(aorFileName('sip:a/b@[::1]:5060')).toBe('sip%3Aa%2Fb@%5B%3A%3A1%5D%3A5060');
    const long = `sip:${'x'.repeat(400)}@example.com`;
    expect(aorFileName(long).length).toBeLessThanOrEqual(160);
    expect(aorFileName(long)).not.toBe(aorFileName(`sip:${'x'.repeat(401)}@example.com`));
  });

  it('matches certificates by SIP URI or by the RFC 3261 §23.1 user@host email form', () => {
    expect(certificateNamesAor({ sipUris: ['sip:bob@EXAMPLE.com;transport=tls'], emailAddresses: [] }, 'sip:bob@example.com')).toBe(true);
    expect(certificateNamesAor({ sipUris: ['sip:Bob@example.com'], emailAddresses: [] }, 'sip:bob@example.com')).toBe(false);
    expect(certificateNamesAor({ sipUris: [], emailAddresses: ['bob@Example.com'] }, 'sip:bob@example.com')).toBe(true);
    expect(certificateNamesAor({ sipUris: ['sip:not a uri'], emailAddresses: ['mallory@example.com'] }, 'sip:bob@example.com')).toBe(false);
  });
});
