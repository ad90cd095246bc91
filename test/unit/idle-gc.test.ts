/**
 * The idle collection (src/idle-gc.ts) decides from the event loop's utilization and the
 * heap's growth: it collects when both say so, never on a busy loop, never for a heap that
 * did not grow, and only once for one burst. A real V8 gc (node --expose-gc) is checked
 * to free what a burst left (dist/, which the global setup builds).
 */
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { GROWN_BYTES, IdleGc } from "../../src/idle-gc.js";

const MB = 1024 * 1024;

function fake(): { idle: IdleGc; set: (o: { busy?: number; heap?: number }) => void; gcs: () => number } {
  let busy = 0;
  let heap = 50 * MB;
  let gcs = 0;
  const idle = new IdleGc({
    gc: () => {
      gcs++;
      heap = 50 * MB;
    },
    heapUsed: () => heap,
    utilization: () => ({ idle: 0, active: 0, utilization: busy }),
  });
  return { idle, set: (o) => ((busy = o.busy ?? busy), (heap = o.heap ?? heap)), gcs: () => gcs };
}

describe("IdleGc", () => {
  it("when the loop is idle and the heap grew past the threshold, then it collects once", () => {
    const f = fake();
    f.set({ heap: 50 * MB + GROWN_BYTES + 1 });
    expect(f.idle.check()).toBe(true);
    expect(f.gcs()).toBe(1);
    expect(f.idle.check()).toBe(false); // the same heap after the collection: nothing more
    expect(f.gcs()).toBe(1);
  });

  it("when the loop is busy, then it never collects, however much the heap grew", () => {
    const f = fake();
    f.set({ busy: 0.3, heap: 500 * MB });
    for (let i = 0; i < 5; i++) expect(f.idle.check()).toBe(false);
    expect(f.gcs()).toBe(0);
    f.set({ busy: 0 });
    expect(f.idle.check()).toBe(true);
  });

  it("when the heap grew less than the threshold, then it does not collect", () => {
    const f = fake();
    f.set({ heap: 50 * MB + GROWN_BYTES - 1 });
    expect(f.idle.check()).toBe(false);
    expect(f.gcs()).toBe(0);
  });

  it("when V8 collected by itself, then growth is counted from the lower heap", () => {
    const f = fake();
    f.set({ heap: 20 * MB }); // V8's own collection
    expect(f.idle.check()).toBe(false);
    f.set({ heap: 20 * MB + GROWN_BYTES + 1 });
    expect(f.idle.check()).toBe(true);
  });

  it("with V8's real gc, then a burst's garbage is freed", () => {
    const script = `
      const { IdleGc } = await import(${JSON.stringify(new URL("../../dist/idle-gc.js", import.meta.url).pathname)});
      const { performance } = await import("node:perf_hooks");
      const idle = new IdleGc({ gc: globalThis.gc, heapUsed: () => process.memoryUsage().heapUsed, utilization: (p) => performance.eventLoopUtilization(p) });
      let keep = [];
      for (let i = 0; i < 40; i++) keep.push(new Array(100000).fill(i).map(String));
      keep = undefined;
      const duringBurst = idle.check(); // the burst's interval was busy
      const before = process.memoryUsage().heapUsed;
      await new Promise((r) => setTimeout(r, 500));
      const collected = idle.check(); // the next one idle
      console.log(JSON.stringify({ duringBurst, collected, before, after: process.memoryUsage().heapUsed }));`;
    const out = execFileSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], { encoding: "utf8" });
    const r = JSON.parse(out.trim().split("\n").pop()!) as { duringBurst: boolean; collected: boolean; before: number; after: number };
    expect(r.duringBurst).toBe(false);
    expect(r.collected).toBe(true);
    expect(r.after).toBeLessThan(r.before - GROWN_BYTES);
  });
});
