/**
 * The statements both SQL back-ends run, each written once (sql.ts renders it per
 * dialect). Where a dialect needs something of its own (a row lock, an index hint, a
 * list parameter) the difference stands next to the shared text, not in another file.
 * Bind objects come from rows.ts (secretBinds, versionBinds, …) or are built in place.
 */
import { GRANT_FIELDS, SECRET_COLUMNS, SECRET_FIELDS } from "./rows.js";
import { IS, dialect, inList, insertInto, raw, sql, type Sql } from "./sql.js";

/**
 * Watches of dead replicas removed per renewal, each with its sources (at most 256):
 * 16 took a renewal to 35-165 ms on SQLite (secure_delete), 4 keeps it to tens.
 */
export const PRUNE_WATCHES = 4;

/** A version a PENDING rotation (#30) sealed ahead of its rotator's step: stored, not yet current. */
const NOT_PENDING = "NOT EXISTS (SELECT 1 FROM rotations p WHERE p.secret_uid = l.uid AND p.version = l.version AND p.state = 6)";

/**
 * The newest stored version of the row's uid, a pending rotation's aside (it is newer
 * than current by design, not a rollback): SQLite seeks the primary key backwards,
 * PostgreSQL's max() does (0 when none).
 */
export const LATEST_VERSION = dialect(
  `(SELECT l.version FROM secret_versions l WHERE l.uid = s.uid AND ${NOT_PENDING} ORDER BY l.version DESC LIMIT 1) AS latest_version`,
  `(SELECT COALESCE(max(l.version), 0) FROM secret_versions l WHERE l.uid = s.uid AND ${NOT_PENDING}) AS latest_version`,
);

/** The version of secretWithVersion's join as v_ columns (JoinedVersionRecord). */
export const JOINED_VERSION_COLUMNS =
  "v.version AS v_version, v.keys AS v_keys, v.dek AS v_dek, v.payload AS v_payload, v.create_time AS v_create_time, v.mac AS v_mac";

const REQUEST_COLUMNS = "tenant, sub, request_id, secret_uid, fingerprint, mac";

/** A row lock PostgreSQL takes where SQLite's one writer already serializes. */
const pgOnly = (text: string) => dialect("", text);

export const SQL = {
  insertSecret: insertInto("secrets", SECRET_FIELDS, "ON CONFLICT (tenant, mesh, name) DO NOTHING"),
  insertVersion: insertInto("secret_versions", ["uid", "version", "keys", "dek", "payload", "create_time", "mac"]),
  insertRequest: insertInto("create_requests", ["tenant", "sub", "request_id", "secret_uid", "fingerprint", "create_time", "mac"], "ON CONFLICT (tenant, sub, request_id) DO NOTHING"),
  findRequest: sql`SELECT ${raw(REQUEST_COLUMNS)} FROM create_requests WHERE tenant = ${"tenant"} AND sub = ${"sub"} AND request_id = ${"request_id"}`,
  updateSecret: sql`UPDATE secrets SET description = ${"description"}, labels = ${"labels"}, annotations = ${"annotations"},
      version = ${"version"}, etag = ${"etag"}, keys = ${"keys"}, update_time = ${"update_time"}, expire_time = ${"expire_time"}, mac = ${"mac"}
    WHERE uid = ${"uid"} AND etag = ${"expect_etag"}`,
  pruneVersions: sql`DELETE FROM secret_versions WHERE uid = ${"uid"} AND version <= ${"version"}`,
  deleteSecret: sql`DELETE FROM secrets WHERE uid = ${"uid"} AND (${"etag::text"} IS NULL OR etag = ${"etag"}) RETURNING tenant, mesh, name, uid`,
  identity: sql`SELECT tenant, mesh, name, uid FROM secrets WHERE uid = ${"uid"}`,

  grantsOf: sql`SELECT ${raw(GRANT_FIELDS.join(", "))} FROM grants WHERE secret_uid = ${"uid"} ORDER BY subject, permission`,
  /** The secret row a grant write decides on: locked on PostgreSQL, so grant writes on one secret serialize and the guard sees the last committed set. */
  grantsMacOf: sql`SELECT tenant, mesh, name, uid, grants_mac FROM secrets WHERE uid = ${"uid"}${pgOnly(" FOR UPDATE")}`,
  setGrantsMac: sql`UPDATE secrets SET grants_mac = ${"next"} WHERE uid = ${"uid"}`,
  putGrant: insertInto(
    "grants",
    GRANT_FIELDS,
    `ON CONFLICT (secret_uid, subject, permission) DO UPDATE SET
       keys = excluded.keys, expire_time = excluded.expire_time, granted_by = excluded.granted_by, create_time = excluded.create_time`,
  ),
  deleteGrants: sql`DELETE FROM grants WHERE secret_uid = ${"uid"} AND subject = ${"subject"} AND (${"level::int"} IS NULL OR permission = ${"level"})`,

  // Every MAC-covered row of the secrets after a uid, in uid order (the KEK rotation's re-keying, the backfill).
  secretsByUid: sql`SELECT ${raw(SECRET_COLUMNS)} FROM secrets s WHERE s.uid > ${"after"} ORDER BY s.uid LIMIT ${"limit"}`,
  grantsOfMany: sql`SELECT ${raw(GRANT_FIELDS.join(", "))} FROM grants WHERE ${inList("secret_uid", "uids")} ORDER BY secret_uid, subject, permission`,
  versionMetasOfMany: sql`SELECT uid, version, keys, create_time, mac FROM secret_versions WHERE ${inList("uid", "uids")} ORDER BY uid, version`,
  requestsOfMany: sql`SELECT ${raw(REQUEST_COLUMNS)} FROM create_requests WHERE ${inList("secret_uid", "uids")} ORDER BY tenant, sub, request_id`,
  // MAC compare-and-sets: each applies only while the row still holds the old bytes (NULL for none).
  replaceSecretMac: sql`UPDATE secrets SET mac = ${"next"} WHERE uid = ${"uid"} AND mac ${IS} ${"old::bytea"}`,
  replaceGrantsMac: sql`UPDATE secrets SET grants_mac = ${"next"} WHERE uid = ${"uid"} AND grants_mac ${IS} ${"old::bytea"}`,
  replaceVersionMac: sql`UPDATE secret_versions SET mac = ${"next"} WHERE uid = ${"uid"} AND version = ${"version"} AND mac ${IS} ${"old::bytea"}`,
  replaceRequestMac: sql`UPDATE create_requests SET mac = ${"next"} WHERE tenant = ${"tenant"} AND sub = ${"sub"} AND request_id = ${"request_id"} AND mac ${IS} ${"old::bytea"}`,
  /** Any MAC column set: the backfill gate's second question. */
  anyMac: sql`SELECT EXISTS (SELECT 1 FROM secrets WHERE mac IS NOT NULL OR grants_mac IS NOT NULL)
      OR EXISTS (SELECT 1 FROM secret_versions WHERE mac IS NOT NULL)
      OR EXISTS (SELECT 1 FROM create_requests WHERE mac IS NOT NULL) AS any`,
  clearBackfill: sql`DELETE FROM mac_backfill`,

  // Row-value keyset on the primary key of secret_versions: no sort, no offset scan.
  versionKeys: sql`SELECT v.uid, v.version, s.tenant, s.mesh, s.name, v.dek FROM secret_versions v JOIN secrets s ON s.uid = v.uid
    WHERE (v.uid, v.version) > (${"uid"}, ${"version"}) ORDER BY v.uid, v.version LIMIT ${"limit"}`,
  replaceDek: sql`UPDATE secret_versions SET dek = ${"new_dek"} WHERE uid = ${"uid"} AND version = ${"version"} AND dek = ${"old_dek"}`,

  openReplica: sql`INSERT INTO consumer_replicas (replica, last_seen, expire_time) VALUES (${"replica"}, ${"now"}, ${"expire_time"}) ON CONFLICT (replica) DO NOTHING`,
  /** FOR KEY SHARE on PostgreSQL: a replica's row cannot be pruned while a watch of it is being added. */
  replicaLive: sql`SELECT 1 AS live FROM consumer_replicas WHERE replica = ${"replica"} AND expire_time > ${"now"}${pgOnly(" FOR KEY SHARE")}`,
  putWatch: sql`INSERT INTO consumer_watches (watch_id, replica, tenant, sub, roles, revision, since)
    VALUES (${"watch_id"}, ${"replica"}, ${"tenant"}, ${"sub"}, ${"roles"}, ${"revision"}, ${"since"})
    ON CONFLICT (watch_id) DO UPDATE SET revision = excluded.revision`,
  deleteWatch: sql`DELETE FROM consumer_watches WHERE watch_id = ${"watch_id"}`,
  deleteWatchIfEmpty: sql`DELETE FROM consumer_watches WHERE watch_id = ${"watch_id"}
    AND NOT EXISTS (SELECT 1 FROM consumer_watch_sources s WHERE s.watch_id = consumer_watches.watch_id)`,
  heartbeat: sql`UPDATE consumer_replicas SET last_seen = ${"now"}, expire_time = ${"expire_time"} WHERE replica = ${"replica"} AND expire_time > ${"now"}`,
  endReplica: sql`UPDATE consumer_replicas SET expire_time = 0 WHERE replica = ${"replica"}`,
  // Dead replicas' rows go a bounded chunk at a time (their sources by cascade), so a
  // process that died holding 256,000 leases costs no one a long transaction; on
  // PostgreSQL replicas pruning at once skip each other's rows.
  pruneDeadWatches: sql`DELETE FROM consumer_watches WHERE watch_id IN (
      SELECT w.watch_id FROM consumer_replicas r JOIN consumer_watches w ON w.replica = r.replica
      WHERE r.expire_time <= ${"now"} LIMIT ${raw(String(PRUNE_WATCHES))}${pgOnly(" FOR UPDATE OF w SKIP LOCKED")})`,
  pruneDeadReplicas: sql`DELETE FROM consumer_replicas WHERE expire_time <= ${"now"}
    AND NOT EXISTS (SELECT 1 FROM consumer_watches w WHERE w.replica = consumer_replicas.replica)`,
  listLeases: sql`SELECT w.watch_id, s.secret_uid, w.tenant, w.sub, w.roles, w.revision, w.since, r.last_seen, r.expire_time, w.replica,
      w.applied_revision, w.applied_time, w.applied
    FROM consumer_watch_sources s JOIN consumer_watches w ON w.watch_id = s.watch_id JOIN consumer_replicas r ON r.replica = w.replica
    WHERE s.secret_uid = ${"uid"} AND r.expire_time > ${"now"} ORDER BY w.since, w.watch_id`,
  // Acknowledged delivery (#30): the revisions a watch sent, read by whichever process an ack lands on, and the ack.
  watchSent: sql`UPDATE consumer_watches SET revision = ${"revision"}, sent = ${"sent"} WHERE watch_id = ${"watch_id"} AND replica = ${"replica"}`,
  readWatch: sql`SELECT w.tenant, w.sub, w.sent, w.applied_seq FROM consumer_watches w JOIN consumer_replicas r ON r.replica = w.replica
    WHERE w.watch_id = ${"watch_id"} AND r.expire_time > ${"now"}`,
  watchAck: sql`UPDATE consumer_watches SET applied_seq = ${"seq"}, applied_revision = ${"revision"}, applied_time = ${"time"}, applied = ${"applied"}
    WHERE watch_id = ${"watch_id"} AND applied_seq < ${"seq"}`,
};

/**
 * Secrets of one scope with one version each (0 = current) and the newest version number,
 * in one statement: one consistent snapshot without an explicit transaction (GetSecret's
 * hot path). SQLite reads one name (bind `name`), PostgreSQL a list in one round trip
 * (bind `names`); `more` adds to the select list.
 */
export function secretWithVersionSql(more: Sql = sql``): Sql {
  return sql`SELECT ${raw(SECRET_COLUMNS)}, ${raw(JOINED_VERSION_COLUMNS)}, ${LATEST_VERSION}${more}
    FROM secrets s LEFT JOIN secret_versions v
      ON v.uid = s.uid AND v.version = CASE WHEN ${"version::bigint"} = 0 THEN s.version ELSE ${"version::bigint"} END
    WHERE s.tenant = ${"tenant"} AND s.mesh = ${"mesh"} AND ${dialect(sql`s.name = ${"name"}`, sql`s.name = ANY(${"names::text[]"})`)}`;
}

/**
 * One page of a scope's secrets in name order, with the filters of ListQuery; `more`
 * adds to the select list (PostgreSQL brings a non-owner's grants along), and with
 * `visible` only rows the caller owns or holds an unexpired grant on.
 */
export function listSecretsSql(visible: boolean, more: Sql = sql``): Sql {
  const through = visible
    ? sql` AND (s.owner = ${"owner"} OR EXISTS (
        SELECT 1 FROM grants g WHERE g.secret_uid = s.uid AND ${inList("g.subject", "subjects")}
          AND (g.expire_time IS NULL OR g.expire_time > ${"now"})))`
    : sql``;
  return sql`SELECT ${raw(SECRET_COLUMNS)}, ${LATEST_VERSION}${more} FROM secrets s
    WHERE s.tenant = ${"tenant"} AND s.mesh = ${"mesh"} AND s.name > ${"after"} AND (${"type::text"} IS NULL OR s.type = ${"type"})
      AND (${"expire_before::bigint"} IS NULL OR s.expire_time <= ${"expire_before"})${through}
    ORDER BY s.name LIMIT ${"limit"}`;
}

/**
 * ListAuditEvents' query, led by the index that serves it: (tenant, time), or with a sub
 * or name filter (tenant, sub, time) / (tenant, name, time), so a filter seeks instead of
 * scanning the tenant's events (#27 item 6). Bounds on time are always given (no "IS NULL
 * OR"), so the index serves the range and the (time, id) order; the other filters are
 * checked along the scan. SQLite is told the index (without statistics its planner took
 * (tenant, time) for a sub filter, and the scan); PostgreSQL's row comparison rides it.
 */
export function listAuditSql(by: "time" | "sub" | "name"): Sql {
  const lead = by === "sub" ? sql`AND sub = ${"sub"}` : by === "name" ? sql`AND name = ${"name"}` : sql``;
  const index = by === "time" ? "" : `INDEXED BY audit_events_tenant_${by}_time`;
  const after = dialect(
    sql`AND time >= ${"lo"} AND time < ${"hi"} AND (time > ${"after_time"} OR (time = ${"after_time"} AND id > ${"after_id"}))`,
    sql`AND (time, id) > (${"after_time::bigint"}, ${"after_id::bigint"}) AND time >= ${"lo::bigint"} AND time < ${"hi::bigint"}`,
  );
  return sql`SELECT id, tenant, time, request_id, method, sub, mesh, name, version, keys, code, peer, stage FROM audit_events ${dialect(index, "")}
    WHERE tenant = ${"tenant"} ${lead} ${after}
      AND (${"mesh::text"} IS NULL OR mesh = ${"mesh"}) AND (${"name::text"} IS NULL OR name = ${"name"}) AND (${"sub::text"} IS NULL OR sub = ${"sub"})
      AND (${"meshes::text[]"} IS NULL OR ${inList("mesh", "meshes")})
    ORDER BY time, id LIMIT ${"limit"}`;
}
