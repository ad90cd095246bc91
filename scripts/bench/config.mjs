// The settings of scripts/bench.mjs: its command-line flags, the fixed sizes of its runs,
// and its progress line (`say`).
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
export const option = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];

export const QUICK = flag("quick");
export const POSTGRES = flag("postgres");
export const KEEP = flag("keep");
export const PROFILE = QUICK ? flag("profile") : !flag("no-profile");
// --quick: 5,000 secrets, one short run per scenario (two for the one-at-a-time runs);
// it has to finish in under 60 s
// while CreateSecret is still one fsync per call (~450/s here).
export const BIG = Number(option("secrets") ?? (QUICK ? 5_000 : 100_000));
export const SMALL = 1_000;
export const CONCURRENCY = 64;
export const H2_CONNECTIONS = 4; // 64 concurrent calls = 4 connections × 16 streams
export const OPEN_LOOP_PER_CONNECTION = 100; // calls/s: h2load --rps sends one call per 10 ms tick at most
export const DURATION_S = Number(option("duration") ?? (QUICK ? 1.5 : 4));
export const WARMUP_S = QUICK ? 0.5 : 1;
export const REPS = Number(option("reps") ?? (QUICK ? 1 : 3));
export const QUIET_WAIT_S = QUICK ? 0.5 : 15;
export const FILL_PROCS = 2;
export const FILL_CONNECTIONS_PER_PROC = 2;
export const NODE_GEN_PROCS = 2;
export const FILLER_TENANTS = 100;
export const VALUE_BYTES = 1024;
export const PROJECT_VALUE_BYTES = 128;
export const LIST_SECRETS = 150;
export const MESH = "default";
// #32 added open-loop pairs and a capacity search: a quick run on a loaded box needs ~5 min.
export const DEADLINE_MS = QUICK ? 420_000 : 40 * 60_000;

export const SVC = "/secrets.v1.SecretService";
/** Where a call's time goes: inclusive time of these functions in the server profiles. */
export const PROFILE_SPOTS = [
  { label: "authenticate (bearer + verified-token cache)", fn: "authenticate", url: "/dist/transport/grpc/call.js" },
  { label: "Secrets.get", fn: "get", url: "/dist/domain/secrets.js" },
  { label: "Secrets.list", fn: "list", url: "/dist/domain/secrets.js" },
  { label: "Secrets.create", fn: "create", url: "/dist/domain/secrets.js" },
  { label: "projectSecrets", fn: "projectSecrets", url: "/dist/domain/projection.js" },
  { label: "  storage.readSecret (read cache, else one SQLite JOIN)", fn: "readSecret", url: "/dist/storage/sqlite/" },
  { label: "  storage.readSecrets (read cache, else one read transaction)", fn: "readSecrets", url: "/dist/storage/sqlite/" },
  { label: "  storage.listSecrets (SQLite)", fn: "listSecrets", url: "/dist/storage/sqlite/" },
  { label: "storage: group commit (batch transaction, COMMIT + fsync)", fn: "#flush", url: "/dist/storage/sqlite/group-commit.js" },
  { label: "  projectionRevision (SHA-256 over the values)", fn: "projectionRevision", url: "/dist/domain/projection.js" },
  { label: "  toSecret (row → object, JSON.parse)", fn: "toSecret", url: "/dist/storage/sqlite/" },
  { label: "  openData (unwrap DEK + decrypt, AES-GCM)", fn: "openData", url: "/dist/domain/barrier.js" },
  { label: "  sealData (new DEK + encrypt + wrap)", fn: "sealData", url: "/dist/domain/barrier.js" },
  { label: "toSecretMessage (domain → proto object)", fn: "toSecretMessage", url: "/dist/transport/grpc/convert.js" },
  { label: "log line per call (finish → pino)", fn: "finish", url: "/dist/transport/grpc/call.js" },
  { label: "response: grpc-js sendMetadata (headers)", fn: "sendMetadata", url: "@grpc/grpc-js" },
  { label: "response: serialize (ts-proto encode)", fn: "serializeMessage", url: "@grpc/grpc-js" },
  { label: "request: deserialize", fn: "deserializeMessage", url: "@grpc/grpc-js" },
  { label: "garbage collector", fn: "(garbage collector)" },
];
export const t0 = Date.now();
export const say = (msg) => process.stdout.write(`[bench ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
/**
 * Durable CreateSecret in steady state (SPEC §9): CREATE_WARMUP_S not counted (the loaders
 * and the server JIT-compile their create path), then CREATE_DURATION_S measured.
 */
export const CREATE_WARMUP_S = QUICK ? 2 : 3;
export const CREATE_DURATION_S = QUICK ? 3 : 8;
/**
 * A fresh --workers server: every worker JIT-compiles its own code (V8's compiler threads
 * count in its CPU), so a warm-up by wall time is not enough on a box shared with other
 * sessions. Warm until every worker has used BOX_WARMUP_CPU_S of CPU (at most BOX_WARMUP_MAX_S).
 */
export const BOX_WARMUP_S = QUICK ? 3 : 5;
export const BOX_WARMUP_CPU_S = QUICK ? 1.5 : 3;
export const BOX_WARMUP_MAX_S = QUICK ? 15 : 40;
export const BOX_REPS = Math.max(REPS, QUICK ? 2 : 3);
/** #32: open-loop tails are the median of this many interleaved pairs of runs (peer, secretd, …). */
export const OPEN_REPS = 3;
/** #32: the latency target of the capacity search (`slo_rps_*`), and its stepping. */
export const SLO_P99_MS = 10;
export const SLO_STEP = 1.3;
export const SLO_BISECT = QUICK ? 1 : 2;
/** A capacity step waits at most this long for a quiet box (the measured pairs wait QUIET_WAIT_S). */
export const SLO_QUIET_WAIT_S = QUICK ? 0.5 : 3;
