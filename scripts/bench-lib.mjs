// Shared helpers of the benchmark (plain ESM, no build step): gRPC framing, a raw
// HTTP/2 unary caller, percentiles, /proc readers, CPU-profile summaries, and the
// installer of the Debian tools the benchmarks drive (h2load, etcd).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import http2 from "node:http2";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The `secretd` command: bin/secretd, which starts node with NODE_FLAGS. */
export const LAUNCHER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../bin/secretd");

/**
 * The V8 flags bin/secretd gives node (its NODE_FLAGS line), for the processes the
 * benchmarks fork themselves: secretd in process (bench-server.mjs) and the baselines,
 * so that every server is measured with the settings secretd ships with.
 */
export const NODE_FLAGS = (/^NODE_FLAGS="([^"]*)"$/m.exec(readFileSync(LAUNCHER, "utf8"))?.[1] ?? "").split(" ").filter(Boolean);

/** 5-byte gRPC length-prefixed message: compressed flag 0, big-endian length. */
export function grpcFrame(message) {
  const msg = Buffer.from(message);
  const out = Buffer.allocUnsafe(5 + msg.length);
  out[0] = 0;
  out.writeUInt32BE(msg.length, 1);
  msg.copy(out, 5);
  return out;
}

/** The message inside one gRPC frame (the benchmark never receives more than one). */
export function grpcUnframe(body) {
  if (body.length < 5) return undefined;
  const len = body.readUInt32BE(1);
  if (body.length !== 5 + len) return undefined;
  return body.subarray(5);
}

export function grpcHeaders(path, token) {
  const h = {
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
  };
  if (token) h.authorization = `Bearer ${token}`;
  return h;
}

/**
 * One unary call over an open node:http2 session with a pre-framed body. Resolves
 * { status, message, body, ms }; status is the grpc-status of the trailers (or of a
 * trailers-only response), -1 when none arrived. Bounded by timeoutMs.
 */
export function rawUnary(session, path, token, framedBody, timeoutMs = 10_000) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let status = -1;
    let message = "";
    const chunks = [];
    let settled = false;
    const done = (extra = {}) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const body = Buffer.concat(chunks);
      resolve({ status, message, body, ms: performance.now() - t0, ...extra });
    };
    const req = session.request(grpcHeaders(path, token));
    const timer = setTimeout(() => {
      req.close(http2.constants.NGHTTP2_CANCEL);
      done({ timeout: true });
    }, timeoutMs);
    const take = (h) => {
      if (h["grpc-status"] !== undefined) status = Number(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) message = decodeURIComponent(String(h["grpc-message"]));
    };
    req.on("response", take);
    req.on("trailers", take);
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => done());
    req.on("close", () => done());
    req.on("error", (err) => {
      message = err.message;
      done();
    });
    req.end(framedBody);
  });
}

export function connect(port) {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** Percentile (nearest rank) of an ascending-sorted numeric array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function round(x, digits = 2) {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** utime+stime of a process, in seconds, from /proc (Linux). */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime is field 14, stime 15.
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

/**
 * Seconds the main thread of a process spent runnable but waiting for a CPU (the
 * second field of /proc/PID/schedstat, in ns). A server that is "at 50 % CPU" while it
 * waited the other 50 % on the run queue was starved by other processes, not idle.
 * (This box has sched_autogroup on: every session gets an equal share of the CPUs, so
 * `nice` elsewhere does not keep other sessions' tests off ours.)
 */
export function runqWaitSeconds(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[1]) / 1e9;
  } catch {
    return NaN;
  }
}

/** VmRSS and VmHWM of a process in MiB. */
export function memoryMb(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(status) ?? [])[1]);
    return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

export function machine() {
  const cpus = os.cpus();
  return { nproc: os.availableParallelism?.() ?? cpus.length, cpu: cpus[0]?.model ?? "?", node: process.version, kernel: os.release() };
}

/** Latencies (ms, any order) → summary. */
export function summarize(latMs) {
  const s = Float64Array.from(latMs).sort();
  let sum = 0;
  for (const x of s) sum += x;
  return { n: s.length, mean_ms: round(sum / s.length, 3), p50_ms: round(percentile(s, 50), 3), p90_ms: round(percentile(s, 90), 3), p99_ms: round(percentile(s, 99), 3), max_ms: round(s[s.length - 1], 3) };
}

function category(url, fn) {
  if (fn === "(garbage collector)") return "gc";
  if (fn === "(idle)") return "idle";
  if (fn === "(program)") return "program (native, outside JS)";
  if (url === "") return "native / builtin";
  if (url.includes("/node_modules/@grpc/grpc-js/")) return "grpc-js";
  if (url.includes("/node_modules/pino") || url.includes("/node_modules/sonic-boom") || url.includes("/node_modules/fast-redact") || url.includes("/node_modules/@pinojs/")) return "pino (logging)";
  if (url.includes("/node_modules/better-sqlite3/")) return "better-sqlite3 (JS side; SQLite itself is native)";
  if (url.includes("/node_modules/jose/")) return "jose";
  if (url.includes("/node_modules/")) return "node_modules (other)";
  if (url.includes("/dist/gen/")) return "secretd protobuf codec (dist/gen)";
  if (url.includes("/dist/")) return "secretd (dist/)";
  if (url.startsWith("node:") || !url.includes("/")) return "node core";
  return "other";
}

function shortUrl(url) {
  const i = url.lastIndexOf("/node_modules/");
  if (i >= 0) return url.slice(i + "/node_modules/".length);
  const d = url.lastIndexOf("/dist/");
  if (d >= 0) return url.slice(d + 1);
  return url.replace(/^file:\/\//, "");
}

/**
 * A .cpuprofile → top self-time functions, time by category, and inclusive time of
 * chosen functions ({ label, fn, url? }: function name and a substring of its script
 * URL). Times in ms and in % of non-idle samples (the main thread blocked in a native
 * call, e.g. an fsync inside COMMIT, counts as busy: it is time the event loop lost).
 */
export function summarizeProfile(profile, { top = 25, inclusive = [] } = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i + 1] ?? 0;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, dt));
  }
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (n) => `${n.callFrame.functionName || "(anonymous)"} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;

  let total = 0;
  let idle = 0;
  const fnSelf = new Map();
  const catSelf = new Map();
  const fnIncl = new Map();
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const fn = n.callFrame.functionName;
    if (fn === "(idle)") {
      idle += us;
      continue;
    }
    total += us;
    const k = key(n);
    fnSelf.set(k, (fnSelf.get(k) ?? 0) + us);
    const c = category(n.callFrame.url, fn);
    catSelf.set(c, (catSelf.get(c) ?? 0) + us);
    // Inclusive time of the requested functions: each sample counts once per entry on its stack.
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)?.callFrame;
      if (!cf) continue;
      for (const spec of inclusive) {
        if (seen.has(spec.label) || cf.functionName !== spec.fn || (spec.url !== undefined && !cf.url.includes(spec.url))) continue;
        seen.add(spec.label);
        fnIncl.set(spec.label, (fnIncl.get(spec.label) ?? 0) + us);
      }
    }
  }
  const pct = (us) => round((100 * us) / total, 1);
  return {
    busy_ms: round(total / 1000, 0),
    idle_ms: round(idle / 1000, 0),
    top_self: [...fnSelf].sort((a, b) => b[1] - a[1]).slice(0, top).map(([fn, us]) => ({ fn, self_ms: round(us / 1000, 1), pct: pct(us) })),
    by_category: [...catSelf].sort((a, b) => b[1] - a[1]).map(([cat, us]) => ({ cat, self_ms: round(us / 1000, 1), pct: pct(us) })),
    inclusive: inclusive.map((spec) => ({ fn: spec.label, incl_ms: round((fnIncl.get(spec.label) ?? 0) / 1000, 1), pct: pct(fnIncl.get(spec.label) ?? 0) })),
  };
}

/**
 * True when `cmd` runs (`cmd --version`, or `cmd ...args`); when it does not and this is
 * root on a Debian-like machine, installs the package `pkg` with apt-get first.
 */
export function haveOrInstall(cmd, pkg, log = () => {}, args = ["--version"]) {
  const runs = () => spawnSync(cmd, args, { stdio: "ignore", timeout: 5000 }).status === 0;
  if (runs()) return true;
  if (process.getuid?.() !== 0 || !existsSync("/usr/bin/apt-get")) return false;
  log(`${cmd} missing: apt-get install -y ${pkg}`);
  spawnSync("sh", ["-c", `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${pkg}`], { stdio: "ignore", timeout: 300_000 });
  return runs();
}
