#!/usr/bin/env node
// Crash safety: runs `secretd serve` as a child process under concurrent CreateSecret /
// UpdateSecret load, kills it with SIGKILL at a random moment, checks the database file
// (PRAGMA integrity_check, no secret without its current version) read-only before
// anything reopens it, restarts the server and checks through the API that
//   - every acknowledged write is there and opens: an acked create exists with its
//     value; an acked update's version, or a later one we wrote, is current, and both
//     read back with the values we sent;
//   - a write that was not acknowledged is fully present (its value reads back) or
//     fully absent, never half there (metadata without a version, DATA_LOSS, a value
//     nobody wrote).
// The data dir is kept across rounds, so each round also re-checks every earlier one.
//
//   npm run crash-test                   10 rounds
//   npm run crash-test -- --rounds 50    more
//
// With a PostgreSQL URL (runCrashTest({ databaseUrl, replicas: 2 })), several replicas on that
// one database take the load and are all SIGKILLed at once; the check then reads the database.
// Plain ESM over the built dist/ (no TypeScript runner needed); test/e2e/crash.test.ts
// imports runCrashTest() for a short form in the test suite.
import { spawn } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { credentials, Metadata, status } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import pg from "pg";
import { DB_FILE } from "../dist/storage/open-storage.js";
import { CreateSecretRequest, GetSecretRequest, SecretServiceClient, UpdateSecretRequest } from "../dist/gen/secrets/v1/secrets.js";

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dist", "main.js");
const MESH = "crash";
const START_TIMEOUT_MS = 20_000;
const CALL_DEADLINE_MS = 15_000;
const VERIFY_CONCURRENCY = 32;
/** Share of writes that create a new secret; the rest update one of the worker's own. */
const CREATE_SHARE = 0.3;

/**
 * @param {object} [opts]
 * @param {number} [opts.rounds]   kills (default 10)
 * @param {number} [opts.workers]  concurrent writers, each with its own secrets (default 8)
 * @param {number} [opts.minRunMs] earliest kill after the load starts (default 100)
 * @param {number} [opts.maxRunMs] latest kill after the load starts (default 1500)
 * @param {number} [opts.serverWorkers] `serve --workers N` (default 1); the whole process tree is killed
 * @param {string} [opts.databaseUrl] PostgreSQL instead of SQLite: every replica serves from this (empty) database
 * @param {number} [opts.replicas] `secretd serve` processes on that one database (default 1), all killed at once
 * @param {string} [opts.dataDir]  kept when given; else a temp dir, removed at the end
 * @param {(line: string) => void} [opts.log]
 */
export async function runCrashTest(opts = {}) {
  const rounds = opts.rounds ?? 10;
  const workers = opts.workers ?? 8;
  const minRunMs = opts.minRunMs ?? 100;
  const maxRunMs = opts.maxRunMs ?? 1500;
  const serverWorkers = opts.serverWorkers ?? 1;
  const databaseUrl = opts.databaseUrl ?? "";
  const replicas = opts.replicas ?? 1;
  if (replicas > 1 && databaseUrl === "") throw new Error("replicas share a PostgreSQL database: give databaseUrl");
  const log = opts.log ?? (() => {});
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), "secretd-crash-"));
  const result = {
    rounds: 0,
    acknowledged: { creates: 0, updates: 0, total: 0 },
    /** Writes in flight at the kill that turned out fully present / fully absent. */
    unacknowledged: { present: 0, absent: 0 },
    lost: 0,
    halfPresent: 0,
    integrity: "ok",
    /** Calls that failed while the server was still up (expected 0). */
    errorsBeforeKill: 0,
    secrets: 0,
    problems: [],
  };
  const problem = (msg) => {
    if (result.problems.length < 50) result.problems.push(msg);
  };
  /** name → { name, worker, acked, etag, values: Map<version, value> } */
  const model = new Map();
  let server = await startReplicas(dataDir, serverWorkers, databaseUrl, replicas);
  try {
    for (let round = 1; round <= rounds; round++) {
      const load = startLoad({ server, model, round, workers, result, problem });
      await sleep(minRunMs + Math.random() * Math.max(0, maxRunMs - minRunMs));
      load.killing();
      await server.kill();
      await load.done;
      const db = databaseUrl === "" ? checkDatabase(path.join(dataDir, DB_FILE)) : await checkPostgres(databaseUrl);
      if (db.integrity !== "ok") {
        result.integrity = db.integrity;
        problem(`round ${round}: integrity_check: ${db.integrity}`);
      }
      if (db.halfWritten > 0) {
        result.halfPresent += db.halfWritten;
        problem(`round ${round}: ${db.halfWritten} rows without their counterpart (secret without current version, or the reverse)`);
      }
      server = await startReplicas(dataDir, serverWorkers, databaseUrl, replicas);
      await verify(server, model, result, problem, round);
      result.rounds = round;
      result.secrets = model.size;
      log(
        `round ${round}/${rounds}: killed after ${load.writes()} acknowledged writes this round; ` +
          `total acknowledged ${result.acknowledged.total}, lost ${result.lost}, half-present ${result.halfPresent}, integrity ${result.integrity}`,
      );
    }
  } finally {
    await server.stop();
    if (opts.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
  }
  return result;
}

/** `replicas` servers on one data dir (one key source) and one database; calls go round all of them. */
async function startReplicas(dataDir, serverWorkers, databaseUrl, replicas) {
  const servers = [];
  try {
    // One after the other: the first creates the keys the others read.
    for (let i = 0; i < replicas; i++) servers.push(await startServer(dataDir, serverWorkers, databaseUrl));
  } catch (e) {
    await Promise.all(servers.map((s) => s.kill()));
    throw e;
  }
  if (servers.length === 1) return servers[0];
  let next = 0;
  return {
    call: (method, req) => servers[next++ % servers.length].call(method, req),
    kill: () => Promise.all(servers.map((s) => s.kill())),
    stop: () => Promise.all(servers.map((s) => s.stop())),
  };
}

async function startServer(dataDir, serverWorkers, databaseUrl) {
  // --dev-token always: restarts on the same data dir print the banner too (address and token).
  const args = [MAIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "warn", "--workers", String(serverWorkers), "--dev-token", "always"];
  if (databaseUrl !== "") args.push("--database-url", databaseUrl);
  // Its own process group: a kill takes the primary and every worker at once, as a power loss would.
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], detached: true });
  let stderr = "";
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const banner = await new Promise((resolve, reject) => {
    const settle = (err, value) => {
      clearTimeout(timer);
      child.off("exit", onExit);
      child.stderr.off("data", onData);
      if (err) {
        child.kill("SIGKILL");
        reject(err);
      } else resolve(value);
    };
    const timer = setTimeout(() => settle(new Error(`server did not start within ${START_TIMEOUT_MS} ms: ${stderr}`)), START_TIMEOUT_MS);
    const onExit = (code, signal) => settle(new Error(`server exited (${code ?? signal}) before serving: ${stderr}`));
    const onData = (b) => {
      stderr += b.toString();
      const address = /serving on (\S+) /.exec(stderr)?.[1];
      const token = /export SECRETD_TOKEN=(\S+)/.exec(stderr)?.[1];
      if (address && token) settle(undefined, { address, token });
    };
    child.stderr.on("data", onData);
    child.once("exit", onExit);
  });
  child.stderr.resume(); // keep draining, so a chatty server never blocks on a full pipe
  // With workers, several connections (private subchannel pools), so writes go through every worker.
  const clients = [...Array(serverWorkers > 1 ? serverWorkers * 2 : 1)].map(
    () => new SecretServiceClient(banner.address, credentials.createInsecure(), serverWorkers > 1 ? { "grpc.use_local_subchannel_pool": 1 } : {}),
  );
  let next = 0;
  const call = (method, req) =>
    new Promise((resolve) => {
      const md = new Metadata();
      md.set("authorization", `Bearer ${banner.token}`);
      const client = clients[next++ % clients.length];
      client[method](req, md, { deadline: Date.now() + CALL_DEADLINE_MS }, (err, res) => resolve(err ? { err } : { res }));
    });
  const closeClients = () => clients.forEach((c) => c.close());
  return {
    call,
    async kill() {
      process.kill(-child.pid, "SIGKILL");
      await exited;
      await waitGroupGone(child.pid);
      closeClients();
    },
    async stop() {
      closeClients();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
}

/** Workers writing until the kill; each worker writes its own secrets one call at a time. */
function startLoad({ server, model, round, workers, result, problem }) {
  let killing = false;
  let writes = 0;
  const mine = [...Array(workers)].map((_, w) => [...model.values()].filter((r) => r.worker === w));
  const failed = (err, what) => {
    if (killing) return;
    result.errorsBeforeKill++;
    problem(`round ${round}: ${what} failed before the kill: ${err.code} ${err.details}`);
  };
  const worker = async (w) => {
    for (let seq = 0; !killing; seq++) {
      const own = mine[w];
      if (own.length === 0 || Math.random() < CREATE_SHARE) {
        const rec = { name: `r${round}-w${w}-${seq}`, worker: w, acked: 0, etag: "", values: new Map() };
        const value = valueFor(rec.name, 1);
        rec.values.set(1, value);
        model.set(rec.name, rec); // recorded before sending: unacknowledged creates are checked too
        own.push(rec);
        const { res, err } = await server.call("createSecret", CreateSecretRequest.fromPartial({ mesh: MESH, name: rec.name, stringData: { v: value } }));
        if (err) return failed(err, `create ${rec.name}`);
        rec.acked = 1;
        rec.etag = res.etag;
        result.acknowledged.creates++;
      } else {
        const rec = own[randomInt(own.length)];
        const version = rec.acked + 1;
        const value = valueFor(rec.name, version);
        rec.values.set(version, value);
        const req = UpdateSecretRequest.fromPartial({ mesh: MESH, name: rec.name, etag: rec.etag, stringData: { v: value } });
        const { res, err } = await server.call("updateSecret", req);
        if (err) return failed(err, `update ${rec.name} to version ${version}`);
        if (Number(res.version) !== version) problem(`round ${round}: update of ${rec.name} answered version ${res.version}, expected ${version}`);
        rec.acked = version;
        rec.etag = res.etag;
        result.acknowledged.updates++;
      }
      result.acknowledged.total++;
      writes++;
    }
  };
  const done = Promise.all([...Array(workers)].map((_, w) => worker(w)));
  return {
    done,
    /** From here on a failed call is the kill, not a bug. */
    killing: () => (killing = true),
    writes: () => writes,
  };
}

/** A value unique to (secret, version), 40 B to 4 KiB so rows span one or several pages. */
function valueFor(name, version) {
  return `${name}@${version}:${randomBytes(randomInt(12, 2048)).toString("hex")}`;
}

/** Read-only look at the file the killed server left, before a restart recovers anything. */
function checkDatabase(file) {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const rows = db.pragma("integrity_check");
    const messages = rows.map((r) => String(Object.values(r)[0]));
    const integrity = messages.length === 1 && messages[0] === "ok" ? "ok" : messages.slice(0, 5).join("; ");
    const headless = db
      .prepare("SELECT count(*) FROM secrets s WHERE NOT EXISTS (SELECT 1 FROM secret_versions v WHERE v.uid = s.uid AND v.version = s.version)")
      .pluck()
      .get();
    const orphans = db.prepare("SELECT count(*) FROM secret_versions v WHERE NOT EXISTS (SELECT 1 FROM secrets s WHERE s.uid = v.uid)").pluck().get();
    const badKeys = db.pragma("foreign_key_check").length;
    return { integrity, halfWritten: headless + orphans + badKeys };
  } finally {
    db.close();
  }
}

/** The same look at a PostgreSQL database the killed replicas left (its own recovery is PostgreSQL's). */
async function checkPostgres(url) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const one = async (sql) => Number((await c.query(sql)).rows[0].n);
    const headless = await one("SELECT count(*) AS n FROM secrets s WHERE NOT EXISTS (SELECT 1 FROM secret_versions v WHERE v.uid = s.uid AND v.version = s.version)");
    const orphans = await one("SELECT count(*) AS n FROM secret_versions v WHERE NOT EXISTS (SELECT 1 FROM secrets s WHERE s.uid = v.uid)");
    return { integrity: "ok", halfWritten: headless + orphans };
  } finally {
    await c.end();
  }
}

/** Checks every secret ever written against the model, then aligns the model with what is stored. */
async function verify(server, model, result, problem, round) {
  const recs = [...model.values()];
  let next = 0;
  const one = async (rec) => {
    const get = (version) => server.call("getSecret", GetSecretRequest.fromPartial({ mesh: MESH, name: rec.name, version }));
    const { res, err } = await get(0);
    const unacked = rec.acked < Math.max(...rec.values.keys());
    if (err) {
      if (err.code === status.NOT_FOUND && rec.acked === 0) {
        result.unacknowledged.absent++;
        model.delete(rec.name);
        return;
      }
      if (rec.acked > 0) {
        result.lost++;
        problem(`round ${round}: ${rec.name} (acknowledged version ${rec.acked}) reads as ${err.code} ${err.details}`);
      } else {
        result.halfPresent++;
        problem(`round ${round}: unacknowledged create ${rec.name} reads as ${err.code} ${err.details}`);
      }
      return;
    }
    const current = Number(res.version);
    const value = Buffer.from(res.data.v ?? []).toString();
    if (current < rec.acked) {
      result.lost++;
      problem(`round ${round}: ${rec.name} is at version ${current}, but version ${rec.acked} was acknowledged`);
    } else if (rec.values.get(current) !== value) {
      const acked = current === rec.acked;
      if (acked) result.lost++;
      else result.halfPresent++;
      problem(`round ${round}: ${rec.name} version ${current} holds a value that was not written as that version`);
    } else if (current > rec.acked) {
      result.unacknowledged.present++;
      // The acknowledged version it replaced must still read back too (max-versions keeps it).
      if (rec.acked > 0) {
        const prior = await get(rec.acked);
        const priorValue = prior.res ? Buffer.from(prior.res.data.v ?? []).toString() : undefined;
        if (priorValue !== rec.values.get(rec.acked)) {
          result.lost++;
          problem(`round ${round}: ${rec.name} acknowledged version ${rec.acked} no longer reads back (${prior.err?.code ?? "other value"})`);
        }
      }
    } else if (unacked) {
      result.unacknowledged.absent++;
    }
    rec.acked = current;
    rec.etag = res.etag;
    rec.values = new Map([[current, value]]);
  };
  const lane = async () => {
    while (next < recs.length) await one(recs[next++]);
  };
  await Promise.all([...Array(VERIFY_CONCURRENCY)].map(lane));
}

/** Until no process of the group is left (workers die with their primary's group kill). */
async function waitGroupGone(pgid) {
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return;
    }
    await sleep(10);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main() {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string", default: "10" },
      workers: { type: "string", default: "8" },
      "server-workers": { type: "string", default: "1" },
      "data-dir": { type: "string" },
    },
  });
  const rounds = Number(values.rounds);
  const workers = Number(values.workers);
  const serverWorkers = Number(values["server-workers"]);
  if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(workers) || workers < 1) {
    process.stderr.write("usage: crash-test.mjs [--rounds N] [--workers N] [--server-workers N] [--data-dir DIR]\n");
    process.exit(2);
  }
  const started = Date.now();
  const r = await runCrashTest({
    rounds,
    workers,
    serverWorkers: Number.isInteger(serverWorkers) && serverWorkers > 0 ? serverWorkers : 1,
    ...(values["data-dir"] ? { dataDir: values["data-dir"] } : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  process.stdout.write(
    [
      `crash test: ${r.rounds} rounds of SIGKILL under load (${workers} writers, ${serverWorkers} server process(es)), ${seconds} s`,
      `  writes acknowledged: ${r.acknowledged.total} (${r.acknowledged.creates} creates, ${r.acknowledged.updates} updates)`,
      `  in flight at the kill: ${r.unacknowledged.present} fully present, ${r.unacknowledged.absent} absent`,
      `  lost: ${r.lost}   half-present: ${r.halfPresent}   integrity_check: ${r.integrity}   errors before a kill: ${r.errorsBeforeKill}`,
      `  secrets checked at the end: ${r.secrets}`,
      ...r.problems.map((p) => `  problem: ${p}`),
      "",
    ].join("\n"),
  );
  const ok = r.lost === 0 && r.halfPresent === 0 && r.integrity === "ok" && r.errorsBeforeKill === 0;
  process.exit(ok ? 0 : 1);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err) => {
    process.stderr.write(`crash-test: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
}
