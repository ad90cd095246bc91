/**
 * The limits of one projection request (items, mappings, bytes) and its work bound
 * (#27): how many values it would hold once every item without explicit `keys` is
 * expanded to all of its secret's keys. That bound is checked on each row as it is read,
 * before the next is read and before any value is decrypted, mapped, hashed, audited or
 * encoded, so a small request over secrets with many keys cannot ask for far more work
 * than it may be answered. A
 * WatchProjection re-projects through the same path, so the bounds hold per watch too.
 */
import type { ProjectionItem, ProjectSecretsRequest } from "../gen/secrets/v1/secrets.js";
import type { RowCheck } from "../storage/storage.js";
import { accessTo, keysAt, Level } from "./access.js";
import { SecretdError } from "../errors.js";
import type { Principal } from "./principal.js";
import { MAX_DATA_KEYS } from "./validation.js";

/** Items of one request, so also the secrets (sources) of one projection or watch. */
export const MAX_ITEMS = 256;
/** Explicit `keys` mappings of one request, over all its items. */
export const MAX_MAPPINGS = 4096;
/** Value bytes of one projection, and sealed bytes opened for it. */
export const MAX_TOTAL_BYTES = 8 * 1024 * 1024;
/** Values of one projection, after expansion: one secret's every key (MAX_DATA_KEYS), or as many explicit mappings. */
export const MAX_PROJECTED_VALUES = MAX_DATA_KEYS;

/** How many of `keys` are in `allowed`, counting no further than `limit`. */
function countAllowed(keys: readonly string[], allowed: ReadonlySet<string>, limit: number): number {
  let n = 0;
  for (const k of keys) if (allowed.has(k) && ++n > limit) break;
  return n;
}

/**
 * A readSecrets `onRow` that counts, row by row as the sources are read, the values the
 * projection would hold, and throws RESOURCE_EXHAUSTED once there are more than
 * MAX_PROJECTED_VALUES: a request past the bound is refused right after the row that
 * passes it, before the rest are read, parsed and MAC-checked (#27: the bench's 180
 * items over 8 secrets of 4,096 keys read all 8 rows, ~14 ms of one turn, for each
 * refused call; 256 such secrets would have been ~0.4 s). Costs O(items) in all plus,
 * for an item limited to some keys by its grants, at most MAX_PROJECTED_VALUES set
 * lookups. Only items the caller may project are expanded, so the refusal says nothing
 * about a secret it cannot see.
 */
export function projectedValuesCheck(p: Principal, req: ProjectSecretsRequest, now: number): RowCheck {
  const itemsOf = new Map<string, ProjectionItem[]>();
  for (const item of req.items) {
    const list = itemsOf.get(item.name);
    if (list === undefined) itemsOf.set(item.name, [item]);
    else list.push(item);
  }
  let total = 0;
  return (name, found) => {
    if (found?.version === undefined) return; // missing: skipped or refused by the projection
    let allowed: ReadonlySet<string> | undefined | null = null; // null: not decided yet
    for (const item of itemsOf.get(name) ?? []) {
      let n = item.keys.length;
      if (n === 0) {
        if (allowed === null) {
          const access = accessTo(p, found.secret, found.grants, now);
          // Refused by the projection, with its own code: counts nothing.
          allowed = access.level < Level.PROJECT ? new Set() : keysAt(access, Level.PROJECT);
        }
        const keys = found.version.keys;
        n = allowed === undefined ? keys.length : countAllowed(keys, allowed, MAX_PROJECTED_VALUES - total);
      }
      total += n;
      if (total > MAX_PROJECTED_VALUES) {
        throw new SecretdError(
          "RESOURCE_EXHAUSTED",
          `the projection would hold more than ${MAX_PROJECTED_VALUES} values (an item without keys counts every key of its secret): name the keys or split the projection`,
        );
      }
    }
  };
}
