/**
 * The header section of a SIP message: an ordered list of (name, value) rows (RFC 3261 §7.3).
 *
 * Rows are kept exactly as they arrived (name spelling and order), so a parsed message
 * serializes back to what was received, byte for byte apart from folding and whitespace
 * around the colon. Lookups are case-insensitive and understand compact forms.
 * Values are stored unparsed: a header is only interpreted when someone asks for it, which
 * keeps parsing cheap and lets a malformed header that nobody needs be ignored (§8.2.2).
 */
import { splitHeaderList } from '../header-values.js';
import { canonicalHeaderName, headerKey } from './header-names.js';

export interface HeaderRow {
  /** The name as written (or the canonical spelling for headers we added). */
  readonly name: string;
  /** Lower-case long form, e.g. `via` for `v`. */
  readonly key: string;
  readonly value: string;
}

export class HeaderList {
  private rows: HeaderRow[];

  constructor(rows: HeaderRow[] = []) {
    this.rows = rows;
  }

  /** Builds a list from `[name, value]` pairs, e.g. for a request we compose. */
  static of(pairs: ReadonlyArray<readonly [string, string]>): HeaderList {
    return new HeaderList(pairs.map(([name, value]) => makeRow(name, value)));
  }

  get size(): number {
    return this.rows.length;
  }

  /** Every row, in order. */
  entries(): readonly HeaderRow[] {
    return this.rows;
  }

  has(name: string): boolean {
    const key = headerKey(name);
    return this.rows.some((row) => row.key === key);
  }

  /** The value of the first row with this name. */
  get(name: string): string | undefined {
    const key = headerKey(name);
    for (const row of this.rows) if (row.key === key) return row.value;
    return undefined;
  }

  /**
   * `get` for a name that is already a lookup key (lower-case long form, as `headerKey`
   * gives it): what the message's own views use, since they know their keys.
   */
  getByKey(key: string): string | undefined {
    const rows = this.rows;
    for (let i = 0; i < rows.length; i++) if (rows[i]!.key === key) return rows[i]!.value;
    return undefined;
  }

  /** The values of every row with this name, unsplit. */
  getAll(name: string): string[] {
    const key = headerKey(name);
    const out: string[] = [];
    for (const row of this.rows) if (row.key === key) out.push(row.value);
    return out;
  }

  /**
   * The elements of a list header across all its rows: `Allow: A, B` and `Allow: A` +
   * `Allow: B` both give `['A', 'B']` (§7.3.1).
   */
  getList(name: string): string[] {
    const out: string[] = [];
    for (const value of this.getAll(name)) out.push(...splitHeaderList(value));
    return out;
  }

  /** Adds a row after the existing ones. */
  append(name: string, value: string): this {
    this.rows.push(makeRow(name, value));
    return this;
  }

  /** Adds a row before the existing ones (a proxy's Via, a pre-loaded Route). */
  prepend(name: string, value: string): this {
    this.rows.unshift(makeRow(name, value));
    return this;
  }

  /** Replaces every row of this name with one row, kept at the first row's position. */
  set(name: string, value: string): this {
    const key = headerKey(name);
    const index = this.rows.findIndex((row) => row.key === key);
    const row = makeRow(name, value);
    if (index < 0) {
      this.rows.push(row);
      return this;
    }
    this.rows = this.rows.filter((r, i) => i === index || r.key !== key);
    this.rows[index] = row;
    return this;
  }

  /** Removes every row of this name; returns how many there were. */
  remove(name: string): number {
    const key = headerKey(name);
    const before = this.rows.length;
    this.rows = this.rows.filter((row) => row.key !== key);
    return before - this.rows.length;
  }

  /** Replaces the value of the first row of this name (used to rewrite the top Via). */
  replaceFirst(name: string, value: string): this {
    const key = headerKey(name);
    const index = this.rows.findIndex((row) => row.key === key);
    const existing = index >= 0 ? this.rows[index] : undefined;
    if (existing === undefined) return this.append(name, value);
    this.rows[index] = { name: existing.name, key, value };
    return this;
  }

  clone(): HeaderList {
    return new HeaderList(this.rows.slice());
  }
}

function makeRow(name: string, value: string): HeaderRow {
  return { name: canonicalHeaderName(name), key: headerKey(name), value };
}
