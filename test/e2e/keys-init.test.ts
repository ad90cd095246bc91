/**
 * `secretd keys init --kek-file PATH` as the README shows it: the real CLI creates the
 * keyring file (0600, missing parent directories 0700) that `serve --kek-file PATH` then
 * starts with; a second init refuses (exit 2) and leaves the file as it was. And doctor's
 * advice for a missing KEK file: a new key only for an empty database, never for stored
 * (restored) data, which a new key cannot open.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { startCli, waitFor } from "../helpers/cli-process.js";
import { startTestServer } from "../helpers/server.js";

const SLOW = 90_000;
let root: string;

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), "secretd-keys-init-"));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SECRETD_")));
}

describe("keys init", () => {
  it("when keys init creates the KEK file, then it is 0600 in a new 0700 directory, serve --kek-file starts with it, and a second init refuses leaving the file unchanged", async () => {
    const kekFile = path.join(root, "etc", "secretd", "kek.json");
    const init = await runCli(["keys", "init", "--kek-file", kekFile]);
    expect(init.err).toBe("");
    expect(init.status).toBe(0);
    const doc = JSON.parse(readFileSync(kekFile, "utf8")) as { version: number; active: string; keys: Array<{ id: string; key: string; created: string }> };
    expect(doc.version).toBe(1);
    expect(doc.keys).toHaveLength(1);
    expect(doc.keys[0]!.id).toBe(doc.active);
    expect(Buffer.from(doc.keys[0]!.key, "base64")).toHaveLength(32);
    expect(init.out).toContain(`created KEK file ${kekFile} (mode 0600) with KEK ${doc.active}`);
    expect(init.out).not.toContain(doc.keys[0]!.key);
    expect(statSync(kekFile).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(kekFile)).mode & 0o777).toBe(0o700);
    expect(existsSync(`${kekFile}.tmp`)).toBe(false);

    const dataDir = path.join(root, "data");
    const server = startCli(["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--kek-file", kekFile], { ...cleanEnv(), SECRETD_LOG_LEVEL: "info" });
    try {
      await waitFor("secretd serving", () => server.stdout().includes('"msg":"secretd serving"') || server.child.exitCode !== null);
      expect(server.child.exitCode, server.stderr()).toBeNull();
      expect(existsSync(path.join(dataDir, "kek.json"))).toBe(false);
    } finally {
      await server.stop();
    }

    const before = readFileSync(kekFile);
    const again = await runCli(["keys", "init", "--kek-file", kekFile]);
    expect(again.status).toBe(2);
    expect(again.err).toContain(`secretd: INVALID_ARGUMENT: --kek-file: KEK file ${kekFile} already exists`);
    expect(readFileSync(kekFile).equals(before)).toBe(true);
    expect(statSync(kekFile).mode & 0o777).toBe(0o600);
    expect(existsSync(`${kekFile}.tmp`)).toBe(false);
  }, SLOW);

  it("when the KEK file is missing, then doctor advises keys init for an empty database and restoring the keyring for one that holds data", async () => {
    const empty = path.join(root, "empty");
    const fresh = await startTestServer({ dataDir: empty });
    await fresh.stop();
    unlinkSync(path.join(empty, "kek.json"));
    const e = await runCli(["doctor", "--data-dir", empty]);
    expect(e.status).toBe(1);
    expect(e.out).toContain(`secretd keys init --kek-file ${path.join(empty, "kek.json")}`);

    const restored = path.join(root, "restored");
    const server = await startTestServer({ dataDir: restored });
    const token = await server.token({ tenant: "acme", sub: "ops", roles: ["tenant-admin"] });
    await server.call("createSecret", { mesh: "m", name: "db", stringData: { v: "keys-init-value" } }, token);
    await server.stop();
    unlinkSync(path.join(restored, "kek.json"));
    const r = await runCli(["doctor", "--data-dir", restored]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/^FAIL +keyring: no KEK file at .*kek\.json, and the database holds 1 sealed version: put the keyring they were sealed under there/m);
    expect(r.out).not.toMatch(/^FAIL +keyring:.*secretd keys init --kek-file/m);
    expect(r.out + r.err).not.toContain("generated");
  }, SLOW);
});
