/**
 * KEK rotation under load: `secretd keys rotate` (the binary, a second process on the
 * same data dir) while clients create, update and read through a running server. Every
 * call must succeed throughout, and afterwards every stored data key is wrapped by the
 * new KEK and every version still opens through the API.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { ServiceError } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { DB_FILE } from "../../src/storage/open-storage.js";
import { kekIdOf } from "../../src/crypto/envelope.js";
import { macKekId } from "../../src/crypto/row-mac.js";
import type { Secret } from "../../src/gen/secrets/v1/secrets.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MAIN = path.resolve("dist/main.js");
const SEEDS = 30;
const SEED_VERSIONS = 3;
const WORKERS = 6;

interface Known {
  readonly mesh: string;
  etag: string;
  version: number;
  /** Every version written, by number. */
  readonly values: Map<number, string>;
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

function valueOf(s: Secret): string {
  return Buffer.from(s.data.v ?? new Uint8Array()).toString();
}

describe("KEK rotation during load", () => {
  it("when keys rotate runs while clients create, update and read, then every call succeeds and afterwards every data key is wrapped by the new KEK and still opens", { timeout: 120_000 }, async () => {
    const s: TestServer = await startTestServer();
    try {
      const t = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
      const oldKek = s.app.keyring.active.id;
      const known = new Map<string, Known>();
      let serial = 0;

      const create = async (name: string, mesh: string): Promise<void> => {
        const value = `${name}@1#${serial++}`;
        const res = await s.call<Secret>("createSecret", { mesh, name, stringData: { v: value } }, t);
        known.set(name, { mesh, etag: res.etag, version: 1, values: new Map([[1, value]]) });
      };
      const update = async (name: string): Promise<void> => {
        const k = known.get(name)!;
        const value = `${name}@${k.version + 1}#${serial++}`;
        const res = await s.call<Secret>("updateSecret", { mesh: k.mesh, name, etag: k.etag, stringData: { v: value } }, t);
        k.values.set(res.version, value);
        k.version = res.version;
        k.etag = res.etag;
      };
      const read = async (name: string): Promise<void> => {
        const k = known.get(name)!;
        const res = await s.call<Secret>("getSecret", { mesh: k.mesh, name }, t);
        if (valueOf(res) !== k.values.get(k.version)) throw new Error(`${name} read back another value than its version ${k.version}`);
      };

      const seeds: string[] = [];
      for (let i = 0; i < SEEDS; i++) {
        const name = `seed-${i}`;
        seeds.push(name);
        await create(name, i % 2 === 0 ? "m1" : "m2");
        for (let v = 2; v <= SEED_VERSIONS; v++) await update(name);
      }

      // Each worker updates only its own secrets (so its etags stay current) and reads any.
      let stop = false;
      let rotating = false;
      let callsDuringRotation = 0;
      const errors: string[] = [];
      const worker = async (w: number): Promise<void> => {
        const own: string[] = [];
        for (let i = 0; !stop && i < 100_000; i++) {
          const r = Math.random();
          const op = own.length === 0 || r < 0.2 ? "create" : r < 0.5 ? "update" : "read";
          try {
            if (op === "create") {
              const name = `w${w}-${i}`;
              await create(name, "m1");
              own.push(name);
            } else if (op === "update") {
              await update(own[Math.floor(Math.random() * own.length)]!);
            } else {
              const pool = Math.random() < 0.5 ? seeds : own;
              await read(pool[Math.floor(Math.random() * pool.length)]!);
            }
            if (rotating) callsDuringRotation++;
          } catch (err) {
            const e = err as Partial<ServiceError> & Error;
            errors.push(`${op}: ${e.code ?? ""} ${e.details ?? e.message}`);
          }
        }
      };
      const load = Promise.all([...Array(WORKERS).keys()].map(worker));

      rotating = true;
      const cli = await runCli(["keys", "rotate", "--data-dir", s.dataDir, "--batch", "25"]);
      rotating = false;
      stop = true;
      await load;

      expect(cli.stderr).toBe("");
      expect(cli.code).toBe(0);
      expect(errors).toEqual([]);
      expect(callsDuringRotation).toBeGreaterThan(0);
      const kekFile = JSON.parse(readFileSync(path.join(s.dataDir, "kek.json"), "utf8")) as { active: string; keys: { id: string }[] };
      const newKek = kekFile.active;
      expect(newKek).not.toBe(oldKek);
      expect(kekFile.keys.map((k) => k.id)).toEqual([oldKek, newKek]); // the old key stays for blobs written elsewhere
      const printed = /rewrapped (\d+) data keys to KEK (\S+)/.exec(cli.stdout);
      expect(printed?.[2]).toBe(newKek);
      expect(Number(printed?.[1])).toBeGreaterThanOrEqual(SEEDS * SEED_VERSIONS);
      expect(s.app.keyring.active.id).toBe(newKek);

      const db = new Database(path.join(s.dataDir, DB_FILE), { readonly: true });
      const rows = db
        .prepare("SELECT s.name, v.version, v.dek FROM secret_versions v JOIN secrets s ON s.uid = v.uid ORDER BY s.name, v.version")
        .all() as { name: string; version: number; dek: Buffer }[];
      db.close();
      expect(rows.length).toBeGreaterThanOrEqual(SEEDS * SEED_VERSIONS);
      expect(rows.filter((r) => kekIdOf(r.dek) !== newKek).map((r) => `${r.name}@${r.version}`)).toEqual([]);
      // Every row MAC is re-keyed too (secret rows, grant sets, version rows).
      expect(Number(/re-keyed (\d+) row MACs to KEK (\S+)/.exec(cli.stdout)?.[1])).toBeGreaterThanOrEqual(SEEDS * (2 + SEED_VERSIONS));
      const macDb = new Database(path.join(s.dataDir, DB_FILE), { readonly: true });
      const macs = macDb
        .prepare("SELECT 'secret ' || name AS row, mac FROM secrets UNION ALL SELECT 'grants ' || name, grants_mac FROM secrets UNION ALL SELECT 'version ' || uid || '@' || version, mac FROM secret_versions")
        .all() as { row: string; mac: Buffer | null }[];
      macDb.close();
      expect(macs.filter((m) => m.mac === null || macKekId(m.mac) !== newKek).map((m) => m.row)).toEqual([]);

      for (const r of rows) {
        const k = known.get(r.name)!;
        const got = await s.call<Secret>("getSecret", { mesh: k.mesh, name: r.name, version: r.version }, t);
        expect(valueOf(got)).toBe(k.values.get(r.version));
      }
    } finally {
      await s.stop();
    }
  });
});
