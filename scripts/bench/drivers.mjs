// The load drivers of scripts/bench.mjs: h2load (one C process, pre-framed gRPC bodies)
// or raw-HTTP/2 Node processes (scripts/bench-loader.mjs), and the real grpc-js client
// used to seed and check answers.
import { fork, spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { Metadata } from "@grpc/grpc-js";
import { haveOrInstall } from "../bench-lib.mjs";
import { option, say } from "./config.mjs";
import { onceMessage, SCRIPTS, track } from "./process.mjs";

export function chooseGenerator() {
  const wanted = option("generator") ?? "h2load";
  if (wanted === "node") return { kind: "node", why: "--generator=node" };
  if (haveOrInstall("h2load", "nghttp2-client", say)) return { kind: "h2load", why: "h2load found or installed (nghttp2-client)" };
  return { kind: "node", why: "h2load unavailable and not installable: raw-HTTP/2 Node processes" };
}

// ---------------------------------------------------------------- load: h2load
function parseH2load(out) {
  const num = (re) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : NaN;
  };
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  return {
    rps: num(/finished in [\d.]+m?s, ([\d.]+) req\/s/),
    done: req ? Number(req[3]) : NaN,
    succeeded: req ? Number(req[4]) : NaN,
    failed: req ? Number(req[5]) + Number(req[6]) + Number(req[7]) : NaN,
    status2xx: num(/status codes: (\d+) 2xx/),
    dataBytes: num(/\((\d+)\) data/),
  };
}

/**
 * A closed loop for `seconds`, or with `rps` an open loop of `requests` calls: each
 * connection sends `rps` calls a second whatever the answers, its connections opened
 * 1 ms apart (h2load's -r excludes -D, hence a count instead of a duration).
 */
export function h2load({ port, path: p, token, bodyFile, seconds, connections, streams, logFile, rps, requests }, addPid) {
  const args = ["-c", String(connections), "-m", String(streams), "-t", "1", "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", bodyFile];
  if (rps) args.push(`--rps=${rps}`, "-n", String(requests), "-r", "1", "--rate-period=1ms");
  else args.push("-D", `${Math.round(seconds * 1000)}ms`);
  if (token) args.push("-H", `authorization: Bearer ${token}`);
  if (logFile) args.push("--log-file", logFile);
  args.push(`http://127.0.0.1:${port}${p}`);
  return new Promise((resolve, reject) => {
    const child = track(spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] }), "h2load");
    addPid?.(child.pid);
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (out += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), ((rps ? requests / connections / rps : seconds) + 30) * 1000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`h2load exited ${code}: ${out.slice(-500)}`));
      else resolve(parseH2load(out));
    });
  });
}

export async function readLatencyLog(file) {
  // h2load --log-file: start time (µs since epoch) \t HTTP status \t duration (µs)
  const lat = [];
  let non200 = 0;
  const rl = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of rl) {
    const parts = line.split("\t");
    if (parts.length < 3) continue;
    if (parts[1] !== "200") non200++;
    lat.push(Number(parts[2]) / 1000);
  }
  return { lat, non200 };
}

// ---------------------------------------------------------------- load: Node processes
/** `onGo` is called when the loaders are told to start (after every one is connected and ready). */
export async function nodeLoad(jobs, addPid, onGo) {
  const procs = jobs.map((job, i) => {
    const c = track(fork(path.join(SCRIPTS, "bench-loader.mjs"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] }), `loader-${i}`);
    addPid?.(c.pid);
    return c;
  });
  const results = procs.map((c) => onceMessage(c, (m) => m?.result, 30 * 60_000, "loader run"));
  await Promise.all(procs.map((c, i) => {
    const ready = onceMessage(c, (m) => m?.ready, 30_000, "loader ready");
    c.send(jobs[i]);
    return ready;
  }));
  const started = performance.now();
  for (const c of procs) c.send({ go: true });
  onGo?.();
  const rs = (await Promise.all(results)).map((m) => m.result);
  const wallS = (performance.now() - started) / 1000;
  const lat = [];
  let ok = 0;
  let failed = 0;
  let badSize = 0;
  const codes = {};
  for (const r of rs) {
    ok += r.ok;
    failed += r.failed;
    badSize += r.badSize ?? 0;
    for (const [k, v] of Object.entries(r.codes)) codes[k] = (codes[k] ?? 0) + v;
    const b = Buffer.from(r.latUs, "base64");
    const u = new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    for (const x of u) lat.push(x / 1000);
  }
  return { ok, failed, badSize, codes, wallS, seconds: rs[0]?.seconds, lat };
}

// ---------------------------------------------------------------- real-client helpers
export function clientCall(client, method, req, token) {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    const deadlineAt = new Date(Date.now() + 30_000);
    client[method](req, md, { deadline: deadlineAt }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

export async function pool(items, concurrency, fn) {
  let i = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (i < items.length) {
      const item = items[i++];
      await fn(item);
    }
  });
  await Promise.all(workers);
}
