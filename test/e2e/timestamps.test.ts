/**
 * Issue #26 item 3: google.protobuf.Timestamp's range at the edge. A valid expire_time of
 * 9999-12-31T23:59:59.999999999Z used to be rounded up to 10000-01-01T00:00:00Z, which
 * every strict client (Go protojson, Python json_format, protobuf-es toJson) refuses, so
 * ListSecrets and ListGrants of that mesh broke for everyone. Requests are sent as raw
 * bytes (the generated client only carries milliseconds) and answers decoded strictly.
 */
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { createFileRegistry, fromBinary, toJson, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { descriptorSetBase64 } from "../../src/gen/descriptor-set.js";
import { Timestamp } from "../../src/gen/google/protobuf/timestamp.js";
import { CreateSecretRequest, GrantAccessRequest, ListGrantsRequest, ListSecretsRequest, Permission } from "../../src/gen/secrets/v1/secrets.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MESH = "ts";
const MAX_SECONDS = 253_402_300_799;
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, Buffer.from(descriptorSetBase64, "base64")));

let s: TestServer;
let owner: string;

beforeAll(async () => {
  s = await startTestServer();
  owner = await s.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
});

afterAll(async () => {
  await s?.stop();
});

/** `body` with a Timestamp field `no` appended (protobuf: the last occurrence wins). */
function withTimestamp(body: Uint8Array, no: number, seconds: number, nanos: number): Buffer {
  const ts = Timestamp.encode({ seconds, nanos }).finish();
  return Buffer.concat([body, Buffer.from([(no << 3) | 2, ts.length]), ts]);
}

/** A unary call with raw request bytes; resolves the raw answer. */
function raw(method: string, body: Buffer): Promise<Buffer> {
  const md = new Metadata();
  md.set("authorization", `Bearer ${owner}`);
  return new Promise((resolve, reject) =>
    s.client.makeUnaryRequest(`/secrets.v1.SecretService/${method}`, (b: Buffer) => b, (b: Buffer) => b, body, md, (e, r) => (e ? reject(e) : resolve(r!))),
  );
}

/** The answer as a strict client sees it: toJson throws on a Timestamp out of range. */
function strict(type: string, bytes: Buffer): Record<string, unknown> {
  const desc = registry.getMessage(type) as DescMessage;
  return toJson(desc, fromBinary(desc, bytes)) as Record<string, unknown>;
}

describe("Timestamps at the edge of their range", () => {
  it("when a secret and a grant expire at 9999-12-31T23:59:59.999999999Z, then ListSecrets and ListGrants decode strictly with seconds ≤ 253402300799", async () => {
    const create = CreateSecretRequest.encode(CreateSecretRequest.fromPartial({ mesh: MESH, name: "forever", stringData: { a: "x" } })).finish();
    await raw("CreateSecret", withTimestamp(create, 10, MAX_SECONDS, 999_999_999));
    const grant = GrantAccessRequest.encode(GrantAccessRequest.fromPartial({ mesh: MESH, name: "forever", subject: "user:bob", permission: Permission.PERMISSION_READ })).finish();
    await raw("GrantAccess", withTimestamp(grant, 6, MAX_SECONDS, 999_999_999));

    const secrets = strict("secrets.v1.ListSecretsResponse", await raw("ListSecrets", Buffer.from(ListSecretsRequest.encode(ListSecretsRequest.fromPartial({ mesh: MESH })).finish())));
    expect(secrets.secrets).toMatchObject([{ name: "forever", expireTime: "9999-12-31T23:59:59.999Z" }]);
    const grants = strict("secrets.v1.ListGrantsResponse", await raw("ListGrants", Buffer.from(ListGrantsRequest.encode(ListGrantsRequest.fromPartial({ mesh: MESH, name: "forever" })).finish())));
    expect(grants.grants).toMatchObject([{ subject: "user:bob", expireTime: "9999-12-31T23:59:59.999Z" }]);

    const listed = await s.call<{ secrets: { expireTime?: Date }[] }>("listSecrets", { mesh: MESH }, owner);
    expect(Math.floor(listed.secrets[0]!.expireTime!.getTime() / 1000)).toBeLessThanOrEqual(MAX_SECONDS);
  });

  it("when expire_time has nanos .9999999, then it is truncated to the millisecond, not rounded to the next second", async () => {
    const seconds = Math.floor(Date.now() / 1000) + 86_400;
    const create = CreateSecretRequest.encode(CreateSecretRequest.fromPartial({ mesh: MESH, name: "trunc", stringData: { a: "x" } })).finish();
    const created = strict("secrets.v1.Secret", await raw("CreateSecret", withTimestamp(create, 10, seconds, 999_999_900)));
    expect(created.expireTime).toBe(new Date(seconds * 1000 + 999).toISOString());
  });

  it("when a Timestamp is outside the range or its nanos are, then the call is INVALID_ARGUMENT naming the field", async () => {
    const create = CreateSecretRequest.encode(CreateSecretRequest.fromPartial({ mesh: MESH, name: "never", stringData: { a: "x" } })).finish();
    for (const [seconds, nanos] of [[MAX_SECONDS + 1, 0], [MAX_SECONDS, 1_000_000_000], [MAX_SECONDS, -1]] as const) {
      const e = (await raw("CreateSecret", withTimestamp(create, 10, seconds, nanos)).then(() => undefined, (err: ServiceError) => err))!;
      expect(e.code, `${seconds}.${nanos}`).toBe(status.INVALID_ARGUMENT);
      expect(e.details).toMatch(nanos === 0 ? /^expire_time\.seconds: must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z/ : /^expire_time\.nanos: must be between 0 and 999999999/);
    }
  });
});
