/**
 * A bounded cache of what readSecret returns (metadata, grants, and the version's
 * ciphertext and wrapped data key: never a plaintext value), so a hot secret is not
 * looked up in SQLite on every read.
 *
 * Coherence: SqliteStorage drops a secret's entries inside every write that touches
 * it (in the same synchronous step as the write, so no read can see the cache and the
 * database disagree), and drops everything when another connection committed (PRAGMA
 * data_version moved: `secretd keys rotate`, a tool on the file), checked once per
 * event-loop turn. Entries are
 * deep-frozen, because every caller shares them. Bounded by the bytes it holds (the
 * ciphertext and every string of the metadata and grants, counted at two bytes a
 * character); an entry larger than `maxEntryBytes` is never cached.
 */
import { UidLru } from "../../uid-lru.js";
import type { GrantRow, Scope, SecretWithVersion } from "../storage.js";

export interface ReadCacheLimits {
  /** Bytes held in all (see approximateBytes). */
  readonly maxBytes: number;
  /** Entries larger than this are read from SQLite every time. */
  readonly maxEntryBytes: number;
}

export const READ_CACHE_LIMITS: ReadCacheLimits = { maxBytes: 16 * 1024 * 1024, maxEntryBytes: 64 * 1024 };

interface Entry {
  readonly uid: string;
  readonly value: SecretWithVersion;
  readonly bytes: number;
}

export class ReadCache {
  readonly #entries: UidLru<Entry>;

  constructor(private readonly limits: ReadCacheLimits = READ_CACHE_LIMITS) {
    this.#entries = new UidLru<Entry>(limits.maxBytes);
  }

  get size(): number {
    return this.#entries.size;
  }

  get(scope: Scope, name: string, version: number): SecretWithVersion | undefined {
    const key = keyOf(scope, name, version);
    const e = this.#entries.peek(key);
    if (e === undefined) return undefined;
    this.#entries.touch(key, e);
    return e.value;
  }

  /** Caches `value` (deep-frozen in place) and returns it. */
  put(scope: Scope, name: string, version: number, value: SecretWithVersion): SecretWithVersion {
    const bytes = approximateBytes(value);
    if (bytes > this.limits.maxEntryBytes) return value;
    freeze(value);
    this.#entries.set(keyOf(scope, name, version), { uid: value.secret.uid, value, bytes });
    return value;
  }

  /** Drops every entry of the secret with this uid. */
  invalidate(uid: string): void {
    this.#entries.invalidate(uid);
  }

  clear(): void {
    this.#entries.clear();
  }
}

function keyOf(scope: Scope, name: string, version: number): string {
  // Mesh and name cannot hold NUL (validated before any read) and the version is a
  // number, so the key parses from the right: unambiguous even for a tenant holding NUL.
  return `${scope.tenant}\0${scope.mesh}\0${name}\0${version}`;
}

/** An upper bound of what an entry keeps alive: buffers, plus strings at 2 bytes a character. */
function approximateBytes(v: SecretWithVersion): number {
  const s = v.secret;
  let chars = s.uid.length + s.tenant.length + s.mesh.length + s.name.length + s.type.length + s.description.length + s.owner.length + s.etag.length;
  for (const m of [s.labels, s.annotations]) for (const [k, val] of Object.entries(m)) chars += k.length + val.length;
  for (const k of s.keys) chars += k.length;
  for (const k of v.version?.keys ?? []) chars += k.length;
  for (const g of v.grants) {
    chars += g.subject.length + g.grantedBy.length;
    for (const k of g.keys) chars += k.length;
  }
  const buffers = v.version ? v.version.payload.length + v.version.dek.length : 0;
  return 512 + 64 * (v.grants.length + s.keys.length) + buffers + 2 * chars;
}

function freeze(v: SecretWithVersion): void {
  Object.freeze(v.secret.labels);
  Object.freeze(v.secret.annotations);
  Object.freeze(v.secret.keys);
  Object.freeze(v.secret);
  if (v.version) {
    Object.freeze(v.version.keys);
    Object.freeze(v.version);
  }
  for (const g of v.grants as GrantRow[]) {
    Object.freeze(g.keys);
    Object.freeze(g);
  }
  Object.freeze(v.grants);
  Object.freeze(v);
}
