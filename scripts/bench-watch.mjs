// `node scripts/bench-watch.mjs [--quick] [--keep] [--postgres] [--cross-watchers=N] [--idle-only] [--bare[=h2]] [--idle-per-secret=N] [--grpcio] [--heap-snapshot]`
// (after `npm run build`; `npm run bench` and `npm run bench:watch` run it)
//
// SPEC §9 watch budgets, against a fresh secretd (scripts/bench-server.mjs: startApp,
// logging ON at info into a file) in its own process, loaded by forked client processes
// (scripts/bench-watch-client.mjs), each stream on one of many separate HTTP/2 connections:
//   1. idle: RSS of the server before and after opening 10,000 WatchProjection streams
//      (10 tenants × 10 secrets × 100 watchers), every stream past its first message,
//      3 s after the last one opened and again 30 s later (settled);
//   2. fan-out: 1,000 watchers of one secret; UPDATES updates, each value stamped with the
//      time just before its UpdateSecret call; latency = stamp → message at a watcher
//      (20,000 samples: p50, p99, max);
//   3. across processes: a second server process on the same SQLite file; 100 watchers
//      on it, updates through the first (the change feed's data_version path).
// --postgres adds, in the same run: two replicas on one throw-away PostgreSQL cluster
// (scripts/postgres-cluster.mjs via scripts/bench/process.mjs, fsync on), 100 watchers on
// replica B, the stamped updates through replica A (NOTIFY and the feed read); its rounds
// alternate with SQLite's phase 3 so both meet the same load; the ratio PG ÷ SQLite and
// SPEC §9's "≤ 1 s across replicas" for both (`npm run bench -- --postgres` passes it on).
// --grpcio instead: idle watches as a C-core client opens them (Python grpcio, Debian
// python3-grpcio, installed with apt-get when missing and possible; scripts/bench-watch-grpcio.py):
// 5,000 idle watches over 20 connections, without and with a client deadline (one hour),
// each against a fresh server; KiB of server RSS per watch for both.
// Every process it starts is killed on exit; loads only hit 127.0.0.1. The last line
// printed is one JSON object with the results.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { credentials, Metadata } from "@grpc/grpc-js";
import { readHs256Secret } from "../dist/auth/keys.js";
import { mintToken } from "../dist/auth/mint.js";
import { CreateSecretRequest, GetSecretRequest, ProjectSecretsRequest, SecretServiceClient, UpdateSecretRequest } from "../dist/gen/secrets/v1/secrets.js";
import { haveOrInstall, machine, memoryMb, NODE_FLAGS, round, summarize, summarizeProfile } from "./bench-lib.mjs";
import { benchDatabase, forkScript, guardRun, makeRunDir, onceMessage, SCRIPTS, startServer as startBenchServer, track } from "./bench/process.mjs";

const argv = process.argv.slice(2);
const QUICK = argv.includes("--quick");
const KEEP = argv.includes("--keep");
/** --postgres: phase 3 also across two replicas on one PostgreSQL database (see above). */
const POSTGRES = argv.includes("--postgres");
/**
 * --bare: the idle phase against scripts/bench-watch-echo.mjs, a server with no auth,
 * storage or hub: grpc-js alone; --bare=h2: the same with secretd's node:http2 stream
 * route (the floor secretd's WatchProjection builds on).
 */
const BARE_H2 = argv.includes("--bare=h2");
const BARE = BARE_H2 || argv.includes("--bare");
/** --profile: a CPU profile of the server during the fan-out updates, summarised in the JSON. */
const PROFILE = argv.includes("--profile");
/** --heap-snapshot: the server's heap before the idle watches and after them (past a full GC), in the run dir (with --keep). */
const HEAP_SNAPSHOT = argv.includes("--heap-snapshot");
const FANOUT_SPOTS = [
  { label: "WatchHub evaluate (one watcher re-projected and sent)", fn: "#evaluate", url: "/dist/watch/watch-hub.js" },
  { label: "  readProjection", fn: "readProjection", url: "/dist/domain/projection.js" },
  { label: "    openData (decrypt)", fn: "openData", url: "/dist/domain/barrier.js" },
  { label: "    projectionRevision (SHA-256)", fn: "projectionRevision", url: "/dist/domain/projection.js" },
  { label: "  sink send (grpc-js write + serialise)", fn: "send", url: "/dist/transport/grpc/watch-projection.js" },
  { label: "UpdateSecret", fn: "update", url: "/dist/domain/secrets.js" },
];
const TENANTS = 10;
const SECRETS_PER_TENANT = 10;
const IDLE_PER_SECRET = Number(argv.find((x) => x.startsWith("--idle-per-secret="))?.split("=")[1] ?? (QUICK ? 10 : 100)); // 10,000 idle watches (1,000 with --quick)
const FANOUT = QUICK ? 200 : 1_000;
const UPDATES = QUICK ? 5 : 20;
const CROSS_WATCHERS = Number(argv.find((x) => x.startsWith("--cross-watchers="))?.split("=")[1] ?? 100);
/** Rounds of phase 3 (each UPDATES updates to fresh watchers); with --postgres, SQLite's and PostgreSQL's alternate. */
const CROSS_ROUNDS = POSTGRES ? (QUICK ? 2 : 3) : 1;
const CLIENT_PROCS = 4;
const PER_CHANNEL = 200; // the server allows 256 concurrent streams per connection
const MESH = "default";
const VALUE_BYTES = 1024;

const say = (msg) => process.stderr.write(`[bench-watch] ${msg}\n`);
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Process hygiene: scripts/bench/process.mjs.
guardRun({ deadlineMs: 15 * 60_000, keep: KEEP, say });
const tmp = makeRunDir("secretd-bench-watch-");

/** secretd (scripts/bench-server.mjs, on PostgreSQL at `databaseUrl` when given) or, with --bare, the watch echo server. */
async function startServer(name, { dataDir = path.join(tmp, "data"), databaseUrl } = {}) {
  if (!BARE) return startBenchServer(dataDir, path.join(tmp, `${name}.log`), databaseUrl);
  const env = { DATA_DIR: dataDir, LOG_FILE: path.join(tmp, `${name}.log`), WATCH_ECHO_ROUTE: BARE_H2 ? "h2" : "" };
  const child = forkScript("bench-watch-echo.mjs", env, { execArgv: NODE_FLAGS, stdout: "inherit" });
  const m = await onceMessage(child, (x) => x?.ready, 30_000, `${name} start`);
  return { child, port: m.port, pid: m.pid };
}

/** Tokens of the bench's TENANTS tenants, signed with the dev key of `dataDir` (--bare: any key, nothing checks them). */
function tenantTokens(dataDir, ttlSec) {
  const key = BARE ? Buffer.alloc(32, 1) : readHs256Secret(path.join(dataDir, "jwt-dev.key"));
  return Promise.all([...Array(TENANTS).keys()].map((t) => mintToken({ secret: key, tenant: `t${t}`, sub: "bench", roles: ["tenant-admin"], ttlSec })));
}

async function serverMem(server) {
  const m = onceMessage(server.child, (x) => x?.mem !== undefined, 10_000, "server memory");
  server.child.send({ cmd: "mem" });
  return (await m).mem;
}

/** A full GC in the server, then its RSS: what idle watches hold once the garbage of opening them is gone. */
async function rssAfterGc(server) {
  const done = onceMessage(server.child, (x) => x?.gcDone, 30_000, "server gc");
  server.child.send({ cmd: "gc" });
  await done;
  await sleep(1000);
  return memoryMb(server.pid).rss;
}

/** A heap snapshot of the server (bench-server.mjs writes it; V8 collects garbage first), named `label`. */
async function heapSnapshot(server, label) {
  const file = path.join(tmp, `${label}.heapsnapshot`);
  const done = onceMessage(server.child, (x) => x?.heapSnapshot !== undefined, 120_000, "heap snapshot");
  server.child.send({ cmd: "heap-snapshot", file });
  await done;
  say(`heap snapshot: ${file}`);
}

async function startClients(n) {
  const procs = [];
  for (let i = 0; i < n; i++) {
    const child = forkScript("bench-watch-client.mjs", {}, { stdout: "inherit" });
    await onceMessage(child, (x) => x?.ready, 10_000, "client start");
    procs.push(child);
  }
  return procs;
}

async function openOn(child, job) {
  const reply = onceMessage(child, (x) => x?.opened !== undefined, 120_000, "open watches");
  child.send({ cmd: "open", perChannel: PER_CHANNEL, ...job });
  const m = await reply;
  if (m.errors > 0) throw new Error(`${m.errors} watches failed to open`);
  return m.opened;
}

async function report(procs) {
  const all = await Promise.all(
    procs.map((c) => {
      const r = onceMessage(c, (x) => x?.latencies !== undefined, 30_000, "report");
      c.send({ cmd: "report" });
      return r;
    }),
  );
  return { latencies: all.flatMap((r) => r.latencies), errors: all.reduce((a, r) => a + r.errors, 0) };
}

async function closeClients(procs) {
  await Promise.all(
    procs.map((c) => {
      const exited = new Promise((r) => c.once("exit", r));
      c.send({ cmd: "close" });
      return exited;
    }),
  );
}

function unary(client, method, req, token) {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve, reject) => client[method](req, md, (e, r) => (e ? reject(e) : resolve(r))));
}

const stamped = () => `t=${now()};`.padEnd(VALUE_BYTES, "x");

/**
 * UPDATES stamped updates of one secret, `gapMs` apart (so each is its own change, not a
 * coalesced burst); resolves to each one's stamp → answer time (the writer's part of the latency).
 */
async function stampedUpdates(client, token, name, gapMs) {
  let etag = (await unary(client, "getSecret", GetSecretRequest.fromPartial({ mesh: MESH, name }), token)).etag;
  const acks = [];
  for (let i = 0; i < UPDATES; i++) {
    const value = stamped();
    const req = UpdateSecretRequest.fromPartial({ mesh: MESH, name, etag, stringData: { v: value }, updateMask: ["data"] });
    etag = (await unary(client, "updateSecret", req, token)).etag;
    acks.push(now() - Number(/^t=([0-9.]+);/.exec(value)[1]));
    await sleep(gapMs);
  }
  return acks;
}

/** One round of phase 3: CROSS_WATCHERS fresh watchers of "cross" on `watchPort`, UPDATES stamped updates through `client`. */
async function crossRound({ watchPort, client, token }) {
  const procs = await startClients(1);
  await openOn(procs[0], { port: watchPort, token, req: { mesh: MESH, items: [{ name: "cross" }] }, count: CROSS_WATCHERS });
  await sleep(500);
  const acks = await stampedUpdates(client, token, "cross", 200);
  await sleep(1500);
  const r = await report(procs);
  await closeClients(procs);
  return { ...r, acks };
}

const GRPCIO_WATCHES = QUICK ? 1_000 : 5_000;
const GRPCIO_CONNECTIONS = 20;
/** After the 3 s reading (the idle phase's), this much more idle time before the settled one. */
const GRPCIO_SETTLE_S = 30;
/** Debian's python3-grpcio is for Debian's interpreter, whatever else is first on PATH (pyenv). */
const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

/** Opens `jobs` from one Python grpcio process; resolves { opened, errors, proc } once every stream has its first message. */
function grpcioOpen(port, jobs, timeoutS) {
  const proc = spawn(PYTHON, [path.join(SCRIPTS, "bench-watch-grpcio.py")], { stdio: ["pipe", "pipe", "inherit"] });
  track(proc, "grpcio client");
  proc.stdin.write(`${JSON.stringify({ port, connections: GRPCIO_CONNECTIONS, timeout_s: timeoutS, jobs })}\n`);
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("grpcio client: no answer in 180 s")), 180_000);
    proc.stdout.on("data", (d) => {
      out += d;
      if (!out.includes("\n")) return;
      clearTimeout(timer);
      resolve({ ...JSON.parse(out), proc });
    });
    proc.once("exit", (code) => reject(new Error(`grpcio client exited (${code})`)));
  });
}

/** --grpcio: idle watches from a C-core client, without and with a deadline, each on a fresh server. */
async function grpcioIdle() {
  if (!haveOrInstall(PYTHON, "python3-grpcio", say, ["-c", "import grpc"])) throw new Error("Python grpcio not available: apt-get install python3-grpcio");
  const results = { machine: machine(), loadavg_start: os.loadavg().map((x) => round(x)), grpcio: {} };
  const perSecret = GRPCIO_WATCHES / (TENANTS * SECRETS_PER_TENANT);
  for (const [label, timeoutS] of [["no_deadline", 0], ["deadline", 3600]]) {
    const server = await startServer(`secretd-grpcio-${label}`);
    const tokens = await tenantTokens(path.join(tmp, "data"), 7200);
    const client = new SecretServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    const jobs = [];
    for (let t = 0; t < TENANTS; t++) {
      for (let i = 0; i < SECRETS_PER_TENANT; i++) {
        await unary(client, "createSecret", CreateSecretRequest.fromPartial({ mesh: MESH, name: `idle-${i}`, stringData: { v: "v".repeat(VALUE_BYTES) } }), tokens[t]);
        const req = Buffer.from(ProjectSecretsRequest.encode(ProjectSecretsRequest.fromPartial({ mesh: MESH, items: [{ name: `idle-${i}` }] })).finish());
        jobs.push({ token: tokens[t], request_hex: req.toString("hex"), count: perSecret });
      }
    }
    client.close();
    await sleep(2000);
    const before = memoryMb(server.pid);
    const memBefore = await serverMem(server);
    const t0 = now();
    const { opened, errors, proc } = await grpcioOpen(server.port, jobs, timeoutS);
    const openS = (now() - t0) / 1000;
    await sleep(3000);
    const after = memoryMb(server.pid);
    const mem = await serverMem(server);
    // Idle: no forced GC, V8's own (its memory reducer runs once allocation stops).
    await sleep(GRPCIO_SETTLE_S * 1000);
    const settled = memoryMb(server.pid);
    const afterGc = await rssAfterGc(server);
    const memGc = await serverMem(server);
    proc.stdin.end();
    await new Promise((r) => proc.once("exit", r));
    server.child.send({ cmd: "stop" });
    await new Promise((r) => server.child.once("exit", r));
    rmSync(path.join(tmp, "data"), { recursive: true, force: true });
    const r = {
      watches: opened,
      errors,
      connections: GRPCIO_CONNECTIONS,
      timeout_s: timeoutS,
      open_seconds: round(openS),
      rss_before_mb: round(before.rss, 1),
      rss_after_mb: round(after.rss, 1),
      kib_per_watch: round(((after.rss - before.rss) * 1024) / opened, 2),
      settle_s: GRPCIO_SETTLE_S,
      rss_settled_mb: round(settled.rss, 1),
      kib_per_watch_settled: round(((settled.rss - before.rss) * 1024) / opened, 2),
      rss_after_gc_mb: round(afterGc, 1),
      kib_per_watch_after_gc: round(((afterGc - before.rss) * 1024) / opened, 2),
      heap_used_mb: [memBefore.heapUsed, mem.heapUsed, memGc.heapUsed],
      external_mb: [memBefore.external, mem.external],
    };
    results.grpcio[label] = r;
    say(`grpcio ${label}: ${opened} watches (${errors} errors) in ${r.open_seconds} s; server RSS ${r.rss_before_mb} → ${r.rss_after_mb} MiB: ${r.kib_per_watch} KiB a watch; idle ${GRPCIO_SETTLE_S} s more ${r.rss_settled_mb} MiB: ${r.kib_per_watch_settled} KiB; after a full GC ${r.rss_after_gc_mb} MiB: ${r.kib_per_watch_after_gc} KiB`);
    if (opened !== GRPCIO_WATCHES) throw new Error(`opened ${opened} of ${GRPCIO_WATCHES}`);
  }
  results.loadavg_end = os.loadavg().map((x) => round(x));
  // The budget reads RSS once the server has idled (no forced GC); the 3 s reading is kept for comparison with the idle phase.
  results.budgets = { grpcio_idle_le_10kib_per_watch: Object.values(results.grpcio).every((r) => r.kib_per_watch_settled <= 10) };
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

async function main() {
  if (argv.includes("--grpcio")) return grpcioIdle();
  say(`machine: ${JSON.stringify(machine())}; load average ${os.loadavg().map((x) => round(x)).join(" ")}`);
  const a = await startServer("secretd-a");
  const tokens = await tenantTokens(path.join(tmp, "data"), 3600);
  const client = new SecretServiceClient(`127.0.0.1:${a.port}`, credentials.createInsecure());
  for (let t = 0; t < TENANTS && !BARE; t++) {
    for (let i = 0; i < SECRETS_PER_TENANT; i++) {
      await unary(client, "createSecret", CreateSecretRequest.fromPartial({ mesh: MESH, name: `idle-${i}`, stringData: { v: "v".repeat(VALUE_BYTES) } }), tokens[t]);
    }
  }
  for (const name of BARE ? [] : ["hot", "cross"]) {
    await unary(client, "createSecret", CreateSecretRequest.fromPartial({ mesh: MESH, name, stringData: { v: stamped() } }), tokens[0]);
  }
  const results = { machine: machine(), loadavg_start: os.loadavg().map((x) => round(x)) };

  // 1. idle watches
  const idleTotal = TENANTS * SECRETS_PER_TENANT * IDLE_PER_SECRET;
  await sleep(2000);
  if (HEAP_SNAPSHOT) await heapSnapshot(a, "idle-before");
  const before = memoryMb(a.pid);
  const memBefore = await serverMem(a);
  let procs = await startClients(CLIENT_PROCS);
  const jobs = [];
  for (let t = 0; t < TENANTS; t++) for (let i = 0; i < SECRETS_PER_TENANT; i++) jobs.push({ port: a.port, token: tokens[t], req: { mesh: MESH, items: [{ name: `idle-${i}` }] }, count: IDLE_PER_SECRET });
  const t0 = now();
  let opened = 0;
  await Promise.all(
    procs.map(async (c, p) => {
      for (let j = p; j < jobs.length; j += procs.length) {
        const n = await openOn(c, jobs[j]);
        opened += n;
      }
    }),
  );
  const openS = (now() - t0) / 1000;
  await sleep(3000);
  const after = memoryMb(a.pid);
  const memAfter = await serverMem(a);
  // As the grpcio case: the same watches GRPCIO_SETTLE_S later, once the server has had
  // the chance to collect the burst's garbage by itself (src/idle-gc.ts).
  await sleep(GRPCIO_SETTLE_S * 1000);
  const settled = memoryMb(a.pid);
  const afterGc = BARE ? NaN : await rssAfterGc(a);
  if (HEAP_SNAPSHOT) await heapSnapshot(a, "idle-after");
  results.idle = {
    watches: opened,
    open_seconds: round(openS),
    rss_before_mb: round(before.rss, 1),
    rss_after_mb: round(after.rss, 1),
    extra_rss_mb: round(after.rss - before.rss, 1),
    extra_kb_per_watch: round(((after.rss - before.rss) * 1024) / opened, 2),
    settle_s: GRPCIO_SETTLE_S,
    rss_settled_mb: round(settled.rss, 1),
    extra_rss_mb_settled: round(settled.rss - before.rss, 1),
    extra_kb_per_watch_settled: round(((settled.rss - before.rss) * 1024) / opened, 2),
    extra_kb_per_watch_after_gc: BARE ? undefined : round(((afterGc - before.rss) * 1024) / opened, 2),
    heap_used_mb: [memBefore.heapUsed, memAfter.heapUsed],
    heap_total_mb: [memBefore.heapTotal, memAfter.heapTotal],
    external_mb: [memBefore.external, memAfter.external],
    array_buffers_mb: [memBefore.arrayBuffers, memAfter.arrayBuffers],
  };
  say(`idle: ${opened} watches opened in ${round(openS)} s; server RSS ${round(before.rss, 1)} → ${round(after.rss, 1)} MiB (+${round(after.rss - before.rss, 1)}); ${GRPCIO_SETTLE_S} s later ${round(settled.rss, 1)} MiB (+${round(settled.rss - before.rss, 1)})`);
  if (opened !== idleTotal) throw new Error(`opened ${opened} of ${idleTotal}`);
  await closeClients(procs);
  if (argv.includes("--idle-only") || BARE) {
    process.stdout.write(`${JSON.stringify(results)}\n`);
    return;
  }
  await sleep(2000);

  // 2. one update → FANOUT watchers
  procs = await startClients(CLIENT_PROCS);
  const per = FANOUT / CLIENT_PROCS;
  await Promise.all(procs.map((c) => openOn(c, { port: a.port, token: tokens[0], req: { mesh: MESH, items: [{ name: "hot" }] }, count: per })));
  await sleep(1000);
  if (PROFILE) {
    const started = onceMessage(a.child, (x) => x?.profileStarted, 10_000, "profile start");
    a.child.send({ cmd: "profile-start", intervalUs: 250 });
    await started;
  }
  await stampedUpdates(client, tokens[0], "hot", 300);
  if (PROFILE) {
    const file = path.join(tmp, "fanout.cpuprofile");
    const written = onceMessage(a.child, (x) => x?.profileWritten, 30_000, "profile stop");
    a.child.send({ cmd: "profile-stop", file });
    await written;
    results.fanout_profile = summarizeProfile(JSON.parse(readFileSync(file, "utf8")), { top: 15, inclusive: FANOUT_SPOTS });
  }
  await sleep(2000);
  const fan = await report(procs);
  results.fanout = { watchers: FANOUT, updates: UPDATES, expected: FANOUT * UPDATES, ...summarize(fan.latencies), errors: fan.errors };
  say(`fan-out: ${fan.latencies.length}/${FANOUT * UPDATES} deliveries; p50 ${results.fanout.p50_ms} ms, p99 ${results.fanout.p99_ms} ms, max ${results.fanout.max_ms} ms`);
  await closeClients(procs);

  // 3. a write through one process reaches a watcher on another: on SQLite a second
  // process on the same file; with --postgres also two replicas of one database.
  const b = await startServer("secretd-b");
  const sides = [{ label: "sqlite", watchPort: b.port, client, token: tokens[0], servers: [a, b], latencies: [], acks: [], errors: 0, loadavg: [] }];
  if (POSTGRES) {
    const databaseUrl = await benchDatabase(say);
    const dataDir = path.join(tmp, "pg-data");
    // One after the other: the first creates the dev keys that both then share.
    const pa = await startServer("secretd-pg-a", { dataDir, databaseUrl });
    const pb = await startServer("secretd-pg-b", { dataDir, databaseUrl });
    const pgToken = (await tenantTokens(dataDir, 3600))[0];
    const pgClient = new SecretServiceClient(`127.0.0.1:${pa.port}`, credentials.createInsecure());
    await unary(pgClient, "createSecret", CreateSecretRequest.fromPartial({ mesh: MESH, name: "cross", stringData: { v: stamped() } }), pgToken);
    sides.push({ label: "postgres", watchPort: pb.port, client: pgClient, token: pgToken, servers: [pa, pb], latencies: [], acks: [], errors: 0, loadavg: [] });
  }
  for (let i = 0; i < CROSS_ROUNDS; i++) {
    for (const side of sides) {
      side.loadavg.push(round(os.loadavg()[0]));
      const r = await crossRound(side);
      side.latencies.push(...r.latencies);
      side.acks.push(...r.acks);
      side.errors += r.errors;
      say(`cross-process ${side.label} round ${i + 1}/${CROSS_ROUNDS}: ${r.latencies.length}/${CROSS_WATCHERS * UPDATES} deliveries; p50 ${summarize(r.latencies).p50_ms} ms, max ${summarize(r.latencies).max_ms} ms; load average ${side.loadavg.at(-1)}`);
    }
  }
  const crossSummary = (side) => ({ watchers: CROSS_WATCHERS, updates: UPDATES, rounds: CROSS_ROUNDS, expected: CROSS_WATCHERS * UPDATES * CROSS_ROUNDS, ...summarize(side.latencies), errors: side.errors, update_answered: summarize(side.acks), loadavg_1m: side.loadavg });
  results.cross_process = crossSummary(sides[0]);
  const cp = results.cross_process;
  say(`cross-process (SQLite, 2 processes, 1 file): ${cp.n}/${cp.expected} deliveries; p50 ${cp.p50_ms} ms, p99 ${cp.p99_ms} ms, max ${cp.max_ms} ms (UpdateSecret answered after p50 ${cp.update_answered.p50_ms} ms)`);
  if (POSTGRES) {
    const pg = crossSummary(sides[1]);
    const ratio = (k) => round(pg[k] / cp[k], 2);
    results.postgres = { cross_replica: pg, vs_sqlite: { p50: ratio("p50_ms"), p99: ratio("p99_ms"), max: ratio("max_ms") } };
    say(`cross-replica (PostgreSQL, 2 replicas, 1 database): ${pg.n}/${pg.expected} deliveries; p50 ${pg.p50_ms} ms, p99 ${pg.p99_ms} ms, max ${pg.max_ms} ms (UpdateSecret answered after p50 ${pg.update_answered.p50_ms} ms); ÷ SQLite: p50 ${ratio("p50_ms")}, p99 ${ratio("p99_ms")}, max ${ratio("max_ms")}`);
  }

  for (const side of sides) {
    if (side.client !== client) side.client.close();
    for (const s of side.servers) s.child.send({ cmd: "stop" });
  }
  client.close();
  results.loadavg_end = os.loadavg().map((x) => round(x));
  const withinSecond = (r) => r.max_ms <= 1000 && r.n === r.expected;
  results.budgets = {
    idle_extra_rss_le_100mb: results.idle.extra_rss_mb <= 100 * (idleTotal / 10_000),
    idle_settled_extra_rss_le_100mb: results.idle.extra_rss_mb_settled <= 100 * (idleTotal / 10_000),
    fanout_p99_le_500ms: results.fanout.p99_ms <= 500 && results.fanout.n === results.fanout.expected,
    cross_process_max_le_1s: withinSecond(results.cross_process),
    ...(POSTGRES ? { postgres_cross_replica_max_le_1s: withinSecond(results.postgres.cross_replica) } : {}),
  };
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    say(`failed: ${err?.stack ?? err}`);
    process.exit(1);
  },
);
