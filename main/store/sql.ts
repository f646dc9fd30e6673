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
 *
 * The transaction it opens carries hooks (`openTransaction`) for work to do just before the
 * commit, or only once the commit has happened.
 */
export function atomically<T>(db: Db, fn: () => T): T {
  if (db.inTransaction) return fn();
  const transaction: OpenTransaction = { beforeCommit: [], afterCommit: [] };
  openTransactions.set(db, transaction);
  let result: T;
  try {
    result = db.transaction(() => {
      const value = fn();
      // By index: a hook may add another.
      for (let i = 0; i < transaction.beforeCommit.length; i++) transaction.beforeCommit[i]!();
      return value;
    })();
  } finally {
    openTransactions.delete(db);
  }
  for (const hook of transaction.afterCommit) hook();
  return result;
}

/**
 * Work attached to the transaction `atomically` opened: `beforeCommit` hooks run inside it,
 * after everything else (their writes commit or roll back with it); `afterCommit` hooks run
 * once it has committed, and never if it rolls back. Repositories use them for state kept
 * in memory that must only reflect committed rows (conversations.ts).
 */
export interface OpenTransaction {
  readonly beforeCommit: (() => void)[];
  readonly afterCommit: (() => void)[];
}

const openTransactions = new WeakMap<Db, OpenTransaction>();

/**
 * The transaction `atomically` has open on `db`, or undefined: none is open, or one was
 * opened some other way (then nobody can tell when it ends, and callers must not defer work).
 * The object identifies the transaction: a new one is a different object.
 */
export function openTransaction(db: Db): OpenTransaction | undefined {
  return db.inTransaction ? openTransactions.get(db) : undefined;
}
