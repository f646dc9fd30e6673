/** A bound on a promise in tests: a hang becomes a failure that names what did not happen. */

/** `promise`'s outcome, or a rejection `${what} did not finish within ${ms} ms`. */
export function within<T>(promise: Promise<T>, ms = 5000, what = 'operation'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
