/**
 * Identity strings must be one spelling of one identity. SQLite (through better-sqlite3)
 * stores a lone UTF-16 surrogate as U+FFFD, so "bob\udfff" and "bob\ufffd" would be
 * distinct principals in memory and the same one on disk; control characters make
 * look-alike names and broken log lines. Both are refused.
 */

/** A lone surrogate (\p{Cs} matches only unpaired ones in u-mode) or a C0/DEL/C1 control. */
const UNCLEAN = /[\p{Cs}\p{Cc}]/u;

/** True when `s` is well-formed Unicode with no control characters. */
export function isCleanIdentifier(s: string): boolean {
  return !UNCLEAN.test(s);
}
