// One watch load process for scripts/bench-watch.mjs and scripts/bench-rotation.mjs (forked; IPC only).
//   ← { cmd: "open", port, token, req, count, perChannel, track? }  opens `count` WatchProjection
//     streams of `req` over ceil(count / perChannel) separate HTTP/2 connections
//                                                            → { opened, errors } once every stream has its first message
//   ← { cmd: "acking", on }                                  from now, every message received is acked (or not) as the
//     sidecar acks it: its own Acker (dist/sidecar/acker.js), the message's consumer_id and revision, on the
//     stream's channel, with the watch's token                → { acking: on }
//   ← { cmd: "await", version }                              → { reached: version, at } once every stream has received a
//     message carrying version ≥ `version` of the secret named `track` (and acked it, while acking);
//     `at`: when the last of them did (epoch ms)
//   ← { cmd: "report" }                                      → { latencies: [ms…], received, errors, acks: [ms…], ackErrors }
//   ← { cmd: "close" }                                       cancels every stream, closes the channels, exits
// A message whose first value starts with "t=<epoch ms>;" is an update stamped by the
// orchestrator just before its UpdateSecret call; its latency is receive time − stamp
// (both clocks are this machine's: performance.timeOrigin + performance.now()).
import { credentials, Metadata } from "@grpc/grpc-js";
import { ProjectSecretsRequest, SecretServiceClient } from "../dist/gen/secrets/v1/secrets.js";
import { Acker } from "../dist/sidecar/acker.js";

const now = () => performance.timeOrigin + performance.now();
const clients = [];
const calls = [];
const latencies = [];
let received = 0;
let errors = 0;
let onCurrent = Infinity; // streams on the newest channel
let acking = false;
const acks = [];
let ackErrors = 0;
/** Per stream of a tracked secret: the newest version received, and acked. */
const tracked = [];
const waiters = [];
let lastReached = 0;

function checkWaiters() {
  for (let i = waiters.length - 1; i >= 0; i--) {
    const w = waiters[i];
    if (tracked.every((t) => (w.acked ? t.acked : t.seen) >= w.version)) {
      waiters.splice(i, 1);
      process.send({ reached: w.version, at: lastReached });
    }
  }
}

function open({ port, token, req, count, perChannel, track }) {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  const request = ProjectSecretsRequest.fromPartial(req);
  const tokenSource = { read: () => token };
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
    const client = clients[clients.length - 1];
    const call = client.watchProjection(request, md);
    calls.push(call);
    const mine = track === undefined ? undefined : { seen: 0, acked: 0, failed: new Set() };
    // The Acker's log: a failed ack is its warn line, naming the revision.
    const ackLog = { warn: (o) => (ackErrors++, mine?.failed.add(o?.revision)), info: () => undefined };
    const acker = new Acker(() => client, tokenSource, ackLog);
    if (mine) tracked.push(mine);
    let first = true;
    call.on("data", (m) => {
      const t = now();
      received++;
      if (mine) {
        const v = Number(m.sources.find((x) => x.name === track)?.version ?? 0);
        mine.seen = Math.max(mine.seen, v);
        lastReached = t;
        if (acking) {
          const a0 = now();
          void acker.ack(m).then(() => {
            const a1 = now();
            acks.push(a1 - a0);
            if (!mine.failed.delete(m.revision)) mine.acked = Math.max(mine.acked, v);
            lastReached = a1;
            checkWaiters();
          });
        }
        checkWaiters();
      }
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
  else if (m?.cmd === "acking") {
    acking = m.on;
    process.send({ acking });
  } else if (m?.cmd === "await") {
    waiters.push({ version: m.version, acked: acking });
    checkWaiters();
  } else if (m?.cmd === "report") process.send({ latencies, received, errors, acks, ackErrors });
  else if (m?.cmd === "close") {
    for (const c of calls) c.cancel();
    for (const c of clients) c.close();
    setTimeout(() => process.exit(0), 200);
  }
});
process.on("disconnect", () => process.exit(0));
process.send({ ready: true });
