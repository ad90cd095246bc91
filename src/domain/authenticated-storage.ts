/**
 * The integrity half of the barrier: a Storage that wraps a back-end, MACs every
 * security-relevant row it writes (row-macs.ts) and checks every row it reads, so
 * someone who can write the database file but holds no KEK cannot roll a secret back,
 * make itself owner, add or alter a grant, or lift immutability or expiry: the server
 * answers DATA_LOSS for that secret (the message a ciphertext that does not open gets)
 * and keeps serving the others. Back-ends store the MACs as opaque bytes.
 *
 * Reads check, in order: the secret row's MAC; the MAC over its grant set; that no
 * version newer than the current pointer is stored (a pointer set back to an older,
 * still-stored version, even with an old copy of the row and its MAC, is a rollback);
 * the version row's MAC. Listing checks each row the same way and leaves out a row that
 * fails (logged), so one tampered secret does not break a listing; for a caller who is
 * not the owner, visibility through a grant is decided again on the checked grant set.
 *
 * Both back-ends' read cache (storage/read-cache.ts) hands out the same deep-frozen
 * object while an entry lives, and drops an entry when the change feed reports a write
 * to its secret (all of them on a write made outside secretd: a tool editing the SQLite
 * file, plain SQL on PostgreSQL); so an object checked once is not checked again (see
 * #checked). A row read from the database is a new object and is checked.
 */
import type { KeyringSource } from "../crypto/keyring.js";
import type { ChangeFeed } from "../storage/change-feed.js";
import type {
  AuditQuery,
  AuditRow,
  StoredAuditRow,
  CreateRequestRow,
  DekReplacement,
  GrantRow,
  GrantSet,
  GrantsMacGuard,
  Heartbeat,
  LeaseRow,
  ListedSecret,
  ListQuery,
  MacReplacement,
  MacRows,
  RotationOutcome,
  RotationRow,
  DueSecret,
  ScheduleRow,
  RowCheck,
  Scope,
  SecretRow,
  SecretWithVersion,
  Storage,
  VersionKeyRow,
  VersionRow,
  WatchAck,
  WatchAckView,
  WatchLease,
  WatchSends,
} from "../storage/storage.js";
import { isLive } from "./access.js";
import { grantsChanged, SecretdError } from "../errors.js";
import { checkGrants, checkRequest, checkSecret, checkVersion, signGrants, signRequest, signSecret, signVersion } from "./row-macs.js";

/** Grant writes retry their compare-and-set on the grants MAC this often before ABORTED. */
const GRANT_WRITE_ATTEMPTS = 8;

export type TamperReport = (what: { readonly uid: string; readonly tenant: string; readonly mesh: string; readonly name: string }, err: unknown) => void;

export class AuthenticatedStorage implements Storage {
  /**
   * Read results already checked. Only frozen objects go in (read-cache entries): they
   * cannot change after the check, and the cache drops them, so a new object, checked
   * again, replaces them, whenever the change feed says their secret changed.
   */
  readonly #checked = new WeakSet<SecretWithVersion>();

  /** Present when the back-end can lose its database (PostgreSQL). */
  readonly ping?: () => Promise<boolean>;

  constructor(
    private readonly inner: Storage,
    private readonly keys: KeyringSource,
    private readonly onTampered: TamperReport = () => {},
  ) {
    const ping = inner.ping?.bind(inner);
    if (ping !== undefined) this.ping = ping;
  }

  /** The back-end's feed: every MAC write goes through the same transactions as the rows it covers. */
  get changes(): ChangeFeed {
    return this.inner.changes;
  }

  async insertSecret(secret: SecretRow, version: VersionRow, request?: CreateRequestRow): Promise<"ok" | "exists" | "request-exists"> {
    const s: SecretRow = { ...secret, mac: signSecret(this.keys, secret), grantsMac: signGrants(this.keys, secret.uid, []) };
    const v: VersionRow = { ...version, mac: signVersion(this.keys, version) };
    const r = request === undefined ? undefined : { ...request, mac: signRequest(this.keys, secret.tenant, request) };
    return this.inner.insertSecret(s, v, r);
  }

  async findCreateRequest(tenant: string, sub: string, requestId: string): Promise<CreateRequestRow | undefined> {
    const r = await this.inner.findCreateRequest(tenant, sub, requestId);
    if (r !== undefined) checkRequest(this.keys, tenant, r);
    return r;
  }

  async readSecret(scope: Scope, name: string, version: number, fresh = false): Promise<SecretWithVersion | undefined> {
    const found = await this.inner.readSecret(scope, name, version, fresh);
    if (found !== undefined) this.check(found);
    return found;
  }

  /** Each row is checked as it is read, before `onRow` sees it (and before the next row is read). */
  async readSecrets(scope: Scope, names: readonly string[], onRow?: RowCheck): Promise<ReadonlyArray<SecretWithVersion | undefined>> {
    return this.inner.readSecrets(scope, names, (name, row) => {
      if (row !== undefined) this.check(row);
      onRow?.(name, row);
    });
  }

  async listSecrets(scope: Scope, query: ListQuery): Promise<ListedSecret[]> {
    const rows = await this.inner.listSecrets(scope, query);
    query.onRead?.(rows.length, rows.at(-1)?.name);
    const v = query.visibleTo;
    return rows.filter((row) => {
      try {
        checkSecret(this.keys, row);
        if (row.latestVersion > row.version) throw rollback(row, row.latestVersion);
        if (v === undefined || row.owner === v.owner) return true;
        // Visible through a grant: decided again, on grants whose set MAC checks.
        if (row.grants === undefined) return false;
        checkGrants(this.keys, row.uid, row.grants, row.grantsMac);
        const subjects = new Set(v.subjects);
        return row.grants.some((g) => g.secretUid === row.uid && subjects.has(g.subject) && isLive(g, v.now));
      } catch (err) {
        if (!(err instanceof SecretdError) || err.code !== "DATA_LOSS") throw err;
        this.onTampered(row, err);
        return false;
      }
    });
  }

  async updateSecret(next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number): Promise<"ok" | "missing" | "conflict"> {
    const s: SecretRow = { ...next, mac: signSecret(this.keys, next) };
    const v: VersionRow = { ...version, mac: signVersion(this.keys, version) };
    return this.inner.updateSecret(s, v, expectEtag, maxVersions);
  }

  async deleteSecret(uid: string, etag: string | undefined): Promise<"ok" | "missing" | "conflict"> {
    return this.inner.deleteSecret(uid, etag);
  }

  /** Signed as updateSecret; the rotation record itself names versions and outcomes only (not MAC'd). */
  async rotateSecret(next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number, rotation: RotationRow): Promise<"ok" | "missing" | "conflict" | { readonly running: RotationRow }> {
    const s: SecretRow = { ...next, mac: signSecret(this.keys, next) };
    const v: VersionRow = { ...version, mac: signVersion(this.keys, version) };
    return this.inner.rotateSecret(s, v, expectEtag, maxVersions, rotation);
  }

  /** The pending version is signed as any version; the secret row is signed when promoted. */
  async beginRotation(version: VersionRow, expectEtag: string, rotation: RotationRow): Promise<"ok" | "missing" | "conflict" | { readonly running: RotationRow }> {
    return this.inner.beginRotation({ ...version, mac: signVersion(this.keys, version) }, expectEtag, rotation);
  }

  async promoteRotation(next: SecretRow, expectEtag: string, maxVersions: number, rotation: RotationRow): Promise<"ok" | "gone" | "missing" | "conflict"> {
    return this.inner.promoteRotation({ ...next, mac: signSecret(this.keys, next) }, expectEtag, maxVersions, rotation);
  }

  async discardRotation(secretUid: string, version: number, finished: number, detail: string): Promise<boolean> {
    return this.inner.discardRotation(secretUid, version, finished, detail);
  }

  async noteRotation(secretUid: string, version: number, detail: string): Promise<boolean> {
    return this.inner.noteRotation(secretUid, version, detail);
  }

  async readRotation(secretUid: string, version: number): Promise<RotationRow | undefined> {
    return this.inner.readRotation(secretUid, version);
  }

  async listActiveRotations(limit: number): Promise<RotationRow[]> {
    return this.inner.listActiveRotations(limit);
  }

  async claimRotation(secretUid: string, version: number, driver: string, now: number, expireTime: number): Promise<boolean> {
    return this.inner.claimRotation(secretUid, version, driver, now, expireTime);
  }

  async finishRotation(secretUid: string, version: number, driver: string, outcome: RotationOutcome): Promise<boolean> {
    return this.inner.finishRotation(secretUid, version, driver, outcome);
  }

  async releaseRotations(driver: string): Promise<void> {
    return this.inner.releaseRotations(driver);
  }

  /** Due secrets by their index; a scheduler rotates them through the checked reads of RotateSecret. */
  async listDueRotations(nowIso: string, now: number, limit: number): Promise<DueSecret[]> {
    return this.inner.listDueRotations(nowIso, now, limit);
  }

  async claimDueRotation(secretUid: string, due: string, claimer: string, now: number, expireTime: number): Promise<boolean> {
    return this.inner.claimDueRotation(secretUid, due, claimer, now, expireTime);
  }

  async releaseDueRotation(secretUid: string, claimer: string): Promise<void> {
    return this.inner.releaseDueRotation(secretUid, claimer);
  }

  async failDueRotation(secretUid: string, claimer: string, failure: { readonly error: string; readonly failedAt: number; readonly retryAt: number }): Promise<void> {
    return this.inner.failDueRotation(secretUid, claimer, failure);
  }

  async readDueRotation(secretUid: string): Promise<ScheduleRow | undefined> {
    return this.inner.readDueRotation(secretUid);
  }

  /** Extends the checked grant set by the grant, as a compare-and-set on the set's MAC. */
  async putGrant(grant: GrantRow): Promise<"ok" | "missing" | "conflict"> {
    for (let attempt = 0; attempt < GRANT_WRITE_ATTEMPTS; attempt++) {
      const set = await this.readGrants(grant.secretUid);
      if (set === undefined) return "missing";
      const others = set.grants.filter((g) => g.subject !== grant.subject || g.level !== grant.level);
      const guard: GrantsMacGuard = { expect: set.grantsMac, next: signGrants(this.keys, grant.secretUid, [...others, grant]) };
      const r = await this.inner.putGrant(grant, guard);
      if (r !== "conflict") return r;
    }
    throw grantsChanged();
  }

  async deleteGrants(secretUid: string, subject: string, level: number | undefined): Promise<number | "conflict"> {
    for (let attempt = 0; attempt < GRANT_WRITE_ATTEMPTS; attempt++) {
      const set = await this.readGrants(secretUid);
      if (set === undefined) return 0;
      const kept = set.grants.filter((g) => g.subject !== subject || (level !== undefined && g.level !== level));
      if (kept.length === set.grants.length) return 0;
      const r = await this.inner.deleteGrants(secretUid, subject, level, { expect: set.grantsMac, next: signGrants(this.keys, secretUid, kept) });
      if (r !== "conflict") return r;
    }
    throw grantsChanged();
  }

  /** The grant set, checked against its MAC (DATA_LOSS when it does not match). */
  async readGrants(secretUid: string): Promise<GrantSet | undefined> {
    const set = await this.inner.readGrants(secretUid);
    if (set !== undefined) checkGrants(this.keys, secretUid, set.grants, set.grantsMac);
    return set;
  }

  async listVersionKeys(afterUid: string, afterVersion: number, limit: number): Promise<VersionKeyRow[]> {
    return this.inner.listVersionKeys(afterUid, afterVersion, limit);
  }

  async kekIdsInUse(): Promise<string[]> {
    return this.inner.kekIdsInUse();
  }

  async replaceDeks(replacements: readonly DekReplacement[]): Promise<number> {
    return this.inner.replaceDeks(replacements);
  }

  async listMacRows(afterUid: string, limit: number): Promise<MacRows[]> {
    return this.inner.listMacRows(afterUid, limit);
  }

  async replaceMacs(replacements: readonly MacReplacement[]): Promise<number> {
    return this.inner.replaceMacs(replacements);
  }

  async backfillMacs(compute: (rows: readonly MacRows[]) => readonly MacReplacement[]): Promise<number | "none" | "refused"> {
    return this.inner.backfillMacs(compute);
  }

  /**
   * Consumer leases are not MAC'd: they grant nothing (ListConsumers reports them to
   * admins), and a forged or removed lease only misreports who is watching.
   */
  async openReplica(replica: string, heartbeat: Heartbeat): Promise<void> {
    return this.inner.openReplica(replica, heartbeat);
  }

  async putLeases(lease: WatchLease, secretUids: readonly string[], now: number): Promise<boolean> {
    return this.inner.putLeases(lease, secretUids, now);
  }

  async deleteLeases(watchId: string, secretUids?: readonly string[]): Promise<void> {
    return this.inner.deleteLeases(watchId, secretUids);
  }

  async renewLeases(replica: string, heartbeat: Heartbeat, revisions: ReadonlyMap<string, string>): Promise<number> {
    return this.inner.renewLeases(replica, heartbeat, revisions);
  }

  async deleteReplicaLeases(replica: string): Promise<void> {
    return this.inner.deleteReplicaLeases(replica);
  }

  async listLeases(secretUid: string, now: number): Promise<LeaseRow[]> {
    return this.inner.listLeases(secretUid, now);
  }

  // Sends and acks ride on the lease rows, unsigned like them (SECURITY.md: a forged ack
  // misreports a rollout, and so could let a rotation retire a version early).
  async recordSent(sends: readonly WatchSends[]): Promise<void> {
    return this.inner.recordSent(sends);
  }

  async readWatch(watchId: string, now: number): Promise<WatchAckView | undefined> {
    return this.inner.readWatch(watchId, now);
  }

  async recordAck(watchId: string, ack: WatchAck): Promise<boolean> {
    return this.inner.recordAck(watchId, ack);
  }

  // Audit events are an append-only record, not access state: passed through unsigned.
  async appendAudit(events: readonly AuditRow[]): Promise<void> {
    return this.inner.appendAudit(events);
  }

  async listAudit(tenant: string, query: AuditQuery): Promise<StoredAuditRow[]> {
    return this.inner.listAudit(tenant, query);
  }

  async pruneAudit(before: number, limit: number): Promise<number> {
    return this.inner.pruneAudit(before, limit);
  }

  async pruneAuditBytes(maxBytes: number, limit: number): Promise<number> {
    return this.inner.pruneAuditBytes(maxBytes, limit);
  }

  async close(): Promise<void> {
    return this.inner.close();
  }

  private check(found: SecretWithVersion): void {
    if (this.#checked.has(found)) return;
    const s = found.secret;
    checkSecret(this.keys, s);
    checkGrants(this.keys, s.uid, found.grants, s.grantsMac);
    if (found.latestVersion > s.version) throw rollback(s, found.latestVersion);
    const v = found.version;
    if (v !== undefined) {
      if (v.uid !== s.uid) throw new SecretdError("DATA_LOSS", "stored secret data failed to authenticate", { cause: new Error("version row of another uid") });
      checkVersion(this.keys, v);
    }
    if (Object.isFrozen(found)) this.#checked.add(found);
  }
}

function rollback(s: SecretRow, latest: number): SecretdError {
  return new SecretdError("DATA_LOSS", "stored secret data failed to authenticate", {
    cause: new Error(`secret row ${s.uid} points at version ${s.version} while version ${latest} is stored (rollback)`),
  });
}
