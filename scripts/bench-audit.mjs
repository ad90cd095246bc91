#!/usr/bin/env node
// `npm run bench:audit [-- --events=200000]`: what one audit event costs the server,
// in process, over the built dist/: recording it in the queue (what a call pays
// inline) and writing it in batches to SQLite (the flush, amortised per event), against
// a fresh database, with the batch size the server uses. Prints one JSON line at the end.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { AuditTrail } from "../dist/audit/audit-trail.js";
import { SqliteStorage } from "../dist/storage/sqlite/sqlite-storage.js";

const option = (name) => process.argv.slice(2).find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const EVENTS = Number(option("events") ?? 200_000);
const ROUNDS = Number(option("rounds") ?? 5);
const silent = { error() {}, warn() {}, info() {} };

function event(i) {
  return {
    tenant: `tenant-${i % 101}`,
    time: Date.now(),
    requestId: `0193b5f0-7c1e-7a2b-9c3d-${String(i).padStart(12, "0")}`,
    method: "GetSecret",
    sub: `svc-${i % 50}`,
    mesh: "default",
    name: `secret-${i % 1000}`,
    version: 1,
    keys: ["password"],
    code: "OK",
    peer: "127.0.0.1:50412",
  };
}

const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-bench-audit-"));
try {
  const storage = new SqliteStorage(path.join(dir, "secretd.db"));
  // A flush interval longer than the run: the benchmark flushes itself.
  const trail = new AuditTrail({ storage, logger: silent, retentionMs: 90 * 86_400_000, flushIntervalMs: 3_600_000, batchSize: 4096, maxQueue: EVENTS + 1 });
  const events = Array.from({ length: EVENTS }, (_, i) => event(i));
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    for (const e of events) trail.record(e);
    const t1 = performance.now();
    await trail.flush();
    const t2 = performance.now();
    rounds.push({ recordUs: ((t1 - t0) * 1000) / EVENTS, flushUs: ((t2 - t1) * 1000) / EVENTS });
  }
  await trail.close();
  await storage.close();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const recordUs = median(rounds.map((r) => r.recordUs));
  const flushUs = median(rounds.map((r) => r.flushUs));
  const out = { events: EVENTS, rounds: ROUNDS, recordUsPerEvent: +recordUs.toFixed(3), flushUsPerEvent: +flushUs.toFixed(3), totalUsPerEvent: +(recordUs + flushUs).toFixed(3) };
  console.log(`record (inline, per call): ${out.recordUsPerEvent} us/event; flush (batched, amortised): ${out.flushUsPerEvent} us/event; total ${out.totalUsPerEvent} us/event`);
  console.log(JSON.stringify(out));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
