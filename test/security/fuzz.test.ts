/**
 * Fuzzing with fast-check.
 *
 * (a) The request validators (domain/validation.ts, domain/secret-types.ts, and the page
 *     token decoder) on arbitrary input: each returns or throws a SecretdError with code
 *     INVALID_ARGUMENT — never another error type — and no message carries a value.
 *     Values carry a sentinel (VALUE_MARK) so an echo of any part of them is visible;
 *     data keys and label keys may be named in messages by design, so they never hold it.
 * (b) The live server, sent raw random bytes and mutated valid protobuf encodings on
 *     every unary RPC and on WatchProjection, with a valid token: every call ends with a
 *     status, none of them an unexpected handler failure, and a normal GetSecret still
 *     works afterwards.
 */
import { credentials, Client, Metadata, status, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodePageToken } from "../../src/domain/page-token.js";
import { SecretdError } from "../../src/errors.js";
import { KNOWN_SECRET_TYPES, opensslTimeToRfc3339, validateTypedData } from "../../src/domain/secret-types.js";
import {
  keyField,
  matchesSelector,
  mergeData,
  parseLabelSelector,
  validateAnnotations,
  validateDataKey,
  validateDescription,
  validateLabels,
  validateMesh,
  validateName,
  validateType,
} from "../../src/domain/validation.js";
import {
  CreateSecretRequest,
  DeleteSecretRequest,
  GetSecretRequest,
  GrantAccessRequest,
  ListGrantsRequest,
  ListSecretsRequest,
  Permission,
  ProjectSecretsRequest,
  RevokeAccessRequest,
  UpdateSecretRequest,
  type Secret,
} from "../../src/gen/secrets/v1/secrets.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

// ---------------------------------------------------------------------------------
// (a) validators
// ---------------------------------------------------------------------------------

/** Lower-case alphanumerics, so a value that starts with it can still be valid. */
const VALUE_MARK = "vq7zx";

/** Any string: ASCII, full Unicode (lone surrogates included), control characters. */
const anyString = (maxLength = 300): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ maxLength }),
    fc.string({ unit: "binary", maxLength }),
    fc.string({ unit: "grapheme", maxLength: Math.min(maxLength, 60) }),
    fc.stringMatching(/^[-a-z0-9.]{0,80}$/),
    fc.stringMatching(/^[-._a-zA-Z0-9/]{0,80}$/),
  );
/** A value: the sentinel, then anything (so a valid one is possible too). */
const markedString = (maxLength = 300): fc.Arbitrary<string> => anyString(maxLength).map((s) => VALUE_MARK + s);
const markedBytes = fc
  .oneof(fc.uint8Array({ maxLength: 512 }), fc.string({ unit: "binary", maxLength: 200 }).map((s) => Buffer.from(s, "utf8")))
  .map((b) => Buffer.concat([Buffer.from(VALUE_MARK), b]));
/** A key (data, label or annotation key): may be echoed, so never holds the sentinel. */
const keyString = anyString(300).filter((k) => !k.includes(VALUE_MARK));

/** Runs `fn`; when it throws, the error is an INVALID_ARGUMENT SecretdError holding no value. */
function returnsOrInvalid(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof SecretdError)) throw new Error(`threw a non-SecretdError: ${String(err)}`, { cause: err });
    expect(err.code).toBe("INVALID_ARGUMENT");
    expect(err.message).not.toContain(VALUE_MARK);
    expect(err.message).not.toContain(Buffer.from(VALUE_MARK).toString("base64"));
    expect(err.message).not.toContain(Buffer.from(VALUE_MARK).toString("hex"));
  }
}

const RUNS = { numRuns: 300 };

describe("validators on arbitrary input", () => {
  it("when names, meshes, types and descriptions are arbitrary, then they are accepted or INVALID_ARGUMENT without echo", () => {
    fc.assert(
      fc.property(markedString(), markedString(), markedString(), markedString(5000), (name, mesh, type, description) => {
        returnsOrInvalid(() => validateName(name));
        returnsOrInvalid(() => validateMesh(mesh));
        returnsOrInvalid(() => validateType(type));
        returnsOrInvalid(() => validateDescription(description));
      }),
      RUNS,
    );
  });

  it("when names and meshes are arbitrary without a sentinel, then the verdict is still only accept or INVALID_ARGUMENT", () => {
    fc.assert(
      fc.property(anyString(), (v) => {
        for (const f of [validateName, validateMesh, validateType, validateDescription, (x: string) => validateDataKey(x, "k")]) {
          try {
            f(v);
          } catch (err) {
            expect(err).toBeInstanceOf(SecretdError);
            expect((err as SecretdError).code).toBe("INVALID_ARGUMENT");
          }
        }
        // keyField only formats: it never throws.
        expect(typeof keyField("data", v)).toBe("string");
      }),
      RUNS,
    );
  });

  it("when data and string_data are arbitrary, then mergeData accepts them or says INVALID_ARGUMENT without echoing a value", () => {
    const big = fc.constantFrom(1024 * 1024 - 64, 1024 * 1024 + 1).map((n) => Buffer.concat([Buffer.from(VALUE_MARK), Buffer.alloc(n, 0x61)]));
    fc.assert(
      fc.property(
        fc.dictionary(keyString, fc.oneof({ weight: 9, arbitrary: markedBytes }, { weight: 1, arbitrary: big }), { maxKeys: 8 }),
        fc.dictionary(keyString, markedString(), { maxKeys: 8 }),
        (data, stringData) => returnsOrInvalid(() => mergeData(data, stringData)),
      ),
      { numRuns: 150 },
    );
  });

  it("when labels and annotations are arbitrary or too many, then they are accepted or INVALID_ARGUMENT without echoing a value", () => {
    const labelKey = fc.oneof(keyString, fc.stringMatching(/^([a-z0-9.]{1,20}\/)?[A-Za-z0-9][-A-Za-z0-9_.]{0,10}$/));
    fc.assert(
      fc.property(
        fc.dictionary(labelKey, markedString(80), { maxKeys: 80 }),
        fc.dictionary(labelKey, markedString(400), { maxKeys: 140 }),
        (labels, annotations) => {
          returnsOrInvalid(() => validateLabels(labels));
          returnsOrInvalid(() => validateAnnotations(annotations));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("when a label selector is arbitrary, then it parses or is INVALID_ARGUMENT, never echoes a value, and matching never throws", () => {
    const word = fc.stringMatching(/^[^\s!=,()<>]{0,20}$/);
    const op = fc.constantFrom("=", "==", "!=", " in (", " notin (", ">", "<", "", "!");
    const structured = fc
      .array(fc.tuple(keyString.filter((k) => !/[\s!=,()<>]/.test(k)), op, word), { maxLength: 6 })
      .map((reqs) => reqs.map(([k, o, v]) => (o === "!" ? `!${k}` : o.endsWith("(") ? `${k}${o}${VALUE_MARK}${v},${VALUE_MARK})` : `${k}${o}${o === "" ? "" : VALUE_MARK + v}`)).join(","));
    const labels = fc.dictionary(fc.stringMatching(/^[a-z]{1,3}$/), fc.oneof(fc.stringMatching(/^-?[0-9]{1,25}$/), fc.string({ maxLength: 10 })), { maxKeys: 5 });
    fc.assert(
      fc.property(fc.oneof(structured, anyString(200)), labels, (selector, l) => {
        let parsed: ReturnType<typeof parseLabelSelector> | undefined;
        returnsOrInvalid(() => {
          parsed = parseLabelSelector(selector);
        });
        if (parsed) expect(typeof matchesSelector(parsed, l)).toBe("boolean");
      }),
      RUNS,
    );
  });

  it("when typed data is arbitrary, then every known type accepts it or says INVALID_ARGUMENT without echoing a value", () => {
    const TYPE_KEYS = ["username", "password", "ssh-privatekey", "tls.crt", "tls.key", ".dockerconfigjson", ".dockercfg", "token-id", "token-secret", "Certificate", "CertificateKey", "ENV"];
    const pem = (label: string) => fc.base64String({ maxLength: 200 }).map((b) => Buffer.from(`-----BEGIN ${label}-----\n${VALUE_MARK}${b}\n-----END ${label}-----\n`));
    const value = fc.oneof(
      markedBytes,
      pem("CERTIFICATE"),
      pem("PRIVATE KEY"),
      pem("EC PRIVATE KEY"),
      fc.json().map((j) => Buffer.from(`{"${VALUE_MARK}":${j}`)),
      fc.json().map((j) => Buffer.from(`{"auths":{"r":{"auth":"${VALUE_MARK}"}},"x":${j}}`)),
      fc.stringMatching(/^[a-z0-9]{0,20}$/).map((s) => Buffer.from(VALUE_MARK + s)),
      fc.string({ unit: "binary", maxLength: 40 }).map((s) => Buffer.from(`A_B=${VALUE_MARK}${s}`)),
    );
    const key = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...TYPE_KEYS) }, { weight: 1, arbitrary: keyString });
    fc.assert(
      fc.property(fc.constantFrom(...KNOWN_SECRET_TYPES, "example.com/custom"), fc.array(fc.tuple(key, value), { maxLength: 6 }), (type, entries) => {
        returnsOrInvalid(() => validateTypedData(type, new Map(entries)));
      }),
      RUNS,
    );
  });

  it("when a certificate time or a page token is arbitrary, then the time parser returns and the token decoder returns or says INVALID_ARGUMENT", () => {
    const query = ["mesh", "", "app=web", ""];
    const token = fc.oneof(
      anyString(200),
      fc.json().map((j) => Buffer.from(j).toString("base64url")),
      fc.record({ v: fc.oneof(fc.constant(1), fc.jsonValue()), a: fc.oneof(fc.string(), fc.jsonValue()), q: fc.oneof(fc.string(), fc.jsonValue()) }).map((o) => Buffer.from(JSON.stringify(o)).toString("base64url")),
    );
    fc.assert(
      fc.property(anyString(60), token, (time, t) => {
        const r = opensslTimeToRfc3339(time);
        expect(r === undefined || typeof r === "string").toBe(true);
        returnsOrInvalid(() => decodePageToken(t, query));
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------
// (b) the live server
// ---------------------------------------------------------------------------------

const S = "/secrets.v1.SecretService";
const FM = "fz";
const future = new Date(Date.now() + 24 * 3600_000);

/** Valid encodings of every unary RPC, aimed at secrets that exist, to be mutated. */
const SEEDS: Record<string, Uint8Array[]> = {
  [`${S}/CreateSecret`]: [
    CreateSecretRequest.encode(
      CreateSecretRequest.fromPartial({
        mesh: FM,
        name: "fz-new",
        type: "Opaque",
        data: { k: Buffer.from("value-bytes") },
        stringData: { s: "string-value" },
        description: "fuzz seed",
        labels: { app: "web", tier: "1" },
        annotations: { "example.com/a": "b" },
        expireTime: future,
        requestId: "seed-request-1",
      }),
    ).finish(),
    CreateSecretRequest.encode(CreateSecretRequest.fromPartial({ mesh: FM, name: "fz-typed", type: "kubernetes.io/basic-auth", stringData: { username: "u", password: "p" }, immutable: true })).finish(),
  ],
  [`${S}/GetSecret`]: [
    GetSecretRequest.encode(GetSecretRequest.fromPartial({ mesh: FM, name: "fz-a", version: 0, keys: ["k"] })).finish(),
    GetSecretRequest.encode(GetSecretRequest.fromPartial({ mesh: FM, name: "fz-a", version: 1 })).finish(),
  ],
  [`${S}/ListSecrets`]: [
    ListSecretsRequest.encode(
      ListSecretsRequest.fromPartial({ mesh: FM, labelSelector: "app in (web,db),!gone,tier>0", type: "Opaque", pageSize: 2, expiringWithin: { seconds: 86_400 * 30, nanos: 5 } }),
    ).finish(),
    ListSecretsRequest.encode(ListSecretsRequest.fromPartial({ mesh: FM, pageSize: 1000 })).finish(),
  ],
  [`${S}/UpdateSecret`]: [
    UpdateSecretRequest.encode(
      UpdateSecretRequest.fromPartial({ mesh: FM, name: "fz-a", etag: "stale-etag", stringData: { k: "v2" }, labels: { app: "db" }, updateMask: ["data", "labels"], expireTime: future }),
    ).finish(),
  ],
  [`${S}/DeleteSecret`]: [DeleteSecretRequest.encode(DeleteSecretRequest.fromPartial({ mesh: FM, name: "fz-gone", etag: "x" })).finish()],
  [`${S}/ProjectSecrets`]: [
    ProjectSecretsRequest.encode(
      ProjectSecretsRequest.fromPartial({
        mesh: FM,
        items: [
          { name: "fz-a", keys: [{ key: "k", env: "K", path: "a/k", mode: 0o440 }], envPrefix: "P_" },
          { name: "fz-b", optional: true },
        ],
      }),
    ).finish(),
  ],
  [`${S}/GrantAccess`]: [
    GrantAccessRequest.encode(GrantAccessRequest.fromPartial({ mesh: FM, name: "fz-a", subject: "user:bob", permission: Permission.PERMISSION_READ, keys: ["k"], expireTime: future })).finish(),
  ],
  [`${S}/RevokeAccess`]: [RevokeAccessRequest.encode(RevokeAccessRequest.fromPartial({ mesh: FM, name: "fz-a", subject: "role:x", permission: Permission.PERMISSION_WRITE })).finish()],
  [`${S}/ListGrants`]: [ListGrantsRequest.encode(ListGrantsRequest.fromPartial({ mesh: FM, name: "fz-a" })).finish()],
};
const UNARY = Object.keys(SEEDS);
const WATCH = `${S}/WatchProjection`;
const WATCH_SEEDS = SEEDS[`${S}/ProjectSecrets`]!;

type Mutation =
  | { op: "flip"; at: number; bit: number }
  | { op: "set"; at: number; value: number }
  | { op: "insert"; at: number; bytes: Uint8Array }
  | { op: "delete"; at: number; len: number }
  | { op: "truncate"; at: number }
  | { op: "duplicate"; at: number; len: number }
  | { op: "varint"; at: number; len: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant("set" as const), at: fc.nat(), value: fc.constantFrom(0x00, 0x7f, 0x80, 0xff, 0x08, 0x0a, 0x12, 0x1a, 0x22) }),
  fc.record({ op: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant("delete" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("duplicate" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
  // A run of continuation bytes: an over-long or overflowing varint (lengths, tags, int64s).
  fc.record({ op: fc.constant("varint" as const), at: fc.nat(), len: fc.integer({ min: 1, max: 11 }) }),
);

function mutate(seed: Uint8Array, ms: readonly Mutation[]): Buffer {
  let b = Buffer.from(seed);
  for (const m of ms) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    switch (m.op) {
      case "flip":
        if (at < b.length) b[at] = b[at]! ^ (1 << m.bit);
        break;
      case "set":
        if (at < b.length) b[at] = m.value;
        break;
      case "insert":
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case "delete":
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
        break;
      case "truncate":
        b = b.subarray(0, at);
        break;
      case "duplicate":
        b = Buffer.concat([b, b.subarray(at, at + m.len)]);
        break;
      case "varint":
        b = Buffer.concat([b.subarray(0, at), Buffer.alloc(m.len, 0xff), b.subarray(at)]);
        break;
    }
  }
  return b;
}

const identity = (b: Buffer): Buffer => b;

/** Status codes that mean "our handler failed unexpectedly" rather than "bad input". */
function isHandlerFailure(code: number, details: string): boolean {
  return code === status.INTERNAL && details.startsWith("internal error (request id");
}

describe("the live server under random and mutated requests", () => {
  let s: TestServer;
  let raw: Client;
  let fuzzToken: string;
  let acmeToken: string;
  const seen = new Map<number, number>();
  const failures: string[] = [];

  beforeAll(async () => {
    s = await startTestServer();
    raw = new Client(s.address, credentials.createInsecure());
    fuzzToken = await s.token({ tenant: "fuzz", sub: "fuzzer", roles: ["tenant-admin"] });
    acmeToken = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
    await s.call("createSecret", { mesh: "prod", name: "canary", stringData: { v: "still-here" } }, acmeToken);
    for (const n of ["fz-a", "fz-b", "fz-gone"]) await s.call("createSecret", { mesh: FM, name: n, stringData: { k: `${n}-value` }, labels: { app: "web" } }, fuzzToken);
  });

  afterAll(async () => {
    raw?.close();
    await s?.stop();
  });

  function md(): Metadata {
    const m = new Metadata();
    m.set("authorization", `Bearer ${fuzzToken}`);
    return m;
  }

  /** One raw unary call; resolves its status (OK included). Bounded by the call itself. */
  function unaryRaw(path: string, body: Buffer): Promise<Pick<StatusObject, "code" | "details">> {
    return new Promise((resolve) => {
      raw.makeUnaryRequest(path, identity, identity, body, md(), (err: ServiceError | null) => {
        resolve(err ? { code: err.code, details: err.details } : { code: status.OK, details: "" });
      });
    });
  }

  /** One raw WatchProjection call; cancelled after its first message, resolves its status. */
  function watchRaw(body: Buffer): Promise<Pick<StatusObject, "code" | "details">> {
    return new Promise((resolve) => {
      const call = raw.makeServerStreamRequest(WATCH, identity, identity, body, md());
      call.on("data", () => call.cancel());
      call.on("error", () => undefined); // the status event below carries it
      call.on("status", (st: StatusObject) => resolve({ code: st.code, details: st.details }));
    });
  }

  function record(path: string, body: Buffer, st: Pick<StatusObject, "code" | "details">): void {
    seen.set(st.code, (seen.get(st.code) ?? 0) + 1);
    expect(Number.isInteger(st.code) && st.code >= 0 && st.code <= 16).toBe(true);
    if (isHandlerFailure(st.code, st.details)) failures.push(`${path} ${body.toString("base64")}: ${st.details}`);
  }

  it("when every unary RPC gets raw random bytes, then each call ends with a status", async () => {
    const bytes = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 2048 }));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...UNARY, `${S}/NoSuchMethod`, "/no.such.Service/Call"), bytes, async (path, b) => {
        const body = Buffer.from(b);
        record(path, body, await unaryRaw(path, body));
      }),
      { numRuns: 300 },
    );
    expect(failures).toEqual([]);
  }, 60_000);

  it("when every unary RPC gets mutated valid encodings, then each call ends with a status and no handler fails unexpectedly", async () => {
    const input = fc.constantFrom(...UNARY).chain((path) =>
      fc.record({
        path: fc.constant(path),
        seed: fc.constantFrom(...SEEDS[path]!),
        extra: fc.option(fc.constantFrom(...Object.values(SEEDS).flat()), { freq: 4 }),
        mutations: fc.array(mutation, { minLength: 1, maxLength: 4 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(input, async ({ path, seed, extra, mutations }) => {
        // Concatenated encodings merge in protobuf; a foreign one brings unknown fields.
        const body = mutate(extra ? Buffer.concat([seed, extra]) : seed, mutations);
        record(path, body, await unaryRaw(path, body));
      }),
      { numRuns: 600 },
    );
    expect(failures).toEqual([]);
    // The seeds do reach the handlers: some mutated calls come back OK or with a domain code.
    expect([...seen.keys()].some((c) => c !== status.INTERNAL && c !== status.UNIMPLEMENTED)).toBe(true);
  }, 60_000);

  it("when WatchProjection gets raw and mutated bytes, then each stream ends with a status", async () => {
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
      fc.record({ seed: fc.constantFrom(...WATCH_SEEDS), mutations: fc.array(mutation, { maxLength: 4 }) }).map(({ seed, mutations }) => mutate(seed, mutations)),
    );
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        record(WATCH, b, await watchRaw(b));
      }),
      { numRuns: 150 },
    );
    expect(failures).toEqual([]);
  }, 60_000);

  it("when the barrage is over, then a normal GetSecret of another tenant still works and nothing leaked to the logs", async () => {
    const got = await s.call<Secret>("getSecret", { mesh: "prod", name: "canary" }, acmeToken);
    expect(Buffer.from(got.data.v!).toString()).toBe("still-here");
    const again = await s.call<Secret>("getSecret", { mesh: FM, name: "fz-b" }, fuzzToken).catch((e: ServiceError) => e);
    expect("code" in again ? again.code : status.OK).not.toBe(status.INTERNAL);
    expect(s.logs.some((l) => l.includes(fuzzToken) || l.includes("still-here"))).toBe(false);
  });
});
