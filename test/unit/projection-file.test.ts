import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseMode, parseProjection, readProjectionFile } from "../../src/client/projection-file.js";
import { SecretdError } from "../../src/errors.js";

/** The INVALID_ARGUMENT message a parse must fail with. */
function failure(text: string, opts = {}): string {
  try {
    parseProjection(text, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(SecretdError);
    expect((err as SecretdError).code).toBe("INVALID_ARGUMENT");
    return (err as SecretdError).message;
  }
  throw new Error("expected the parse to fail");
}

describe("projection file parsing", () => {
  it("when the file mirrors ProjectSecretsRequest, then every field lands in the request", () => {
    const req = parseProjection(
      [
        "mesh: default",
        "items:",
        "  - name: db",
        "    keys:",
        "      - key: password",
        "        env: DB_PASSWORD",
        "        path: db/pw",
        '        mode: "0440"',
        "    optional: true",
        "    envPrefix: DB_",
        "  - name: api",
        "    env_prefix: APP_",
      ].join("\n"),
    );
    expect(req).toEqual({
      mesh: "default",
      items: [
        { name: "db", keys: [{ key: "password", env: "DB_PASSWORD", path: "db/pw", mode: 0o440 }], optional: true, envPrefix: "DB_", stage: "" },
        { name: "api", keys: [], optional: false, envPrefix: "APP_", stage: "" },
      ],
      knownRevision: "",
    });
  });

  it("when items and keys are given as bare strings, then they are shorthand for {name} and {key}", () => {
    const req = parseProjection("items:\n  - flags\n  - name: db\n    keys: [user, password]\n");
    expect(req.mesh).toBe("");
    expect(req.items.map((i) => i.name)).toEqual(["flags", "db"]);
    expect(req.items[1]?.keys.map((k) => k.key)).toEqual(["user", "password"]);
    expect(req.items[1]?.keys[0]).toEqual({ key: "user", env: "", path: "", mode: 0 });
  });

  it("when mode is an unquoted number with a leading zero, then it is octal; without one, decimal", () => {
    const modes = (m: string): number | undefined => parseProjection(`items:\n  - name: a\n    keys:\n      - key: k\n        mode: ${m}\n`).items[0]?.keys[0]?.mode;
    expect(modes("0440")).toBe(0o440);
    expect(modes("0o600")).toBe(0o600);
    expect(modes("288")).toBe(0o440);
    expect(modes('"400"')).toBe(0o400);
    expect(modes('"0o644"')).toBe(0o644);
  });

  it("when a mode is not a file mode, then the error names the field", () => {
    expect(() => parseMode("rw", "m")).toThrow(/^m: must be an octal string/);
    expect(() => parseMode("0800", "m")).toThrow(/^m: must be an octal string/);
    expect(() => parseMode(0o1777, "m")).toThrow("between 0001 and 0777");
    expect(() => parseMode(0, "m")).toThrow("between 0001 and 0777");
    expect(() => parseMode(1.5, "m")).toThrow("between 0001 and 0777");
    expect(failure("items:\n  - name: a\n    keys:\n      - key: k\n        mode: true\n")).toMatch(/^items\[0\]\.keys\[0\]\.mode: /);
  });

  it("when the structure is wrong, then INVALID_ARGUMENT names the bad field", () => {
    expect(failure("")).toMatch(/^projection: must be a mapping/);
    expect(failure("- a\n- b\n")).toMatch(/^projection: must be a mapping/);
    expect(failure("mesh: default\n")).toMatch(/^items: must be a non-empty list/);
    expect(failure("items: []\n")).toMatch(/^items: /);
    expect(failure("items: db\n")).toMatch(/^items: /);
    expect(failure("mesh: 5\nitems: [a]\n")).toMatch(/^mesh: must be a string/);
    expect(failure("itmes: [a]\n")).toMatch(/^itmes: unknown field/);
    expect(failure("items:\n  - name: a\n    env-prefix: X_\n")).toMatch(/^items\[0\]\.env-prefix: unknown field/);
    expect(failure("items:\n  - keys: [k]\n")).toMatch(/^items\[0\]\.name: is required/);
    expect(failure("items:\n  - name: 0123\n")).toMatch(/^items\[0\]\.name: must be a string.*quote it/);
    expect(failure("items:\n  - name: a\n    optional: maybe\n")).toMatch(/^items\[0\]\.optional: must be true or false/);
    expect(failure("items:\n  - name: a\n    keys: k\n")).toMatch(/^items\[0\]\.keys: must be a list/);
    expect(failure("items:\n  - name: a\n    keys:\n      - env: X\n")).toMatch(/^items\[0\]\.keys\[0\]\.key: is required/);
    expect(failure("items:\n  - name: a\n    keys:\n      - key: k\n        mdoe: 1\n")).toMatch(/^items\[0\]\.keys\[0\]\.mdoe: unknown field/);
    expect(failure("items:\n  - name: a\n    envPrefix: A_\n    env_prefix: B_\n")).toMatch(/^items\[0\]\.envPrefix: give envPrefix or env_prefix, not both/);
    expect(failure("items:\n  - [a]\n")).toMatch(/^items\[0\]: must be a secret name or a mapping/);    expect(failure("items:\n  - name: a\n    stage: pending\n")).toMatch(/^items\[0\]\.stage: must be current or previous/);
  });

  it("when an item names a stage, then it lands in the request", () => {
    expect(parseProjection("items:\n  - name: db\n    stage: previous\n").items[0]!.stage).toBe("previous");
  });

  it("when the text is not YAML, then the error says so", () => {
    expect(failure("items: [a\n")).toMatch(/^projection: not valid YAML/);
    expect(failure("items: [a]\nitems: [b]\n")).toMatch(/^projection: not valid YAML/);
  });

  it("when --mesh is given, then it fills a missing mesh and must agree with a present one", () => {
    expect(parseProjection("items: [a]\n", { mesh: "prod" }).mesh).toBe("prod");
    expect(parseProjection("mesh: prod\nitems: [a]\n", { mesh: "prod" }).mesh).toBe("prod");
    expect(parseProjection('mesh: ""\nitems: [a]\n').mesh).toBe("");
    expect(failure("mesh: prod\nitems: [a]\n", { mesh: "dev" })).toMatch(/^mesh: the file says "prod" but --mesh says "dev"/);
  });

  it("when reading a file, then errors name the file as well as the field", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-projection-"));
    try {
      const good = path.join(dir, "good.yaml");
      writeFileSync(good, "items: [a]\n");
      expect(readProjectionFile(good).items[0]?.name).toBe("a");
      const bad = path.join(dir, "bad.yaml");
      writeFileSync(bad, "items:\n  - name: a\n    keys:\n      - key: k\n        mode: 1000\n");
      expect(() => readProjectionFile(bad)).toThrow(`projection file ${bad}: items[0].keys[0].mode:`);
      expect(() => readProjectionFile(path.join(dir, "missing.yaml"))).toThrow(/cannot read it \(ENOENT\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
