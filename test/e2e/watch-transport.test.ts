/**
 * The transport of WatchProjection (stream-router.ts, h2-server-stream.ts): a plain
 * stream is served by node:http2 directly, deadlines included (grpc-timeout.ts), one with
 * a compressed request by grpc-js, and both behave the same for a client. Which one served
 * a stream shows in the router's counts (this server runs in the test's process), and in
 * its response headers: grpc-js always sends grpc-accept-encoding, the route never does.
 * The protocol edges are driven with a raw HTTP/2 client: a missing, second, compressed, oversized or malformed request message,
 * a client reset, and the order of authentication and decoding.
 */
import http2 from "node:http2";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetSecretRequest, ProjectSecretsRequest, type Projection } from "../../src/gen/secrets/v1/secrets.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { openWatch } from "../helpers/watch.js";
import { routerCounts } from "../../src/transport/grpc/adapter/stream-router.js";
import { waitFor } from "../helpers/cli-process.js";

const PATH = "/secrets.v1.SecretService/WatchProjection";
const MESH = "wt";
let s: TestServer;
let token: string;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  s = await startTestServer();
  token = await s.token({ tenant: "acme", sub: "wendy", roles: ["data-developer"] });
  await s.call("createSecret", { mesh: MESH, name: "db", stringData: { password: "hunter2-wt" } }, token);
  session = http2.connect(`http://${s.address}`);
});

afterAll(async () => {
  session?.destroy();
  await s?.stop();
});

function frame(body: Uint8Array, flag = 0): Buffer {
  const f = Buffer.alloc(5 + body.length);
  f[0] = flag;
  f.writeUInt32BE(body.length, 1);
  f.set(body, 5);
  return f;
}

const request = (): Buffer => Buffer.from(ProjectSecretsRequest.encode(ProjectSecretsRequest.fromPartial({ mesh: MESH, items: [{ name: "db" }] })).finish());

interface RawResult {
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders | undefined;
  /** DATA chunks received (one per message for these small ones). */
  readonly messages: number;
  /** grpc-status, from the trailers or a trailers-only response. */
  readonly code: number;
  readonly details: string;
}

/** One raw WatchProjection stream: sends `body` and ends, waits for `messages` messages or the end, then resets. */
function raw(body: Buffer, headers: http2.OutgoingHttpHeaders = {}, untilMessages = 1): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}`, ...headers });
    let got: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const done = (): void => {
      const st = trailers ?? got;
      resolve({ headers: got, trailers, messages: count, code: Number(st["grpc-status"] ?? -1), details: decodeURIComponent(String(st["grpc-message"] ?? "")) });
    };
    let count = 0;
    req.on("response", (h) => (got = h));
    req.on("trailers", (t) => (trailers = t));
    req.on("data", () => {
      count++;
      if (count >= untilMessages && untilMessages > 0) {
        done();
        req.close(http2.constants.NGHTTP2_CANCEL);
      }
    });
    req.on("end", done);
    req.on("error", reject);
    req.end(body);
  });
}

describe("WatchProjection on node:http2", () => {
  it("when a plain stream comes, with or without a deadline, then node:http2 serves it; with a compressed request, grpc-js does", async () => {
    // grpc-js always answers with grpc-accept-encoding; the routed stream does not.
    const plain = await raw(frame(request()));
    expect(plain.messages).toBe(1);
    expect(plain.headers["grpc-accept-encoding"]).toBeUndefined();
    const timed = await raw(frame(request()), { "grpc-timeout": "5S" });
    expect(timed.messages).toBe(1);
    expect(timed.headers["grpc-accept-encoding"]).toBeUndefined();
    const gzip = await raw(frame(request()), { "grpc-encoding": "gzip" });
    expect(gzip.messages).toBe(1);
    expect(gzip.headers["grpc-accept-encoding"]).toBeDefined();
  });

  it("when the generated client watches, with and without a deadline, then both get the value; the deadline ends its stream", async () => {
    const w = openWatch(s.client, { mesh: MESH, items: [{ name: "db" }] }, token);
    expect(Buffer.from((await w.next()).values[0]!.value).toString()).toBe("hunter2-wt");
    w.cancel();
    await waitFor("first watch forgotten", () => s.app.watches.openWatches === 0);
    const counted = { ...routerCounts };
    const md = new Metadata();
    md.set("authorization", `Bearer ${token}`);
    const call = s.client.watchProjection(ProjectSecretsRequest.fromPartial({ mesh: MESH, items: [{ name: "db" }] }), md, { deadline: Date.now() + 1500 });
    const ended = new Promise<ServiceError>((resolve) => call.on("error", resolve));
    const first = await new Promise<Projection>((resolve) => call.once("data", resolve));
    expect(Buffer.from(first.values[0]!.value).toString()).toBe("hunter2-wt");
    expect((await ended).code).toBe(status.DEADLINE_EXCEEDED);
    expect([routerCounts.routed - counted.routed, routerCounts.grpcJs - counted.grpcJs]).toEqual([1, 0]); // the route, not grpc-js
    await waitFor("watch forgotten", () => s.app.watches.openWatches === 0);
  });

  it("when a raw stream's deadline passes, then the route ends it DEADLINE_EXCEEDED in trailers, and the watch is forgotten", async () => {
    await waitFor("no watch open", () => s.app.watches.openWatches === 0);
    const r = await raw(frame(request()), { "grpc-timeout": "300m" }, 0);
    expect(r.headers["grpc-accept-encoding"]).toBeUndefined();
    expect(r.messages).toBe(1);
    expect(r.trailers?.["grpc-status"]).toBe(String(status.DEADLINE_EXCEEDED));
    expect(r.details).toBe("Deadline exceeded");
    // The client never reset this stream: only the server's deadline can have closed the watch.
    await waitFor("watch forgotten", () => s.app.watches.openWatches === 0);
  });

  it("when the deadline passes before the request is whole, then the answer is DEADLINE_EXCEEDED, trailers-only", async () => {
    const counted = { ...routerCounts };
    const r = await new Promise<RawResult>((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}`, "grpc-timeout": "100m" });
      req.on("response", (h) => {
        resolve({ headers: h, trailers: undefined, messages: 0, code: Number(h["grpc-status"] ?? -1), details: decodeURIComponent(String(h["grpc-message"] ?? "")) });
        req.close(http2.constants.NGHTTP2_CANCEL);
      });
      req.on("error", reject);
      req.write(frame(request()).subarray(0, 3)); // never ended
    });
    expect([r.code, r.details]).toEqual([status.DEADLINE_EXCEEDED, "Deadline exceeded"]);
    expect([routerCounts.routed - counted.routed, routerCounts.grpcJs - counted.grpcJs]).toEqual([1, 0]);
  });

  it("when grpc-timeout is malformed, then the route answers as grpc-js does; a value grpc-js accepts is a deadline", async () => {
    // grpc-js's own answer, on a unary method it serves, is the reference.
    const unary = (value: string): Promise<RawResult> =>
      new Promise((resolve, reject) => {
        const body = Buffer.from(GetSecretRequest.encode(GetSecretRequest.fromPartial({ mesh: MESH, name: "db" })).finish());
        const req = session.request({ ":method": "POST", ":path": "/secrets.v1.SecretService/GetSecret", "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}`, "grpc-timeout": value });
        let got: http2.IncomingHttpHeaders = {};
        let trailers: http2.IncomingHttpHeaders | undefined;
        req.on("response", (h) => (got = h));
        req.on("trailers", (t) => (trailers = t));
        req.on("data", () => undefined);
        req.on("end", () => {
          const st = trailers ?? got;
          resolve({ headers: got, trailers, messages: 0, code: Number(st["grpc-status"] ?? -1), details: decodeURIComponent(String(st["grpc-message"] ?? "")) });
        });
        req.on("error", reject);
        req.end(frame(body));
      });
    for (const value of ["soon", "5", "5x", "123456789", "S5", "-"]) {
      const counted = { ...routerCounts };
      const routed = await raw(frame(request()), { "grpc-timeout": value }, 0);
      expect([routerCounts.routed - counted.routed, routerCounts.grpcJs - counted.grpcJs]).toEqual([1, 0]);
      const reference = await unary(value);
      expect(reference.code).toBe(status.INTERNAL);
      expect([routed.code, routed.details]).toEqual([reference.code, reference.details]);
      expect(routed.details).toBe(`Invalid grpc-timeout value "${value}"`);
      expect(routed.headers["grpc-accept-encoding"]).toBeUndefined();
      expect(routed.trailers).toBeUndefined();
    }
    // grpc-js finds its pattern anywhere in the value: "123456789S" is 23,456,789 seconds, " 2 H" two hours.
    for (const value of ["123456789S", "x 2 H", "99999999n"]) {
      const r = await raw(frame(request()), { "grpc-timeout": value }, value === "99999999n" ? 0 : 1);
      if (value === "99999999n") expect(r.code).toBe(status.DEADLINE_EXCEEDED); // ~0.1 ms
      else expect(r.messages).toBe(1);
    }
  });

  it("when the raw request is well formed, then the first message comes framed, uncompressed", async () => {
    const r = await raw(frame(request()));
    expect(r.headers[":status"]).toBe(200);
    expect(r.headers["content-type"]).toBe("application/grpc+proto");
    expect(r.messages).toBe(1);
  });

  it("when the request has no message, a second one, a compressed flag, a bad flag or an oversized length, then the status says so", async () => {
    const none = await raw(Buffer.alloc(0), {}, 0);
    expect([none.code, none.details]).toEqual([status.UNIMPLEMENTED, `Received no request message for server streaming method ${PATH}`]);
    const two = await raw(Buffer.concat([frame(request()), frame(request())]), {}, 0);
    expect([two.code, two.details]).toEqual([status.UNIMPLEMENTED, `Received a second request message for server streaming method ${PATH}`]);
    expect((await raw(frame(request(), 1), {}, 0)).code).toBe(status.INTERNAL);
    expect((await raw(frame(request(), 7), {}, 0)).code).toBe(status.INTERNAL);
    const big = Buffer.alloc(5);
    big.writeUInt32BE(64 * 1024 * 1024, 1);
    const huge = await raw(big, {}, 0);
    expect(huge.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(huge.details).toMatch(/larger than max/);
    const cut = await raw(frame(request()).subarray(0, 8), {}, 0);
    expect(cut.code).toBe(status.INTERNAL);
    // None of these is a response with headers then trailers: each is trailers-only.
    for (const r of [none, two, huge, cut]) expect(r.trailers).toBeUndefined();
  });

  it("when a request body comes in many pieces past one frame of the limit, then it is refused as a second message", async () => {
    const r = await new Promise<RawResult>((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}` });
      req.on("response", (h) => {
        resolve({ headers: h, trailers: undefined, messages: 0, code: Number(h["grpc-status"] ?? -1), details: decodeURIComponent(String(h["grpc-message"] ?? "")) });
        req.close(http2.constants.NGHTTP2_CANCEL);
      });
      req.on("error", reject);
      const header = Buffer.alloc(5);
      header.writeUInt32BE(1024 * 1024, 1);
      req.write(header);
      const chunk = Buffer.alloc(64 * 1024, 1);
      // A second message's header after a whole first message: over one frame of the limit.
      const body = Buffer.concat([Buffer.alloc(1024 * 1024, 0x0a), frame(Buffer.alloc(3 * 1024 * 1024, 0))]);
      for (let at = 0; at < body.length; at += chunk.length) req.write(body.subarray(at, at + chunk.length));
    });
    expect(r.code).toBe(status.UNIMPLEMENTED);
  });

  it("when the request is malformed, then it is INVALID_ARGUMENT after authentication, and UNAUTHENTICATED without a token", async () => {
    const bad = frame(Buffer.from([0x0a, 0x05, 0xff, 0xfe, 0xfd, 0xfc, 0xfb])); // mesh: 5 bytes of invalid UTF-8
    const r = await raw(bad, {}, 0);
    expect(r.code).toBe(status.INVALID_ARGUMENT);
    expect(r.details).toMatch(/UTF-8/);
    const anon = await raw(bad, { authorization: "Bearer nope" }, 0);
    expect(anon.code).toBe(status.UNAUTHENTICATED);
  });

  it("when the client resets the stream, then the server forgets the watch and logs it CANCELLED", async () => {
    const before = s.app.watches.openWatches;
    const r = await raw(frame(request()), { "x-request-id": "wt-reset-1" });
    expect(r.messages).toBe(1);
    await waitFor("watch forgotten", () => s.app.watches.openWatches === before);
    await waitFor("log line", () => s.logs.find((l) => l.includes("wt-reset-1") && l.includes('"code":"CANCELLED"')));
    expect(s.logs.some((l) => l.includes(token) || l.includes("hunter2-wt"))).toBe(false);
  });

  it("when the server ends a watch, then its status comes in trailers after the messages, with the request id", async () => {
    const other = await s.token({ tenant: "acme", sub: "wendy", roles: ["data-developer"] });
    const r = await new Promise<RawResult>((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${other}`, "x-request-id": "wt-end-1" });
      let headers: http2.IncomingHttpHeaders = {};
      let messages = 0;
      req.on("response", (h) => (headers = h));
      req.on("data", () => {
        messages++;
        // Deleting the secret ends the watch of a required item with NOT_FOUND.
        if (messages === 1) void s.call("deleteSecret", { mesh: MESH, name: "gone", force: true }, token);
      });
      req.on("trailers", (t) => resolve({ headers, trailers: t, messages, code: Number(t["grpc-status"]), details: decodeURIComponent(String(t["grpc-message"] ?? "")) }));
      req.on("error", reject);
      void s.call("createSecret", { mesh: MESH, name: "gone", stringData: { k: "v" } }, token).then(() =>
        req.end(frame(Buffer.from(ProjectSecretsRequest.encode(ProjectSecretsRequest.fromPartial({ mesh: MESH, items: [{ name: "gone" }] })).finish()))),
      );
    });
    expect(r.messages).toBe(1);
    expect(r.headers[":status"]).toBe(200);
    expect(r.trailers?.["x-request-id"]).toBe("wt-end-1");
    expect(r.code).not.toBe(status.OK);
  });
});
