/** Types of scripts/postgres-cluster.mjs (the script is plain ESM, shared with the benchmark). */
export interface PostgresCluster {
  /** A superuser URL for the cluster's `postgres` database. */
  readonly url: string;
  readonly port: number;
  /** The PostgreSQL bin directory (pg_dump, psql, …). */
  readonly bin: string;
  /** The directory of the server's Unix-domain socket (`?host=DIR` in a URL connects through it). */
  readonly socketDir: string;
  /** Creates an empty database and returns its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server at once (as a crash would); start() brings it back on the same port. */
  kill(): void;
  start(): void;
  /** `pg_ctl restart -m fast`: every connection is closed, the server is back when it returns. */
  restart(): void;
  /** Stops the server and removes its directory. */
  stop(): void;
}

/**
 * With `tls` (PEM file paths), the cluster speaks TLS and refuses plaintext TCP connections.
 * With `passwords`, TCP logins other than the `postgres` superuser's need a password (SCRAM).
 */
export function startPostgres(options?: { fsync?: boolean; tls?: { cert: string; key: string }; passwords?: boolean; settings?: Record<string, string | number> }): Promise<PostgresCluster>;
