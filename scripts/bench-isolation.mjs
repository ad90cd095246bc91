// `npm run bench:isolation [-- --calls=2000] [-- --rate=400] [-- --only=a,b] [-- --rss-ceiling-mb=2048] [-- --keep]`
//
// Noisy neighbours (#27, SPEC §9: no attacker raises another tenant's p99 by more than
// 100 ms, and no input crashes the process). For each attack below, a fresh secretd
// (scripts/bench-server.mjs: startApp on 127.0.0.1:0, its own temp data dir, logging ON
// at info into a file, the V8 flags of bin/secretd) and a victim tenant in its own
// process (scripts/bench-isolation-victim.mjs): the victim's GetSecret, open loop at
// --rate calls/s for --calls calls, and one WatchProjection timed from UpdateSecret to
// delivery (an update every 250 ms), measured alone and then again while the attacker
// runs from this process. Per attack: the victim's p50/p99/max alone and under attack,
// the p99 delta, whether the server process is still alive, the victim's failed calls,
// the server's peak RSS while attacked (VmRSS sampled every 50 ms) and VmHWM, and
// ok = delta ≤ 100 ms and alive and every victim call succeeded.
// Attacks (all bounded in count and time; see ATTACKS):
//   unread_answers      10 raw connections × 40 GetSecret of a 1 MiB secret at stream window 0, 1 byte of window every 2 s
//   small_frames        24 streams (GetSecret and WatchProjection, no token) of 1-byte DATA frames of a 2 MB gRPC message, never finished
//   unfinished_bodies   3 connections × 100 streams (no token), each 2 MB of a message that never completes
//   watches             1.9 MB known_revision watches (role-less), and 1,000 idle watches of 64 sources each by one tenant
//   projection_amplification  ProjectSecrets of 180 key-less items over secrets of 4,096 empty keys
//   refused_audit_flood role-less ProjectSecrets of 400,000 items, repeated
//   list_pages          8 concurrent ListSecrets (page_size 1000) over 70 secrets of 256 KiB annotations
//   tls_validation      kubernetes.io/tls secrets with a 1 MiB PEM-marker bomb and a DSA key of an 8 KiB modulus
// Safety valve for a shared box: an attack is stopped when the server's RSS passes
// --rss-ceiling-mb (then ok=false, rss_ceiling_hit=true: left alone it would have grown on).
// Every process it starts is killed on exit; loads only hit 127.0.0.1. The last line
// printed is one JSON object with the results.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { credentials, Metadata } from "@grpc/grpc-js";
import { readHs256Secret } from "../dist/auth/keys.js";
import { mintToken } from "../dist/auth/mint.js";
import { CreateSecretRequest, GetSecretRequest, ListSecretsRequest, ProjectSecretsRequest, SecretServiceClient } from "../dist/gen/secrets/v1/secrets.js";
import { connect, grpcFrame, grpcHeaders, machine, memoryMb, NODE_FLAGS, rawUnary, round, summarize } from "./bench-lib.mjs";
import { forkScript, guardRun, makeRunDir, onceMessage } from "./bench/process.mjs";
import { grpcRequestHeaders, RawConnection } from "./raw-h2.mjs";

const argv = process.argv.slice(2);
const option = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const CALLS = Number(option("calls") ?? 2000);
const RATE = Number(option("rate") ?? 400);
const ONLY = option("only")?.split(",");
const RSS_CEILING_MB = Number(option("rss-ceiling-mb") ?? 2048);
const KEEP = argv.includes("--keep");
const BUDGET_MS = 100; // SPEC §9
const UPDATE_EVERY_MS = 250;
const SVC = "/secrets.v1.SecretService";
const VICTIM_MESH = "victim";
const MiB = 1024 * 1024;

const t0 = Date.now();
const say = (msg) => process.stderr.write(`[bench-isolation ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- process hygiene (scripts/bench/process.mjs)
guardRun({ deadlineMs: 10 * 60_000, keep: KEEP, say });
const tmp = makeRunDir("secretd-bench-isolation-");
const alive = (child) => child.exitCode === null && child.signalCode === null;

// ---------------------------------------------------------------- the server and its tenants
function unary(client, method, req, token) {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve, reject) => client[method](req, md, (e, r) => (e ? reject(e) : resolve(r))));
}

async function startWorld(name) {
  const dataDir = path.join(tmp, name);
  const child = forkScript("bench-server.mjs", { DATA_DIR: dataDir, LOG_FILE: path.join(tmp, `${name}.log`) }, { execArgv: NODE_FLAGS });
  const { port, pid } = await onceMessage(child, (m) => m?.ready, 30_000, `${name} start`);
  const key = readHs256Secret(path.join(dataDir, "jwt-dev.key"));
  const mint = (tenant, sub, roles) => mintToken({ secret: key, tenant, sub, roles, ttlSec: 3600 });
  const tokens = {
    victim: await mint("victim", "vera", ["data-developer"]),
    developer: await mint("evil", "mallory", ["data-developer"]),
    admin: await mint("evil", "eve", ["tenant-admin"]),
    roleless: await mint("evil", "nobody", []),
  };
  const client = new SecretServiceClient(`127.0.0.1:${port}`, credentials.createInsecure(), { "grpc.max_receive_message_length": 64 * MiB });
  await unary(client, "createSecret", CreateSecretRequest.fromPartial({ mesh: VICTIM_MESH, name: "db", stringData: { password: "victim-value-Qk4r9Z" } }), tokens.victim);
  await unary(client, "createSecret", CreateSecretRequest.fromPartial({ mesh: VICTIM_MESH, name: "watched", stringData: { v: "s=0;" } }), tokens.victim);
  return { name, child, port, pid, tokens, client, create: (req, token = tokens.developer) => unary(client, "createSecret", CreateSecretRequest.fromPartial(req), token) };
}

async function stopWorld(w) {
  w.client.close();
  if (!alive(w.child)) return;
  const exited = new Promise((r) => w.child.once("exit", r));
  if (w.child.connected) w.child.send({ cmd: "stop" });
  await Promise.race([exited, sleep(5000)]);
  if (alive(w.child)) w.child.kill("SIGKILL");
}

async function auditCounts(w) {
  if (!alive(w.child) || !w.child.connected) return undefined;
  const reply = onceMessage(w.child, (m) => m?.audit !== undefined, 30_000, "audit counts");
  w.child.send({ cmd: "audit" });
  return (await reply.catch(() => ({ audit: undefined }))).audit;
}

// ---------------------------------------------------------------- the victim
let victim;
async function measureVictim(w, calls) {
  const reply = onceMessage(victim, (m) => m?.measured !== undefined, 10 * 60_000, "victim measure");
  victim.send({ cmd: "measure", port: w.port, token: w.tokens.victim, mesh: VICTIM_MESH, getName: "db", watchName: "watched", calls, rate: RATE, updateEveryMs: UPDATE_EVERY_MS });
  const { get, watch } = (await reply).measured;
  const g = summarize(get.lat);
  const wl = watch ? summarize(watch.lat) : undefined;
  return {
    get: { n: g.n, p50_ms: g.p50_ms, p99_ms: g.p99_ms, max_ms: g.max_ms, errors: get.errors, codes: get.codes, seconds: round(get.seconds) },
    watch: watch && { n: wl.n, p50_ms: wl.p50_ms, p99_ms: wl.p99_ms, max_ms: wl.max_ms, updates: watch.updates, missed: watch.missed, update_errors: watch.update_errors, first_message: watch.first_message, ended_with: watch.ended_with },
  };
}

// ---------------------------------------------------------------- attack helpers
/** Keeps `n` copies of `job(i)` going until stopped; each job is one call, counted by its outcome. */
function loop(n, job) {
  const stats = { in_flight: n, calls: 0, calls_per_s: 0, mean_ms: 0, codes: {} };
  const started = performance.now();
  let totalMs = 0;
  let running = true;
  const runners = Array.from({ length: n }, async (_, i) => {
    while (running) {
      const c0 = performance.now();
      const r = await job(i).catch((e) => ({ status: String(e?.code ?? e?.message ?? e) }));
      totalMs += performance.now() - c0;
      stats.calls++;
      stats.mean_ms = round(totalMs / stats.calls, 1);
      stats.calls_per_s = round((1000 * stats.calls) / (performance.now() - started), 1);
      const code = r.timeout ? "timeout" : String(r.status);
      stats.codes[code] = (stats.codes[code] ?? 0) + 1;
      if (r.status === -1 && !r.timeout) await sleep(50); // connection gone: do not spin
    }
  });
  return {
    stats,
    async stop() {
      running = false;
      await Promise.race([Promise.all(runners), sleep(15_000)]);
    },
  };
}

async function sessions(port, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const s = await connect(port);
    s.on("error", () => {});
    out.push(s);
  }
  return out;
}

const framed = (Type, partial) => grpcFrame(Type.encode(Type.fromPartial(partial)).finish());
/** A session of the list, reconnected when the server closed it. */
async function liveSession(list, i, port) {
  const k = i % list.length;
  if (list[k].closed || list[k].destroyed) {
    list[k] = await connect(port);
    list[k].on("error", () => {});
  }
  return list[k];
}

/** DER, by hand (a DSA key no library would make): see test/security/costly-requests.test.ts. */
function tlv(tag, body) {
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : n < 0x10000 ? Buffer.from([0x82, n >> 8, n & 0xff]) : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
const seq = (...xs) => tlv(0x30, Buffer.concat(xs));
function bigInt(bytes) {
  const b = randomBytes(bytes);
  b[0] = 0x7f;
  b[b.length - 1] |= 1;
  return tlv(0x02, b);
}
const pem = (label, der) => `-----BEGIN ${label}-----\n${der.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END ${label}-----\n`;
function hugeDsaKey(pBytes) {
  const params = seq(bigInt(pBytes), bigInt(32), tlv(0x02, Buffer.from([2])));
  const x = tlv(0x02, Buffer.concat([Buffer.from([0x01]), randomBytes(31)]));
  return pem("PRIVATE KEY", seq(tlv(0x02, Buffer.from([0])), seq(tlv(0x06, Buffer.from("2a8648ce380401", "hex")), params), tlv(0x04, x)));
}
function selfSignedCert() {
  const dir = mkdtempSync(path.join(tmp, "cert-"));
  const r = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path.join(dir, "k"), "-out", path.join(dir, "c"), "-days", "3", "-subj", "/CN=t"], { stdio: "ignore", timeout: 20_000 });
  return r.status === 0 ? readFileSync(path.join(dir, "c"), "utf8") : undefined;
}

// ---------------------------------------------------------------- the attacks
// Each: setup(w) before the victim's lone measurement; start(w) returns { stats, stop() }
// once the attack is in place; minSeconds stretches both victim measurements.
const ATTACKS = [
  {
    name: "unread_answers",
    what: "10 raw connections × 40 GetSecret of a 1 MiB secret at stream window 0, 1 byte of window per stream every 2 s (data-developer)",
    async setup(w) {
      await w.create({ mesh: "big", name: "big", data: { v: randomBytes(MiB - 64) } });
    },
    async start(w) {
      const CONNS = 10;
      const STREAMS = 40;
      const body = framed(GetSecretRequest, { mesh: "big", name: "big" });
      const conns = [];
      for (let c = 0; c < CONNS; c++) {
        const conn = await RawConnection.open(w.port, { receiveWindow: 0 });
        for (let s = 0; s < STREAMS; s++) {
          const id = 1 + 2 * s;
          conn.headers(id, grpcRequestHeaders(w.port, `${SVC}/GetSecret`, w.tokens.developer));
          conn.data(id, body, true);
        }
        conns.push(conn);
      }
      const trickle = setInterval(() => {
        for (const conn of conns) for (let s = 0; s < STREAMS; s++) if (!conn.ends.has(1 + 2 * s)) conn.windowUpdate(1 + 2 * s, 1);
      }, 2000);
      await sleep(1500); // the answers are built and queued
      const stats = () => ({ streams: CONNS * STREAMS, answered_or_refused: conns.reduce((a, c) => a + c.ends.size, 0), connections_closed_by_server: conns.filter((c) => c.closed || c.goaway).length });
      return {
        get stats() {
          return stats();
        },
        async stop() {
          clearInterval(trickle);
          for (const c of conns) c.close();
        },
      };
    },
  },
  {
    name: "small_frames",
    what: "4 raw connections × 6 streams (GetSecret and WatchProjection, no token), 1-byte DATA frames of a 2,000,000-byte gRPC message, never finished; a stream the server ends is replaced; at most 16 MiB of body",
    async start(w) {
      const CONNS = 4;
      const STREAMS = 6;
      const BUDGET = 16 * MiB;
      let sent = 0;
      let replaced = 0;
      let connsOpened = 0;
      let running = true;
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(2_000_000, 1);
      const slots = [];
      const openStream = (slot) => {
        const path = slot.index % 2 === 0 ? `${SVC}/GetSecret` : `${SVC}/WatchProjection`;
        slot.id = slot.conn.nextId;
        slot.conn.nextId += 2;
        slot.conn.headers(slot.id, grpcRequestHeaders(w.port, path));
        slot.conn.data(slot.id, prefix);
      };
      const pump = (conn) => {
        if (!running || conn.closed) return;
        for (const slot of slots.filter((s) => s.conn === conn)) {
          if (conn.ends.has(slot.id)) {
            replaced++;
            openStream(slot);
          }
          while (sent < BUDGET && conn.buffered < 256 * 1024) {
            const n = Math.min(conn.connWindow, conn.streamWindow(slot.id), 2048, BUDGET - sent);
            if (n <= 0) break;
            conn.oneByteFrames(slot.id, n);
            sent += n;
          }
        }
      };
      const openConn = async () => {
        const conn = await RawConnection.open(w.port);
        connsOpened++;
        conn.nextId = 1;
        conn.onWritable = () => setImmediate(() => pump(conn));
        return conn;
      };
      for (let c = 0; c < CONNS; c++) {
        const conn = await openConn();
        for (let s = 0; s < STREAMS; s++) {
          const slot = { conn, index: c * STREAMS + s };
          slots.push(slot);
          openStream(slot);
        }
        pump(conn);
      }
      // Keep pumping (windows may reopen without an event we see) and replace closed connections.
      const keeper = setInterval(async () => {
        for (const conn of new Set(slots.map((s) => s.conn))) {
          if (conn.closed && connsOpened < CONNS * 5 && running) {
            const fresh = await openConn();
            for (const slot of slots.filter((s) => s.conn === conn)) {
              slot.conn = fresh;
              openStream(slot);
            }
            pump(fresh);
          } else pump(conn);
        }
      }, 100);
      await sleep(1000);
      return {
        get stats() {
          return { body_bytes_sent: sent, budget_bytes: BUDGET, streams_replaced: replaced, connections_opened: connsOpened };
        },
        async stop() {
          running = false;
          clearInterval(keeper);
          for (const conn of new Set(slots.map((s) => s.conn))) conn.close();
        },
      };
    },
  },
  {
    name: "unfinished_bodies",
    what: "3 node:http2 connections × 100 streams (no token), each 2,000,000 bytes of a message declared 2,000,005 bytes long, never finished; a closed stream is replaced",
    async start(w) {
      const CONNS = 3;
      const STREAMS = 100;
      const body = Buffer.alloc(2_000_000, 0x61);
      body[0] = 0;
      body.writeUInt32BE(2_000_000, 1); // 5 + 2,000,000 bytes declared; 2,000,000 sent
      let running = true;
      let opened = 0;
      let closedByServer = 0;
      const list = await sessions(w.port, CONNS);
      const open = async (i) => {
        if (!running || opened >= CONNS * STREAMS * 3) return;
        const s = await liveSession(list, i, w.port).catch(() => undefined);
        if (!s) return;
        opened++;
        const req = s.request(grpcHeaders(`${SVC}/GetSecret`));
        req.on("error", () => {});
        req.on("close", () => {
          if (!running) return;
          closedByServer++;
          setTimeout(() => void open(i), 50);
        });
        req.resume();
        req.write(body);
      };
      for (let i = 0; i < CONNS * STREAMS; i++) await open(i);
      await sleep(1500);
      return {
        get stats() {
          return { streams_opened: opened, streams_closed_by_server: closedByServer };
        },
        async stop() {
          running = false;
          for (const s of list) s.destroy();
        },
      };
    },
  },
  {
    name: "watches",
    what: "role-less watches with a 1.9 MB known_revision (8 in flight, repeated), and 1,000 idle watches of 64 sources each (64,000 lease rows) by one data-developer, across a lease renewal",
    minSeconds: 10,
    async setup(w) {
      for (let i = 0; i < 64; i++) await w.create({ mesh: "watched", name: `w-${i}`, stringData: { [`k${i}`]: `v${i}` } }); // distinct keys: 64 items project no duplicate name
    },
    async start(w) {
      const IDLE = 1000;
      const PER_SESSION = 200;
      const idleBody = framed(ProjectSecretsRequest, { mesh: "watched", items: Array.from({ length: 64 }, (_, i) => ({ name: `w-${i}` })) });
      const idleSessions = await sessions(w.port, IDLE / PER_SESSION);
      let first = 0;
      let idleEnded = 0;
      const firsts = [];
      for (let i = 0; i < IDLE; i++) {
        const req = idleSessions[i % idleSessions.length].request(grpcHeaders(`${SVC}/WatchProjection`, w.tokens.developer));
        req.on("error", () => {});
        firsts.push(
          new Promise((resolve) => {
            req.once("data", () => {
              first++;
              resolve();
            });
            req.once("close", () => {
              idleEnded++;
              resolve();
            });
          }),
        );
        req.resume();
        req.end(idleBody);
      }
      const opening = performance.now();
      await Promise.race([Promise.all(firsts), sleep(60_000)]);
      const openSeconds = round((performance.now() - opening) / 1000, 1);
      const huge = framed(ProjectSecretsRequest, { mesh: "m", items: [{ name: "nothing", optional: true }], knownRevision: "f".repeat(1_900_000) });
      const hugeSessions = await sessions(w.port, 2);
      const flood = loop(8, async (i) => rawUnary(await liveSession(hugeSessions, i, w.port), `${SVC}/WatchProjection`, w.tokens.roleless, huge, 15_000));
      await sleep(500);
      return {
        get stats() {
          return { idle_watches: IDLE, idle_first_messages: first, idle_open_seconds: openSeconds, idle_ended: idleEnded, huge_revision_watches: flood.stats };
        },
        async stop() {
          await flood.stop();
          for (const s of [...idleSessions, ...hugeSessions]) s.destroy();
        },
      };
    },
  },
  {
    name: "projection_amplification",
    what: "ProjectSecrets of 180 key-less items over 8 secrets of 4,096 empty keys (737,280 values once expanded), 4 in flight, repeated (data-developer)",
    async setup(w) {
      const empty = Object.fromEntries(Array.from({ length: 4096 }, (_, i) => [`k${i}`, ""]));
      for (let i = 0; i < 8; i++) await w.create({ mesh: "amp", name: `wide-${i}`, stringData: empty });
    },
    async start(w) {
      const body = framed(ProjectSecretsRequest, { mesh: "amp", items: Array.from({ length: 180 }, (_, i) => ({ name: `wide-${i % 8}`, envPrefix: `P${i}_` })) });
      const list = await sessions(w.port, 2);
      const l = loop(4, async (i) => rawUnary(await liveSession(list, i, w.port), `${SVC}/ProjectSecrets`, w.tokens.developer, body, 30_000));
      return {
        get stats() {
          return l.stats;
        },
        async stop() {
          await l.stop();
          for (const s of list) s.destroy();
        },
      };
    },
  },
  {
    name: "refused_audit_flood",
    what: "role-less ProjectSecrets of 400,000 items (2 MB), 3 in flight, repeated",
    async start(w) {
      const body = framed(ProjectSecretsRequest, { mesh: "m", items: Array.from({ length: 400_000 }, () => ({ name: "a" })) });
      const list = await sessions(w.port, 3);
      const l = loop(3, async (i) => rawUnary(await liveSession(list, i, w.port), `${SVC}/ProjectSecrets`, w.tokens.roleless, body, 30_000));
      return {
        get stats() {
          return { ...l.stats, request_bytes: body.length };
        },
        async stop() {
          await l.stop();
          for (const s of list) s.destroy();
        },
      };
    },
  },
  {
    name: "list_pages",
    what: "8 concurrent ListSecrets (page_size 1000) over 70 secrets of 256 KiB annotations (~17.5 MiB), repeated (tenant-admin of its own tenant)",
    async setup(w) {
      const fat = { "example.com/blob": "a".repeat(256 * 1024 - 32) };
      for (let i = 0; i < 70; i++) await w.create({ mesh: "fat", name: `fat-${String(i).padStart(3, "0")}`, stringData: { k: "v" }, annotations: fat });
    },
    async start(w) {
      const body = framed(ListSecretsRequest, { mesh: "fat", pageSize: 1000 });
      const list = await sessions(w.port, 4);
      const l = loop(8, async (i) => {
        const r = await rawUnary(await liveSession(list, i, w.port), `${SVC}/ListSecrets`, w.tokens.admin, body, 30_000);
        return { ...r, body: undefined };
      });
      return {
        get stats() {
          return l.stats;
        },
        async stop() {
          await l.stop();
          for (const s of list) s.destroy();
        },
      };
    },
  },
  {
    name: "tls_validation",
    what: "CreateSecret of kubernetes.io/tls with a 1 MiB PEM-marker bomb, and (when openssl is here) a valid certificate with a PKCS#8 DSA key of an 8 KiB modulus, 2 of each in flight, repeated (data-developer)",
    async start(w) {
      const markers = "-----BEGIN CERTIFICATE-----\n".repeat(Math.floor((MiB - 1024) / 28));
      const bomb = framed(CreateSecretRequest, { mesh: "tls", name: "bomb", type: "kubernetes.io/tls", stringData: { "tls.crt": markers, "tls.key": "x" } });
      const cert = selfSignedCert();
      const dsa = cert && framed(CreateSecretRequest, { mesh: "tls", name: "dsa", type: "kubernetes.io/tls", stringData: { "tls.crt": cert, "tls.key": hugeDsaKey(8 * 1024) } });
      const list = await sessions(w.port, 2);
      const bodies = dsa ? [bomb, bomb, dsa, dsa] : [bomb, bomb];
      const l = loop(bodies.length, async (i) => rawUnary(await liveSession(list, i, w.port), `${SVC}/CreateSecret`, w.tokens.developer, bodies[i], 30_000));
      return {
        get stats() {
          return { ...l.stats, dsa_key: Boolean(dsa) };
        },
        async stop() {
          await l.stop();
          for (const s of list) s.destroy();
        },
      };
    },
  },
];

// ---------------------------------------------------------------- one attack, start to end
async function runAttack(attack) {
  const w = await startWorld(attack.name);
  const calls = Math.max(CALLS, Math.ceil(RATE * (attack.minSeconds ?? 0)));
  const result = { attack: attack.name, what: attack.what, calls };
  let crashed;
  w.child.once("exit", (code, signal) => (crashed = { code, signal }));
  try {
    await attack.setup?.(w);
    await measureVictim(w, Math.min(400, calls)); // warm-up
    await sleep(500);
    const alone = await measureVictim(w, calls);
    const rssBefore = memoryMb(w.pid).rss;
    let peak = rssBefore;
    let ceilingHit = false;
    let handle;
    const sampler = setInterval(() => {
      const { rss } = memoryMb(w.pid);
      if (Number.isFinite(rss)) peak = Math.max(peak, rss);
      if (rss > RSS_CEILING_MB && !ceilingHit) {
        ceilingHit = true;
        say(`${attack.name}: server RSS ${round(rss)} MiB passed the ceiling of ${RSS_CEILING_MB} MiB: stopping the attack`);
        void handle?.stop();
      }
    }, 50);
    let under;
    let attackError;
    try {
      handle = await attack.start(w);
      under = alive(w.child) ? await measureVictim(w, calls) : undefined;
    } catch (err) {
      attackError = String(err?.message ?? err);
    }
    const attackerStats = handle && JSON.parse(JSON.stringify(handle.stats));
    await handle?.stop();
    clearInterval(sampler);
    const audit = await auditCounts(w);
    const hwm = memoryMb(w.pid).hwm;
    let after;
    if (alive(w.child)) after = await measureVictim(w, 200).catch(() => undefined);
    const serverAlive = alive(w.child) && crashed === undefined;
    const victimErrors = under ? under.get.errors + (under.watch?.missed ?? 0) + (under.watch?.update_errors ?? 0) + (under.watch?.ended_with !== null ? 1 : 0) + (under.watch?.first_message ? 0 : 1) : undefined;
    const delta = under ? round(under.get.p99_ms - alone.get.p99_ms, 3) : undefined;
    // Right after the attacker stops: the server tearing its streams down is the attacker's work too.
    const deltaAfter = after ? round(after.get.p99_ms - alone.get.p99_ms, 3) : undefined;
    Object.assign(result, {
      alone,
      under: under ?? null,
      after: after?.get ?? null,
      victim_p99_alone_ms: alone.get.p99_ms,
      victim_p99_under_ms: under?.get.p99_ms ?? null,
      victim_max_under_ms: under?.get.max_ms ?? null,
      delta_p99_ms: delta ?? null,
      delta_after_p99_ms: deltaAfter ?? null,
      watch_max_alone_ms: alone.watch?.max_ms ?? null,
      watch_max_under_ms: under?.watch?.max_ms ?? null,
      victim_errors: victimErrors ?? null,
      server_alive: serverAlive,
      server_exit: crashed ?? null,
      rss_before_mb: round(rssBefore, 1),
      rss_peak_mb: round(peak, 1),
      hwm_mb: Number.isFinite(hwm) ? round(hwm, 1) : null,
      rss_ceiling_hit: ceilingHit,
      audit: audit ?? null,
      attacker: attackerStats ?? null,
      attack_error: attackError ?? null,
    });
    result.ok = Boolean(under) && delta <= BUDGET_MS && deltaAfter !== undefined && deltaAfter <= BUDGET_MS && serverAlive && victimErrors === 0 && !ceilingHit && attackError === undefined;
  } catch (err) {
    Object.assign(result, { ok: false, server_alive: alive(w.child) && crashed === undefined, server_exit: crashed ?? null, error: String(err?.message ?? err) });
  } finally {
    await stopWorld(w);
  }
  say(
    `${attack.name}: victim p99 ${result.victim_p99_alone_ms} → ${result.victim_p99_under_ms} ms (Δ ${result.delta_p99_ms}; after the attack Δ ${result.delta_after_p99_ms}), max ${result.victim_max_under_ms} ms, errors ${result.victim_errors}, ` +
      `watch max ${result.watch_max_alone_ms} → ${result.watch_max_under_ms} ms, alive ${result.server_alive}, RSS ${result.rss_before_mb} → peak ${result.rss_peak_mb} MiB${result.rss_ceiling_hit ? " (ceiling hit)" : ""}: ${result.ok ? "ok" : "NOT ok"}${result.error ? ` (${result.error})` : ""}`,
  );
  return result;
}

async function main() {
  say(`machine: ${JSON.stringify(machine())}; load average ${os.loadavg().map((x) => round(x)).join(" ")}; ${CALLS} victim calls at ${RATE}/s per measurement`);
  victim = forkScript("bench-isolation-victim.mjs");
  await onceMessage(victim, (m) => m?.ready, 10_000, "victim start");
  const attacks = ATTACKS.filter((a) => !ONLY || ONLY.includes(a.name));
  const results = [];
  for (const a of attacks) results.push(await runAttack(a));
  victim.send({ cmd: "close" });
  const out = {
    bench: "isolation",
    machine: machine(),
    loadavg: os.loadavg().map((x) => round(x)),
    calls: CALLS,
    rate_per_s: RATE,
    budget_ms: BUDGET_MS,
    rss_ceiling_mb: RSS_CEILING_MB,
    seconds: round((Date.now() - t0) / 1000, 1),
    attacks: Object.fromEntries(results.map((r) => [r.attack, r])),
    isolation_ok: results.length > 0 && results.every((r) => r.ok),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    say(`failed: ${err?.stack ?? err}`);
    process.exit(1);
  },
);
