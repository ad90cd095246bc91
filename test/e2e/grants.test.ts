/**
 * Sharing through grants, end to end. The matrix below is the access model as a table:
 * for each caller (owner, tenant-admin, grantees of each permission, a key-limited
 * grantee, a role grantee, an expired grantee, strangers in and out of the tenant) and
 * each RPC, the status code the real server answers. Each row gets a fresh secret with
 * the same grants, so destructive calls do not disturb the other rows.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Permission, type ListGrantsResponse, type ListSecretsResponse, type Projection, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";

const OK = status.OK;
const NF = status.NOT_FOUND;
const PD = status.PERMISSION_DENIED;

type Rpc = "get" | "getKeyB" | "project" | "projectKeyB" | "list" | "update" | "listGrants" | "grant" | "revoke" | "delete";
const RPCS: Rpc[] = ["get", "getKeyB", "project", "projectKeyB", "list", "update", "listGrants", "grant", "revoke", "delete"];

// caller            get getB proj projB list upd  lsG  grant revoke delete
const MATRIX: Record<string, number[]> = {
  owner:            [OK, OK,  OK,  OK,   OK,  OK,  OK,  OK,   OK,    OK],
  tenantAdmin:      [OK, OK,  OK,  OK,   OK,  OK,  OK,  OK,   OK,    OK],
  adminGrantee:     [OK, OK,  OK,  OK,   OK,  OK,  OK,  OK,   OK,    OK],
  writeGrantee:     [OK, OK,  OK,  OK,   OK,  OK,  PD,  PD,   PD,    PD],
  readGrantee:      [OK, OK,  OK,  OK,   OK,  PD,  PD,  PD,   PD,    PD],
  roleReadGrantee:  [OK, OK,  OK,  OK,   OK,  PD,  PD,  PD,   PD,    PD],
  readKeyAGrantee:  [OK, PD,  OK,  PD,   OK,  PD,  PD,  PD,   PD,    PD],
  projectGrantee:   [PD, PD,  OK,  OK,   OK,  PD,  PD,  PD,   PD,    PD],
  expiredGrantee:   [NF, NF,  NF,  NF,   NF,  NF,  NF,  NF,   NF,    NF],
  stranger:         [NF, NF,  NF,  NF,   NF,  NF,  NF,  NF,   NF,    NF],
  otherTenantAdmin: [NF, NF,  NF,  NF,   NF,  NF,  NF,  NF,   NF,    NF],
};

const CALLERS: Record<string, { tenant: string; sub: string; roles: string[] }> = {
  owner: { tenant: "acme", sub: "olivia", roles: ["data-developer"] },
  tenantAdmin: { tenant: "acme", sub: "alice", roles: ["tenant-admin"] },
  adminGrantee: { tenant: "acme", sub: "adam", roles: [] },
  writeGrantee: { tenant: "acme", sub: "will", roles: [] },
  readGrantee: { tenant: "acme", sub: "rose", roles: [] },
  roleReadGrantee: { tenant: "acme", sub: "audrey", roles: ["auditor"] },
  readKeyAGrantee: { tenant: "acme", sub: "kay", roles: [] },
  projectGrantee: { tenant: "acme", sub: "pete", roles: ["sidecar"] },
  expiredGrantee: { tenant: "acme", sub: "ed", roles: [] },
  stranger: { tenant: "acme", sub: "sam", roles: ["data-developer"] },
  // Same sub as a grantee, but another tenant: a grant never crosses tenants.
  otherTenantAdmin: { tenant: "globex", sub: "rose", roles: ["tenant-admin"] },
};

const GRANTS: Array<[string, Permission, string[]]> = [
  ["user:adam", Permission.PERMISSION_ADMIN, []],
  ["user:will", Permission.PERMISSION_WRITE, []],
  ["user:rose", Permission.PERMISSION_READ, []],
  ["role:auditor", Permission.PERMISSION_READ, []],
  ["user:kay", Permission.PERMISSION_READ, ["a"]],
  ["user:pete", Permission.PERMISSION_PROJECT, []],
];

let s: TestServer;
const tokens: Record<string, string> = {};
const MESH = "m";

beforeAll(async () => {
  s = await startTestServer();
  for (const [name, c] of Object.entries(CALLERS)) tokens[name] = await s.token(c);
});

afterAll(async () => {
  await s?.stop();
});

async function sharedSecret(name: string): Promise<void> {
  await s.call("createSecret", { mesh: MESH, name, stringData: { a: "alpha", b: "beta" } }, tokens.owner);
  for (const [subject, permission, keys] of GRANTS) {
    await s.call("grantAccess", { mesh: MESH, name, subject, permission, keys }, tokens.owner);
  }
  const soon = new Date(s.clock.now() + s.clock.lapseMs);
  await s.call("grantAccess", { mesh: MESH, name, subject: "user:ed", permission: Permission.PERMISSION_ADMIN, expireTime: soon }, tokens.owner);
}

async function attempt(rpc: Rpc, name: string, tok: string): Promise<number> {
  const etag = (await s.call<Secret>("getSecret", { mesh: MESH, name }, tokens.owner)).etag;
  const calls: Record<Rpc, () => Promise<unknown>> = {
    get: () => s.call("getSecret", { mesh: MESH, name }, tok),
    getKeyB: () => s.call("getSecret", { mesh: MESH, name, keys: ["b"] }, tok),
    project: () => s.call("projectSecrets", { mesh: MESH, items: [{ name }] }, tok),
    projectKeyB: () => s.call("projectSecrets", { mesh: MESH, items: [{ name, keys: [{ key: "b" }] }] }, tok),
    list: async () => {
      const page = await s.call<ListSecretsResponse>("listSecrets", { mesh: MESH, pageSize: 1000 }, tok);
      if (!page.secrets.some((x) => x.name === name)) throw Object.assign(new Error("not listed"), { code: NF });
    },
    update: () => s.call("updateSecret", { mesh: MESH, name, etag, description: "changed" }, tok),
    listGrants: () => s.call("listGrants", { mesh: MESH, name }, tok),
    grant: () => s.call("grantAccess", { mesh: MESH, name, subject: "user:newcomer", permission: Permission.PERMISSION_READ }, tok),
    revoke: () => s.call("revokeAccess", { mesh: MESH, name, subject: "user:pete", permission: Permission.PERMISSION_PROJECT }, tok),
    delete: () => s.call("deleteSecret", { mesh: MESH, name }, tok),
  };
  try {
    await calls[rpc]();
    return OK;
  } catch (e) {
    return (e as ServiceError).code;
  }
}

describe("access matrix (caller × RPC → code)", () => {
  for (const [caller, expected] of Object.entries(MATRIX)) {
    it(`when ${caller} calls each RPC, then the codes are ${expected.map((c) => status[c]).join(", ")}`, async () => {
      const name = `shared-${caller.toLowerCase()}`;
      await sharedSecret(name);
      await s.clock.advance(s.clock.lapseMs + 100); // let the expiring grant lapse
      const got: Record<string, string> = {};
      for (const rpc of RPCS) got[rpc] = status[await attempt(rpc, name, tokens[caller]!)]!;
      const want = Object.fromEntries(RPCS.map((rpc, i) => [rpc, status[expected[i]!]]));
      expect(got).toEqual(want);
    });
  }
});

describe("grants", () => {
  it("when a grantee is limited to some keys, then Get without keys returns exactly those and projection of all keys yields only those", async () => {
    await sharedSecret("limited");
    const got = await s.call<Secret>("getSecret", { mesh: MESH, name: "limited" }, tokens.readKeyAGrantee);
    expect(Object.keys(got.data)).toEqual(["a"]);
    const p = await s.call<Projection>("projectSecrets", { mesh: MESH, items: [{ name: "limited" }] }, tokens.readKeyAGrantee);
    expect(p.values.map((v) => v.key)).toEqual(["a"]);
  });

  it("when a name is deleted and re-created, then no old grant applies and the new secret has none", async () => {
    await sharedSecret("reborn");
    await s.call("getSecret", { mesh: MESH, name: "reborn" }, tokens.readGrantee);
    await s.call("deleteSecret", { mesh: MESH, name: "reborn" }, tokens.owner);
    await s.call("createSecret", { mesh: MESH, name: "reborn", stringData: { a: "new" } }, tokens.owner);
    expect(await codeOf(s.call("getSecret", { mesh: MESH, name: "reborn" }, tokens.readGrantee))).toBe(NF);
    expect((await s.call<ListGrantsResponse>("listGrants", { mesh: MESH, name: "reborn" }, tokens.owner)).grants).toEqual([]);
  });

  it("when a grant expires, then ListGrants still shows it with its past expire_time, and it grants nothing", async () => {
    await sharedSecret("expiring");
    await s.clock.advance(s.clock.lapseMs + 100);
    const grants = (await s.call<ListGrantsResponse>("listGrants", { mesh: MESH, name: "expiring" }, tokens.owner)).grants;
    const ed = grants.find((g) => g.subject === "user:ed");
    expect(ed?.permission).toBe(Permission.PERMISSION_ADMIN);
    expect(ed!.expireTime!.getTime()).toBeLessThan(s.clock.now());
    expect(grants.find((g) => g.subject === "user:kay")).toMatchObject({ keys: ["a"], grantedBy: "olivia", permission: Permission.PERMISSION_READ });
    expect(await codeOf(s.call("getSecret", { mesh: MESH, name: "expiring" }, tokens.expiredGrantee))).toBe(NF);
  });

  it("when a grant is revoked, then the grantee loses access at once; revoking it again is NOT_FOUND", async () => {
    await sharedSecret("revocable");
    await s.call("getSecret", { mesh: MESH, name: "revocable" }, tokens.readGrantee);
    await s.call("revokeAccess", { mesh: MESH, name: "revocable", subject: "user:rose", permission: Permission.PERMISSION_READ }, tokens.owner);
    expect(await codeOf(s.call("getSecret", { mesh: MESH, name: "revocable" }, tokens.readGrantee))).toBe(NF);
    expect(await codeOf(s.call("revokeAccess", { mesh: MESH, name: "revocable", subject: "user:rose" }, tokens.owner))).toBe(NF);
  });

  it("when a key-limited ADMIN grants beyond its keys, then PERMISSION_DENIED; within them it works", async () => {
    await sharedSecret("narrow");
    await s.call("grantAccess", { mesh: MESH, name: "narrow", subject: "user:nora", permission: Permission.PERMISSION_ADMIN, keys: ["a"] }, tokens.owner);
    const nora = await s.token({ tenant: "acme", sub: "nora", roles: [] });
    const grant = (keys: string[]): Promise<unknown> =>
      s.call("grantAccess", { mesh: MESH, name: "narrow", subject: "user:x", permission: Permission.PERMISSION_READ, keys }, nora);
    expect(await codeOf(grant(["b"]))).toBe(PD);
    expect(await codeOf(grant([]))).toBe(PD);
    await grant(["a"]);
  });

  it("when a grant request is malformed, then INVALID_ARGUMENT", async () => {
    await sharedSecret("malformed");
    const bad = [
      { subject: "rose", permission: Permission.PERMISSION_READ },
      { subject: "user:", permission: Permission.PERMISSION_READ },
      { subject: "group:x", permission: Permission.PERMISSION_READ },
      { subject: "user:x", permission: Permission.PERMISSION_UNSPECIFIED },
      { subject: "user:x", permission: Permission.PERMISSION_READ, keys: ["../x"] },
      { subject: "user:x", permission: Permission.PERMISSION_READ, expireTime: new Date(s.clock.now() - 1000) },
    ];
    for (const req of bad) {
      expect(await codeOf(s.call("grantAccess", { mesh: MESH, name: "malformed", ...req }, tokens.owner))).toBe(status.INVALID_ARGUMENT);
    }
  });

  it("when a WRITE grantee limited to one key updates, then it sends only that key, merged into the current version; any other key is refused", async () => {
    await sharedSecret("partial-write");
    await s.call("grantAccess", { mesh: MESH, name: "partial-write", subject: "user:wes", permission: Permission.PERMISSION_WRITE, keys: ["a"] }, tokens.owner);
    const wes = await s.token({ tenant: "acme", sub: "wes", roles: [] });
    const etag = (await s.call<Secret>("getSecret", { mesh: MESH, name: "partial-write" }, tokens.owner)).etag;
    expect(await codeOf(s.call("updateSecret", { mesh: MESH, name: "partial-write", etag, stringData: { a: "A", b: "B" } }, wes))).toBe(PD);
    expect(await codeOf(s.call("updateSecret", { mesh: MESH, name: "partial-write", etag, stringData: { a: "A", b: "beta" } }, wes))).toBe(PD);
    const updated = await s.call<Secret>("updateSecret", { mesh: MESH, name: "partial-write", etag, stringData: { a: "A" } }, wes);
    const got = await s.call<Secret>("getSecret", { mesh: MESH, name: "partial-write" }, tokens.owner);
    expect(Buffer.from(got.data.a!).toString()).toBe("A");
    expect(Buffer.from(got.data.b!).toString()).toBe("beta");
    expect(got.etag).toBe(updated.etag);
  });
});
