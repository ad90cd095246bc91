/**
 * #27 item 2: request bodies that never finish, sent with no token at all. Each body is
 * charged (before authentication) to its stream, connection and peer address; past a
 * bound the stream is reset (ENHANCE_YOUR_CALM: RESOURCE_EXHAUSTED), and a body not
 * complete within --request-body-timeout is reset (CANCEL). 1-byte DATA frames cost what
 * they cost the heap, so they are reset sooner, not later. Meanwhile the victim tenant's
 * GetSecret and watch are served and the process stays within a memory bound.
 */
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetSecretRequest, ProjectSecretsRequest } from "../../src/gen/secrets/v1/secrets.js";
import { E2E_WORKERS, startTestServer, type TestServer } from "../helpers/server.js";
import { SMALL_CHUNKS_PER_BODY, SMALL_FRAME_STRIKES } from "../../src/transport/grpc/resource-ledger.js";
import { FRAME, frame, grpcHeaders, RawConnection } from "../security/raw-http2.js";
import { connect, h2Request, MiB, S, startVictim, until, VICTIM_MESH, vmRss, type Outcome, type Victim } from "./harness.js";

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_CANCEL } = http2.constants;

let s: TestServer;
let victim: Victim;

beforeAll(async () => {
  s = await startTestServer({ maxRequestBytesPerConnection: "1MiB", maxRequestBytesPerPeer: "2MiB", requestBodyTimeout: "2s" });
  victim = await startVictim(s);
});

afterAll(async () => {
  await s?.stop();
});

/** A gRPC prefix announcing a 2 MiB message, then `n` bytes of it. */
function unfinished(n: number): Buffer {
  const b = Buffer.alloc(5 + n);
  b.writeUInt32BE(2 * MiB - 64, 1);
  return b;
}

describe.skipIf(E2E_WORKERS > 1)("unfinished request bodies before authentication", () => {
  it("when 4 connections of one peer each open 32 streams of unfinished 2 MiB bodies, then streams past the 1 MiB/connection and 2 MiB/peer bounds are reset, the rest at the body deadline, and the victim is served", async () => {
    const before = vmRss();
    const sessions = Array.from({ length: 4 }, () => connect(s.address, { localAddress: "127.0.0.2" }));
    const outcomes: Outcome[] = [];
    try {
      for (const session of sessions) {
        for (let i = 0; i < 32; i++) outcomes.push(h2Request(session, `${S}/GetSecret`, unfinished(60 * 1024), { end: false }).outcome);
        // The watch route buffers its bodies too.
        for (let i = 0; i < 4; i++) outcomes.push(h2Request(session, `${S}/WatchProjection`, unfinished(60 * 1024), { end: false }).outcome);
      }
      await victim.served();
      // Nothing of it is held for long: every stream ends, by the server, without a status.
      await until(() => outcomes.every((o) => o.closed), "every attacking stream reset");
      expect(outcomes.every((o) => o.status === undefined)).toBe(true);
      const codes = new Set(outcomes.map((o) => o.rstCode));
      expect([...codes].every((c) => c === NGHTTP2_ENHANCE_YOUR_CALM || c === NGHTTP2_CANCEL)).toBe(true);
      // 144 x 60 KiB = 8.4 MiB were sent: most of it was over budget.
      expect(outcomes.filter((o) => o.rstCode === NGHTTP2_ENHANCE_YOUR_CALM).length).toBeGreaterThan(100);
      expect(outcomes.some((o) => o.rstCode === NGHTTP2_CANCEL)).toBe(true);
      await victim.served();
      expect(vmRss() - before).toBeLessThan(96 * MiB);
    } finally {
      for (const session of sessions) session.destroy();
    }
  });

  it("when a body comes in 1-byte DATA frames, then each frame is charged its heap cost and the stream is reset long before its bytes reach the bound", async () => {
    const c = await RawConnection.open(s.app.port, { localAddress: "127.0.0.3" });
    try {
      c.headers(1, grpcHeaders(s.address, `${S}/GetSecret`));
      const prefix = unfinished(0);
      // 20,000 frames of one byte: 20 KB of body, ~2.6 MB of heap were it kept chunk by chunk.
      const frames: Buffer[] = [];
      for (const b of prefix) frames.push(frame(FRAME.DATA, 0, 1, Buffer.from([b])));
      for (let i = 0; i < 20_000; i++) frames.push(frame(FRAME.DATA, 0, 1, Buffer.from([0x41])));
      c.write(Buffer.concat(frames));
      await c.until(() => c.ends.has(1));
      expect(c.ends.get(1)).toEqual({ kind: "reset", code: NGHTTP2_ENHANCE_YOUR_CALM });
    } finally {
      c.close();
    }
    await victim.served();
  });

  it("when the watch route gets a body in more than SMALL_CHUNKS_PER_BODY 1-byte frames, then it is reset with ENHANCE_YOUR_CALM too (the ledger counts frames on both paths)", async () => {
    const c = await RawConnection.open(s.app.port, { localAddress: "127.0.0.7" });
    try {
      c.headers(1, grpcHeaders(s.address, `${S}/WatchProjection`));
      const frames: Buffer[] = [];
      for (const b of unfinished(0)) frames.push(frame(FRAME.DATA, 0, 1, Buffer.from([b])));
      for (let i = 0; i < SMALL_CHUNKS_PER_BODY + 50; i++) frames.push(frame(FRAME.DATA, 0, 1, Buffer.from([0x41])));
      c.write(Buffer.concat(frames));
      await c.until(() => c.ends.has(1));
      expect(c.ends.get(1)).toEqual({ kind: "reset", code: NGHTTP2_ENHANCE_YOUR_CALM });
    } finally {
      c.close();
    }
    await victim.served();
  });

  it("when one connection keeps sending bodies in thousands of 1-byte frames, then each stream is reset with ENHANCE_YOUR_CALM, the connection is closed, the peer's next connection too, and the victim is served", async () => {
    const c = await RawConnection.open(s.app.port, { localAddress: "127.0.0.6" });
    try {
      // SMALL_FRAME_STRIKES streams of SMALL_CHUNKS_PER_BODY + 50 frames: ~150 KB of heap each, under every byte bound.
      const streams = Array.from({ length: SMALL_FRAME_STRIKES }, (_, i) => 2 * i + 1);
      for (const id of streams) {
        c.headers(id, grpcHeaders(s.address, `${S}/GetSecret`));
        const frames: Buffer[] = [];
        for (const b of unfinished(0)) frames.push(frame(FRAME.DATA, 0, id, Buffer.from([b])));
        for (let i = 0; i < SMALL_CHUNKS_PER_BODY + 50; i++) frames.push(frame(FRAME.DATA, 0, id, Buffer.from([0x41])));
        c.write(Buffer.concat(frames));
        await c.until(() => c.ends.has(id) || c.closed);
      }
      await c.until(() => c.closed);
      for (const id of streams.slice(0, -1)) expect(c.ends.get(id)).toEqual({ kind: "reset", code: NGHTTP2_ENHANCE_YOUR_CALM });
    } finally {
      c.close();
    }
    const again = await RawConnection.open(s.app.port, { localAddress: "127.0.0.6" });
    try {
      await again.until(() => again.closed);
    } finally {
      again.close();
    }
    await victim.served();
  });

  it("when the watch route gets its body in 1-byte frames and it never ends, then it costs its bytes only and is reset at the body deadline", async () => {
    const c = await RawConnection.open(s.app.port, { localAddress: "127.0.0.4" });
    try {
      c.headers(1, grpcHeaders(s.address, `${S}/WatchProjection`));
      const body = Buffer.from(ProjectSecretsRequest.encode(ProjectSecretsRequest.fromPartial({ mesh: VICTIM_MESH, items: [{ name: "db" }] })).finish());
      const framed = unfinished(0);
      framed.writeUInt32BE(body.length + 1000, 1); // announces more than it sends
      const frames: Buffer[] = [];
      for (const b of Buffer.concat([framed, body])) frames.push(frame(FRAME.DATA, 0, 1, Buffer.from([b])));
      c.write(Buffer.concat(frames));
      await c.until(() => c.ends.has(1));
      expect(c.ends.get(1)).toEqual({ kind: "reset", code: NGHTTP2_CANCEL });
    } finally {
      c.close();
    }
    await victim.served();
  });

  it("when a small GetSecret body comes whole in 1-byte frames, then it is served: frames are charged, not refused", async () => {
    const c = await RawConnection.open(s.app.port, { localAddress: "127.0.0.5" });
    try {
      c.headers(1, grpcHeaders(s.address, `${S}/GetSecret`, [["authorization", `Bearer ${victim.token}`]]));
      const body = Buffer.from(GetSecretRequest.encode(GetSecretRequest.fromPartial({ mesh: VICTIM_MESH, name: "db" })).finish());
      const framed = Buffer.concat([unfinished(0), body]);
      framed.writeUInt32BE(body.length, 1);
      const frames = [...framed].map((b, i) => frame(FRAME.DATA, i === framed.length - 1 ? 1 : 0, 1, Buffer.from([b])));
      c.write(Buffer.concat(frames));
      await c.until(() => c.ends.has(1));
      expect(c.ends.get(1)).toEqual({ kind: "ended" });
    } finally {
      c.close();
    }
  });
});
