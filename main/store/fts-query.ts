/**
 * Turns what a user typed into a safe FTS5 query (the words part: messages.ts wraps it in
 * `{body} : (…)` so that only bodies are searched).
 *
 * FTS5 has its own query language (https://sqlite.org/fts5.html §3): bare AND, OR, NOT and
 * NEAR are operators, `*` asks for a prefix, `^` anchors, `:` names a column, parentheses
 * group, and an unbalanced `"` is a syntax error. A user searching for `"hi`, `NOT` or `C++`
 * means the words, so every whitespace-separated piece becomes one double-quoted FTS5 string
 * (a phrase; inner quotes doubled), and the phrases are implicitly ANDed: all words must occur,
 * in any order. Inside a string nothing is an operator; the tokenizer still splits it, so
 * `e-mail` looks for "e" followed by "mail", as it was indexed.
 *
 * Pieces without a letter or digit (`*`, `--`, `"`) are dropped: the tokenizer would make an
 * empty phrase of them, and a query made only of those has nothing to look for (null).
 * Control characters separate words (a NUL would otherwise cut the query short inside a
 * quoted string: "unterminated string"). Input is NFC-normalised, the form bodies are stored
 * and indexed in (messages.ts).
 */

/** Caps the work one query can ask for: more words than this are ignored. */
export const MAX_QUERY_TERMS = 16;

const SEARCHABLE = /[\p{L}\p{N}]/u;

export function toFtsQuery(text: string): string | null {
  const pieces = text
    .normalize('NFC')
    // FTS5 reads the query as a C string: a NUL would end it inside a quoted phrase.
    .replace(/\p{Cc}/gu, ' ')
    .split(/\s+/u)
    .filter((piece) => SEARCHABLE.test(piece))
    .slice(0, MAX_QUERY_TERMS);
  if (pieces.length === 0) return null;
  return pieces.map((piece) => `"${piece.replaceAll('"', '""')}"`).join(' ');
}
