// Per-read cost of the row-MAC checks, in-process (no gRPC): `npm run build && node scripts/bench-row-mac.mjs`.
// Prints one JSON line. The machine is shared: take the median of the reps, and compare within one run.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { loadKeyring } from "../dist/crypto/keyring.js";
import { AuthenticatedStorage } from "../dist/domain/authenticated-storage.js";
import { sealData } from "../dist/domain/barrier.js";
import { checkGrants, checkSecret, checkVersion } from "../dist/domain/row-macs.js";
import { SqliteStorage } from "../dist/storage/sqlite/sqlite-storage.js";

const N = Number(process.argv[2] ?? 50_000);
const REPS = 7;
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

function time(fn) {
  const runs = [];
  for (let r = 0; r < REPS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) fn();
    runs.push(((performance.now() - t0) * 1000) / N);
  }
  runs.sort((a, b) => a - b);
  return Number(runs[Math.floor(REPS / 2)].toFixed(3));
}

const found = await storage.readSecret(scope, "get-1k", 0); // now a frozen read-cache entry
const checkAll = () => {
  checkSecret(keys, found.secret);
  checkGrants(keys, found.secret.uid, found.grants, found.secret.grantsMac);
  checkVersion(keys, found.version);
};
const result = {
  n: N,
  reps: REPS,
  us_check_secret_row: time(() => checkSecret(keys, found.secret)),
  us_check_grant_set_2: time(() => checkGrants(keys, found.secret.uid, found.grants, found.secret.grantsMac)),
  us_check_version_row: time(() => checkVersion(keys, found.version)),
  us_check_all_per_read: time(checkAll),
};
// The storage read path (read-cache hit), without and with the wrapper (checked once per cached object).
let sink = 0;
const rawRead = async () => { for (let i = 0; i < N; i++) sink += (await raw.readSecret(scope, "get-1k", 0)).latestVersion; };
const wrappedRead = async () => { for (let i = 0; i < N; i++) sink += (await storage.readSecret(scope, "get-1k", 0)).latestVersion; };
async function timeAsync(fn) {
  const runs = [];
  for (let r = 0; r < REPS; r++) {
    const t0 = performance.now();
    await fn();
    runs.push(((performance.now() - t0) * 1000) / N);
  }
  runs.sort((a, b) => a - b);
  return Number(runs[Math.floor(REPS / 2)].toFixed(3));
}
result.us_read_cached_backend = await timeAsync(rawRead);
result.us_read_cached_checked_once = await timeAsync(wrappedRead);
result.sink = sink > 0;
await storage.close();
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify(result));
