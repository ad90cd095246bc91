// Process hygiene of the bench scripts (bench.mjs, bench-isolation.mjs, bench-watch.mjs):
// once guardRun() is called, every process it starts is tracked and killed on exit,
// failure or signal; its temp dir (and a PostgreSQL cluster) goes with it unless --keep;
// a deadline aborts a run that hangs; temp dirs of runs killed outright are removed.
import { fork } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NODE_FLAGS } from "../bench-lib.mjs";
import { startPostgres } from "../postgres-cluster.mjs";

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
let keepFiles = false;
let deadline;

/**
 * Installs the hygiene for this run: children killed and files removed on exit (files
 * kept with `keep`), signals turned into exit 130, and exit 3 after `deadlineMs`.
 */
export function guardRun({ deadlineMs, keep, say }) {
  keepFiles = keep;
  process.on("exit", () => {
    killAll();
    pgCluster?.stop();
    if (tmpDir && !keepFiles) rmSync(tmpDir, { recursive: true, force: true });
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(sig, () => {
      say(`${sig}: stopping`);
      process.exit(130);
    });
  }
  deadline = setTimeout(() => {
    say(`deadline of ${deadlineMs / 1000}s passed: aborting`);
    process.exit(3);
  }, deadlineMs);
  deadline.unref();
}
/** The run finished: its deadline no longer applies. */
export const clearDeadline = () => clearTimeout(deadline);

/**
 * --postgres: a throw-away PostgreSQL cluster (scripts/postgres-cluster.mjs, fsync on),
 * stopped and removed on exit, and a fresh database on it; resolves to that database's URL.
 * PostgreSQL missing is an error naming the package to install, never a silent skip.
 */
export async function benchDatabase(say) {
  pgCluster = await startPostgres({ fsync: true });
  const url = await pgCluster.createDatabase();
  say(`PostgreSQL: throw-away cluster on 127.0.0.1:${pgCluster.port} (fsync on)`);
  return url;
}

/** This run's temp dir (after removing those of earlier runs killed outright), marked with our pid. */
export function makeRunDir(prefix = "secretd-bench-") {
  removeStaleRuns(prefix);
  tmpDir = mkdtempSync(path.join(os.tmpdir(), prefix));
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
function removeStaleRuns(prefix) {
  for (const d of readdirSync(os.tmpdir())) {
    if (!d.startsWith(prefix)) continue;
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

/** scripts/`script` forked and tracked; `env` is added to this process's; stdout is dropped unless `stdout` is "inherit". */
export function forkScript(script, env = {}, { execArgv = [], stdout = "ignore" } = {}) {
  return track(fork(path.join(SCRIPTS, script), [], { env: { ...process.env, ...env }, execArgv, stdio: ["ignore", stdout, "inherit", "ipc"] }), script);
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
