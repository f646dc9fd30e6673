/**
 * `readOid` against a plain reference decoder (X.690 §8.19): the known-OID table it consults
 * first must give exactly what decoding gives, and elements of other readers (a plain
 * `DerElement`, read from `content`) must read as elements of ours do.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { CmsError, OID, derOid, derTlv, readDer, readOid, readSequence, type DerElement } from '../../main/security/cms/der.js';

/** The decoder `readOid` had before the table: the reference. */
function referenceOid(content: Uint8Array): string {
  if (content.length === 0 || content.length > 64) throw new CmsError('malformed', 'bad object identifier');
  let text = '';
  let value = 0;
  for (let i = 0; i < content.length; i++) {
    const byte = content[i] as number;
    if (value === 0 && byte === 0x80) throw new CmsError('malformed', 'non-minimal object identifier');
    value = value * 128 + (byte & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 256) throw new CmsError('malformed', 'object identifier arc too large');
    if ((byte & 0x80) === 0) {
      if (text === '') text = value < 80 ? `${Math.floor(value / 40)}.${value % 40}` : `2.${value - 80}`;
      else text += `.${value}`;
      value = 0;
    } else if (i === content.length - 1) {
      throw new CmsError('malformed', 'truncated object identifier');
    }
  }
  return text;
}

function outcome(read: () => string): string {
  try {
    return `ok ${read()}`;
  } catch (error) {
    if (!(error instanceof CmsError)) throw error;
    return `error ${error.code}`;
  }
}

/** A DerElement that is not one of the reader's own. */
function plainElement(content: Uint8Array): DerElement {
  return { tagClass: 0, constructed: false, tagNumber: 6, bytes: derTlv(0x06, content), content };
}

describe('readOid', () => {
  it('reads every OID of the table as its dotted form', () => {
    for (const dotted of Object.values(OID)) {
      expect(readOid(readDer(derOid(dotted), 'oid'), 'oid')).toBe(dotted);
      expect(readOid(plainElement(derOid(dotted).subarray(2)), 'oid')).toBe(dotted);
    }
  });

  it('reads OIDs inside a sequence, at an offset into the buffer', () => {
    const body = derTlv(0x30, Uint8Array.from([...derOid(OID.sha256), ...derOid('1.2.3.4.5'), ...derOid(OID.signedData)]));
    const children = readSequence(readDer(body, 'seq'), 'seq');
    expect(children.map((child) => readOid(child, 'oid'))).toEqual([OID.sha256, '1.2.3.4.5', OID.signedData]);
  });

  it('agrees with the reference decoder on any content octets', () => {
    const content = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 70 }),
      fc.constantFrom(...Object.values(OID)).map((dotted) => derOid(dotted).subarray(2)),
      // A known OID with one octet changed: same hash bucket sometimes, never the same string.
      fc.tuple(fc.constantFrom(...Object.values(OID)), fc.nat(), fc.integer({ min: 1, max: 255 })).map(([dotted, at, xor]) => {
        const octets = Uint8Array.from(derOid(dotted).subarray(2));
        const i = at % octets.length;
        octets[i] = (octets[i] as number) ^ xor;
        return octets;
      }),
    );
    fc.assert(
      fc.property(content, (octets) => {
        const expected = outcome(() => referenceOid(octets));
        expect(outcome(() => readOid(plainElement(octets), 'oid'))).toBe(expected);
        if (octets.length < 128) expect(outcome(() => readOid(readDer(derTlv(0x06, octets), 'oid'), 'oid'))).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });
});
