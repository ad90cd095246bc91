// Durable creates on PostgreSQL through two replicas: `npm run build && node scripts/bench-pg-creates.mjs [--dist DIR] [--seconds N]`.
// Two PostgresStorage instances (two replicas, default pool of 10 each) on one throw-away
// cluster with fsync on and synchronous_commit on; 64 concurrent writers insert secrets
// (a secret row and its first version, with MAC-sized bytes, and the feed's change) for
// N seconds; prints creates/s. This is the storage write path CreateSecret takes (the
// part the feed lock serialized), without gRPC, crypto or the audit queue. --dist points
// at another build (e.g. main's) to measure before/after on the same machine.
import { randomUUID } from "node:crypto";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { startPostgres } from "./postgres-cluster.mjs";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : process.argv[i + 1];
};
const dist = path.resolve(arg("dist", "dist"));
const seconds = Number(arg("seconds", "5"));
const { PostgresStorage } = await import(pathToFileURL(path.join(dist, "storage/postgres/postgres-storage.js")).href);

const cluster = await startPostgres({ fsync: true });
try {
  const url = await cluster.createDatabase();
  const replicas = [await PostgresStorage.open(url), await PostgresStorage.open(url)];
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
  console.log(JSON.stringify({ dist, writers: 64, replicas: 2, seconds: Number(elapsed.toFixed(2)), creates: n, createsPerSecond: Math.round(n / elapsed) }));
  for (const r of replicas) await r.close();
} finally {
  cluster.stop();
}
