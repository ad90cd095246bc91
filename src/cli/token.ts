/** `secretd token mint`: signs a token with the configured HS256 secret file. */
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { readHs256Secret } from "../auth/keys.js";
import { mintToken } from "../auth/mint.js";
import { splitList, type Config } from "../config.js";
import { SecretdError, invalid } from "../errors.js";
import { configFrom, withConfigOptions } from "./config-options.js";
import { withExample } from "../client/help.js";
import { ttlSeconds } from "../client/ttl-flag.js";

function list(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : splitList(v);
}

/**
 * The HS256 secret to sign with. Minting never creates a key: a key made here would be
 * one no server checks tokens against (e.g. ./data/jwt-dev.key in whatever directory
 * mint happened to run). The dev key is created by the first `secretd serve`.
 */
export function signingSecret(config: Config): Buffer {
  const file = config.jwt.hs256SecretFile;
  if (file === "") throw new SecretdError("FAILED_PRECONDITION", "token mint signs with the HS256 secret: set --jwt-hs256-secret-file");
  if (!existsSync(file)) {
    const hint = config.jwt.hs256IsDevKey
      ? `the dev key is created by the first \`secretd serve\` on that data dir: pass the server's --data-dir (now ${config.dataDir}) or --jwt-hs256-secret-file`
      : "check --jwt-hs256-secret-file";
    throw invalid(config.jwt.hs256IsDevKey ? "--data-dir" : "--jwt-hs256-secret-file", `no signing key at ${file}; ${hint}`);
  }
  return readHs256Secret(file);
}

export async function mintFromConfig(
  config: Config,
  claims: { tenant: string; sub: string; roles?: string[] | undefined; meshes?: string[] | undefined; ttlSec: number },
): Promise<string> {
  if (claims.ttlSec > config.jwt.maxTtlSec) {
    throw new SecretdError("INVALID_ARGUMENT", `--ttl: ${claims.ttlSec} s is longer than the server accepts (--jwt-max-ttl, ${config.jwt.maxTtlSec} s)`);
  }
  return mintToken({
    secret: signingSecret(config),
    tenant: claims.tenant,
    sub: claims.sub,
    ...(claims.roles ? { roles: claims.roles } : {}),
    ...(claims.meshes ? { meshes: claims.meshes } : {}),
    ttlSec: claims.ttlSec,
    ...(config.jwt.issuer ? { issuer: config.jwt.issuer } : {}),
    ...(config.jwt.audience ? { audience: config.jwt.audience } : {}),
    tenantClaim: config.jwt.tenantClaim,
  });
}

export function registerToken(program: Command): void {
  const token = program.command("token").description("token utilities");
  const mint = withConfigOptions(
    token
      .command("mint")
      .description("mint an HS256 token signed with the configured secret file (prints only the token)")
      .requiredOption("--tenant <tenant>", "tenant claim")
      .requiredOption("--sub <sub>", "subject (principal id)")
      .option("--roles <roles>", "comma-separated roles, e.g. tenant-admin,data-developer")
      .option("--meshes <meshes>", "comma-separated meshes the token may use (default: every mesh)")
      .option("--ttl <duration>", "lifetime: 90s, 15m, 1h, 7d", "1h"),
    ["dataDir", "jwtHs256SecretFile", "jwtIssuer", "jwtAudience", "tenantClaim"],
  );
  withExample(mint, "export SECRETD_TOKEN=$(secretd token mint --data-dir /var/lib/secretd --tenant acme --sub ci-bot --roles data-developer --ttl 1h)");
  mint.action(async (opts: Record<string, string | undefined>) => {
    const config = configFrom(opts);
    const jwt = await mintFromConfig(config, {
      tenant: opts.tenant ?? "",
      sub: opts.sub ?? "",
      roles: list(opts.roles),
      meshes: list(opts.meshes),
      ttlSec: ttlSeconds(opts.ttl ?? "1h"),
    });
    process.stdout.write(`${jwt}\n`);
  });
}
