/** Wires configuration → keys → storage → domain → transport, and tears it down. */
import path from "node:path";
import { ensureDevHs256Secret, readHs256Secret, readJwksFile } from "./auth/keys.js";
import { createVerifier, type VerifierOptions } from "./auth/verifier.js";
import type { Config } from "./config.js";
import type { Keyring, KeyringSource } from "./crypto/keyring.js";
import { KeyringHolder } from "./crypto/keyring-holder.js";
import { AuthenticatedStorage } from "./domain/authenticated-storage.js";
import { Grants } from "./domain/grants.js";
import { backfillRowMacs } from "./domain/row-mac-maintenance.js";
import { Secrets } from "./domain/secrets.js";
import type { Logger } from "./logger.js";
import { SqliteStorage } from "./storage/sqlite/sqlite-storage.js";
import type { Storage } from "./storage/storage.js";
import { startGrpcServer } from "./transport/grpc/server.js";

export interface App {
  readonly port: number;
  readonly storage: Storage;
  /** The keyring in use now; it follows the KEK file (see KeyringHolder). */
  readonly keyring: Keyring;
  /** Drains in-flight calls (at most graceMs), then closes the database. */
  close(graceMs?: number): Promise<void>;
}

export const DB_FILE = "secretd.db";

export function verifierOptions(config: Config, warn: (msg: string) => void): VerifierOptions {
  const j = config.jwt;
  const opts: VerifierOptions = { algorithms: j.algorithms, tenantClaim: j.tenantClaim };
  if (j.hs256SecretFile !== "") {
    if (j.hs256IsDevKey) {
      const dev = ensureDevHs256Secret(j.hs256SecretFile);
      if (dev.created) warn(`created a development JWT signing key at ${j.hs256SecretFile}; configure a real key source for production`);
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

/**
 * The back-end behind the row-MAC check (AuthenticatedStorage); a database made before
 * row MACs gets them here, once.
 */
async function authenticatedStorage(backend: Storage, keyring: KeyringSource, logger: Logger): Promise<Storage> {
  const storage = new AuthenticatedStorage(backend, keyring, (row, err) =>
    logger.error({ uid: row.uid, tenant: row.tenant, mesh: row.mesh, name: row.name, err }, "a stored secret row failed to authenticate; left out of the listing"),
  );
  try {
    const backfilled = await backfillRowMacs(storage, keyring);
    if (typeof backfilled === "number" && backfilled > 0) {
      logger.warn({ rows: backfilled }, "gave every row of a database made before row MACs its MAC (once, on upgrade; a second time would mean the file was tampered with)");
    } else if (backfilled === "refused") {
      logger.error("the database asks for a row-MAC backfill but already holds MACs: refused (tampering?); rows without a MAC answer DATA_LOSS");
    }
  } catch (err) {
    await storage.close();
    throw err;
  }
  return storage;
}

export async function startApp(config: Config, logger: Logger): Promise<App> {
  const warn = (msg: string): void => logger.warn(msg);
  // Watched, so a `secretd keys rotate` run against this data dir takes effect here too.
  const keyring = new KeyringHolder(config.kekFile, {
    create: config.kekFileIsDefault,
    watch: true,
    info: (msg) => logger.info(msg),
    warn,
  });
  let verifier;
  let storage: Storage;
  try {
    verifier = createVerifier(verifierOptions(config, warn));
    storage = await authenticatedStorage(new SqliteStorage(path.join(config.dataDir, DB_FILE)), keyring, logger);
  } catch (err) {
    keyring.close();
    throw err;
  }
  const secrets = new Secrets({ storage, keyring, creatorRoles: config.creatorRoles, maxVersions: config.maxVersions });
  const grants = new Grants({ storage, secrets });
  let server;
  try {
    server = await startGrpcServer(config, { verifier, logger, secrets, grants, projection: { storage, keyring } });
  } catch (err) {
    keyring.close();
    await storage.close();
    throw err;
  }
  const running = server;
  logger.info({ listen: `${config.listen.host}:${running.port}`, tls: config.tls !== undefined }, "secretd serving");
  return {
    port: running.port,
    storage,
    get keyring() {
      return keyring.current();
    },
    async close(graceMs = 10_000) {
      keyring.close();
      await running.shutdown(graceMs);
      await storage.close();
    },
  };
}
