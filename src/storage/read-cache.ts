/**
 * A bounded cache of what readSecret returns (metadata, grants, and the version's
 * ciphertext and wrapped data key: never a plaintext value), so a hot secret is not
 * looked up in the database on every read. Both back-ends keep one; the change feed is
 * the only way it learns of writes (each back-end subscribes it: a change drops its
 * secret's entries, a resync drops everything).
 *
 * Coherence on SQLite: writes are synchronous, and SqliteStorage drops a secret's
 * entries in the same step as the write, so no read can see the cache and the database
 * disagree; another connection's commit (PRAGMA data_version moved: `secretd keys
 * rotate`, a tool on the file) drops everything, checked once per event-loop turn.
 *
 * Coherence on PostgreSQL: a read is asynchronous, so a change can be delivered while
 * its SELECT is in flight, and the row it returns may predate that change. The read
 * takes `epoch` before its SELECT and puts with it (`since`): an entry is kept only when
 * no change of that secret (and no resync) was delivered in between; otherwise the
 * value is answered once, uncached. So after the feed delivered a change, no read
 * answers from a row older than it.
 *
 * Entries are deep-frozen, because every caller shares them. Bounded by the bytes it
 * holds (the ciphertext and every string of the metadata and grants, counted at two
 * bytes a character); an entry larger than `maxEntryBytes` is never cached.
 */
import { UidLru } from "../uid-lru.js";
import type { GrantRow, Scope, SecretWithVersion } from "./storage.js";

export interface ReadCacheLimits {
  /** Bytes held in all (see approximateBytes). */
  readonly maxBytes: number;
  /** Entries larger than this are read from the database every time. */
  readonly maxEntryBytes: number;
}

export const READ_CACHE_LIMITS: ReadCacheLimits = { maxBytes: 16 * 1024 * 1024, maxEntryBytes: 64 * 1024 };

interface Entry {
  readonly uid: string;
  readonly value: SecretWithVersion;
  readonly bytes: number;
}

/** Invalidations remembered for puts that started before them (reads in flight). */
const RECENT_INVALIDATIONS = 1024;

export class ReadCache {
  readonly #entries: UidLru<Entry>;
  /** Counts invalidations and clears; a read in flight compares it (see put). */
  #epoch = 0;
  /** The epoch of the last clear: a put that started before it is refused. */
  #clearedAt = 0;
  /** The last RECENT_INVALIDATIONS invalidations, oldest first, with their epoch. */
  readonly #recent: { readonly uid: string; readonly epoch: number }[] = [];

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

  /** Taken before a read that puts asynchronously (PostgreSQL), and passed to put as `since`. */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Caches `value` (deep-frozen in place) and returns it; with `since`, only when no
   * invalidation of its secret and no clear came after that epoch (else it is returned
   * as it is, not cached).
   */
  put(scope: Scope, name: string, version: number, value: SecretWithVersion, since?: number): SecretWithVersion {
    if (since !== undefined && !this.#unchangedSince(value.secret.uid, since)) return value;
    const bytes = approximateBytes(value);
    if (bytes > this.limits.maxEntryBytes) return value;
    freeze(value);
    this.#entries.set(keyOf(scope, name, version), { uid: value.secret.uid, value, bytes });
    return value;
  }

  /** Drops every entry of the secret with this uid. */
  invalidate(uid: string): void {
    this.#entries.invalidate(uid);
    this.#recent.push({ uid, epoch: ++this.#epoch });
    if (this.#recent.length > RECENT_INVALIDATIONS) this.#recent.splice(0, this.#recent.length - RECENT_INVALIDATIONS);
  }

  clear(): void {
    this.#entries.clear();
    this.#clearedAt = ++this.#epoch;
    this.#recent.length = 0;
  }

  #unchangedSince(uid: string, since: number): boolean {
    if (since === this.#epoch) return true;
    if (since < this.#clearedAt) return false;
    const oldest = this.#recent[0];
    if (oldest === undefined || oldest.epoch > since + 1) return false; // forgotten: assume it changed
    for (let i = this.#recent.length - 1; i >= 0 && this.#recent[i]!.epoch > since; i--) if (this.#recent[i]!.uid === uid) return false;
    return true;
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
