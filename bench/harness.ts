/**
 * What the benchmarks share: reading their command-line flags, medians, and the plain-text
 * tables they print. (Each benchmark's measuring loop stays in its own file, next to what it
 * measures.)
 */

/** `--flag VALUE` lookups over an argv, with positive-number checking. */
export function cliFlags(argv: readonly string[]): {
  has(flag: string): boolean;
  value(flag: string): string | undefined;
  positiveNumber(flag: string, fallback: number): number;
} {
  const value = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    has: (flag) => argv.includes(flag),
    value,
    positiveNumber(flag, fallback) {
      const text = value(flag);
      if (text === undefined) return fallback;
      const number = Number(text);
      if (!Number.isFinite(number) || number <= 0) throw new Error(`${flag} needs a positive number, not ${JSON.stringify(text)}`);
      return number;
    },
  };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A whole number with thousands separators, as the tables print rates. */
export const int = (value: number): string => Math.round(value).toLocaleString('en-US');

/** Prints rows under a header, columns padded to their widest cell. */
export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => (row[c] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    '  ' + cells.map((cell, c) => (c === cells.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ');
  console.log(line(header));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const row of rows) console.log(line(row));
}
