/**
 * End-to-end: the real server on 127.0.0.1:0, called through the generated client.
 * Covers Create/Get/List/Delete/Project, scoping, the error codes of the foundation
 * and the promise that a value never reaches a log line.
 */
import { status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectSecretsRequest, type ListSecretsResponse, type Projection, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";

let s: TestServer;
let admin: string; // tenant-admin of tenant "acme"
let dev: string; // data-developer of "acme"
let dev2: string; // another data-developer of "acme"
let reader: string; // "acme" member without a creator role
let other: string; // tenant-admin of tenant "globex"
let meshA: string; // data-developer of "acme" limited to mesh "a"

const utf8 = (b: Uint8Array | undefined): string => Buffer.from(b ?? new Uint8Array()).toString("utf8");

beforeAll(async () => {
  s = await startTestServer();
  admin = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
  dev = await s.token({ tenant: "acme", sub: "dave", roles: ["data-developer"] });
  dev2 = await s.token({ tenant: "acme", sub: "dora", roles: ["data-developer"] });
  reader = await s.token({ tenant: "acme", sub: "rita", roles: [] });
  other = await s.token({ tenant: "globex", sub: "gary", roles: ["tenant-admin"] });
  meshA = await s.token({ tenant: "acme", sub: "mia", roles: ["data-developer"], meshes: ["a"] });
});

afterAll(async () => {
  await s?.stop();
});

describe("CreateSecret and GetSecret", () => {
  it("when a developer creates a secret, then the response has metadata but no values, and Get returns the values", async () => {
    const created = await s.call<Secret>(
      "createSecret",
      {
        mesh: "default",
        name: "db-creds",
        data: { user: Buffer.from("app") },
        stringData: { password: "hunter2" },
        labels: { app: "db" },
        description: "database login",
      },
      dev,
    );
    expect(created.data).toEqual({});
    expect(created.keys).toEqual(["password", "user"]);
    expect(created.owner).toBe("dave");
    expect(created.type).toBe("Opaque");
    expect(created.version).toBe(1);
    expect(created.etag).not.toBe("");
    expect(created.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.createTime).toBeInstanceOf(Date);

    const got = await s.call<Secret>("getSecret", { mesh: "default", name: "db-creds" }, dev);
    expect(utf8(got.data.user)).toBe("app");
    expect(utf8(got.data.password)).toBe("hunter2");
    expect(got.uid).toBe(created.uid);
    expect(got.labels).toEqual({ app: "db" });
    expect(got.description).toBe("database login");

    const one = await s.call<Secret>("getSecret", { mesh: "default", name: "db-creds", keys: ["password"] }, dev);
    expect(Object.keys(one.data)).toEqual(["password"]);
    expect(await codeOf(s.call("getSecret", { mesh: "default", name: "db-creds", keys: ["nope"] }, dev))).toBe(status.NOT_FOUND);
  });

  it("when the name exists in the scope, then ALREADY_EXISTS; in another mesh, the global scope or another tenant it is a different secret", async () => {
    await s.call("createSecret", { mesh: "default", name: "dup", stringData: { v: "1" } }, dev);
    expect(await codeOf(s.call("createSecret", { mesh: "default", name: "dup", stringData: { v: "2" } }, dev))).toBe(status.ALREADY_EXISTS);
    const inB = await s.call<Secret>("createSecret", { mesh: "b", name: "dup", stringData: { v: "b" } }, dev);
    const global = await s.call<Secret>("createSecret", { mesh: "", name: "dup", stringData: { v: "g" } }, admin);
    const globex = await s.call<Secret>("createSecret", { mesh: "default", name: "dup", stringData: { v: "x" } }, other);
    expect(new Set([inB.uid, global.uid, globex.uid]).size).toBe(3);
    expect(utf8((await s.call<Secret>("getSecret", { mesh: "b", name: "dup" }, dev)).data.v)).toBe("b");
    expect(utf8((await s.call<Secret>("getSecret", { mesh: "", name: "dup" }, admin)).data.v)).toBe("g");
    expect(utf8((await s.call<Secret>("getSecret", { mesh: "default", name: "dup" }, other)).data.v)).toBe("x");
    expect(utf8((await s.call<Secret>("getSecret", { mesh: "default", name: "dup" }, dev)).data.v)).toBe("1");
  });

  it("when a caller lacks a creator role or writes the global scope without tenant-admin, then PERMISSION_DENIED", async () => {
    expect(await codeOf(s.call("createSecret", { mesh: "default", name: "x1", stringData: { a: "b" } }, reader))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(s.call("createSecret", { mesh: "", name: "x2", stringData: { a: "b" } }, dev))).toBe(status.PERMISSION_DENIED);
    const da = await s.token({ tenant: "acme", sub: "dan", roles: ["data-admin"] });
    await s.call("createSecret", { mesh: "default", name: "by-data-admin", stringData: { a: "b" } }, da);
  });

  it("when another tenant asks for a secret, then NOT_FOUND exactly as for a missing one", async () => {
    await s.call("createSecret", { mesh: "default", name: "private", stringData: { k: "v" } }, dev);
    const foreign = (await s.call("getSecret", { mesh: "default", name: "private" }, other).catch((e: ServiceError) => e)) as ServiceError;
    const missing = (await s.call("getSecret", { mesh: "default", name: "never-was" }, other).catch((e: ServiceError) => e)) as ServiceError;
    expect(foreign.code).toBe(status.NOT_FOUND);
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(foreign.details.replace("private", "X")).toBe(missing.details.replace("never-was", "X"));
    expect(await codeOf(s.call("deleteSecret", { mesh: "default", name: "private" }, other))).toBe(status.NOT_FOUND);
    expect(await codeOf(s.call("projectSecrets", { mesh: "default", items: [{ name: "private" }] }, other))).toBe(status.NOT_FOUND);
    // And it is still there for its owner.
    await s.call("getSecret", { mesh: "default", name: "private" }, dev);
  });

  it("when a member of the tenant is neither owner nor tenant-admin, then NOT_FOUND; the tenant-admin reads it", async () => {
    await s.call("createSecret", { mesh: "default", name: "daves", stringData: { k: "v" } }, dev);
    expect(await codeOf(s.call("getSecret", { mesh: "default", name: "daves" }, dev2))).toBe(status.NOT_FOUND);
    expect(await codeOf(s.call("getSecret", { mesh: "default", name: "daves" }, reader))).toBe(status.NOT_FOUND);
    expect(utf8((await s.call<Secret>("getSecret", { mesh: "default", name: "daves" }, admin)).data.k)).toBe("v");
  });

  it("when the token's meshes exclude the mesh, then PERMISSION_DENIED; its own mesh works", async () => {
    await s.call("createSecret", { mesh: "a", name: "in-a", stringData: { k: "v" } }, meshA);
    expect(await codeOf(s.call("createSecret", { mesh: "b", name: "in-b", stringData: { k: "v" } }, meshA))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(s.call("getSecret", { mesh: "b", name: "dup" }, meshA))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(s.call("listSecrets", { mesh: "b" }, meshA))).toBe(status.PERMISSION_DENIED);
    const star = await s.token({ tenant: "acme", sub: "dave", roles: ["data-developer"], meshes: ["*"] });
    await s.call("getSecret", { mesh: "b", name: "dup" }, star);
  });

  it("when a version that does not exist is asked for, then NOT_FOUND; a negative one is INVALID_ARGUMENT", async () => {
    await s.call("createSecret", { mesh: "default", name: "versioned", stringData: { k: "v" } }, dev);
    expect((await s.call<Secret>("getSecret", { mesh: "default", name: "versioned", version: 1 }, dev)).version).toBe(1);
    expect(await codeOf(s.call("getSecret", { mesh: "default", name: "versioned", version: 2 }, dev))).toBe(status.NOT_FOUND);
    expect(await codeOf(s.call("getSecret", { mesh: "default", name: "versioned", version: -1 }, dev))).toBe(status.INVALID_ARGUMENT);
  });

  it("when expire_time is in the past at create, then INVALID_ARGUMENT", async () => {
    const past = new Date(Date.now() - 1000);
    expect(await codeOf(s.call("createSecret", { mesh: "default", name: "old", stringData: { k: "v" }, expireTime: past }, dev))).toBe(
      status.INVALID_ARGUMENT,
    );
  });
});

describe("validation", () => {
  const cases: Array<[string, object, string]> = [
    ["an upper-case name", { name: "Bad", stringData: { k: "v" } }, "name"],
    ["an empty name", { name: "", stringData: { k: "v" } }, "name"],
    ["a 254-char name", { name: "a".repeat(254), stringData: { k: "v" } }, "name"],
    ["a mesh with a dot", { mesh: "a.b", name: "ok", stringData: { k: "v" } }, "mesh"],
    ["a data key with a slash", { name: "ok", data: { "a/b": Buffer.from("v") } }, "data"],
    ["a data key '..'", { name: "ok", stringData: { "..": "v" } }, "string_data"],
    ["more than 1 MiB", { name: "ok", data: { big: Buffer.alloc(1024 * 1024 + 1) } }, "data"],
    ["a bad label key", { name: "ok", stringData: { k: "v" }, labels: { "-bad": "x" } }, "labels"],
    ["a bad type", { name: "ok", stringData: { k: "v" }, type: "NotAType" }, "type"],
  ];
  for (const [what, req, field] of cases) {
    it(`when CreateSecret gets ${what}, then INVALID_ARGUMENT naming ${field}`, async () => {
      const err = (await s.call("createSecret", { mesh: "default", ...req }, dev).catch((e: ServiceError) => e)) as ServiceError;
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toContain(field);
    });
  }

  it("when a secret holds exactly 1 MiB, then it is accepted and read back whole", async () => {
    const big = Buffer.alloc(1024 * 1024 - 3, 7); // key "big" is 3 bytes
    await s.call("createSecret", { mesh: "default", name: "one-mib", data: { big } }, dev);
    const got = await s.call<Secret>("getSecret", { mesh: "default", name: "one-mib" }, dev);
    expect(Buffer.from(got.data.big!).equals(big)).toBe(true);
  });
});

describe("ListSecrets", () => {
  it("when listing with a page size, then pages are complete, ordered, metadata only, and end with an empty token", async () => {
    const t = await s.token({ tenant: "paging", sub: "p", roles: ["tenant-admin"] });
    for (let i = 0; i < 25; i++) {
      await s.call("createSecret", { mesh: "m", name: `s-${String(i).padStart(2, "0")}`, stringData: { k: `v${i}` } }, t);
    }
    const names: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = await s.call<ListSecretsResponse>("listSecrets", { mesh: "m", pageSize: 10, pageToken: token }, t);
      for (const sec of page.secrets) {
        expect(sec.data).toEqual({});
        expect(sec.keys).toEqual(["k"]);
      }
      names.push(...page.secrets.map((x) => x.name));
      token = page.nextPageToken;
      pages++;
    } while (token !== "" && pages < 10);
    expect(pages).toBe(3);
    expect(names).toEqual([...Array(25).keys()].map((i) => `s-${String(i).padStart(2, "0")}`));
  });

  it("when secrets are created and deleted between pages, then no surviving secret is skipped or repeated", async () => {
    const t = await s.token({ tenant: "churn", sub: "c", roles: ["tenant-admin"] });
    for (const n of ["a", "c", "e", "g", "i"]) await s.call("createSecret", { mesh: "m", name: n, stringData: { k: "v" } }, t);
    const p1 = await s.call<ListSecretsResponse>("listSecrets", { mesh: "m", pageSize: 2 }, t);
    expect(p1.secrets.map((x) => x.name)).toEqual(["a", "c"]);
    await s.call("deleteSecret", { mesh: "m", name: "c" }, t);
    await s.call("deleteSecret", { mesh: "m", name: "e" }, t);
    await s.call("createSecret", { mesh: "m", name: "f", stringData: { k: "v" } }, t);
    await s.call("createSecret", { mesh: "m", name: "b", stringData: { k: "v" } }, t); // before the cursor
    const p2 = await s.call<ListSecretsResponse>("listSecrets", { mesh: "m", pageSize: 2, pageToken: p1.nextPageToken }, t);
    expect(p2.secrets.map((x) => x.name)).toEqual(["f", "g"]);
    const p3 = await s.call<ListSecretsResponse>("listSecrets", { mesh: "m", pageSize: 2, pageToken: p2.nextPageToken }, t);
    expect(p3.secrets.map((x) => x.name)).toEqual(["i"]);
    expect(p3.nextPageToken).toBe("");
  });

  it("when a non-admin lists, then only their own secrets; another tenant sees none of them", async () => {
    const mine = await s.call<ListSecretsResponse>("listSecrets", { mesh: "default", pageSize: 1000 }, dev2);
    expect(mine.secrets.every((x) => x.owner === "dora")).toBe(true);
    const all = await s.call<ListSecretsResponse>("listSecrets", { mesh: "default", pageSize: 1000 }, admin);
    expect(all.secrets.map((x) => x.name)).toContain("daves");
    const foreign = await s.call<ListSecretsResponse>("listSecrets", { mesh: "default", pageSize: 1000 }, other);
    expect(foreign.secrets.map((x) => x.owner)).toEqual(["gary"]);
  });

  it("when a label selector or type filter is given, then only matching secrets are listed", async () => {
    const t = await s.token({ tenant: "labels", sub: "l", roles: ["tenant-admin"] });
    await s.call("createSecret", { mesh: "m", name: "one", stringData: { k: "v" }, labels: { tier: "db", env: "prod" } }, t);
    await s.call("createSecret", { mesh: "m", name: "two", stringData: { k: "v" }, labels: { tier: "web", env: "prod" } }, t);
    await s.call("createSecret", { mesh: "m", name: "three", stringData: { username: "u" }, type: "kubernetes.io/basic-auth" }, t);
    const names = async (req: object): Promise<string[]> =>
      (await s.call<ListSecretsResponse>("listSecrets", { mesh: "m", ...req }, t)).secrets.map((x) => x.name);
    expect(await names({ labelSelector: "tier=db" })).toEqual(["one"]);
    expect(await names({ labelSelector: "env=prod,tier!=db" })).toEqual(["two"]);
    expect(await names({ labelSelector: "!tier" })).toEqual(["three"]);
    expect(await names({ type: "kubernetes.io/basic-auth" })).toEqual(["three"]);
    expect(await codeOf(s.call("listSecrets", { mesh: "m", labelSelector: "tier in (" }, t))).toBe(status.INVALID_ARGUMENT);
  });

  it("when a page token is garbage or reused with another filter, then INVALID_ARGUMENT", async () => {
    expect(await codeOf(s.call("listSecrets", { mesh: "default", pageToken: "garbage!" }, admin))).toBe(status.INVALID_ARGUMENT);
    const p = await s.call<ListSecretsResponse>("listSecrets", { mesh: "default", pageSize: 1 }, admin);
    expect(p.nextPageToken).not.toBe("");
    expect(await codeOf(s.call("listSecrets", { mesh: "b", pageSize: 1, pageToken: p.nextPageToken }, admin))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(s.call("listSecrets", { mesh: "default", pageSize: -1 }, admin))).toBe(status.INVALID_ARGUMENT);
  });
});

describe("DeleteSecret", () => {
  it("when the owner deletes, then the secret is gone and a re-created name is a new secret", async () => {
    const first = await s.call<Secret>("createSecret", { mesh: "default", name: "to-delete", stringData: { k: "old" } }, dev);
    expect(await codeOf(s.call("deleteSecret", { mesh: "default", name: "to-delete", etag: "stale" }, dev))).toBe(status.ABORTED);
    await s.call("deleteSecret", { mesh: "default", name: "to-delete", etag: first.etag }, dev);
    expect(await codeOf(s.call("getSecret", { mesh: "default", name: "to-delete" }, dev))).toBe(status.NOT_FOUND);
    expect(await codeOf(s.call("deleteSecret", { mesh: "default", name: "to-delete" }, dev))).toBe(status.NOT_FOUND);
    const again = await s.call<Secret>("createSecret", { mesh: "default", name: "to-delete", stringData: { k: "new" } }, dev);
    expect(again.uid).not.toBe(first.uid);
    expect(utf8((await s.call<Secret>("getSecret", { mesh: "default", name: "to-delete" }, dev)).data.k)).toBe("new");
  });

  it("when someone without rights deletes, then NOT_FOUND and the secret survives", async () => {
    await s.call("createSecret", { mesh: "default", name: "keep-me", stringData: { k: "v" } }, dev);
    expect(await codeOf(s.call("deleteSecret", { mesh: "default", name: "keep-me" }, dev2))).toBe(status.NOT_FOUND);
    await s.call("getSecret", { mesh: "default", name: "keep-me" }, dev);
    await s.call("deleteSecret", { mesh: "default", name: "keep-me" }, admin);
  });
});

describe("ProjectSecrets", () => {
  beforeAll(async () => {
    await s.call("createSecret", { mesh: "proj", name: "db", stringData: { "db-user": "app", "db.pass": "pw" } }, dev);
    await s.call("createSecret", { mesh: "proj", name: "api", stringData: { token: "tok" } }, dev);
  });

  it("when items take all keys, then env, path and mode follow the defaults", async () => {
    const p = await s.call<Projection>("projectSecrets", { mesh: "proj", items: [{ name: "db", envPrefix: "APP_" }, { name: "api" }] }, dev);
    expect(p.values.map((v) => [v.secret, v.key, v.env, v.path, v.mode, utf8(v.value)])).toEqual([
      ["db", "db-user", "APP_DB_USER", "db/db-user", 0o400, "app"],
      ["db", "db.pass", "APP_DB_PASS", "db/db.pass", 0o400, "pw"],
      ["api", "token", "TOKEN", "api/token", 0o400, "tok"],
    ]);
    expect(p.sources).toEqual([
      { mesh: "proj", name: "db", version: 1 },
      { mesh: "proj", name: "api", version: 1 },
    ]);
    expect(p.revision).toMatch(/^[0-9a-f]{64}$/);
    const again = await s.call<Projection>("projectSecrets", { mesh: "proj", items: [{ name: "db", envPrefix: "APP_" }, { name: "api" }] }, dev);
    expect(again.revision).toBe(p.revision);
  });

  it("when keys are mapped explicitly, then env, path and mode are taken from the mapping", async () => {
    const p = await s.call<Projection>(
      "projectSecrets",
      { mesh: "proj", items: [{ name: "api", keys: [{ key: "token", env: "API_TOKEN", path: "conf/api.token", mode: 0o440 }] }] },
      dev,
    );
    expect(p.values).toHaveLength(1);
    expect(p.values[0]).toMatchObject({ env: "API_TOKEN", path: "conf/api.token", mode: 0o440 });
  });

  it("when an optional item is missing, then it is skipped; a required one is NOT_FOUND", async () => {
    const p = await s.call<Projection>("projectSecrets", { mesh: "proj", items: [{ name: "api" }, { name: "nope", optional: true }] }, dev);
    expect(p.sources.map((x) => x.name)).toEqual(["api"]);
    expect(await codeOf(s.call("projectSecrets", { mesh: "proj", items: [{ name: "nope" }] }, dev))).toBe(status.NOT_FOUND);
    expect(await codeOf(s.call("projectSecrets", { mesh: "proj", items: [{ name: "api", keys: [{ key: "missing" }] }] }, dev))).toBe(
      status.NOT_FOUND,
    );
  });

  it("when a path escapes or a mode is bad, then INVALID_ARGUMENT; env and path collisions are judged where env or files are produced", async () => {
    const sameEnv = [{ name: "api", keys: [{ key: "token", env: "X" }] }, { name: "db", keys: [{ key: "db-user", env: "X" }] }];
    expect((await s.call<Projection>("projectSecrets", { mesh: "proj", items: sameEnv }, dev)).values.map((v) => v.env)).toEqual(["X", "X"]);
    const samePath = [{ name: "api", keys: [{ key: "token", path: "same" }] }, { name: "db", keys: [{ key: "db-user", path: "same" }] }];
    expect((await s.call<Projection>("projectSecrets", { mesh: "proj", items: samePath }, dev)).values.map((v) => v.path)).toEqual(["same", "same"]);
    const bad = [
      [{ name: "api", keys: [{ key: "token", path: "/etc/passwd" }] }],
      [{ name: "api", keys: [{ key: "token", path: "a/../../b" }] }],
      [{ name: "api", keys: [{ key: "token", mode: 0o1777 }] }],
      [],
    ];
    for (const items of bad) {
      expect(await codeOf(s.call("projectSecrets", { mesh: "proj", items }, dev))).toBe(status.INVALID_ARGUMENT);
    }
  });

  it("when a value changes, then the revision changes", async () => {
    const t = await s.token({ tenant: "rev", sub: "r", roles: ["tenant-admin"] });
    await s.call("createSecret", { mesh: "m", name: "x", stringData: { k: "1" } }, t);
    const r1 = (await s.call<Projection>("projectSecrets", { mesh: "m", items: [{ name: "x" }] }, t)).revision;
    await s.call("deleteSecret", { mesh: "m", name: "x" }, t);
    await s.call("createSecret", { mesh: "m", name: "x", stringData: { k: "2" } }, t);
    const r2 = (await s.call<Projection>("projectSecrets", { mesh: "m", items: [{ name: "x" }] }, t)).revision;
    expect(r2).not.toBe(r1);
  });

  it("when the caller has no right on one item, then NOT_FOUND and nothing is returned", async () => {
    expect(await codeOf(s.call("projectSecrets", { mesh: "proj", items: [{ name: "db" }] }, dev2))).toBe(status.NOT_FOUND);
  });
});

describe("authentication", () => {
  it("when the token is missing, malformed, forged, expired or in the wrong metadata key, then UNAUTHENTICATED", async () => {
    const { SignJWT } = await import("jose");
    const forged = await new SignJWT({ tenant: "acme", roles: ["tenant-admin"] })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("alice")
      .setExpirationTime("1h")
      .sign(Buffer.from("an attacker's secret that is long enough!!"));
    const { readHs256Secret } = await import("../../src/auth/keys.js");
    const expired = await new SignJWT({ tenant: "acme", roles: ["tenant-admin"] })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("alice")
      .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(readHs256Secret(s.config.jwt.hs256SecretFile));
    for (const tok of [undefined, "", "not.a.jwt", forged, expired, admin.slice(0, -2) + "xx"]) {
      expect(await codeOf(s.call("getSecret", { mesh: "default", name: "db-creds" }, tok))).toBe(status.UNAUTHENTICATED);
    }
    const { Metadata } = await import("@grpc/grpc-js");
    const md = new Metadata();
    md.set("x-token", `Bearer ${admin}`);
    expect(await codeOf(s.call("getSecret", { mesh: "default", name: "db-creds" }, undefined, md))).toBe(status.UNAUTHENTICATED);
  });

  it("when a correctly signed token has an empty or missing tenant, then UNAUTHENTICATED", async () => {
    const { SignJWT } = await import("jose");
    const { readHs256Secret } = await import("../../src/auth/keys.js");
    const key = readHs256Secret(s.config.jwt.hs256SecretFile);
    for (const claims of [{ tenant: "" }, {}]) {
      const t = await new SignJWT({ ...claims, roles: ["tenant-admin"] }).setProtectedHeader({ alg: "HS256" }).setSubject("x").setExpirationTime("1h").sign(key);
      expect(await codeOf(s.call("listSecrets", { mesh: "" }, t))).toBe(status.UNAUTHENTICATED);
    }
  });

  it("when WatchProjection is called, then UNAUTHENTICATED without a token, and the current projection first with one", async () => {
    const { Metadata } = await import("@grpc/grpc-js");
    const watch = (tok?: string): Promise<number | "message"> =>
      new Promise((resolve) => {
        const md = new Metadata();
        if (tok) md.set("authorization", `Bearer ${tok}`);
        const call = s.client.watchProjection(ProjectSecretsRequest.fromPartial({ mesh: "default", items: [{ name: "db-creds" }] }), md);
        call.on("data", () => {
          resolve("message");
          call.cancel();
        });
        call.on("error", (e: ServiceError) => resolve(e.code));
      });
    expect(await watch()).toBe(status.UNAUTHENTICATED);
    expect(await watch(admin)).toBe("message");
  });
});

describe("logs", () => {
  it("when calls carry values and tokens, then no log line holds either, and each call has one line", async () => {
    const marker = "LOGMARKER-4f1c2a9e";
    const before = s.logs.length;
    await s.call("createSecret", { mesh: "default", name: "log-check", stringData: { pw: marker } }, dev);
    await s.call("getSecret", { mesh: "default", name: "log-check" }, dev);
    await s.call("projectSecrets", { mesh: "default", items: [{ name: "log-check" }] }, dev);
    await codeOf(s.call("getSecret", { mesh: "default", name: "log-check" }, dev + "x"));
    // A server process of its own (SECRETD_E2E_WORKERS) writes its buffered log within a second.
    const ridLines = (): string[] => s.logs.slice(before).filter((l) => l.includes('"rid"'));
    const getLine = (): string | undefined => ridLines().find((l) => l.includes('"method":"GetSecret"') && l.includes('"name":"log-check"'));
    // Wait for this test's GetSecret line itself: other calls' lines (a watch ending from the test before) may fill the count first.
    for (let i = 0; i < 40 && (ridLines().length < 4 || getLine() === undefined); i++) await new Promise((r) => setTimeout(r, 100));
    const lines = ridLines();
    expect(lines.length).toBeGreaterThanOrEqual(4);
    const all = s.logs.join("\n");
    expect(all).not.toContain(marker);
    expect(all).not.toContain(Buffer.from(marker).toString("base64"));
    expect(all).not.toContain(dev.split(".")[2]!);
    // Lines of other calls (a watch stream ending from the test before) may come in between.
    const line = JSON.parse(getLine()!) as Record<string, unknown>;
    expect(line).toMatchObject({ method: "GetSecret", tenant: "acme", sub: "dave", mesh: "default", name: "log-check", code: "OK" });
    expect(typeof line.ms).toBe("number");
    expect(typeof line.rid).toBe("string");
  });
});
