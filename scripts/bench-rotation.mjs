// `node scripts/bench-rotation.mjs [--consumers=1000] [--rotations=20] [--connections=20] [--workers 2] [--keep] [--check]`
// (after `npm run build`; `npm run bench:rotation` runs it)
//
// Issue #30 item 7: the time from RotateSecret to converged with 1,000 watching consumers
// (budget: p99 ≤ 2 s on this box) and what the ack costs per watch. A fresh secretd
// (scripts/bench-server.mjs: startApp, SQLite, logging on at info into a file; with
// --workers N `secretd serve --workers N` through the launcher) and `consumers`
// WatchProjection streams of one secret over `connections` HTTP/2 connections, opened by
// forked client processes (scripts/bench-watch-client.mjs) so their work does not starve
// the server. Two phases, one after the other, on the same watches:
//   1. not acking: `rotations` RotateSecret retire NEVER, each until every watch received
//      the new version (GetRollout polled every POLL_MS as in phase 2, so both carry it);
//   2. acking: every message acked as the sidecar acks it (its Acker, the message's
//      consumer_id and revision); `rotations` RotateSecret retire AFTER_ACK, one after
//      another, each timed from the call to GetRollout converged and to state DONE
//      (polled every POLL_MS), and to the last client's ack answered.
// The ack's cost: server CPU and RSS (every server process) in each phase, ack call
// latency, and the lease rows' bytes an ack writes (read from the database afterwards).
// --check: 5 consumers, 3 rotations, and the run fails unless phase 1 never converged and
// every rotation of phase 2 converged and reached DONE with no failed ack (the bench's own
// acks do count: test/e2e/bench-rotation.test.ts).
// Every process it starts is killed on exit; loads only hit 127.0.0.1 (port 0), files
// live in its own temp dir. The last line printed is one JSON object with the results.
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { credentials, Metadata } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { readHs256Secret } from "../dist/auth/keys.js";
import { mintToken } from "../dist/auth/mint.js";
import { CreateSecretRequest, GetRolloutRequest, GetSecretRequest, Retire, RotateSecretRequest, RotationState, SecretServiceClient } from "../dist/gen/secrets/v1/secrets.js";
import { DB_FILE } from "../dist/storage/open-storage.js";
import { startWorkersServer } from "./bench-box.mjs";
import { readFileSync } from "node:fs";
import { cpuSeconds, machine, memoryMb, NODE_FLAGS, round, summarize, summarizeProfile } from "./bench-lib.mjs";
import { clearDeadline, forkScript, guardRun, makeRunDir, onceMessage, track } from "./bench/process.mjs";

const { values: opt } = parseArgs({
  options: {
    consumers: { type: "string" },
    rotations: { type: "string" },
    connections: { type: "string" },
    workers: { type: "string", default: "0" },
    keep: { type: "boolean", default: false },
    check: { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
  },
});
const CHECK = opt.check;
/** --profile: a CPU profile of the server (one process only) during the acking phase, summarised in the JSON. */
const PROFILE = opt.profile && Number(opt.workers) === 0;
const CONSUMERS = Number(opt.consumers ?? (CHECK ? 5 : 1000));
const ROTATIONS = Number(opt.rotations ?? (CHECK ? 3 : 20));
const CONNECTIONS = Number(opt.connections ?? (CHECK ? 1 : 20));
const WORKERS = Number(opt.workers);
const CLIENT_PROCS = Math.min(4, CONNECTIONS);
const PER_CHANNEL = Math.ceil(CONSUMERS / CONNECTIONS);
const POLL_MS = 20;
const BUDGET_P99_MS = 2000;
// Short in --check, so a bench whose acks count for nothing fails in seconds, not minutes.
const ACK_TIMEOUT_S = CHECK ? 5 : 60;
const MESH = "default";
const NAME = "db";

const say = (msg) => process.stderr.write(`[bench-rotation] ${msg}\n`);
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const loadavg = () => os.loadavg().map((x) => round(x));

guardRun({ deadlineMs: 15 * 60_000, keep: opt.keep, say });
const tmp = makeRunDir("secretd-bench-rotation-");
const dataDir = path.join(tmp, "data");

/** The server: one process (bench-server.mjs), or the launcher's --workers; `pids` are every process that serves. */
async function startServer() {
  if (WORKERS > 0) {
    const srv = await startWorkersServer(dataDir, WORKERS, track);
    return { port: srv.port, pids: [srv.primaryPid, ...srv.workerPids], stop: () => srv.child.kill("SIGTERM") };
  }
  const child = forkScript("bench-server.mjs", { DATA_DIR: dataDir, LOG_FILE: path.join(tmp, "secretd.log") }, { execArgv: NODE_FLAGS, stdout: "inherit" });
  const m = await onceMessage(child, (x) => x?.ready, 30_000, "secretd start");
  return { child, port: m.port, pids: [m.pid], stop: () => child.send({ cmd: "stop" }) };
}

const cpuOf = (pids) => pids.reduce((a, p) => a + cpuSeconds(p), 0);
const rssOf = (pids) => pids.reduce((a, p) => a + memoryMb(p).rss, 0);

function unary(client, method, req, token) {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve, reject) => client[method](req, md, (e, r) => (e ? reject(e) : resolve(r))));
}

function ask(child, cmd, pred, timeoutMs, what) {
  const reply = onceMessage(child, pred, timeoutMs, what);
  child.send(cmd);
  return reply;
}

/** Resolves with the latest `at` once every client process reports every stream at `version` (acked, while acking). */
async function allReached(procs, version) {
  const r = await Promise.all(procs.map((c) => ask(c, { cmd: "await", version }, (x) => x?.reached === version, 120_000, `clients at version ${version}`)));
  return Math.max(...r.map((x) => x.at));
}

/** GetRollout of `version` every POLL_MS until `until(rollout)`; the time it first held for each of `marks`. */
async function pollRollout(client, token, version, t0, marks, stopWhen) {
  const seen = {};
  let polls = 0;
  for (;;) {
    const r = await unary(client, "getRollout", GetRolloutRequest.fromPartial({ mesh: MESH, name: NAME, version }), token);
    polls++;
    const t = now();
    for (const [k, pred] of Object.entries(marks)) if (seen[k] === undefined && pred(r)) seen[k] = t - t0;
    if (stopWhen(r, seen) || t - t0 > (ACK_TIMEOUT_S + 10) * 1000) return { seen, polls, last: r };
    await sleep(POLL_MS);
  }
}

async function rotate(client, token, retire) {
  const { etag } = await unary(client, "getSecret", GetSecretRequest.fromPartial({ mesh: MESH, name: NAME }), token);
  const t0 = now();
  const req = RotateSecretRequest.fromPartial({
    mesh: MESH,
    name: NAME,
    etag,
    generate: [{ key: "password", length: 32 }],
    retire,
    ...(retire === Retire.RETIRE_AFTER_ACK ? { ackTimeout: { seconds: ACK_TIMEOUT_S, nanos: 0 } } : {}),
  });
  const r = await unary(client, "rotateSecret", req, token);
  return { t0, version: Number(r.version) };
}

/** The lease rows after the run: how many, and the bytes of the columns an ack writes (applied_seq, _revision, _time, applied). */
function leaseRowBytes() {
  const db = new Database(path.join(dataDir, DB_FILE), { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare(
        `SELECT count(*) AS rows, avg(8 + length(applied_revision) + 8 + length(applied)) AS ack_bytes, avg(length(applied)) AS applied_bytes,
           avg(length(sent)) AS sent_bytes, sum(applied_revision <> '') AS acked_rows FROM consumer_watches`,
      )
      .get();
  } finally {
    db.close();
  }
}

async function main() {
  say(`machine: ${JSON.stringify(machine())}; load average ${loadavg().join(" ")}; ${CONSUMERS} consumers over ${CONNECTIONS} connections in ${CLIENT_PROCS} client processes; ${ROTATIONS} rotations a phase${WORKERS ? `; --workers ${WORKERS}` : ""}`);
  const results = { machine: machine(), loadavg_start: loadavg(), consumers: CONSUMERS, connections: CONNECTIONS, client_procs: CLIENT_PROCS, rotations: ROTATIONS, workers: WORKERS, storage: "sqlite" };
  const server = await startServer();
  const key = readHs256Secret(path.join(dataDir, "jwt-dev.key"));
  const token = await mintToken({ secret: key, tenant: "bench", sub: "app", roles: ["tenant-admin"], ttlSec: 7200 });
  const client = new SecretServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
  await unary(client, "createSecret", CreateSecretRequest.fromPartial({ mesh: MESH, name: NAME, stringData: { username: "app_a", password: "p".repeat(32) } }), token);

  const procs = [];
  for (let i = 0; i < CLIENT_PROCS; i++) {
    const child = forkScript("bench-watch-client.mjs", {}, { stdout: "inherit" });
    await onceMessage(child, (x) => x?.ready, 10_000, "client start");
    procs.push(child);
  }
  const t0 = now();
  await Promise.all(
    procs.map(async (c, i) => {
      const count = Math.floor(CONSUMERS / CLIENT_PROCS) + (i < CONSUMERS % CLIENT_PROCS ? 1 : 0);
      const m = await ask(c, { cmd: "open", port: server.port, token, req: { mesh: MESH, items: [{ name: NAME }] }, count, perChannel: PER_CHANNEL, track: NAME }, (x) => x?.opened !== undefined, 120_000, "open watches");
      if (m.errors > 0 || m.opened !== count) throw new Error(`${m.errors} watches failed to open`);
    }),
  );
  results.open_seconds = round((now() - t0) / 1000);
  // Every lease recorded (a live consumer) before measuring.
  while ((await unary(client, "getRollout", GetRolloutRequest.fromPartial({ mesh: MESH, name: NAME }), token)).consumers < CONSUMERS) await sleep(100);
  await sleep(2000);
  say(`${CONSUMERS} watches open in ${results.open_seconds} s`);

  const phase = async (acking) => {
    await Promise.all(procs.map((c) => ask(c, { cmd: "acking", on: acking }, (x) => x?.acking === acking, 10_000, "acking")));
    const cpu0 = cpuOf(server.pids);
    const rss0 = rssOf(server.pids);
    const t = { converged: [], done: [], clients: [], delivered: [] };
    let polls = 0;
    let convergedWithoutAcks = false;
    let failed = 0;
    const began = now();
    for (let i = 0; i < ROTATIONS; i++) {
      const { t0: start, version } = await rotate(client, token, acking ? Retire.RETIRE_AFTER_ACK : Retire.RETIRE_NEVER);
      const reached = allReached(procs, version).catch(() => NaN);
      let clientsAt = NaN;
      void reached.then((at) => (clientsAt = at));
      const p = await pollRollout(
        client,
        token,
        version,
        start,
        { converged: (r) => r.converged, done: (r) => r.state === RotationState.ROTATION_STATE_DONE },
        acking ? (r) => r.state !== RotationState.ROTATION_STATE_WAITING_FOR_ACKS && r.state !== RotationState.ROTATION_STATE_RETIRING : () => Number.isFinite(clientsAt),
      );
      polls += p.polls;
      // A rotation that never converged: its acks may never come; the clients get a few seconds.
      const at = await Promise.race([reached, sleep(acking && p.last.state !== RotationState.ROTATION_STATE_DONE ? 5_000 : 120_000).then(() => NaN)]);
      if (acking) {
        if (p.seen.converged === undefined || p.last.state !== RotationState.ROTATION_STATE_DONE) failed++;
        t.converged.push(p.seen.converged ?? NaN);
        t.done.push(p.seen.done ?? NaN);
        t.clients.push(at - start);
      } else {
        t.delivered.push(at - start);
        if (p.last.converged) convergedWithoutAcks = true;
      }
    }
    const seconds = (now() - began) / 1000;
    const cpu = cpuOf(server.pids) - cpu0;
    const out = {
      seconds: round(seconds),
      server_cpu_s: round(cpu, 3),
      server_cpu_ms_per_rotation: round((cpu * 1000) / ROTATIONS, 1),
      server_cpu_pct: round((cpu / seconds) * 100, 1),
      server_rss_mb: [round(rss0, 1), round(rssOf(server.pids), 1)],
      rollout_polls: polls,
    };
    if (acking) Object.assign(out, { rotations_not_done: failed, to_converged: summarize(t.converged), to_done: summarize(t.done), to_last_ack_answered: summarize(t.clients) });
    else Object.assign(out, { to_delivered_everywhere: summarize(t.delivered), converged_without_acks: convergedWithoutAcks });
    return out;
  };

  results.not_acking = await phase(false);
  say(`not acking: ${ROTATIONS} rotations (NEVER) delivered to all in p50 ${results.not_acking.to_delivered_everywhere.p50_ms} ms, p99 ${results.not_acking.to_delivered_everywhere.p99_ms} ms; server CPU ${results.not_acking.server_cpu_ms_per_rotation} ms a rotation; RSS ${results.not_acking.server_rss_mb.join(" → ")} MiB`);
  if (PROFILE) await ask(server.child, { cmd: "profile-start", intervalUs: 500 }, (x) => x?.profileStarted, 10_000, "profile start");
  results.acking = await phase(true);
  if (PROFILE) {
    const file = path.join(tmp, "acking.cpuprofile");
    await ask(server.child, { cmd: "profile-stop", file }, (x) => x?.profileWritten, 30_000, "profile stop");
    results.acking_profile = summarizeProfile(JSON.parse(readFileSync(file, "utf8")), {
      top: 20,
      inclusive: [
        { label: "Acks.ack", fn: "ack", url: "/dist/domain/acks.js" },
        { label: "  readWatch", fn: "readWatch", url: "/dist/storage/sqlite/sqlite-storage.js" },
        { label: "  recordAck", fn: "recordAck", url: "/dist/storage/sqlite/sqlite-storage.js" },
        { label: "countRollout", fn: "countRollout", url: "/dist/domain/rollout.js" },
        { label: "group commit flush", fn: "#flush", url: "/dist/storage/sqlite/group-commit.js" },
        { label: "WatchHub evaluate", fn: "#evaluate", url: "/dist/watch/watch-hub.js" },
        { label: "recordSent", fn: "recordSent", url: "/dist/storage/sqlite/sqlite-storage.js" },
      ],
    });
  }
  const a = results.acking;
  say(`acking: ${ROTATIONS} rotations (AFTER_ACK): to converged p50 ${a.to_converged.p50_ms} ms, p99 ${a.to_converged.p99_ms} ms, max ${a.to_converged.max_ms} ms; to DONE p50 ${a.to_done.p50_ms} ms, p99 ${a.to_done.p99_ms} ms, max ${a.to_done.max_ms} ms; server CPU ${a.server_cpu_ms_per_rotation} ms a rotation; RSS ${a.server_rss_mb.join(" → ")} MiB`);

  const reports = await Promise.all(procs.map((c) => ask(c, { cmd: "report" }, (x) => x?.acks !== undefined, 30_000, "report")));
  const ackMs = reports.flatMap((r) => r.acks);
  const ackErrors = reports.reduce((s, r) => s + r.ackErrors, 0);
  const watchErrors = reports.reduce((s, r) => s + r.errors, 0);
  const acksTotal = ackMs.length;
  const rows = leaseRowBytes();
  const extraCpuMs = (a.server_cpu_s - results.not_acking.server_cpu_s) * 1000;
  results.ack = {
    calls: acksTotal,
    errors: ackErrors,
    latency: summarize(ackMs),
    // Phase 2 minus phase 1 (same watches, rotations, value size): the acks, the driver's probes and the extra polls while waiting for them.
    extra_server_cpu_ms_per_rotation: round(extraCpuMs / ROTATIONS, 1),
    extra_server_cpu_us_per_ack: round((extraCpuMs * 1000) / Math.max(1, acksTotal), 1),
    extra_rss_mb: round(a.server_rss_mb[1] - results.not_acking.server_rss_mb[1], 1),
    // One UPDATE of the watch's own row (statements.ts watchAck) per ack; what it writes, from the rows.
    lease_rows: rows.rows,
    acked_rows: rows.acked_rows,
    rows_per_ack: 1,
    bytes_per_ack: round(rows.ack_bytes, 1),
    applied_json_bytes: round(rows.applied_bytes, 1),
    sent_json_bytes: round(rows.sent_bytes, 1),
  };
  results.watch_errors = watchErrors;
  say(`ack: ${acksTotal} calls (${ackErrors} failed), p50 ${results.ack.latency.p50_ms} ms, p99 ${results.ack.latency.p99_ms} ms; extra server CPU ${results.ack.extra_server_cpu_us_per_ack} µs an ack; ${results.ack.bytes_per_ack} bytes of one lease row an ack`);

  await Promise.all(procs.map((c) => new Promise((r) => (c.once("exit", r), c.send({ cmd: "close" })))));
  client.close();
  server.stop();
  results.loadavg_end = loadavg();
  results.budgets = { rotate_to_converged_p99_le_2s: a.to_converged.n === ROTATIONS && a.to_converged.p99_ms <= BUDGET_P99_MS && a.rotations_not_done === 0 };
  results.ok = results.budgets.rotate_to_converged_p99_le_2s;
  if (CHECK) {
    const problems = [];
    if (results.not_acking.converged_without_acks) problems.push("a rotation converged with no consumer acking");
    if (a.rotations_not_done > 0) problems.push(`${a.rotations_not_done} rotation(s) never converged and reached DONE`);
    if (ackErrors > 0) problems.push(`${ackErrors} ack(s) failed`);
    if (acksTotal < CONSUMERS * ROTATIONS) problems.push(`${acksTotal} acks for ${CONSUMERS * ROTATIONS} deliveries`);
    if (rows.acked_rows !== CONSUMERS) problems.push(`${rows.acked_rows} of ${CONSUMERS} lease rows record an ack`);
    if (watchErrors > 0) problems.push(`${watchErrors} watch error(s)`);
    results.check = { ok: problems.length === 0, problems };
  }
  clearDeadline();
  process.stdout.write(`${JSON.stringify(results)}\n`);
  return CHECK && !results.check.ok ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    say(`failed: ${err?.stack ?? err}`);
    process.exit(1);
  },
);
