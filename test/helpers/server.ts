/**
 * Starts the real server (the same startApp as `secretd serve`) on 127.0.0.1:0 with a
 * fresh data dir, and gives tests a generated client, a token minter and the log lines.
 * With SECRETD_E2E_WORKERS=N (N > 1) in the environment, the server is instead the real
 * `secretd serve --workers N` process tree (dist/, built by the global setup); `app` then
 * only has `port` and `close` (suites that reach into the app run in-process only).
 * Each server has its own clock (TestClock): tests move it instead of sleeping.
 * With SECRETD_E2E_STORAGE=postgres, every server uses `--database-url` (a fresh database
 * in one cluster per run, test/helpers/global-setup.ts).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import pino from "pino";
import { startApp, type App } from "../../src/app.js";
import { readHs256Secret } from "../../src/auth/keys.js";
import { ManualClock } from "../../src/clock.js";
import { mintToken } from "../../src/auth/mint.js";
import { loadConfig, type Config } from "../../src/config.js";
import { REDACT_PATHS } from "../../src/logger.js";
import { parseServingLine } from "../../scripts/serving-line.mjs";
import { createE2eDatabase, E2E_STORAGE } from "./postgres.js";
import {
  AckProjectionRequest,
  CreateSecretRequest,
  DeleteSecretRequest,
  GetRolloutRequest,
  GetSecretRequest,
  GrantAccessRequest,
  ListAuditEventsRequest,
  ListConsumersRequest,
  ListGrantsRequest,
  ListSecretsRequest,
  ProjectSecretsRequest,
  RevokeAccessRequest,
  RotateSecretRequest,
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
  rotateSecret: RotateSecretRequest,
  ackProjection: AckProjectionRequest,
  getRollout: GetRolloutRequest,
} as const;
export type Method = keyof typeof REQUESTS;

export interface Claims {
  tenant: string;
  sub: string;
  roles?: string[];
  meshes?: string[];
  ttlSec?: number;
}

/**
 * The server's clock. In process it is a ManualClock: advance() is instant. The
 * processes of --workers (SECRETD_E2E_WORKERS) keep the real clock (there is no flag
 * to hand them another), so there advance() waits that long for real.
 */
export interface TestClock {
  now(): number;
  advance(ms: number): Promise<void>;
  /**
   * A lifetime for a secret or grant that a test then lets run out with advance(): long
   * in process (free to pass, and a loaded box never lets it run out before the test's
   * own calls), short with workers (where passing it is a real wait).
   */
  readonly lapseMs: number;
}

function testClock(workers: boolean): { clock: TestClock; manual: ManualClock | undefined } {
  if (workers) {
    return { clock: { now: () => Date.now(), advance: (ms) => new Promise((r) => setTimeout(r, ms)), lapseMs: 400 }, manual: undefined };
  }
  const manual = new ManualClock();
  return {
    clock: {
      now: () => manual.now(),
      advance: async (ms) => manual.advance(ms),
      lapseMs: 5_000,
    },
    manual,
  };
}

export interface TestServer {
  readonly app: App;
  readonly clock: TestClock;
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

/** Worker processes for every test server of this run (0 or 1: in-process). */
export const E2E_WORKERS = Number(process.env.SECRETD_E2E_WORKERS ?? "0");

function lineSink(logs: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(...chunk.toString("utf8").split("\n").filter((l) => l !== ""));
      cb();
    },
  });
}

/** `secretd serve --workers N` as a child process; resolves once every worker serves. */
async function startWorkers(config: Config, workers: number, flags: Record<string, string>, logs: string[]): Promise<App> {
  const args = [path.resolve("dist/main.js"), "serve", "--workers", String(workers), "--listen", "127.0.0.1:0", "--log-level", config.logLevel];
  for (const [k, v] of Object.entries({ dataDir: config.dataDir, ...flags })) args.push(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, v);
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(lineSink(logs));
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setInterval(() => {
      const ready = logs.map(parseServingLine).find((s) => s?.kind === "primary" && s.port !== undefined);
      if (ready?.port !== undefined) {
        clearInterval(timer);
        resolve(ready.port);
      } else if (child.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`secretd --workers exited ${child.exitCode}: ${stderr}`));
      }
    }, 20);
  });
  const unavailable = (what: string) => () => {
    throw new Error(`app.${what} is not available with SECRETD_E2E_WORKERS`);
  };
  return {
    port,
    get devKeyCreated(): never {
      return unavailable("devKeyCreated")();
    },
    get storage(): never {
      return unavailable("storage")();
    },
    get keyring(): never {
      return unavailable("keyring")();
    },
    get watches(): never {
      return unavailable("watches")();
    },
    get plaintexts(): never {
      return unavailable("plaintexts")();
    },
    get answers(): never {
      return unavailable("answers")();
    },
    get audit(): never {
      return unavailable("audit")();
    },
    get metricsPort(): never {
      return unavailable("metricsPort")();
    },
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  } as App;
}

/** SECRETD_E2E_STORAGE=postgres: the database of each data dir of this test file. */
const e2eDatabases = new Map<string, string>();

export async function startTestServer(flags: Record<string, string> = {}): Promise<TestServer> {
  // SECRETD_E2E_STORAGE=postgres: every data dir gets its own database in the run's cluster;
  // a server restarted on a data dir (flags.dataDir) finds its data again.
  const ownDataDir = flags.dataDir === undefined;
  if (E2E_STORAGE === "postgres" && flags.databaseUrl === undefined) {
    const dir = flags.dataDir ?? mkdtempSync(path.join(os.tmpdir(), "secretd-e2e-"));
    let url = e2eDatabases.get(dir);
    if (url === undefined) e2eDatabases.set(dir, (url = await createE2eDatabase()));
    flags = { ...flags, dataDir: dir, databaseUrl: url };
  }
  const dataDir = flags.dataDir ?? mkdtempSync(path.join(os.tmpdir(), "secretd-e2e-"));
  const config = loadConfig({ listen: "127.0.0.1:0", dataDir, logLevel: "info", ...flags }, {});
  const logs: string[] = [];
  let app: App;
  // flags.workers (N > 1) asks for the process tree in this one test, as SECRETD_E2E_WORKERS does for all.
  const workers = flags.workers !== undefined ? Number(flags.workers) : E2E_WORKERS;
  const { clock, manual } = testClock(workers > 1);
  if (workers > 1) {
    const { dataDir: _dir, workers: _workers, ...rest } = flags;
    app = await startWorkers(config, workers, rest, logs);
  } else {
    const logger = pino({ level: config.logLevel, redact: { paths: REDACT_PATHS, censor: "[redacted]" } }, lineSink(logs));
    app = await startApp(config, logger, manual);
  }
  const address = `127.0.0.1:${app.port}`;
  const client = new SecretServiceClient(address, credentials.createInsecure());
  const secret = readHs256Secret(config.jwt.hs256SecretFile);

  return {
    app,
    clock,
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
    call: <Res>(method: Method, req: object, token?: string, md?: Metadata) => unaryCall<Res>(client, method, req, token, md),
    async stop() {
      client.close();
      await app.close(1000);
      if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Calls a unary method of `client` with a bearer token (a partial request, defaults filled); resolves the response or rejects a ServiceError. */
export function unaryCall<Res>(client: InstanceType<typeof SecretServiceClient>, method: Method, req: object, token?: string, md = new Metadata()): Promise<Res> {
  if (token !== undefined) md.set("authorization", `Bearer ${token}`);
  const full = (REQUESTS[method] as { fromPartial(o: object): unknown }).fromPartial(req);
  const fn = (client as unknown as Record<Method, (r: unknown, m: Metadata, cb: (e: ServiceError | null, r: Res) => void) => void>)[method];
  return new Promise<Res>((resolve, reject) => fn.call(client, full, md, (e, r) => (e ? reject(e) : resolve(r))));
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
