/**
 * Secret lifecycle end to end: compare-and-set updates, update masks, versions and
 * their retention, immutability, expiry, idempotent creates and typed secrets.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DB_FILE } from "../../src/storage/open-storage.js";
import type { ListSecretsResponse, Secret } from "../../src/gen/secrets/v1/secrets.js";
import { hasOpenssl } from "../helpers/openssl.js";
import pg from "pg";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";

let s: TestServer;
let t: string;
const M = "life";
const text = (b: Uint8Array | undefined): string => Buffer.from(b ?? []).toString("utf8");

beforeAll(async () => {
  s = await startTestServer({ maxVersions: "3" });
  t = await s.token({ tenant: "acme", sub: "owner", roles: ["data-developer"] });
});

afterAll(async () => {
  await s?.stop();
});

/** One column of what the server stored, from its SQLite file or its PostgreSQL database (`?` placeholders). */
async function storedColumn(sql: string, ...params: unknown[]): Promise<unknown[]> {
  if (s.config.databaseUrl === "") {
    const db = new Database(path.join(s.dataDir, DB_FILE), { readonly: true });
    try {
      return db.prepare(sql).pluck().all(...params);
    } finally {
      db.close();
    }
  }
  let n = 0;
  const c = new pg.Client({ connectionString: s.config.databaseUrl });
  await c.connect();
  try {
    const r = await c.query({ text: sql.replace(/\?/g, () => `$${++n}`), values: params, rowMode: "array" });
    return r.rows.map((row: unknown[]) => row[0]);
  } finally {
    await c.end();
  }
}

const create = (name: string, req: object = {}): Promise<Secret> => s.call<Secret>("createSecret", { mesh: M, name, stringData: { k: "v1" }, ...req }, t);
const get = (name: string, req: object = {}): Promise<Secret> => s.call<Secret>("getSecret", { mesh: M, name, ...req }, t);
const update = (name: string, req: object): Promise<Secret> => s.call<Secret>("updateSecret", { mesh: M, name, ...req }, t);

describe("UpdateSecret", () => {
  it("when updated with the current etag, then a new version with a new etag is current and the old one stays readable", async () => {
    const v1 = await create("cas");
    const v2 = await update("cas", { etag: v1.etag, stringData: { k: "v2" } });
    expect(v2.version).toBe(2);
    expect(v2.etag).not.toBe(v1.etag);
    expect(v2.uid).toBe(v1.uid);
    expect(text((await get("cas")).data.k)).toBe("v2");
    const old = await get("cas", { version: 1 });
    expect(text(old.data.k)).toBe("v1");
    expect(old.version).toBe(1);
  });

  it("when the etag is stale or missing, then ABORTED or INVALID_ARGUMENT and nothing changes", async () => {
    const v1 = await create("stale");
    await update("stale", { etag: v1.etag, stringData: { k: "v2" } });
    expect(await codeOf(update("stale", { etag: v1.etag, stringData: { k: "lost" } }))).toBe(status.ABORTED);
    expect(await codeOf(update("stale", { stringData: { k: "lost" } }))).toBe(status.INVALID_ARGUMENT);
    expect(text((await get("stale")).data.k)).toBe("v2");
  });

  it("when many clients update with the same etag at once, then exactly one wins", async () => {
    const v1 = await create("race");
    const results = await Promise.allSettled([...Array(10).keys()].map((i) => update("race", { etag: v1.etag, stringData: { k: `w${i}` } })));
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect((r.reason as { code: number }).code).toBe(status.ABORTED);
    const winner = (won[0] as PromiseFulfilledResult<Secret>).value;
    expect((await get("race")).etag).toBe(winner.etag);
  });

  it("when an update_mask names fields, then exactly those are replaced; data covers data and string_data together", async () => {
    const v1 = await create("masked", { labels: { a: "1" }, description: "first", data: { bin: Buffer.from([1, 2]) } });
    const v2 = await update("masked", { etag: v1.etag, labels: { b: "2" }, description: "ignored", updateMask: ["labels"] });
    expect(v2.labels).toEqual({ b: "2" });
    expect(v2.description).toBe("first");
    expect(v2.keys).toEqual(["bin", "k"]);
    const v3 = await update("masked", { etag: v2.etag, data: { x: Buffer.from("X") }, stringData: { x: "Y", y: "Z" }, updateMask: ["data", "description"] });
    expect(v3.keys).toEqual(["x", "y"]);
    expect(v3.description).toBe("");
    const got = await get("masked");
    expect(text(got.data.x)).toBe("Y"); // string_data wins over data
    expect(await codeOf(update("masked", { etag: v3.etag, updateMask: ["type"] }))).toBe(status.INVALID_ARGUMENT);
  });

  it("when the mask is empty, then each field set in the request is replaced and the others are kept", async () => {
    const v1 = await create("unmasked", { labels: { a: "1" }, annotations: { note: "n" }, description: "d" });
    const v2 = await update("unmasked", { etag: v1.etag, description: "new" });
    expect(v2).toMatchObject({ description: "new", labels: { a: "1" }, annotations: { note: "n" }, keys: ["k"], type: "Opaque" });
    expect(text((await get("unmasked")).data.k)).toBe("v1");
  });

  it("when the secret is immutable, then updates are FAILED_PRECONDITION and it can still be deleted", async () => {
    const v1 = await create("frozen", { immutable: true });
    expect(await codeOf(update("frozen", { etag: v1.etag, stringData: { k: "x" } }))).toBe(status.FAILED_PRECONDITION);
    expect(await codeOf(update("frozen", { etag: v1.etag, labels: { a: "b" } }))).toBe(status.FAILED_PRECONDITION);
    expect((await get("frozen")).immutable).toBe(true);
    await s.call("deleteSecret", { mesh: M, name: "frozen" }, t);
  });

  it("when a typed secret is updated, then its type is kept and its rules still apply", async () => {
    const v1 = await create("login", { type: "kubernetes.io/basic-auth", stringData: { username: "u", password: "p" } });
    expect(await codeOf(update("login", { etag: v1.etag, stringData: { other: "x" }, updateMask: ["data"] }))).toBe(status.INVALID_ARGUMENT);
    const v2 = await update("login", { etag: v1.etag, stringData: { password: "p2" }, updateMask: ["data"] });
    expect(v2.type).toBe("kubernetes.io/basic-auth");
  });

  it("when more than max_versions updates happen, then only the newest stay readable and older ciphertext is destroyed", async () => {
    let cur = await create("many");
    for (let i = 2; i <= 6; i++) cur = await update("many", { etag: cur.etag, stringData: { k: `v${i}` } });
    expect(cur.version).toBe(6);
    for (const v of [4, 5, 6]) expect(text((await get("many", { version: v })).data.k)).toBe(`v${v}`);
    for (const v of [1, 2, 3]) expect(await codeOf(get("many", { version: v }))).toBe(status.NOT_FOUND);
    const versions = await storedColumn("SELECT version FROM secret_versions WHERE uid = ? ORDER BY version", cur.uid);
    expect(versions.map(Number)).toEqual([4, 5, 6]);
  });
});

describe("expiry", () => {
  it("when expire_time passes, then Get and projection refuse it, List still shows it, and extending it serves it again", async () => {
    const v1 = await create("short-lived", { expireTime: new Date(s.clock.now() + s.clock.lapseMs) });
    expect(text((await get("short-lived")).data.k)).toBe("v1");
    await s.clock.advance(s.clock.lapseMs + 100);
    const err = await get("short-lived").catch((e: { code: number; details: string }) => e);
    expect(err).toMatchObject({ code: status.FAILED_PRECONDITION });
    expect((err as { details: string }).details).toContain("expired");
    expect(await codeOf(s.call("projectSecrets", { mesh: M, items: [{ name: "short-lived" }] }, t))).toBe(status.FAILED_PRECONDITION);
    const listed = await s.call<ListSecretsResponse>("listSecrets", { mesh: M, pageSize: 1000 }, t);
    expect(listed.secrets.map((x) => x.name)).toContain("short-lived");
    await update("short-lived", { etag: v1.etag, expireTime: new Date(s.clock.now() + 3600_000) });
    expect(text((await get("short-lived")).data.k)).toBe("v1");
  });

  it("when listing with expiring_within, then only secrets expiring before now + that duration appear", async () => {
    await create("exp-soon", { expireTime: new Date(s.clock.now() + 3600_000) });
    await create("exp-later", { expireTime: new Date(s.clock.now() + 90 * 86400_000) });
    await create("exp-never");
    const names = async (seconds: number): Promise<string[]> =>
      (await s.call<ListSecretsResponse>("listSecrets", { mesh: M, pageSize: 1000, expiringWithin: { seconds, nanos: 0 } }, t)).secrets
        .map((x) => x.name)
        .filter((n) => n.startsWith("exp-"));
    expect(await names(7 * 86400)).toEqual(["exp-soon"]);
    expect(await names(365 * 86400)).toEqual(["exp-later", "exp-soon"]);
  });
});

describe("idempotent CreateSecret", () => {
  it("when a create is retried with the same request_id, then the same secret comes back; a different body is refused", async () => {
    const req = { name: "idem", stringData: { k: "v" }, requestId: "req-42" };
    const first = await create("idem", req);
    const again = await create("idem", req);
    expect(again.uid).toBe(first.uid);
    expect(await codeOf(create("idem", { ...req, stringData: { k: "other" } }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(create("idem-2", { ...req, name: "idem-2" }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(create("idem", { stringData: { k: "v" } }))).toBe(status.ALREADY_EXISTS);
  });

  it("when retries race, then all get the one secret that was created", async () => {
    const req = { stringData: { k: "v" }, requestId: "req-race" };
    const all = await Promise.all([...Array(6).keys()].map(() => create("idem-race", req)));
    expect(new Set(all.map((x) => x.uid)).size).toBe(1);
  });

  it("when the fingerprint is stored, then it does not contain the value or a plain hash of it", async () => {
    await create("idem-secret", { stringData: { pw: "hunter2" }, requestId: "req-fp" });
    const [fp] = (await storedColumn("SELECT fingerprint FROM create_requests WHERE request_id = 'req-fp'")) as string[];
    expect(fp).toMatch(/^[\w-]+:[0-9a-f]{64}$/);
    expect(fp).not.toContain("hunter2");
  });
});

describe("typed secrets", () => {
  it.runIf(hasOpenssl)("when a TLS secret has a matching key, then it is stored with its notAfter annotation; a foreign key is refused", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "tls-"));
    const gen = (n: string): { crt: string; key: string } => {
      execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path.join(dir, `${n}.key`), "-out", path.join(dir, `${n}.crt`), "-days", "30", "-subj", `/CN=${n}`], { stdio: "ignore" });
      return { crt: readFileSync(path.join(dir, `${n}.crt`), "utf8"), key: readFileSync(path.join(dir, `${n}.key`), "utf8") };
    };
    const a = gen("a");
    const b = gen("b");
    const ok = await create("tls-ok", { type: "kubernetes.io/tls", stringData: { "tls.crt": a.crt, "tls.key": a.key } });
    const notAfter = ok.annotations["secretd.io/not-after"];
    expect(notAfter).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Math.abs(Date.parse(notAfter!) - (Date.now() + 30 * 86400_000))).toBeLessThan(2 * 86400_000);
    const err = await create("tls-bad", { type: "kubernetes.io/tls", stringData: { "tls.crt": a.crt, "tls.key": b.key } }).catch((e: { code: number; details: string }) => e);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect((err as { details: string }).details).toContain("tls.key");
    expect((err as { details: string }).details).not.toContain("PRIVATE KEY");
  });

  it("when a caller sets a secretd.io/ annotation, then INVALID_ARGUMENT", async () => {
    expect(await codeOf(create("reserved", { annotations: { "secretd.io/not-after": "2000-01-01T00:00:00Z" } }))).toBe(status.INVALID_ARGUMENT);
  });

  const invalid: Array<[string, Record<string, string>]> = [
    ["kubernetes.io/basic-auth", { other: "x" }],
    ["kubernetes.io/ssh-auth", { key: "x" }],
    ["kubernetes.io/tls", { "tls.crt": "nope" }],
    ["kubernetes.io/dockerconfigjson", { ".dockerconfigjson": "{not json" }],
    ["kubernetes.io/dockercfg", { other: "{}" }],
    ["bootstrap.kubernetes.io/token", { "token-id": "abc", "token-secret": "0123456789abcdef" }],
    ["nanocl.io/env", { "not-an-env-name": "x" }],
    ["nanocl.io/tls", { Certificate: "x" }],
  ];
  for (const [type, stringData] of invalid) {
    it(`when a ${type} secret breaks its rule, then INVALID_ARGUMENT`, async () => {
      expect(await codeOf(create(`bad-${type.replace(/[^a-z0-9]/g, "-")}`, { type, stringData }))).toBe(status.INVALID_ARGUMENT);
    });
  }

  const valid: Array<[string, Record<string, string>]> = [
    ["kubernetes.io/basic-auth", { username: "u" }],
    ["kubernetes.io/ssh-auth", { "ssh-privatekey": "k" }],
    ["kubernetes.io/dockerconfigjson", { ".dockerconfigjson": '{"auths":{}}' }],
    ["kubernetes.io/dockercfg", { ".dockercfg": "{}" }],
    ["bootstrap.kubernetes.io/token", { "token-id": "abcdef", "token-secret": "0123456789abcdef" }],
    ["nanocl.io/env", { A: "1" }],
    ["example.com/custom", { anything: "goes" }],
  ];
  for (const [type, stringData] of valid) {
    it(`when a ${type} secret follows its rule, then it is created with that type`, async () => {
      const sec = await create(`ok-${type.replace(/[^a-z0-9]/g, "-")}`, { type, stringData });
      expect(sec.type).toBe(type);
    });
  }
});
