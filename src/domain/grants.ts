/**
 * Sharing, the DataOS way: the owner (or an ADMIN holder, or a tenant-admin) grants a
 * subject — `user:<sub>` or `role:<role>` of the same tenant — a permission on one
 * secret, optionally limited to some keys and to a time. Grants hang off the secret's
 * uid, so they die with it and never pass to a re-created name; a grant can never
 * reach another tenant because access is only ever computed for principals of the
 * secret's own tenant.
 */
import type { GrantAccessRequest, ListGrantsRequest, RevokeAccessRequest } from "../gen/secrets/v1/secrets.js";
import type { GrantRow, SecretRow, Storage } from "../storage/storage.js";
import { adminUntil, grantWithin, keysAt, Level, type Access } from "./access.js";
import { denied, grantsChanged, invalid, notFound, SecretdError } from "../errors.js";
import { GRANTS_BYTES, grantEntryBytes } from "./page-budget.js";
import type { Principal } from "./principal.js";
import { expireTimeOf, scopeFor, type Secrets } from "./secrets.js";
import { validateDataKey, validateName } from "./validation.js";

export interface GrantsDeps {
  readonly storage: Storage;
  readonly secrets: Secrets;
  readonly now?: () => number;
}

/**
 * The domain speaks Level only; the transport maps the wire permission to it
 * (transport/grpc/convert.ts): NONE for an unspecified one, undefined for a number
 * that names no permission.
 */
export type GrantInput = Omit<GrantAccessRequest, "permission"> & { readonly level: Level | undefined };
export type RevokeInput = Omit<RevokeAccessRequest, "permission"> & { readonly level: Level | undefined };

const SUBJECT = /^(user|role):[^\s\p{C}]{1,256}$/u;
const MAX_GRANT_KEYS = 256;
/**
 * Grants per secret, and their encoded size in all: every read of the secret loads its
 * grants, and ListGrants (which has no paging) must always fit in one answer (#16 item 4).
 */
export const MAX_GRANTS_PER_SECRET = 1000;

/** Rows removed; "conflict" (a grant-set compare-and-set lost) is not retried here. */
function counted(removed: number | "conflict"): number {
  if (removed === "conflict") throw grantsChanged();
  return removed;
}

function validateSubject(subject: string): void {
  if (!SUBJECT.test(subject)) throw invalid("subject", 'must be "user:<sub>" or "role:<role>"');
}

export interface GrantView extends GrantRow {
  readonly mesh: string;
  readonly name: string;
  /** GrantAccess only: the grant of the same subject and permission this one replaced. */
  readonly replaced?: GrantRow;
}

interface Administered {
  readonly secret: SecretRow;
  readonly access: Access;
  /** Keys the caller administers; undefined = every key. */
  readonly adminKeys: ReadonlySet<string> | undefined;
  /** Every grant of the secret, expired ones included. */
  readonly grants: readonly GrantRow[];
}

export class Grants {
  private readonly now: () => number;

  constructor(private readonly deps: GrantsDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** The secret, when the caller may administer it (NOT_FOUND / PERMISSION_DENIED otherwise). */
  private async administered(p: Principal, mesh: string, name: string): Promise<Administered> {
    validateName(name);
    const scope = scopeFor(p, mesh);
    const found = await this.deps.storage.readSecret(scope, name, 0, true);
    const { secret, access } = this.deps.secrets.authorize(p, found, name, Level.ADMIN);
    return { secret, access, adminKeys: keysAt(access, Level.ADMIN), grants: found?.grants ?? [] };
  }

  async grant(p: Principal, req: GrantInput): Promise<GrantView> {
    validateSubject(req.subject);
    const level = req.level;
    if (level === undefined || level === Level.NONE) throw invalid("permission", "must be PERMISSION_READ, PERMISSION_PROJECT, PERMISSION_WRITE or PERMISSION_ADMIN");
    const keys = [...new Set(req.keys)].sort();
    if (keys.length > MAX_GRANT_KEYS) throw invalid("keys", `at most ${MAX_GRANT_KEYS} keys`);
    keys.forEach((k, i) => validateDataKey(k, `keys[${i}]`));
    const now = this.now();
    const requested = expireTimeOf(req.expireTime, now, "expire_time");

    const { secret, access, adminKeys, grants } = await this.administered(p, req.mesh, req.name);
    // A grant on a key the secret lacks would give nothing while looking like access.
    const present = new Set(secret.keys);
    const unknown = keys.filter((k) => !present.has(k));
    if (unknown.length > 0) throw invalid("keys", `secret "${req.name}" has no key ${unknown.map((k) => `"${k}"`).join(", ")}`);

    // Nobody grants more than they hold: within the keys of their ADMIN grants, and
    // never past the end of those grants (the owner and a tenant-admin hold no end).
    const until = adminUntil(access, keys);
    if (requested !== undefined && until !== undefined && requested > until) {
      throw denied(`your ADMIN grant on secret "${req.name}" ends at ${new Date(until).toISOString()}: a grant you make may not end later`);
    }
    const expireTime = requested ?? until;
    const replaced = grants.find((g) => g.subject === req.subject && g.level === level);
    // Replacing a grant that reaches beyond a key-limited granter's keys would revoke keys it does not hold.
    if (replaced && !grantWithin(adminKeys, replaced.keys)) {
      throw denied(`${req.subject} already holds a ${Level[level]} grant on keys you do not hold; only a holder of those keys may replace it`);
    }

    const row: GrantRow = { secretUid: secret.uid, subject: req.subject, level, keys, expireTime, grantedBy: p.sub, createTime: now };
    const kept = grants.filter((g) => g !== replaced);
    if (kept.length + 1 > MAX_GRANTS_PER_SECRET) {
      throw new SecretdError("RESOURCE_EXHAUSTED", `secret "${req.name}" already has ${kept.length} grants (at most ${MAX_GRANTS_PER_SECRET}): revoke some first`);
    }
    const bytes = kept.reduce((n, g) => n + grantEntryBytes(g, secret.mesh, secret.name), grantEntryBytes(row, secret.mesh, secret.name));
    if (bytes > GRANTS_BYTES) {
      throw new SecretdError("RESOURCE_EXHAUSTED", `the grants of secret "${req.name}" would take ${bytes} bytes (at most ${GRANTS_BYTES}): revoke some first`);
    }
    const put = await this.deps.storage.putGrant(row);
    if (put === "missing") throw notFound(`secret "${req.name}"`);
    if (put === "conflict") throw grantsChanged();
    return { ...row, mesh: secret.mesh, name: secret.name, ...(replaced ? { replaced } : {}) };
  }

  /**
   * Removes the subject's grants (of one permission, when given). A key-limited ADMIN
   * removes only grants within its keys; the others stay, as if absent (ListGrants does
   * not show them to it either).
   */
  async revoke(p: Principal, req: RevokeInput): Promise<void> {
    validateSubject(req.subject);
    if (req.level === undefined) throw invalid("permission", "is not a permission");
    const level = req.level === Level.NONE ? undefined : req.level;
    const { secret, adminKeys, grants } = await this.administered(p, req.mesh, req.name);
    let removed: number;
    if (adminKeys === undefined) {
      removed = counted(await this.deps.storage.deleteGrants(secret.uid, req.subject, level));
    } else {
      removed = 0;
      const mine = grants.filter((g) => g.subject === req.subject && (level === undefined || g.level === level) && grantWithin(adminKeys, g.keys));
      for (const g of mine) removed += counted(await this.deps.storage.deleteGrants(secret.uid, g.subject, g.level));
    }
    if (removed === 0) throw notFound(`grant for ${req.subject} on secret "${req.name}"`);
  }

  /**
   * Every grant of the secret, expired ones included (their expire_time shows it); to a
   * key-limited ADMIN only the grants within its keys.
   */
  async list(p: Principal, req: ListGrantsRequest): Promise<GrantView[]> {
    const { secret, adminKeys, grants } = await this.administered(p, req.mesh, req.name);
    return grants.filter((g) => grantWithin(adminKeys, g.keys)).map((g) => ({ ...g, mesh: secret.mesh, name: secret.name }));
  }
}
