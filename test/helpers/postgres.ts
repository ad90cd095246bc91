/** The throw-away PostgreSQL cluster of scripts/postgres-cluster.mjs, for tests. */
export { startPostgres, type PostgresCluster } from "../../scripts/postgres-cluster.mjs";
