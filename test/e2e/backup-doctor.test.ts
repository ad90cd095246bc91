/**
 * `secretd backup`, `restore` and `doctor` as a user runs them: the real CLI process on
 * the data dir of a real server. The backup is taken while the server takes writes; it
 * must restore to exactly the data of one moment, hold no value in clear and no KEK.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, chmodSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ListSecretsResponse, Secret } from "../../src/gen/secrets/v1/secrets.js";
import { runCli, type CliRun } from "../helpers/cli.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const SLOW = 90_000;
const VALUE_PREFIX = "backup-value-Zq7";

let root: string;

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), "secretd-backup-"));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function secretd(args: string[]): Promise<CliRun> {
  return runCli(args);
}

function value(i: number, version: number): string {
  return `${VALUE_PREFIX}-${i}-v${version}`;
}

async function listAll(server: TestServer, token: string): Promise<Secret[]> {
  const out: Secret[] = [];
  let pageToken = "";
  do {
    const page = await server.call<ListSecretsResponse>("listSecrets", { mesh: "m", pageSize: 1000, pageToken }, token);
    out.push(...page.secrets);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return out;
}

describe("backup and restore", () => {
  it("when a backup is taken under write load, then it passes integrity_check, holds no value and no KEK, and restores to the same data", async () => {
    const dataDir = path.join(root, "live");
    const server = await startTestServer({ dataDir });
    const token = await server.token({ tenant: "acme", sub: "ops", roles: ["tenant-admin"] });
    const created: number[] = [];
    let stop = false;
    let i = 0;
    // One writer, creating w-i and then updating w-(i-1): every write depends on the previous one.
    const writer = (async () => {
      while (!stop) {
        await server.call("createSecret", { mesh: "m", name: `w-${i}`, stringData: { v: value(i, 1) } }, token);
        created.push(i);
        if (i > 0) {
          const prev = await server.call<Secret>("getSecret", { mesh: "m", name: `w-${i - 1}` }, token);
          await server.call("updateSecret", { mesh: "m", name: `w-${i - 1}`, etag: prev.etag, stringData: { v: value(i - 1, 2) }, updateMask: ["data"] }, token);
        }
        i++;
      }
    })();
    try {
      while (created.length < 20) await new Promise((r) => setTimeout(r, 20));
      const before = created.length;
      const file = path.join(root, "live.db");
      const b = await secretd(["backup", "--data-dir", dataDir, file]);
      const after = created.length;
      expect(b.err).toBe("");
      expect(b.status).toBe(0);
      expect(b.out).toMatch(/^backed up \d+ secrets, \d+ versions/);
      expect(after).toBeGreaterThan(before); // the server took writes while the copy ran
      stop = true;
      await writer;

      const bytes = readFileSync(file);
      expect(bytes.includes(Buffer.from(VALUE_PREFIX))).toBe(false);
      const kek = JSON.parse(readFileSync(path.join(dataDir, "kek.json"), "utf8")) as { keys: Array<{ key: string }> };
      for (const k of kek.keys) {
        expect(bytes.includes(Buffer.from(k.key, "base64"))).toBe(false);
        expect(bytes.includes(Buffer.from(k.key))).toBe(false);
      }
      const db = new Database(file, { readonly: true });
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
      db.close();

      const restoredDir = path.join(root, "restored");
      const r = await secretd(["restore", "--data-dir", restoredDir, file]);
      expect(r.err).toContain("no KEK file"); // the warning: the KEK travels separately
      expect(r.status).toBe(0);
      copyFileSync(path.join(dataDir, "kek.json"), path.join(restoredDir, "kek.json"));
      copyFileSync(path.join(dataDir, "jwt-dev.key"), path.join(restoredDir, "jwt-dev.key"));
      const doctor = await secretd(["doctor", "--data-dir", restoredDir]);
      expect(doctor.out).toContain("no problems found");
      expect(doctor.status).toBe(0);

      const restored = await startTestServer({ dataDir: restoredDir });
      try {
        const got = await listAll(restored, token);
        const names = got.map((s) => Number(s.name.slice(2))).sort((x, y) => x - y);
        // One moment of a sequential writer: w-0 … w-(n-1), nothing missing in between.
        expect(names.length).toBeGreaterThanOrEqual(before);
        expect(names).toEqual(names.map((_, k) => k));
        for (const s of got) {
          const n = Number(s.name.slice(2));
          const r2 = await restored.call<Secret>("getSecret", { mesh: "m", name: s.name }, token);
          const original = await server.call<Secret>("getSecret", { mesh: "m", name: s.name, version: r2.version }, token);
          expect(r2.uid).toBe(original.uid);
          expect(Buffer.from(r2.data.v!).toString()).toBe(value(n, r2.version));
          expect(Buffer.from(original.data.v!).toString()).toBe(value(n, r2.version));
        }
        // A snapshot between two writes: the newest secret lacks its update, and the one
        // before it may too (created, but its predecessor's update not yet committed).
        const last = names.length - 1;
        const v1 = got.filter((s) => s.version === 1).map((s) => Number(s.name.slice(2))).sort((x, y) => x - y);
        expect([[last], [last - 1, last]]).toContainEqual(v1);
      } finally {
        await restored.stop();
      }
    } finally {
      stop = true;
      await writer.catch(() => {});
      await server.stop();
    }
  }, SLOW);

  it("when restore meets a live server or a data dir with secrets, then it refuses (only --force overrides the second)", async () => {
    const dataDir = path.join(root, "refuse");
    const server = await startTestServer({ dataDir });
    const token = await server.token({ tenant: "acme", sub: "ops", roles: ["tenant-admin"] });
    await server.call("createSecret", { name: "keep-me", stringData: { v: "original" } }, token);
    const file = path.join(root, "refuse.db");
    expect((await secretd(["backup", "--data-dir", dataDir, file])).status).toBe(0);
    const again = await secretd(["backup", "--data-dir", dataDir, file]);
    expect(again.status).toBe(2);
    expect(again.err).toContain("exists (add --force");

    const live = await secretd(["restore", "--data-dir", dataDir, file, "--force"]);
    expect(live.status).toBe(1);
    expect(live.err).toContain("is in use");
    await server.call("createSecret", { name: "after-backup", stringData: { v: "later" } }, token);
    await server.stop();

    const full = await secretd(["restore", "--data-dir", dataDir, file]);
    expect(full.status).toBe(1);
    expect(full.err).toContain("is not empty");
    const forced = await secretd(["restore", "--data-dir", dataDir, file, "--force"]);
    expect(forced.err).toBe("");
    expect(forced.status).toBe(0);
    const back = await startTestServer({ dataDir });
    try {
      const names = (await back.call<ListSecretsResponse>("listSecrets", {}, token)).secrets.map((s) => s.name);
      expect(names).toEqual(["keep-me"]);
    } finally {
      await back.stop();
    }
  }, SLOW);
});

describe("doctor", () => {
  it("when a stored blob is tampered with and the KEK file is 0644, then doctor names both and exits 1", async () => {
    const dataDir = path.join(root, "doctor");
    const server = await startTestServer({ dataDir });
    const token = await server.token({ tenant: "acme", sub: "ops", roles: ["tenant-admin"] });
    for (const n of ["alpha", "bravo", "charlie"]) await server.call("createSecret", { mesh: "m", name: n, stringData: { v: `doctor-value-${n}` } }, token);
    const healthy = await secretd(["doctor", "--data-dir", dataDir]); // next to the running server
    expect(healthy.out).toContain("opened 3 of 3 stored versions");
    expect(healthy.status).toBe(0);
    await server.stop();

    const db = new Database(path.join(dataDir, "secretd.db"));
    const uid = db.prepare("SELECT uid FROM secrets WHERE name = 'bravo'").pluck().get() as string;
    const payload = db.prepare("SELECT payload FROM secret_versions WHERE uid = ?").pluck().get(uid) as Buffer;
    payload[payload.length - 1]! ^= 0x01;
    db.prepare("UPDATE secret_versions SET payload = ? WHERE uid = ?").run(payload, uid);
    db.close();
    chmodSync(path.join(dataDir, "kek.json"), 0o644);

    const r = await secretd(["doctor", "--data-dir", dataDir]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/^FAIL +KEK file .*kek\.json: mode 0644/m);
    expect(r.out).toMatch(new RegExp(`^FAIL +does not open: tenant "acme" mesh "m" secret "bravo" version 1 \\(uid ${uid}\\): DATA_LOSS`, "m"));
    expect(r.out).toContain("opened 2 of 3 stored versions");
    expect(r.out).toContain("integrity_check ok");
    expect(r.out).toContain("2 problems found");
    expect(r.out + r.err).not.toContain("doctor-value-");
  }, SLOW);

  it("when settings come from a flag, the environment and a YAML file, then doctor echoes each with its source and masks URL credentials", async () => {
    const dataDir = path.join(root, "echo");
    const cfg = path.join(root, "secretd.yaml");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(cfg, `dataDir: ${dataDir}\njwtJwksUrl: https://svc:Hunter2-pw@idp.example/jwks?access_token=Tok-123\nlogLevel: warn\n`);
    const r = await runCli(["doctor", "--config", cfg, "--max-versions", "5"], { env: { SECRETD_TENANT_CLAIM: "org" } });
    expect(r.out).toMatch(/^ {2}maxVersions +5 {2}\(flag\)$/m);
    expect(r.out).toMatch(/^ {2}tenantClaim +org {2}\(env SECRETD_TENANT_CLAIM\)$/m);
    expect(r.out).toMatch(/^ {2}logLevel +warn {2}\(file\)$/m);
    expect(r.out).toMatch(/^ {2}jwtJwksUrl +https:\/\/svc:\*\*\*@idp\.example\/jwks\?\*\*\* {2}\(file\)$/m);
    expect(r.out + r.err).not.toContain("Hunter2-pw");
    expect(r.out + r.err).not.toContain("Tok-123");
  }, SLOW);

  it("when the YAML file has a bad value or an unknown key, then doctor (like serve) names the setting", async () => {
    const { writeFileSync } = await import("node:fs");
    const cfg = path.join(root, "bad.yaml");
    writeFileSync(cfg, "maxVersions: 0\n");
    const r = await runCli(["doctor", "--config", cfg]);
    expect(r.status).toBe(1);
    expect(r.out).toContain("FAIL  configuration: INVALID_ARGUMENT: invalid configuration --max-versions / SECRETD_MAX_VERSIONS");
    writeFileSync(cfg, "max-versions: 3\n");
    const s = await runCli(["serve", "--config", cfg]);
    expect(s.status).toBe(2);
    expect(s.err).toContain('unknown setting "max-versions" (keys are camelCase: maxVersions)');
  }, SLOW);
});
