/**
 * Starts the real server (the same startApp as `secretd serve`) on 127.0.0.1:0 with a
 * fresh data dir, and gives tests a generated client, a token minter and the log lines.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import pino from "pino";
import { startApp, type App } from "../../src/app.js";
import { readHs256Secret } from "../../src/auth/keys.js";
import { mintToken } from "../../src/auth/mint.js";
import { loadConfig, type Config } from "../../src/config.js";
import { REDACT_PATHS } from "../../src/logger.js";
import {
  CreateSecretRequest,
  DeleteSecretRequest,
  GetSecretRequest,
  GrantAccessRequest,
  ListAuditEventsRequest,
  ListConsumersRequest,
  ListGrantsRequest,
  ListSecretsRequest,
  ProjectSecretsRequest,
  RevokeAccessRequest,
  SecretServiceClient,
  UpdateSecretRequest,
} from "../../src/gen/secrets/v1/secrets.js";

/** Request message of each unary method, to fill defaults of partial requests. */
const REQUESTS = {
  createSecret: CreateSecretRequest,
  getSecret: GetSecretRequest,
  listSecrets: ListSecretsRequest,
  updateSecret: UpdateSecretRequest,
  deleteSecret: DeleteSecretRequest,
  projectSecrets: ProjectSecretsRequest,
  grantAccess: GrantAccessRequest,
  revokeAccess: RevokeAccessRequest,
  listGrants: ListGrantsRequest,
  listConsumers: ListConsumersRequest,
  listAuditEvents: ListAuditEventsRequest,
} as const;
export type Method = keyof typeof REQUESTS;

export interface Claims {
  tenant: string;
  sub: string;
  roles?: string[];
  meshes?: string[];
  ttlSec?: number;
}

export interface TestServer {
  readonly app: App;
  readonly config: Config;
  readonly address: string;
  readonly dataDir: string;
  readonly client: InstanceType<typeof SecretServiceClient>;
  readonly logs: string[];
  token(claims: Claims): Promise<string>;
  /** Calls a unary method with a bearer token; resolves the response or rejects a ServiceError. */
  call<Res>(method: Method, req: object, token?: string, md?: Metadata): Promise<Res>;
  stop(): Promise<void>;
}

export async function startTestServer(flags: Record<string, string> = {}): Promise<TestServer> {
  const dataDir = flags.dataDir ?? mkdtempSync(path.join(os.tmpdir(), "secretd-e2e-"));
  const config = loadConfig({ listen: "127.0.0.1:0", dataDir, logLevel: "info", ...flags }, {});
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(...chunk.toString("utf8").split("\n").filter((l) => l !== ""));
      cb();
    },
  });
  const logger = pino({ level: config.logLevel, redact: { paths: REDACT_PATHS, censor: "[redacted]" } }, sink);
  const app = await startApp(config, logger);
  const address = `127.0.0.1:${app.port}`;
  const client = new SecretServiceClient(address, credentials.createInsecure());
  const secret = readHs256Secret(config.jwt.hs256SecretFile);

  return {
    app,
    config,
    address,
    dataDir,
    client,
    logs,
    token: (c) =>
      mintToken({
        secret,
        tenant: c.tenant,
        sub: c.sub,
        ...(c.roles ? { roles: c.roles } : {}),
        ...(c.meshes ? { meshes: c.meshes } : {}),
        ttlSec: c.ttlSec ?? 600,
      }),
    call<Res>(method: Method, req: object, token?: string, md = new Metadata()) {
      if (token !== undefined) md.set("authorization", `Bearer ${token}`);
      const full = (REQUESTS[method] as { fromPartial(o: object): unknown }).fromPartial(req);
      const fn = (client as unknown as Record<Method, (r: unknown, m: Metadata, cb: (e: ServiceError | null, r: Res) => void) => void>)[method];
      return new Promise<Res>((resolve, reject) => fn.call(client, full, md, (e, r) => (e ? reject(e) : resolve(r))));
    },
    async stop() {
      client.close();
      await app.close(1000);
      if (!flags.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Resolves the gRPC status code of a call that must fail. */
export async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    return (e as ServiceError).code;
  }
  throw new Error("expected the call to fail");
}
