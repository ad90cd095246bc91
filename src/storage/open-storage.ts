/**
 * The one place a back-end is chosen: SQLite in the data dir, or PostgreSQL when
 * --database-url is set. The server, the CLI (keys, doctor, backup) and the cluster
 * supervisor all ask here, so a back-end's options are spelled once.
 */
import path from "node:path";
import { PostgresStorage } from "./postgres/postgres-storage.js";
import type { SqliteAuditWriter } from "./sqlite/sqlite-audit-writer.js";
import { SqliteStorage } from "./sqlite/sqlite-storage.js";
import type { Storage } from "./storage.js";

/** Where the data lives: the part of the configuration (config.ts) storage reads. */
export interface StorageLocation {
  readonly dataDir: string;
  /** A PostgreSQL URL, or "" for SQLite in dataDir. */
  readonly databaseUrl: string;
  readonly database: { readonly poolSize: number; readonly statementTimeoutMs: number };
}

/** The SQLite database's file name inside --data-dir. */
export const DB_FILE = "secretd.db";

/** The SQLite database of this configuration (meaningful when no --database-url is set). */
export function dbFile(config: Pick<StorageLocation, "dataDir">): string {
  return path.join(config.dataDir, DB_FILE);
}

export interface OpenStorageOptions {
  /** PostgreSQL pool size (default: --database-pool-size; the CLI takes 2). */
  readonly poolSize?: number;
  /** Told of a PostgreSQL connection-level failure (for the log); never with a value. */
  readonly onError?: (err: unknown) => void;
  /** Told how long each write transaction took, COMMIT included (a metric). */
  readonly onCommit?: (seconds: number) => void;
}

export async function openStorage(config: StorageLocation, opts: OpenStorageOptions = {}): Promise<Storage> {
  const timing = opts.onCommit === undefined ? {} : { onCommit: opts.onCommit };
  if (config.databaseUrl === "") return new SqliteStorage(dbFile(config), timing);
  return PostgresStorage.open(config.databaseUrl, {
    poolSize: opts.poolSize ?? config.database.poolSize,
    statementTimeoutMs: config.database.statementTimeoutMs,
    ...(opts.onError === undefined ? {} : { onError: opts.onError }),
    ...timing,
  });
}

/**
 * The server's audit writes off the event loop, when the back-end has such a path: on
 * SQLite a thread with its own connection (sqlite-audit-writer.ts); undefined otherwise.
 */
export function openAuditWriter(storage: Storage): SqliteAuditWriter | undefined {
  return storage instanceof SqliteStorage ? storage.openAuditWriter() : undefined;
}
