/** `secretd serve`: runs the server until SIGTERM/SIGINT, then drains and closes. */
import cluster from "node:cluster";
import type { Command } from "commander";
import type { Config } from "../config.js";
import { configFrom, withConfigOptions } from "./config-options.js";
import { withExample } from "./help.js";
import { mintFromConfig } from "./token.js";

const DEV_TENANT = "dev";
const DEV_SUB = "dev-admin";

/** With the dev key, print a ready token and a grpcurl call, as the quick start promises. */
async function devBanner(config: Config, port: number): Promise<void> {
  if (!config.jwt.hs256IsDevKey) return;
  const token = await mintFromConfig(config, { tenant: DEV_TENANT, sub: DEV_SUB, roles: ["tenant-admin"], ttlSec: Math.min(24 * 3600, config.jwt.maxTtlSec) });
  const addr = `${config.listen.host}:${port}`;
  const tls = config.tls ? "-insecure" : "-plaintext";
  process.stderr.write(
    [
      "",
      `secretd is serving on ${addr} with the DEVELOPMENT signing key ${config.jwt.hs256SecretFile}.`,
      `A token for tenant "${DEV_TENANT}", sub "${DEV_SUB}", role tenant-admin, valid 24h:`,
      "",
      `export TOKEN=${token}`,
      "",
      "Try:",
      `grpcurl ${tls} -H "authorization: Bearer $TOKEN" -d '{"mesh":"default","name":"db-password","stringData":{"password":"s3cr3t"}}' ${addr} secrets.v1.SecretService/CreateSecret`,
      `grpcurl ${tls} -H "authorization: Bearer $TOKEN" -d '{"mesh":"default","name":"db-password"}' ${addr} secrets.v1.SecretService/GetSecret`,
      "",
    ].join("\n") + "\n",
  );
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
    const log = createLogger(config.logLevel);
    if (config.workers > 1 && cluster.isPrimary) return runPrimary(config, log);
    const logger = cluster.isWorker ? log.logger.child({ worker: cluster.worker?.id, pid: process.pid }) : log.logger;
    const app = await startApp(config, logger);
    // With workers, the first one prints the banner (the others would repeat it).
    if (cluster.isPrimary || process.env[FIRST_WORKER_ENV] === "1") await devBanner(config, app.port);
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
