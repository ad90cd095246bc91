// Per-read cost of the row-MAC checks, in-process (no gRPC): `npm run build && node scripts/bench-row-mac.mjs [N] [--postgres]`.
// Prints one JSON line. The machine is shared: take the median of the reps, and compare within one run.
// --postgres adds GetSecret's storage read on PostgreSQL (no read cache there: every read is checked),
// against a throw-away local cluster (scripts/postgres-cluster.mjs).
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { loadKeyring } from "../dist/crypto/keyring.js";
import { AuthenticatedStorage } from "../dist/domain/authenticated-storage.js";
import { openData, sealData } from "../dist/domain/barrier.js";
import { checkGrants, checkSecret, checkVersion } from "../dist/domain/row-macs.js";
import { PostgresStorage } from "../dist/storage/postgres/postgres-storage.js";
import { SqliteStorage } from "../dist/storage/sqlite/sqlite-storage.js";
import { startPostgres } from "./postgres-cluster.mjs";

const args = process.argv.slice(2);
const withPostgres = args.includes("--postgres");
const N = Number(args.find((a) => /^\d+$/.test(a)) ?? 20_000);
/** A PostgreSQL read is a round trip (~100 us or more): fewer calls per rep. */
const PG_DIVISOR = 20;
const REPS = 9;
const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-macbench-"));
const keys = loadKeyring(path.join(dir, "kek.json"), { create: true, warn: () => {} });
const raw = new SqliteStorage(path.join(dir, "secretd.db"));
const storage = new AuthenticatedStorage(raw, keys);
const now = Date.now();
const secret = {
  uid: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", tenant: "bench", mesh: "default", name: "get-1k", type: "Opaque",
  description: "a 1 KiB value", owner: "alice", labels: { app: "web", tier: "prod" }, annotations: { "kubesphere.io/alias": "get" },
  immutable: false, version: 1, etag: "AAAAAAAAAAAAAAAA", keys: ["v"], createTime: now, updateTime: now, expireTime: undefined,
};
const version = sealData(keys, secret, 1, new Map([["v", Buffer.alloc(1024, 7)]]), now);
await storage.insertSecret(secret, version);
for (const sub of ["bob", "carol"]) await storage.putGrant({ secretUid: secret.uid, subject: `user:${sub}`, level: 2, keys: [], expireTime: undefined, grantedBy: "alice", createTime: now });
const scope = { tenant: "bench", mesh: "default" };
// A page of 100 for ListSecrets, as in the full bench (listing reads SQLite, no read cache).
for (let i = 0; i < 100; i++) {
  const s = { ...secret, uid: `0193a1b2-c3d4-7e5f-8a9b-${String(i).padStart(12, "0")}`, name: `list-${String(i).padStart(4, "0")}`, mesh: "list" };
  await storage.insertSecret(s, sealData(keys, s, 1, new Map([["v", Buffer.alloc(64, 1)]]), now));
}
const listScope = { tenant: "bench", mesh: "list" };

let cluster;
let pgRaw;
let pgStorage;
if (withPostgres) {
  cluster = await startPostgres({ fsync: false });
  pgRaw = await PostgresStorage.open(await cluster.createDatabase());
  pgStorage = new AuthenticatedStorage(pgRaw, keys);
  await pgStorage.insertSecret(secret, version);
  for (const sub of ["bob", "carol"]) await pgStorage.putGrant({ secretUid: secret.uid, subject: `user:${sub}`, level: 2, keys: [], expireTime: undefined, grantedBy: "alice", createTime: now });
}
const page = { afterName: "", limit: 100 };

const found = await storage.readSecret(scope, "get-1k", 0); // now a frozen read-cache entry
const checkAll = () => {
  checkSecret(keys, found.secret);
  checkGrants(keys, found.secret.uid, found.grants, found.secret.grantsMac);
  checkVersion(keys, found.version);
};
let sink = 0;
// Each scenario: N calls, timed; scenarios run round-robin REPS times so load from other
// processes spreads over all of them alike. Reported: the fastest rep (closest to the
// cost on an idle core) and the median, in microseconds per call.
const scenarios = {
  check_secret_row: () => checkSecret(keys, found.secret),
  check_grant_set_2: () => checkGrants(keys, found.secret.uid, found.grants, found.secret.grantsMac),
  check_version_row: () => checkVersion(keys, found.version),
  check_all_per_read: checkAll,
  // For scale, in the same run: opening the 1 KiB value (data key from the cache), which every GetSecret does.
  open_1k_value: () => (sink += openData(keys, found.secret, found.version).size),
  read_cached_backend: async () => (sink += (await raw.readSecret(scope, "get-1k", 0)).latestVersion),
  read_cached_checked_once: async () => (sink += (await storage.readSecret(scope, "get-1k", 0)).latestVersion),
  list_page_100_backend: async () => (sink += (await raw.listSecrets(listScope, page)).length),
  list_page_100_checked: async () => (sink += (await storage.listSecrets(listScope, page)).length),
  ...(withPostgres
    ? {
        pg_read_backend: async () => (sink += (await pgRaw.readSecret(scope, "get-1k", 0)).latestVersion),
        pg_read_checked: async () => (sink += (await pgStorage.readSecret(scope, "get-1k", 0)).latestVersion),
      }
    : {}),
};
const runs = Object.fromEntries(Object.keys(scenarios).map((k) => [k, []]));
for (let r = 0; r < REPS; r++) {
  for (const [name, fn] of Object.entries(scenarios)) {
    const t0 = performance.now();
    const n = name.startsWith("list_") ? Math.ceil(N / 100) : name.startsWith("pg_") ? Math.ceil(N / PG_DIVISOR) : N;
    for (let i = 0; i < n; i++) {
      const p = fn();
      if (p instanceof Promise) await p;
    }
    runs[name].push(((performance.now() - t0) * 1000) / n);
  }
}
const result = { n: N, reps: REPS, loadavg_1m: os.loadavg()[0] };
for (const [name, xs] of Object.entries(runs)) {
  xs.sort((a, b) => a - b);
  result[`us_${name}`] = { min: Number(xs[0].toFixed(2)), median: Number(xs[Math.floor(xs.length / 2)].toFixed(2)) };
}
result.sink = sink > 0;
await storage.close();
await pgStorage?.close();
cluster?.stop();
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify(result));
