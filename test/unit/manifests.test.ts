import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { checkDesired, loadManifests, parseInput } from "../../src/cli/manifests/read-manifests.js";
import { planChange } from "../../src/cli/manifests/plan.js";
import { Secret } from "../../src/gen/secrets/v1/secrets.js";
import { invalidMessage } from "../helpers/errors.js";

const VALUE = "Sup3r-Secret-Value";

function parse(text: string) {
  return parseInput({ name: "m.yaml", text, baseDir: "/" }).map(checkDesired);
}

describe("manifest parsing", () => {
  it("when kubectl's last-applied-configuration annotation is present, then it is dropped (it holds the values in clear)", () => {
    const [d] = parse(
      `apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{"stringData":{"p":"${VALUE}"}}'\n    team: x\nimmutable: "true"\nstringData:\n  p: ${VALUE}\n`,
    );
    expect(d?.annotations).toEqual({ team: "x" });
    expect(d?.immutable).toBe(true);
  });

  it("when a document does not parse, then the error gives its position, not the text of the line", () => {
    const msg = invalidMessage(() => parse(`apiVersion: v1\nkind: Secret\n---\nstringData: {p: "${VALUE}"\n  x: [\n`));
    expect(msg).toMatch(/^m\.yaml: document 2: not valid YAML or JSON at line \d+, column \d+$/);
    expect(msg).not.toContain(VALUE);
  });

  it("when a Kuma GlobalSecret names a mesh, or a global-secret type carries kuma.io/mesh, then it is refused", () => {
    expect(invalidMessage(() => parse("type: GlobalSecret\nname: g\nmesh: default\ndata: dGVzdAo=\n"))).toBe("m.yaml: document 1: mesh: a GlobalSecret belongs to no mesh");
    expect(
      invalidMessage(() => parse("apiVersion: v1\nkind: Secret\nmetadata:\n  name: g\n  labels:\n    kuma.io/mesh: m\ntype: system.kuma.io/global-secret\n")),
    ).toBe('m.yaml: document 1: metadata.labels["kuma.io/mesh"]: a system.kuma.io/global-secret belongs to no mesh');
  });

  it("when a List item is bad, then the error names the item's field", () => {
    const msg = invalidMessage(() => parse('{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"ok"}},{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"data":{"k":7}}]}'));
    expect(msg).toBe('m.yaml: document 1: items[1].data["k"]: must be a base64 string');
  });

  it("when a Nanocl Env entry is given twice or a Tls secret lacks its key, then the entry is named", () => {
    expect(invalidMessage(() => parse("ApiVersion: v0.12\nSecrets:\n- Key: e\n  Kind: Env\n  Data:\n  - A=1\n  - A=2\n"))).toBe('m.yaml: document 1: Secrets[0].Data[1]: "A" is given twice');
    expect(invalidMessage(() => parse("ApiVersion: v0.12\nSecrets:\n- Key: t\n  Kind: Tls\n  Data:\n    Certificate: x\n"))).toBe('m.yaml: document 1: Secrets[0].Data["CertificateKey"]: is required');
  });

  it("when a Nanocl Env entry is NAME=VALUE, then the key is NAME and the value VALUE (what a cargo gets), and a bad NAME is named by entry", () => {
    const [d] = parse(`ApiVersion: v0.12\nSecrets:\n- Key: e\n  Kind: Env\n  Data:\n  - MY_ENV=${VALUE}\n  - EMPTY=\n  - EQ=a=b\n`);
    expect(d?.type).toBe("nanocl.io/env");
    expect(Object.fromEntries(Object.entries(d?.data ?? {}).map(([k, v]) => [k, v.toString("utf8")]))).toEqual({ MY_ENV: VALUE, EMPTY: "", EQ: "a=b" });
    const msg = invalidMessage(() => parse(`ApiVersion: v0.12\nSecrets:\n- Key: e\n  Kind: Env\n  Data:\n  - 1BAD=${VALUE}\n`));
    expect(msg).toBe("m.yaml: document 1: Secrets[0].Data[0]: NAME must be an environment name matching [A-Za-z_][A-Za-z0-9_]*");
  });

  it("when a Nanocl Kind is one of the user's own, then it is type nanocl.io/<kind lower-cased> with Data's keys; Env and Tls match in any case", () => {
    const [d] = parse("ApiVersion: v0.12\nSecrets:\n- Key: c\n  Kind: MyKind\n  Data:\n    token: abc\n    port: 8080\n");
    expect(d?.type).toBe("nanocl.io/mykind");
    expect(Object.keys(d?.data ?? {}).sort()).toEqual(["port", "token"]);
    expect(d?.data["port"]?.toString()).toBe("8080");
    expect(parse("ApiVersion: v0.12\nSecrets:\n- Key: e\n  Kind: ENV\n  Data:\n  - A=1\n")[0]?.type).toBe("nanocl.io/env");
    expect(parse("ApiVersion: v0.12\nSecrets:\n- Key: e\n  Kind: nanocl.io/env\n  Data:\n  - A=1\n")[0]?.data["A"]?.toString()).toBe("1");
    expect(parse("ApiVersion: v0.12\nSecrets:\n- Key: c\n  Kind: nanocl.io/MyKind\n  Data:\n    k: v\n")[0]?.type).toBe("nanocl.io/mykind");
    expect(invalidMessage(() => parse("ApiVersion: v0.12\nSecrets:\n- Key: c\n  Kind: MyKind\n  Data:\n  - A=1\n"))).toBe("m.yaml: document 1: Secrets[0].Data: must be a mapping of keys to values");
    expect(invalidMessage(() => parse("ApiVersion: v0.12\nSecrets:\n- Key: c\n  Kind: my kind\n  Data: {}\n"))).toMatch(/^m\.yaml: document 1: Secrets\[0\]\.Kind: must be Env, Tls or a kind of your own/);
  });

  it("when two inputs declare the same secret in the same scope, then the second is refused naming the first", () => {
    const a = { name: "a.yaml", text: "type: Secret\nname: s\ndata: dGVzdAo=\n", baseDir: "/" };
    const b = { name: "b.yaml", text: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n", baseDir: "/" };
    expect(invalidMessage(() => loadManifests([a, b], "m"))).toBe('b.yaml: document 1: secret "s" in mesh "m" is also declared by a.yaml: document 1');
    expect(invalidMessage(() => loadManifests([a], "Bad_Mesh"))).toMatch(/^--mesh: must be empty or a DNS-1123 label/);
    expect(loadManifests([a, { ...b, text: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  labels:\n    kuma.io/mesh: other\n" }], "m")).toHaveLength(2);
  });

  it("when a Kuma universal Secret has no mesh: and no --mesh is given, then it is refused (as kumactl does), never put in the global scope", () => {
    const a = { name: "a.yaml", text: "type: Secret\nname: s\ndata: dGVzdAo=\n", baseDir: "/" };
    expect(invalidMessage(() => loadManifests([a], ""))).toBe(
      "a.yaml: document 1: mesh: is required: a Kuma Secret belongs to a mesh (kumactl refuses one without it); add mesh: (e.g. default) or pass --mesh, or make it a GlobalSecret for the global scope",
    );
    const list = { name: "l.yaml", text: "items:\n- type: Secret\n  name: s\n  data: dGVzdAo=\n", baseDir: "/" };
    expect(invalidMessage(() => loadManifests([list], ""))).toMatch(/^l\.yaml: document 1: items\[0\]\.mesh: is required: a Kuma Secret belongs to a mesh/);
    expect(invalidMessage(() => loadManifests([{ ...a, text: 'type: Secret\nname: s\nmesh: ""\ndata: dGVzdAo=\n' }], "m"))).toBe(
      "a.yaml: document 1: mesh: cannot be empty: a Secret belongs to a mesh (a GlobalSecret is the global scope's kind)",
    );
    const [d] = loadManifests([a], "payments");
    expect(d?.mesh ?? "payments").toBe("payments");
    expect(loadManifests([{ ...a, text: "type: GlobalSecret\nname: g\ndata: dGVzdAo=\n" }], "")[0]?.mesh).toBe("");
  });
});

describe("DataOS manifests", () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "secretd-manifests-"));
  const base = path.join(root, "manifests");
  mkdirSync(path.join(base, "sub"), { recursive: true });
  writeFileSync(path.join(root, "outside.key"), VALUE);
  writeFileSync(path.join(base, "sub", "key.json"), '{"k":1}');
  symlinkSync(path.join(root, "outside.key"), path.join(base, "out-link"));
  symlinkSync(path.join(base, "sub", "key.json"), path.join(base, "in-link"));
  symlinkSync(root, path.join(base, "up"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const manifest = (files: string, kind = "secret"): string => `name: s\nversion: v1\ntype: ${kind}\n${kind}:\n  type: key-value\n  data:\n    u: x\n  files:\n${files}`;
  const load = (text: string) => parseInput({ name: "m.yaml", text, baseDir: base }).map(checkDesired);

  it("when secret.files names a regular file inside the manifest's directory (directly or through a symlink that stays inside), then its bytes are a value", () => {
    const [d] = load(manifest("    key_json: sub/key.json\n    linked: in-link\n"));
    expect(d?.data["key_json"]?.toString()).toBe('{"k":1}');
    expect(d?.data["linked"]?.toString()).toBe('{"k":1}');
  });

  it.each([
    ["/etc/passwd", "must be a path relative to the manifest's directory, not an absolute one"],
    ["../outside.key", "must not contain a '..' part: only files inside the manifest's directory are read"],
    ["sub/../../outside.key", "must not contain a '..' part: only files inside the manifest's directory are read"],
    ["out-link", "leads outside the manifest's directory (through a symlink): only files inside it are read"],
    ["up/outside.key", "leads outside the manifest's directory (through a symlink): only files inside it are read"],
    ["sub", "is not a regular file"],
    ["missing", "cannot read it (ENOENT)"],
  ])("when secret.files names %j, then it is refused naming the entry, and nothing is read", (p, why) => {
    const msg = invalidMessage(() => load(manifest(`    stolen: ${p}\n`)));
    expect(msg).toBe(`m.yaml: document 1: secret.files["stolen"]: ${JSON.stringify(p)} ${why}`);
    expect(msg).not.toContain(VALUE);
  });

  it("when a file is larger than a secret may hold, or the files together are, then it is refused by its size before it is read", () => {
    const big = path.join(base, "big.bin");
    writeFileSync(big, "");
    truncateSync(big, 2 * 1024 * 1024);
    expect(invalidMessage(() => load(manifest("    big: big.bin\n")))).toBe(
      'm.yaml: document 1: secret.files["big"]: "big.bin" is 2097152 bytes, more than the 1048576 bytes the secret may still hold (1 MiB in all)',
    );
    const half = path.join(base, "half.bin");
    writeFileSync(half, "");
    truncateSync(half, 600 * 1024);
    expect(invalidMessage(() => load(manifest("    a: half.bin\n    b: half.bin\n")))).toMatch(/^m\.yaml: document 1: secret\.files\["b"\]: "half\.bin" is 614400 bytes, more than the 434176 bytes/);
  });

  it("when the manifest is a DataOS instance-secret, then its instance-secret: block is read as a secret: block is", () => {
    const [d] = load(manifest("    key_json: sub/key.json\n", "instance-secret"));
    expect(d).toMatchObject({ name: "s", type: "Opaque", format: "DataOS instance-secret", stringData: { u: "x" }, annotations: { "dataos.info/secret-type": "key-value" } });
    expect(Object.keys(d?.data ?? {})).toEqual(["key_json"]);
    expect(invalidMessage(() => load("name: s\nversion: v1\ntype: instance-secret\nsecret:\n  data:\n    u: x\n"))).toBe(
      "m.yaml: document 1: instance-secret: is required: the instance-secret: block (or spec:)",
    );
  });
});

describe("planChange", () => {
  const [desired] = parse("apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n  labels:\n    app: web\nstringData:\n  p: one\n");
  const existing = Secret.fromPartial({ name: "a", type: "Opaque", labels: { app: "web" }, annotations: { "secretd.io/not-after": "2030-01-01T00:00:00Z" }, data: { p: Buffer.from("one") }, etag: "e1" });

  it("when the server holds the same values and metadata (its own secretd.io/ annotations aside), then unchanged", () => {
    expect(planChange(desired!, "", existing).action).toBe("unchanged");
  });

  it("when a value, a label or the key set differs, then configured with exactly the changed fields", () => {
    expect(planChange(desired!, "", { ...existing, data: { p: Buffer.from("two") } }).changed).toEqual(["data"]);
    expect(planChange(desired!, "", { ...existing, data: { p: Buffer.from("one"), q: Buffer.from("") } }).changed).toEqual(["data"]);
    expect(planChange(desired!, "", { ...existing, labels: {}, description: "d" }).changed).toEqual(["description", "labels"]);
  });

  it("when the type or immutability would change, or an immutable secret differs, then FAILED_PRECONDITION before any write", () => {
    expect(() => planChange(desired!, "", { ...existing, type: "kubernetes.io/basic-auth" })).toThrow("type cannot change from kubernetes.io/basic-auth to Opaque");
    expect(() => planChange(desired!, "", { ...existing, immutable: true })).toThrow("immutable cannot change from true to false");
    expect(() => planChange({ ...desired!, immutable: true }, "", { ...existing, immutable: true, data: {} })).toThrow("is immutable and its data differ");
    expect(planChange({ ...desired!, immutable: true }, "", { ...existing, immutable: true }).action).toBe("unchanged");
  });
});
