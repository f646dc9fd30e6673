/**
 * RC2 (main/security/rc2.ts) against the test vectors of RFC 2268 §5, and RC2-CBC against
 * OpenSSL's own rc2-40-cbc / rc2-cbc (legacy provider), which is what old PKCS#12 files use.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Rc2, rc2CbcDecrypt } from '../../main/security/rc2.js';

const hex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

describe('RC2 (RFC 2268)', () => {
  it.each([
    ['0000000000000000', 63, '0000000000000000', 'ebb773f993278eff'],
    ['ffffffffffffffff', 64, 'ffffffffffffffff', '278b27e42e2f0d49'],
    ['3000000000000000', 64, '1000000000000001', '30649edf9be7d2c2'],
    ['88', 64, '0000000000000000', '61a8a244adacccf0'],
    ['88bca90e90875a', 64, '0000000000000000', '6ccf4308974c267f'],
    ['88bca90e90875a7f0f79c384627bafb2', 64, '0000000000000000', '1a807d272bbe5db1'],
    ['88bca90e90875a7f0f79c384627bafb2', 128, '0000000000000000', '2269552ab0f85ca6'],
    ['88bca90e90875a7f0f79c384627bafb216f80a6f85920584c42fceb0be255daf1e', 129, '0000000000000000', '5b78d3a43dfff1f1'],
  ] as Array<[string, number, string, string]>)('key %s, %i effective bits: %s -> %s and back', (key, bits, plain, cipher) => {
    const rc2 = new Rc2(hex(key), bits);
    expect(toHex(rc2.encryptBlock(hex(plain)))).toBe(cipher);
    expect(toHex(rc2.decryptBlock(hex(cipher)))).toBe(plain);
  });

  it.each([
    ['rc2-40-cbc', 5, 40],
    ['rc2-cbc', 16, 128],
  ] as Array<[string, number, number]>)('CBC decryption matches openssl enc -%s', (cipher, keyLength, bits) => {
    for (const length of [0, 1, 7, 8, 9, 100]) {
      const key = randomBytes(keyLength);
      const iv = randomBytes(8);
      const plain = randomBytes(length);
      const encrypted = execFileSync('openssl', ['enc', `-${cipher}`, '-provider', 'legacy', '-provider', 'default', '-K', key.toString('hex'), '-iv', iv.toString('hex')], { input: plain });
      expect(toHex(rc2CbcDecrypt(key, bits, iv, encrypted) ?? Uint8Array.of(0xde, 0xad))).toBe(toHex(plain));
    }
  });

  it('reports bad padding and impossible lengths as undefined', () => {
    const key = hex('0011223344');
    const iv = new Uint8Array(8);
    expect(rc2CbcDecrypt(key, 40, iv, new Uint8Array(0))).toBeUndefined();
    expect(rc2CbcDecrypt(key, 40, iv, new Uint8Array(7))).toBeUndefined();
    // A block whose plaintext ends in 0x00 has no valid padding.
    const block = new Rc2(key, 40).encryptBlock(new Uint8Array(8));
    expect(rc2CbcDecrypt(key, 40, iv, block)).toBeUndefined();
  });
});
