// Process hygiene of scripts/bench.mjs: every process it starts is tracked and killed on
// exit, failure or signal; its temp dir (and a PostgreSQL cluster) goes with it unless
// --keep; a deadline aborts a run that hangs; temp dirs of runs killed outright are removed.
import { fork } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NODE_FLAGS } from "../bench-lib.mjs";
import { DEADLINE_MS, KEEP, say } from "./config.mjs";

/** The folder of the bench's scripts (bench-server.mjs, bench-echo.mjs, bench-loader.mjs). */
export const SCRIPTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const children = new Set();
export function track(child, what) {
  children.add(child);
  child.benchName = what;
  child.once("exit", () => children.delete(child));
  return child;
}
function killAll() {
  for (const c of children) {
    try {
      if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  children.clear();
}
let tmpDir;
let pgCluster;
function cleanupFiles() {
  pgCluster?.stop();
  if (tmpDir && !KEEP) rmSync(tmpDir, { recursive: true, force: true });
}
process.on("exit", () => {
  killAll();
  cleanupFiles();
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    say(`${sig}: stopping`);
    process.exit(130);
  });
}
const deadline = setTimeout(() => {
  say(`deadline of ${DEADLINE_MS / 1000}s passed: aborting`);
  process.exit(3);
}, DEADLINE_MS);
deadline.unref();
/** The run finished: its deadline no longer applies. */
export const clearDeadline = () => clearTimeout(deadline);

/** A PostgreSQL cluster (scripts/postgres-cluster.mjs) stopped on exit. */
export function ownCluster(cluster) {
  pgCluster = cluster;
  return cluster;
}

/** This run's temp dir (after removing those of earlier runs killed outright), marked with our pid. */
export function makeRunDir() {
  removeStaleRuns();
  tmpDir = mkdtempSync(path.join(os.tmpdir(), "secretd-bench-"));
  writeFileSync(path.join(tmpDir, "owner.pid"), String(process.pid));
  return tmpDir;
}
/** This run's temp dir (made by makeRunDir). */
export const runDir = () => tmpDir;

export function onceMessage(child, pred, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer in ${timeoutMs} ms`)), timeoutMs);
    const onMsg = (m) => {
      if (m?.error) {
        cleanup();
        reject(new Error(`${what}: ${m.error}`));
      } else if (pred(m)) {
        cleanup();
        resolve(m);
      }
    };
    const onExit = (code) => {
      cleanup();
      reject(new Error(`${what}: process exited (${code})`));
    };
    function cleanup() {
      clearTimeout(timer);
      child.off("message", onMsg);
      child.off("exit", onExit);
    }
    child.on("message", onMsg);
    child.once("exit", onExit);
  });
}

/** Temp dirs of earlier runs that were killed outright (SIGKILL), and so could not clean up. */
function removeStaleRuns() {
  for (const d of readdirSync(os.tmpdir())) {
    if (!d.startsWith("secretd-bench-")) continue;
    const dir = path.join(os.tmpdir(), d);
    let pid;
    try {
      pid = Number(readFileSync(path.join(dir, "owner.pid"), "utf8"));
    } catch {
      continue; // kept with --keep, or not ours
    }
    try {
      process.kill(pid, 0);
    } catch (err) {
      if (err.code === "ESRCH") rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** A forked bench process with the V8 flags of bin/secretd, once it reports { ready, port }. */
async function startForked(script, env, what) {
  const child = track(fork(path.join(SCRIPTS, script), [], { env, execArgv: NODE_FLAGS, stdio: ["ignore", "inherit", "inherit", "ipc"] }), what);
  const m = await onceMessage(child, (x) => x?.ready, 30_000, `${what} start`);
  return { child, port: m.port, pid: child.pid };
}

export function startServer(dataDir, logFile, databaseUrl) {
  const env = { ...process.env, DATA_DIR: dataDir, LOG_FILE: logFile, ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) };
  return startForked("bench-server.mjs", env, "secretd");
}

export function startEcho(responseBytes) {
  return startForked("bench-echo.mjs", { ...process.env, RESPONSE_BYTES: String(responseBytes) }, "echo");
}

export async function stopChild(child, how) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  if (how === "ipc" && child.connected) child.send({ cmd: "stop" });
  else child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}
