/**
 * `--workers N`: a primary process that forks N server processes on one port through
 * node:cluster (the primary deals out connections; a connection stays on its worker),
 * over the same data. The workers are ordinary `secretd serve` processes; what keeps
 * them coherent is the storage change feed (every worker's read cache and watches hear
 * every other worker's commits within one feed poll).
 *
 * - Start: the first worker starts alone (it creates dev keys and runs migrations, so
 *   several processes never race on them), then the others. A worker that fails before
 *   it ever served makes the primary stop everything and exit with that worker's code.
 * - A worker that dies later is restarted while the others serve (with a growing delay
 *   when it keeps dying right after start).
 * - SIGTERM/SIGINT to the primary: every worker drains (its own SIGTERM path), then the
 *   primary exits. A worker whose primary is gone drains and exits too.
 * - `--metrics-listen`: the primary alone serves /metrics, the sum of every worker's series.
 * - On SQLite the primary holds the database open (read-only, never writing) from the
 *   first worker's start to its own exit, so `secretd restore` sees a live server even
 *   while every worker is down and being restarted.
 */
import cluster, { type Worker } from "node:cluster";
import path from "node:path";
import { DB_FILE } from "./storage/open-storage.js";
import type { Config } from "./config.js";
import type { LoggerHandle } from "./logger.js";
import { holdDatabase } from "./storage/sqlite/sqlite-maintenance.js";

/** Sent by a worker to the primary once it serves. */
export interface WorkerReady {
  readonly secretdReady: true;
  readonly port: number;
}

/** Set in the environment of the worker that starts first (it prints the dev banner). */
export const FIRST_WORKER_ENV = "SECRETD_FIRST_WORKER";

const DRAIN_MS = 15_000;
const QUICK_DEATH_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;

function isReady(m: unknown): m is WorkerReady {
  return typeof m === "object" && m !== null && (m as WorkerReady).secretdReady === true;
}

/** In a worker: tells the primary it serves on `port`. No-op in a single process. */
export function reportReady(port: number): void {
  if (cluster.isWorker) process.send?.({ secretdReady: true, port } satisfies WorkerReady);
}

export async function runPrimary(config: Config, log: LoggerHandle): Promise<never> {
  const logger = log.logger.child({ role: "primary" });
  const workers = new Set<Worker>();
  const started = new Map<Worker, number>();
  let stopping = false;
  let restartDelay = 0;

  const exit = (code: number): never => {
    log.flush();
    process.exit(code);
  };

  const fork = (first: boolean): Promise<WorkerReady> => {
    const w = cluster.fork(first ? { [FIRST_WORKER_ENV]: "1" } : {});
    workers.add(w);
    started.set(w, Date.now());
    return new Promise((resolve, reject) => {
      let ready = false;
      w.on("message", (m: unknown) => {
        if (!isReady(m) || ready) return;
        ready = true;
        resolve(m);
      });
      w.on("exit", (code, signal) => {
        workers.delete(w);
        const lived = Date.now() - (started.get(w) ?? 0);
        started.delete(w);
        if (!ready) {
          reject(Object.assign(new Error(`worker ${w.id} exited before serving`), { exitCode: code ?? 1 }));
          return;
        }
        if (stopping) return;
        restartDelay = lived < QUICK_DEATH_MS ? Math.min(Math.max(restartDelay * 2, 500), MAX_RESTART_DELAY_MS) : 0;
        logger.warn({ worker: w.id, pid: w.process.pid, code, signal, restartInMs: restartDelay }, "worker died: restarting it");
        respawn();
      });
    });
  };

  /** Replaces a dead worker after restartDelay; one that fails to start is retried, slower each time. */
  const respawn = (): void => {
    setTimeout(() => {
      if (stopping) return;
      fork(false).then(
        (r) => logger.info({ port: r.port }, "worker restarted"),
        (err: unknown) => {
          restartDelay = Math.min(Math.max(restartDelay * 2, 500), MAX_RESTART_DELAY_MS);
          logger.error({ err, restartInMs: restartDelay }, "a restarted worker failed to start");
          respawn();
        },
      );
    }, restartDelay); // not unref'd: with every worker dead, this timer is what keeps the primary alive
  };

  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, workers: workers.size }, "draining");
    const all = [...workers];
    for (const w of all) w.process.kill("SIGTERM");
    const force = setTimeout(() => {
      for (const w of workers) w.process.kill("SIGKILL");
    }, DRAIN_MS);
    const codes: number[] = [];
    let left = all.length;
    const done = (): void => {
      clearTimeout(force);
      logger.info("stopped");
      exit(codes.some((c) => c !== 0) ? 1 : 0);
    };
    if (left === 0) done();
    for (const w of all) {
      w.once("exit", (code) => {
        codes.push(code ?? 1);
        if (--left === 0) done();
      });
    }
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  try {
    const first = await fork(true);
    // The first worker has created and migrated the file; released only when the process exits.
    if (config.databaseUrl === "") holdDatabase(path.join(config.dataDir, DB_FILE));
    await Promise.all(Array.from({ length: config.workers - 1 }, () => fork(false)));
    let metricsAt = {};
    if (config.metricsListen) {
      // Only the primary listens; each scrape asks every worker for its series and sums them.
      const { clusterMetricsSource } = await import("./metrics/metrics.js");
      const { startMetricsServer } = await import("./metrics/metrics-server.js");
      const address = `${config.metricsListen.host}:${config.metricsListen.port}`;
      const served = await startMetricsServer(clusterMetricsSource(), config.metricsListen.host, config.metricsListen.port, (err) =>
        logger.error({ err }, "metrics collection failed"),
      ).catch((err: unknown) => {
        logger.error({ err, metricsListen: address }, "the metrics endpoint could not listen: stopping");
        throw Object.assign(new Error(`--metrics-listen ${address}: ${err instanceof Error ? err.message : String(err)}`), { exitCode: 1 });
      });
      metricsAt = { metrics: `${config.metricsListen.host}:${served.port}` };
    }
    logger.info({ listen: `${config.listen.host}:${first.port}`, workers: config.workers, ...metricsAt }, "secretd serving with workers");
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode ?? 1;
    stopping = true;
    for (const w of workers) w.process.kill("SIGTERM");
    logger.error({ code }, "a worker failed to start: stopping");
    exit(code === 0 ? 1 : code);
  }
  return new Promise<never>(() => undefined);
}
