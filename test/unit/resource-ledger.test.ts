/**
 * The resource ledger on fake streams and a fake clock: inbound charges per stream,
 * connection and peer (chunk costs included) reset the stream that crosses a bound and
 * are released when the body ends; a body past its deadline is reset; answers are
 * charged to their tenant and connection and refused past either bound, one tenant never
 * for another's; a connection is closed when it drains below the floor rate, not when it
 * takes less than a byte.
 */
import { EventEmitter } from "node:events";
import http2 from "node:http2";
import { describe, expect, it } from "vitest";
import { SecretdError } from "../../src/errors.js";
import { PENALTY_MS, ResourceLedger, SMALL_CHUNKS_PER_BODY, SMALL_FRAME_STRIKES, type LedgerLimits } from "../../src/transport/grpc/resource-ledger.js";

class FakeStream extends EventEmitter {
  writableLength = 0;
  destroyed = false;
  resetCode: number | undefined;
  close(code?: number): void {
    this.resetCode = code;
    this.destroyed = true;
    this.emit("close");
  }
  /** Delivers a DATA chunk as node:http2 would. */
  data(n: number): void {
    this.emit("data", Buffer.alloc(n));
  }
}

class FakeSocket {
  bytesWritten = 0;
  writableLength = 0;
}

const LIMITS: LedgerLimits = {
  inboundPerStream: 1000,
  inboundPerConnection: 1500,
  inboundPerPeer: 2500,
  bodyTimeoutMs: 10_000,
  outboundPerTenant: 1000,
  outboundPerConnection: 800,
  minDrainRate: 100,
  stallMs: 1000,
};

function setup(limits: Partial<LedgerLimits> = {}) {
  let now = 0;
  const ledger = new ResourceLedger({ ...LIMITS, ...limits }, () => now);
  const destroyed = new Set<object>();
  const connect = (address = "10.0.0.1") => {
    const key = {};
    const socket = new FakeSocket();
    ledger.connect(key, socket, address, () => destroyed.add(key));
    const stream = (chunkCost = 0, openRequest = false): FakeStream => {
      const s = new FakeStream();
      ledger.track(key, s, chunkCost, openRequest);
      return s;
    };
    return { key, socket, stream };
  };
  return { ledger, connect, destroyed, advance: (ms: number) => (now += ms) };
}

describe("inbound", () => {
  it("when a body comes in small frames past the bound, then the stream is reset, a connection that keeps doing it is closed, and its peer's new connections too for a while", () => {
    const big = { inboundPerStream: 1e9, inboundPerConnection: 1e9, inboundPerPeer: 1e9 };
    const { ledger, connect, destroyed, advance } = setup(big);
    const c = connect("10.0.0.9");
    // 16 KiB frames (an honest client) and a streaming request's small messages are not counted.
    const honest = c.stream();
    for (let i = 0; i < 4 * SMALL_CHUNKS_PER_BODY; i++) honest.data(16 * 1024);
    const open = c.stream(0, true);
    for (let i = 0; i < 2 * SMALL_CHUNKS_PER_BODY; i++) open.data(1);
    expect(honest.resetCode).toBeUndefined();
    expect(open.resetCode).toBeUndefined();
    for (let k = 0; k < SMALL_FRAME_STRIKES; k++) {
      const s = c.stream();
      for (let i = 0; i < SMALL_CHUNKS_PER_BODY; i++) s.data(1);
      expect(s.resetCode).toBeUndefined();
      s.data(1);
      expect(s.resetCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    }
    expect(ledger.stats.smallFrameResets).toBe(SMALL_FRAME_STRIKES);
    expect(destroyed.has(c.key)).toBe(true);
    ledger.disconnect(c.key);
    // The peer's next connection is closed at once; another peer's is not; after the penalty it is served again.
    expect(destroyed.has(connect("10.0.0.9").key)).toBe(true);
    expect(destroyed.has(connect("10.0.0.10").key)).toBe(false);
    advance(PENALTY_MS);
    expect(destroyed.has(connect("10.0.0.9").key)).toBe(false);
  });

  it("when one stream buffers more than its bound, then it is reset with ENHANCE_YOUR_CALM and its bytes released", () => {
    const { ledger, connect } = setup();
    const s = connect().stream();
    s.data(600);
    expect(s.resetCode).toBeUndefined();
    expect(ledger.usage().inbound).toBe(600);
    s.data(600);
    expect(s.resetCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(ledger.usage().inbound).toBe(0);
    expect(ledger.stats.overBudgetResets).toBe(1);
  });

  it("when 1-byte chunks arrive, then each costs its chunk cost too: small frames are no amplifier", () => {
    const { connect } = setup();
    const s = connect().stream(99);
    for (let i = 0; i < 9; i++) s.data(1); // 9 x 100
    expect(s.resetCode).toBeUndefined();
    s.data(1);
    s.data(1);
    expect(s.resetCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  });

  it("when bodies end, then their bytes are released; unfinished ones add up per connection and per peer", () => {
    const { ledger, connect } = setup();
    const c = connect();
    const done = c.stream();
    done.data(900);
    done.emit("end");
    const a = c.stream();
    a.data(900);
    expect(ledger.usage().inbound).toBe(900);
    const b = c.stream();
    b.data(700); // the connection holds 1600 > 1500: the stream that crossed is reset
    expect(b.resetCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(a.resetCode).toBeUndefined();
    // Same peer, another connection: the peer bound (2500) counts both.
    const d = connect().stream();
    d.data(900);
    const e = connect().stream();
    e.data(900);
    expect(e.resetCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(ledger.usage().peers.get("10.0.0.1")).toBe(1800);
    // Another peer is not charged for it.
    const other = connect("10.0.0.2").stream();
    other.data(900);
    expect(other.resetCode).toBeUndefined();
  });

  it("when a body does not end within the deadline, then the sweep resets it with CANCEL; a finished one and a streaming request are left", () => {
    const { ledger, connect, advance } = setup();
    const c = connect();
    const slow = c.stream();
    const finished = c.stream();
    const reflection = c.stream(0, true);
    slow.data(1);
    finished.data(10);
    finished.emit("end");
    reflection.data(10);
    advance(9_999);
    ledger.sweep();
    expect(slow.resetCode).toBeUndefined();
    advance(1);
    ledger.sweep();
    expect(slow.resetCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(finished.resetCode).toBeUndefined();
    expect(reflection.resetCode).toBeUndefined();
    expect(ledger.stats.deadlineResets).toBe(1);
  });

  it("when a connection closes, then its streams' charges go with it", () => {
    const { ledger, connect } = setup();
    const c = connect();
    c.stream().data(500);
    ledger.disconnect(c.key);
    expect(ledger.usage()).toMatchObject({ inbound: 0, streams: 0 });
    expect(ledger.usage().peers.size).toBe(0);
  });
});

describe("outbound", () => {
  it("when a tenant's unread answers pass its bound, then its new answers are RESOURCE_EXHAUSTED, on any connection; another tenant's are not", () => {
    const { ledger, connect } = setup();
    const c1 = connect();
    const c2 = connect("10.0.0.2");
    for (const c of [c1, c2]) {
      const s = c.stream();
      expect(ledger.admit(s as never, "attacker")).toBeUndefined();
      s.writableLength = 600;
      ledger.wrote(s as never);
    }
    expect(ledger.usage().tenants.get("attacker")).toBe(1200);
    const refused = ledger.admit(c1.stream() as never, "attacker");
    expect(refused).toBeInstanceOf(SecretdError);
    expect(refused?.code).toBe("RESOURCE_EXHAUSTED");
    expect(ledger.admit(connect("10.0.0.3").stream() as never, "attacker")?.code).toBe("RESOURCE_EXHAUSTED");
    expect(ledger.admit(connect("10.0.0.4").stream() as never, "victim")).toBeUndefined();
  });

  it("when a connection's unread answers pass its bound, then its answers are refused, whatever the tenant; the sweep sees what was taken", () => {
    const { ledger, connect } = setup();
    const c = connect();
    const s = c.stream();
    ledger.admit(s as never, "a");
    s.writableLength = 700;
    ledger.wrote(s as never);
    c.socket.writableLength = 200;
    expect(ledger.admit(c.stream() as never, "b")?.code).toBe("RESOURCE_EXHAUSTED");
    c.socket.writableLength = 0;
    s.writableLength = 100; // the peer read
    ledger.sweep();
    expect(ledger.admit(c.stream() as never, "b")).toBeUndefined();
    expect(ledger.usage().tenants.get("a")).toBe(100);
    s.emit("close");
    expect(ledger.usage().tenants.has("a")).toBe(false);
  });

  it("when a connection holding output drains below the floor rate, then it is closed; at the floor, or taking all it held, it is not", () => {
    const { ledger, connect, destroyed, advance } = setup();
    const trickle = connect();
    const steady = connect("10.0.0.2");
    const small = connect("10.0.0.3");
    const [t, st, sm] = [trickle.stream(), steady.stream(), small.stream()];
    t.writableLength = 10_000;
    st.writableLength = 10_000;
    sm.writableLength = 50;
    ledger.sweep(); // windows start
    advance(1000);
    trickle.socket.bytesWritten += 1; // "a byte" is no longer progress
    steady.socket.bytesWritten += 100; // 100 B/s: the floor
    small.socket.bytesWritten += 50; // less than the floor, but all it held
    sm.writableLength = 40; // and more came
    ledger.sweep();
    expect(destroyed.has(trickle.key)).toBe(true);
    expect(destroyed.has(steady.key)).toBe(false);
    expect(destroyed.has(small.key)).toBe(false);
    expect(ledger.stats.slowConnectionsClosed).toBe(1);
  });

  it("when a connection holds nothing, then it is never closed for draining", () => {
    const { ledger, connect, destroyed, advance } = setup();
    const c = connect();
    c.stream();
    for (let i = 0; i < 5; i++) {
      advance(1000);
      ledger.sweep();
    }
    expect(destroyed.size).toBe(0);
  });
});
