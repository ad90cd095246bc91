// The measured runs of scripts/bench.mjs: a fixed-body scenario at a concurrency (closed
// loop), at an offered rate (open loop), the fill and steady-state durable creates, each
// with the CPU of its processes and a flag when other processes disturbed it.
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { connect, grpcFrame, grpcUnframe, memoryMb, rawUnary, round, summarize } from "../bench-lib.mjs";
import { CONCURRENCY, CREATE_DURATION_S, CREATE_WARMUP_S, DURATION_S, FILL_CONNECTIONS_PER_PROC, FILL_PROCS, H2_CONNECTIONS, MESH, NODE_GEN_PROCS, OPEN_LOOP_PER_CONNECTION, OPEN_REPS, QUIET_WAIT_S, say, SLO_BISECT, SLO_P99_MS, SLO_QUIET_WAIT_S, SLO_STEP, VALUE_BYTES, WARMUP_S } from "./config.mjs";
import { DISTURBED_CPU_PCT, waitQuiet, withCpu } from "./cpu.mjs";
import { h2load, nodeLoad, readLatencyLog } from "./drivers.mjs";
import { runDir } from "./process.mjs";

let generator;
/** The load generator of every fixed-body run from now on (chooseGenerator()). */
export const useGenerator = (g) => (generator = g);
let runSeq = 0;

/**
 * One measured run of a fixed-body scenario: `concurrency` calls in flight (64, or 1
 * for unloaded latency), after a warm-up. `genProcs` splits the load over that many
 * generator processes (to show that adding generators does not raise throughput).
 */
export async function measure(name, target, opts) {
  const otherBefore = await waitQuiet(QUIET_WAIT_S);
  const r = await measureOnce(name, target, opts);
  // Every measured process of the server (all workers and the primary with --workers).
  const serverCpu = round(opts.pids.reduce((sum, p) => sum + (r.perPid[p] ?? 0), 0), 1);
  return {
    ...r,
    server_cpu_pct: serverCpu,
    // Server CPU time per call: robust to other processes taking CPU from the server.
    server_cpu_us_per_call: round((10_000 * serverCpu) / r.rps, 1),
    other_cpu_before_pct: otherBefore,
    // Other processes took CPU, or a server thread waited on the run queue (starved).
    // The whole-box runs fill every core with the measured processes and the generator
    // by design: their run-queue wait is their own (opts.ownRunQueue), not a disturbance.
    disturbed: r.other_cpu_pct > DISTURBED_CPU_PCT || (!opts.ownRunQueue && (r.runq_wait_pct ?? 0) > DISTURBED_CPU_PCT),
  };
}

async function measureOnce(name, target, { pids, concurrency = CONCURRENCY, genProcs = 1 }) {
  const n = ++runSeq;
  if (generator.kind === "h2load") {
    const base = { port: target.port, path: target.path, token: target.token, bodyFile: target.bodyFile };
    const connections = concurrency === 1 ? 1 : H2_CONNECTIONS;
    const streams = concurrency / connections;
    // Warm-up in its own invocation: h2load's byte counters mix warm-up and main phase.
    await h2load({ ...base, seconds: WARMUP_S, connections, streams });
    const logs = Array.from({ length: genProcs }, (_, i) => path.join(runDir(), `h2load-${n}-${i}.log`));
    const { result, cpu } = await withCpu(pids, (addPid) =>
      Promise.all(logs.map((logFile) => h2load({ ...base, seconds: DURATION_S, connections: connections / genProcs, streams, logFile }, addPid))),
    );
    const lat = [];
    let non200 = 0;
    for (const f of logs) {
      const r = await readLatencyLog(f);
      for (const x of r.lat) lat.push(x);
      non200 += r.non200;
      rmSync(f, { force: true });
    }
    const rps = result.reduce((s, r) => s + r.rps, 0);
    const done = result.reduce((s, r) => s + r.done, 0);
    const failed = result.reduce((s, r) => s + r.failed, 0);
    const dataBytes = result.reduce((s, r) => s + r.dataBytes, 0);
    // Every OK response carries exactly expectBytes of DATA; an error (trailers-only)
    // carries none. Responses cut off at the end of the run may add up to one window.
    const responses = dataBytes / target.expectBytes;
    const sizeOk = responses >= done - 0.5 && responses <= done + concurrency + 0.5;
    if (failed > 0 || non200 > 0 || !sizeOk || done === 0) {
      throw new Error(`${name}: h2load saw failures (failed=${failed}, non-200=${non200}, data/expected=${round(responses, 1)} for ${done} done)`);
    }
    return { name, concurrency, rps: round(rps, 0), ...summarize(lat), ...cpu };
  }
  // Node generator: several raw-HTTP/2 processes sharing the calls.
  const procs = concurrency === 1 ? 1 : NODE_GEN_PROCS * genProcs;
  const job = (i) => ({
    mode: "fixed",
    port: target.port,
    path: target.path,
    token: target.token,
    body: target.body.toString("base64"),
    expectBytes: target.expectBytes,
    connections: concurrency === 1 ? 1 : 2,
    concurrency: Math.floor(concurrency / procs) + (i < concurrency % procs ? 1 : 0),
    warmupMs: WARMUP_S * 1000,
    durationMs: DURATION_S * 1000,
  });
  const { result, cpu } = await withCpu(pids, (addPid) => nodeLoad(Array.from({ length: procs }, (_, i) => job(i)), addPid));
  if (result.failed > 0 || result.badSize > 0 || result.ok === 0) {
    throw new Error(`${name}: ${result.failed} failed calls (${JSON.stringify(result.codes)}), ${result.badSize} of a wrong size`);
  }
  return { name, concurrency, rps: round(result.ok / result.seconds, 0), ...summarize(result.lat), ...cpu };
}

/** The fastest run not disturbed by other processes (the fastest of all when every run was). */
export function best(runs) {
  const calm = runs.filter((r) => !r.disturbed);
  return (calm.length > 0 ? calm : runs).reduce((a, b) => (b.rps > a.rps ? b : a));
}

export function valueOf(bytes, seed) {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = 33 + ((i * 7 + seed) % 90);
  return b;
}

/** Fills `count` filler secrets over the tenants of `server` ({ port, pid }), continuing each tenant's numbering. */
export async function fill(server, tenants, count, pids) {
  const per = tenants.map((_, i) => Math.floor(count / tenants.length) + (i < count % tenants.length ? 1 : 0));
  const jobs = Array.from({ length: FILL_PROCS }, () => ({
    mode: "create",
    port: server.port,
    connections: FILL_CONNECTIONS_PER_PROC,
    concurrency: CONCURRENCY / FILL_PROCS,
    valueBytes: VALUE_BYTES,
    jobs: [],
  }));
  tenants.forEach((t, i) => {
    if (per[i] === 0) return;
    jobs[i % FILL_PROCS].jobs.push({ token: t.token, mesh: MESH, prefix: t.prefix, start: t.filled, count: per[i] });
    t.filled += per[i];
  });
  let rssMax = 0;
  const sampler = setInterval(() => (rssMax = Math.max(rssMax, memoryMb(server.pid).rss)), 500);
  try {
    const { result, cpu } = await withCpu(pids, (addPid) => nodeLoad(jobs.filter((j) => j.jobs.length > 0), addPid));
    if (result.failed > 0) throw new Error(`fill: ${result.failed} creates failed (${JSON.stringify(result.codes)})`);
    return { created: result.ok, seconds: round(result.wallS, 2), rps: round(result.ok / result.wallS, 0), ...summarize(result.lat), ...cpu, rss_max_mb: round(rssMax, 1) };
  } finally {
    clearInterval(sampler);
  }
}

/**
 * Durable CreateSecret in steady state (SPEC §9): the fill's processes and settings,
 * new unique names over the tenants (prefix `label`). With `ports` (replicas of one
 * PostgreSQL database), loader process p sends to ports[p % ports.length].
 */
export async function measureCreates(server, tenants, label, pids, ports = [server.port]) {
  await waitQuiet(QUIET_WAIT_S);
  const jobs = Array.from({ length: FILL_PROCS }, (_, p) => ({
    mode: "create",
    port: ports[p % ports.length],
    connections: FILL_CONNECTIONS_PER_PROC,
    concurrency: CONCURRENCY / FILL_PROCS,
    valueBytes: VALUE_BYTES,
    warmupMs: CREATE_WARMUP_S * 1000,
    durationMs: CREATE_DURATION_S * 1000,
    jobs: tenants.filter((_, i) => i % FILL_PROCS === p).map((t) => ({ token: t.token, mesh: MESH, prefix: `${label}-`, start: 0, count: 0 })),
  }));
  const { result, cpu } = await withCpu(pids, (addPid) => nodeLoad(jobs.filter((j) => j.jobs.length > 0), addPid));
  if (result.failed > 0) throw new Error(`creates (${label}): ${result.failed} failed (${JSON.stringify(result.codes)})`);
  const serverCpu = round(pids.reduce((sum, p) => sum + (cpu.perPid[p] ?? 0), 0), 1);
  const rps = round(result.ok / result.seconds, 0);
  return { created: result.ok, rps, ...summarize(result.lat), ...cpu, server_cpu_pct: serverCpu, server_cpu_us_per_call: round((10_000 * serverCpu) / rps, 1) };
}

/**
 * GetSecret at an offered rate (h2load --rps, an open loop): latency is then what a call
 * waits and takes, not concurrency ÷ throughput as in the closed loop.
 *
 * h2load ticks a connection's --rps every max(10 ms, 1/rps) and sends what is due at each
 * tick, and connections opened together tick together: 4 connections at 2,900/s sent ~29
 * calls at once every 10 ms, so a single-threaded server at half its peak spent 5 ms of
 * every 10 on each burst, and the last call of a burst waited for all the others. Spread
 * arrivals need at most 100/s per connection (one call per tick), connections opened 1 ms
 * apart, so that their ticks fall in different milliseconds.
 */
export async function measureOpenLoop(name, target, rate, pids, quietS = QUIET_WAIT_S) {
  await waitQuiet(quietS);
  const logFile = path.join(runDir(), `h2load-open-${++runSeq}.log`);
  const connections = Math.max(1, Math.ceil(rate / OPEN_LOOP_PER_CONNECTION));
  const rps = rate / connections;
  const base = { port: target.port, path: target.path, token: target.token, bodyFile: target.bodyFile, connections, streams: CONCURRENCY / H2_CONNECTIONS, rps };
  await h2load({ ...base, requests: connections * Math.ceil(rps * WARMUP_S) });
  const requests = connections * Math.ceil(rps * DURATION_S * 2);
  const { result, cpu } = await withCpu(pids, (addPid) => h2load({ ...base, requests, logFile }, addPid));
  const { lat, non200 } = await readLatencyLog(logFile);
  rmSync(logFile, { force: true });
  if (result.failed > 0 || non200 > 0 || lat.length !== requests) throw new Error(`${name}: failures in the open loop (failed=${result.failed}, non-200=${non200}, logged ${lat.length} of ${requests})`);
  const serverCpu = pids.reduce((sum, p) => sum + (cpu.perPid[p] ?? 0), 0);
  return { name, offered_rps: rate, connections, rps: round(result.rps, 0), ...summarize(lat), ...cpu, server_cpu_us_per_call: round((10_000 * serverCpu) / result.rps, 1) };
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? undefined : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * #32: OPEN_REPS interleaved pairs of open loops at one offered rate, `peer` then `ours`
 * ({ name, target, pids }), so each pair meets the same box. Per pair the ratios of p99
 * and of server CPU per call (ours ÷ peer); the medians of those, and the run of each
 * side with the median p99. `wrap` runs around each of our runs (the loop monitor).
 */
export async function pairedOpenLoops(ours, peer, rate, wrap = (run) => run()) {
  const pairs = [];
  for (let i = 0; i < OPEN_REPS; i++) {
    const p = await measureOpenLoop(`${peer.name} (open loop ${i + 1})`, peer.target, rate, peer.pids);
    const o = await wrap(() => measureOpenLoop(`${ours.name} (open loop ${i + 1})`, ours.target, rate, ours.pids));
    pairs.push({ ours: o, peer: p });
    say(`open loop ${i + 1}/${OPEN_REPS} at ${rate}/s: ${ours.name} p99 ${o.p99_ms} ms (${o.server_cpu_us_per_call} µs/call), ${peer.name} p99 ${p.p99_ms} ms (${p.server_cpu_us_per_call} µs/call)`);
  }
  const medianRun = (side) => [...pairs.map((x) => x[side])].sort((a, b) => a.p99_ms - b.p99_ms)[(pairs.length - 1) >> 1];
  return {
    offered_rps: rate,
    ours: medianRun("ours"),
    peer: medianRun("peer"),
    p99_ratio: round(median(pairs.map((x) => x.ours.p99_ms / x.peer.p99_ms)), 3),
    cpu_ratio: round(median(pairs.map((x) => x.ours.server_cpu_us_per_call / x.peer.server_cpu_us_per_call)), 3),
    ours_p99_ms: pairs.map((x) => x.ours.p99_ms),
    peer_p99_ms: pairs.map((x) => x.peer.p99_ms),
  };
}

/**
 * #32 capacity at a latency target: the highest offered rate whose open loop keeps p99 ≤
 * SLO_P99_MS. Steps up by SLO_STEP from `from` until a rate misses (or fails, or reaches
 * `to`; down, when `from` already misses), then bisects SLO_BISECT times between the last rate met and the first missed.
 * The generator caps each connection's in-flight calls (h2load -m), so past saturation
 * latency is under-counted, never over-counted: a missed step is a real miss.
 */
export async function sloRate(name, target, pids, from, to) {
  const steps = [];
  const meets = async (rate) => {
    rate = Math.round(rate);
    let r;
    try {
      r = await measureOpenLoop(`${name} (capacity ${rate}/s)`, target, rate, pids, SLO_QUIET_WAIT_S);
    } catch (err) {
      steps.push({ rate, failed: String(err?.message ?? err).slice(0, 120) });
      say(`capacity ${name} at ${rate}/s: failed`);
      return false;
    }
    const ok = r.p99_ms <= SLO_P99_MS && r.rps >= 0.95 * rate;
    steps.push({ rate, served_rps: r.rps, p99_ms: r.p99_ms, ok });
    say(`capacity ${name} at ${rate}/s: served ${r.rps}/s, p99 ${r.p99_ms} ms ${ok ? "≤" : ">"} ${SLO_P99_MS} ms`);
    return ok;
  };
  let good = 0;
  let bad;
  for (let rate = from; rate <= to; rate *= SLO_STEP) {
    if (await meets(rate)) good = Math.round(rate);
    else {
      bad = Math.round(rate);
      break;
    }
  }
  if (bad === undefined) return { slo_rps: good, capped: true, steps };
  // Missed from the first step: step down instead, to a tenth of `from` at most.
  for (let rate = from / SLO_STEP; good === 0 && rate >= from / 10; rate /= SLO_STEP) {
    if (await meets(rate)) good = Math.round(rate);
    else bad = Math.round(rate);
  }
  for (let i = 0; i < SLO_BISECT && good > 0; i++) {
    const mid = Math.round((good + bad) / 2);
    if (await meets(mid)) good = mid;
    else bad = mid;
  }
  return { slo_rps: good, steps };
}

/**
 * A pre-framed fixed-body target, checked once with a raw call (status 0, size taken;
 * with `check`, the answer is one gRPC message that `check` accepts).
 */
export async function rawTarget(name, port, p, token, msgBytes, check) {
  const body = grpcFrame(msgBytes);
  const session = await connect(port);
  try {
    const r = await rawUnary(session, p, token, body);
    if (r.status !== 0) throw new Error(`${name} pre-check: grpc-status ${r.status} ${r.message}`);
    if (check) {
      const msg = grpcUnframe(r.body);
      if (!msg) throw new Error(`${name} pre-check: not one gRPC message`);
      check(msg);
    }
    const bodyFile = path.join(runDir(), `${name}.bin`);
    writeFileSync(bodyFile, body);
    return { port, path: p, token, body, bodyFile, expectBytes: r.body.length, responseMessageBytes: grpcUnframe(r.body)?.length };
  } finally {
    session.close();
  }
}
