/**
 * Numbered schema migrations, each applied once in its own transaction and recorded
 * in schema_migrations. Append only: a migration that has shipped is never edited.
 */
export const MIGRATIONS: readonly { readonly id: number; readonly sql: string }[] = [
  {
    id: 1,
    sql: `
      CREATE TABLE secrets (
        uid          TEXT PRIMARY KEY,
        tenant       TEXT NOT NULL,
        mesh         TEXT NOT NULL,
        name         TEXT NOT NULL,
        type         TEXT NOT NULL,
        description  TEXT NOT NULL,
        owner        TEXT NOT NULL,
        labels       TEXT NOT NULL,
        annotations  TEXT NOT NULL,
        immutable    INTEGER NOT NULL,
        version      INTEGER NOT NULL,
        etag         TEXT NOT NULL,
        keys         TEXT NOT NULL,
        create_time  INTEGER NOT NULL,
        update_time  INTEGER NOT NULL,
        expire_time  INTEGER,
        UNIQUE (tenant, mesh, name)
      );
      CREATE INDEX secrets_owner ON secrets (tenant, mesh, owner, name);
      CREATE TABLE secret_versions (
        uid          TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        version      INTEGER NOT NULL,
        keys         TEXT NOT NULL,
        dek          BLOB NOT NULL,
        payload      BLOB NOT NULL,
        create_time  INTEGER NOT NULL,
        PRIMARY KEY (uid, version)
      ) WITHOUT ROWID;
    `,
  },
  {
    id: 2,
    sql: `
      CREATE TABLE grants (
        secret_uid   TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        subject      TEXT NOT NULL,
        permission   INTEGER NOT NULL,
        keys         TEXT NOT NULL,
        expire_time  INTEGER,
        granted_by   TEXT NOT NULL,
        create_time  INTEGER NOT NULL,
        PRIMARY KEY (secret_uid, subject, permission)
      ) WITHOUT ROWID;
      CREATE INDEX grants_subject ON grants (subject, secret_uid);
    `,
  },
  {
    id: 3,
    sql: `
      CREATE TABLE create_requests (
        tenant       TEXT NOT NULL,
        request_id   TEXT NOT NULL,
        secret_uid   TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        fingerprint  TEXT NOT NULL,
        create_time  INTEGER NOT NULL,
        PRIMARY KEY (tenant, request_id)
      ) WITHOUT ROWID;
      CREATE INDEX create_requests_secret ON create_requests (secret_uid);
    `,
  },
  {
    // Version rows hold the ciphertext (~1.2 KB for a 1 KiB value). In a WITHOUT ROWID
    // table a row that large spills onto an overflow page: the table took 3.4x the pages
    // and a version lookup twice the time. A rowid table keeps each row on one page.
    id: 4,
    sql: `
      CREATE TABLE secret_versions_rowid (
        uid          TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        version      INTEGER NOT NULL,
        keys         TEXT NOT NULL,
        dek          BLOB NOT NULL,
        payload      BLOB NOT NULL,
        create_time  INTEGER NOT NULL,
        PRIMARY KEY (uid, version)
      );
      INSERT INTO secret_versions_rowid (uid, version, keys, dek, payload, create_time)
        SELECT uid, version, keys, dek, payload, create_time FROM secret_versions;
      DROP TABLE secret_versions;
      ALTER TABLE secret_versions_rowid RENAME TO secret_versions;
    `,
  },
  {
    // No query uses it (listing with visibility filters the name-ordered scan by owner),
    // and every create paid for keeping it.
    id: 5,
    sql: "DROP INDEX secrets_owner;",
  },
  {
    // Row MACs (domain/row-macs.ts), opaque bytes to this back-end. Rows that predate this
    // migration have none: the mark asks the next start to give every row one, once, in
    // one transaction (SqliteStorage.backfillMacs); from then on a missing MAC is DATA_LOSS.
    id: 7,
    sql: `
      ALTER TABLE secrets ADD COLUMN mac BLOB;
      ALTER TABLE secrets ADD COLUMN grants_mac BLOB;
      ALTER TABLE secret_versions ADD COLUMN mac BLOB;
      ALTER TABLE create_requests ADD COLUMN mac BLOB;
      CREATE TABLE mac_backfill (id INTEGER PRIMARY KEY CHECK (id = 1));
      INSERT INTO mac_backfill (id) VALUES (1);
    `,
  },
  {
    // A create request id is the caller's own (#16 item 11): keyed by (tenant, sub,
    // request_id), so a caller can neither learn of nor pre-claim another's ids. A row
    // recorded before belongs to its secret's owner, who made the request. Listed after
    // 7 (the runner goes in list order), so the table it rebuilds always has 7's mac
    // column, whichever of the two a database already has.
    id: 6,
    sql: `
      CREATE TABLE create_requests_by_caller (
        tenant       TEXT NOT NULL,
        sub          TEXT NOT NULL,
        request_id   TEXT NOT NULL,
        secret_uid   TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        fingerprint  TEXT NOT NULL,
        create_time  INTEGER NOT NULL,
        mac          BLOB,
        PRIMARY KEY (tenant, sub, request_id)
      ) WITHOUT ROWID;
      INSERT INTO create_requests_by_caller (tenant, sub, request_id, secret_uid, fingerprint, create_time, mac)
        SELECT r.tenant, s.owner, r.request_id, r.secret_uid, r.fingerprint, r.create_time, r.mac
        FROM create_requests r JOIN secrets s ON s.uid = r.secret_uid;
      DROP TABLE create_requests;
      ALTER TABLE create_requests_by_caller RENAME TO create_requests;
      CREATE INDEX create_requests_secret ON create_requests (secret_uid);
    `,
  },
  {
    // The change feed (sqlite-change-feed.ts): one row per committed change, the
    // AUTOINCREMENT revision store-wide and strictly increasing (never reused, even after
    // compaction deletes old rows); change_compaction says how far rows were deleted.
    id: 8,
    sql: `
      CREATE TABLE changes (
        revision     INTEGER PRIMARY KEY AUTOINCREMENT,
        kind         TEXT NOT NULL,
        tenant       TEXT NOT NULL,
        mesh         TEXT NOT NULL,
        name         TEXT NOT NULL,
        uid          TEXT NOT NULL,
        time         INTEGER NOT NULL
      );
      CREATE TABLE change_compaction (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        revision     INTEGER NOT NULL
      );
      INSERT INTO change_compaction (id, revision) VALUES (1, 0);
    `,
  },
  {
    // Consumer leases: one row per (open WatchProjection, source secret), renewed by the
    // server holding the watch; a row past expire_time is a dead consumer. They go with
    // their secret (a forced delete).
    id: 9,
    sql: `
      CREATE TABLE consumer_leases (
        watch_id     TEXT NOT NULL,
        secret_uid   TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        tenant       TEXT NOT NULL,
        sub          TEXT NOT NULL,
        roles        TEXT NOT NULL,
        revision     TEXT NOT NULL,
        since        INTEGER NOT NULL,
        last_seen    INTEGER NOT NULL,
        expire_time  INTEGER NOT NULL,
        replica      TEXT NOT NULL,
        PRIMARY KEY (watch_id, secret_uid)
      ) WITHOUT ROWID;
      CREATE INDEX consumer_leases_secret ON consumer_leases (secret_uid, expire_time);
      CREATE INDEX consumer_leases_replica ON consumer_leases (replica);
    `,
  },
  {
    // The audit trail (SPEC §6): appended in batches by the audit queue, listed per
    // tenant in (time, id) order, pruned by time. The rowid (id) rides in every index,
    // so (tenant, time) also orders events of equal time.
    id: 10,
    sql: `
      CREATE TABLE audit_events (
        id           INTEGER PRIMARY KEY,
        tenant       TEXT NOT NULL,
        time         INTEGER NOT NULL,
        request_id   TEXT NOT NULL,
        method       TEXT NOT NULL,
        sub          TEXT NOT NULL,
        mesh         TEXT NOT NULL,
        name         TEXT NOT NULL,
        version      INTEGER NOT NULL,
        keys         TEXT NOT NULL,
        code         TEXT NOT NULL,
        peer         TEXT NOT NULL
      );
      CREATE INDEX audit_events_tenant_time ON audit_events (tenant, time);
      CREATE INDEX audit_events_time ON audit_events (time);
    `,
  },
  {
    // One counter that write transactions changing no secret or grant (audit flushes,
    // consumer leases) bump, so another connection's change feed can tell them from a
    // foreign edit of the file (sqlite-change-feed.ts).
    id: 11,
    sql: `
      CREATE TABLE housekeeping (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        commits  INTEGER NOT NULL
      );
      INSERT INTO housekeeping (id, commits) VALUES (1, 0);
    `,
  },
  {
    // Leases that cost O(1) to renew (#27 item 5): one row per watch, its secrets in a
    // side table written when they change, and one heartbeat row per server process; a
    // lease lives while its replica's heartbeat does, so one UPDATE renews them all.
    // Leases are transient (they lapse within 30 s anyway): the old table goes.
    id: 12,
    sql: `
      DROP TABLE consumer_leases;
      CREATE TABLE consumer_replicas (
        replica      TEXT PRIMARY KEY,
        last_seen    INTEGER NOT NULL,
        expire_time  INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX consumer_replicas_expire ON consumer_replicas (expire_time);
      CREATE TABLE consumer_watches (
        watch_id     TEXT PRIMARY KEY,
        replica      TEXT NOT NULL REFERENCES consumer_replicas (replica),
        tenant       TEXT NOT NULL,
        sub          TEXT NOT NULL,
        roles        TEXT NOT NULL,
        revision     TEXT NOT NULL,
        since        INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX consumer_watches_replica ON consumer_watches (replica);
      CREATE TABLE consumer_watch_sources (
        secret_uid   TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        watch_id     TEXT NOT NULL REFERENCES consumer_watches (watch_id) ON DELETE CASCADE,
        PRIMARY KEY (secret_uid, watch_id)
      ) WITHOUT ROWID;
      CREATE INDEX consumer_watch_sources_watch ON consumer_watch_sources (watch_id);
    `,
  },
  {
    // Audit isolation (#27 item 6): ListAuditEvents filtered by sub or by name seeks an
    // index instead of scanning the tenant's events; each event's size (audit-row-bytes.ts)
    // is stored, and their sum kept in audit_usage, for --audit-max-bytes.
    id: 13,
    sql: `
      CREATE INDEX audit_events_tenant_sub_time ON audit_events (tenant, sub, time);
      CREATE INDEX audit_events_tenant_name_time ON audit_events (tenant, name, time);
      ALTER TABLE audit_events ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
      UPDATE audit_events SET size = 64 + length(CAST(tenant AS BLOB)) + length(CAST(request_id AS BLOB)) + length(CAST(method AS BLOB))
        + length(CAST(sub AS BLOB)) + length(CAST(mesh AS BLOB)) + length(CAST(name AS BLOB)) + length(CAST(keys AS BLOB))
        + length(CAST(code AS BLOB)) + length(CAST(peer AS BLOB));
      CREATE TABLE audit_usage (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        bytes  INTEGER NOT NULL
      );
      INSERT INTO audit_usage (id, bytes) SELECT 1, coalesce(sum(size), 0) FROM audit_events;
    `,
  },
  {
    // Acknowledged delivery (#30 item 1): each watch row keeps the last revisions it sent
    // (with the source versions each carried, so any replica can check an ack), and the
    // one its consumer acked. Written on send and on ack, never by the heartbeat renewal.
    id: 14,
    sql: `
      ALTER TABLE consumer_watches ADD COLUMN sent TEXT NOT NULL DEFAULT '[]';
      ALTER TABLE consumer_watches ADD COLUMN applied_seq INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE consumer_watches ADD COLUMN applied_revision TEXT NOT NULL DEFAULT '';
      ALTER TABLE consumer_watches ADD COLUMN applied_time INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE consumer_watches ADD COLUMN applied TEXT NOT NULL DEFAULT '[]';
      `,
  },
  {
    // Rotations (#30): one row per RotateSecret, keyed by the version it made current;
    // while active (state 1, 2) one process's claim (driver, driver_expire) drives it.
    // Identifiers and outcomes only, never a value. (14 is the acks' migration.)
    id: 15,
    sql: `
      CREATE TABLE rotations (
        secret_uid         TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        tenant             TEXT NOT NULL,
        mesh               TEXT NOT NULL,
        name               TEXT NOT NULL,
        rotator            TEXT NOT NULL,
        version            INTEGER NOT NULL,
        previous_version   INTEGER NOT NULL,
        retire             INTEGER NOT NULL,
        state              INTEGER NOT NULL,
        started            INTEGER NOT NULL,
        deadline           INTEGER NOT NULL,
        finished           INTEGER,
        previous_readable  INTEGER NOT NULL,
        detail             TEXT NOT NULL,
        driver             TEXT NOT NULL,
        driver_expire      INTEGER NOT NULL,
        PRIMARY KEY (secret_uid, version)
      ) WITHOUT ROWID;
      CREATE INDEX rotations_active ON rotations (state, started) WHERE state IN (1, 2);
    `,
  },
  {
    // Since 14 a watch row holds the revisions it sent (~1.1 KB for SENT_KEPT of them): in a
    // WITHOUT ROWID table that spills onto an overflow page, and every seek by watch_id
    // read overflow pages on the way down (as version rows did before 4). With 1,000
    // watches of a secret, a rollout count (listLeases) took ~30 µs a row and every ack's
    // read and UPDATE 3x what a rowid table costs (docs/BENCHMARKS.md, "Rotation"). The
    // sources' table references it, so both are rebuilt, their rows kept.
    id: 16,
    sql: `
      CREATE TEMP TABLE watches_copy AS SELECT watch_id, replica, tenant, sub, roles, revision, since, sent, applied_seq, applied_revision, applied_time, applied FROM consumer_watches;
      CREATE TEMP TABLE watch_sources_copy AS SELECT secret_uid, watch_id FROM consumer_watch_sources;
      DROP TABLE consumer_watch_sources;
      DROP TABLE consumer_watches;
      CREATE TABLE consumer_watches (
        watch_id          TEXT PRIMARY KEY,
        replica           TEXT NOT NULL REFERENCES consumer_replicas (replica),
        tenant            TEXT NOT NULL,
        sub               TEXT NOT NULL,
        roles             TEXT NOT NULL,
        revision          TEXT NOT NULL,
        since             INTEGER NOT NULL,
        sent              TEXT NOT NULL DEFAULT '[]',
        applied_seq       INTEGER NOT NULL DEFAULT 0,
        applied_revision  TEXT NOT NULL DEFAULT '',
        applied_time      INTEGER NOT NULL DEFAULT 0,
        applied           TEXT NOT NULL DEFAULT '[]'
      );
      CREATE INDEX consumer_watches_replica ON consumer_watches (replica);
      CREATE TABLE consumer_watch_sources (
        secret_uid   TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        watch_id     TEXT NOT NULL REFERENCES consumer_watches (watch_id) ON DELETE CASCADE,
        PRIMARY KEY (secret_uid, watch_id)
      ) WITHOUT ROWID;
      CREATE INDEX consumer_watch_sources_watch ON consumer_watch_sources (watch_id);
      INSERT INTO consumer_watches (watch_id, replica, tenant, sub, roles, revision, since, sent, applied_seq, applied_revision, applied_time, applied)
        SELECT watch_id, replica, tenant, sub, roles, revision, since, sent, applied_seq, applied_revision, applied_time, applied FROM temp.watches_copy;
      INSERT INTO consumer_watch_sources (secret_uid, watch_id) SELECT secret_uid, watch_id FROM temp.watch_sources_copy;
      DROP TABLE temp.watches_copy;
      DROP TABLE temp.watch_sources_copy;
    `,
  },
  {
    // Scheduled rotation (#30 item 5): due secrets by an index on their rotation-next
    // annotation (kept by the database with every write of the row), and per secret the
    // due time last tried, with its claim and failures. (16 is the rowid rebuild of consumer_watches.)
    id: 17,
    sql: `
      CREATE INDEX secrets_rotation_next ON secrets (json_extract(annotations, '$."secretd.io/rotation-next"'))
        WHERE json_extract(annotations, '$."secretd.io/rotation-next"') IS NOT NULL;
      CREATE TABLE rotation_schedule (
        secret_uid    TEXT PRIMARY KEY REFERENCES secrets (uid) ON DELETE CASCADE,
        due           TEXT NOT NULL,
        claimed_by    TEXT NOT NULL,
        claim_expire  INTEGER NOT NULL,
        failures      INTEGER NOT NULL,
        last_error    TEXT NOT NULL,
        failed_at     INTEGER NOT NULL,
        retry_at      INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    // Write-ahead rotation (#30): state 6 (PENDING, the rotator's step not done yet) is active too.
    id: 18,
    sql: `
      DROP INDEX rotations_active;
      CREATE INDEX rotations_active ON rotations (state, started) WHERE state IN (1, 2, 6);
    `,
  },
  {
    // Version stages in the audit trail (#30 item 3): the stage of the version an event
    // names. Rows written before it name none (""), and their stored sizes stay right:
    // an empty stage adds no bytes (audit-row-bytes.ts).
    id: 19,
    sql: `ALTER TABLE audit_events ADD COLUMN stage TEXT NOT NULL DEFAULT '';`,
  },
];
