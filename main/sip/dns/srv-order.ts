/**
 * The order in which to try SRV records (RFC 2782, "Usage rules"; RFC 3263 §4.3).
 *
 * Lower priority first. Within one priority, the weight spreads load: RFC 2782 builds the
 * order one pick at a time. Of the records not yet ordered, those with weight 0 go first and
 * the rest follow (we sort them by target and port, so the result depends only on the record
 * set and the random numbers, not on the order a DNS server happened to answer in). With each
 * record goes the running sum of the weights; a uniform random integer from 0 to the total,
 * inclusive, picks the first record whose running sum is at least that number. The pick is
 * removed and the next one is drawn from the rest.
 *
 * So a record of weight w is picked first with probability w / (total + 1), and weight-0
 * records only when the draw is 0: "a very small chance of being selected" (RFC 2782). When
 * every weight is 0 the draw is always 0 and the order stays as sorted.
 *
 * `random` returns a number in [0, 1) like Math.random; tests inject a fixed sequence.
 */
import type { SrvRecord } from './dns-resolver.js';

/**
 * RFC 2782: 'A Target of "." means that the service is decidedly not available at this
 * domain.' node:dns gives that target as '' (it drops the trailing dot); we accept '.' too.
 */
export function isNoServiceTarget(name: string): boolean {
  return name === '' || name === '.';
}

export function orderSrvRecords<T extends Pick<SrvRecord, 'priority' | 'weight' | 'name' | 'port'>>(
  records: readonly T[],
  random: () => number,
): T[] {
  const priorities = [...new Set(records.map((record) => record.priority))].sort((a, b) => a - b);
  const ordered: T[] = [];
  for (const priority of priorities) {
    const unordered = records
      .filter((record) => record.priority === priority)
      .sort(
        (a, b) =>
          Number(a.weight !== 0) - Number(b.weight !== 0) ||
          (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) ||
          a.port - b.port,
      );
    while (unordered.length > 0) {
      const total = unordered.reduce((sum, record) => sum + record.weight, 0);
      // A uniform integer in [0, total]; min() guards a random() that returns 1.
      const draw = Math.min(Math.floor(random() * (total + 1)), total);
      let running = 0;
      let chosen = unordered.length - 1;
      for (let i = 0; i < unordered.length; i++) {
        running += unordered[i]!.weight;
        if (running >= draw) {
          chosen = i;
          break;
        }
      }
      ordered.push(unordered.splice(chosen, 1)[0]!);
    }
  }
  return ordered;
}
