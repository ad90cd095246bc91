/**
 * The storage contract every back-end implements and the conformance suite checks.
 * Back-ends hold opaque sealed bytes: encryption happens above this interface, so a
 * back-end never sees a value in clear. "Not found" and "conflict" are values, not
 * exceptions. Times are milliseconds since the epoch.
 *
 * Row MACs (`mac`, `grantsMac`) are opaque bytes too: AuthenticatedStorage
 * (domain/authenticated-storage.ts) computes them on write and checks them on read; a
 * back-end stores and returns them as they are, and never interprets them.
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
  /** MAC over the fields above (domain/row-macs.ts); undefined on a row written before migration 7. */
  readonly mac?: Uint8Array | undefined;
  /**
   * MAC over the whole set of the secret's grant rows. Written by insertSecret, and by
   * putGrant/deleteGrants through their guard; updateSecret leaves it as it is.
   */
  readonly grantsMac?: Uint8Array | undefined;
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
  /** MAC over uid, version, keys and createTime (the payload is bound by its AEAD). */
  readonly mac?: Uint8Array | undefined;
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

/**
 * Remembers which secret a CreateSecret request_id produced, for idempotent retries.
 * An id belongs to its caller: it is keyed by (tenant, sub, request_id).
 */
export interface CreateRequestRow {
  /** The caller who sent the request (its token's sub). */
  readonly sub: string;
  readonly requestId: string;
  readonly secretUid: string;
  /** A keyed digest of the request (never the values themselves). */
  readonly fingerprint: string;
  /** MAC over tenant, request id, secret uid and fingerprint. */
  readonly mac?: Uint8Array | undefined;
}

export interface SecretWithVersion {
  readonly secret: SecretRow;
  /** undefined when the requested version no longer exists. */
  readonly version: VersionRow | undefined;
  /** Every grant on the secret, expired ones included. */
  readonly grants: readonly GrantRow[];
  /** The highest version number stored for the uid (0 when none): a current pointer below it is a rollback. */
  readonly latestVersion: number;
}

/** A listed secret; with its grants when the query had `visibleTo` and the caller is not the owner. */
/** Sees each row of a readSecrets as it is read (see SecretStore.readSecrets); throws to stop the read. */
export type RowCheck = (name: string, row: SecretWithVersion | undefined) => void;

export type ListedSecret = SecretRow & {
  readonly grants?: readonly GrantRow[] | undefined;
  /** As SecretWithVersion.latestVersion. */
  readonly latestVersion: number;
};

/** A secret's grants as stored, with the MAC over the set. */
export interface GrantSet {
  readonly grants: readonly GrantRow[];
  readonly grantsMac: Uint8Array | undefined;
}

/**
 * A compare-and-set of the grants MAC: a grant write applies only while the stored MAC
 * still equals `expect` (byte for byte; undefined = none stored), and stores `next`.
 */
export interface GrantsMacGuard {
  readonly expect: Uint8Array | undefined;
  readonly next: Uint8Array;
}

/** Everything a row MAC covers, per secret, for re-keying MACs after a KEK rotation. */
export interface MacRows {
  readonly secret: SecretRow;
  readonly grants: readonly GrantRow[];
  /** Version rows without their payload and data key (which their AEAD binds). */
  readonly versions: readonly Omit<VersionRow, "dek" | "payload">[];
  readonly requests: readonly (CreateRequestRow & { readonly tenant: string })[];
}

/** Replace a stored MAC by `next`, only if the row still holds `old` (undefined = none). */
export type MacReplacement =
  | { readonly kind: "secret" | "grants"; readonly uid: string; readonly old: Uint8Array | undefined; readonly next: Uint8Array }
  | { readonly kind: "version"; readonly uid: string; readonly version: number; readonly old: Uint8Array | undefined; readonly next: Uint8Array }
  | { readonly kind: "request"; readonly tenant: string; readonly sub: string; readonly requestId: string; readonly old: Uint8Array | undefined; readonly next: Uint8Array };

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
  /**
   * Told what the back-end read before rows were left out above it (a row failing its MAC,
   * or not visible after all): how many, and the last one's name, so a keyset scan moves
   * past them and knows whether more may follow.
   */
  readonly onRead?: ((count: number, lastName: string | undefined) => void) | undefined;
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
 * process (`replica`); as listed, with its replica's heartbeat: `lastSeen` is the
 * replica's last renewal, and past `expireTime` the lease is dead and no longer counts.
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
  /** The revision its consumer last acked (AckProjection), "" before the first ack. */
  readonly appliedRevision: string;
  /** When that ack landed (ms); 0 before the first. */
  readonly appliedTime: number;
  /** The source versions the acked revision carried. */
  readonly applied: readonly SourceVersion[];
}

/** One source of a projection revision: the secret (uid, and its mesh and name then) and the version it carried. */
export interface SourceVersion {
  readonly uid: string;
  readonly version: number;
  readonly mesh: string;
  readonly name: string;
}

/** A revision one watch sent: its place in the watch's order and the source versions it carried. */
export interface SentRevision {
  readonly seq: number;
  readonly revision: string;
  readonly sources: readonly SourceVersion[];
}

/** One watch's recent sends, as written when a message goes out (the newest last). */
export interface WatchSends {
  readonly watchId: string;
  readonly replica: string;
  readonly sent: readonly SentRevision[];
}

/** A live watch as an ack checks it. */
export interface WatchAckView {
  readonly tenant: string;
  readonly sub: string;
  readonly sent: readonly SentRevision[];
  readonly appliedSeq: number;
}

/** What an accepted ack records on its watch's row. */
export interface WatchAck {
  readonly seq: number;
  readonly revision: string;
  readonly time: number;
  readonly applied: readonly SourceVersion[];
}

/**
 * One watch's lease as stored: one row per watch, its secrets (sources) in a side table
 * written when they change, and no time of its own: it lives while its replica's
 * heartbeat does, so one write renews every lease of a replica (#27 item 5).
 */
export type WatchLease = Omit<LeaseRow, "secretUid" | "lastSeen" | "expireTime" | "appliedRevision" | "appliedTime" | "applied">;

/** A replica's heartbeat: renewed at `now`, its leases live until `expireTime`. */
export interface Heartbeat {
  readonly now: number;
  readonly expireTime: number;
}

/**
 * One audit event (SPEC §6): identifiers and an outcome, never a value or a token.
 * `version` is 0 and `keys` empty where the call named none.
 */
export interface AuditRow {
  readonly tenant: string;
  readonly time: number;
  readonly requestId: string;
  readonly method: string;
  readonly sub: string;
  readonly mesh: string;
  readonly name: string;
  readonly version: number;
  readonly keys: readonly string[];
  /** The gRPC code name of the outcome: "OK", "PERMISSION_DENIED", … */
  readonly code: string;
  readonly peer: string;
  /** The stage of the version the event names ("current", "previous", "pending"), or "" (stages.ts). */
  readonly stage: string;
}

/** A stored audit event with its position, which orders events of equal time. */
export interface StoredAuditRow extends AuditRow {
  /** Assigned by the back-end on append, increasing in append order. */
  readonly id: number;
}

export interface AuditQuery {
  /** Keyset position: only events strictly after (time, id) in (time, id) order. */
  readonly after: { readonly time: number; readonly id: number } | undefined;
  readonly limit: number;
  /** Each filter, when set, keeps only events with exactly that value. */
  readonly mesh?: string | undefined;
  readonly name?: string | undefined;
  readonly sub?: string | undefined;
  /** Only events of these meshes (the global scope "" is a mesh here), when set. */
  readonly meshes?: readonly string[] | undefined;
  /** Inclusive lower and exclusive upper bound on time, when set. */
  readonly since?: number | undefined;
  readonly until?: number | undefined;
}

/**
 * The storage contract, in roles: each consumer can name the one it needs (the audit trail
 * an AuditStore, key rotation a KeyMaintenance), and a back-end implements `Storage`,
 * their union. Both SQL back-ends share their rows and write rules (storage/sql/).
 */
/** Secrets and their versions, with the change feed their writes append to. */
export interface SecretStore {
  /** Every committed write, in revision order, for this and every other process on the data (change-feed.ts). */
  readonly changes: ChangeFeed;
  /**
   * Inserts a secret with its first version, and the idempotency record of its create
   * request when given, in one transaction. "exists" when the scope already has the
   * name; "request-exists" when the same caller (tenant, sub) already used the request id.
   */
  insertSecret(secret: SecretRow, version: VersionRow, request?: CreateRequestRow): Promise<"ok" | "exists" | "request-exists">;
  /** The secret a caller's create request id produced, while that secret exists. */
  findCreateRequest(tenant: string, sub: string, requestId: string): Promise<CreateRequestRow | undefined>;
  /** The secret and the given version of it (0 = current), from one read. */
  /**
   * `fresh`: read from the database itself, past any read cache. Write paths ask for it:
   * the etag they compare and the version they build on must be the stored ones, even
   * when another replica wrote a moment ago and the feed has not told this one yet.
   */
  readSecret(scope: Scope, name: string, version: number, fresh?: boolean): Promise<SecretWithVersion | undefined>;
  /**
   * Current versions of several secrets of one scope, from one read transaction.
   * `onRow`, when given, is called with each row (undefined: missing), in the order of
   * `names`, as soon as it is read and before the next one is (#27): it may throw to end
   * the read there, and the read then fails with its error.
   */
  readSecrets(scope: Scope, names: readonly string[], onRow?: RowCheck): Promise<ReadonlyArray<SecretWithVersion | undefined>>;
  /** Metadata of one scope in name order, from afterName on. */
  listSecrets(scope: Scope, query: ListQuery): Promise<ListedSecret[]>;
  /**
   * Replaces the secret's metadata and adds `version` as its new current version, when
   * the secret still has `expectEtag`; then destroys versions older than the newest
   * `maxVersions` (their rows deleted, their bytes overwritten).
   */
  updateSecret(next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number): Promise<"ok" | "missing" | "conflict">;
  /** Deletes a secret with every version, when its uid (and etag, if given) still match. */
  deleteSecret(uid: string, etag: string | undefined): Promise<"ok" | "missing" | "conflict">;
}

/** The grants of a secret, each set written under its grants MAC guard. */
export interface GrantStore {
  /**
   * Inserts or replaces the grant (secret, subject, level). "missing" when the secret is
   * gone; "conflict" when a guard is given and the stored grants MAC is not its `expect`.
   */
  putGrant(grant: GrantRow, guard?: GrantsMacGuard): Promise<"ok" | "missing" | "conflict">;
  /**
   * Removes the subject's grants on the secret (only the given level, when set); returns
   * how many, or "conflict" as putGrant.
   */
  deleteGrants(secretUid: string, subject: string, level: number | undefined, guard?: GrantsMacGuard): Promise<number | "conflict">;
  /** A secret's grants with their MAC, undefined when the secret is gone. */
  readGrants(secretUid: string): Promise<GrantSet | undefined>;
}

/** Row MAC maintenance: re-keying after a KEK rotation, and the one-time backfill. */
export interface MacMaintenance {
  /** Secrets in uid order strictly after `afterUid` ("" to start), at most `limit`, with every MAC-covered row. */
  listMacRows(afterUid: string, limit: number): Promise<MacRows[]>;
  /** Applies the replacements in one transaction, each a compare-and-set; returns how many applied. */
  replaceMacs(replacements: readonly MacReplacement[]): Promise<number>;
  /**
   * Once, right after the migration that added row MACs (7): in one transaction, and only
   * when that migration left its "backfill pending" mark and no row holds a MAC yet,
   * hands every row to `compute` and stores the MACs it returns, then clears the mark.
   * Returns how many rows got a MAC ("none" when there was nothing to do).
   */
  backfillMacs(compute: (rows: readonly MacRows[]) => readonly MacReplacement[]): Promise<number | "none" | "refused">;
}

/** Data-key maintenance: the KEKs in use and rewrapping data keys (keys rotate / rewrap). */
export interface KeyMaintenance {
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
}

/** Consumer leases: which replicas' watches read which secrets. */
export interface LeaseStore {
  /**
   * Starts the heartbeat of a replica name never used before: its leases live until
   * `expireTime`, and on while renewLeases renews it. Callers never start a name twice:
   * once a heartbeat lapsed its leases are dead for good (renewals may have begun pruning
   * them) and the process starts over under a new name, so no lease comes back half pruned.
   */
  openReplica(replica: string, heartbeat: Heartbeat): Promise<void>;
  /**
   * Records one watch's lease (its revision replaced) on these secrets, added to the ones
   * it holds; a secret that no longer exists is skipped. `false`, and nothing written,
   * when the replica's heartbeat is not live at `now`.
   */
  putLeases(lease: WatchLease, secretUids: readonly string[], now: number): Promise<boolean>;
  /** Removes a watch's lease (only on the given secrets, when set). */
  deleteLeases(watchId: string, secretUids?: readonly string[]): Promise<void>;
  /**
   * One replica's heartbeat: a single row write renews every lease it holds, however many
   * watches and sources (plus one row per watch of `revisions`, whose last sent revision
   * changed). A bounded chunk of dead replicas' rows is removed on the way. Returns the
   * rows the renewal itself wrote (1 + revisions updated), or 0 when the heartbeat had
   * already lapsed (nothing renewed: the replica must start over under a new name).
   */
  renewLeases(replica: string, heartbeat: Heartbeat, revisions: ReadonlyMap<string, string>): Promise<number>;
  /** Ends a replica's heartbeat (orderly shutdown): its leases are dead at once, their rows removed later. */
  deleteReplicaLeases(replica: string): Promise<void>;
  /** Live leases on a secret (their replica's heartbeat unexpired at `now`), oldest first. */
  listLeases(secretUid: string, now: number): Promise<LeaseRow[]>;
  /**
   * Records what watches just sent (their last revisions, newest last; `revision` becomes
   * the newest), before the messages go out, so an ack landing on any replica finds them.
   * Rows of another replica, or gone, are left alone. One write for the whole batch.
   */
  recordSent(sends: readonly WatchSends[]): Promise<void>;
  /** A watch whose replica's heartbeat is live at `now`, as an ack checks it; undefined when none. */
  readWatch(watchId: string, now: number): Promise<WatchAckView | undefined>;
  /** Records an ack unless one of a later send (seq) is already there; true when written. */
  recordAck(watchId: string, ack: WatchAck): Promise<boolean>;
}

/** The audit trail's rows: appends, per-tenant listing, and both retentions. */
export interface AuditStore {
  /** Appends audit events in one transaction (a batch of the audit queue). */
  appendAudit(events: readonly AuditRow[]): Promise<void>;
  /** One tenant's events in (time, id) order after the query's position, filtered, at most `limit`. */
  listAudit(tenant: string, query: AuditQuery): Promise<StoredAuditRow[]>;
  /** Deletes at most `limit` events (any tenant) older than `before`; returns how many. */
  pruneAudit(before: number, limit: number): Promise<number>;
  /**
   * Size-bounded retention: while the stored events' sizes (audit-row-bytes.ts) sum to
   * more than `maxBytes`, deletes the oldest (any tenant), at most `limit`; returns how many.
   */
  pruneAuditBytes(maxBytes: number, limit: number): Promise<number>;
}

/**
 * A rotation (#30): RotateSecret made `version` current and `previousVersion` the
 * `previous` stage, readable until retired. States are RotationState's numbers
 * (1 waiting for acks, 2 retiring, 3 done, 4 timed out, 5 failed, 6 pending: the
 * rotator's step not done, `version` stored but not current); while 1, 2 or 6 the
 * rotation is active, and the process whose claim (`driver` until `driverExpire`) is
 * live drives it. Identifiers and outcomes only: never a value.
 */
export interface RotationRow {
  readonly secretUid: string;
  readonly tenant: string;
  /** Where the secret is (a secret is never renamed): for the retire hook and the log. */
  readonly mesh: string;
  readonly name: string;
  /** "" or "exec": the rotator whose retire hook runs before the previous version goes. */
  readonly rotator: string;
  readonly version: number;
  readonly previousVersion: number;
  /** Retire's number: 0 after ack, 1 immediate, 2 never. */
  readonly retire: number;
  readonly state: number;
  readonly started: number;
  /** When an AFTER_ACK rotation retires anyway (started + ack_timeout). */
  readonly deadline: number;
  readonly finished: number | undefined;
  /** The previous version is still readable (by stage and by number). */
  readonly previousReadable: boolean;
  readonly detail: string;
  readonly driver: string;
  readonly driverExpire: number;
}

/** The active states of a rotation (RotationState WAITING_FOR_ACKS, RETIRING, PENDING). */
export const ACTIVE_ROTATION_STATES = [1, 2, 6] as const;

/** How a driver ends a rotation: its final state and detail, and whether the previous version is destroyed now. */
export interface RotationOutcome {
  readonly state: number;
  readonly finished: number;
  readonly detail: string;
  readonly retirePrevious: boolean;
}

/** Rotations and the version stages they keep (#30 items 3, 4). */
export interface RotationStore {
  /**
   * In one transaction: when the secret has no active rotation and still has
   * `expectEtag`, does what updateSecret does (at least two versions kept), destroys the
   * previous version an earlier rotation still kept, records `rotation`, and, when it is
   * already finished without a readable previous (IMMEDIATE), destroys the version it
   * made previous. Else "missing", "conflict", or the active rotation.
   */
  rotateSecret(next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number, rotation: RotationRow): Promise<"ok" | "missing" | "conflict" | { readonly running: RotationRow }>;
  /**
   * Write-ahead rotation with a rotator (#30): in one transaction, when the secret has no
   * active rotation and still has `expectEtag`, stores `version` (the next number, sealed
   * but NOT current: the secret row is untouched) and records `rotation` (state PENDING).
   * Else "missing", "conflict", or the active rotation.
   */
  beginRotation(version: VersionRow, expectEtag: string, rotation: RotationRow): Promise<"ok" | "missing" | "conflict" | { readonly running: RotationRow }>;
  /**
   * Makes a PENDING rotation's version current, in one transaction: when the rotation is
   * still PENDING and the secret still has `expectEtag`, writes `next` (its version the
   * pending one; versions beyond `maxVersions` pruned, a previous an earlier rotation kept
   * retired) and the record becomes `rotation` (destroying the version made previous when
   * it is not readable). "gone" when the rotation is no longer PENDING.
   */
  promoteRotation(next: SecretRow, expectEtag: string, maxVersions: number, rotation: RotationRow): Promise<"ok" | "gone" | "missing" | "conflict">;
  /** Ends a PENDING rotation unpromoted: its sealed version destroyed, the record FAILED with `detail`; false when it is not PENDING. */
  discardRotation(secretUid: string, version: number, finished: number, detail: string): Promise<boolean>;
  /**
   * Sets the detail of a PENDING rotation (a step being retried: attempt, error class,
   * next attempt; never a value), so GetRollout tells it from any process and past a
   * restart; false when it is not PENDING.
   */
  noteRotation(secretUid: string, version: number, detail: string): Promise<boolean>;
  /** A secret's rotation that made `version` current; with version 0, its latest one. */
  readRotation(secretUid: string, version: number): Promise<RotationRow | undefined>;
  /** Active rotations of every tenant, oldest first, at most `limit`. */
  listActiveRotations(limit: number): Promise<RotationRow[]>;
  /** Takes or renews the claim on an active rotation, when it is free, lapsed at `now`, or already `driver`'s. */
  claimRotation(secretUid: string, version: number, driver: string, now: number, expireTime: number): Promise<boolean>;
  /** Ends an active rotation `driver` holds (one transaction, the retired version destroyed with it); false when it does not hold it. */
  finishRotation(secretUid: string, version: number, driver: string, outcome: RotationOutcome): Promise<boolean>;
  /** Lets go of every claim of `driver` (orderly shutdown), so another process resumes at once. */
  releaseRotations(driver: string): Promise<void>;
}

/**
 * A secret whose rotation policy is due (#30 item 5): the annotation
 * `secretd.io/rotation-next` (an RFC 3339 UTC time of fixed width, written by the domain
 * with every version) at or before now. Back-ends find them by an index on that
 * annotation's value, which the database keeps in the secret's own write transaction.
 * `etag` is the one the due time was read with: a scheduler rotates with it, so a
 * secret rotated meanwhile refuses the stale one.
 */
export interface DueSecret {
  readonly uid: string;
  readonly tenant: string;
  readonly mesh: string;
  readonly name: string;
  readonly etag: string;
  readonly annotations: Readonly<Record<string, string>>;
  /** The rotation-next annotation's value. */
  readonly due: string;
}

/** A due time's attempts: one scheduler's claim on it, and its failures (identifiers and reasons only). */
export interface ScheduleRow {
  readonly secretUid: string;
  readonly due: string;
  readonly claimedBy: string;
  readonly claimExpire: number;
  readonly failures: number;
  readonly lastError: string;
  readonly failedAt: number;
  /** Not before this time (ms) is the due time tried again (backoff after a failure). */
  readonly retryAt: number;
}

/** Scheduled rotation: the due secrets, and which process tries each due time (#30 item 5). */
export interface RotationScheduleStore {
  /**
   * Secrets of every tenant whose rotation-next is at or before `nowIso` (RFC 3339, as the
   * annotation), earliest first, at most `limit`, leaving out those whose due time is
   * claimed by a live claim or waiting for its retry at `now`.
   */
  listDueRotations(nowIso: string, now: number, limit: number): Promise<DueSecret[]>;
  /**
   * Claims the secret's due time for `claimer` until `expireTime`: when no claim is stored
   * for that due time, or the stored one lapsed and its retry time passed (a new due time
   * starts over: no failures). False when another holds it.
   */
  claimDueRotation(secretUid: string, due: string, claimer: string, now: number, expireTime: number): Promise<boolean>;
  /** Lets go of the claimer's claim (its rotation lost a race and another will follow). */
  releaseDueRotation(secretUid: string, claimer: string): Promise<void>;
  /** Records a failed attempt on the claimer's claim: let go, failures counted, tried again at `retryAt`. */
  failDueRotation(secretUid: string, claimer: string, failure: { readonly error: string; readonly failedAt: number; readonly retryAt: number }): Promise<void>;
  /** The secret's schedule row, undefined when no due time was ever claimed. */
  readDueRotation(secretUid: string): Promise<ScheduleRow | undefined>;
}

export interface Storage extends SecretStore, GrantStore, MacMaintenance, KeyMaintenance, LeaseStore, AuditStore, RotationStore, RotationScheduleStore {
  /** Whether the database answers now (health checks); back-ends that cannot lose it omit it. */
  ping?(): Promise<boolean>;
  /** Flushes and closes; further calls fail. */
  close(): Promise<void>;
}
