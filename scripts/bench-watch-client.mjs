// One watch load process for scripts/bench-watch.mjs (forked; IPC only).
//   ← { cmd: "open", port, token, req, count, perChannel }  opens `count` WatchProjection
//     streams of `req` over ceil(count / perChannel) separate HTTP/2 connections
//                                                            → { opened, errors } once every stream has its first message
//   ← { cmd: "report" }                                      → { latencies: [ms…], received, errors }
//   ← { cmd: "close" }                                       cancels every stream, closes the channels, exits
// A message whose first value starts with "t=<epoch ms>;" is an update stamped by the
// orchestrator just before its UpdateSecret call; its latency is receive time − stamp
// (both clocks are this machine's: performance.timeOrigin + performance.now()).
import { credentials, Metadata } from "@grpc/grpc-js";
import { ProjectSecretsRequest, SecretServiceClient } from "../dist/gen/secrets/v1/secrets.js";

const now = () => performance.timeOrigin + performance.now();
const clients = [];
const calls = [];
const latencies = [];
let received = 0;
let errors = 0;
let onCurrent = Infinity; // streams on the newest channel

function open({ port, token, req, count, perChannel }) {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  const request = ProjectSecretsRequest.fromPartial(req);
  let opened = 0;
  let settled = 0;
  const done = () => {
    if (++settled === count) process.send({ opened, errors });
  };
  for (let i = 0; i < count; i++) {
    if (onCurrent >= perChannel) {
      // A channel of its own per client object: separate subchannel pools, separate connections.
      clients.push(new SecretServiceClient(`127.0.0.1:${port}`, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }));
      onCurrent = 0;
    }
    onCurrent++;
    const call = clients[clients.length - 1].watchProjection(request, md);
    calls.push(call);
    let first = true;
    call.on("data", (m) => {
      const t = now();
      received++;
      if (first) {
        first = false;
        opened++;
        done();
        return;
      }
      const v = Buffer.from(m.values[0]?.value ?? []).toString("utf8");
      const stamp = /^t=([0-9.]+);/.exec(v);
      if (stamp) latencies.push(t - Number(stamp[1]));
    });
    call.on("error", (e) => {
      if (e.code === 1) return; // CANCELLED: our own close
      errors++;
      if (first) {
        first = false;
        done();
      }
    });
  }
}

process.on("message", (m) => {
  if (m?.cmd === "open") open(m);
  else if (m?.cmd === "report") process.send({ latencies, received, errors });
  else if (m?.cmd === "close") {
    for (const c of calls) c.cancel();
    for (const c of clients) c.close();
    setTimeout(() => process.exit(0), 200);
  }
});
process.on("disconnect", () => process.exit(0));
process.send({ ready: true });
