/**
 * Fresh identifiers (main/sip/ua/identifiers.ts): tags are 64 random bits as 16 lower-case hex
 * digits (RFC 3261 §19.3), each one new, whatever point of the CSPRNG pool they come from.
 */
import { describe, expect, it } from 'vitest';
import { BRANCH_MAGIC_COOKIE, newBranch, newCallId, newTag } from '../../main/sip/ua/identifiers.js';

describe('newTag', () => {
  it('writes 16 lower-case hex digits, a new tag every time, across refills of the pool', () => {
    const tags = Array.from({ length: 5000 }, () => newTag()); // 40,000 bytes: the 4 KiB pool refills several times
    for (const tag of tags) expect(tag).toMatch(/^[0-9a-f]{16}$/);
    expect(new Set(tags).size).toBe(tags.length);
  });

  it('uses every digit in every position (both nibbles of every byte)', () => {
    const tags = Array.from({ length: 2000 }, () => newTag());
    for (let position = 0; position < 16; position++) {
      expect(new Set(tags.map((tag) => tag[position])).size).toBe(16);
    }
  });
});

describe('newBranch and newCallId', () => {
  it('start with the magic cookie, and end with the host without brackets', () => {
    expect(newBranch()).toMatch(new RegExp(`^${BRANCH_MAGIC_COOKIE}[A-Za-z0-9_-]{16}$`));
    expect(newCallId('[::1]')).toMatch(/^[A-Za-z0-9_-]{20}@::1$/);
  });
});
