// Durable creates on PostgreSQL through two replicas: `npm run build && node scripts/bench-pg-creates.mjs [--dist DIR] [--seconds N] [--pool N] [--commit-delay US]`.
// Two PostgresStorage instances (two replicas, --pool connections each, default 10) on one throw-away
// cluster with fsync on and synchronous_commit on; 64 concurrent writers insert secrets
// (a secret row and its first version, with MAC-sized bytes, and the feed's change) for
// N seconds; prints creates/s. This is the storage write path CreateSecret takes (the
// part the feed lock serialized), without gRPC, crypto or the audit queue. --dist points
// at another build (e.g. main's) to measure before/after on the same machine. --commit-delay
// sets the cluster's commit_delay (µs, with commit_siblings 5): PostgreSQL's group commit.
// Prints the CPU this process (both replicas) and the cluster's processes used per create.
import { randomUUID } from "node:crypto";
import os from "node:os";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { startPostgres } from "./postgres-cluster.mjs";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : process.argv[i + 1];
};
const dist = path.resolve(arg("dist", "dist"));
const seconds = Number(arg("seconds", "5"));
const poolSize = Number(arg("pool", "10"));
const commitDelay = arg("commit-delay", undefined);
const { PostgresStorage } = await import(pathToFileURL(path.join(dist, "storage/postgres/postgres-storage.js")).href);

const cluster = await startPostgres({ fsync: true, ...(commitDelay ? { settings: { commit_delay: commitDelay, commit_siblings: 5 } } : {}) });
const stat = (pid) => readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
const pids = () => readdirSync("/proc").filter((d) => /^\d+$/.test(d));
/** The cluster's postmaster: the process started with its port. */
const postmaster = pids().find((pid) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").includes(`-p ${cluster.port} `);
  } catch {
    return false;
  }
});
/** CPU seconds used so far by the postmaster and its children (backends, WAL writer, …) still running. */
const pgCpu = () => {
  let ticks = 0;
  for (const pid of pids()) {
    try {
      const f = stat(pid);
      if (pid === postmaster || f[1] === postmaster) ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone
    }
  }
  return ticks / 100;
};
try {
  const url = await cluster.createDatabase();
  const replicas = [await PostgresStorage.open(url, { poolSize }), await PostgresStorage.open(url, { poolSize })];
  const mac = Buffer.alloc(32, 7);
  let n = 0;
  let stop = false;
  const create = async (st, i) => {
    const now = Date.now();
    const uid = randomUUID();
    const s = {
      uid, tenant: "bench", mesh: "default", name: `s-${i}-${uid}`, type: "Opaque", description: "", owner: "bench", labels: {}, annotations: {},
      immutable: false, version: 1, etag: randomUUID(), keys: ["k"], createTime: now, updateTime: now, expireTime: undefined, mac,
    };
    const v = { uid, version: 1, keys: ["k"], dek: Buffer.alloc(60, 1), payload: Buffer.alloc(64, 2), createTime: now, mac };
    if ((await st.insertSecret(s, v)) !== "ok") throw new Error("create failed");
  };
  // Warm up the pools.
  await Promise.all(Array.from({ length: 64 }, (_, i) => create(replicas[i % 2], -i)));
  const cpu0 = process.cpuUsage();
  const pg0 = pgCpu();
  const started = performance.now();
  setTimeout(() => (stop = true), seconds * 1000);
  await Promise.all(
    Array.from({ length: 64 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        await create(replicas[w % 2], w * 1e9 + i);
        n++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const nodeUs = ((cpu.user + cpu.system) / n).toFixed(0);
  const pgUs = (((pgCpu() - pg0) * 1e6) / n).toFixed(0);
  console.log(JSON.stringify({ dist, writers: 64, replicas: 2, poolSize, commitDelay: commitDelay ?? null, seconds: Number(elapsed.toFixed(2)), creates: n, createsPerSecond: Math.round(n / elapsed), nodeCpuUsPerCreate: Number(nodeUs), postgresCpuUsPerCreate: Number(pgUs), loadavg: os.loadavg().map((x) => Number(x.toFixed(2))) }));
  for (const r of replicas) await r.close();
} finally {
  cluster.stop();
}
