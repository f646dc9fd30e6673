/**
 * Small helpers every repository shares: a prepared-statement cache and "run this atomically".
 */
import type BetterSqlite3 from 'better-sqlite3';

export type Db = BetterSqlite3.Database;
export type Statement = BetterSqlite3.Statement<unknown[], unknown>;

/**
 * Prepared statements by SQL text. Preparing parses and plans the SQL; a cached statement is
 * only bound and stepped. Queries built from optional filters (history) have a handful of
 * shapes, so the cache stays small.
 */
export class StatementCache {
  private readonly statements = new Map<string, Statement>();

  constructor(private readonly db: Db) {}

  get(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}

/**
 * Runs `fn` in a transaction, or inside the one already open.
 *
 * Joining the open transaction instead of nesting (better-sqlite3 nests with SAVEPOINT) is
 * deliberate: FTS5 flushes its pending terms at every savepoint, so a savepoint per message
 * inside a batch would cost a segment per row (migrations.ts, version 2). The price: inside a
 * batch, an operation that throws is undone only when the error leaves the batch, which rolls
 * the whole batch back. Catching a store error inside `Store.batch` and carrying on is
 * therefore wrong. (The operations are written so that the statement that can fail on input,
 * a constraint, comes before any write but harmless ones such as creating an empty
 * conversation.)
 */
export function atomically<T>(db: Db, fn: () => T): T {
  if (db.inTransaction) return fn();
  return db.transaction(fn)();
}
