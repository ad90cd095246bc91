/** Wires configuration → keys → storage → domain → transport, and tears it down. */
import path from "node:path";
import { ensureDevHs256Secret, readHs256Secret, readJwksFile } from "./auth/keys.js";
import { createVerifier, type VerifierOptions } from "./auth/verifier.js";
import type { Config } from "./config.js";
import type { Keyring } from "./crypto/keyring.js";
import type { KeyringHolder } from "./crypto/keyring-holder.js";
import { openServerKeyring } from "./crypto/server-keyring.js";
import { Consumers } from "./domain/consumers.js";
import { Grants } from "./domain/grants.js";
import { Secrets } from "./domain/secrets.js";
import type { Logger } from "./logger.js";
import { PostgresStorage } from "./storage/postgres/postgres-storage.js";
import { SqliteStorage } from "./storage/sqlite/sqlite-storage.js";
import type { Storage } from "./storage/storage.js";
import { startGrpcServer, type RunningServer } from "./transport/grpc/server.js";
import { ConsumerLeases, defaultReplicaName, LEASE_DEFAULTS } from "./watch/consumer-leases.js";
import { WatchHub } from "./watch/watch-hub.js";

export interface App {
  readonly port: number;
  readonly storage: Storage;
  /** Open WatchProjection streams of this process (its openWatches count feeds metrics). */
  readonly watches: WatchHub;
  /** This start created the development JWT signing key (a first start on a fresh data dir). */
  readonly devKeyCreated: boolean;
  /** The keyring in use now; it follows the KEK file (see KeyringHolder). */
  readonly keyring: Keyring;
  /** Ends watches with UNAVAILABLE, drains in-flight calls (at most graceMs), then closes the database. */
  close(graceMs?: number): Promise<void>;
}

export const DB_FILE = "secretd.db";

export function verifierOptions(config: Config, warn: (msg: string) => void, onDevKeyCreated: () => void = () => undefined): VerifierOptions {
  const j = config.jwt;
  const opts: VerifierOptions = { algorithms: j.algorithms, tenantClaim: j.tenantClaim, maxTtlSec: j.maxTtlSec };
  if (j.hs256SecretFile !== "") {
    if (j.hs256IsDevKey) {
      const dev = ensureDevHs256Secret(j.hs256SecretFile);
      if (dev.created) {
        warn(`created a development JWT signing key at ${j.hs256SecretFile}; configure a real key source for production`);
        onDevKeyCreated();
      }
      opts.hs256Secret = dev.secret;
    } else {
      opts.hs256Secret = readHs256Secret(j.hs256SecretFile);
    }
  }
  if (j.jwksFile !== "") opts.jwks = readJwksFile(j.jwksFile);
  if (j.jwksUrl !== "") opts.jwksUrl = j.jwksUrl;
  if (j.issuer !== "") opts.issuer = j.issuer;
  if (j.audience !== "") opts.audience = j.audience;
  return opts;
}

const DB_CHECK_MS = 2000;

/**
 * A database that can be lost (PostgreSQL) is pinged: while it does not answer, health
 * says NOT_SERVING (a load balancer then sends calls to another replica) and one log
 * line says so; when it answers again, SERVING, without a restart.
 */
function watchDatabase(storage: Storage, server: RunningServer, logger: Logger): () => void {
  const ping = storage.ping?.bind(storage);
  if (ping === undefined) return () => undefined;
  let up = true;
  let stopped = false;
  const timer = setInterval(() => {
    void ping().then((ok) => {
      if (stopped || ok === up) return;
      up = ok;
      server.setServing(ok);
      if (ok) logger.info("database reachable again: serving");
      else logger.error("database unreachable: health NOT_SERVING, calls answer UNAVAILABLE until it is back");
    });
  }, DB_CHECK_MS);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** SQLite in the data dir, or PostgreSQL when --database-url is set. */
async function openStorage(config: Config, logger: Logger): Promise<Storage> {
  if (config.databaseUrl === "") return new SqliteStorage(path.join(config.dataDir, DB_FILE));
  return PostgresStorage.open(config.databaseUrl, {
    poolSize: config.database.poolSize,
    statementTimeoutMs: config.database.statementTimeoutMs,
    onError: (err) => logger.warn({ err: { message: err instanceof Error ? err.message : String(err) } }, "database connection lost"),
  });
}

export async function startApp(config: Config, logger: Logger): Promise<App> {
  const warn = (msg: string): void => logger.warn(msg);
  let devKeyCreated = false;
  const verifier = createVerifier(verifierOptions(config, warn, () => (devKeyCreated = true)));
  const storage = await openStorage(config, logger);
  let keyring: KeyringHolder;
  try {
    // Watched, so a `secretd keys rotate` run against this data dir takes effect here too.
    keyring = await openServerKeyring(storage, { file: config.kekFile, isDefaultFile: config.kekFileIsDefault, watch: true, info: (msg) => logger.info(msg), warn });
  } catch (err) {
    await storage.close();
    throw err;
  }
  const secrets = new Secrets({ storage, keyring, creatorRoles: config.creatorRoles, maxVersions: config.maxVersions });
  const grants = new Grants({ storage, secrets });
  const consumers = new Consumers({ storage, secrets });
  const onWatchError = (err: unknown): void => logger.warn({ err }, "watch bookkeeping failed");
  const leases = new ConsumerLeases(storage, { ...LEASE_DEFAULTS, replica: defaultReplicaName(), onError: onWatchError });
  const projection = { storage, keyring };
  const watches = new WatchHub({ projection, feed: storage.changes, leases, maxWatchesPerTenant: config.maxWatchesPerTenant, onError: onWatchError });
  let server;
  try {
    server = await startGrpcServer(config, { verifier, logger, secrets, grants, projection, watches, consumers });
  } catch (err) {
    keyring.close();
    await watches.shutdown();
    await storage.close();
    throw err;
  }
  const running = server;
  const stopWatching = watchDatabase(storage, running, logger);
  logger.info({ listen: `${config.listen.host}:${running.port}`, tls: config.tls !== undefined }, "secretd serving");
  return {
    port: running.port,
    devKeyCreated,
    storage,
    watches,
    get keyring() {
      return keyring.current();
    },
    async close(graceMs = 10_000) {
      stopWatching();
      keyring.close();
      // Streams first (clients reconnect elsewhere), so the drain below waits only for unary calls.
      await watches.shutdown();
      await running.shutdown(graceMs);
      await storage.close();
    },
  };
}
