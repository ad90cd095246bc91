/**
 * Numbered PostgreSQL schema migrations, each applied once in its own transaction and
 * recorded in schema_migrations, under an advisory lock so replicas starting together
 * apply each exactly once. Append only: a migration that has shipped is never edited.
 * Names sort with COLLATE "C" (byte order), as SQLite's keyset paging does.
 */
export const PG_MIGRATIONS: readonly { readonly id: number; readonly sql: string }[] = [
  {
    id: 1,
    sql: `
      CREATE TABLE secrets (
        uid          TEXT PRIMARY KEY,
        tenant       TEXT COLLATE "C" NOT NULL,
        mesh         TEXT COLLATE "C" NOT NULL,
        name         TEXT COLLATE "C" NOT NULL,
        type         TEXT NOT NULL,
        description  TEXT NOT NULL,
        owner        TEXT NOT NULL,
        labels       TEXT NOT NULL,
        annotations  TEXT NOT NULL,
        immutable    BOOLEAN NOT NULL,
        version      BIGINT NOT NULL,
        etag         TEXT NOT NULL,
        keys         TEXT NOT NULL,
        create_time  BIGINT NOT NULL,
        update_time  BIGINT NOT NULL,
        expire_time  BIGINT,
        UNIQUE (tenant, mesh, name)
      );
      CREATE TABLE secret_versions (
        uid          TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        version      BIGINT NOT NULL,
        keys         TEXT NOT NULL,
        dek          BYTEA NOT NULL,
        payload      BYTEA NOT NULL,
        create_time  BIGINT NOT NULL,
        PRIMARY KEY (uid, version)
      );
      CREATE TABLE grants (
        secret_uid   TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        subject      TEXT COLLATE "C" NOT NULL,
        permission   INTEGER NOT NULL,
        keys         TEXT NOT NULL,
        expire_time  BIGINT,
        granted_by   TEXT NOT NULL,
        create_time  BIGINT NOT NULL,
        PRIMARY KEY (secret_uid, subject, permission)
      );
      CREATE INDEX grants_subject ON grants (subject, secret_uid);
      CREATE TABLE create_requests (
        tenant       TEXT NOT NULL,
        request_id   TEXT NOT NULL,
        secret_uid   TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        fingerprint  TEXT NOT NULL,
        create_time  BIGINT NOT NULL,
        PRIMARY KEY (tenant, request_id)
      );
      CREATE INDEX create_requests_secret ON create_requests (secret_uid);
    `,
  },
  {
    // The change feed (storage/change-feed.ts): feed_head is one row whose UPDATE every
    // writing transaction takes just before COMMIT, so revisions are handed out in commit
    // order, without gaps, and a reader asking for "after N" never misses one that
    // commits later with a smaller number. Consumer leases as on SQLite.
    id: 2,
    sql: `
      CREATE TABLE feed_head (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        revision     BIGINT NOT NULL,
        compacted    BIGINT NOT NULL
      );
      INSERT INTO feed_head (id, revision, compacted) VALUES (1, 0, 0);
      CREATE TABLE changes (
        revision     BIGINT PRIMARY KEY,
        kind         TEXT NOT NULL,
        tenant       TEXT NOT NULL,
        mesh         TEXT NOT NULL,
        name         TEXT NOT NULL,
        uid          TEXT NOT NULL,
        time         BIGINT NOT NULL
      );
      CREATE TABLE consumer_leases (
        watch_id     TEXT NOT NULL,
        secret_uid   TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        tenant       TEXT NOT NULL,
        sub          TEXT NOT NULL,
        roles        TEXT NOT NULL,
        revision     TEXT NOT NULL,
        since        BIGINT NOT NULL,
        last_seen    BIGINT NOT NULL,
        expire_time  BIGINT NOT NULL,
        replica      TEXT NOT NULL,
        PRIMARY KEY (watch_id, secret_uid)
      );
      CREATE INDEX consumer_leases_secret ON consumer_leases (secret_uid, expire_time);
      CREATE INDEX consumer_leases_replica ON consumer_leases (replica);
    `,
  },
  {
    // Row MACs (domain/row-macs.ts), opaque bytes to this back-end, as SQLite's migration
    // 7: rows that predate it get their MACs once, from the mark, in one transaction that
    // locks out every writer (PostgresStorage.backfillMacs); after that a missing MAC is
    // DATA_LOSS.
    id: 3,
    sql: `
      ALTER TABLE secrets ADD COLUMN mac BYTEA, ADD COLUMN grants_mac BYTEA;
      ALTER TABLE secret_versions ADD COLUMN mac BYTEA;
      ALTER TABLE create_requests ADD COLUMN mac BYTEA;
      CREATE TABLE mac_backfill (id INTEGER PRIMARY KEY CHECK (id = 1));
      INSERT INTO mac_backfill (id) VALUES (1);
    `,
  },
  {
    // The audit trail (SPEC §6), as on SQLite: appended in batches by each replica's audit
    // queue, listed per tenant in (time, id) keyset order, pruned by time. The identity id
    // orders events of equal time (increasing in each replica's append order).
    id: 4,
    sql: `
      CREATE TABLE audit_events (
        id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant       TEXT COLLATE "C" NOT NULL,
        time         BIGINT NOT NULL,
        request_id   TEXT NOT NULL,
        method       TEXT NOT NULL,
        sub          TEXT COLLATE "C" NOT NULL,
        mesh         TEXT COLLATE "C" NOT NULL,
        name         TEXT COLLATE "C" NOT NULL,
        version      BIGINT NOT NULL,
        keys         TEXT NOT NULL,
        code         TEXT NOT NULL,
        peer         TEXT NOT NULL
      );
      CREATE INDEX audit_events_tenant_time ON audit_events (tenant, time, id);
      CREATE INDEX audit_events_time ON audit_events (time);
    `,
  },
  {
    // A create request id is the caller's own (#16 item 11): keyed by (tenant, sub,
    // request_id). A row recorded before belongs to its secret's owner, who made it.
    id: 5,
    sql: `
      ALTER TABLE create_requests ADD COLUMN sub TEXT;
      UPDATE create_requests r SET sub = s.owner FROM secrets s WHERE s.uid = r.secret_uid;
      DELETE FROM create_requests WHERE sub IS NULL;
      ALTER TABLE create_requests ALTER COLUMN sub SET NOT NULL;
      ALTER TABLE create_requests DROP CONSTRAINT create_requests_pkey;
      ALTER TABLE create_requests ADD PRIMARY KEY (tenant, sub, request_id);
    `,
  },
  {
    // Leases that cost O(1) to renew (#27 item 5), as SQLite's migration 12: one row per
    // watch, its secrets in a side table, one heartbeat row per server process.
    id: 6,
    sql: `
      DROP TABLE consumer_leases;
      CREATE TABLE consumer_replicas (
        replica      TEXT PRIMARY KEY,
        last_seen    BIGINT NOT NULL,
        expire_time  BIGINT NOT NULL
      );
      CREATE INDEX consumer_replicas_expire ON consumer_replicas (expire_time);
      CREATE TABLE consumer_watches (
        watch_id     TEXT PRIMARY KEY,
        replica      TEXT NOT NULL REFERENCES consumer_replicas (replica),
        tenant       TEXT NOT NULL,
        sub          TEXT NOT NULL,
        roles        TEXT NOT NULL,
        revision     TEXT NOT NULL,
        since        BIGINT NOT NULL
      );
      CREATE INDEX consumer_watches_replica ON consumer_watches (replica);
      CREATE TABLE consumer_watch_sources (
        secret_uid   TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        watch_id     TEXT NOT NULL REFERENCES consumer_watches (watch_id) ON DELETE CASCADE,
        PRIMARY KEY (secret_uid, watch_id)
      );
      CREATE INDEX consumer_watch_sources_watch ON consumer_watch_sources (watch_id);
    `,
  },
  {
    // Audit isolation (#27 item 6), as SQLite's migration 13: indexes for the sub and
    // name filters, each event's size, and their sum for --audit-max-bytes.
    id: 7,
    sql: `
      CREATE INDEX audit_events_tenant_sub_time ON audit_events (tenant, sub, time, id);
      CREATE INDEX audit_events_tenant_name_time ON audit_events (tenant, name, time, id);
      ALTER TABLE audit_events ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
      UPDATE audit_events SET size = 64 + octet_length(tenant) + octet_length(request_id) + octet_length(method) + octet_length(sub)
        + octet_length(mesh) + octet_length(name) + octet_length(keys) + octet_length(code) + octet_length(peer);
      CREATE TABLE audit_usage (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        bytes  BIGINT NOT NULL
      );
      INSERT INTO audit_usage (id, bytes) SELECT 1, coalesce(sum(size), 0) FROM audit_events;
    `,
  },
  {
    // Writes without a global lock (#29 item 1): a change is stamped with its
    // transaction's id (xid8) and its place in that transaction instead of a revision
    // taken from feed_head's row, so writing transactions no longer queue on one row
    // through COMMIT. Readers take only changes below their snapshot's xmin (every
    // transaction before it has ended), in (xid, pos) order: the same order for every
    // reader, without gaps. A revision is a change's ordinal in that order: feed_head's
    // `compacted` counts the changes compaction deleted (a prefix of the order), so the
    // revisions already handed out stay what they were (old rows keep their order).
    id: 8,
    sql: `
      ALTER TABLE changes ADD COLUMN xid xid8, ADD COLUMN pos BIGINT;
      UPDATE changes SET xid = '0'::xid8, pos = revision;
      ALTER TABLE changes DROP CONSTRAINT changes_pkey;
      ALTER TABLE changes DROP COLUMN revision;
      ALTER TABLE changes ALTER COLUMN xid SET NOT NULL, ALTER COLUMN pos SET NOT NULL, ADD PRIMARY KEY (xid, pos);
      ALTER TABLE feed_head DROP COLUMN revision;
    `,
  },
  {
    // Writes secretd did not make (#29 item 2): a replica's read cache learns of changes
    // only from the feed, so a write to these tables from a session that did not mark its
    // transaction as secretd's (PostgresStorage's transactions SET LOCAL secretd.writer)
    // notifies TABLES_CHANNEL, and every replica drops what it cached (a plain SQL edit
    // is then checked against its MAC on the next read; a restore is served as restored).
    id: 9,
    sql: `
      CREATE FUNCTION secretd_tables_written() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF current_setting('secretd.writer', true) IS DISTINCT FROM 'on' THEN
          PERFORM pg_notify('secretd_tables', TG_TABLE_NAME);
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER secrets_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON secrets FOR EACH STATEMENT EXECUTE FUNCTION secretd_tables_written();
      CREATE TRIGGER secret_versions_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON secret_versions FOR EACH STATEMENT EXECUTE FUNCTION secretd_tables_written();
      CREATE TRIGGER grants_written AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON grants FOR EACH STATEMENT EXECUTE FUNCTION secretd_tables_written();
    `,
  },
  {
    // Acknowledged delivery (#30 item 1): each watch row keeps the last revisions it sent
    // (with the source versions each carried, so any replica can check an ack), and the
    // one its consumer acked. Written on send and on ack, never by the heartbeat renewal.
    id: 10,
    sql: `
      ALTER TABLE consumer_watches ADD COLUMN sent TEXT NOT NULL DEFAULT '[]',
        ADD COLUMN applied_seq BIGINT NOT NULL DEFAULT 0, ADD COLUMN applied_revision TEXT NOT NULL DEFAULT '',
        ADD COLUMN applied_time BIGINT NOT NULL DEFAULT 0, ADD COLUMN applied TEXT NOT NULL DEFAULT '[]';
      `,
  },
  {
    // Rotations (#30), as SQLite's migration 15. (10 is the acks' migration, 12 pgperf's.)
    id: 11,
    sql: `
      CREATE TABLE rotations (
        secret_uid         TEXT NOT NULL REFERENCES secrets (uid) ON DELETE CASCADE,
        tenant             TEXT NOT NULL,
        mesh               TEXT NOT NULL,
        name               TEXT NOT NULL,
        rotator            TEXT NOT NULL,
        version            BIGINT NOT NULL,
        previous_version   BIGINT NOT NULL,
        retire             INTEGER NOT NULL,
        state              INTEGER NOT NULL,
        started            BIGINT NOT NULL,
        deadline           BIGINT NOT NULL,
        finished           BIGINT,
        previous_readable  BOOLEAN NOT NULL,
        detail             TEXT NOT NULL,
        driver             TEXT NOT NULL,
        driver_expire      BIGINT NOT NULL,
        PRIMARY KEY (secret_uid, version)
      );
      CREATE INDEX rotations_active ON rotations (state, started) WHERE state IN (1, 2);
    `,
  },
  {
    // Scheduled rotation (#30 item 5), as SQLite's migration 17.
    id: 13,
    sql: `
      CREATE INDEX secrets_rotation_next ON secrets (((annotations::jsonb) ->> 'secretd.io/rotation-next'))
        WHERE ((annotations::jsonb) ->> 'secretd.io/rotation-next') IS NOT NULL;
      CREATE TABLE rotation_schedule (
        secret_uid    TEXT PRIMARY KEY REFERENCES secrets (uid) ON DELETE CASCADE,
        due           TEXT NOT NULL,
        claimed_by    TEXT NOT NULL,
        claim_expire  BIGINT NOT NULL,
        failures      INTEGER NOT NULL,
        last_error    TEXT NOT NULL,
        failed_at     BIGINT NOT NULL,
        retry_at      BIGINT NOT NULL
      );
    `,
  },
  {
    // Write-ahead rotation (#30): state 6 (PENDING, the rotator's step not done yet) is active too.
    id: 14,
    sql: `
      DROP INDEX rotations_active;
      CREATE INDEX rotations_active ON rotations (state, started) WHERE state IN (1, 2, 6);
    `,
  },
  {
    // Version stages in the audit trail (#30 item 3), as SQLite's migration 19.
    id: 15,
    sql: `ALTER TABLE audit_events ADD COLUMN stage TEXT NOT NULL DEFAULT '';`,
  },
];
