// The victim tenant of scripts/bench-isolation.mjs, in its own process so that the
// attacker's work in the orchestrator never delays the victim's measurements.
// IPC:
//   ← { cmd: "measure", port, token, mesh, getName, watchName, calls, rate, updateEveryMs }
//   → { measured: { get: { lat: [ms...], errors, codes: { code: n } }, watch: { lat: [ms...], missed } } }
//   ← { cmd: "close" }   exits
// GetSecret is open loop: call i is due at start + i / rate and its latency runs from
// that due time, so a stalled server delays every call due during the stall (no
// coordinated omission). Meanwhile the victim updates `watchName` every updateEveryMs,
// each value stamped with its sequence number, and a WatchProjection of it times each
// update from its UpdateSecret call to the first message carrying that stamp or a
// later one (the hub may coalesce updates).
import { credentials, Metadata } from "@grpc/grpc-js";
import { GetSecretRequest, ProjectSecretsRequest, SecretServiceClient, UpdateSecretRequest } from "../dist/gen/secrets/v1/secrets.js";

const CALL_DEADLINE_MS = 10_000;
const WATCH_GRACE_MS = 3_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let client;
let clientPort;

function md(token) {
  const m = new Metadata();
  m.set("authorization", `Bearer ${token}`);
  return m;
}

function unary(method, req, token) {
  return new Promise((resolve, reject) => client[method](req, md(token), { deadline: Date.now() + CALL_DEADLINE_MS }, (e, r) => (e ? reject(e) : resolve(r))));
}

async function measureGets({ token, mesh, getName, calls, rate }) {
  const req = GetSecretRequest.fromPartial({ mesh, name: getName });
  const lat = [];
  const codes = {};
  let errors = 0;
  const t0 = performance.now();
  let issued = 0;
  const inflight = new Set();
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(calls, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      for (; issued < due; issued++) {
        const dueAt = t0 + (issued * 1000) / rate;
        const p = unary("getSecret", req, token).then(
          (r) => {
            if (!r.data?.password || r.data.password.length === 0) {
              errors++;
              codes.wrong_answer = (codes.wrong_answer ?? 0) + 1;
            }
            lat.push(performance.now() - dueAt);
          },
          (e) => {
            errors++;
            codes[e.code ?? "?"] = (codes[e.code ?? "?"] ?? 0) + 1;
            lat.push(performance.now() - dueAt);
          },
        );
        inflight.add(p);
        p.finally(() => inflight.delete(p));
      }
      if (issued < calls) setTimeout(tick, 2);
      else Promise.all([...inflight]).then(resolve);
    };
    tick();
  });
  return { lat, errors, codes, seconds: (performance.now() - t0) / 1000 };
}

/** Updates + watch deliveries while `running()` holds; resolves the delivery latencies. */
let runs = 0;
async function measureWatch({ token, mesh, watchName, updateEveryMs }, running) {
  const run = ++runs;
  const sentAt = [];
  const lat = [];
  let delivered = -1; // highest stamp seen
  let watchError;
  const call = client.watchProjection(ProjectSecretsRequest.fromPartial({ mesh, items: [{ name: watchName }] }), md(token));
  let first;
  let firstMessage = false;
  const firstSeen = new Promise((r) => (first = r));
  call.on("data", (p) => {
    firstMessage = true;
    first();
    const v = p.values?.[0]?.value;
    const m = v ? /^r=(\d+);s=(\d+);/.exec(Buffer.from(v).toString()) : null;
    if (!m || Number(m[1]) !== run) return; // the current value of an earlier run
    const stamp = Number(m[2]);
    const now = performance.now();
    for (let i = delivered + 1; i <= stamp && i < sentAt.length; i++) lat.push(now - sentAt[i]);
    delivered = Math.max(delivered, stamp);
  });
  call.on("error", (e) => {
    watchError = e.code;
    first();
  });
  // The first message (the current value) before any update; the GetSecret measurement may end first.
  while (!firstMessage && watchError === undefined && running()) await Promise.race([firstSeen, sleep(50)]);
  const currentEtag = () => unary("getSecret", GetSecretRequest.fromPartial({ mesh, name: watchName }), token).then((r) => r.etag, () => undefined);
  let etag = await currentEtag();
  let updateErrors = 0;
  while (running()) {
    if (etag === undefined) etag = await currentEtag();
    if (etag === undefined) {
      updateErrors++; // the victim could not even read its secret's etag
    } else {
      const i = sentAt.length;
      sentAt.push(performance.now());
      try {
        const r = await unary("updateSecret", UpdateSecretRequest.fromPartial({ mesh, name: watchName, etag, stringData: { v: `r=${run};s=${i};${"x".repeat(200)}` }, updateMask: ["data"] }), token);
        etag = r.etag;
      } catch {
        updateErrors++;
        etag = undefined;
        sentAt.pop(); // never written: nothing to deliver
      }
    }
    await sleep(updateEveryMs);
  }
  const end = performance.now() + WATCH_GRACE_MS;
  while (delivered < sentAt.length - 1 && performance.now() < end && watchError === undefined) await sleep(20);
  call.cancel();
  return { lat, first_message: firstMessage, updates: sentAt.length, missed: sentAt.length - 1 - delivered, update_errors: updateErrors, ended_with: watchError ?? null };
}

process.on("message", (m) => {
  (async () => {
    if (m?.cmd === "measure") {
      if (clientPort !== m.port) {
        client?.close();
        client = new SecretServiceClient(`127.0.0.1:${m.port}`, credentials.createInsecure());
        clientPort = m.port;
      }
      let done = false;
      const watch = m.updateEveryMs > 0 ? measureWatch(m, () => !done) : Promise.resolve(undefined);
      const get = await measureGets(m);
      done = true;
      process.send?.({ measured: { get, watch: await watch } });
    } else if (m?.cmd === "close") {
      client?.close();
      process.exit(0);
    }
  })().catch((err) => process.send?.({ error: String(err?.stack ?? err) }));
});
process.on("disconnect", () => process.exit(0));
process.send?.({ ready: true });
