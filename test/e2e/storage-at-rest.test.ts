/**
 * What lands on disk: values never in clear (database, WAL, journal), a tampered blob
 * is DATA_LOSS for that secret only, secrets survive a restart, and an unexpected
 * failure is INTERNAL carrying a request id that the log line carries too.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { DB_FILE } from "../../src/storage/open-storage.js";
import type { Secret } from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, startTestServer } from "../helpers/server.js";

const claims = { tenant: "acme", sub: "alice", roles: ["tenant-admin"] };

describe("storage at rest", () => {
  it("when a marker value is stored, then it appears in no file of the data dir, and it survives a restart", async () => {
    const marker = "PLAINTEXT-MARKER-7d3e91b2c4";
    const s = await startTestServer();
    const dataDir = s.dataDir;
    const t = await s.token(claims);
    await s.call("createSecret", { mesh: "m", name: "marked", stringData: { pw: marker }, description: "d" }, t);
    // Look while the server is up (WAL not yet checkpointed) and after it stopped.
    const scan = (): string[] =>
      readdirSync(dataDir)
        .filter((f) => f.startsWith(DB_FILE))
        .filter((f) => {
          const bytes = readFileSync(path.join(dataDir, f));
          return bytes.includes(marker) || bytes.includes(Buffer.from(marker).toString("base64")) || bytes.includes(Buffer.from(marker, "utf16le"));
        });
    expect(readdirSync(dataDir)).toContain(`${DB_FILE}-wal`);
    for (const f of [DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`]) expect(statSync(path.join(dataDir, f)).mode & 0o077).toBe(0);
    expect(scan()).toEqual([]);
    await s.app.close(1000);

    const again = await startTestServer({ dataDir });
    try {
      expect(scan()).toEqual([]);
      const got = await again.call<Secret>("getSecret", { mesh: "m", name: "marked" }, await again.token(claims));
      expect(Buffer.from(got.data.pw!).toString()).toBe(marker);
    } finally {
      await again.stop();
    }
  });

  it("when a stored ciphertext is altered or moved to another row, then DATA_LOSS for that secret only", async () => {
    const s = await startTestServer();
    try {
      const t = await s.token(claims);
      for (const n of ["victim", "bystander", "donor"]) await s.call("createSecret", { mesh: "m", name: n, stringData: { k: n } }, t);
      const db = new Database(path.join(s.dataDir, DB_FILE));
      const uid = (n: string): string => (db.prepare("SELECT uid FROM secrets WHERE name = ?").get(n) as { uid: string }).uid;
      const row = db.prepare("SELECT payload FROM secret_versions WHERE uid = ?").get(uid("victim")) as { payload: Buffer };
      const flipped = Buffer.from(row.payload);
      flipped[flipped.length - 20]! ^= 0x01;
      db.prepare("UPDATE secret_versions SET payload = ? WHERE uid = ?").run(flipped, uid("victim"));
      expect(await codeOf(s.call("getSecret", { mesh: "m", name: "victim" }, t))).toBe(status.DATA_LOSS);
      expect(await codeOf(s.call("projectSecrets", { mesh: "m", items: [{ name: "victim" }] }, t))).toBe(status.DATA_LOSS);

      // A whole valid blob (dek + payload) copied from another row does not open either.
      const donor = db.prepare("SELECT dek, payload FROM secret_versions WHERE uid = ?").get(uid("donor")) as { dek: Buffer; payload: Buffer };
      db.prepare("UPDATE secret_versions SET dek = ?, payload = ? WHERE uid = ?").run(donor.dek, donor.payload, uid("victim"));
      const err = (await s.call("getSecret", { mesh: "m", name: "victim" }, t).catch((e: ServiceError) => e)) as ServiceError;
      expect(err.code).toBe(status.DATA_LOSS);
      expect(err.details).not.toContain("donor");
      db.close();

      const ok = await s.call<Secret>("getSecret", { mesh: "m", name: "bystander" }, t);
      expect(Buffer.from(ok.data.k!).toString()).toBe("bystander");
    } finally {
      await s.stop();
    }
  });

  it("when storage fails unexpectedly, then INTERNAL with a request id that the log line also carries, and no internals", async () => {
    const s = await startTestServer();
    try {
      const t = await s.token(claims);
      await s.app.storage.close();
      const err = (await s.call("getSecret", { mesh: "m", name: "x" }, t).catch((e: ServiceError) => e)) as ServiceError;
      expect(err.code).toBe(status.INTERNAL);
      const rid = /request id ([\w-]+)/.exec(err.details)?.[1];
      expect(rid).toBeDefined();
      expect(err.details).not.toMatch(/sqlite|database|connection/i);
      expect(err.metadata.get("x-request-id")).toEqual([rid]);
      const line = s.logs.find((l) => l.includes(rid!));
      expect(line).toBeDefined();
      expect(JSON.parse(line!)).toMatchObject({ code: "INTERNAL", rid, method: "GetSecret" });
      expect(line).toMatch(/database/i); // the cause is logged, not sent
    } finally {
      await s.app.close(100).catch(() => undefined);
    }
  });
});
