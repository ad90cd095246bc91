// `npm run bench:sidecar [-- --updates=N]`: update-to-file latency through a real
// `secretd sidecar` process. Starts secretd (scripts/bench-server.mjs, logging on) and
// one sidecar on a fresh DIR; then N times, one after another: UpdateSecret, and time
// from the call's acknowledgement until DIR/<name>/v holds the new value (polled with
// readFile every 1 ms: the poll adds up to ~1 ms). Prints p50/p90/p99/max in ms.
import { fork, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { credentials, Metadata } from "@grpc/grpc-js";
import { SecretServiceClient } from "../dist/gen/secrets/v1/secrets.js";
import { readHs256Secret } from "../dist/auth/keys.js";
import { mintToken } from "../dist/auth/mint.js";
import { LAUNCHER, NODE_FLAGS } from "./bench-lib.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const N = Number((process.argv.find((a) => a.startsWith("--updates=")) ?? "--updates=200").split("=")[1]);
const tmp = mkdtempSync(path.join(os.tmpdir(), "secretd-bench-sidecar-"));
const dataDir = path.join(tmp, "data");
const dir = path.join(tmp, "out");
mkdirSync(dir);

const server = fork(path.join(HERE, "bench-server.mjs"), [], { env: { ...process.env, DATA_DIR: dataDir, LOG_FILE: path.join(tmp, "server.log") }, execArgv: NODE_FLAGS, stdio: ["ignore", "inherit", "inherit", "ipc"] });
const { port } = await new Promise((resolve) => server.on("message", (m) => m?.ready && resolve(m)));
const address = `127.0.0.1:${port}`;
const token = await mintToken({ secret: readHs256Secret(path.join(dataDir, "jwt-dev.key")), tenant: "bench", sub: "bench", roles: ["data-developer"], ttlSec: 3600 });
const client = new SecretServiceClient(address, credentials.createInsecure());
const md = new Metadata();
md.set("authorization", `Bearer ${token}`);
const call = (method, req) => new Promise((resolve, reject) => client[method](req, md, (e, r) => (e ? reject(e) : resolve(r))));

let secret = await call("createSecret", { mesh: "default", name: "bench", type: "Opaque", data: { v: Buffer.from("0") }, stringData: {}, labels: {}, annotations: {}, description: "", immutable: false, requestId: "" });
writeFileSync(path.join(tmp, "token"), token);
writeFileSync(path.join(tmp, "p.yaml"), "mesh: default\nitems:\n  - bench\n");
const sidecar = spawn(LAUNCHER, ["sidecar", "--dir", dir, "--projection", path.join(tmp, "p.yaml"), "--token-file", path.join(tmp, "token"), "--server", address, "--log-level", "warn"], { stdio: ["ignore", "inherit", "inherit"] });

const read = () => {
  try {
    return readFileSync(path.join(dir, "bench/v"), "utf8");
  } catch {
    return undefined;
  }
};
const until = async (want) => {
  while (read() !== want) await new Promise((r) => setTimeout(r, 1));
};
await until("0");
const ms = [];
for (let i = 1; i <= N; i++) {
  secret = await call("updateSecret", { mesh: "default", name: "bench", etag: secret.etag, data: { v: Buffer.from(String(i)) }, stringData: {}, labels: {}, annotations: {}, description: "" });
  const t0 = performance.now();
  await until(String(i));
  ms.push(performance.now() - t0);
}
ms.sort((a, b) => a - b);
const q = (p) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))].toFixed(1);
console.log(`update-to-file through a sidecar process, ${N} sequential updates: p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, p99 ${q(0.99)} ms, max ${ms.at(-1).toFixed(1)} ms`);
sidecar.kill("SIGTERM");
server.kill("SIGTERM");
client.close();
await new Promise((r) => server.once("exit", r));
rmSync(tmp, { recursive: true, force: true });
