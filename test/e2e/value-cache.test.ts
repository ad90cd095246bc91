/**
 * The cache of decrypted values and the cache of encoded ProjectSecrets answers
 * (--value-cache-mb) through the real server: they never answer across tenants, callers
 * or mesh scopes, never outlive an update, delete, grant, revoke or expiry, and a write
 * through another server process on the same data drops the value from this one's memory. Reads go over fresh connections too, so with SECRETD_E2E_WORKERS=2 they
 * reach both workers (node:cluster deals out connections, not calls).
 */
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetSecretRequest, Permission, ProjectSecretsRequest, SecretServiceClient, type Projection, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, E2E_WORKERS, startTestServer, type TestServer } from "../helpers/server.js";

let s: TestServer;
let owner: string;
let admin: string;
let reader: string;
let other: string;
const MESH = "default";
const utf8 = (b: Uint8Array | undefined): string => Buffer.from(b ?? new Uint8Array()).toString("utf8");

/** GetSecret over a new connection each time (another worker, with --workers). */
async function freshGet(address: string, name: string, token: string): Promise<Secret> {
  const client = new SecretServiceClient(address, credentials.createInsecure());
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  try {
    return await new Promise<Secret>((resolve, reject) =>
      client.getSecret(GetSecretRequest.fromPartial({ mesh: MESH, name }), md, (e: ServiceError | null, r: Secret) => (e ? reject(e) : resolve(r))),
    );
  } finally {
    client.close();
  }
}

/** Reads `name` over `n` connections and the shared one; every answer's value of key "v". */
async function valuesSeen(name: string, token: string, n = 4): Promise<string[]> {
  const out = [utf8((await s.call<Secret>("getSecret", { mesh: MESH, name }, token)).data.v)];
  for (let i = 0; i < n; i++) out.push(utf8((await freshGet(s.address, name, token)).data.v));
  return out;
}

beforeAll(async () => {
  s = await startTestServer();
  owner = await s.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
  admin = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
  reader = await s.token({ tenant: "acme", sub: "rose", roles: [] });
  other = await s.token({ tenant: "globex", sub: "olivia", roles: ["tenant-admin"] });
});

afterAll(async () => {
  await s?.stop();
});

describe("value cache", () => {
  it("when a hot secret is updated, then every later read on every connection returns the new value, and the old one left the cache", async () => {
    const created = await s.call<Secret>("createSecret", { mesh: MESH, name: "hot", data: { v: Buffer.from("one") } }, owner);
    expect(await valuesSeen("hot", owner)).toEqual(Array(5).fill("one"));
    if (E2E_WORKERS <= 1) expect(s.app.plaintexts.holds(created.uid)).toBe(true);
    const updated = await s.call<Secret>("updateSecret", { mesh: MESH, name: "hot", etag: created.etag, data: { v: Buffer.from("two") } }, owner);
    if (E2E_WORKERS <= 1) expect(s.app.plaintexts.holds(created.uid)).toBe(false); // dropped on the feed, before the answer
    expect(await valuesSeen("hot", owner)).toEqual(Array(5).fill("two"));
    // Versions stay what they were: the old version reads back its own value.
    const v1 = await s.call<Secret>("getSecret", { mesh: MESH, name: "hot", version: 1 }, owner);
    expect(utf8(v1.data.v)).toBe("one");
    expect(updated.version).toBe(2);
  });

  it("when a cached secret is deleted and created again under the same name, then NOT_FOUND in between and the new value after", async () => {
    await s.call("createSecret", { mesh: MESH, name: "again", data: { v: Buffer.from("first") } }, owner);
    expect(await valuesSeen("again", owner)).toEqual(Array(5).fill("first"));
    await s.call("deleteSecret", { mesh: MESH, name: "again", force: true }, owner);
    expect(await codeOf(freshGet(s.address, "again", owner))).toBe(status.NOT_FOUND);
    expect(await codeOf(s.call("getSecret", { mesh: MESH, name: "again" }, owner))).toBe(status.NOT_FOUND);
    await s.call("createSecret", { mesh: MESH, name: "again", data: { v: Buffer.from("second") } }, owner);
    expect(await valuesSeen("again", owner)).toEqual(Array(5).fill("second"));
  });

  it("when two tenants hold the same mesh and name, then each reads only its own value, however often", async () => {
    await s.call("createSecret", { mesh: MESH, name: "twin", data: { v: Buffer.from("acme-value") } }, owner);
    await s.call("createSecret", { mesh: MESH, name: "twin", data: { v: Buffer.from("globex-value") } }, other);
    for (let i = 0; i < 3; i++) {
      expect(await valuesSeen("twin", owner, 2)).toEqual(Array(3).fill("acme-value"));
      expect(await valuesSeen("twin", other, 2)).toEqual(Array(3).fill("globex-value"));
    }
  });

  it("when a grant that let a caller read a cached value is revoked, then that caller gets NOT_FOUND; a key-limited grantee still gets only its keys", async () => {
    await s.call("createSecret", { mesh: MESH, name: "shared", data: { a: Buffer.from("A"), b: Buffer.from("B") } }, owner);
    await s.call("grantAccess", { mesh: MESH, name: "shared", subject: "user:rose", permission: Permission.PERMISSION_READ }, owner);
    const full = await s.call<Secret>("getSecret", { mesh: MESH, name: "shared" }, reader);
    expect(Object.keys(full.data).sort()).toEqual(["a", "b"]);
    await s.call("revokeAccess", { mesh: MESH, name: "shared", subject: "user:rose", permission: Permission.PERMISSION_READ }, owner);
    expect(await codeOf(s.call("getSecret", { mesh: MESH, name: "shared" }, reader))).toBe(status.NOT_FOUND);
    expect(await codeOf(freshGet(s.address, "shared", reader))).toBe(status.NOT_FOUND);
    await s.call("grantAccess", { mesh: MESH, name: "shared", subject: "user:rose", permission: Permission.PERMISSION_READ, keys: ["a"] }, owner);
    const limited = await s.call<Secret>("getSecret", { mesh: MESH, name: "shared" }, reader);
    expect(Object.keys(limited.data)).toEqual(["a"]);
    expect(await codeOf(s.call("getSecret", { mesh: MESH, name: "shared", keys: ["b"] }, reader))).toBe(status.PERMISSION_DENIED);
    // The owner, reading the same cached blob, still sees everything.
    expect(Object.keys((await s.call<Secret>("getSecret", { mesh: MESH, name: "shared" }, owner)).data).sort()).toEqual(["a", "b"]);
  });

  it("when a cached secret expires, then reads answer FAILED_PRECONDITION, as without a cache", async () => {
    const expireTime = new Date(s.clock.now() + 1500);
    await s.call("createSecret", { mesh: MESH, name: "brief", data: { v: Buffer.from("soon gone") }, expireTime }, owner);
    expect(await valuesSeen("brief", owner, 2)).toEqual(Array(3).fill("soon gone"));
    await s.clock.advance(Math.max(0, expireTime.getTime() - s.clock.now()) + 100);
    expect(await codeOf(s.call("getSecret", { mesh: MESH, name: "brief" }, owner))).toBe(status.FAILED_PRECONDITION);
    expect(await codeOf(freshGet(s.address, "brief", owner))).toBe(status.FAILED_PRECONDITION);
  });

  it("when ProjectSecrets reads cached sources, then the values and revision follow an update", async () => {
    await s.call("createSecret", { mesh: MESH, name: "proj", data: { k: Buffer.from("before") } }, owner);
    const req = ProjectSecretsRequest.fromPartial({ mesh: MESH, items: [{ name: "proj" }] });
    const a = await s.call<Projection>("projectSecrets", req, owner);
    const b = await s.call<Projection>("projectSecrets", req, owner);
    expect(b.revision).toBe(a.revision);
    const cur = await s.call<Secret>("getSecret", { mesh: MESH, name: "proj" }, owner);
    await s.call("updateSecret", { mesh: MESH, name: "proj", etag: cur.etag, data: { k: Buffer.from("after") } }, owner);
    const c = await s.call<Projection>("projectSecrets", req, owner);
    expect(utf8(c.values[0]?.value)).toBe("after");
    expect(c.revision).not.toBe(a.revision);
  });

  it("when a GetSecret answer is cached, then a grant's expiry, a mesh-limited token and a key-limited request each still decide the next read", async () => {
    const created = await s.call<Secret>("createSecret", { mesh: MESH, name: "gbrief", data: { a: Buffer.from("A"), b: Buffer.from("B") } }, owner);
    const expireTime = new Date(s.clock.now() + 1500);
    await s.call("grantAccess", { mesh: MESH, name: "gbrief", subject: "user:rose", permission: Permission.PERMISSION_READ, expireTime }, owner);
    for (let i = 0; i < 3; i++) expect(Object.keys((await s.call<Secret>("getSecret", { mesh: MESH, name: "gbrief" }, reader)).data).sort()).toEqual(["a", "b"]);
    if (E2E_WORKERS <= 1) expect(s.app.answers.holds(created.uid)).toBe(true);
    const limited = await s.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"], meshes: ["elsewhere"] });
    for (let i = 0; i < 2; i++) await s.call("getSecret", { mesh: MESH, name: "gbrief" }, owner);
    expect(await codeOf(s.call("getSecret", { mesh: MESH, name: "gbrief" }, limited))).toBe(status.PERMISSION_DENIED);
    const onlyA = await s.call<Secret>("getSecret", { mesh: MESH, name: "gbrief", keys: ["a"] }, owner);
    expect(Object.keys(onlyA.data)).toEqual(["a"]);
    expect(Object.keys((await s.call<Secret>("getSecret", { mesh: MESH, name: "gbrief" }, owner)).data).sort()).toEqual(["a", "b"]);
    await s.clock.advance(Math.max(0, expireTime.getTime() - s.clock.now()) + 100);
    expect(await codeOf(s.call("getSecret", { mesh: MESH, name: "gbrief" }, reader))).toBe(status.NOT_FOUND);
  });

  describe("ProjectSecrets answers", () => {
    const project = (names: string[], token: string, keys?: { key: string }[]) =>
      s.call<Projection>("projectSecrets", ProjectSecretsRequest.fromPartial({ mesh: MESH, items: names.map((name) => ({ name, ...(keys ? { keys } : {}) })) }), token);
    const valuesOf = (p: Projection): Record<string, string> => Object.fromEntries(p.values.map((v) => [`${v.secret}/${v.key}`, utf8(v.value)]));

    it("when a hot projection is asked again, then it is answered from the cache with the same bytes, and an update of any source replaces it", async () => {
      const a = await s.call<Secret>("createSecret", { mesh: MESH, name: "pa", data: { ka: Buffer.from("a1") } }, owner);
      const b = await s.call<Secret>("createSecret", { mesh: MESH, name: "pb", data: { kb: Buffer.from("b1") } }, owner);
      const first = await project(["pa", "pb"], owner);
      const again = await project(["pa", "pb"], owner);
      expect(again).toEqual(first);
      expect(valuesOf(again)).toEqual({ "pa/ka": "a1", "pb/kb": "b1" });
      if (E2E_WORKERS <= 1) expect(s.app.answers.holds(a.uid) && s.app.answers.holds(b.uid)).toBe(true);
      await s.call("updateSecret", { mesh: MESH, name: "pb", etag: b.etag, data: { kb: Buffer.from("b2") } }, owner);
      if (E2E_WORKERS <= 1) expect(s.app.answers.holds(a.uid)).toBe(false); // dropped on the feed with pb, before the answer
      const after = await project(["pa", "pb"], owner);
      expect(valuesOf(after)).toEqual({ "pa/ka": "a1", "pb/kb": "b2" });
      expect(after.revision).not.toBe(first.revision);
      expect(after.sources.map((x) => x.version)).toEqual([1, 2]);
    });

    it("when a grant behind a cached answer is revoked, limited to fewer keys, or another caller asks the same, then each gets what it may see now", async () => {
      await s.call("createSecret", { mesh: MESH, name: "pshared", data: { a: Buffer.from("A"), b: Buffer.from("B") } }, owner);
      await s.call("grantAccess", { mesh: MESH, name: "pshared", subject: "user:rose", permission: Permission.PERMISSION_PROJECT }, owner);
      for (let i = 0; i < 2; i++) expect(valuesOf(await project(["pshared"], reader))).toEqual({ "pshared/a": "A", "pshared/b": "B" });
      // Same sub, other tenant; same tenant, other sub: the cached answer is rose's alone.
      const globexRose = await s.token({ tenant: "globex", sub: "rose", roles: [] });
      const tom = await s.token({ tenant: "acme", sub: "tom", roles: [] });
      expect(await codeOf(project(["pshared"], globexRose))).toBe(status.NOT_FOUND);
      expect(await codeOf(project(["pshared"], tom))).toBe(status.NOT_FOUND);
      await s.call("revokeAccess", { mesh: MESH, name: "pshared", subject: "user:rose", permission: Permission.PERMISSION_PROJECT }, owner);
      expect(await codeOf(project(["pshared"], reader))).toBe(status.NOT_FOUND);
      await s.call("grantAccess", { mesh: MESH, name: "pshared", subject: "user:rose", permission: Permission.PERMISSION_PROJECT, keys: ["a"] }, owner);
      for (let i = 0; i < 2; i++) expect(valuesOf(await project(["pshared"], reader))).toEqual({ "pshared/a": "A" });
      expect(await codeOf(project(["pshared"], reader, [{ key: "b" }]))).toBe(status.PERMISSION_DENIED);
      expect(valuesOf(await project(["pshared"], owner))).toEqual({ "pshared/a": "A", "pshared/b": "B" });
    });

    it("when the grant behind a cached answer expires, then the next call is refused, with no write in between", async () => {
      await s.call("createSecret", { mesh: MESH, name: "pbrief", data: { v: Buffer.from("V") } }, owner);
      const expireTime = new Date(s.clock.now() + 1500);
      await s.call("grantAccess", { mesh: MESH, name: "pbrief", subject: "user:rose", permission: Permission.PERMISSION_PROJECT, expireTime }, owner);
      for (let i = 0; i < 3; i++) expect(valuesOf(await project(["pbrief"], reader))).toEqual({ "pbrief/v": "V" });
      await s.clock.advance(Math.max(0, expireTime.getTime() - s.clock.now()) + 100);
      expect(await codeOf(project(["pbrief"], reader))).toBe(status.NOT_FOUND);
    });

    it("when a cached source secret expires, then the projection answers FAILED_PRECONDITION", async () => {
      const expireTime = new Date(s.clock.now() + 1500);
      await s.call("createSecret", { mesh: MESH, name: "pgone", data: { v: Buffer.from("V") }, expireTime }, owner);
      for (let i = 0; i < 3; i++) expect(valuesOf(await project(["pgone"], owner))).toEqual({ "pgone/v": "V" });
      await s.clock.advance(Math.max(0, expireTime.getTime() - s.clock.now()) + 100);
      expect(await codeOf(project(["pgone"], owner))).toBe(status.FAILED_PRECONDITION);
    });

    it("when the same caller asks with a token limited to other meshes, then it is refused although the unrestricted token's answer is cached", async () => {
      await s.call("createSecret", { mesh: MESH, name: "pmesh", data: { v: Buffer.from("V") } }, owner);
      for (let i = 0; i < 2; i++) await project(["pmesh"], owner);
      const limited = await s.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"], meshes: ["elsewhere"] });
      expect(await codeOf(project(["pmesh"], limited))).toBe(status.PERMISSION_DENIED);
    });

    it("when an optional source is missing and then created, then the cached answer without it gives way to one with it", async () => {
      await s.call("createSecret", { mesh: MESH, name: "phere", data: { v: Buffer.from("H") } }, owner);
      const req = ProjectSecretsRequest.fromPartial({ mesh: MESH, items: [{ name: "phere" }, { name: "plater", optional: true }] });
      for (let i = 0; i < 2; i++) expect(valuesOf(await s.call<Projection>("projectSecrets", req, owner))).toEqual({ "phere/v": "H" });
      await s.call("createSecret", { mesh: MESH, name: "plater", data: { w: Buffer.from("L") } }, owner);
      expect(valuesOf(await s.call<Projection>("projectSecrets", req, owner))).toEqual({ "phere/v": "H", "plater/w": "L" });
    });
  });

  it("when another server process on the same data updates a secret, then this one drops its cached value within a second and reads the new one", async () => {
    const second = await startTestServer({ dataDir: s.dataDir });
    try {
      const created = await s.call<Secret>("createSecret", { mesh: MESH, name: "elsewhere", data: { v: Buffer.from("old") } }, owner);
      expect(await valuesSeen("elsewhere", owner)).toEqual(Array(5).fill("old"));
      const projReq = ProjectSecretsRequest.fromPartial({ mesh: MESH, items: [{ name: "elsewhere" }] });
      for (let i = 0; i < 2; i++) expect(utf8((await s.call<Projection>("projectSecrets", projReq, owner)).values[0]?.value)).toBe("old");
      const tok = await second.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
      await second.call("updateSecret", { mesh: MESH, name: "elsewhere", etag: created.etag, data: { v: Buffer.from("new") } }, tok);
      if (E2E_WORKERS <= 1) {
        const deadline = Date.now() + 1000;
        while (s.app.plaintexts.holds(created.uid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        expect(s.app.plaintexts.holds(created.uid)).toBe(false);
        expect(s.app.answers.holds(created.uid)).toBe(false);
      }
      expect(utf8((await s.call<Projection>("projectSecrets", projReq, owner)).values[0]?.value)).toBe("new");
      expect(await valuesSeen("elsewhere", owner)).toEqual(Array(5).fill("new"));
      expect(utf8((await s.call<Secret>("getSecret", { mesh: MESH, name: "elsewhere" }, admin)).data.v)).toBe("new");
    } finally {
      await second.stop();
    }
  });
});
