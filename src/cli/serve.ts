/** `secretd serve`: runs the server until SIGTERM/SIGINT, then drains and closes. */
import cluster from "node:cluster";
import type { Command } from "commander";
import type { Config } from "../config.js";
import { configFrom, withConfigOptions } from "./config-options.js";
import { withExample } from "../client/help.js";
import { mintFromConfig } from "./token.js";

const DEV_TENANT = "dev";
const DEV_SUB = "dev-admin";

/**
 * With the dev key, a ready token and a grpcurl call, as the quick start promises. The
 * token is a 24 h tenant-admin credential, so it is printed only when someone is there to
 * read it (the dev keys were just created, or stderr is a terminal), not into every
 * journald or container log of later starts; --dev-token always|never overrides.
 */
export function showsDevBanner(config: Config, devKeyCreated: boolean, stderrIsTty: boolean): boolean {
  if (!config.jwt.hs256IsDevKey || config.devToken === "never") return false;
  return config.devToken === "always" || devKeyCreated || stderrIsTty;
}

async function devBanner(config: Config, port: number): Promise<void> {
  const token = await mintFromConfig(config, { tenant: DEV_TENANT, sub: DEV_SUB, roles: ["tenant-admin"], ttlSec: Math.min(24 * 3600, config.jwt.maxTtlSec) });
  const addr = `${config.listen.host}:${port}`;
  const tls = config.tls ? "-insecure" : "-plaintext";
  process.stderr.write(
    [
      "",
      `secretd is serving on ${addr} with the DEVELOPMENT signing key ${config.jwt.hs256SecretFile}.`,
      `A token for tenant "${DEV_TENANT}", sub "${DEV_SUB}", role tenant-admin, valid 24h:`,
      "",
      `export SECRETD_TOKEN=${token}`,
      "",
      "Try:",
      `grpcurl ${tls} -H "authorization: Bearer $SECRETD_TOKEN" -d '{"mesh":"default","name":"db-password","stringData":{"password":"s3cr3t"}}' ${addr} secrets.v1.SecretService/CreateSecret`,
      `grpcurl ${tls} -H "authorization: Bearer $SECRETD_TOKEN" -d '{"mesh":"default","name":"db-password"}' ${addr} secrets.v1.SecretService/GetSecret`,
      `secretd get db-password --mesh default --server ${addr}`,
      "",
      "(this token is printed when the dev keys are created or stderr is a terminal; later: secretd token mint --data-dir DIR ...)",
      "",
    ].join("\n") + "\n",
  );
}

function urlHasPassword(url: string): boolean {
  try {
    return new URL(url).password !== "";
  } catch {
    return false;
  }
}

/** How often a server started by an npm script checks that npm is still its parent. */
const PARENT_POLL_MS = 500;

/**
 * `npm start` does not pass SIGTERM on to its child (what `docker stop` or systemd send
 * to `CMD npm start`), so the server would be left running, orphaned and un-drained.
 * Started by an npm script (npm sets npm_lifecycle_event), the server drains as soon as
 * npm is gone (it is re-parented). Started directly (`secretd serve`, the production
 * command), it does not watch its parent: a shell or nohup exiting must not stop it.
 */
function followNpmParent(stop: () => void): void {
  if (process.env.npm_lifecycle_event === undefined) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    stop();
  }, PARENT_POLL_MS);
  timer.unref();
}

export function registerServe(program: Command): void {
  const cmd = withConfigOptions(program.command("serve").description("run the gRPC server"));
  withExample(cmd, "secretd serve --listen 0.0.0.0:50051 --data-dir /var/lib/secretd --tls-cert srv.crt --tls-key srv.key");
  cmd.action(async (opts: Record<string, unknown>) => {
    const config = configFrom(opts);
    // Loaded here, not at the top, so client verbs don't pay for the server's modules.
    const { startApp } = await import("../app.js");
    const { createLogger } = await import("../logger.js");
    const { FIRST_WORKER_ENV, reportReady, runPrimary } = await import("../cluster.js");
    const { checkStart } = await import("../start-checks.js");
    // Before anything is created: a refused start leaves the data dir as it found it.
    if (cluster.isPrimary) await checkStart(config);
    const log = createLogger(config.logLevel);
    if (cluster.isPrimary && typeof opts.databaseUrl === "string" && urlHasPassword(opts.databaseUrl)) {
      log.logger.warn("--database-url carries a password on the command line, where ps shows it to every local user: set the URL in SECRETD_DATABASE_URL or a --config file instead");
    }
    // As if npm had passed the SIGTERM on: the one-process and the --workers paths both drain on it.
    if (cluster.isPrimary) followNpmParent(() => process.kill(process.pid, "SIGTERM"));
    if (config.workers > 1 && cluster.isPrimary) return runPrimary(config, log);
    const logger = cluster.isWorker ? log.logger.child({ worker: cluster.worker?.id, pid: process.pid }) : log.logger;
    const app = await startApp(config, logger);
    // With workers, the first one prints the banner (the others would repeat it).
    const first = cluster.isPrimary || process.env[FIRST_WORKER_ENV] === "1";
    if (first && showsDevBanner(config, app.devKeyCreated, process.stderr.isTTY === true)) await devBanner(config, app.port);
    reportReady(app.port);
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, "draining");
      app
        .close()
        .then(() => {
          logger.info("stopped");
          log.flush();
          process.exit(0);
        })
        .catch((err: unknown) => {
          logger.error({ err }, "shutdown failed");
          log.flush();
          process.exit(1);
        });
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    // A worker whose primary is gone must not serve on alone.
    if (cluster.isWorker) process.on("disconnect", () => stop("primary gone"));
  });
}
