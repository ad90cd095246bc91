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
];
