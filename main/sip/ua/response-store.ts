/**
 * Where the UA keeps the bytes of the final responses its server transactions may have to send
 * again (RFC 3261 §17.2.2: a retransmitted request in Completed gets the final response again,
 * for 64*T1 = 32 s over UDP).
 *
 * At thousands of requests a second that is tens of thousands of small buffers alive at once.
 * A buffer of Node's shared pool (what `Buffer.from` gives for small sizes) keeps its whole
 * 8 KiB slab alive, along with every short-lived buffer that shared the slab; a buffer of its
 * own costs an ArrayBuffer and its bookkeeping each. Here responses are copied one after the
 * other into slabs of their own. Transactions end in the order they completed, so a slab is
 * released soon after the last response in it is no longer needed.
 */

const SLAB_BYTES = 64 * 1024;

export class ResponseStore {
  #slab: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
  #used = 0;

  /** A copy of `bytes` that shares memory only with other kept responses. */
  keep(bytes: Uint8Array): Buffer {
    if (bytes.length > SLAB_BYTES / 4) {
      const own = Buffer.allocUnsafeSlow(bytes.length); // a large response: a slab would hold few
      own.set(bytes);
      return own;
    }
    if (this.#used + bytes.length > SLAB_BYTES) {
      this.#slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.#used = 0;
    }
    const start = this.#used;
    this.#slab.set(bytes, start);
    this.#used = start + bytes.length;
    return this.#slab.subarray(start, this.#used);
  }

  /**
   * `keep(Buffer.from(text, 'utf8'))` without the intermediate buffer: the text is encoded
   * straight into the slab. A UTF-8 character takes at most 3 bytes per UTF-16 unit, so a slab
   * with room for 3 bytes a unit takes it whole.
   */
  keepText(text: string): Buffer {
    const most = text.length * 3;
    if (most > SLAB_BYTES / 4) return this.keep(Buffer.from(text, 'utf8'));
    if (this.#used + most > SLAB_BYTES) {
      this.#slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.#used = 0;
    }
    const start = this.#used;
    this.#used = start + this.#slab.write(text, start, 'utf8');
    return this.#slab.subarray(start, this.#used);
  }
}
