// A load-generator process of `npm run bench`: raw node:http2 unary gRPC calls with
// pre-framed bodies (no grpc-js client, whose per-call cost caps one process near
// 2,000 calls/s here). Several of these run side by side.
// Started by scripts/bench.mjs with fork(); receives one job over IPC:
//   { mode: "fixed", port, path, token, body (base64 framed), expectBytes,
//     connections, concurrency, warmupMs, durationMs }
//   { mode: "create", port, connections, concurrency, valueBytes,
//     jobs: [{ token, mesh, prefix, start, count }], [warmupMs, durationMs] }
//   (with durationMs: timed, names past `count` too, only calls ending in the window count)
// answers { ready }, waits for { go }, then reports { result } and exits.
import http2 from "node:http2";
import { CreateSecretRequest } from "../dist/gen/secrets/v1/secrets.js";
import { connect, grpcFrame, grpcHeaders } from "./bench-lib.mjs";

const CREATE_PATH = "/secrets.v1.SecretService/CreateSecret";
const CALL_TIMEOUT_MS = 30_000;

function call(session, path, token, body) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let status = -1;
    let bytes = 0;
    let settled = false;
    const req = session.request(grpcHeaders(path, token));
    const timer = setTimeout(() => {
      req.close(http2.constants.NGHTTP2_CANCEL);
      finish();
    }, CALL_TIMEOUT_MS);
    function finish() {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, bytes, t0, t1: performance.now() });
    }
    const take = (h) => {
      if (h["grpc-status"] !== undefined) status = Number(h["grpc-status"]);
    };
    req.on("response", take);
    req.on("trailers", take);
    req.on("data", (c) => (bytes += c.length));
    req.on("end", finish);
    req.on("close", finish);
    req.on("error", finish);
    req.end(body);
  });
}

async function runFixed(job, sessions) {
  const body = Buffer.from(job.body, "base64");
  const start = performance.now();
  const mainStart = start + job.warmupMs;
  const end = mainStart + job.durationMs;
  const t = tally();
  let badSize = 0;
  async function worker(session) {
    // Bounded: stops at `end` (each call is itself bounded by CALL_TIMEOUT_MS).
    while (performance.now() < end) {
      const r = await call(session, job.path, job.token, body);
      if (r.t1 < mainStart || r.t1 > end) continue;
      t.record(r);
      if (r.status === 0 && job.expectBytes && r.bytes !== job.expectBytes) badSize++;
    }
  }
  await runWorkers(job.concurrency, sessions, worker);
  return { ...t.result(job.durationMs / 1000), badSize };
}

/** Counts outcomes and OK latencies of calls; `result` packs them for the parent. */
function tally() {
  const lat = [];
  let ok = 0;
  let failed = 0;
  const codes = {};
  return {
    record(r) {
      if (r.status === 0) {
        ok++;
        lat.push(r.t1 - r.t0);
      } else {
        failed++;
        codes[r.status] = (codes[r.status] ?? 0) + 1;
      }
    },
    result(seconds) {
      return { ok, failed, codes, seconds, latUs: Buffer.from(Uint32Array.from(lat, (x) => Math.round(x * 1000)).buffer).toString("base64") };
    },
  };
}

async function runWorkers(concurrency, sessions, worker) {
  const workers = [];
  for (let i = 0; i < concurrency; i++) workers.push(worker(sessions[i % sessions.length]));
  await Promise.all(workers);
}

async function runCreate(job, sessions) {
  const value = Buffer.alloc(job.valueBytes, 0x5a);
  const timed = job.durationMs !== undefined;
  // One queue of (job, index) pairs shared by the workers of this process.
  const queue = [];
  for (const j of job.jobs) queue.push({ j, next: j.start, end: timed ? Infinity : j.start + j.count });
  let qi = 0;
  const t = tally();
  const t0 = performance.now();
  // Timed: a warm-up (not counted), then the measured window; calls still running at its end finish uncounted.
  const mainStart = t0 + (job.warmupMs ?? 0);
  const end = timed ? mainStart + job.durationMs : Infinity;
  function take() {
    // Round-robin over the tenants so they fill together.
    for (let tries = 0; tries < queue.length; tries++) {
      const q = queue[qi];
      qi = (qi + 1) % queue.length;
      if (q.next < q.end) return { j: q.j, i: q.next++ };
    }
    return undefined;
  }
  async function worker(session) {
    for (let item = take(); item !== undefined && performance.now() < end; item = take()) {
      const name = `${item.j.prefix}${String(item.i).padStart(6, "0")}`;
      const msg = CreateSecretRequest.encode(
        CreateSecretRequest.fromPartial({ mesh: item.j.mesh, name, data: { value }, labels: { app: "bench", batch: item.j.prefix.replace(/[^a-z0-9]/g, "") || "x" } }),
      ).finish();
      const r = await call(session, CREATE_PATH, item.j.token, grpcFrame(msg));
      if (!timed || (r.t1 >= mainStart && r.t1 <= end)) t.record(r);
    }
  }
  await runWorkers(job.concurrency, sessions, worker);
  return t.result(timed ? job.durationMs / 1000 : (performance.now() - t0) / 1000);
}

process.on("disconnect", () => process.exit(0));
process.once("message", async (job) => {
  try {
    const sessions = [];
    for (let i = 0; i < job.connections; i++) sessions.push(await connect(job.port));
    process.send({ ready: true });
    await new Promise((resolve) => process.once("message", resolve));
    const result = job.mode === "create" ? await runCreate(job, sessions) : await runFixed(job, sessions);
    for (const s of sessions) s.close();
    process.send({ result }, () => process.exit(0));
  } catch (err) {
    process.send?.({ error: String(err?.stack ?? err) }, () => process.exit(1));
  }
});
