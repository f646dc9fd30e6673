/**
 * RC2 (RFC 2268) in CBC mode, for reading old PKCS#12 files only.
 *
 * `openssl pkcs12 -export -legacy`, OpenSSL 1.x and older Windows exports encrypt the
 * certificates of a PKCS#12 file with pbeWithSHAAnd40BitRC2-CBC (RFC 7292 appendix C). Node's
 * OpenSSL 3 keeps RC2 in the "legacy" provider, which Node does not load, so the cipher is
 * written out here. It is a 64-bit block cipher with 16-bit words: a key schedule (§2) and
 * decryption (§4) are all we need; encryption (§3) is here so that tests can check the cipher
 * against the RFC's test vectors. Nothing new is ever encrypted with it.
 */

/** PITABLE of RFC 2268 §2: a permutation of 0..255 made from the digits of pi. */
const PITABLE = Uint8Array.from([
  0xd9, 0x78, 0xf9, 0xc4, 0x19, 0xdd, 0xb5, 0xed, 0x28, 0xe9, 0xfd, 0x79, 0x4a, 0xa0, 0xd8, 0x9d,
  0xc6, 0x7e, 0x37, 0x83, 0x2b, 0x76, 0x53, 0x8e, 0x62, 0x4c, 0x64, 0x88, 0x44, 0x8b, 0xfb, 0xa2,
  0x17, 0x9a, 0x59, 0xf5, 0x87, 0xb3, 0x4f, 0x13, 0x61, 0x45, 0x6d, 0x8d, 0x09, 0x81, 0x7d, 0x32,
  0xbd, 0x8f, 0x40, 0xeb, 0x86, 0xb7, 0x7b, 0x0b, 0xf0, 0x95, 0x21, 0x22, 0x5c, 0x6b, 0x4e, 0x82,
  0x54, 0xd6, 0x65, 0x93, 0xce, 0x60, 0xb2, 0x1c, 0x73, 0x56, 0xc0, 0x14, 0xa7, 0x8c, 0xf1, 0xdc,
  0x12, 0x75, 0xca, 0x1f, 0x3b, 0xbe, 0xe4, 0xd1, 0x42, 0x3d, 0xd4, 0x30, 0xa3, 0x3c, 0xb6, 0x26,
  0x6f, 0xbf, 0x0e, 0xda, 0x46, 0x69, 0x07, 0x57, 0x27, 0xf2, 0x1d, 0x9b, 0xbc, 0x94, 0x43, 0x03,
  0xf8, 0x11, 0xc7, 0xf6, 0x90, 0xef, 0x3e, 0xe7, 0x06, 0xc3, 0xd5, 0x2f, 0xc8, 0x66, 0x1e, 0xd7,
  0x08, 0xe8, 0xea, 0xde, 0x80, 0x52, 0xee, 0xf7, 0x84, 0xaa, 0x72, 0xac, 0x35, 0x4d, 0x6a, 0x2a,
  0x96, 0x1a, 0xd2, 0x71, 0x5a, 0x15, 0x49, 0x74, 0x4b, 0x9f, 0xd0, 0x5e, 0x04, 0x18, 0xa4, 0xec,
  0xc2, 0xe0, 0x41, 0x6e, 0x0f, 0x51, 0xcb, 0xcc, 0x24, 0x91, 0xaf, 0x50, 0xa1, 0xf4, 0x70, 0x39,
  0x99, 0x7c, 0x3a, 0x85, 0x23, 0xb8, 0xb4, 0x7a, 0xfc, 0x02, 0x36, 0x5b, 0x25, 0x55, 0x97, 0x31,
  0x2d, 0x5d, 0xfa, 0x98, 0xe3, 0x8a, 0x92, 0xae, 0x05, 0xdf, 0x29, 0x10, 0x67, 0x6c, 0xba, 0xc9,
  0xd3, 0x00, 0xe6, 0xcf, 0xe1, 0x9e, 0xa8, 0x2c, 0x63, 0x16, 0x01, 0x3f, 0x58, 0xe2, 0x89, 0xa9,
  0x0d, 0x38, 0x34, 0x1b, 0xab, 0x33, 0xff, 0xb0, 0xbb, 0x48, 0x0c, 0x5f, 0xb9, 0xb1, 0xcd, 0x2e,
  0xc5, 0xf3, 0xdb, 0x47, 0xe5, 0xa5, 0x9c, 0x77, 0x0a, 0xa6, 0x20, 0x68, 0xfe, 0x7f, 0xc1, 0xad,
]);

/** Left rotations of R[0..3] in a mixing round (RFC 2268 §3.1). */
const SHIFTS = [1, 2, 3, 5] as const;

export const RC2_BLOCK_SIZE = 8;

/** RC2 with one expanded key. */
export class Rc2 {
  /** The 64 16-bit subkeys K[0..63]. */
  private readonly keys: Uint16Array;

  /**
   * Key expansion, RFC 2268 §2. `key` is 1 to 128 octets; `effectiveBits` (T1, 1 to 1024) is
   * the "effective key length" that export-grade RC2 lowers: 40 for RC2-40, 128 for RC2-128.
   */
  constructor(key: Uint8Array, effectiveBits: number) {
    const length = key.length;
    if (length < 1 || length > 128) throw new RangeError(`RC2 key of ${length} octets (1 to 128)`);
    if (!Number.isInteger(effectiveBits) || effectiveBits < 1 || effectiveBits > 1024) throw new RangeError(`RC2 effective key bits ${effectiveBits} (1 to 1024)`);
    const bytes = Math.ceil(effectiveBits / 8); // T8
    const mask = 0xff >> (8 * bytes - effectiveBits); // TM = 255 MOD 2^(8 + T1 - 8*T8)
    const l = new Uint8Array(128);
    l.set(key);
    for (let i = length; i < 128; i++) l[i] = PITABLE[((l[i - 1] as number) + (l[i - length] as number)) & 0xff] as number;
    l[128 - bytes] = PITABLE[(l[128 - bytes] as number) & mask] as number;
    for (let i = 127 - bytes; i >= 0; i--) l[i] = PITABLE[(l[i + 1] as number) ^ (l[i + bytes] as number)] as number;
    this.keys = new Uint16Array(64);
    for (let i = 0; i < 64; i++) this.keys[i] = (l[2 * i] as number) | ((l[2 * i + 1] as number) << 8);
  }

  /** Encrypts one 8-octet block (RFC 2268 §3): 5 mixing rounds, mash, 6 mixing, mash, 5 mixing. */
  encryptBlock(block: Uint8Array): Uint8Array {
    const r = words(block);
    const k = this.keys;
    let j = 0;
    for (let round = 0; round < 16; round++) {
      for (let i = 0; i < 4; i++) {
        const sum = (r[i] as number) + (k[j++] as number) + ((r[(i + 3) & 3] as number) & (r[(i + 2) & 3] as number)) + (~(r[(i + 3) & 3] as number) & (r[(i + 1) & 3] as number));
        const word = sum & 0xffff;
        const shift = SHIFTS[i] as number;
        r[i] = ((word << shift) | (word >> (16 - shift))) & 0xffff;
      }
      if (round === 4 || round === 10) for (let i = 0; i < 4; i++) r[i] = ((r[i] as number) + (k[(r[(i + 3) & 3] as number) & 63] as number)) & 0xffff;
    }
    return octets(r);
  }

  /** Decrypts one 8-octet block (RFC 2268 §4): the rounds of §3 undone in reverse order. */
  decryptBlock(block: Uint8Array): Uint8Array {
    const r = words(block);
    const k = this.keys;
    let j = 63;
    for (let round = 15; round >= 0; round--) {
      for (let i = 3; i >= 0; i--) {
        const word = r[i] as number;
        const shift = SHIFTS[i] as number;
        const rotated = ((word >> shift) | (word << (16 - shift))) & 0xffff;
        r[i] = (rotated - (k[j--] as number) - ((r[(i + 3) & 3] as number) & (r[(i + 2) & 3] as number)) - (~(r[(i + 3) & 3] as number) & (r[(i + 1) & 3] as number))) & 0xffff;
      }
      if (round === 5 || round === 11) for (let i = 3; i >= 0; i--) r[i] = ((r[i] as number) - (k[(r[(i + 3) & 3] as number) & 63] as number)) & 0xffff;
    }
    return octets(r);
  }
}

/**
 * RC2-CBC decryption with the PKCS#7 padding of RFC 8018 §6.1.1 removed. Returns undefined
 * when the padding is wrong, which for a PKCS#12 file almost always means a wrong passphrase.
 */
export function rc2CbcDecrypt(key: Uint8Array, effectiveBits: number, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array | undefined {
  if (iv.length !== RC2_BLOCK_SIZE) throw new RangeError(`RC2-CBC IV of ${iv.length} octets`);
  if (ciphertext.length === 0 || ciphertext.length % RC2_BLOCK_SIZE !== 0) return undefined;
  const cipher = new Rc2(key, effectiveBits);
  const plain = new Uint8Array(ciphertext.length);
  let previous = iv;
  for (let offset = 0; offset < ciphertext.length; offset += RC2_BLOCK_SIZE) {
    const block = ciphertext.subarray(offset, offset + RC2_BLOCK_SIZE);
    const decrypted = cipher.decryptBlock(block);
    for (let i = 0; i < RC2_BLOCK_SIZE; i++) plain[offset + i] = (decrypted[i] as number) ^ (previous[i] as number);
    previous = block;
  }
  const pad = plain[plain.length - 1] as number;
  if (pad < 1 || pad > RC2_BLOCK_SIZE) return undefined;
  for (let i = plain.length - pad; i < plain.length; i++) if (plain[i] !== pad) return undefined;
  return plain.subarray(0, plain.length - pad);
}

/** The block as four little-endian 16-bit words R[0..3] (RFC 2268 §3). */
function words(block: Uint8Array): number[] {
  if (block.length !== RC2_BLOCK_SIZE) throw new RangeError(`RC2 block of ${block.length} octets`);
  return [0, 1, 2, 3].map((i) => (block[2 * i] as number) | ((block[2 * i + 1] as number) << 8));
}

function octets(r: readonly number[]): Uint8Array {
  const out = new Uint8Array(RC2_BLOCK_SIZE);
  for (let i = 0; i < 4; i++) {
    out[2 * i] = (r[i] as number) & 0xff;
    out[2 * i + 1] = (r[i] as number) >> 8;
  }
  return out;
}
