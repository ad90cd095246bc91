/**
 * When a projection can change with no write at all: a grant of the caller's running out,
 * or a source secret reaching its expire_time. WatchProjection re-evaluates at that moment
 * (a timer), not at the next write.
 */
import { subjectsOf } from "../domain/access.js";
import type { Principal } from "../domain/principal.js";
import type { SecretWithVersion } from "../storage/storage.js";

/** The earliest such time after `now`, or undefined when none is ahead. */
export function accessDeadline(p: Principal, rows: Iterable<SecretWithVersion | undefined>, now: number): number | undefined {
  const subjects = new Set(subjectsOf(p));
  let next: number | undefined;
  const consider = (t: number | undefined): void => {
    if (t !== undefined && t > now && (next === undefined || t < next)) next = t;
  };
  for (const row of rows) {
    if (row === undefined) continue;
    consider(row.secret.expireTime);
    for (const g of row.grants) if (subjects.has(g.subject)) consider(g.expireTime);
  }
  return next;
}
