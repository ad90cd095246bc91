/** Wires configuration → keys → storage → domain → transport, and tears it down. */
import cluster from "node:cluster";
import { listAuditEvents } from "./domain/audit-events.js";
import { AuditTrail } from "./audit/audit-trail.js";
import { ensureDevHs256Secret, readHs256Secret, readJwksFile } from "./auth/keys.js";
import { readClaimsMapping } from "./auth/claims-mapping.js";
import { OidcKeySet } from "./auth/oidc-key-set.js";
import { createVerifier, type VerifierOptions } from "./auth/verifier.js";
import { realClock, type Clock } from "./clock.js";
import type { Config } from "./config.js";
import type { Keyring, KeyringSource } from "./crypto/keyring.js";
import type { KeyringHolder } from "./crypto/keyring-holder.js";
import { AnswerCache } from "./transport/grpc/answer-cache.js";
import { PlaintextCache } from "./crypto/plaintext-cache.js";
import { openServerKeyring } from "./domain/server-keyring.js";
import { AuthenticatedStorage } from "./domain/authenticated-storage.js";
import { Acks } from "./domain/acks.js";
import { Consumers } from "./domain/consumers.js";
import { Rollouts } from "./domain/rollout.js";
import { Grants } from "./domain/grants.js";
import { backfillRowMacs } from "./domain/row-mac-maintenance.js";
import { Secrets } from "./domain/secrets.js";
import { leaseProbe } from "./domain/rollout-probe.js";
import { ROTATION_DRIVER_DEFAULTS, RotationDriver } from "./domain/rotation-driver.js";
import { RotationState } from "./domain/rotation-enums.js";
import { retireEvent } from "./domain/rotation-audit.js";
import { Rotations } from "./domain/rotations.js";
import { RotationScheduler } from "./domain/rotation-scheduler.js";
import { stateName } from "./domain/rollout.js";
import { execRotator, type Rotator } from "./domain/exec-rotator.js";
import { postgresRotator } from "./domain/postgres-rotator.js";
import { retireHookOf } from "./domain/retire-hook.js";
import { RotationSteps } from "./domain/rotation-step.js";
import { looseKeyFileMode } from "./key-file-mode.js";
import type { Logger } from "./logger.js";
import { Metrics } from "./metrics/metrics.js";
import { rateLimited } from "./rate-limited.js";
import { startMetricsServer, type MetricsServer } from "./metrics/metrics-server.js";
import { openAuditWriter, openStorage } from "./storage/open-storage.js";
import type { Storage } from "./storage/storage.js";
import type { AnswerMeta, Answers } from "./transport/grpc/answers.js";
import { startGrpcServer, type RunningServer } from "./transport/grpc/server.js";
import { ConsumerLeases, defaultReplicaName, LEASE_DEFAULTS } from "./watch/consumer-leases.js";
import { WatchHub } from "./watch/watch-hub.js";
import { startIdleGc } from "./idle-gc.js";

export interface App {
  readonly port: number;
  readonly storage: Storage;
  /** Open WatchProjection streams of this process (its openWatches count feeds metrics). */
  readonly watches: WatchHub;
  /** This start created the development JWT signing key (a first start on a fresh data dir). */
  readonly devKeyCreated: boolean;
  /** The keyring in use now; it follows the KEK file (see KeyringHolder). */
  readonly keyring: Keyring;
  /** Decrypted payloads kept for hot reads (--value-cache-mb), emptied on the change feed. */
  readonly plaintexts: PlaintextCache;
  /** Encoded GetSecret and ProjectSecrets answers kept for hot reads (the other half of --value-cache-mb), emptied on the change feed. */
  readonly answers: Answers;
  /** The audit queue: events of calls not yet flushed wait here (flush() writes them now). */
  readonly audit: AuditTrail;
  /** Where /metrics is served, when --metrics-listen is set (in a --workers worker: undefined, the primary serves it). */
  readonly metricsPort: number | undefined;
  /** Ends watches with UNAVAILABLE, drains in-flight calls (at most graceMs), flushes the audit queue, then closes the database. */
  close(graceMs?: number): Promise<void>;
}

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

/**
 * The OIDC issuer's keys, fetched before anything is created on disk, so a start refused
 * for an unreachable or mismatched issuer leaves nothing behind.
 */
async function oidcKeys(config: Config, now: () => number, logger: Logger): Promise<VerifierOptions["oidc"]> {
  const issuer = config.jwt.oidcIssuer;
  if (issuer === "") return undefined;
  const set = await OidcKeySet.open({ issuer, now, onRefreshError: rateLimited(60_000, (suppressed, msg: string) => logger.warn(suppressed > 0 ? { suppressed } : {}, msg)) });
  logger.info({ issuer }, "OIDC issuer keys fetched");
  return { issuer, getKey: set.getKey };
}

/**
 * The back-end behind the row-MAC check (AuthenticatedStorage); a database made before
 * row MACs gets them here, once.
 */
async function authenticatedStorage(backend: Storage, keyring: KeyringSource, logger: Logger): Promise<Storage> {
  const storage = new AuthenticatedStorage(backend, keyring, (row, err) =>
    logger.error({ uid: row.uid, tenant: row.tenant, mesh: row.mesh, name: row.name, err }, "a stored secret row failed to authenticate; left out of the listing"),
  );
  const backfilled = await backfillRowMacs(storage, keyring);
  if (typeof backfilled === "number" && backfilled > 0) {
    logger.warn({ rows: backfilled }, "gave every row of a database made before row MACs its MAC (once, on upgrade; a second time would mean the file was tampered with)");
  } else if (backfilled === "refused") {
    logger.error("the database asks for a row-MAC backfill but already holds MACs: refused (tampering?); rows without a MAC answer DATA_LOSS");
  }
  return storage;
}

/** Served all the same (as before), but said at every start: anyone who can read these can mint tokens or open every secret. */
function warnLooseKeyFiles(config: Config, logger: Logger): void {
  const files: [string, string][] = [["JWT HS256 secret file", config.jwt.hs256SecretFile], ["KEK file", config.kekFile]];
  for (const [what, file] of files) {
    const mode = file === "" ? undefined : looseKeyFileMode(file);
    if (mode !== undefined) logger.warn({ file, mode }, `${what} ${file} has mode ${mode}: group or others can read it; run chmod 600 ${file}`);
  }
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

/** Reconnects are retried every 250 ms: their failures are logged once, then at most once per this, with a count. */
const DB_LOST_LOG_MS = 30_000;

/** The configured back-end; `onCommit` is told each write transaction's duration. */
async function openServerStorage(config: Config, logger: Logger, onCommit: ((seconds: number) => void) | undefined): Promise<Storage> {
  return openStorage(config, {
    onError: rateLimited(DB_LOST_LOG_MS, (suppressed, err: unknown) =>
      logger.warn({ err: { message: err instanceof Error ? err.message : String(err) }, ...(suppressed > 0 ? { suppressed } : {}) }, "database connection lost"),
    ),
    ...(onCommit === undefined ? {} : { onCommit }),
  });
}

/**
 * What start-up opened, released in reverse order, once: by App.close, or when a later
 * step of start-up fails. A closer that fails is logged and the rest still run; run()
 * resolves to the errors.
 */
interface Closers {
  push(what: string, close: (graceMs: number) => unknown): void;
  run(graceMs: number): Promise<unknown[]>;
}

function closers(logger: Logger): Closers {
  const stack: { what: string; close: (graceMs: number) => unknown }[] = [];
  let done: Promise<unknown[]> | undefined;
  return {
    push: (what, close) => void stack.push({ what, close }),
    run: (graceMs) =>
      (done ??= (async () => {
        const errors: unknown[] = [];
        for (const { what, close } of [...stack].reverse()) {
          try {
            await close(graceMs);
          } catch (err) {
            logger.error({ err }, `closing the ${what} failed`);
            errors.push(err);
          }
        }
        return errors;
      })()),
  };
}

/** `clock` is the time secrets, grants, leases and the audit trail are judged by (tests pass a ManualClock). */
export async function startApp(config: Config, logger: Logger, clock: Clock = realClock): Promise<App> {
  const opened = closers(logger);
  try {
    return await openApp(config, logger, clock, opened);
  } catch (err) {
    await opened.run(0);
    throw err;
  }
}

async function openApp(config: Config, logger: Logger, clock: Clock, opened: Closers): Promise<App> {
  const now = (): number => clock.now();
  const warn = (msg: string): void => logger.warn(msg);
  let metrics: Metrics | undefined;
  // Read by the metrics at scrape time; each exists before the first scrape can happen.
  let kek: KeyringHolder | undefined;
  let trail: AuditTrail | undefined;
  let watches: WatchHub | undefined;
  if (config.metricsListen) {
    metrics = new Metrics({
      tenantLabels: config.metricsTenantLabels,
      auditQueueDepth: () => trail?.depth ?? 0,
      auditDropped: () => (trail?.dropped ?? 0) + (trail?.suppressed ?? 0),
      activeKekId: () => kek?.current().active.id ?? "",
      openWatches: () => watches?.openWatches ?? 0,
    });
  }
  const m0 = metrics;
  // Read before the database is opened: a bad file or issuer refuses the start with nothing created.
  const claimsMapping = config.jwt.claimsMapping === "" ? undefined : readClaimsMapping(config.jwt.claimsMapping);
  const oidc = await oidcKeys(config, now, logger);
  const backend = await openServerStorage(config, logger, m0 ? (s) => m0.storageCommitted(s) : undefined);
  // Closed last. The row-MAC layer over it (st) closes through to it: one closer for both.
  opened.push("database", () => backend.close());
  // Refuses a keyring that lacks a KEK id stored data keys name. Watched, so a
  // `secretd keys rotate` run against this data dir takes effect here too.
  const keyring = await openServerKeyring(backend, { file: config.kekFile, isDefaultFile: config.kekFileIsDefault, watch: true, info: (msg) => logger.info(msg), warn });
  opened.push("keyring", () => keyring.close());
  kek = keyring;
  const st = await authenticatedStorage(backend, keyring, logger);
  // The dev signing key is made once the database and its keyring were accepted, so a
  // refused start leaves no jwt-dev.key behind.
  let devKeyCreated = false;
  const verifier = createVerifier({
    ...verifierOptions(config, warn, () => (devKeyCreated = true)),
    ...(oidc !== undefined ? { oidc } : {}),
    ...(claimsMapping !== undefined ? { claimsMapping } : {}),
  });
  warnLooseKeyFiles(config, logger);
  const m = metrics;
  // On SQLite the flushes run on a thread of their own, off the event loop.
  const auditWriter = openAuditWriter(backend);
  if (auditWriter) opened.push("audit writer", () => auditWriter.close());
  const audit = new AuditTrail({
    storage: auditWriter ?? st,
    logger,
    retentionMs: config.audit.retentionMs,
    maxBytes: config.audit.maxBytes,
    tenantQuota: config.audit.maxEventsPerTenant,
    file: config.audit.file,
    now,
    ...(m ? { onFlush: (s: number, n: number) => m.auditFlushed(s, n) } : {}),
  });
  // Closed after the server drained: every call that finished has recorded its event.
  opened.push("audit trail", () => audit.close());
  trail = audit;
  // --value-cache-mb is shared: half for opened payloads, half for encoded answers.
  const plaintexts = new PlaintextCache(Math.ceil(config.valueCacheBytes / 2));
  const answers = new AnswerCache<AnswerMeta>(Math.floor(config.valueCacheBytes / 2));
  // A write on any worker or replica reaches this feed: its secret's plaintext and the
  // answers built from it leave memory (entries are memos checked against the rows they
  // came from, so this is hygiene, not what keeps reads correct).
  const dropPlaintexts = st.changes.subscribe((ev) => {
    if (ev.type === "changes") {
      for (const c of ev.changes) {
        plaintexts.invalidate(c.uid);
        answers.invalidate(c.uid);
      }
    } else if (ev.reason === "compacted") {
      plaintexts.clear();
      answers.clear();
    }
  });
  opened.push("value caches", () => {
    dropPlaintexts.close();
    plaintexts.clear();
    answers.clear();
  });
  const secrets = new Secrets({ storage: st, keyring, plaintexts, creatorRoles: config.creatorRoles, maxVersions: config.maxVersions, now });
  const grants = new Grants({ storage: st, secrets, now });
  const consumers = new Consumers({ storage: st, secrets, now });
  const onWatchError = (err: unknown): void => logger.warn({ err }, "watch bookkeeping failed");
  const replica = defaultReplicaName();
  const leases = new ConsumerLeases(st, { ...LEASE_DEFAULTS, replica, onError: onWatchError, now });
  // Every process runs a driver; a claim on each rotation's row picks the one that drives it.
  const probe = leaseProbe(st, now);
  const rotator = config.rotator.exec === "" ? undefined : execRotator(config.rotator.exec, config.rotator.timeoutMs);
  // Built in: postgres. Configured: exec (--rotator-exec).
  const rotators = new Map<string, Rotator>([["postgres", postgresRotator(st, keyring, config.rotator.timeoutMs)]]);
  if (rotator !== undefined) rotators.set("exec", rotator);
  const steps = new RotationSteps({
    storage: st,
    keyring,
    rotators,
    maxVersions: config.maxVersions,
    now,
    onNotPromoted: (r, result) => {
      const at = { tenant: r.tenant, mesh: r.mesh, name: r.name, version: r.version };
      if (result.kind === "refused") logger.warn({ ...at, reason: result.reason }, `the ${r.rotator} rotator refused a rotation; the secret is unchanged`);
      else if (result.kind === "retrying") logger.warn({ ...at, reason: result.reason, nextAttempt: new Date(result.at).toISOString() }, `the ${r.rotator} rotator's step failed transiently; retrying with backoff`);
    },
  });
  const driver = new RotationDriver({
    steps,
    storage: st,
    probe,
    driver: replica,
    now,
    retireHook: retireHookOf(st, keyring, rotators),
    hookBoundMs: config.rotator.timeoutMs,
    onFinished: (r, state, detail) => {
      logger.info({ secretUid: r.secretUid, version: r.version, previousVersion: r.previousVersion, state: stateName(state), detail }, "rotation finished");
      audit.record(retireEvent(r, state, now()));
    },
    onError: (err) => logger.warn({ err }, "rotation driver pass failed"),
  });
  const rotations = new Rotations({
    storage: st,
    keyring,
    plaintexts,
    secrets,
    maxVersions: config.maxVersions,
    probe,
    rotator,
    steps,
    driverName: replica,
    claimMs: ROTATION_DRIVER_DEFAULTS.claimTtlMs + config.rotator.timeoutMs,
    onStarted: () => driver.kick(),
    onRetired: (r) => audit.record(retireEvent(r, RotationState.ROTATION_STATE_DONE, now())),
    now,
  });
  // Every process runs a scheduler; a claim on each due time picks the one that rotates.
  const scheduler = new RotationScheduler({
    storage: st,
    rotations,
    audit,
    claimer: replica,
    now,
    onRotated: (d, o) =>
      "version" in o
        ? logger.info({ tenant: d.tenant, mesh: d.mesh, name: d.name, version: o.version }, "scheduled rotation done")
        : logger.warn({ tenant: d.tenant, mesh: d.mesh, name: d.name, code: o.failed, retryAt: new Date(o.retryAt).toISOString() }, "scheduled rotation failed; retried with backoff"),
    onError: (err) => logger.warn({ err }, "rotation scheduler pass failed"),
  });
  const projection = { storage: st, keyring, plaintexts, now };
  const hub = new WatchHub({ projection, feed: st.changes, leases, maxWatchesPerTenant: config.maxWatchesPerTenant, onError: onWatchError, now });
  watches = hub;
  let server: RunningServer | undefined;
  let metricsServer: MetricsServer | undefined;
  // Pushed before they start, in this order, so a close ends streams first (clients
  // reconnect elsewhere, and the drain waits only for unary calls), then drains the
  // server (graceMs), then stops /metrics.
  opened.push("metrics server", () => metricsServer?.close());
  opened.push("gRPC server", (graceMs) => server?.shutdown(graceMs));
  opened.push("watches", () => hub.shutdown());
  opened.push("idle collection", startIdleGc());
  // Stopped before the database closes; its claims released so another process resumes at once.
  opened.push("rotation driver", () => driver.stop());
  opened.push("rotation scheduler", () => scheduler.stop());
  server = await startGrpcServer(config, {
    verifier,
    logger,
    secrets,
    grants,
    projection,
    answers,
    watches: hub,
    consumers,
    rotations,
    acks: new Acks({ storage: st, now }),
    rollouts: new Rollouts({ storage: st, secrets, now }),
    audit,
    observer: m,
    listAuditEvents: (p, req) => listAuditEvents(st, p, req),
    now,
  });
  // A --workers worker hands its series to the primary, which alone listens (a shared
  // port would deal each scrape to one worker and show that worker's counts only).
  if (m && cluster.isWorker) m.serveToPrimary();
  else if (m && config.metricsListen) {
    metricsServer = await startMetricsServer(m.registry, config.metricsListen.host, config.metricsListen.port, (err) =>
      logger.error({ err }, "metrics collection failed"),
    );
  }
  const running = server;
  const metricsAt = metricsServer;
  const stopWatching = watchDatabase(st, running, logger);
  driver.start();
  scheduler.start();
  opened.push("database check", stopWatching);
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
    devKeyCreated,
    storage: st,
    watches: hub,
    audit,
    metricsPort: metricsAt?.port,
    get keyring() {
      return keyring.current();
    },
    plaintexts,
    answers,
    async close(graceMs = 10_000) {
      const errors = await opened.run(graceMs);
      if (errors.length > 0) throw errors[0];
    },
  };
}
