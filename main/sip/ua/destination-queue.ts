/**
 * One pending MESSAGE per destination (RFC 3428 §8; RFC 3994 §4 makes isComposing count too).
 *
 * "A UAC MUST NOT initiate a new MESSAGE transaction outside of a dialog towards a URI while
 * a previous one towards that URI is outstanding." Each destination gets a FIFO: a task starts
 * when the one before it for the same key has settled, whatever its outcome; different
 * destinations run in parallel.
 */
export class DestinationQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `task` after every earlier task for `key` has settled; resolves with its result. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      // Forget idle destinations so the map does not grow with every peer ever written to.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** How many destinations have work pending (for diagnostics and tests). */
  get activeDestinations(): number {
    return this.tails.size;
  }
}
