/**
 * The read cache's guard for asynchronous reads (PostgreSQL): a row whose SELECT was in
 * flight when a change of its secret (or a resync) was delivered is answered, not kept,
 * so no read after the delivery is served from a row older than the change.
 */
import { describe, expect, it } from "vitest";
import { ReadCache } from "../../src/storage/read-cache.js";
import type { SecretWithVersion } from "../../src/storage/storage.js";

const scope = { tenant: "t1", mesh: "m1" };

function row(uid: string): SecretWithVersion {
  const secret = { uid, tenant: "t1", mesh: "m1", name: uid, type: "opaque", description: "", owner: "o", labels: {}, annotations: {}, keys: [], etag: "e" };
  return { secret, version: undefined, grants: [], latestVersion: 1 } as unknown as SecretWithVersion;
}

describe("ReadCache puts that started before an invalidation", () => {
  it("when its secret is invalidated while the read was in flight, then the row is not kept; another secret's invalidation does not matter", () => {
    const cache = new ReadCache();
    const since = cache.epoch;
    cache.invalidate("a");
    cache.put(scope, "a", 0, row("a"), since);
    expect(cache.get(scope, "a", 0)).toBeUndefined();
    cache.put(scope, "b", 0, row("b"), since);
    expect(cache.get(scope, "b", 0)?.secret.uid).toBe("b");
    cache.put(scope, "a", 0, row("a"), cache.epoch); // a read started after it is kept
    expect(cache.get(scope, "a", 0)?.secret.uid).toBe("a");
  });

  it("when the cache was cleared (a resync) while the read was in flight, or more invalidations came than it remembers, then nothing started before is kept", () => {
    const cache = new ReadCache();
    const before = cache.epoch;
    cache.clear();
    cache.put(scope, "a", 0, row("a"), before);
    expect(cache.size).toBe(0);
    const since = cache.epoch;
    for (let i = 0; i < 2000; i++) cache.invalidate(`other-${i}`);
    cache.put(scope, "a", 0, row("a"), since);
    expect(cache.size).toBe(0);
    cache.put(scope, "a", 0, row("a")); // SQLite's synchronous put takes no epoch
    expect(cache.size).toBe(1);
  });
});
