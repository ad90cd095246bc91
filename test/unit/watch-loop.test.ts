/**
 * The watch loop against a scripted client, on fake time: which channel each attempt
 * dials, how long it waits between attempts, when it says "watching again", and how
 * it reads INVALID_ARGUMENT. The real server and sidecar are in test/e2e/sidecar.test.ts.
 */
import { EventEmitter } from "node:events";
import { connectivityState, status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Projection, ProjectSecretsRequest, type SecretServiceClient } from "../../src/gen/secrets/v1/secrets.js";
import { Backoff } from "../../src/sidecar/backoff.js";
import { staticToken } from "../../src/sidecar/token-source.js";
import { WatchLoop } from "../../src/sidecar/watch-loop.js";

class FakeCall extends EventEmitter {
  cancelled = false;
  cancel(): void {
    this.cancelled = true;
  }
  end(code: number, details = ""): void {
    this.emit("status", { code, details, metadata: undefined });
  }
}

class FakeChannel {
  state = connectivityState.CONNECTING;
  private watchers: Array<() => void> = [];
  getConnectivityState(): connectivityState {
    return this.state;
  }
  watchConnectivityState(_from: connectivityState, _deadline: number, cb: () => void): void {
    this.watchers.push(cb);
  }
  set(state: connectivityState): void {
    this.state = state;
    for (const w of this.watchers.splice(0)) w();
  }
}

class FakeClient {
  readonly calls: FakeCall[] = [];
  readonly channel = new FakeChannel();
  closed = false;
  watchProjection(): FakeCall {
    const c = new FakeCall();
    this.calls.push(c);
    return c;
  }
  getChannel(): FakeChannel {
    return this.channel;
  }
}

interface Harness {
  loop: WatchLoop;
  clients: FakeClient[];
  lines: Array<{ level: string; msg: string; obj: Record<string, unknown> }>;
  projections: Projection[];
  fatal: unknown[];
  /** The call of the newest attempt. */
  last(): FakeCall;
}

function harness(knownRevision?: string): Harness {
  const clients = [new FakeClient()];
  const lines: Harness["lines"] = [];
  const logAt =
    (level: string) =>
    (obj: unknown, msg?: string): void => {
      lines.push(typeof obj === "string" ? { level, msg: obj, obj: {} } : { level, msg: msg ?? "", obj: obj as Record<string, unknown> });
    };
  const log = { info: logAt("info"), warn: logAt("warn"), error: logAt("error"), debug: logAt("debug") } as unknown as Logger;
  const projections: Projection[] = [];
  const fatal: unknown[] = [];
  const loop = new WatchLoop({
    client: clients[0] as unknown as SecretServiceClient,
    reopen: () => {
      clients.at(-1)!.closed = true;
      const c = new FakeClient();
      clients.push(c);
      return c as unknown as SecretServiceClient;
    },
    request: ProjectSecretsRequest.fromPartial({ items: [{ name: "db" }] }),
    token: staticToken("t"),
    backoff: new Backoff({ maxMs: 2000, random: () => 0.999999 }),
    log,
    ...(knownRevision !== undefined ? { knownRevision } : {}),
    onProjection: (p) => void projections.push(p),
    onAccessGone: () => undefined,
    onFatal: (err) => void fatal.push(err),
  });
  return { loop, clients, lines, projections, fatal, last: () => clients.at(-1)!.calls.at(-1)! };
}

const rev = (r: string): Projection => Projection.fromPartial({ revision: r });

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("watch loop", () => {
  it("when streams keep failing, then each retry waits the next backoff step up to the cap and dials on a fresh channel", async () => {
    const h = harness();
    h.loop.start();
    expect(h.clients).toHaveLength(1);
    for (const wait of [500, 1000, 2000, 2000, 2000]) {
      const n = h.clients.length;
      h.last().end(status.UNAVAILABLE, "connect ECONNREFUSED");
      await vi.advanceTimersByTimeAsync(wait - 1);
      expect(h.clients).toHaveLength(n); // not yet
      await vi.advanceTimersByTimeAsync(1);
      expect(h.clients).toHaveLength(n + 1); // a new channel, the old one closed
      expect(h.clients[n - 1]!.closed).toBe(true);
    }
    expect(h.lines.filter((l) => l.msg === "reconnecting after backoff").map((l) => l.obj.retryInMs)).toEqual([500, 1000, 2000, 2000, 2000]);
    h.loop.stop();
  });

  it("when the fresh channel connects after a lost connection, then 'watching again' is logged once, before any message", async () => {
    const h = harness("r1");
    h.loop.start();
    h.last().end(status.UNAVAILABLE, "server shutting down");
    await vi.advanceTimersByTimeAsync(500);
    const ch = h.clients.at(-1)!.channel;
    ch.set(connectivityState.TRANSIENT_FAILURE);
    expect(h.lines.some((l) => l.msg === "watching again")).toBe(false);
    ch.set(connectivityState.READY);
    expect(h.lines.filter((l) => l.msg === "watching again")).toEqual([{ level: "info", msg: "watching again", obj: { after: "UNAVAILABLE" } }]);
    h.last().emit("data", rev("r2"));
    await vi.advanceTimersByTimeAsync(0);
    expect(h.lines.filter((l) => l.msg === "watching again")).toHaveLength(1);
    expect(h.projections.map((p) => p.revision)).toEqual(["r2"]);
    h.loop.stop();
  });

  it("when the server refuses with INVALID_ARGUMENT after a projection was accepted, then the values stay and it retries until a message comes", async () => {
    const h = harness();
    h.loop.start();
    h.last().emit("data", rev("r1"));
    await vi.advanceTimersByTimeAsync(0);
    h.last().end(status.INVALID_ARGUMENT, 'items[1].keys[0].path: "db/x" is also produced by items[0].keys[2]');
    await vi.advanceTimersByTimeAsync(500);
    expect(h.fatal).toEqual([]);
    const warn = h.lines.find((l) => l.level === "warn");
    expect(warn?.msg).toContain("keeping the last good values");
    expect(warn?.obj).toMatchObject({ code: "INVALID_ARGUMENT", details: expect.stringContaining("items[1].keys[0].path") });
    h.last().end(status.INVALID_ARGUMENT, "still");
    await vi.advanceTimersByTimeAsync(1000);
    h.clients.at(-1)!.channel.set(connectivityState.READY); // connected, but only a message says the projection is good again
    expect(h.lines.some((l) => l.msg === "watching again")).toBe(false);
    h.last().emit("data", rev("r2"));
    await vi.advanceTimersByTimeAsync(0);
    expect(h.projections.map((p) => p.revision)).toEqual(["r1", "r2"]);
    expect(h.lines.filter((l) => l.msg === "watching again")).toHaveLength(1);
    h.loop.stop();
  });

  it("when the server refuses the request with INVALID_ARGUMENT before any projection, then it is fatal", async () => {
    const h = harness();
    h.loop.start();
    h.last().end(status.INVALID_ARGUMENT, "items[0].name: bad");
    await vi.advanceTimersByTimeAsync(0);
    expect(h.fatal).toHaveLength(1);
    expect((h.fatal[0] as Error).message).toContain("items[0].name: bad");
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.clients).toHaveLength(1);
  });
});
