/**
 * Limits (SPEC §5, README "Transport limits"): oversized messages, a million-key
 * projection, huge label sets, more concurrent streams than allowed, deadlines, idle,
 * garbage, slow and rapid-reset connections. Each is refused with the right code, or
 * held without harm, while ANOTHER client (the helper's own connection) keeps reading
 * a canary secret. No assertion depends on timing: every wait is for an event.
 */
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import net from "node:net";
import { Client, credentials, Metadata, status, type CallOptions, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CreateSecretRequest,
  GetSecretRequest,
  ProjectSecretsRequest,
  type Secret,
} from "../../src/gen/secrets/v1/secrets.js";
import { SERVER_OPTIONS } from "../../src/transport/grpc/server.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";
import { FLAG, FRAME, frame, grpcFrame, grpcHeaders, H2_ERROR, headerBlock, PREFACE, RawConnection } from "./raw-http2.js";

const MAX_MESSAGE = SERVER_OPTIONS["grpc.max_receive_message_length"] as number;
const MAX_STREAMS = SERVER_OPTIONS["grpc.max_concurrent_streams"] as number;
const S = "/secrets.v1.SecretService";
const M = "limits";
const CANARY = "canary-value-3b9e";

let s: TestServer;
let token: string;
let attacker: Client;
const identity = (b: Buffer): Buffer => b;

beforeAll(async () => {
  s = await startTestServer();
  token = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
  await s.call("createSecret", { mesh: M, name: "canary", stringData: { v: CANARY } }, token);
  // The attacker's own channel: a connection separate from the helper's client.
  attacker = new Client(s.address, credentials.createInsecure());
});

afterAll(async () => {
  attacker?.close();
  await s?.stop();
});

/** Another client is served: the helper's connection reads the canary. */
async function canary(): Promise<void> {
  const got = await s.call<Secret>("getSecret", { mesh: M, name: "canary" }, token);
  expect(Buffer.from(got.data.v!).toString()).toBe(CANARY);
}

function auth(): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

/** A unary call of pre-encoded bytes on the attacker's channel; resolves its status code. */
function attack(path: string, body: Buffer, options: CallOptions = {}): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    attacker.makeUnaryRequest(path, identity, identity, body, auth(), options, (err: ServiceError | null) =>
      resolve(err ? { code: err.code, details: err.details } : { code: status.OK, details: "" }),
    );
  });
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A length-delimited protobuf field. */
function ld(fieldNumber: number, payload: Buffer): Buffer {
  return Buffer.concat([varint((fieldNumber << 3) | 2), varint(payload.length), payload]);
}

/**
 * ProjectSecretsRequest{mesh, items: [{name, keys: n × KeyMapping{key: keyOf(i)}}]},
 * encoded by hand (field numbers checked against the generated encoder below), so a
 * million mappings cost one buffer rather than a million objects on the client.
 */
function projectionWithKeys(mesh: string, name: string, n: number, keyOf: (i: number) => string): Buffer {
  const parts: Buffer[] = [ld(1, Buffer.from(name))];
  for (let i = 0; i < n; i++) {
    const k = keyOf(i);
    parts.push(ld(2, k === "" ? Buffer.alloc(0) : ld(1, Buffer.from(k))));
  }
  return Buffer.concat([ld(1, Buffer.from(mesh)), ld(2, Buffer.concat(parts))]);
}

describe("message size", () => {
  it("when a request is larger than the 2 MiB limit, then RESOURCE_EXHAUSTED, and another client is served", async () => {
    const big = CreateSecretRequest.encode(CreateSecretRequest.fromPartial({ mesh: M, name: "too-big", data: { v: Buffer.alloc(MAX_MESSAGE + 512 * 1024, 0x61) } })).finish();
    expect(big.length).toBeGreaterThan(MAX_MESSAGE);
    expect((await attack(`${S}/CreateSecret`, Buffer.from(big))).code).toBe(status.RESOURCE_EXHAUSTED);
    await canary();
    expect((await attack(`${S}/GetSecret`, randomBytes(MAX_MESSAGE + 1))).code).toBe(status.RESOURCE_EXHAUSTED);
    await canary();
    // Nothing was stored.
    expect(await codeOf(s.call("getSecret", { mesh: M, name: "too-big" }, token))).toBe(status.NOT_FOUND);
  });

  it("when a request fits the transport but its data exceeds 1 MiB, then INVALID_ARGUMENT naming data", async () => {
    const err = await s.call("createSecret", { mesh: M, name: "big-data", data: { v: Buffer.alloc(1024 * 1024 + 1) } }, token).catch((e: ServiceError) => e);
    expect((err as ServiceError).code).toBe(status.INVALID_ARGUMENT);
    expect((err as ServiceError).details).toMatch(/^data:/);
    await canary();
  });
});

describe("a million-key projection", () => {
  it("when the hand-built encoding is decoded, then it is the projection request it claims to be", () => {
    const small = projectionWithKeys(M, "canary", 3, (i) => (i === 1 ? "" : `k${i}`));
    const decoded = ProjectSecretsRequest.decode(small);
    expect(decoded.mesh).toBe(M);
    expect(decoded.items[0]?.name).toBe("canary");
    expect(decoded.items[0]?.keys.map((k) => k.key)).toEqual(["k0", "", "k2"]);
  });

  it("when a million named keys are sent, then the encoding exceeds the limit and the answer is RESOURCE_EXHAUSTED", async () => {
    const body = projectionWithKeys(M, "canary", 1_000_000, (i) => `k${i}`);
    expect(body.length).toBeGreaterThan(MAX_MESSAGE);
    expect((await attack(`${S}/ProjectSecrets`, body)).code).toBe(status.RESOURCE_EXHAUSTED);
    await canary();
  });

  it("when a million empty key mappings fit under the limit, then INVALID_ARGUMENT, and another client is served", async () => {
    const body = projectionWithKeys(M, "canary", 1_000_000, () => "");
    expect(body.length).toBeLessThanOrEqual(MAX_MESSAGE);
    const r = await attack(`${S}/ProjectSecrets`, body);
    expect(r.code).toBe(status.INVALID_ARGUMENT);
    expect(r.details).toMatch(/items\[0\]\.keys.*at most 8192 entries/); // refused on the wire, before decoding (#27)
    await canary();
  });
});

describe("huge label and annotation sets", () => {
  const labels = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`l${i}`, `v${i}`]));

  it("when a secret has 65 labels, then INVALID_ARGUMENT naming labels; 64 are fine", async () => {
    const err = await s.call("createSecret", { mesh: M, name: "labels-65", stringData: { v: "x" }, labels: labels(65) }, token).catch((e: ServiceError) => e);
    expect((err as ServiceError).code).toBe(status.INVALID_ARGUMENT);
    expect((err as ServiceError).details).toMatch(/^labels: must have at most 64 entries/);
    await s.call("createSecret", { mesh: M, name: "labels-64", stringData: { v: "x" }, labels: labels(64) }, token);
  });

  it("when a secret has 50,000 labels or 5,000 annotations, then INVALID_ARGUMENT, on create and on update", async () => {
    expect(await codeOf(s.call("createSecret", { mesh: M, name: "labels-huge", stringData: { v: "x" }, labels: labels(50_000) }, token))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(s.call("createSecret", { mesh: M, name: "ann-huge", stringData: { v: "x" }, annotations: labels(5_000) }, token))).toBe(status.INVALID_ARGUMENT);
    const c = await s.call<Secret>("createSecret", { mesh: M, name: "labels-upd", stringData: { v: "x" } }, token);
    expect(await codeOf(s.call("updateSecret", { mesh: M, name: "labels-upd", etag: c.etag, labels: labels(65) }, token))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(s.call("updateSecret", { mesh: M, name: "labels-upd", etag: c.etag, annotations: labels(129) }, token))).toBe(status.INVALID_ARGUMENT);
    await canary();
  });

  // Uncapped, a ~2 MiB selector of a million requirements cost ~23 ms of event-loop time
  // per row examined (up to 5,000 rows per ListSecrets call), stalling every client.
  it("when a label selector is too long or has too many requirements, then INVALID_ARGUMENT and others keep being served", async () => {
    const many = [...Array(65).keys()].map((i) => `k${i}=v`).join(",");
    expect(await codeOf(s.call("listSecrets", { mesh: M, labelSelector: many }, token))).toBe(status.INVALID_ARGUMENT);
    const huge = [...Array(1_000_000).keys()].map(() => "a").join(",");
    expect(await codeOf(s.call("listSecrets", { mesh: M, labelSelector: huge.slice(0, 1_500_000) }, token))).toBe(status.INVALID_ARGUMENT);
    const ok = [...Array(64).keys()].map((i) => `!k${i}`).join(",");
    await s.call("listSecrets", { mesh: M, labelSelector: ok }, token);
    await canary();
  });
});

describe("concurrent streams on one connection", () => {
  const getBody = grpcFrame(GetSecretRequest.encode(GetSecretRequest.fromPartial({ mesh: M, name: "canary" })).finish());
  const N = MAX_STREAMS + 44;

  it("when a well-behaved client opens more streams than allowed, then the extra ones wait their turn and every call is served", async () => {
    const session = http2.connect(`http://${s.address}`);
    session.on("error", () => undefined);
    try {
      const settings = await new Promise<http2.Settings>((resolve) => session.once("remoteSettings", resolve));
      expect(settings.maxConcurrentStreams).toBe(MAX_STREAMS);
      const outcomes: Promise<string>[] = [];
      const streams: http2.ClientHttp2Stream[] = [];
      for (let i = 0; i < N; i++) {
        const st = session.request({ ":method": "POST", ":path": `${S}/GetSecret`, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}` });
        // Half a message: each stream stays open until its body is completed below.
        st.write(getBody.subarray(0, 6));
        outcomes.push(
          new Promise((resolve) => {
            let grpcStatus = "none";
            st.on("response", (h) => {
              if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
            });
            st.on("trailers", (h) => {
              grpcStatus = String(h["grpc-status"]);
            });
            st.on("error", () => undefined);
            st.on("close", () => resolve(grpcStatus));
            st.resume();
          }),
        );
        streams.push(st);
      }
      await canary();
      for (const st of streams) st.end(getBody.subarray(6));
      const results = await Promise.all(outcomes);
      expect(results.filter((r) => r === "0")).toHaveLength(N);
      await canary();
    } finally {
      session.destroy();
    }
  });

  it("when a client ignores the limit, then the streams beyond it are refused (REFUSED_STREAM), the others are served, and other clients too", async () => {
    const c = await RawConnection.open(s.app.port);
    try {
      const ids = Array.from({ length: N }, (_, i) => 1 + 2 * i);
      for (const id of ids) {
        c.headers(id, grpcHeaders(s.address, `${S}/GetSecret`, [["authorization", `Bearer ${token}`]]));
        c.data(id, getBody.subarray(0, 6), false);
      }
      // Wait for the refusals (the server answers them at once), then for nothing else.
      await c.until(() => c.ends.size >= N - MAX_STREAMS);
      expect(c.closed).toBe(false);
      const refused = ids.filter((id) => c.ends.get(id)?.kind === "reset");
      expect(refused).toHaveLength(N - MAX_STREAMS);
      expect(refused.every((id) => c.ends.get(id)?.kind === "reset" && (c.ends.get(id) as { code: number }).code === H2_ERROR.REFUSED_STREAM)).toBe(true);
      // MAX_STREAMS calls are held open on this connection, and another client is served.
      await canary();
      for (const id of ids) if (!c.ends.has(id)) c.data(id, getBody.subarray(6), true);
      await c.until(() => ids.every((id) => c.ends.has(id)));
      expect(ids.filter((id) => c.ends.get(id)?.kind === "ended")).toHaveLength(MAX_STREAMS);
      expect(c.goawayCode).toBeUndefined();
    } finally {
      c.close();
    }
    await canary();
  });

  it("when a connection opens and resets streams in a tight loop (rapid reset), then other clients are still served", async () => {
    const c = await RawConnection.open(s.app.port);
    try {
      const batch: Buffer[] = [];
      for (let i = 0; i < 2000; i++) {
        const id = 1 + 2 * i;
        batch.push(frame(FRAME.HEADERS, FLAG.END_HEADERS, id, headerBlock(grpcHeaders(s.address, `${S}/GetSecret`, [["authorization", `Bearer ${token}`]]))));
        const code = Buffer.alloc(4);
        code.writeUInt32BE(H2_ERROR.CANCEL);
        batch.push(frame(FRAME.RST_STREAM, 0, id, code));
      }
      c.write(Buffer.concat(batch));
      await canary();
      await canary();
    } finally {
      c.close();
    }
    await canary();
  });
});

describe("deadlines", () => {
  it("when the deadline has already passed, then the client reports DEADLINE_EXCEEDED, and the server keeps serving", async () => {
    const body = Buffer.from(GetSecretRequest.encode(GetSecretRequest.fromPartial({ mesh: M, name: "canary" })).finish());
    expect((await attack(`${S}/GetSecret`, body, { deadline: new Date(Date.now() - 1000) })).code).toBe(status.DEADLINE_EXCEEDED);
    await canary();
  });

  it("when a call cannot finish before its grpc-timeout, then the server answers DEADLINE_EXCEEDED itself", async () => {
    const session = http2.connect(`http://${s.address}`);
    session.on("error", () => undefined);
    try {
      const st = session.request({
        ":method": "POST",
        ":path": `${S}/GetSecret`,
        "content-type": "application/grpc",
        te: "trailers",
        authorization: `Bearer ${token}`,
        "grpc-timeout": "100m",
      });
      // The message is never completed, so only the deadline can end the call.
      st.write(Buffer.from([0, 0, 0, 0, 100, 0x0a]));
      // The server's status ends its side of the stream; ours stays open, so no "close".
      const code = await new Promise<string>((resolve) => {
        st.on("response", (h) => {
          if (h["grpc-status"] !== undefined) resolve(String(h["grpc-status"]));
        });
        st.on("trailers", (h) => resolve(String(h["grpc-status"])));
        st.on("error", () => undefined);
        st.on("close", () => resolve(`closed without a status (rst ${st.rstCode})`));
        st.resume();
      });
      expect(code).toBe(String(status.DEADLINE_EXCEEDED));
    } finally {
      session.destroy();
    }
    await canary();
  });

  it("when large writes race a very short deadline, then each ends OK or DEADLINE_EXCEEDED and leaves a secret either whole or absent", async () => {
    const names = Array.from({ length: 16 }, (_, i) => `racing-${i}`);
    const value = (n: string): Buffer => Buffer.alloc(900 * 1024, n);
    const results = await Promise.all(
      names.map((name) =>
        attack(`${S}/CreateSecret`, Buffer.from(CreateSecretRequest.encode(CreateSecretRequest.fromPartial({ mesh: M, name, data: { v: value(name) } })).finish()), {
          deadline: new Date(Date.now() + 1),
        }),
      ),
    );
    for (const r of results) expect([status.OK, status.DEADLINE_EXCEEDED]).toContain(r.code);
    await canary();
    for (const name of names) {
      const got = await s.call<Secret>("getSecret", { mesh: M, name }, token).catch((e: ServiceError) => e);
      if ("code" in got) expect(got.code).toBe(status.NOT_FOUND);
      else expect(Buffer.from(got.data.v!).equals(value(name))).toBe(true);
    }
  });
});

describe("idle, garbage and slow connections", () => {
  it("when connections are open but never speak HTTP/2, then other clients are served", async () => {
    const idle: net.Socket[] = [];
    try {
      for (let i = 0; i < 32; i++) {
        const sock = net.connect(s.app.port, "127.0.0.1");
        sock.on("error", () => undefined);
        await new Promise((resolve) => sock.once("connect", resolve));
        idle.push(sock);
      }
      for (let i = 0; i < 3; i++) await canary();
    } finally {
      for (const sock of idle) sock.destroy();
    }
  });

  it("when a connection sends HTTP/1.1 or random bytes instead of the preface, then the server closes it and keeps serving", async () => {
    for (const junk of [Buffer.from("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), randomBytes(64 * 1024)]) {
      const sock = net.connect(s.app.port, "127.0.0.1");
      sock.on("error", () => undefined);
      sock.on("data", () => undefined);
      const closed = new Promise((resolve) => sock.once("close", resolve));
      await new Promise((resolve) => sock.once("connect", resolve));
      sock.write(junk);
      await closed;
      await canary();
    }
  });

  it("when a client sends its whole request one byte at a time (slowloris), then other clients are served between every byte, and so is it in the end", async () => {
    const c = await RawConnection.open(s.app.port, { preface: false });
    try {
      c.autoAck = false; // an ACK written by us would land inside a half-sent frame
      const body = grpcFrame(GetSecretRequest.encode(GetSecretRequest.fromPartial({ mesh: M, name: "canary" })).finish());
      const bytes = Buffer.concat([
        PREFACE,
        frame(FRAME.SETTINGS, 0, 0),
        frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, headerBlock(grpcHeaders(s.address, `${S}/GetSecret`, [["authorization", `Bearer ${token}`]]))),
        frame(FRAME.DATA, FLAG.END_STREAM, 1, body),
      ]);
      for (let i = 0; i < bytes.length; i++) {
        c.write(bytes.subarray(i, i + 1));
        await canary();
      }
      c.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      c.autoAck = true;
      await c.until(() => c.ends.has(1));
      expect(c.ends.get(1)).toEqual({ kind: "ended" });
    } finally {
      c.close();
    }
  });

  it("when a connection that never speaks HTTP/2 is still open, then the server still shuts down after its grace period", async () => {
    const other = await startTestServer();
    const sock = net.connect(other.app.port, "127.0.0.1");
    sock.on("error", () => undefined);
    try {
      await new Promise((resolve) => sock.once("connect", resolve));
      // Resolves only if shutdown does not wait forever on the silent connection.
      await other.app.close(200);
    } finally {
      sock.destroy();
      await other.stop().catch(() => undefined);
    }
  });
});
