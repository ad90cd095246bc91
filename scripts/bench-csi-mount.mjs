// `npm run bench:csi [-- --mounts=N]`: latency of Mount through a real `secretd csi-provider`
// process for a 10-file projection (10 secrets of one 64-byte key each), called as the
// Secrets Store CSI Driver's MountContent calls it (unix socket, authority localhost,
// attributes JSON with the pod's token, permission "420"). Starts secretd
// (scripts/bench-server.mjs, logging on) and the provider (bin/secretd, logging on at
// info); then, one call after another, N of each:
//   direct      ProjectSecrets straight to secretd (the floor: what the provider adds is the rest)
//   mount       Mount with no current_object_version (what the driver sends): files answered
//   unchanged   Mount with the versions the last answer carried: versions only, no files
// Prints p50/p90/p99/max in ms, the load average before and after, and the machine.
// The token is HS256 from the dev key (the verifier caches a verified token, as it
// does for the kubelet's, which re-sends one token until it refreshes it).
import { fork, spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { credentials, Metadata } from "@grpc/grpc-js";
import { SecretServiceClient } from "../dist/gen/secrets/v1/secrets.js";
import { CSIDriverProviderClient, MountRequest } from "../dist/gen/csi/provider/v1alpha1/service.js";
import { readHs256Secret } from "../dist/auth/keys.js";
import { mintToken } from "../dist/auth/mint.js";
import { LAUNCHER, NODE_FLAGS, machine, percentile } from "./bench-lib.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const N = Number((process.argv.find((a) => a.startsWith("--mounts=")) ?? "--mounts=500").split("=")[1]);
const FILES = 10;
const tmp = mkdtempSync(path.join(os.tmpdir(), "secretd-bench-csi-"));
const dataDir = path.join(tmp, "data");
mkdirSync(path.join(tmp, "providers"));
const socket = path.join(tmp, "providers", "secretd.sock");
const load0 = os.loadavg();
const started = new Date().toISOString();

const server = fork(path.join(HERE, "bench-server.mjs"), [], { env: { ...process.env, DATA_DIR: dataDir, LOG_FILE: path.join(tmp, "server.log") }, execArgv: NODE_FLAGS, stdio: ["ignore", "inherit", "inherit", "ipc"] });
const { port } = await new Promise((resolve) => server.on("message", (m) => m?.ready && resolve(m)));
const address = `127.0.0.1:${port}`;
const token = await mintToken({ secret: readHs256Secret(path.join(dataDir, "jwt-dev.key")), tenant: "bench", sub: "bench", roles: ["data-developer"], ttlSec: 3600 });
const client = new SecretServiceClient(address, credentials.createInsecure());
const md = new Metadata();
md.set("authorization", `Bearer ${token}`);
const call = (method, req) => new Promise((resolve, reject) => client[method](req, md, (e, r) => (e ? reject(e) : resolve(r))));

const names = [];
for (let i = 0; i < FILES; i++) {
  const name = `app-${i}`;
  names.push(name);
  await call("createSecret", { mesh: "default", name, type: "Opaque", data: { v: Buffer.alloc(64, 97 + i) }, stringData: {}, labels: {}, annotations: {}, description: "", immutable: false, requestId: "" });
}
const projection = { mesh: "default", items: names.map((name) => ({ name, keys: [], optional: false, envPrefix: "", stage: "" })), knownRevision: "" };

const provider = spawn(LAUNCHER, ["csi-provider", "--socket", socket, "--server", address], { stdio: ["ignore", "ignore", "pipe"] });
let providerLog = "";
provider.stderr.on("data", (b) => (providerLog += b.toString()));
while (!providerLog.includes('"msg":"serving"')) {
  if (provider.exitCode !== null) throw new Error(`provider exited: ${providerLog}`);
  await new Promise((r) => setTimeout(r, 20));
}
const driver = new CSIDriverProviderClient(`unix:${socket}`, credentials.createInsecure(), { "grpc.default_authority": "localhost", "grpc.max_receive_message_length": 4 * 1024 * 1024 });
const attributes = JSON.stringify({
  objects: `items: [${names.join(", ")}]`,
  mesh: "default",
  "csi.storage.k8s.io/pod.name": "web-0",
  "csi.storage.k8s.io/pod.namespace": "default",
  "csi.storage.k8s.io/pod.uid": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
  "csi.storage.k8s.io/serviceAccount.name": "web",
  "csi.storage.k8s.io/serviceAccount.tokens": JSON.stringify({ secretd: { token, expirationTimestamp: new Date(Date.now() + 3600_000).toISOString() } }),
});
const mount = (current) =>
  new Promise((resolve, reject) =>
    driver.mount(MountRequest.fromPartial({ attributes, secrets: "null", targetPath: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount", permission: "420", currentObjectVersion: current }), (e, r) => (e ? reject(e) : resolve(r))),
  );

async function timed(what, fn) {
  for (let i = 0; i < 20; i++) await fn(); // warm-up: JIT, channels, the verified-token cache
  const ms = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  const q = (p) => percentile(ms, p).toFixed(2);
  console.log(`${what.padEnd(10)} n=${N}: p50 ${q(50)} ms, p90 ${q(90)} ms, p99 ${q(99)} ms, max ${ms.at(-1).toFixed(2)} ms`);
}

let last = await mount([]);
if (last.error?.code || last.files.length !== FILES) throw new Error(`unexpected answer: ${last.error?.code} ${last.files.length} files`);
await timed("direct", () => call("projectSecrets", projection));
await timed("mount", async () => {
  last = await mount([]);
  if (last.files.length !== FILES) throw new Error("files missing");
});
await timed("unchanged", async () => {
  const r = await mount(last.objectVersion);
  if (r.files.length !== 0 || r.error?.code) throw new Error("unchanged answer carried files");
});
console.log(`started ${started}; load average before ${load0.map((x) => x.toFixed(2)).join(" ")}, after ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}; ${JSON.stringify(machine())}`);
driver.close();
client.close();
provider.kill("SIGTERM");
server.kill("SIGTERM");
await new Promise((r) => provider.once("exit", r));
rmSync(tmp, { recursive: true, force: true });
