// `npm run bench [-- --quick] [-- --postgres] [-- --generator=node] [-- --keep] [-- --profile|--no-profile]`
//
// SPEC §9 budgets, measured in one run on this machine (docs/BENCHMARKS.md):
//   * a fresh secretd (scripts/bench-server.mjs: startApp, temp data dir, pino logging
//     ON at info level into a file through the project's buffered logger) and a bare
//     grpc-js server answering a message of the same size as GetSecret's
//     (scripts/bench-echo.mjs), each in its own process, both with the V8 flags that
//     bin/secretd (the `secretd` command) gives node;
//   * both driven by the same load generator: h2load (one C process, pre-framed gRPC
//     bodies; installed with apt-get when missing and possible) or, as the fallback,
//     raw-HTTP/2 Node processes (scripts/bench-loader.mjs). CreateSecret needs a unique
//     name per call, so it always uses the Node processes;
//   * at 64 concurrent calls: GetSecret (1 KiB value), ProjectSecrets (10 keys of 5
//     secrets), ListSecrets (page of 100), durable CreateSecret (timed after a warm-up,
//     with one process and with --workers auto; the fill's own rate is reported too); one call at a time: GetSecret and ListSecrets with 1,000 and with
//     100,000 secrets (5,000 with --quick) spread over 101 tenants (growth ratios);
//     server RSS when full; CPU profiles of the server (GetSecret, ListSecrets,
//     CreateSecret) unless --quick (add --profile to get them there too).
// --postgres: the same scenarios with secretd on PostgreSQL (a throw-away cluster from
// Debian's postgresql, fsync on, scripts/postgres-cluster.mjs) instead of SQLite.
// Every process it starts is killed on exit, failure or signal; loads only hit 127.0.0.1.
// The last line printed is one JSON object with the results.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { machine, memoryMb, round, summarizeProfile } from "./bench-lib.mjs";
import { boxStage } from "./bench/box.mjs";
import { BIG, CONCURRENCY, CREATE_WARMUP_S, DEADLINE_MS, DURATION_S, FILL_PROCS, KEEP, NODE_GEN_PROCS, POSTGRES, PROFILE, PROFILE_SPOTS, QUICK, REPS, say, SMALL, WARMUP_S } from "./bench/config.mjs";
import { chooseGenerator } from "./bench/drivers.mjs";
import { benchDatabase, clearDeadline, guardRun, makeRunDir, onceMessage, startServer, stopChild } from "./bench/process.mjs";
import { buildReport, databaseSize, tallyLog } from "./bench/report.mjs";
import { best, fill, measure, measureCreates, measureOpenLoop, median, pairedOpenLoops, useGenerator } from "./bench/scenarios.mjs";
import { makeTenants, minter, preframedTargets, seedBench, startEchoTarget } from "./bench/setup.mjs";

guardRun({ deadlineMs: DEADLINE_MS, keep: KEEP, say });

async function main() {
  const mach = machine();
  say(`machine: ${mach.nproc} CPUs (${mach.cpu}), node ${mach.node}, load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  say(`mode: ${QUICK ? "quick" : "full"}; ${BIG} secrets; ${DURATION_S}s per run (+${WARMUP_S}s warm-up), best of ${REPS}; ${CONCURRENCY} concurrent calls`);
  const generator = useGenerator(chooseGenerator());
  say(`load generator: ${generator.kind} (${generator.why})`);

  const tmpDir = makeRunDir();
  const dataDir = path.join(tmpDir, "data");
  const logFile = path.join(tmpDir, "secretd.log");
  mkdirSync(dataDir, { mode: 0o700 });
  const databaseUrl = POSTGRES ? await benchDatabase(say) : undefined;
  const server = await startServer(dataDir, logFile, databaseUrl);
  say(`secretd pid ${server.pid} on 127.0.0.1:${server.port}, data ${dataDir}, log ${logFile} (info)`);

  const mint = minter(dataDir);
  const { benchToken, tenants } = await makeTenants(mint);
  const { getValue, seeded, requests } = await seedBench(server, benchToken);

  // Filler to SMALL secrets in all.
  const pidsServer = [server.pid];
  const fillSmall = await fill(server, tenants, SMALL - seeded, pidsServer);
  say(`filled to ${SMALL} secrets (${fillSmall.created} creates in ${fillSmall.seconds}s)`);

  const targets = await preframedTargets(server, benchToken, requests, getValue);
  const echo = await startEchoTarget(targets);
  say(`echo pid ${echo.pid} on 127.0.0.1:${echo.port}; response sizes (framed): get ${targets.get.expectBytes} B, echo ${targets.echo.expectBytes} B, project ${targets.project.expectBytes} B, list ${targets.list.expectBytes} B`);

  // Scenarios: 64 concurrent calls, plus GetSecret and ListSecrets one call at a time
  // (unloaded latency, the growth ratios). Repetitions are interleaved so that echo and
  // secretd runs meet the same conditions.
  const SCENARIOS = {
    echo: { target: "echo", pids: [echo.pid] },
    get: { target: "get", pids: [server.pid] },
    project: { target: "project", pids: [server.pid] },
    list: { target: "list", pids: [server.pid] },
    get_c1: { target: "get", pids: [server.pid], concurrency: 1 },
    echo_c1: { target: "echo", pids: [echo.pid], concurrency: 1 },
    list_c1: { target: "list", pids: [server.pid], concurrency: 1 },
    echo_2gen: { target: "echo", pids: [echo.pid], genProcs: 2 },
  };
  // One-at-a-time runs vary most from run to run (±30 % here): --quick still does two.
  const repsOf = (name, reps) => (name.endsWith("_c1") ? Math.max(reps, 2) : reps);
  const stage = async (label, names, reps) => {
    const runs = Object.fromEntries(names.map((k) => [k, []]));
    for (let rep = 0; rep < Math.max(...names.map((n) => repsOf(n, reps))); rep++) {
      for (const name of names) {
        if (rep >= repsOf(name, reps)) continue;
        const sc = SCENARIOS[name];
        const r = await measure(name, targets[sc.target], sc);
        runs[name].push(r);
        say(
          `${label} ${name.padEnd(9)} ${String(r.rps).padStart(6)} calls/s  p50 ${r.p50_ms} ms  p99 ${r.p99_ms} ms  server CPU ${r.server_cpu_pct}% (${r.server_cpu_us_per_call} µs/call, run-queue wait ${r.runq_wait_pct}%)  generator CPU ${r.gen_cpu_pct}%  other CPU ${r.other_cpu_pct}%${r.disturbed ? "  DISTURBED by other processes" : ""}`,
        );
      }
    }
    return Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, { best: best(v), runs: v }]));
  };

  const small = await stage(`@${SMALL}`, QUICK ? ["get_c1", "list_c1"] : ["echo", "get", "project", "list", "get_c1", "list_c1"], REPS);

  // Fill to BIG: this is the durable CreateSecret measurement (64 concurrent, unique names).
  say(`creating ${BIG - SMALL} secrets (1 KiB each) over ${tenants.length} tenants with ${FILL_PROCS} Node processes × ${CONCURRENCY / FILL_PROCS} concurrent calls`);
  const fillBig = await fill(server, tenants, BIG - SMALL, pidsServer);
  const memFull = memoryMb(server.pid);
  server.child.send({ cmd: "mem" });
  const memBreakdown = (await onceMessage(server.child, (m) => m?.mem, 10_000, "memory usage")).mem;
  say(
    `fill (cold loaders, creates from the first call): ${fillBig.rps}/s (p50 ${fillBig.p50_ms} ms, p99 ${fillBig.p99_ms} ms), ${BIG} secrets after ${fillBig.seconds}s; server CPU ${fillBig.perPid[server.pid]}%, loaders ${fillBig.gen_cpu_pct}%, other ${fillBig.other_cpu_pct}%; RSS ${round(memFull.rss, 1)} MB (peak so far ${round(memFull.hwm, 1)} MB; V8 heap used ${memBreakdown.heapUsed} of ${memBreakdown.heapTotal} MB, external ${memBreakdown.external} MB)`,
  );

  const big = await stage(`@${BIG}`, ["echo", "get", "project", "list", "get_c1", "echo_c1", "list_c1", "echo_2gen"], REPS);

  // The create generator (Node processes) is not the bottleneck either: the same two
  // processes with 64 calls against the echo server.
  let nodeGenEcho;
  if (generator.kind === "h2load" && !QUICK) {
    useGenerator({ kind: "node" });
    try {
      nodeGenEcho = await measure("echo (node gen)", targets.echo, { pids: [echo.pid] });
    } finally {
      useGenerator(generator);
    }
    say(`echo driven by ${NODE_GEN_PROCS} Node loader processes: ${nodeGenEcho.rps} calls/s (loaders ${nodeGenEcho.gen_cpu_pct}% CPU), vs the fill's CreateSecret ${fillBig.rps}/s`);
  }

  // Latency at half the measured peak, offered as an open loop; where the tail waits:
  // the server's event loop (blocked: GC, a long task) or the run queue (other processes).
  const monitored = async (run) => {
    server.child.send({ cmd: "loop-start" });
    await onceMessage(server.child, (m) => m?.loopStarted, 10_000, "loop monitor start");
    const r = await run();
    server.child.send({ cmd: "loop-stop" });
    r.loop = (await onceMessage(server.child, (m) => m?.loop, 10_000, "loop monitor stop")).loop;
    return r;
  };
  // #32: the median of OPEN_REPS interleaved pairs (echo, secretd) at that rate.
  const openPair = await pairedOpenLoops({ name: "get", target: targets.get, pids: [server.pid] }, { name: "echo", target: targets.echo, pids: [echo.pid] }, Math.round(big.get.best.rps / 2), monitored);
  const openLoop = openPair.ours;
  say(`get open loop at ${openLoop.offered_rps}/s offered (half of the peak, ${openLoop.connections} connections): ${openLoop.rps} served/s, p50 ${openLoop.p50_ms} ms, p99 ${openLoop.p99_ms} ms, max ${openLoop.max_ms} ms`);
  say(`   server during it: run-queue wait ${openLoop.runq_wait_pct}% of the time; event-loop delay p99 ${openLoop.loop.delay_p99_ms} ms, max ${openLoop.loop.delay_max_ms} ms; GC ${openLoop.loop.gc_count} pauses, max ${openLoop.loop.gc_max_ms} ms, ${openLoop.loop.gc_over_1ms} over 1 ms, ${openLoop.loop.gc_major} major (max ${openLoop.loop.gc_major_max_ms} ms)`);
  // The same offered rate against the bare grpc-js echo: the tail that the transport, the
  // generator and the box give any Node server here, the baseline for the p99 budget.
  const openEcho = openPair.peer;
  say(`echo open loop at ${openEcho.offered_rps}/s offered (the same rate): p50 ${openEcho.p50_ms} ms, p99 ${openEcho.p99_ms} ms, max ${openEcho.max_ms} ms (run-queue wait ${openEcho.runq_wait_pct}%)`);
  // Where the knee is: the same open loop at a tenth and a quarter of the peak, secretd
  // and echo at each rate. Calls that arrive one by one cost more CPU than the closed
  // loop's batches (cpu_us_per_call), so half of the closed-loop peak is more than half
  // of what a server can take in this regime.
  const point = (share, g, e) => ({ share, offered_rps: g.offered_rps, get_p50_ms: g.p50_ms, get_p99_ms: g.p99_ms, get_cpu_us_per_call: g.server_cpu_us_per_call, get_loop: g.loop, echo_p50_ms: e.p50_ms, echo_p99_ms: e.p99_ms, echo_cpu_us_per_call: e.server_cpu_us_per_call });
  const openCurve = [];
  for (const share of [0.1, 0.25]) {
    const rate = Math.round(big.get.best.rps * share);
    const g = await monitored(() => measureOpenLoop(`get (open loop, ${share})`, targets.get, rate, [server.pid]));
    const e = await measureOpenLoop(`echo (open loop, ${share})`, targets.echo, rate, [echo.pid]);
    openCurve.push(point(share, g, e));
    say(`open loop at ${share} of the peak, ${rate}/s: get p50 ${g.p50_ms} ms, p99 ${g.p99_ms} ms (${g.server_cpu_us_per_call} µs/call; event-loop delay max ${g.loop.delay_max_ms} ms, GC max ${g.loop.gc_max_ms} ms, ${g.loop.gc_major} major); echo p50 ${e.p50_ms} ms, p99 ${e.p99_ms} ms (${e.server_cpu_us_per_call} µs/call)`);
  }
  openCurve.push(point(0.5, openLoop, openEcho));

  // Peak RSS of the measured part (the profiler below costs memory of its own).
  const memMeasured = memoryMb(server.pid);

  // Durable creates in steady state (the fill above measures from cold processes).
  const creates = await measureCreates(server, tenants, "steady", pidsServer);
  say(`create (steady, after ${CREATE_WARMUP_S} s of warm-up): ${creates.rps}/s (p50 ${creates.p50_ms} ms, p99 ${creates.p99_ms} ms); server CPU ${creates.server_cpu_pct}% (${creates.server_cpu_us_per_call} µs/create, run-queue wait ${creates.runq_wait_pct}%), loaders ${creates.gen_cpu_pct}%, other ${creates.other_cpu_pct}%`);
  // PostgreSQL: the same through two replicas of the one database (SPEC §9's budget), each
  // loader process on its own replica; "other CPU" then includes PostgreSQL's.
  let createsReplicas;
  if (POSTGRES) {
    const second = await startServer(dataDir, path.join(tmpDir, "secretd-2.log"), databaseUrl);
    try {
      createsReplicas = await measureCreates(server, tenants, "replicas", [server.pid, second.pid], [server.port, second.port]);
    } finally {
      await stopChild(second.child, "ipc");
    }
    say(`create through 2 replicas (steady): ${createsReplicas.rps}/s (p50 ${createsReplicas.p50_ms} ms, p99 ${createsReplicas.p99_ms} ms); both servers' CPU ${createsReplicas.server_cpu_pct}% (${createsReplicas.server_cpu_us_per_call} µs/create), loaders ${createsReplicas.gen_cpu_pct}%, other (PostgreSQL included) ${createsReplicas.other_cpu_pct}%; load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  }

  // Where the time goes: CPU profiles of the server under GetSecret, ProjectSecrets,
  // ListSecrets and CreateSecret load.
  const profiles = {};
  async function profiled(name, run) {
    const file = path.join(tmpDir, `secretd-${name}.cpuprofile`);
    server.child.send({ cmd: "profile-start", intervalUs: 250 });
    await onceMessage(server.child, (m) => m?.profileStarted, 10_000, "profile start");
    const r = await run();
    server.child.send({ cmd: "profile-stop", file });
    await onceMessage(server.child, (m) => m?.profileWritten, 60_000, "profile stop");
    const summary = summarizeProfile(JSON.parse(readFileSync(file, "utf8")), { top: 30, inclusive: PROFILE_SPOTS });
    summary.rps_while_profiling = r.rps;
    summary.file = KEEP ? file : undefined;
    if (!KEEP) rmSync(file, { force: true });
    profiles[name] = summary;
    say(`profile of secretd under ${name} load (${r.rps} calls/s while profiled; % of busy main-thread time)`);
    for (const e of summary.inclusive.filter((x) => x.pct >= 0.5)) say(`   incl ${String(e.pct).padStart(5)}%  ${e.fn}`);
    for (const e of summary.top_self.slice(0, 12)) say(`   self ${String(e.pct).padStart(5)}%  ${e.fn}`);
    for (const e of summary.by_category) say(`   cat  ${String(e.pct).padStart(5)}%  ${e.cat}`);
  }
  if (PROFILE) {
    await profiled("GetSecret", () => measure("get (profiled)", targets.get, { pids: [server.pid] }));
    await profiled("GetSecret open loop", () => measureOpenLoop("get (open loop, profiled)", targets.get, Math.round(openLoop.offered_rps / 3), [server.pid]));
    await profiled("ProjectSecrets", () => measure("project (profiled)", targets.project, { pids: [server.pid] }));
    await profiled("ListSecrets", () => measure("list (profiled)", targets.list, { pids: [server.pid] }));
    const extra = [{ name: "bench", token: benchToken, prefix: "zz-prof-", filled: 0 }];
    await profiled("CreateSecret", () => fill(server, extra, QUICK ? 1000 : 3000, pidsServer));
  }

  await stopChild(echo.child, "signal");
  // The one-process server stays up for the box stage: its GetSecret runs alternate with
  // etcd's and --workers auto's, so "auto vs one process" is measured under one condition.
  const box = await boxStage(getValue, { name: "get_one", target: targets.get, pids: [server.pid] });
  // SPEC §9 budgets are measured with the audit trail on: every call above recorded an event.
  server.child.send({ cmd: "audit" });
  const audit = (await onceMessage(server.child, (m) => m?.audit, 30_000, "audit counts")).audit;
  say(`audit trail: ${audit.written} events written during the run, ${audit.depth} queued, ${audit.dropped} dropped`);
  if (audit.written === 0) throw new Error("the audit trail wrote no events: the budgets must be measured with it on");
  await stopChild(server.child, "ipc");
  const log = await tallyLog(logFile);
  const dbBytes = POSTGRES
    ? await databaseSize(databaseUrl)
    : ["secretd.db", "secretd.db-wal"].reduce((s, f) => s + (existsSync(path.join(dataDir, f)) ? statSync(path.join(dataDir, f)).size : 0), 0);
  const nonOk = Object.entries(log.byCode).filter(([k]) => !k.endsWith(":OK"));
  if (nonOk.length > 0) say(`WARNING: non-OK calls in the server log: ${JSON.stringify(Object.fromEntries(nonOk))}`);

  const c1p99 = (name) => median(big[name].runs.map((r) => r.p99_ms));
  const c1 = { get_p99_ms: c1p99("get_c1"), echo_p99_ms: c1p99("echo_c1") };
  const out = buildReport({ generator, small, big, creates, createsReplicas, fillBig, memFull, memMeasured, memBreakdown, dbBytes, openLoop, openEcho, openPair, openCurve, c1, box, nodeGenEcho, log, nonOk, profiles, audit });
  if (KEEP) {
    rmSync(path.join(tmpDir, "owner.pid"), { force: true });
    writeFileSync(path.join(tmpDir, "bench-details.json"), JSON.stringify({ machine: mach, out, small, big, fillSmall, fillBig, nodeGenEcho, profiles, log }, null, 2));
    say(`kept ${tmpDir} (details in bench-details.json)`);
  }
  clearDeadline();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    say(`FAILED: ${err?.stack ?? err}`);
    process.exit(1);
  },
);
