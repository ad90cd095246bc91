// secretd under benchmark, in its own process: the same startApp as `secretd serve`,
// on 127.0.0.1:0 with the data dir given in DATA_DIR (and PostgreSQL at DATABASE_URL when set), logging ON at info level through
// the project's buffered pino logger (createLogger) into LOG_FILE.
// Started by scripts/bench.mjs with fork(). IPC:
//   → { ready, port, pid }                       once serving
//   ← { cmd: "profile-start", intervalUs }        → { profileStarted }
//   ← { cmd: "profile-stop", file }               → { profileWritten: file }
//   ← { cmd: "mem" }                              → { mem: process.memoryUsage() in MiB }
//   ← { cmd: "gc" }                               → { gcDone } after a full garbage collection (inspector)
//   ← { cmd: "heap-snapshot", file }             → { heapSnapshot: file } (v8.writeHeapSnapshot, after a GC)
//   ← { cmd: "audit" }                            → { audit: { written, depth, dropped } } after a flush (the trail is on, as SPEC §9 measures)
//   ← { cmd: "loop-start" }                       → { loopStarted }  (event-loop delay and GC pauses from now)
//   ← { cmd: "loop-stop" }                        → { loop: { delay_p50_ms, delay_p99_ms, delay_max_ms, gc_count, gc_total_ms, gc_max_ms, gc_over_1ms, gc_major, gc_major_max_ms } }
//   ← { cmd: "stop" } or SIGTERM                  drains, flushes the log, exits 0
import { closeSync, openSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { writeHeapSnapshot } from "node:v8";
import { constants, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { startApp } from "../dist/app.js";
import { loadConfig } from "../dist/config.js";
import { createLogger } from "../dist/logger.js";

const dataDir = process.env.DATA_DIR;
const logFile = process.env.LOG_FILE;
if (!dataDir || !logFile) {
  console.error("bench-server: DATA_DIR and LOG_FILE are required");
  process.exit(2);
}

const logFd = openSync(logFile, "a", 0o600);
const databaseUrl = process.env.DATABASE_URL ?? "";
const config = loadConfig({ listen: "127.0.0.1:0", dataDir, logLevel: "info", databaseUrl }, {});
const log = createLogger(config.logLevel, logFd);
const app = await startApp(config, log.logger);

let session;
/** Where an open-loop call's tail waits inside this process: a blocked event loop, and GC pauses. */
let loop;
function loopStart() {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  const gc = { count: 0, total: 0, max: 0, over1: 0, major: 0, majorMax: 0 };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.count++;
      gc.total += e.duration;
      gc.max = Math.max(gc.max, e.duration);
      if (e.duration > 1) gc.over1++;
      // Mark-compact (the whole heap) as opposed to scavenges of the young generation.
      if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        gc.major++;
        gc.majorMax = Math.max(gc.majorMax, e.duration);
      }
    }
  });
  obs.observe({ entryTypes: ["gc"] });
  delay.enable();
  loop = { delay, gc, obs };
}
function loopStop() {
  const { delay, gc, obs } = loop;
  delay.disable();
  obs.disconnect();
  loop = undefined;
  const ms = (ns) => Math.round(ns / 1e4) / 100;
  const r2 = (x) => Math.round(x * 100) / 100;
  return { delay_p50_ms: ms(delay.percentile(50)), delay_p99_ms: ms(delay.percentile(99)), delay_max_ms: ms(delay.max), gc_count: gc.count, gc_total_ms: r2(gc.total), gc_max_ms: r2(gc.max), gc_over_1ms: gc.over1, gc_major: gc.major, gc_major_max_ms: r2(gc.majorMax) };
}

let stopping = false;
async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  try {
    await app.close(2000);
  } finally {
    log.flush();
    closeSync(logFd);
    process.exit(code);
  }
}

function post(method, params = {}) {
  return new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
}

process.on("message", (m) => {
  (async () => {
    if (m?.cmd === "profile-start") {
      session = new Session();
      session.connect();
      await post("Profiler.enable");
      await post("Profiler.setSamplingInterval", { interval: m.intervalUs ?? 200 });
      await post("Profiler.start");
      process.send?.({ profileStarted: true });
    } else if (m?.cmd === "profile-stop") {
      const { profile } = await post("Profiler.stop");
      session.disconnect();
      session = undefined;
      writeFileSync(m.file, JSON.stringify(profile));
      process.send?.({ profileWritten: m.file });
    } else if (m?.cmd === "mem") {
      const u = process.memoryUsage();
      process.send?.({ mem: Object.fromEntries(Object.entries(u).map(([k, v]) => [k, Math.round((v / 2 ** 20) * 10) / 10])) });
    } else if (m?.cmd === "gc") {
      const s = new Session();
      s.connect();
      await new Promise((resolve, reject) => s.post("HeapProfiler.collectGarbage", (err) => (err ? reject(err) : resolve())));
      s.disconnect();
      process.send?.({ gcDone: true });
    } else if (m?.cmd === "heap-snapshot") {
      process.send?.({ heapSnapshot: writeHeapSnapshot(m.file) });
    } else if (m?.cmd === "audit") {
      await app.audit.flush();
      process.send?.({ audit: { written: app.audit.written, depth: app.audit.depth, dropped: app.audit.dropped } });
    } else if (m?.cmd === "loop-start") {
      loopStart();
      process.send?.({ loopStarted: true });
    } else if (m?.cmd === "loop-stop") {
      process.send?.({ loop: loopStop() });
    } else if (m?.cmd === "stop") {
      await stop(0);
    }
  })().catch((err) => {
    process.send?.({ error: String(err?.stack ?? err) });
  });
});
process.on("SIGTERM", () => void stop(0));
process.on("SIGINT", () => void stop(0));
// The orchestrator died or closed the channel: never outlive it.
process.on("disconnect", () => void stop(0));

process.send?.({ ready: true, port: app.port, pid: process.pid });
