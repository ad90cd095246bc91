/**
 * The storage contract every back-end implements and the conformance suite checks.
 * Back-ends hold opaque sealed bytes: encryption happens above this interface, so a
 * back-end never sees a value in clear. "Not found" and "conflict" are values, not
 * exceptions. Times are milliseconds since the epoch.
 */
import type { ChangeFeed } from "./change-feed.js";

export interface Scope {
  readonly tenant: string;
  readonly mesh: string;
}

export interface SecretRow {
  readonly uid: string;
  readonly tenant: string;
  readonly mesh: string;
  readonly name: string;
  readonly type: string;
  readonly description: string;
  readonly owner: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly immutable: boolean;
  /** The current (latest) version. */
  readonly version: number;
  readonly etag: string;
  /** Data key names of the current version. */
  readonly keys: readonly string[];
  readonly createTime: number;
  readonly updateTime: number;
  readonly expireTime: number | undefined;
}

export interface VersionRow {
  readonly uid: string;
  readonly version: number;
  readonly keys: readonly string[];
  /** The data key, wrapped by a KEK (format byte and KEK id inside). */
  readonly dek: Uint8Array;
  /** The sealed data map. */
  readonly payload: Uint8Array;
  readonly createTime: number;
}

/** A grant on one secret, bound to its uid: a re-created name never inherits it. */
export interface GrantRow {
  readonly secretUid: string;
  /** "user:<sub>" or "role:<role>". */
  readonly subject: string;
  /** An access level (domain/access.ts Level), PROJECT..ADMIN. */
  readonly level: number;
  /** Data keys the grant is limited to; empty = every key. */
  readonly keys: readonly string[];
  readonly expireTime: number | undefined;
  readonly grantedBy: string;
  readonly createTime: number;
}

/** Remembers which secret a CreateSecret request_id produced, for idempotent retries. */
export interface CreateRequestRow {
  readonly requestId: string;
  readonly secretUid: string;
  /** A keyed digest of the request (never the values themselves). */
  readonly fingerprint: string;
}

export interface SecretWithVersion {
  readonly secret: SecretRow;
  /** undefined when the requested version no longer exists. */
  readonly version: VersionRow | undefined;
  /** Every grant on the secret, expired ones included. */
  readonly grants: readonly GrantRow[];
}

/** Rows a non-admin may see: owned, or reachable through an unexpired grant. */
export interface Visibility {
  readonly owner: string;
  readonly subjects: readonly string[];
  readonly now: number;
}

export interface ListQuery {
  /** Keyset position: only names strictly greater are returned. */
  readonly afterName: string;
  readonly limit: number;
  /** Only secrets of this type, when set. */
  readonly type?: string | undefined;
  /** Only secrets with an expire_time at or before this time, when set. */
  readonly expireBefore?: number | undefined;
  /** Only secrets this principal owns or holds a grant on, when set. */
  readonly visibleTo?: Visibility | undefined;
}

export type WriteResult = "ok" | "exists" | "missing" | "conflict";

/** A version's wrapped data key with what its AAD needs (KEK rotation rewraps it). */
export interface VersionKeyRow {
  readonly uid: string;
  readonly version: number;
  readonly tenant: string;
  readonly mesh: string;
  readonly name: string;
  readonly dek: Uint8Array;
}

/** Replace `oldDek` of one version by `newDek`, only if the row still holds `oldDek`. */
export interface DekReplacement {
  readonly uid: string;
  readonly version: number;
  readonly oldDek: Uint8Array;
  readonly newDek: Uint8Array;
}

/**
 * A live consumer: one open WatchProjection reading one secret, held by one server
 * process (`replica`) that renews it; past `expireTime` it is dead and no longer counts.
 */
export interface LeaseRow {
  /** The watch's id, unique across replicas. */
  readonly watchId: string;
  readonly secretUid: string;
  readonly tenant: string;
  readonly sub: string;
  readonly roles: readonly string[];
  /** The projection revision the watch last sent ("" before the first message). */
  readonly revision: string;
  readonly since: number;
  readonly lastSeen: number;
  readonly expireTime: number;
  readonly replica: string;
}

export interface Storage {
  /** Every committed write, in revision order, for this and every other process on the data (change-feed.ts). */
  readonly changes: ChangeFeed;
  /**
   * Inserts a secret with its first version, and the idempotency record of its create
   * request when given, in one transaction. "exists" when the scope already has the
   * name; "request-exists" when the tenant already used the request id.
   */
  insertSecret(secret: SecretRow, version: VersionRow, request?: CreateRequestRow): Promise<"ok" | "exists" | "request-exists">;
  /** The secret a create request id produced, while that secret exists. */
  findCreateRequest(tenant: string, requestId: string): Promise<CreateRequestRow | undefined>;
  /** The secret and the given version of it (0 = current), from one read. */
  readSecret(scope: Scope, name: string, version: number): Promise<SecretWithVersion | undefined>;
  /** Current versions of several secrets of one scope, from one read transaction. */
  readSecrets(scope: Scope, names: readonly string[]): Promise<ReadonlyArray<SecretWithVersion | undefined>>;
  /** Metadata of one scope in name order, from afterName on. */
  listSecrets(scope: Scope, query: ListQuery): Promise<SecretRow[]>;
  /**
   * Replaces the secret's metadata and adds `version` as its new current version, when
   * the secret still has `expectEtag`; then destroys versions older than the newest
   * `maxVersions` (their rows deleted, their bytes overwritten).
   */
  updateSecret(next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number): Promise<"ok" | "missing" | "conflict">;
  /** Deletes a secret with every version, when its uid (and etag, if given) still match. */
  deleteSecret(uid: string, etag: string | undefined): Promise<"ok" | "missing" | "conflict">;
  /** Inserts or replaces the grant (secret, subject, level). "missing" when the secret is gone. */
  putGrant(grant: GrantRow): Promise<"ok" | "missing">;
  /** Removes the subject's grants on the secret (only the given level, when set); returns how many. */
  deleteGrants(secretUid: string, subject: string, level: number | undefined): Promise<number>;
  /**
   * Wrapped data keys of every version in (uid, version) order, strictly after the given
   * position ("" and 0 to start), at most `limit`. Each call is its own short read.
   */
  listVersionKeys(afterUid: string, afterVersion: number, limit: number): Promise<VersionKeyRow[]>;
  /**
   * The distinct KEK ids that stored wrapped data keys name, so a server can refuse to
   * start on a keyring that lacks one. The one piece of the envelope layout back-ends
   * read (crypto/envelope.ts): byte 1 of a wrapped key is the id's length n, bytes
   * 2 .. 2+n the id (ASCII). Empty when no version is stored.
   */
  kekIdsInUse(): Promise<string[]>;
  /**
   * Applies the replacements in one transaction, each a compare-and-set on the old bytes,
   * so a version changed or destroyed meanwhile is left alone. Returns how many applied.
   */
  replaceDeks(replacements: readonly DekReplacement[]): Promise<number>;
  /** Inserts or replaces leases; a lease on a secret that no longer exists is skipped. */
  putLeases(leases: readonly LeaseRow[]): Promise<void>;
  /** Removes a watch's leases (only those on the given secrets, when set). */
  deleteLeases(watchId: string, secretUids?: readonly string[]): Promise<void>;
  /**
   * One replica's heartbeat: every lease it holds now runs to `expireTime` (with the
   * revision of `revisions` for the watches listed), and lapsed leases of any replica are
   * removed. Returns how many leases the replica holds.
   */
  renewLeases(replica: string, now: number, expireTime: number, revisions: ReadonlyMap<string, string>): Promise<number>;
  /** Removes every lease of a replica (its orderly shutdown). */
  deleteReplicaLeases(replica: string): Promise<void>;
  /** Live (unexpired at `now`) leases on a secret, oldest first. */
  listLeases(secretUid: string, now: number): Promise<LeaseRow[]>;
  /** Whether the database answers now (health checks); back-ends that cannot lose it omit it. */
  ping?(): Promise<boolean>;
  /** Flushes and closes; further calls fail. */
  close(): Promise<void>;
}
