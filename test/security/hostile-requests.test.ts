/**
 * Request fields the decoder or the projection used to take at face value (#16 items 8
 * and 12): bytes that are not UTF-8, 64-bit integers past 2^53, a `__proto__` map key,
 * environment names and paths a runtime would misread. Requests are encoded by hand, so
 * no client library can refuse to send them; each must be INVALID_ARGUMENT naming the
 * field, and a request that is fine must still work.
 */
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateSecretRequest, type Projection, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";

const S = "/secrets.v1.SecretService";
const M = "hostile";

let s: TestServer;
let token: string;
let raw: Client;
const identity = (b: Buffer): Buffer => b;

beforeAll(async () => {
  s = await startTestServer();
  token = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
  raw = new Client(s.address, credentials.createInsecure());
  await s.call("createSecret", { mesh: M, name: "app", stringData: { path: "/evil/bin", ld_preload: "/evil.so", token: "t0k", "1st": "x" } }, token);
});

afterAll(async () => {
  raw?.close();
  await s?.stop();
});

function varint(n: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}
const tag = (no: number, wire: number) => varint(BigInt((no << 3) | wire));
const str = (no: number, v: string | Buffer) => {
  const b = typeof v === "string" ? Buffer.from(v) : v;
  return Buffer.concat([tag(no, 2), varint(BigInt(b.length)), b]);
};
const int = (no: number, v: bigint) => Buffer.concat([tag(no, 0), varint(v)]);
const entry = (no: number, key: string | Buffer, value: string | Buffer) => str(no, Buffer.concat([str(1, key), str(2, value)]));

function call(method: string, body: Buffer): Promise<{ code: number; details: string }> {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) => {
    raw.makeUnaryRequest(`${S}/${method}`, identity, identity, body, md, (err: ServiceError | null) =>
      resolve(err ? { code: err.code, details: err.details } : { code: status.OK, details: "" }),
    );
  });
}

describe("item 12: int64 fields beyond 2^53", () => {
  it.each([2n ** 53n, 2n ** 63n - 1n, -(2n ** 53n)])("when GetSecret.version is %s, then INVALID_ARGUMENT naming version", async (v) => {
    const r = await call("GetSecret", Buffer.concat([str(1, M), str(2, "app"), int(3, v)]));
    expect(r.code).toBe(status.INVALID_ARGUMENT);
    expect(r.details).toMatch(/^version: must be between/);
  });

  it("when CreateSecret.expire_time.seconds is past 2^53, then INVALID_ARGUMENT naming expire_time.seconds", async () => {
    const r = await call("CreateSecret", Buffer.concat([str(1, M), str(2, "far"), str(10, int(1, 2n ** 60n))]));
    expect(r.code).toBe(status.INVALID_ARGUMENT);
    expect(r.details).toMatch(/^expire_time(\.seconds)?: must be between/);
  });

  it("when the version is 2^53 - 1, then the request is decoded and answered NOT_FOUND (no such version)", async () => {
    const r = await call("GetSecret", Buffer.concat([str(1, M), str(2, "app"), int(3, 2n ** 53n - 1n)]));
    expect(r.code).toBe(status.NOT_FOUND);
  });
});

describe("item 12: a __proto__ map key is never silently dropped", () => {
  it.each([
    ["data", 4],
    ["string_data", 5],
    ["labels", 7],
    ["annotations", 8],
  ])("when CreateSecret.%s has the key __proto__, then INVALID_ARGUMENT and nothing is created", async (field, no) => {
    const name = `proto-${no}`;
    const r = await call("CreateSecret", Buffer.concat([str(1, M), str(2, name), entry(4, "ok", "v"), entry(no, "__proto__", "hidden")]));
    expect(r.code).toBe(status.INVALID_ARGUMENT);
    expect(r.details).toBe(`${field}["__proto__"]: the key __proto__ is not allowed`);
    expect(await codeOf(s.call("getSecret", { mesh: M, name }, token))).toBe(status.NOT_FOUND);
  });

  it("when the same request is sent without __proto__, then it is created (the hand encoding is right)", async () => {
    const body = Buffer.concat([str(1, M), str(2, "proto-ok"), entry(4, "ok", "v"), entry(5, "s", "w")]);
    expect(CreateSecretRequest.decode(body)).toMatchObject({ mesh: M, name: "proto-ok", stringData: { s: "w" } });
    expect((await call("CreateSecret", body)).code).toBe(status.OK);
  });
});

describe("item 8: request strings must be valid UTF-8", () => {
  const badUtf8 = Buffer.from([0x63, 0x61, 0x66, 0xff, 0xfe]);
  const surrogate = Buffer.from([0x62, 0x6f, 0x62, 0xed, 0xbf, 0xbf]); // "bob" + U+DFFF in WTF-8
  it.each([
    ["description", (b: Buffer) => str(6, b), "description"],
    ["an annotation value", (b: Buffer) => entry(8, "note", b), 'annotations["note"]'],
    ["a string_data value", (b: Buffer) => entry(5, "k", b), 'string_data["k"]'],
    ["the mesh", (b: Buffer) => str(1, b), "mesh"],
  ])("when %s holds invalid UTF-8 (or an encoded surrogate), then INVALID_ARGUMENT naming it", async (_what, field, name) => {
    for (const bad of [badUtf8, surrogate]) {
      const mesh = name === "mesh" ? Buffer.alloc(0) : str(1, M);
      const r = await call("CreateSecret", Buffer.concat([mesh, str(2, "utf8-victim"), field(bad)]));
      expect(r.code).toBe(status.INVALID_ARGUMENT);
      expect(r.details).toBe(`${name}: must be valid UTF-8`);
    }
    expect(await codeOf(s.call("getSecret", { mesh: M, name: "utf8-victim" }, token))).toBe(status.NOT_FOUND);
  });

  it("when a request is not protobuf at all, then INVALID_ARGUMENT rather than INTERNAL", async () => {
    const r = await call("GetSecret", Buffer.from([0x0a, 0x7f, 0x01]));
    expect(r.code).toBe(status.INVALID_ARGUMENT);
  });

  it("when the caller is not authenticated, then a bad request is still UNAUTHENTICATED (authentication comes first)", async () => {
    const r = await new Promise<number>((resolve) =>
      raw.makeUnaryRequest(`${S}/GetSecret`, identity, identity, Buffer.concat([str(1, M), int(3, 2n ** 60n)]), new Metadata(), (err: ServiceError | null) => resolve(err?.code ?? 0)),
    );
    expect(r).toBe(status.UNAUTHENTICATED);
  });
});

describe("item 12: projection env names and paths", () => {
  const project = (items: object[]) => s.call<Projection>("projectSecrets", { mesh: M, items }, token);
  async function refused(items: object[]): Promise<string> {
    const err = await project(items).then(
      () => undefined,
      (e: ServiceError) => e,
    );
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    return err!.details;
  }

  it.each(["A\nB", "X=Y", "1ABC", "A-B", "A B", "É"])("when an explicit env is %j, then INVALID_ARGUMENT naming it", async (env) => {
    expect(await refused([{ name: "app", keys: [{ key: "token", env }] }])).toMatch(/^items\[0\]\.keys\[0\]\.env: must match \[A-Za-z_\]/);
  });

  it("when a path holds a backslash, then INVALID_ARGUMENT naming it", async () => {
    expect(await refused([{ name: "app", keys: [{ key: "token", path: "a\\..\\..\\etc" }] }])).toBe("items[0].keys[0].path: must not contain a backslash");
  });

  it("when a default env name would be PATH or LD_PRELOAD, then the server answers it as is: it is judged where env is produced (#26.6, #26.17)", async () => {
    const envs = async (items: object[]) => (await project(items)).values.map((v) => v.env);
    expect(await envs([{ name: "app", keys: [{ key: "path" }] }])).toEqual(["PATH"]);
    expect(await envs([{ name: "app", keys: [{ key: "ld_preload" }] }])).toEqual(["LD_PRELOAD"]);
    expect(await envs([{ name: "app", keys: [{ key: "token" }], envPrefix: "LD_" }])).toEqual(["LD_TOKEN"]);
    expect(await envs([{ name: "app", keys: [{ key: "1st" }] }])).toEqual(["1ST"]);
  });

  it("when PATH is named explicitly in env, then it is projected as asked", async () => {
    const got = await project([{ name: "app", keys: [{ key: "path", env: "PATH" }, { key: "token" }] }]);
    expect(got.values.map((v) => v.env)).toEqual(["PATH", "TOKEN"]);
  });
});

describe("item 12 (meshes claim): the check lives in the verifier", () => {
  it("when a token says meshes [\"dev\", \"*\"], then UNAUTHENTICATED", async () => {
    const t = await s.token({ tenant: "acme", sub: "mixed", roles: ["tenant-admin"], meshes: ["dev", "*"] });
    expect(await codeOf(s.call<Secret>("getSecret", { mesh: M, name: "app" }, t))).toBe(status.UNAUTHENTICATED);
  });
});
