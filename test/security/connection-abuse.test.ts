/**
 * #16 item 5: one client must not make the server hold unbounded memory or connections.
 * A client that opens many streams and never reads (HTTP/2 window 0) gets
 * RESOURCE_EXHAUSTED once its connection holds 32 MiB of unread answers, and the
 * connection is closed after --write-stall-timeout without progress; connections are
 * capped in all and per peer address; a 1 MiB header, 20,000 small headers and a gzip
 * message inflating to 512 MiB are refused. The server runs in this process, so its RSS
 * is this process's: each attack must leave it within a stated bound.
 */
import http2 from "node:http2";
import { randomBytes, randomUUID } from "node:crypto";
import { createGzip } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetSecretRequest, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { E2E_WORKERS, startTestServer, type TestServer } from "../helpers/server.js";
import { FRAME, frame, grpcFrame, grpcHeaders, RawConnection } from "./raw-http2.js";

const S = "/secrets.v1.SecretService";
const M = "abuse";
const MiB = 1024 * 1024;

let s: TestServer;
let token: string;

beforeAll(async () => {
  s = await startTestServer({ writeStallTimeout: "2s", maxConnectionsPerPeer: "12", maxConnections: "16" });
  token = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
  await s.call("createSecret", { mesh: M, name: "canary", stringData: { v: "ok" } }, token);
  await s.call("createSecret", { mesh: M, name: "big", data: { v: randomBytes(MiB - 64) } }, token);
});

afterAll(async () => {
  await s?.stop();
});

async function canary(): Promise<void> {
  const got = await s.call<Secret>("getSecret", { mesh: M, name: "canary" }, token);
  expect(Buffer.from(got.data.v!).toString()).toBe("ok");
}

function rss(): number {
  global.gc?.();
  return process.memoryUsage().rss;
}

const until = async (check: () => boolean, ms = 15_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe.skipIf(E2E_WORKERS > 1)("a client that never reads", () => {
  it("when 200 streams ask for 1 MiB each with a zero window, then calls past 32 MiB pending are RESOURCE_EXHAUSTED, the connection is closed when it stalls, and others are served", async () => {
    const before = rss();
    const session = http2.connect(`http://${s.address}`, { settings: { initialWindowSize: 0 } });
    session.on("error", () => undefined);
    const body = grpcFrame(GetSecretRequest.encode(GetSecretRequest.fromPartial({ mesh: M, name: "big" })).finish());
    const codes: string[] = [];
    let closed = false;
    session.on("close", () => {
      closed = true;
    });
    const N = 200;
    for (let i = 0; i < N; i++) {
      const st = session.request({ ":method": "POST", ":path": `${S}/GetSecret`, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}`, "x-request-id": `stall-${i}` });
      st.on("response", (h) => {
        if (h["grpc-status"] !== undefined) codes.push(String(h["grpc-status"]));
      });
      st.on("error", () => undefined);
      st.end(body);
      // Never read: the window stays 0, so nothing of the answers can be sent.
      st.pause();
    }
    // Trailers-only refusals are headers, which flow control does not hold back.
    await until(() => codes.length >= N - 40);
    expect(codes.every((c) => c === "8")).toBe(true); // RESOURCE_EXHAUSTED
    await canary();
    const refusedLines = s.logs.filter((l) => l.includes('"rid":"stall-') && l.includes('"code":"RESOURCE_EXHAUSTED"'));
    expect(refusedLines.length).toBeGreaterThanOrEqual(N - 40);
    expect(refusedLines.join("\n")).not.toContain(token);
    // About 32 answers of 1 MiB are held, not 200: the process grew by far less than 200 MiB.
    expect(rss() - before).toBeLessThan(150 * MiB);
    // The peer never opens its window: the server closes the connection (write stall 2 s).
    await until(() => closed);
    session.destroy();
    await canary();
  });
});

// The caps are per server process: with several workers the connections spread over them.
describe.skipIf(E2E_WORKERS > 1)("connection caps", () => {
  async function openMany(n: number, localAddress: string): Promise<RawConnection[]> {
    const out: RawConnection[] = [];
    for (let i = 0; i < n; i++) out.push(await RawConnection.open(s.app.port, { localAddress }));
    return out;
  }
  /** Whether the server accepted the connection: it answers a PING, or closes the socket. */
  async function accepted(c: RawConnection): Promise<boolean> {
    const before = c.ends.size;
    c.write(frame(FRAME.PING, 0, 0, Buffer.alloc(8)));
    const id = 1;
    c.headers(id, grpcHeaders(s.address, "/grpc.health.v1.Health/Check"));
    c.data(id, grpcFrame(Buffer.alloc(0)), true);
    await c.until(() => c.ends.size > before);
    return !c.closed;
  }

  it("when one peer address opens more than --max-connections-per-peer, then the extra ones are closed at once; another address is still served", async () => {
    const mine = await openMany(12, "127.0.0.2");
    try {
      for (const c of mine) expect(await accepted(c)).toBe(true);
      const extra = await RawConnection.open(s.app.port, { localAddress: "127.0.0.2" });
      expect(await accepted(extra)).toBe(false);
      const other = await RawConnection.open(s.app.port, { localAddress: "127.0.0.3" });
      expect(await accepted(other)).toBe(true);
      other.close();
      // Closing one makes room again.
      mine.pop()!.close();
      await new Promise((r) => setTimeout(r, 100));
      const again = await RawConnection.open(s.app.port, { localAddress: "127.0.0.2" });
      expect(await accepted(again)).toBe(true);
      again.close();
    } finally {
      for (const c of mine) c.close();
    }
    await canary();
  });

  it("when all peers together open more than --max-connections, then the extra ones are closed; existing connections keep being served", async () => {
    await new Promise((r) => setTimeout(r, 100));
    const held = [...(await openMany(8, "127.0.0.4")), ...(await openMany(7, "127.0.0.5"))]; // + the test client's own = 16
    try {
      for (const c of held) expect(await accepted(c)).toBe(true);
      const extra = await RawConnection.open(s.app.port, { localAddress: "127.0.0.6" });
      expect(await accepted(extra)).toBe(false);
      await canary(); // the test client's connection is one of the 16
    } finally {
      for (const c of held) c.close();
    }
    await new Promise((r) => setTimeout(r, 100));
    const later = await RawConnection.open(s.app.port, { localAddress: "127.0.0.6" });
    expect(await accepted(later)).toBe(true);
    later.close();
  });
});

describe("oversized headers and a compression bomb", () => {
  const getBody = grpcFrame(GetSecretRequest.encode(GetSecretRequest.fromPartial({ mesh: M, name: "canary" })).finish());

  /** Sends the header block (in CONTINUATION frames) and a small body; how the server refused it. */
  async function attack(headers: Array<readonly [string, string]>, body: Buffer): Promise<{ ended: boolean; closed: boolean }> {
    const c = await RawConnection.open(s.app.port);
    try {
      c.headersContinued(1, headers);
      c.data(1, body, true);
      await c.until(() => c.ends.has(1) || c.goawayCode !== undefined);
      // Either the stream was refused (a reset, or a trailers-only error) or the connection torn down (GOAWAY).
      return { ended: c.ends.has(1), closed: c.closed || c.goawayCode !== undefined };
    } finally {
      c.close();
    }
  }

  it("when one header value is 1 MiB, then the request is refused, the process stays within 64 MiB of growth, and others are served", async () => {
    const before = rss();
    const r = await attack(grpcHeaders(s.address, `${S}/GetSecret`, [["authorization", `Bearer ${token}`], ["x-big", "a".repeat(MiB)]]), getBody);
    expect(r.ended || r.closed).toBe(true);
    expect(s.logs.some((l) => l.includes('"method":"GetSecret"') && l.includes("x-big"))).toBe(false);
    expect(rss() - before).toBeLessThan(64 * MiB);
    await canary();
  });

  it("when a request carries 20,000 small headers, then it is refused, the process stays within 64 MiB of growth, and others are served", async () => {
    const before = rss();
    const many = Array.from({ length: 20_000 }, (_, i) => [`x-h${i}`, "v"] as const);
    const logsBefore = s.logs.length;
    const r = await attack(grpcHeaders(s.address, `${S}/GetSecret`, [["authorization", `Bearer ${token}`], ["x-request-id", "many-headers"], ...many]), getBody);
    expect(r.ended || r.closed).toBe(true);
    // No handler ran for it: no log line carries its request id with OK.
    expect(s.logs.slice(logsBefore).some((l) => l.includes('"rid":"many-headers"') && l.includes('"code":"OK"'))).toBe(false);
    expect(rss() - before).toBeLessThan(64 * MiB);
    await canary();
  });

  it("when a gzip message inflates to 512 MiB, then it is refused at the 2 MiB receive limit, the process stays within 64 MiB of growth, and others are served", async () => {
    // ~0.5 MiB on the wire, compressed in a stream so the test itself never holds 512 MiB.
    const gz = createGzip({ level: 9 });
    const parts: Buffer[] = [];
    gz.on("data", (b: Buffer) => parts.push(b));
    const zeros = Buffer.alloc(MiB);
    for (let i = 0; i < 512; i++) if (!gz.write(zeros)) await new Promise((r) => gz.once("drain", r));
    await new Promise((r) => gz.end(r));
    const bomb = Buffer.concat(parts);
    expect(bomb.length).toBeLessThan(2 * MiB);
    const framed = Buffer.concat([Buffer.from([1]), Buffer.alloc(4), bomb]);
    framed.writeUInt32BE(bomb.length, 1);

    const before = rss();
    const rid = randomUUID();
    const logsBefore = s.logs.length;
    // node:http2 frames it and honours flow control; nothing but the body is unusual.
    const session = http2.connect(`http://${s.address}`);
    session.on("error", () => undefined);
    try {
      const st = session.request({ ":method": "POST", ":path": `${S}/GetSecret`, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}`, "grpc-encoding": "gzip", "x-request-id": rid });
      const result = new Promise<{ status: string; message: string }>((resolve) => {
        let status = "none";
        let message = "";
        const take = (h: http2.IncomingHttpHeaders): void => {
          if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
          if (h["grpc-message"] !== undefined) message = decodeURIComponent(String(h["grpc-message"]));
        };
        st.on("response", take);
        st.on("trailers", take);
        st.on("error", () => undefined);
        st.on("close", () => resolve({ status, message }));
        st.resume();
      });
      st.end(framed);
      const { status, message } = await result;
      expect(status).toBe("8"); // RESOURCE_EXHAUSTED
      expect(message).toMatch(/decompresses to a size larger than 2097152/);
    } finally {
      session.destroy();
    }
    expect(s.logs.slice(logsBefore).some((l) => l.includes(rid) && l.includes('"code":"OK"'))).toBe(false);
    expect(rss() - before).toBeLessThan(64 * MiB);
    await canary();
  });
});
