/**
 * What `secretd serve` checks before it creates anything (the data dir, jwt-dev.key,
 * kek.json, secretd.db): a refused start leaves no file behind that a next start, a
 * backup or an operator would then take for real. Each check only reads; a bad flag is
 * INVALID_ARGUMENT naming it (exit 2), a missing file the start needs FAILED_PRECONDITION.
 */
import net from "node:net";
import { readClaimsMapping } from "./auth/claims-mapping.js";
import { readHs256Secret, readJwksFile } from "./auth/keys.js";
import type { Config } from "./config.js";
import { loadKeyring } from "./crypto/keyring.js";
import { serverCredentials } from "./transport/grpc/server.js";
import { listenRefused } from "./transport/listen-refused.js";

/** Listens on host:port and closes again; refuses with listenRefused. Port 0 is always free. */
async function checkAddressFree(flag: string, host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", (err) => reject(listenRefused(flag, host, port, err)));
    probe.listen({ host, port, exclusive: true }, () => resolve());
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

export async function checkStart(config: Config): Promise<void> {
  serverCredentials(config);
  const j = config.jwt;
  if (j.hs256SecretFile !== "" && !j.hs256IsDevKey) readHs256Secret(j.hs256SecretFile);
  if (j.jwksFile !== "") readJwksFile(j.jwksFile);
  if (j.claimsMapping !== "") readClaimsMapping(j.claimsMapping);
  // A named keyring must exist and parse (only the default path is ever created).
  if (!config.kekFileIsDefault) loadKeyring(config.kekFile, { create: false, warn: () => undefined });
  await checkAddressFree("--listen", config.listen.host, config.listen.port);
  if (config.metricsListen) await checkAddressFree("--metrics-listen", config.metricsListen.host, config.metricsListen.port);
}
