/**
 * Where the UA writes the bytes of the responses its server transactions send. Once a
 * transaction is completed over UDP, CompletedTransactions keeps its own copy to send again
 * (RFC 3261 §17.2.2), so a response here is needed only until its send has completed.
 *
 * At thousands of requests a second that is thousands of small buffers a second. A buffer of
 * its own costs an ArrayBuffer and its bookkeeping each; a buffer of Node's shared pool
 * (what `Buffer.from` gives for small sizes) keeps its whole 8 KiB slab alive, along with
 * every other buffer cut from it. Here responses are written one after the other into slabs
 * of 64 KiB: one allocation for a few hundred responses, and a slab is garbage soon after its
 * last response went out.
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
