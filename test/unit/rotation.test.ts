/**
 * The two halves of KEK rotation without a server: a KeyringHolder following its file
 * (what a running server does), and rewrapPass over a real SQLite storage (what
 * `secretd keys rotate` does). The e2e test runs both together under load.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { kekIdOf } from "../../src/crypto/envelope.js";
import { KeyringHolder } from "../../src/crypto/keyring-holder.js";
import { loadKeyring, rotateKeyring } from "../../src/crypto/keyring.js";
import { rewrapPass } from "../../src/domain/kek-rewrap.js";
import { openData, sealData } from "../../src/domain/barrier.js";
import { SecretdError } from "../../src/errors.js";
import { SqliteStorage } from "../../src/storage/sqlite/sqlite-storage.js";
import type { SecretRow, VersionRow } from "../../src/storage/storage.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "secretd-rotation-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let seq = 0;
const freshFile = (): string => path.join(fs.mkdtempSync(path.join(tmpRoot, `d${seq++}-`)), "kek.json");

const row = { tenant: "acme", mesh: "prod", name: "db", uid: "uid-1" };
const data = new Map([["pw", Buffer.from("s3cr3t")]]);

function holderOn(file: string, warnings: string[] = []): KeyringHolder {
  return new KeyringHolder(file, { create: true, watch: false, info: () => {}, warn: (m) => warnings.push(m) });
}

function dataLossOf(fn: () => unknown): SecretdError | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof SecretdError && err.code === "DATA_LOSS") return err;
    throw err;
  }
  return undefined;
}

describe("keyring holder", () => {
  it("when a blob names a KEK added to the file by another process, then it opens after one re-read, and new versions are sealed with that KEK", () => {
    const file = freshFile();
    const holder = holderOn(file);
    const before = holder.current().active.id;
    const old = sealData(holder, row, 1, data, 0);
    const rotated = rotateKeyring(file); // as `keys rotate` would, in another process
    const fresh = sealData(rotated, row, 2, data, 0);
    expect(holder.current().active.id).toBe(before); // not noticed yet (no watching here)

    expect(openData(holder, row, fresh).get("pw")?.toString()).toBe("s3cr3t");
    expect(holder.current().active.id).toBe(rotated.active.id);
    expect(kekIdOf(sealData(holder, row, 3, data, 0).dek)).toBe(rotated.active.id);
    expect(openData(holder, row, old).get("pw")?.toString()).toBe("s3cr3t");
    holder.close();
  });

  it("when the holder re-reads a changed file, then the data keys cached under the old keyring are zeroed and dropped", () => {
    const file = freshFile();
    const holder = holderOn(file);
    const old = holder.current();
    const v = sealData(holder, row, 1, data, 0);
    expect(openData(holder, row, v).get("pw")?.toString()).toBe("s3cr3t");
    expect(old.dataKeys.size).toBe(1);
    rotateKeyring(file);
    holder.refresh();
    expect(holder.current()).not.toBe(old);
    expect(old.dataKeys.size).toBe(0);
    expect(openData(holder, row, v).get("pw")?.toString()).toBe("s3cr3t"); // unwrapped again with the new keyring
    expect(holder.current().dataKeys.size).toBe(1);
    holder.close();
    expect(holder.current().dataKeys.size).toBe(0);
  });

  it("when blobs name a KEK that is in no version of the file, then DATA_LOSS, and the unchanged file is not re-read for them", () => {
    const file = freshFile();
    const warnings: string[] = [];
    const holder = holderOn(file, warnings);
    // Group-readable, so every read of the file warns: the warnings count the re-reads.
    fs.chmodSync(file, 0o640);
    const stranger = loadKeyring(freshFile(), { create: true, warn: () => {} });
    const foreign = sealData(stranger, row, 1, data, 0);
    const before = warnings.length;
    for (let i = 0; i < 5; i++) expect(dataLossOf(() => openData(holder, row, foreign))).toBeDefined();
    expect(warnings.length - before).toBeLessThanOrEqual(1); // the chmod itself is a change of the file
    holder.close();
  });

  it("when the file is replaced by something unreadable, then the keys in use are kept and it is reported once", () => {
    const file = freshFile();
    const warnings: string[] = [];
    const holder = holderOn(file, warnings);
    const active = holder.current().active.id;
    const sealed = sealData(holder, row, 1, data, 0);
    fs.writeFileSync(file, "{ not json");
    holder.refresh();
    holder.refresh();
    expect(warnings.filter((w) => w.includes("could not be reloaded"))).toHaveLength(1);
    expect(warnings.join("\n")).not.toContain("not json");
    expect(holder.current().active.id).toBe(active);
    expect(openData(holder, row, sealed).get("pw")?.toString()).toBe("s3cr3t");
    holder.close();
  });
});

describe("rewrap pass", () => {
  it("when data keys are rewrapped after a rotation, then every readable one moves to the new KEK, a tampered one is reported and left, and a second pass has nothing to do", async () => {
    const dir = fs.mkdtempSync(path.join(tmpRoot, "db-"));
    const file = path.join(dir, "kek.json");
    const holder = holderOn(file);
    const storage = new SqliteStorage(path.join(dir, "secretd.db"));
    try {
      const secrets: SecretRow[] = [];
      for (let i = 0; i < 7; i++) {
        const s: SecretRow = {
          uid: `uid-${i}`, tenant: "acme", mesh: i % 2 ? "a" : "", name: `s${i}`, type: "Opaque", description: "", owner: "o",
          labels: {}, annotations: {}, immutable: false, version: 1, etag: `e${i}`, keys: ["pw"], createTime: 0, updateTime: 0, expireTime: undefined,
        };
        await storage.insertSecret(s, sealData(holder, s, 1, data, 0));
        secrets.push(s);
      }
      // A dek that names the right KEK but does not authenticate for its row.
      const victim = secrets[3]!;
      const tampered: VersionRow = { ...sealData(holder, { ...victim, uid: "elsewhere" }, 2, data, 0), uid: victim.uid };
      await storage.updateSecret({ ...victim, version: 2, etag: "e3b" }, tampered, victim.etag, 10);

      const payloadBefore = Buffer.from((await storage.readSecret(secrets[0]!, "s0", 1))!.version!.payload);
      const rotated = rotateKeyring(file);
      holder.refresh(); // `keys rotate` loads the keyring after rotating it
      const first = await rewrapPass(storage, holder, 3);
      expect(first).toMatchObject({ examined: 8, rewrapped: 7, missed: 0 });
      expect(first.unreadable).toEqual([{ uid: victim.uid, version: 2, tenant: "acme", mesh: "a", name: "s3" }]);
      const second = await rewrapPass(storage, holder, 3);
      expect(second).toMatchObject({ examined: 8, rewrapped: 0, missed: 0 });

      for (const s of secrets) {
        const v = (await storage.readSecret(s, s.name, 1))!.version!;
        expect(kekIdOf(v.dek)).toBe(rotated.active.id);
        expect(openData(rotated, s, v).get("pw")?.toString()).toBe("s3cr3t");
      }
      // Only the wrapped data key changes: the sealed payload keeps its bytes.
      expect(Buffer.from((await storage.readSecret(secrets[0]!, "s0", 1))!.version!.payload)).toEqual(payloadBefore);
    } finally {
      holder.close();
      await storage.close();
    }
  });
});
