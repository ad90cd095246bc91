#!/usr/bin/env node
// `npm run bench:gc [-- --seconds=8] [-- --reps=3] [-- --v8=--flag,--flag]`: what the
// garbage collector does to a call in secretd (GetSecret of a 1 KiB value, logging and
// audit on, as in `npm run bench`), in the bare grpc-js echo (scripts/bench-echo.mjs, an
// answer of the same size) and in a bare node:http2 server without grpc-js
// (scripts/bench-h2-echo.mjs), under the same closed loop (h2load, 4 connections × 16
// streams). Each server runs with bin/secretd's V8 flags and --trace-gc-nvp (one line
// per collection) into a file. Over the measured window it reports how much the old
// generation grows per call (what scavenges promote and what is allocated there
// directly: what a mark-compact collects later), the scavenges and mark-compacts and
// their pauses, and the phases of the longest mark-compact pause as V8 names them. The
// runs alternate (secretd, echo, h2, secretd, …) so that all see the same machine.
// Prints one JSON line at the end.
//
// --v8: more V8 flags for every server (e.g. --max-semi-space-size=16), to try a setting.
//
// The window is matched to the trace by time: V8 stamps each line with the ms since the
// isolate started, taken here as the moment of fork (a few ms early, on an 8 s window).
import { fork, spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readHs256Secret } from "../dist/auth/keys.js";
import { mintToken } from "../dist/auth/mint.js";
import { CreateSecretRequest, GetSecretRequest } from "../dist/gen/secrets/v1/secrets.js";
import { connect, grpcFrame, grpcUnframe, haveOrInstall, NODE_FLAGS, percentile, rawUnary, round } from "./bench-lib.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const option = (name) => process.argv.slice(2).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const SECONDS = Number(option("seconds") ?? 8);
const REPS = Number(option("reps") ?? 3);
const WARMUP_S = 3;
const V8_FLAGS = (option("v8") ?? "").split(",").filter(Boolean);
const SVC = "/secrets.v1.SecretService";
const say = (m) => console.error(`[bench:gc] ${m}`);

const children = new Set();
const killAll = () => {
  for (const c of children) c.kill("SIGKILL");
};
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

function start(script, env, traceFile) {
  const fd = openSync(traceFile, "w");
  const forkedAt = Date.now();
  const child = track(fork(path.join(HERE, script), [], { env: { ...process.env, ...env }, execArgv: ["--trace-gc-nvp", ...NODE_FLAGS, ...V8_FLAGS], stdio: ["ignore", fd, "inherit", "ipc"] }));
  closeSync(fd);
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${script} exited (${code}) before it served`)));
    child.on("message", (m) => m?.ready && resolve({ child, port: m.port, forkedAt }));
  });
}

async function stop(child) {
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

function h2load(port, urlPath, token, bodyFile, seconds) {
  const args = ["-c", "4", "-m", "16", "-t", "1", "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", bodyFile, "-D", `${seconds * 1000}ms`];
  if (token) args.push("-H", `authorization: Bearer ${token}`);
  args.push(`http://127.0.0.1:${port}${urlPath}`);
  return new Promise((resolve, reject) => {
    const child = track(spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] }));
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.once("exit", (code) => {
      const done = /(\d+) succeeded/.exec(out);
      if (code !== 0 || !done || /(\d+) failed/.exec(out)?.[1] !== "0") reject(new Error(`h2load: ${out.slice(-400)}`));
      else resolve(Number(done[1]));
    });
  });
}

/** The --trace-gc-nvp lines of the main isolate (the audit thread has its own) within [from, to] ms. */
function gcLines(traceFile, from, to) {
  const lines = readFileSync(traceFile, "utf8")
    .split("\n")
    .map((l) => /^\[\d+:(0x[0-9a-f]+)\]\s+(\d+) ms: (.*)$/.exec(l))
    .filter(Boolean);
  const counts = new Map();
  for (const m of lines) counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
  const main = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
  return lines
    .filter((m) => m[1] === main && Number(m[2]) >= from && Number(m[2]) <= to)
    .map((m) => Object.fromEntries(m[3].split(" ").map((kv) => kv.split("="))));
}

function summarizeGc(gcs, calls, seconds) {
  const scav = gcs.filter((g) => g.gc === "s");
  const mc = gcs.filter((g) => g.gc === "mc" || g.gc === "ms");
  const pauses = (xs) => xs.map((g) => Number(g.pause)).sort((a, b) => a - b);
  // What the heap keeps from one scavenge to the next: bytes promoted (copied or as whole
  // pages) or allocated in the old generation directly. It is what a mark-compact collects.
  let oldGrowth = 0;
  for (let i = 1; i < gcs.length; i++) if (gcs[i].gc === "s") oldGrowth += Math.max(0, Number(gcs[i].total_size_after) - Number(gcs[i - 1].total_size_after));
  const worst = mc.reduce((w, g) => (w === undefined || Number(g.pause) > Number(w.pause) ? g : w), undefined);
  // The phases of the longest atomic pause, largest first (leaves only: "a.b" rather than "a").
  const phases = worst
    ? Object.entries(worst)
        .filter(([k, v]) => !["pause", "mutator", "gc", "reduce_memory"].includes(k) && !k.startsWith("background") && !k.startsWith("incremental") && !/size|count|rate|ratio|throughput|speed|promoted|allocated|died|survived|chunks/.test(k) && Number(v) >= 1)
        .filter(([k], _, all) => !all.some(([o]) => o.startsWith(`${k}.`)))
        .sort((a, b) => Number(b[1]) - Number(a[1]))
        .slice(0, 4)
        .map(([k, v]) => `${k} ${v} ms`)
    : [];
  const sp = pauses(scav);
  const mp = pauses(mc);
  return {
    old_gen_kb_per_call: round(oldGrowth / 1024 / calls, 2),
    old_gen_mb_per_s: round(oldGrowth / 1048576 / seconds, 1),
    scavenges_per_s: round(scav.length / seconds, 1),
    scavenge_p50_ms: percentile(sp, 50),
    scavenge_max_ms: sp.at(-1) ?? 0,
    mark_compacts_per_10k_calls: round((mc.length * 10_000) / calls, 2),
    mark_compact_p50_ms: percentile(mp, 50),
    mark_compact_max_ms: mp.at(-1) ?? 0,
    gc_pause_share_pct: round((100 * [...sp, ...mp].reduce((s, x) => s + x, 0)) / (seconds * 1000), 1),
    worst_mark_compact_phases: phases,
  };
}

async function measure(kind, dir, i) {
  const traceFile = path.join(dir, `${kind}-${i}.gc`);
  let target;
  if (kind === "secretd") {
    const data = mkdtempSync(path.join(dir, "data-"));
    const srv = await start("bench-server.mjs", { DATA_DIR: data, LOG_FILE: path.join(data, "log") }, traceFile);
    const token = await mintToken({ secret: readHs256Secret(path.join(data, "jwt-dev.key")), tenant: "gc", sub: "gc-admin", roles: ["tenant-admin"], ttlSec: 3600 });
    const session = await connect(srv.port);
    const create = CreateSecretRequest.encode(CreateSecretRequest.fromPartial({ mesh: "default", name: "db", data: { password: Buffer.alloc(1024, 7) } })).finish();
    const created = await rawUnary(session, `${SVC}/CreateSecret`, token, grpcFrame(create));
    const get = grpcFrame(GetSecretRequest.encode(GetSecretRequest.fromPartial({ mesh: "default", name: "db" })).finish());
    const got = await rawUnary(session, `${SVC}/GetSecret`, token, get);
    session.close();
    if (created.status !== 0 || got.status !== 0) throw new Error(`secretd set-up failed: ${created.message || got.message}`);
    target = { ...srv, urlPath: `${SVC}/GetSecret`, token, body: get, responseBytes: grpcUnframe(got.body).length };
  } else if (kind === "h2") {
    const srv = await start("bench-h2-echo.mjs", { RESPONSE_BYTES: String(measure.responseBytes) }, traceFile);
    target = { ...srv, urlPath: "/bench.v1.Echo/Echo", token: undefined, body: grpcFrame(Buffer.alloc(16)) };
  } else {
    const srv = await start("bench-echo.mjs", { RESPONSE_BYTES: String(measure.responseBytes) }, traceFile);
    target = { ...srv, urlPath: "/bench.v1.Echo/Echo", token: undefined, body: grpcFrame(Buffer.alloc(16)) };
  }
  const bodyFile = path.join(dir, `${kind}.bin`);
  writeFileSync(bodyFile, target.body);
  await h2load(target.port, target.urlPath, target.token, bodyFile, WARMUP_S);
  const from = Date.now() - target.forkedAt;
  const calls = await h2load(target.port, target.urlPath, target.token, bodyFile, SECONDS);
  const seconds = (Date.now() - target.forkedAt - from) / 1000;
  await stop(target.child);
  if (kind === "secretd") measure.responseBytes = target.responseBytes;
  return { rps: Math.round(calls / seconds), ...summarizeGc(gcLines(traceFile, from, from + seconds * 1000), calls, seconds) };
}

if (!haveOrInstall("h2load", "nghttp2-client", say)) {
  say("h2load is missing and could not be installed (Debian nghttp2-client)");
  process.exit(1);
}
const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-bench-gc-"));
try {
  const runs = { echo: [], h2: [], secretd: [] };
  // secretd first: the echo answers with a message of GetSecret's size.
  for (let i = 0; i < REPS; i++) {
    for (const kind of ["secretd", "echo", "h2"]) {
      const r = await measure(kind, dir, i);
      runs[kind].push(r);
      say(`${kind.padEnd(7)} ${String(r.rps).padStart(6)} calls/s  old generation +${r.old_gen_kb_per_call} KiB/call  mark-compacts ${r.mark_compacts_per_10k_calls}/10k calls (max ${r.mark_compact_max_ms} ms: ${r.worst_mark_compact_phases.join(", ")})  GC ${r.gc_pause_share_pct}% of the time`);
    }
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const summary = (rs) => Object.fromEntries(Object.keys(rs[0]).filter((k) => typeof rs[0][k] === "number").map((k) => [k, med(rs.map((r) => r[k]))]));
  const out = { seconds: SECONDS, reps: REPS, v8_flags: V8_FLAGS, response_bytes: measure.responseBytes, echo: summary(runs.echo), h2: summary(runs.h2), secretd: summary(runs.secretd), runs };
  out.old_gen_ratio = round(out.secretd.old_gen_kb_per_call / out.echo.old_gen_kb_per_call, 2);
  console.log(JSON.stringify(out));
} finally {
  killAll();
  rmSync(dir, { recursive: true, force: true });
}
