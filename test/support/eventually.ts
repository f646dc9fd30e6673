/**
 * Waiting for a condition that events make true, without polling or sleeping: `check` runs now
 * and again each time the source says something happened, until it returns a value (resolved)
 * or `ms` of real time pass (rejected, naming `what` and, if given, what was seen instead).
 */

/** Subscribes `listener` to "something happened"; returns the unsubscribe. */
export type Subscribe = (listener: () => void) => () => void;

export function eventually<T>(subscribe: Subscribe, check: () => T | undefined, ms: number, what: string, seen?: () => string): Promise<T> {
  return new Promise((resolve, reject) => {
    let unsubscribe = (): void => undefined;
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`not within ${ms} ms: ${what}${seen === undefined ? '' : `; saw ${seen()}`}`));
    }, ms);
    const test = (): void => {
      const found = check();
      if (found === undefined) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(found);
    };
    unsubscribe = subscribe(test);
    test();
  });
}
