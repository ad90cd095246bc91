// CPU accounting of scripts/bench.mjs: CPU of the measured processes, of the load
// generators and of everything else on the box across a run (from /proc), and a bounded
// wait for the box to be quiet before a measured run.
import { readFileSync } from "node:fs";
import { cpuSeconds, round, runqWaitSeconds } from "../bench-lib.mjs";

function systemBusySeconds() {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (line[0] + line[1] + line[2] + line[5] + line[6] + line[7]) / 100;
}

/** Samples CPU of the given pids (and the whole system) across fn(); pids may come later via addPid. */
export async function withCpu(pids, fn) {
  const start = { sys: systemBusySeconds(), t: performance.now(), cpu: new Map(pids.map((p) => [p, cpuSeconds(p)])), runq: new Map(pids.map((p) => [p, runqWaitSeconds(p)])) };
  const last = new Map();
  const tracked = new Map(); // late pids (generators): first and last sample
  const poll = setInterval(() => {
    for (const [pid, first] of tracked) {
      const v = cpuSeconds(pid);
      if (Number.isFinite(v)) last.set(pid, { first, v });
    }
  }, 100);
  const addPid = (pid) => tracked.set(pid, cpuSeconds(pid));
  let result;
  try {
    result = await fn(addPid);
  } finally {
    clearInterval(poll);
  }
  const secs = (performance.now() - start.t) / 1000;
  const pct = (x) => round((100 * x) / secs, 1);
  const perPid = {};
  const runqWaitPerPid = {};
  let ours = 0;
  for (const [pid, before] of start.cpu) {
    const d = cpuSeconds(pid) - before;
    perPid[pid] = pct(d);
    runqWaitPerPid[pid] = pct(runqWaitSeconds(pid) - start.runq.get(pid));
    ours += d;
  }
  let gen = 0;
  for (const { first, v } of last.values()) gen += v - first;
  ours += gen;
  const sys = systemBusySeconds() - start.sys;
  // The most any measured process's main thread waited for a CPU, in % of the run.
  const runq = Object.values(runqWaitPerPid).filter(Number.isFinite);
  const runq_wait_pct = runq.length > 0 ? Math.max(...runq) : undefined;
  return { result, cpu: { perPid, runqWaitPerPid, runq_wait_pct, gen_cpu_pct: pct(gen), other_cpu_pct: pct(Math.max(0, sys - ours)) } };
}

/**
 * Other engineers' builds and tests share these 2 cores. Before a measured run, wait
 * (bounded) until the rest of the system has been near idle for half a second.
 */
const QUIET_CPU_PCT = 20;
export const DISTURBED_CPU_PCT = 25;
let waitedTotalS = 0;
/** Seconds spent so far waiting for the box to be quiet. */
export const waitedForQuietS = () => waitedTotalS;
export async function waitQuiet(maxS) {
  const started = performance.now();
  let other = NaN;
  while ((performance.now() - started) / 1000 < maxS) {
    const a = systemBusySeconds();
    await new Promise((r) => setTimeout(r, 500));
    other = (100 * (systemBusySeconds() - a)) / 0.5;
    if (other < QUIET_CPU_PCT) break;
  }
  const waited = (performance.now() - started) / 1000 - 0.5;
  waitedTotalS += Math.max(0, waited);
  return round(other, 0);
}
