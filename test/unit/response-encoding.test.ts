/**
 * The hand-written response serializers give exactly the bytes of ts-proto's encoders,
 * for random messages (unicode strings, empty and large values, every optional field
 * absent or present, edge numbers) and for the odd ones that take the generic path.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Projection, Secret } from "../../src/gen/secrets/v1/secrets.js";
import { encodeProjection, encodeSecret } from "../../src/transport/grpc/response-encoding.js";

const str = fc.oneof(fc.constant(""), fc.string(), fc.string({ unit: "grapheme", maxLength: 40 }), fc.string({ minLength: 100, maxLength: 300 }));
const bytes = fc.oneof(fc.constant(new Uint8Array()), fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 120, maxLength: 2000 }));
const buf = bytes.map((b) => Buffer.from(b));
const uint = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.maxSafeNat());
const date = fc.oneof(fc.constant(undefined), fc.date({ min: new Date(0), max: new Date(8.64e15), noInvalidDate: true }), fc.date({ noInvalidDate: true }));
const strMap = fc.dictionary(str, str, { maxKeys: 5 });

const secret = fc.record({
  uid: str,
  mesh: str,
  name: str,
  type: str,
  description: str,
  owner: str,
  data: fc.dictionary(str, buf, { maxKeys: 5 }),
  labels: strMap,
  annotations: strMap,
  immutable: fc.boolean(),
  version: fc.oneof(uint, fc.integer({ min: -5, max: -1 })),
  etag: str,
  createTime: date,
  updateTime: date,
  expireTime: date,
  keys: fc.array(str, { maxLength: 5 }),
  stage: fc.oneof(fc.constant(""), str),
});

const projection = fc.record({
  values: fc.array(fc.record({ secret: str, key: str, env: str, path: str, mode: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0o777 }), fc.integer({ min: 0, max: 2 ** 32 - 1 })), value: buf }), { maxLength: 12 }),
  sources: fc.array(fc.record({ mesh: str, name: str, version: fc.oneof(uint, fc.integer({ min: -3, max: -1 })) }), { maxLength: 6 }),
  revision: str,
  consumerId: fc.oneof(fc.constant(""), str),
});

const generic = (u: Uint8Array): string => Buffer.from(u).toString("hex");

describe("response encoding", () => {
  it("when any Secret is encoded, then the bytes equal Secret.encode's and decode back to it", () => {
    fc.assert(
      fc.property(secret, (m) => {
        const fast = encodeSecret(m);
        expect(fast.toString("hex")).toBe(generic(Secret.encode(m).finish()));
        expect(Secret.decode(fast).uid).toBe(m.uid);
      }),
      { numRuns: 500 },
    );
  });

  it("when any Projection is encoded, then the bytes equal Projection.encode's", () => {
    fc.assert(
      fc.property(projection, (m) => {
        expect(encodeProjection(m).toString("hex")).toBe(generic(Projection.encode(m).finish()));
      }),
      { numRuns: 500 },
    );
  });

  it("when a GetSecret-shaped answer holds a 1 KiB value, then the bytes equal the generated encoder's", () => {
    const m: Secret = {
      uid: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
      mesh: "default",
      name: "get-1k",
      type: "Opaque",
      description: "",
      owner: "bench-admin",
      data: { value: Buffer.alloc(1024, 0x61) },
      labels: { app: "web" },
      annotations: {},
      immutable: false,
      version: 1,
      etag: "abcdefghijklmnop",
      createTime: new Date(1764760000123),
      updateTime: new Date(1764760000000),
      expireTime: undefined,
      keys: ["value"],
      stage: "",
    };
    expect(encodeSecret(m).equals(Buffer.from(Secret.encode(m).finish()))).toBe(true);
  });
});
