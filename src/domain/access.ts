/**
 * What a principal may do with one secret. Levels are ordered: each includes the ones
 * below it (ADMIN ⊃ WRITE ⊃ READ ⊃ PROJECT). The owner and a tenant-admin hold ADMIN on
 * every key; anyone else holds what their unexpired grants give (to `user:<sub>` or to
 * `role:<role>` of one of their roles), with the grants' key limits.
 */
import { denied, notFound } from "../errors.js";
import { hasRole, type Principal } from "./principal.js";
import type { GrantRow, SecretRow } from "../storage/storage.js";

export enum Level {
  NONE = 0,
  PROJECT = 1,
  READ = 2,
  WRITE = 3,
  ADMIN = 4,
}

interface Held {
  readonly level: Level;
  /** undefined = every key. */
  readonly keys: ReadonlySet<string> | undefined;
  /** When the grant behind it ends (epoch ms); undefined = never. */
  readonly expireTime: number | undefined;
}

export interface Access {
  /** The highest level held. */
  readonly level: Level;
  readonly held: readonly Held[];
}

export const TENANT_ADMIN = "tenant-admin";
const FULL: Access = { level: Level.ADMIN, held: [{ level: Level.ADMIN, keys: undefined, expireTime: undefined }] };
const NONE: Access = { level: Level.NONE, held: [] };

/** The grant subjects a principal answers to. */
export function subjectsOf(p: Principal): string[] {
  return [`user:${p.sub}`, ...p.roles.map((r) => `role:${r}`)];
}

export function isLive(g: GrantRow, now: number): boolean {
  return g.expireTime === undefined || g.expireTime > now;
}

export function accessTo(p: Principal, s: SecretRow, grants: readonly GrantRow[], now: number): Access {
  if (s.tenant !== p.tenant) return NONE;
  if (p.only !== undefined) return p.only.secretUid === s.uid ? { level: p.only.level, held: [{ level: p.only.level, keys: undefined, expireTime: undefined }] } : NONE;
  if (s.owner === p.sub || hasRole(p, TENANT_ADMIN)) return FULL;
  const subjects = new Set(subjectsOf(p));
  const held: Held[] = grants
    .filter((g) => g.secretUid === s.uid && subjects.has(g.subject) && isLive(g, now))
    .map((g) => ({ level: g.level as Level, keys: g.keys.length === 0 ? undefined : new Set(g.keys), expireTime: g.expireTime }));
  return { level: Math.max(Level.NONE, ...held.map((h) => h.level)), held };
}

/**
 * The first instant after `now` at which anyone's access to this secret, or the secret
 * itself, can change with time alone: its expiry or a grant's (Infinity: none ahead).
 * Up to then, accessTo and requireUnexpired answer the same for the same rows.
 */
export function nextTimeChange(s: SecretRow, grants: readonly GrantRow[], now: number): number {
  let at = s.expireTime !== undefined && s.expireTime > now ? s.expireTime : Infinity;
  for (const g of grants) if (g.expireTime !== undefined && g.expireTime > now && g.expireTime < at) at = g.expireTime;
  return at;
}

/** Keys usable at `level`: the union over grants reaching it; undefined = every key. */
export function keysAt(access: Access, level: Level): ReadonlySet<string> | undefined {
  const union = new Set<string>();
  for (const h of access.held) {
    if (h.level < level) continue;
    if (h.keys === undefined) return undefined;
    for (const k of h.keys) union.add(k);
  }
  return union;
}

/**
 * Throws unless `access` reaches `level`. No right at all reads as NOT_FOUND, so a
 * caller learns nothing of a secret it may not see; some right but not this one is
 * PERMISSION_DENIED.
 */
export function requireLevel(access: Access, level: Level, name: string): void {
  if (access.level === Level.NONE) throw notFound(`secret "${name}"`);
  if (access.level < level) throw denied(`permission ${Level[level]} required on secret "${name}"`);
}

/** Throws PERMISSION_DENIED for the first key outside `allowed` (from keysAt; undefined = every key). */
export function requireKeys(allowed: ReadonlySet<string> | undefined, keys: Iterable<string>, name: string): void {
  if (allowed === undefined) return;
  for (const k of keys) if (!allowed.has(k)) throw denied(`key "${k}" of secret "${name}" is not granted`);
}

/** True when `access` reaches `level` on every key, present and future (no key limit). */
export function holdsWhole(access: Access, level: Level): boolean {
  return keysAt(access, level) === undefined;
}

/**
 * How long the caller's ADMIN authority over `keys` (empty = every key) lasts: the
 * latest end among the ADMIN grants covering each key, and the earliest of those over
 * the keys (epoch ms; undefined = it never ends). A grant the caller makes may not
 * outlive this. PERMISSION_DENIED for a key no ADMIN grant covers.
 */
export function adminUntil(access: Access, keys: readonly string[]): number | undefined {
  const wanted: Array<string | undefined> = keys.length === 0 ? [undefined] : [...keys];
  let until = Infinity;
  for (const key of wanted) {
    let best = -Infinity;
    for (const h of access.held) {
      if (h.level < Level.ADMIN) continue;
      if (h.keys !== undefined && (key === undefined || !h.keys.has(key))) continue;
      best = Math.max(best, h.expireTime ?? Infinity);
    }
    if (best === -Infinity) {
      throw denied(key === undefined ? "you may only grant the keys you hold: list them in keys" : `you may not grant key "${key}"`);
    }
    until = Math.min(until, best);
  }
  return until === Infinity ? undefined : until;
}

/**
 * Whether a grant lies within a key-limited holder's keys (`allowed` from keysAt;
 * undefined = every key): a grant on every key, or on any key outside, does not.
 */
export function grantWithin(allowed: ReadonlySet<string> | undefined, grantKeys: readonly string[]): boolean {
  if (allowed === undefined) return true;
  return grantKeys.length > 0 && grantKeys.every((k) => allowed.has(k));
}
