// Durable CreateSecret through two secretd replicas on one PostgreSQL database, with the
// CPU each process spends per create (#29 item 1's budget, ≥ 2,000/s with 64 writers):
//   npm run build && node scripts/bench-pg-replica-creates.mjs [--against DIR] [--rounds N] [--seconds S] [--warmup S] [--profile] [--socket]
// One throw-away cluster (scripts/postgres-cluster.mjs, fsync on, synchronous_commit on).
// A run: a fresh database and data dir, two servers (scripts/bench-server.mjs, the real
// startApp with bin/secretd's V8 flags, audit on), two Node loader processes
// (scripts/bench-loader.mjs, raw HTTP/2 gRPC), each with 32 concurrent CreateSecret calls
// to its own replica; after --warmup seconds, the CPU of every process is read from
// /proc/PID/stat across --seconds: each replica, the PostgreSQL processes (postmaster and
// its children: backends, WAL writer, …, summed) and the loaders, per create made in that
// window. With --against DIR (another checkout, built, e.g. `git archive main`), the
// servers of DIR and of this checkout take turns: A B, B A, A B, … (--rounds each), so a
// change is measured against its base on the same box under the same load.
// --profile: a CPU profile of this checkout's first replica across the window of its last
// run (its top functions, self and by category, are printed; the profiler costs CPU too);
// --profile-file FILE keeps it there (.cpuprofile, for Chrome DevTools). --socket: the
// replicas reach PostgreSQL through its Unix-domain socket instead of TCP on 127.0.0.1.
// The last line is one JSON object with every run.
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { fork } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { cpuSeconds, NODE_FLAGS, round, summarizeProfile } from "./bench-lib.mjs";
import { MESH, say, VALUE_BYTES } from "./bench/config.mjs";
import { nodeLoad } from "./bench/drivers.mjs";
import { guardRun, makeRunDir, onceMessage, SCRIPTS, stopChild, track } from "./bench/process.mjs";
import { minter } from "./bench/setup.mjs";
import { startPostgres } from "./postgres-cluster.mjs";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : process.argv[i + 1];
};
const here = path.resolve(SCRIPTS, "..");
const against = arg("against", undefined);
const rounds = Number(arg("rounds", "3"));
const seconds = Number(arg("seconds", "5"));
const warmup = Number(arg("warmup", "2"));
const profile = process.argv.includes("--profile") || arg("profile-file", undefined) !== undefined;
const profileCopy = arg("profile-file", undefined);
const socket = process.argv.includes("--socket");
const WRITERS = 64;
const LOADERS = 2;
const TENANTS = 8;
/** Inclusive time (with --profile) of the parts of a create on PostgreSQL. */
const SPOTS = [
  { label: "Secrets.create", fn: "create", url: "/dist/domain/secrets.js" },
  { label: "  sealData (new DEK + encrypt + wrap)", fn: "sealData", url: "/dist/domain/barrier.js" },
  { label: "  AuthenticatedStorage.insertSecret (row MACs)", fn: "insertSecret", url: "/dist/domain/authenticated-storage.js" },
  { label: "  PostgresStorage.runBatch (the batch statement)", fn: "runBatch", url: "/dist/storage/postgres/" },
  { label: "feed: #readOnce (read and publish)", fn: "#readOnce", url: "/dist/storage/postgres/" },
  { label: "feed: publish to subscribers", fn: "publish", url: "/dist/storage/change-feed.js" },
  { label: "feed: #notify", fn: "#notify", url: "/dist/storage/postgres/" },
  { label: "pg: Client.query", fn: "query", url: "pg/lib/client.js" },
  { label: "pg: parse a reply (handlePacket)", fn: "handlePacket", url: "pg-protocol" },
  { label: "audit: record an event", fn: "record", url: "/dist/audit/" },
  { label: "audit: append a batch (PostgreSQL)", fn: "append", url: "/dist/storage/postgres/" },
  { label: "authenticate", fn: "authenticate", url: "/dist/transport/grpc/call.js" },
  { label: "log line per call (finish → pino)", fn: "finish", url: "/dist/transport/grpc/call.js" },
  { label: "writev (sockets, files)", fn: "writev" },
  { label: "garbage collector", fn: "(garbage collector)" },
];

guardRun({ deadlineMs: 30 * 60_000, keep: false, say });
const tmpDir = makeRunDir("secretd-pgrc-");

/** The cluster's processes: the postmaster (started with its port) and its children. */
function postgresPids(port) {
  const pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  const postmaster = pids.find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").includes(`-p ${port} `);
    } catch {
      return false;
    }
  });
  const parent = (pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1];
    } catch {
      return undefined;
    }
  };
  return pids.filter((pid) => pid === postmaster || parent(pid) === postmaster);
}

/** CPU seconds so far of each group; postgres is read again each time (backends come and go). */
function sample(replicas, loaders, pgPort) {
  const sum = (pids) => pids.reduce((s, p) => s + (Number.isFinite(cpuSeconds(p)) ? cpuSeconds(p) : 0), 0);
  return { t: performance.now(), replicas: replicas.map((p) => cpuSeconds(p)), loaders: sum(loaders), postgres: sum(postgresPids(pgPort)) };
}

async function startReplica(root, env, name) {
  const child = track(fork(path.join(root, "scripts", "bench-server.mjs"), [], { env, execArgv: NODE_FLAGS, stdio: ["ignore", "inherit", "inherit", "ipc"] }), name);
  const m = await onceMessage(child, (x) => x?.ready, 60_000, `${name} start`);
  return { child, port: m.port, pid: child.pid };
}

async function run(cluster, label, root, seq, profiled) {
  const load = os.loadavg().map((x) => round(x, 2));
  const tcp = await cluster.createDatabase();
  const url = socket ? `${tcp}?host=${encodeURIComponent(cluster.socketDir)}` : tcp;
  const dataDir = path.join(tmpDir, `data-${seq}`);
  mkdirSync(dataDir, { mode: 0o700 });
  const env = (i) => ({ ...process.env, DATA_DIR: dataDir, LOG_FILE: path.join(tmpDir, `secretd-${seq}-${i}.log`), DATABASE_URL: url });
  // The first replica makes the data dir's keys and migrates; the second joins it.
  const a = await startReplica(root, env(0), `${label}-replica-0`);
  const b = await startReplica(root, env(1), `${label}-replica-1`);
  try {
    const mint = minter(dataDir);
    const tenants = await Promise.all(Array.from({ length: TENANTS }, async (_, i) => ({ token: await mint(`t-${i}`) })));
    const jobs = Array.from({ length: LOADERS }, (_, p) => ({
      mode: "create",
      port: [a, b][p % 2].port,
      connections: 2,
      concurrency: WRITERS / LOADERS,
      valueBytes: VALUE_BYTES,
      warmupMs: warmup * 1000,
      durationMs: seconds * 1000,
      jobs: tenants.filter((_, i) => i % LOADERS === p).map((t) => ({ token: t.token, mesh: MESH, prefix: `c${seq}-`, start: 0, count: 0 })),
    }));
    const loaders = [];
    let s0;
    let s1;
    const timers = [];
    const profileFile = path.join(tmpDir, `replica-${seq}.cpuprofile`);
    const result = await nodeLoad(jobs, (pid) => loaders.push(pid), () => {
      timers.push(
        setTimeout(() => {
          s0 = sample([a.pid, b.pid], loaders, cluster.port);
          if (profiled) a.child.send({ cmd: "profile-start", intervalUs: 250 });
        }, warmup * 1000),
      );
      timers.push(
        setTimeout(() => {
          s1 = sample([a.pid, b.pid], loaders, cluster.port);
          if (profiled) a.child.send({ cmd: "profile-stop", file: profileFile });
        }, (warmup + seconds) * 1000),
      );
    });
    timers.forEach(clearTimeout);
    if (profiled) {
      await onceMessage(a.child, (m) => m?.profileWritten, 60_000, "profile stop");
      if (profileCopy) copyFileSync(profileFile, profileCopy);
      const summary = summarizeProfile(JSON.parse(readFileSync(profileFile, "utf8")), { top: 25, inclusive: SPOTS });
      say(`profile of ${label}'s replica 0 (% of busy main-thread time)`);
      for (const e of summary.inclusive) say(`   incl ${String(e.pct).padStart(5)}%  ${e.fn}`);
      for (const e of summary.top_self.slice(0, 15)) say(`   self ${String(e.pct).padStart(5)}%  ${e.fn}`);
      for (const e of summary.by_category) say(`   cat  ${String(e.pct).padStart(5)}%  ${e.cat}`);
    }
    if (result.failed > 0) throw new Error(`${label}: ${result.failed} creates failed (${JSON.stringify(result.codes)})`);
    if (!s0 || !s1) throw new Error(`${label}: the load ended before its window`);
    const n = result.ok;
    const us = (d) => round((d * 1e6) / n, 0);
    const r = {
      label,
      root,
      loadavg: load,
      creates: n,
      creates_per_s: round(n / seconds, 0),
      cpu_us_per_create: {
        replica_0: us(s1.replicas[0] - s0.replicas[0]),
        replica_1: us(s1.replicas[1] - s0.replicas[1]),
        postgres: us(s1.postgres - s0.postgres),
        loaders: us(s1.loaders - s0.loaders),
      },
    };
    const c = r.cpu_us_per_create;
    c.total = c.replica_0 + c.replica_1 + c.postgres + c.loaders;
    say(`${label} (load ${load.join(" ")}): ${r.creates_per_s}/s; CPU µs/create replicas ${c.replica_0} + ${c.replica_1}, PostgreSQL ${c.postgres}, loaders ${c.loaders} = ${c.total}`);
    r.socket = socket;
    return r;
  } finally {
    await stopChild(a.child, "ipc");
    await stopChild(b.child, "ipc");
  }
}

const cluster = await startPostgres({ fsync: true });
process.on("exit", () => cluster.stop());
const runs = [];
try {
  const variants = against ? [["A", path.resolve(against)], ["B", here]] : [["B", here]];
  let seq = 0;
  for (let r = 0; r < rounds; r++) {
    // A B, then B A: neither always goes first.
    const order = r % 2 === 0 ? variants : [...variants].reverse();
    for (const [label, root] of order) runs.push(await run(cluster, label, root, seq++, profile && label === "B" && r === rounds - 1));
  }
  const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  const summary = {};
  for (const [label] of variants) {
    const mine = runs.filter((x) => x.label === label);
    summary[label] = {
      creates_per_s: median(mine.map((x) => x.creates_per_s)),
      ...Object.fromEntries(Object.keys(mine[0].cpu_us_per_create).map((k) => [k, median(mine.map((x) => x.cpu_us_per_create[k]))])),
    };
    say(`${label} median: ${JSON.stringify(summary[label])}`);
  }
  console.log(JSON.stringify({ writers: WRITERS, seconds, warmup, runs, median: summary }));
} finally {
  cluster.stop();
}
process.exit(0);
