#!/usr/bin/env node
// `npm run build && node scripts/bench-lease-renewal.mjs [--watches=1000 --sources=256]`:
// what one consumer-lease renewal costs on SQLite, over the built dist/, with that many
// watches each reading that many secrets (#27 item 5). Prints one JSON line.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { SqliteStorage } from "../dist/storage/sqlite/sqlite-storage.js";

const option = (name) => process.argv.slice(2).find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const WATCHES = Number(option("watches") ?? 1000);
const SOURCES = Number(option("sources") ?? 256);
const ROUNDS = 5;

const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-lease-bench-"));
const st = new SqliteStorage(path.join(dir, "db.sqlite"));
try {
  const uids = [];
  const t0 = Date.now();
  for (let i = 0; i < SOURCES; i++) {
    const uid = randomUUID();
    uids.push(uid);
    const secret = { uid, tenant: "t", mesh: "m", name: `s${i}`, type: "Opaque", description: "", owner: "o", labels: {}, annotations: {}, immutable: false, version: 1, etag: "e", keys: ["k"], createTime: t0, updateTime: t0, expireTime: undefined };
    await st.insertSecret(secret, { uid, version: 1, keys: ["k"], dek: new Uint8Array(8), payload: new Uint8Array(8), createTime: t0 });
  }
  await st.openReplica("r1", { now: Date.now(), expireTime: Date.now() + 25_000 });
  for (let w = 0; w < WATCHES; w++) {
    if (w % 100 === 0) await st.renewLeases("r1", { now: Date.now(), expireTime: Date.now() + 25_000 }, new Map()); // setup outlasts the ttl
    await st.putLeases({ watchId: `w${w}`, tenant: "t", sub: "app", roles: ["r"], revision: "", since: t0, replica: "r1" }, uids, Date.now());
  }
  const ms = [];
  let written = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const started = performance.now();
    written = await st.renewLeases("r1", { now: Date.now(), expireTime: Date.now() + 25_000 }, new Map());
    ms.push(Number((performance.now() - started).toFixed(2)));
  }
  const live = (await st.listLeases(uids[0], Date.now())).length;
  // The process holding them all ends: another's renewals prune its rows a chunk at a time.
  await st.deleteReplicaLeases("r1");
  await st.openReplica("r2", { now: Date.now(), expireTime: Date.now() + 25_000 });
  const pruningMs = [];
  for (let i = 0; i < ROUNDS; i++) {
    const started = performance.now();
    await st.renewLeases("r2", { now: Date.now(), expireTime: Date.now() + 25_000 }, new Map());
    pruningMs.push(Number((performance.now() - started).toFixed(2)));
  }
  console.log(JSON.stringify({ watches: WATCHES, sources: SOURCES, leases: WATCHES * SOURCES, renewalMs: ms, rowsWrittenPerRenewal: written, liveOnOneSecret: live, renewalWhilePruningDeadMs: pruningMs }));
} finally {
  await st.close();
  rmSync(dir, { recursive: true, force: true });
}
