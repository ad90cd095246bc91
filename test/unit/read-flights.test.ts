import { describe, expect, it } from "vitest";
import { ReadFlights } from "../../src/storage/read-flights.js";

/** A read that resolves when told to, counting how often it was started. */
function deferredReads() {
  const started: ((v: string) => void)[] = [];
  const read = () => new Promise<string>((resolve) => started.push(resolve));
  return { started, read };
}

describe("ReadFlights", () => {
  it("when the same rows are read at the same cache epoch while a read is in flight, then the callers share it; once it ends, the next caller reads again", async () => {
    const f = new ReadFlights<string>();
    const { started, read } = deferredReads();
    const a = f.run("k", 3, read);
    const b = f.run("k", 3, read);
    expect(started).toHaveLength(1);
    started[0]!("rows-1");
    expect(await Promise.all([a, b])).toEqual(["rows-1", "rows-1"]);
    expect(f.size).toBe(0);
    const c = f.run("k", 3, read);
    expect(started).toHaveLength(2);
    started[1]!("rows-2");
    expect(await c).toBe("rows-2");
  });

  it("when the epoch moved after a read began (a change was delivered), then a new caller does not join it: it reads, and later callers join the newer read", async () => {
    const f = new ReadFlights<string>();
    const { started, read } = deferredReads();
    const old = f.run("k", 3, read);
    const fresh = f.run("k", 4, read);
    const joined = f.run("k", 4, read);
    expect(started).toHaveLength(2);
    started[1]!("after-change");
    started[0]!("before-change");
    expect(await old).toBe("before-change");
    expect(await fresh).toBe("after-change");
    expect(await joined).toBe("after-change");
    expect(f.size).toBe(0);
  });

  it("when other rows are read, or a read fails, then nothing is shared across keys and the failure reaches only that read's callers", async () => {
    const f = new ReadFlights<string>();
    const { started, read } = deferredReads();
    void f.run("k1", 1, read);
    const failing = f.run("k2", 1, () => Promise.reject(new Error("database error")));
    expect(started).toHaveLength(1);
    await expect(failing).rejects.toThrow("database error");
    started[0]!("k1-rows");
    await Promise.resolve();
    expect(f.size).toBe(0);
  });
});
