// The peers of the whole-box benchmark (SPEC §9), started by scripts/bench.mjs:
//   * etcd 3.4 (Debian `etcd-server`, installed by the bench when missing) on loopback,
//     holding one 1 KiB value for Range;
//   * `secretd serve --workers N` (the real command, bin/secretd) on a fresh data dir.
// Each returns what bench.mjs needs to drive it with the same h2load settings.
import { spawn } from "node:child_process";
import { mkdirSync, openSync } from "node:fs";
import path from "node:path";
import { haveOrInstall, LAUNCHER } from "./bench-lib.mjs";
import { freePort } from "./free-port.mjs";
import { parseServingLine } from "./serving-line.mjs";

export function haveEtcd() {
  return haveOrInstall("etcd", "etcd-server");
}

/** Protobuf: field `n` (length-delimited) holding `bytes`. */
function field(n, bytes) {
  const len = [];
  let l = bytes.length;
  while (l > 0x7f) {
    len.push((l & 0x7f) | 0x80);
    l >>>= 7;
  }
  len.push(l);
  return Buffer.concat([Buffer.from([(n << 3) | 2, ...len]), bytes]);
}

/** PutRequest { key = 1, value = 2 } and RangeRequest { key = 1 } of etcdserverpb. */
export const etcdPut = (key, value) => Buffer.concat([field(1, Buffer.from(key)), field(2, value)]);
export const etcdRange = (key) => field(1, Buffer.from(key));

/** etcd with its data in `dir`; `track` registers the child for the bench's cleanup. */
export async function startEtcd(dir, track) {
  const client = await freePort();
  const peer = await freePort();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const url = (p) => `http://127.0.0.1:${p}`;
  const child = track(
    spawn(
      "etcd",
      [
        "--name", "bench", "--data-dir", dir, "--log-level", "error",
        "--listen-client-urls", url(client), "--advertise-client-urls", url(client),
        "--listen-peer-urls", url(peer), "--initial-advertise-peer-urls", url(peer), "--initial-cluster", `bench=${url(peer)}`,
      ],
      // etcd (and its gRPC library) log to stderr even at --log-level error: into a file, not over the bench's output.
      { stdio: ["ignore", "ignore", openSync(path.join(dir, "..", "etcd.log"), "a")] },
    ),
    "etcd",
  );
  return { child, pid: child.pid, port: client };
}

/** `secretd serve --workers N`: resolves once every worker serves, with the port and every pid. */
export async function startWorkersServer(dataDir, workers, track, timeoutMs = 60_000) {
  const child = track(
    spawn(LAUNCHER, ["serve", "--workers", String(workers), "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "info"], {
      stdio: ["ignore", "pipe", "ignore"],
      env: { ...process.env, SECRETD_LOG_LEVEL: "info" },
    }),
    "secretd-workers",
  );
  const pids = new Set();
  let buf = "";
  let port;
  const lines = [];
  child.stdout.on("data", (b) => {
    buf += b.toString();
    const parts = buf.split("\n");
    buf = parts.pop();
    for (const p of parts) {
      if (lines.length < 10_000) lines.push(p);
      const s = parseServingLine(p);
      if (s?.kind === "worker" && s.pid) pids.add(s.pid);
      if (s?.kind === "primary") port = s.port;
    }
  });
  const end = Date.now() + timeoutMs;
  while (port === undefined || pids.size < workers) {
    if (child.exitCode !== null) throw new Error(`secretd --workers ${workers} exited ${child.exitCode}`);
    if (Date.now() > end) throw new Error(`secretd --workers ${workers} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, port, primaryPid: child.pid, workerPids: [...pids] };
}
