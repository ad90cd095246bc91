/**
 * Tampering with the database file while the server runs (SPEC §6): every way of
 * altering or moving a sealed blob — a flipped byte, a cut tag, a blob swapped between
 * rows or tenants, a row renumbered, renamed or re-scoped — and a server started with
 * the wrong KEK, must answer DATA_LOSS for the secrets touched and nothing else, while
 * the same server keeps serving every other secret. And no file of the data dir may
 * hold a value in clear, base64 or hex.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DB_FILE } from "../../src/storage/open-storage.js";
import type { Projection, Secret } from "../../src/gen/secrets/v1/secrets.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const M = "tamper";
const ACME = { tenant: "acme", sub: "alice", roles: ["tenant-admin"] };
const GLOBEX = { tenant: "globex", sub: "gary", roles: ["tenant-admin"] };
/** Each secret's value is unique and recognisable, so a leak of it can be looked for. */
const valueOf = (tenant: string, name: string): string => `VALUE-${tenant}-${name}-5f0c2a`;

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), "secretd-tamper-"));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The outcome of a GetSecret: the value read, or the status code. */
async function read(s: TestServer, token: string, name: string, version = 0): Promise<string | number> {
  try {
    const got = await s.call<Secret>("getSecret", { mesh: M, name, version }, token);
    return Buffer.from(got.data.v ?? new Uint8Array()).toString("utf8");
  } catch (e) {
    const err = e as ServiceError;
    if (err.code === status.DATA_LOSS) {
      // One fixed message: it names no value, no key and no other row.
      expect(err.details).toBe("stored secret data failed to authenticate");
    }
    return err.code;
  }
}

async function project(s: TestServer, token: string, name: string): Promise<string | number> {
  try {
    const p = await s.call<Projection>("projectSecrets", { mesh: M, items: [{ name }] }, token);
    return Buffer.from(p.values[0]?.value ?? new Uint8Array()).toString("utf8");
  } catch (e) {
    return (e as ServiceError).code;
  }
}

describe("tampered rows", () => {
  let s: TestServer;
  let db: Database.Database;
  let acme: string;
  let globex: string;

  const uidOf = (tenant: string, name: string): string =>
    (db.prepare("SELECT uid FROM secrets WHERE tenant = ? AND mesh = ? AND name = ?").get(tenant, M, name) as { uid: string }).uid;
  const blobOf = (uid: string, version?: number): { dek: Buffer; payload: Buffer; version: number } =>
    db
      .prepare(
        version === undefined
          ? "SELECT dek, payload, version FROM secret_versions WHERE uid = ? ORDER BY version DESC LIMIT 1"
          : "SELECT dek, payload, version FROM secret_versions WHERE uid = ? AND version = ?",
      )
      .get(...(version === undefined ? [uid] : [uid, version])) as { dek: Buffer; payload: Buffer; version: number };
  const setBlob = (uid: string, version: number, b: { dek?: Buffer; payload?: Buffer }): void => {
    if (b.dek) db.prepare("UPDATE secret_versions SET dek = ? WHERE uid = ? AND version = ?").run(b.dek, uid, version);
    if (b.payload) db.prepare("UPDATE secret_versions SET payload = ? WHERE uid = ? AND version = ?").run(b.payload, uid, version);
  };
  const flip = (b: Buffer, at: number): Buffer => {
    const out = Buffer.from(b);
    const i = at < 0 ? out.length + at : at;
    out[i] = out[i]! ^ 0x01;
    return out;
  };

  const ACME_TAMPERED = [
    "flip-ciphertext",
    "flip-nonce",
    "flip-tag",
    "flip-format",
    "flip-dek",
    "flip-kek-id",
    "cut-tag-4",
    "cut-tag-16",
    "cut-dek",
    "swap-a",
    "swap-b",
    "dek-only-a",
    "dek-only-b",
    "renumbered",
    "renamed-after",
    "moved-mesh",
    "shared",
    "moved-in",
  ];
  const ACME_BYSTANDERS = ["keep-1", "keep-2", "keep-3", "keep-4"];
  const GLOBEX_TAMPERED = ["shared"];
  const GLOBEX_BYSTANDERS = ["keep-g"];

  beforeAll(async () => {
    s = await startTestServer();
    acme = await s.token(ACME);
    globex = await s.token(GLOBEX);
    const create = (token: string, tenant: string, name: string, mesh = M) =>
      s.call("createSecret", { mesh, name, stringData: { v: valueOf(tenant, name) } }, token);
    for (const n of [...ACME_TAMPERED.filter((n) => !["renamed-after", "moved-in"].includes(n)), "renamed-before", ...ACME_BYSTANDERS]) {
      await create(acme, "acme", n, n === "moved-mesh" ? "elsewhere" : M);
    }
    for (const n of [...GLOBEX_TAMPERED, ...GLOBEX_BYSTANDERS, "moved-out"]) await create(globex, "globex", n);
    // A secret with two versions, so version numbers can be swapped.
    const v1 = await s.call<Secret>("createSecret", { mesh: M, name: "two-versions", stringData: { v: "two-v1" } }, acme);
    await s.call("updateSecret", { mesh: M, name: "two-versions", etag: v1.etag, stringData: { v: "two-v2" } }, acme);

    db = new Database(path.join(s.dataDir, DB_FILE));
    db.pragma("busy_timeout = 5000");
  });

  afterAll(async () => {
    db?.close();
    await s?.stop();
  });

  it("when nothing was touched yet, then every secret reads back its own value", async () => {
    for (const n of [...ACME_BYSTANDERS, "swap-a", "shared"]) expect(await read(s, acme, n)).toBe(valueOf("acme", n));
    expect(await read(s, globex, "shared")).toBe(valueOf("globex", "shared"));
  });

  it("when blobs are altered, cut, swapped, renumbered or moved, then DATA_LOSS for those secrets only, and the others keep being served", async () => {
    const u = (n: string): string => uidOf("acme", n);
    const b = (n: string): { dek: Buffer; payload: Buffer; version: number } => blobOf(u(n));

    // Bytes of the payload: 0x01 | nonce(12) | ciphertext | tag(16).
    setBlob(u("flip-ciphertext"), 1, { payload: flip(b("flip-ciphertext").payload, 1 + 12 + 3) });
    setBlob(u("flip-nonce"), 1, { payload: flip(b("flip-nonce").payload, 1) });
    setBlob(u("flip-tag"), 1, { payload: flip(b("flip-tag").payload, -1) });
    setBlob(u("flip-format"), 1, { payload: flip(b("flip-format").payload, 0) });
    // Bytes of the wrapped data key: 0x01 | idLen | kekId | nonce | enc DEK | tag.
    setBlob(u("flip-dek"), 1, { dek: flip(b("flip-dek").dek, -20) });
    setBlob(u("flip-kek-id"), 1, { dek: flip(b("flip-kek-id").dek, 3) });
    // A truncated tag: Node would accept a short GCM tag if the length were not enforced.
    const cut4 = b("cut-tag-4").payload;
    setBlob(u("cut-tag-4"), 1, { payload: cut4.subarray(0, cut4.length - 4) });
    const cut16 = b("cut-tag-16").payload;
    setBlob(u("cut-tag-16"), 1, { payload: cut16.subarray(0, cut16.length - 16) });
    const cutDek = b("cut-dek").dek;
    setBlob(u("cut-dek"), 1, { dek: cutDek.subarray(0, cutDek.length - 1) });
    // Whole valid blobs exchanged between two rows of one tenant.
    const [a, bb] = [b("swap-a"), b("swap-b")];
    setBlob(u("swap-a"), 1, { dek: bb.dek, payload: bb.payload });
    setBlob(u("swap-b"), 1, { dek: a.dek, payload: a.payload });
    // Only the wrapped data keys exchanged.
    const [da, db2] = [b("dek-only-a"), b("dek-only-b")];
    setBlob(u("dek-only-a"), 1, { dek: db2.dek });
    setBlob(u("dek-only-b"), 1, { dek: da.dek });
    // Between two TENANTS: the same mesh and name in acme and globex, blobs exchanged.
    const [acmeShared, globexShared] = [blobOf(uidOf("acme", "shared")), blobOf(uidOf("globex", "shared"))];
    setBlob(uidOf("acme", "shared"), 1, { dek: globexShared.dek, payload: globexShared.payload });
    setBlob(uidOf("globex", "shared"), 1, { dek: acmeShared.dek, payload: acmeShared.payload });
    // A whole globex secret re-assigned to acme: acme now finds it, and cannot open it.
    db.prepare("UPDATE secrets SET tenant = 'acme', name = 'moved-in' WHERE uid = ?").run(uidOf("globex", "moved-out"));
    // A version number changed, on the version row and on the secret row alike.
    db.transaction(() => {
      db.prepare("UPDATE secret_versions SET version = 7 WHERE uid = ?").run(u("renumbered"));
      db.prepare("UPDATE secrets SET version = 7 WHERE uid = ?").run(u("renumbered"));
    })();
    // Two versions of one secret exchanged (1 ↔ 2, through a free number).
    const two = u("two-versions");
    db.transaction(() => {
      db.prepare("UPDATE secret_versions SET version = 99 WHERE uid = ? AND version = 1").run(two);
      db.prepare("UPDATE secret_versions SET version = 1 WHERE uid = ? AND version = 2").run(two);
      db.prepare("UPDATE secret_versions SET version = 2 WHERE uid = ? AND version = 99").run(two);
    })();
    // A row renamed, and a row moved to another mesh.
    db.prepare("UPDATE secrets SET name = 'renamed-after' WHERE uid = ?").run(u("renamed-before"));
    db.prepare("UPDATE secrets SET mesh = ? WHERE tenant = 'acme' AND mesh = 'elsewhere' AND name = 'moved-mesh'").run(M);

    // Interleaved, twice: every tampered secret fails, every other one is still served.
    for (let round = 0; round < 2; round++) {
      for (const n of ACME_TAMPERED) {
        expect([n, await read(s, acme, n)]).toEqual([n, status.DATA_LOSS]);
        for (const k of ACME_BYSTANDERS) expect(await read(s, acme, k)).toBe(valueOf("acme", k));
        expect(await read(s, globex, "keep-g")).toBe(valueOf("globex", "keep-g"));
      }
      for (const n of GLOBEX_TAMPERED) expect([n, await read(s, globex, n)]).toEqual([n, status.DATA_LOSS]);
      expect(await read(s, acme, "two-versions", 1)).toBe(status.DATA_LOSS);
      expect(await read(s, acme, "two-versions", 2)).toBe(status.DATA_LOSS);
      expect(await read(s, acme, "two-versions")).toBe(status.DATA_LOSS);
    }
    // ProjectSecrets opens the same blobs and fails the same way.
    for (const n of ["flip-ciphertext", "swap-a", "shared", "renumbered", "moved-in"]) expect([n, await project(s, acme, n)]).toEqual([n, status.DATA_LOSS]);
    expect(await project(s, acme, "keep-1")).toBe(valueOf("acme", "keep-1"));
    // The moved-out secret is gone for its old tenant, exactly like a missing one.
    expect(await read(s, globex, "moved-out")).toBe(status.NOT_FOUND);
    // Nothing of the victims' or donors' values reached a log line.
    const leaked = s.logs.filter((l) => /VALUE-(acme|globex)-/.test(l) || l.includes("two-v1") || l.includes("two-v2"));
    expect(leaked).toEqual([]);
    // The server also keeps accepting writes.
    await s.call("createSecret", { mesh: M, name: "after-tamper", stringData: { v: valueOf("acme", "after-tamper") } }, acme);
    expect(await read(s, acme, "after-tamper")).toBe(valueOf("acme", "after-tamper"));
  });
});

describe("wrong KEK", () => {
  it("when the server restarts with a wrong KEK file, then one lacking the stored KEK id is refused at start, one with the same id but other bytes answers DATA_LOSS for old secrets and serves new ones, and the right KEK reads the old ones again", async () => {
    const dataDir = tempDir();
    const first = await startTestServer({ dataDir });
    const t = await first.token(ACME);
    for (const n of ["old-1", "old-2"]) await first.call("createSecret", { mesh: M, name: n, stringData: { v: valueOf("acme", n) } }, t);
    expect(await read(first, t, "old-1")).toBe(valueOf("acme", "old-1"));
    await first.app.close(1000);

    const right = JSON.parse(readFileSync(path.join(dataDir, "kek.json"), "utf8")) as { active: string; keys: { id: string; created: string }[] };
    const keyring = (id: string): string =>
      JSON.stringify({ version: 1, active: id, keys: [{ id, key: randomBytes(32).toString("base64"), created: "2025-01-01T00:00:00Z" }] });
    // Same key id, other key bytes: the blob names a key the keyring has, and the tag fails.
    const sameId = path.join(dataDir, "kek-same-id.json");
    writeFileSync(sameId, keyring(right.active), { mode: 0o600 });
    // Another key id: the blob names a key the keyring does not have.
    const otherId = path.join(dataDir, "kek-other-id.json");
    writeFileSync(otherId, keyring("k-impostor"), { mode: 0o600 });

    // A keyring without the id the stored data keys name is refused before serving (#15.1).
    await expect(startTestServer({ dataDir, kekFile: otherId })).rejects.toThrow(
      new RegExp(`refusing to start: .*"${right.active}".*${otherId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} lacks`),
    );

    for (const kekFile of [sameId]) {
      const s = await startTestServer({ dataDir, kekFile });
      try {
        const tok = await s.token(ACME);
        const fresh = `new-${path.basename(kekFile, ".json")}`;
        await s.call("createSecret", { mesh: M, name: fresh, stringData: { v: valueOf("acme", fresh) } }, tok);
        for (let round = 0; round < 2; round++) {
          expect(await read(s, tok, "old-1")).toBe(status.DATA_LOSS);
          expect(await read(s, tok, fresh)).toBe(valueOf("acme", fresh));
          expect(await read(s, tok, "old-2")).toBe(status.DATA_LOSS);
        }
        // Metadata rows are MACed under a KEK-derived key too: under the wrong KEK the old
        // rows do not authenticate and are left out of the listing (and logged), the new one is listed.
        const names = (await s.call<{ secrets: Secret[] }>("listSecrets", { mesh: M }, tok)).secrets.map((x) => x.name);
        expect(names).toContain(fresh);
        expect(names).not.toContain("old-1");
        expect(s.logs.some((l) => l.includes("failed to authenticate") && l.includes('"name":"old-1"'))).toBe(true);
        expect(s.logs.filter((l) => l.includes("VALUE-acme-"))).toEqual([]);
      } finally {
        await s.app.close(1000);
      }
    }

    // The wrong KEK destroyed nothing: the right one still opens the old secrets.
    const again = await startTestServer({ dataDir });
    try {
      const tok = await again.token(ACME);
      expect(await read(again, tok, "old-1")).toBe(valueOf("acme", "old-1"));
      expect(await read(again, tok, "old-2")).toBe(valueOf("acme", "old-2"));
      const listed = (await again.call<{ secrets: Secret[] }>("listSecrets", { mesh: M }, tok)).secrets.map((x) => x.name);
      expect(listed).toEqual(expect.arrayContaining(["old-1", "old-2"]));
      // Sealed under an impostor key: unreadable under the real keyring.
      expect(await read(again, tok, "new-kek-same-id")).toBe(status.DATA_LOSS);
    } finally {
      await again.app.close(1000);
    }
  });
});

describe("values at rest", () => {
  it("when marker values are written, updated and deleted, then no data-dir file holds them in clear, base64 or hex, nor the KEK bytes", async () => {
    const dataDir = tempDir();
    const s = await startTestServer({ dataDir });
    const markers = Array.from({ length: 4 }, (_, i) => `MARKER-${i}-${randomBytes(8).toString("hex")}-at-rest`);
    const t = await s.token(ACME);
    const c0 = await s.call<Secret>("createSecret", { mesh: M, name: "m0", stringData: { v: markers[0]! } }, t);
    await s.call("createSecret", { mesh: M, name: "m1", data: { v: Buffer.from(markers[1]!) } }, t);
    await s.call("createSecret", { mesh: "", name: "m2", stringData: { a: markers[2]!, b: markers[2]! } }, t);
    await s.call("updateSecret", { mesh: M, name: "m0", etag: c0.etag, stringData: { v: markers[3]! } }, t);
    await s.call("createSecret", { mesh: M, name: "gone", stringData: { v: markers[3]! } }, t);
    await s.call("deleteSecret", { mesh: M, name: "gone" }, t);
    // A positive control: descriptions are metadata, stored in clear, so the scan must find this one.
    const control = `CONTROL-${randomBytes(8).toString("hex")}-in-clear`;
    await s.call("createSecret", { mesh: M, name: "control", description: control, stringData: { v: "x" } }, t);

    const forms = (m: string): Buffer[] => {
      const b = Buffer.from(m, "utf8");
      return [
        b,
        Buffer.from(m, "utf16le"),
        Buffer.from(b.toString("base64")),
        Buffer.from(b.toString("base64url")),
        Buffer.from(b.toString("hex")),
        Buffer.from(b.toString("hex").toUpperCase()),
      ];
    };
    const kek = JSON.parse(readFileSync(path.join(dataDir, "kek.json"), "utf8")) as { keys: { key: string }[] };
    const kekBytes = kek.keys.map((k) => Buffer.from(k.key, "base64"));
    const needles = [...markers.flatMap(forms), ...kekBytes, ...kek.keys.map((k) => Buffer.from(k.key))];
    const scan = (): { files: string[]; hits: string[]; control: boolean } => {
      const files = readdirSync(dataDir).filter((f) => f.startsWith(DB_FILE));
      const contents = files.map((f) => readFileSync(path.join(dataDir, f)));
      const hits = files.filter((_, i) => needles.some((n) => contents[i]!.includes(n)));
      return { files, hits, control: contents.some((c) => c.includes(control)) };
    };

    try {
      // While running: the WAL holds the recent pages.
      const live = scan();
      expect(live.files).toEqual(expect.arrayContaining([DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`]));
      expect(live.hits).toEqual([]);
      expect(live.control).toBe(true);
      expect(s.logs.filter((l) => markers.some((m) => l.includes(m)))).toEqual([]);
      // The scan can see a value that is there: the values still read back.
      const got = await s.call<Secret>("getSecret", { mesh: M, name: "m1" }, t);
      expect(Buffer.from(got.data.v!).toString()).toBe(markers[1]);
    } finally {
      await s.app.close(1000);
    }
    // After a clean shutdown (WAL checkpointed into the main file).
    const after = scan();
    expect(after.hits).toEqual([]);
    expect(after.control).toBe(true);
  });
});
