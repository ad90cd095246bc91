/**
 * `secretd csi-provider --socket PATH`: the Secrets Store CSI Driver provider (SPEC §8),
 * serving `v1alpha1.CSIDriverProvider` on a Unix socket in the driver's provider
 * directory until SIGTERM/SIGINT, which drain the calls in flight and remove the socket.
 * A bad flag exits 2 with a message naming it; a socket path another provider serves on
 * (or that is not a socket) exits 1, and is left alone.
 * Logs are JSON lines on stderr that never hold a value or token.
 */
import { Server } from "@grpc/grpc-js";
import { Option, type Command } from "commander";
import { parseDuration } from "../duration.js";
import { invalid } from "../errors.js";
import { createLogger } from "../logger.js";
import { CSIDriverProviderService } from "../gen/csi/provider/v1alpha1/service.js";
import { channelCredentials, DEFAULT_SERVER, type ClientFlags } from "../client/client.js";
import { printError } from "../client/cli-errors.js";
import { withExample } from "../client/help.js";
import { parseMode } from "../client/projection-file.js";
import { parseServerAddress } from "../client/server-address.js";
import { providerService } from "./provider-service.js";
import { bindSocket, prepareSocket, removeSocket } from "./provider-socket.js";

interface ProviderFlags extends ClientFlags {
  socket: string;
  socketMode: string;
  logLevel: string;
}

/** Calls in flight get this long to finish on SIGTERM before they are cut. */
const DRAIN_MS = 5000;

function timeoutMs(value: string): number {
  try {
    return parseDuration(value) * 1000;
  } catch {
    throw invalid("--timeout", `"${value.slice(0, 32)}" is not a duration like 10s or 1m`);
  }
}

export function registerCsiProvider(program: Command): void {
  const cmd = program
    .command("csi-provider")
    .description("serve the Secrets Store CSI Driver's provider API (v1alpha1.CSIDriverProvider) on a Unix socket")
    .requiredOption("--socket <path>", "Unix socket to serve on, e.g. /etc/kubernetes/secrets-store-csi-providers/secretd.sock")
    .addOption(new Option("--server <host[:port]>", "secretd's address (a SecretProviderClass may name another with serverAddress)").env("SECRETD_SERVER").default(DEFAULT_SERVER))
    .option("--ca <file>", "use TLS to secretd, trusting this CA bundle (PEM)")
    .option("--cert <file>", "client certificate (PEM) for mutual TLS; needs --cert-key")
    .option("--cert-key <file>", "private key (PEM) of --cert")
    .option("--tls", "use TLS, trusting the system's CAs (implied by --ca or --cert)")
    .option("--timeout <duration>", "deadline of each ProjectSecrets call", "10s")
    .option("--socket-mode <mode>", "mode of the socket (octal); the driver runs as root", "0600")
    .addOption(new Option("--log-level <level>", "log level").choices(["debug", "info", "warn", "error"]).default("info"));
  withExample(cmd, "secretd csi-provider --socket /etc/kubernetes/secrets-store-csi-providers/secretd.sock --server secretd.secretd:50051 --ca /etc/secretd/ca.pem");
  cmd.action(async (_opts: unknown, self: Command) => {
    const f = self.opts<ProviderFlags>();
    const log = createLogger(f.logLevel, 2, { sync: true });
    try {
      const mode = parseMode(f.socketMode, "--socket-mode");
      const server = parseServerAddress(f.server ?? DEFAULT_SERVER, self.getOptionValueSource("server") === "env" ? "SECRETD_SERVER" : "--server");
      const { creds, tls, clientCert, customCa } = channelCredentials(f);
      const service = providerService({ server, credentials: creds, dialled: { tls, clientCert, customCa }, timeoutMs: timeoutMs(f.timeout ?? "10s"), log: log.logger });
      await prepareSocket(f.socket);
      const grpcServer = new Server();
      grpcServer.addService(CSIDriverProviderService, service.implementation);
      const ino = await bindSocket(grpcServer, f.socket, mode);
      log.logger.info({ socket: f.socket, mode: `0${mode.toString(8)}`, server: server.target, tls }, "serving");
      const stop = (signal: string): void => {
        log.logger.info({ signal }, "stopping");
        removeSocket(f.socket, ino); // the driver stops dialling it at once
        const cut = setTimeout(() => grpcServer.forceShutdown(), DRAIN_MS);
        grpcServer.tryShutdown(() => {
          clearTimeout(cut);
          service.close();
          removeSocket(f.socket, ino);
          log.logger.info({}, "stopped");
        });
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
    } catch (err) {
      process.exitCode = printError(err);
    }
  });
}
