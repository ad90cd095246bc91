/** Wires configuration → keys → storage → domain → transport, and tears it down. */
import path from "node:path";
import { AuditTrail } from "./audit/audit-trail.js";
import { ensureDevHs256Secret, readHs256Secret, readJwksFile } from "./auth/keys.js";
import { createVerifier, type VerifierOptions } from "./auth/verifier.js";
import type { Config } from "./config.js";
import type { Keyring } from "./crypto/keyring.js";
import { KeyringHolder } from "./crypto/keyring-holder.js";
import { Grants } from "./domain/grants.js";
import { Secrets } from "./domain/secrets.js";
import type { Logger } from "./logger.js";
import { Metrics, type WatchGauge } from "./metrics/metrics.js";
import { startMetricsServer, type MetricsServer } from "./metrics/metrics-server.js";
import { SqliteStorage } from "./storage/sqlite/sqlite-storage.js";
import type { Storage } from "./storage/storage.js";
import { startGrpcServer } from "./transport/grpc/server.js";

export interface App {
  readonly port: number;
  readonly storage: Storage;
  /** The keyring in use now; it follows the KEK file (see KeyringHolder). */
  readonly keyring: Keyring;
  /** The audit queue: events of calls not yet flushed wait here (flush() writes them now). */
  readonly audit: AuditTrail;
  /** Where /metrics is served, when --metrics-listen is set. */
  readonly metricsPort: number | undefined;
  /** The open-watch gauge for the watch hub (a no-op without --metrics-listen). */
  readonly watchGauge: WatchGauge;
  /** Drains in-flight calls (at most graceMs), flushes the audit queue, then closes the database. */
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
  let storage;
  let metrics: Metrics | undefined;
  let trail: AuditTrail | undefined;
  try {
    verifier = createVerifier(verifierOptions(config, warn));
    if (config.metricsListen) {
      metrics = new Metrics({
        tenantLabels: config.metricsTenantLabels,
        auditQueueDepth: () => trail?.depth ?? 0,
        auditDropped: () => trail?.dropped ?? 0,
        activeKekId: () => keyring.current().active.id,
      });
    }
    const m = metrics;
    storage = new SqliteStorage(path.join(config.dataDir, DB_FILE), m ? { onCommit: (s) => m.storageCommitted(s) } : {});
  } catch (err) {
    keyring.close();
    throw err;
  }
  const st = storage;
  const cleanup = async (): Promise<void> => {
    keyring.close();
    await trail?.close();
    await st.close();
  };
  let server;
  let metricsServer: MetricsServer | undefined;
  try {
    const m = metrics;
    trail = new AuditTrail({
      storage: st,
      logger,
      retentionMs: config.audit.retentionMs,
      file: config.audit.file,
      ...(m ? { onFlush: (s: number, n: number) => m.auditFlushed(s, n) } : {}),
    });
    const secrets = new Secrets({ storage: st, keyring, creatorRoles: config.creatorRoles, maxVersions: config.maxVersions });
    const grants = new Grants({ storage: st, secrets });
    server = await startGrpcServer(config, {
      verifier,
      logger,
      secrets,
      grants,
      projection: { storage: st, keyring },
      audit: trail,
      observer: metrics,
      auditStorage: st,
    });
    if (m && config.metricsListen) {
      try {
        metricsServer = await startMetricsServer(m.registry, config.metricsListen.host, config.metricsListen.port, (err) =>
          logger.error({ err }, "metrics collection failed"),
        );
      } catch (err) {
        await server.shutdown(0);
        throw err;
      }
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  const running = server;
  const audit = trail;
  const metricsAt = metricsServer;
  logger.info(
    {
      listen: `${config.listen.host}:${running.port}`,
      tls: config.tls !== undefined,
      ...(metricsAt && config.metricsListen ? { metrics: `${config.metricsListen.host}:${metricsAt.port}` } : {}),
    },
    "secretd serving",
  );
  return {
    port: running.port,
    storage: st,
    audit,
    metricsPort: metricsAt?.port,
    watchGauge: metrics?.watches ?? { inc() {}, dec() {}, set() {} },
    get keyring() {
      return keyring.current();
    },
    async close(graceMs = 10_000) {
      keyring.close();
      await running.shutdown(graceMs);
      await metricsAt?.close();
      // After the drain: every call that finished has recorded its event.
      await audit.close();
      await st.close();
    },
  };
}
