// `node scripts/bench-get-cpu.mjs [--root=DIR]... [--rounds=3] [--seconds=4] [--profile]`
// (after `npm run build`)
//
// Server CPU per GetSecret call (1 KiB value, 64 in flight through h2load), read from
// /proc, for one or several builds interleaved in the same run (A, B, A, B, …), so a
// change to the unary path is judged on CPU time, which other processes on the box
// disturb far less than throughput or latency. Each --root is a checkout with dist/ built
// (default this one; `git worktree add /tmp/old <commit> && cd /tmp/old && npm run build`
// makes another); each serves its own fresh secretd through its own
// scripts/bench-server.mjs. --profile writes one CPU profile per build (last round) and
// prints the top self-time functions.
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { cpuSeconds, machine, round, summarizeProfile } from "./bench-lib.mjs";
import { h2load } from "./bench/drivers.mjs";
import { guardRun, makeRunDir, onceMessage, SCRIPTS, track } from "./bench/process.mjs";
import { minter, seedBench, preframedTargets } from "./bench/setup.mjs";
import { NODE_FLAGS } from "./bench-lib.mjs";

const argv = process.argv.slice(2);
const opt = (n, d) => argv.find((a) => a.startsWith(`--${n}=`))?.split("=")[1] ?? d;
const roots = argv.filter((a) => a.startsWith("--root=")).map((a) => path.resolve(a.slice(7)));
if (roots.length === 0) roots.push(path.resolve(SCRIPTS, ".."));
const ROUNDS = Number(opt("rounds", 3));
const SECONDS = Number(opt("seconds", 4));
const PROFILE = argv.includes("--profile");
const say = (m) => process.stdout.write(`[bench-get-cpu] ${m}\n`);
guardRun({ deadlineMs: 20 * 60_000, keep: false, say });

async function start(root, i) {
  const dir = makeRunDir(`secretd-get-cpu-${i}-`);
  const env = { ...process.env, DATA_DIR: path.join(dir, "data"), LOG_FILE: path.join(dir, "server.log") };
  const child = track(fork(path.join(root, "scripts/bench-server.mjs"), [], { env, execArgv: NODE_FLAGS, stdio: ["ignore", "ignore", "inherit", "ipc"] }), `server ${i}`);
  const ready = await onceMessage(child, (m) => m?.ready, 60_000, "server ready");
  return { root, child, port: ready.port, pid: ready.pid, dir };
}

const servers = [];
for (const [i, d] of roots.entries()) servers.push(await start(d, i));
for (const s of servers) {
  const token = await minter(path.join(s.dir, "data"))("bench");
  const { getValue, requests } = await seedBench(s, token);
  s.target = (await preframedTargets(s, token, requests, getValue)).get;
}
say(`machine ${JSON.stringify(machine())}; load ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}; ${servers.length} build(s) × ${ROUNDS} rounds of ${SECONDS} s`);
const results = servers.map(() => []);
for (let r = 0; r < ROUNDS; r++) {
  for (const [i, s] of servers.entries()) {
    const base = { port: s.port, path: s.target.path, token: s.target.token, bodyFile: s.target.bodyFile, connections: 4, streams: 16 };
    await h2load({ ...base, seconds: 1 });
    if (PROFILE && r === ROUNDS - 1) {
      s.child.send({ cmd: "profile-start", intervalUs: 200 });
      await onceMessage(s.child, (m) => m?.profileStarted, 10_000, "profile start");
    }
    const c0 = cpuSeconds(s.pid);
    const [res] = await Promise.all([h2load({ ...base, seconds: SECONDS })]);
    const cpu = cpuSeconds(s.pid) - c0;
    if (PROFILE && r === ROUNDS - 1) {
      const file = path.join(s.dir, "get.cpuprofile");
      s.child.send({ cmd: "profile-stop", file });
      await onceMessage(s.child, (m) => m?.profileWritten, 30_000, "profile stop");
      s.profile = summarizeProfile(JSON.parse(readFileSync(file, "utf8")), { top: 30 });
    }
    const us = (cpu * 1e6) / res.done;
    results[i].push(us);
    say(`round ${r + 1} ${s.root}: ${res.done} calls, ${round(res.rps, 0)}/s, ${round(us, 1)} µs of server CPU a call; load ${os.loadavg()[0].toFixed(2)}`);
  }
}
for (const [i, s] of servers.entries()) {
  const sorted = [...results[i]].sort((a, b) => a - b);
  say(`${s.root}: CPU a call min ${round(sorted[0], 1)}, median ${round(sorted[Math.floor(sorted.length / 2)], 1)} µs`);
  if (s.profile) console.log(JSON.stringify(s.profile, null, 1).slice(0, 6000));
  s.child.send({ cmd: "stop" });
}
await new Promise((r) => setTimeout(r, 1000));
process.exit(0);
