/**
 * `secretd apply` through the real CLI process against the real server. Fixtures are the
 * formats' own documentation examples (test/fixtures/manifests). Every format is applied
 * twice: the second run must say `unchanged` and make no new version.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ListSecretsResponse, Secret } from "../../src/gen/secrets/v1/secrets.js";
import { MAIN, runCli, type CliRun } from "../helpers/cli.js";
import { hasOpenssl } from "../helpers/openssl.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const FIXTURES = path.resolve("test/fixtures/manifests");
const SLOW = 60_000;

let server: TestServer;
let dir: string;
const tokens = new Set<string>();

beforeAll(async () => {
  server = await startTestServer();
  dir = mkdtempSync(path.join(os.tmpdir(), "secretd-apply-"));
});

afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A tenant-admin token of a tenant of its own, so formats never see each other's secrets. */
async function tenantToken(tenant: string): Promise<string> {
  const t = await server.token({ tenant, sub: `${tenant}-admin`, roles: ["tenant-admin"] });
  tokens.add(t);
  return t;
}

async function apply(token: string, args: string[], stdin?: string): Promise<CliRun> {
  const r = await runCli(["apply", ...args], { env: { SECRETD_SERVER: server.address, SECRETD_TOKEN: token }, ...(stdin === undefined ? {} : { stdin }) });
  for (const t of tokens) expect(r.out + r.err).not.toContain(t);
  return r;
}

function get(token: string, mesh: string, name: string): Promise<Secret> {
  return server.call<Secret>("getSecret", { mesh, name }, token);
}

async function names(token: string, mesh: string): Promise<string[]> {
  return (await server.call<ListSecretsResponse>("listSecrets", { mesh }, token)).secrets.map((s) => s.name);
}

function text(s: Secret, key: string): string | undefined {
  const v = s.data[key];
  return v === undefined ? undefined : Buffer.from(v).toString("utf8");
}

function fixture(name: string): string {
  return path.join(FIXTURES, name);
}

/** Applies `file` twice; the first run must create `expected`, the second leave them unchanged. */
async function applyTwice(token: string, file: string, expected: string[]): Promise<void> {
  const first = await apply(token, ["-f", file]);
  expect(first.err).toBe("");
  expect(first.status).toBe(0);
  expect(first.out).toBe(expected.map((n) => `secret/${n} created\n`).join(""));
  const second = await apply(token, ["-f", file]);
  expect(second.err).toBe("");
  expect(second.status).toBe(0);
  expect(second.out).toBe(expected.map((n) => `secret/${n} unchanged\n`).join(""));
}

describe("secretd apply: each format applied twice", () => {
  it("when the Kubernetes documentation's multi-document manifest is applied twice, then it is created, then unchanged with no new version", async () => {
    const t = await tenantToken("k8s");
    await applyTwice(t, fixture("kubernetes.yaml"), ["secret-basic-auth", "bootstrap-token-5emitj", "dotfile-secret"]);
    const basic = await get(t, "", "secret-basic-auth");
    expect(basic).toMatchObject({ type: "kubernetes.io/basic-auth", version: 1 });
    expect(text(basic, "username")).toBe("admin");
    expect(text(basic, "password")).toBe("t0p-Secret");
    const boot = await get(t, "", "bootstrap-token-5emitj");
    expect(boot.type).toBe("bootstrap.kubernetes.io/token");
    expect(text(boot, "token-id")).toBe("5emitj");
    expect((await get(t, "", "dotfile-secret")).keys).toEqual([".secret-file"]);
  }, SLOW);

  it("when a kubectl-style JSON List is applied twice, then its items are created (stringData merged, labels and annotations kept), then unchanged", async () => {
    const t = await tenantToken("k8slist");
    await applyTwice(t, fixture("kubernetes-list.json"), ["secret-sa-sample", "mysecret"]);
    const my = await get(t, "", "mysecret");
    expect(my.labels).toEqual({ app: "web" });
    expect(text(my, "config.yaml")).toContain('apiUrl: "https://my.api.com/api/v1"');
    const sa = await get(t, "", "secret-sa-sample");
    expect(sa.type).toBe("kubernetes.io/service-account-token");
    expect(sa.annotations["kubernetes.io/service-account.name"]).toBe("sa-name");
  }, SLOW);

  it("when Kuma universal Secret and GlobalSecret are applied twice, then the first lands in its mesh and the second in the global scope, the value under key `value`", async () => {
    const t = await tenantToken("kuma");
    await applyTwice(t, fixture("kuma-universal.yaml"), ["sample-secret", "sample-global-secret"]);
    const meshed = await get(t, "default", "sample-secret");
    expect(meshed).toMatchObject({ mesh: "default", type: "Opaque", keys: ["value"] });
    expect(text(meshed, "value")).toBe("test\n");
    expect(await names(t, "")).toEqual(["sample-global-secret"]);
    // The same two as `kumactl get secrets -o yaml` lists them: unchanged.
    const listed = "items:\n- type: Secret\n  mesh: default\n  name: sample-secret\n  creationTime: \"2026-01-01T00:00:00Z\"\n  data: dGVzdAo=\n- type: GlobalSecret\n  name: sample-global-secret\n  data: dGVzdAo=\nnext: null\ntotal: 2\n";
    const again = await apply(t, ["-f", "-"], listed);
    expect(again.err).toBe("");
    expect(again.out).toBe("secret/sample-secret unchanged\nsecret/sample-global-secret unchanged\n");
  }, SLOW);

  it("when Kuma's Kubernetes form is applied twice, then kuma.io/mesh picks the mesh and system.kuma.io/global-secret the global scope, both Opaque", async () => {
    const t = await tenantToken("kumak8s");
    await applyTwice(t, fixture("kuma-kubernetes.yaml"), ["sample-secret", "sample-global-secret"]);
    const meshed = await get(t, "default", "sample-secret");
    expect(meshed).toMatchObject({ mesh: "default", type: "Opaque", labels: {} });
    expect(text(meshed, "value")).toBe("test\n");
    expect((await get(t, "", "sample-global-secret")).type).toBe("Opaque");
    // The universal form of the same secrets is the same thing: nothing to do.
    const again = await apply(t, ["-f", fixture("kuma-universal.yaml")]);
    expect(again.out).toBe("secret/sample-secret unchanged\nsecret/sample-global-secret unchanged\n");
  }, SLOW);

  it("when the Nanocl Env Statefile is applied twice, then each NAME=VALUE entry is key NAME with value VALUE, and get -o env and run give MY_ENV=MY_VALUE", async () => {
    const t = await tenantToken("nanocl");
    await applyTwice(t, fixture("nanocl-env.yml"), ["env.super-secret"]);
    const s = await get(t, "", "env.super-secret");
    expect(s).toMatchObject({ type: "nanocl.io/env", keys: ["MY_ENV", "MY_ENV1"], version: 1 });
    expect(text(s, "MY_ENV")).toBe("MY_VALUE");
    const cli = { env: { SECRETD_SERVER: server.address, SECRETD_TOKEN: t } };
    const env = await runCli(["get", "env.super-secret", "-o", "env"], cli);
    expect(env.err).toBe("");
    expect(env.out).toBe("MY_ENV=MY_VALUE\nMY_ENV1=MY_VALUE1\n");
    const projection = path.join(dir, "nanocl-projection.yaml");
    writeFileSync(projection, "items:\n  - name: env.super-secret\n");
    const run = await runCli(["run", "--projection", projection, "--", process.execPath, "-e", "console.log(process.env.MY_ENV + ' ' + process.env.MY_ENV1)"], cli);
    expect(run.err).toBe("");
    expect(run.out).toBe("MY_VALUE MY_VALUE1\n");
  }, SLOW);

  it("when a Statefile declares a Nanocl kind of its own, then it is a nanocl.io/<kind> secret with its Data mapping as keys", async () => {
    const t = await tenantToken("nanoclcustom");
    const file = path.join(dir, "custom.Statefile.yml");
    writeFileSync(file, "ApiVersion: v0.12\nSecrets:\n- Key: registry.creds\n  Kind: Registry-Auth\n  Data:\n    username: robot\n    port: 5000\n");
    await applyTwice(t, file, ["registry.creds"]);
    const s = await get(t, "", "registry.creds");
    expect(s).toMatchObject({ type: "nanocl.io/registry-auth", keys: ["port", "username"] });
    expect(text(s, "port")).toBe("5000");
  }, SLOW);

  it.runIf(hasOpenssl)("when the Nanocl Tls Statefile (the documentation's shape, a real certificate) is applied twice, then it is a nanocl.io/tls secret", async () => {
    const t = await tenantToken("nanocltls");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path.join(dir, "n.key"), "-out", path.join(dir, "n.crt"), "-days", "30", "-subj", "/CN=nanocl"], { stdio: "ignore" });
    const indent = (pem: string): string => pem.trimEnd().split("\n").map((l) => `      ${l}`).join("\n");
    const statefile = [
      "ApiVersion: v0.12",
      "",
      "Secrets:",
      "- Key: cert.my-certificate",
      "  Kind: Tls",
      "  Data:",
      "    Certificate: |",
      indent(readFileSync(path.join(dir, "n.crt"), "utf8")),
      "    CertificateKey: |",
      indent(readFileSync(path.join(dir, "n.key"), "utf8")),
      "",
    ].join("\n");
    const file = path.join(dir, "Statefile.yml");
    writeFileSync(file, statefile);
    await applyTwice(t, file, ["cert.my-certificate"]);
    const s = await get(t, "", "cert.my-certificate");
    expect(s).toMatchObject({ type: "nanocl.io/tls", keys: ["Certificate", "CertificateKey"] });
    expect(s.annotations["secretd.io/not-after"]).toMatch(/^\d{4}-/);
  }, SLOW);

  it("when the DataOS documentation's secret is applied twice, then data becomes values, description is kept and type/acl are annotations", async () => {
    const t = await tenantToken("dataos");
    await applyTwice(t, fixture("dataos.yaml"), ["testing"]);
    const s = await get(t, "", "testing");
    expect(s).toMatchObject({ type: "Opaque", description: "a very special test secret", version: 1 });
    expect(s.annotations).toEqual({ "dataos.info/secret-type": "key-value", "dataos.info/acl": "rw" });
    expect(text(s, "password")).toBe("secure_password");
  }, SLOW);

  it("when a DataOS instance-secret (with a file beside it) is applied twice, then it is created, then unchanged", async () => {
    const t = await tenantToken("dataosinstance");
    const sub = mkdtempSync(path.join(dir, "instance-"));
    writeFileSync(path.join(sub, "value1.json"), '{"type":"service_account"}');
    const file = path.join(sub, "instance-secret.yaml");
    writeFileSync(file, "name: depotsecret-r\nversion: v1\ntype: instance-secret\nlayer: user\ninstance-secret:\n  type: key-value-properties\n  acl: r\n  data:\n    username: iamgroot\n  files:\n    key_json: value1.json\n");
    await applyTwice(t, file, ["depotsecret-r"]);
    const s = await get(t, "", "depotsecret-r");
    expect(s.annotations).toEqual({ "dataos.info/secret-type": "key-value-properties", "dataos.info/acl": "r" });
    expect(text(s, "key_json")).toBe('{"type":"service_account"}');
    expect(text(s, "username")).toBe("iamgroot");
  }, SLOW);
});

describe("secretd apply: updates, dry runs and refusals", () => {
  it("when a DataOS manifest's secret.files points outside its directory (absolute, '..', a symlink out), then exit 2 naming the entry, and nothing is read or written", async () => {
    const t = await tenantToken("dataosfiles");
    const outside = mkdtempSync(path.join(dir, "private-"));
    writeFileSync(path.join(outside, "id_ed25519"), "Private-Key-Bytes-9");
    const sub = mkdtempSync(path.join(dir, "untrusted-"));
    mkdirSync(path.join(sub, "inner"));
    symlinkSync(path.join(outside, "id_ed25519"), path.join(sub, "inner", "link"));
    const rel = path.relative(sub, path.join(outside, "id_ed25519"));
    for (const [p, why] of [
      [path.join(outside, "id_ed25519"), "must be a path relative to the manifest's directory"],
      [rel, "must not contain a '..' part"],
      ["inner/link", "leads outside the manifest's directory"],
    ] as const) {
      const file = path.join(sub, "secret.yaml");
      writeFileSync(file, `name: stolen\nversion: v1\ntype: secret\nsecret:\n  type: key-value\n  data:\n    u: x\n  files:\n    key: ${p}\n`);
      const r = await apply(t, ["-f", file]);
      expect(r.status, p).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.startsWith(`secretd: INVALID_ARGUMENT: ${file}: document 1: secret.files["key"]: ${JSON.stringify(p)} ${why}`), r.err).toBe(true);
      expect(r.err).not.toContain("Private-Key-Bytes-9");
    }
    expect(await names(t, "")).toEqual([]);
  }, SLOW);

  it("when a re-applied manifest changes a value, then it says configured, keeps the uid and makes exactly one new version", async () => {
    const t = await tenantToken("update");
    const file = path.join(dir, "update.yaml");
    const manifest = (password: string, label: string): string =>
      `apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels:\n    tier: ${label}\nstringData:\n  password: ${password}\n`;
    writeFileSync(file, manifest("first-Pa55", "db"));
    expect((await apply(t, ["-f", file])).out).toBe("secret/db created\n");
    const before = await get(t, "", "db");
    writeFileSync(file, manifest("second-Pa55", "db"));
    const r = await apply(t, ["-f", file, "-o", "json"]);
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.out) as { items: Array<Record<string, unknown>> };
    expect(doc.items).toEqual([expect.objectContaining({ action: "configured", name: "db", uid: before.uid, version: 2, changed: ["data"], document: 1 })]);
    expect(r.out + r.err).not.toContain("second-Pa55");
    const after = await get(t, "", "db");
    expect(after.uid).toBe(before.uid);
    expect(text(after, "password")).toBe("second-Pa55");
    expect((await apply(t, ["-f", file])).out).toBe("secret/db unchanged\n");
    expect((await get(t, "", "db")).version).toBe(2);
  }, SLOW);

  it("when --dry-run is given, then it reports created/configured but writes nothing", async () => {
    const t = await tenantToken("dryrun");
    const r = await apply(t, ["-f", fixture("dataos.yaml"), "--dry-run"]);
    expect(r.status).toBe(0);
    expect(r.out).toBe("secret/testing created (dry run)\n");
    expect(await names(t, "")).toEqual([]);
  }, SLOW);

  it("when the manifest comes on stdin (as from kubectl get -o yaml) with --mesh, then it lands in that mesh", async () => {
    const t = await tenantToken("stdin");
    const r = await apply(t, ["-f", "-", "--mesh", "payments"], readFileSync(fixture("kubernetes-list.json"), "utf8"));
    expect(r.err).toBe("");
    expect(r.out).toBe("secret/secret-sa-sample created\nsecret/mysecret created\n");
    expect(await names(t, "payments")).toEqual(["mysecret", "secret-sa-sample"]);
  }, SLOW);

  it("when one document of a multi-document manifest is bad, then nothing is written and the error names the file, the document and the field, not the value", async () => {
    const t = await tenantToken("bad");
    const file = path.join(dir, "bad.yaml");
    writeFileSync(
      file,
      [
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: good-one\nstringData:\n  password: Good-Value-1\n",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad-one\ndata:\n  password: not*base64!Bad-Value-2\n",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: good-two\nstringData:\n  password: Good-Value-3\n",
      ].join("---\n"),
    );
    const r = await apply(t, ["-f", file]);
    expect(r.status).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toBe(`secretd: INVALID_ARGUMENT: ${file}: document 2: data["password"]: is not valid base64\n`);
    expect(await names(t, "")).toEqual([]);
  }, SLOW);

  it("when a later document breaks a server rule (a bad name, a basic-auth secret without username or password), then nothing is written", async () => {
    const t = await tenantToken("rules");
    const good = "type: Secret\nname: fine\nmesh: default\ndata: dGVzdAo=\n";
    for (const [bad, field] of [
      ["type: Secret\nname: Not_A_Name\nmesh: default\ndata: dGVzdAo=\n", "document 2: name:"],
      ["apiVersion: v1\nkind: Secret\nmetadata:\n  name: ba\ntype: kubernetes.io/basic-auth\nstringData:\n  other: x\n", "document 2: data"],
      ["name: x\ntype: secret\nsecret:\n  data:\n    a: b\n", "document 2: version: is required"],
      ["ApiVersion: v0.12\nSecrets:\n- Key: e\n  Kind: Env\n  Data:\n  - NOEQUALS\n", "document 2: Secrets[0].Data[0]: must look like NAME=VALUE"],
      ["kind: Secret\napiVersion: v2\nmetadata:\n  name: x\n", "document 2: apiVersion: must be v1"],
      ["just: something\n", "document 2: not a Kubernetes Secret"],
    ] as const) {
      const file = path.join(dir, "rules.yaml");
      writeFileSync(file, `${good}---\n${bad}`);
      const r = await apply(t, ["-f", file]);
      expect(r.status, bad).toBe(2);
      expect(r.err).toContain(`${file}: ${field}`);
    }
    expect(await names(t, "default")).toEqual([]);
  }, SLOW);

  it("when a Kuma universal Secret has no mesh: and no --mesh is given, then exit 2 naming mesh (kumactl refuses it too) and nothing lands in the global scope; --mesh places it", async () => {
    const t = await tenantToken("kumanomesh");
    const file = path.join(dir, "kuma-no-mesh.yaml");
    writeFileSync(file, "type: Secret\nname: no-mesh\ndata: dGVzdAo=\n");
    const r = await apply(t, ["-f", file]);
    expect(r.status).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toContain(`${file}: document 1: mesh: is required: a Kuma Secret belongs to a mesh`);
    expect(await names(t, "")).toEqual([]);
    const placed = await apply(t, ["-f", file, "--mesh", "default"]);
    expect(placed.err).toBe("");
    expect(placed.out).toBe("secret/no-mesh created\n");
    expect(await names(t, "default")).toEqual(["no-mesh"]);
  }, SLOW);

  it("when an existing secret's type differs from the manifest's, then nothing is written (FAILED_PRECONDITION, exit 1)", async () => {
    const t = await tenantToken("typechange");
    const file = path.join(dir, "types.yaml");
    writeFileSync(file, "type: Secret\nname: a-first\nmesh: m\ndata: dGVzdAo=\n");
    expect((await apply(t, ["-f", file])).status).toBe(0);
    writeFileSync(
      file,
      "type: Secret\nname: a-first\nmesh: m\ndata: b3RoZXIK\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: a-first\n  labels:\n    kuma.io/mesh: m\ntype: kubernetes.io/basic-auth\nstringData:\n  username: u\n",
    );
    // Duplicate (mesh, name) in one input is refused first.
    const dup = await apply(t, ["-f", file]);
    expect(dup.status).toBe(2);
    expect(dup.err).toContain("is also declared by");
    writeFileSync(file, "type: Secret\nname: b-new\nmesh: m\ndata: dGVzdAo=\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: a-first\n  labels:\n    kuma.io/mesh: m\ntype: kubernetes.io/basic-auth\nstringData:\n  username: u\n");
    const r = await apply(t, ["-f", file]);
    expect(r.status).toBe(1);
    expect(r.err).toContain("FAILED_PRECONDITION");
    expect(r.err).toContain("document 2: secret \"a-first\": type cannot change from Opaque to kubernetes.io/basic-auth");
    expect(await names(t, "m")).toEqual(["a-first"]);
    expect((await get(t, "m", "a-first")).version).toBe(1);
  }, SLOW);

  it("when the caller may not write, then the server's refusal is printed with its code and document, exit 1", async () => {
    const t = await server.token({ tenant: "norole", sub: "nobody", roles: [] });
    tokens.add(t);
    const r = await apply(t, ["-f", fixture("dataos.yaml")]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/^secretd: PERMISSION_DENIED: .*dataos\.yaml: document 1: secret "testing": /);
    const e = await get(await tenantToken("norole"), "", "testing").catch((x: ServiceError) => x);
    expect((e as ServiceError).code).toBe(status.NOT_FOUND);
  }, SLOW);

  it("when a directory is given, then every manifest file in it is applied in name order, and no value reaches the output or the server log", async () => {
    const t = await tenantToken("dir");
    const sub = mkdtempSync(path.join(dir, "d-"));
    writeFileSync(path.join(sub, "b.yaml"), readFileSync(fixture("dataos.yaml")));
    writeFileSync(path.join(sub, "a.yml"), readFileSync(fixture("nanocl-env.yml")));
    writeFileSync(path.join(sub, "notes.txt"), "not a manifest");
    const r = await apply(t, ["-f", sub]);
    expect(r.err).toBe("");
    expect(r.out).toBe("secret/env.super-secret created\nsecret/testing created\n");
    for (const v of ["secure_password", "MY_VALUE1", "t0p-Secret", "Good-Value-1", "Bad-Value-2", "second-Pa55"]) {
      expect(r.out + r.err).not.toContain(v);
      expect(server.logs.join("\n")).not.toContain(v);
    }
  }, SLOW);

  const hasScript = spawnSync("script", ["--version"]).status === 0;
  it.runIf(hasScript)("when many objects are applied on a terminal, then a counter runs on stderr; piped, there is none", async () => {
    const t = await tenantToken("many");
    const docs = Array.from({ length: 25 }, (_, i) => `type: Secret\nname: s-${String(i).padStart(2, "0")}\nmesh: m\ndata: dGVzdAo=\n`).join("---\n");
    const file = path.join(dir, "many.yaml");
    writeFileSync(file, docs);
    // util-linux script(1) gives the child a pseudo-terminal; it runs async so the in-process server answers.
    const { spawn } = await import("node:child_process");
    const cmd = `${process.execPath} ${MAIN} apply -f ${file}`;
    const tty = await new Promise<string>((resolve, reject) => {
      const child = spawn("script", ["-qec", cmd, "/dev/null"], { env: { ...process.env, SECRETD_SERVER: server.address, SECRETD_TOKEN: t }, stdio: ["ignore", "pipe", "pipe"] });
      const out: Buffer[] = [];
      child.stdout.on("data", (b: Buffer) => out.push(b));
      child.on("error", reject);
      child.on("close", () => resolve(Buffer.concat(out).toString("utf8")));
    });
    expect(tty).toMatch(/applying: \d+ of 25/);
    expect(tty).toContain("secret/s-24 created");
    const piped = await apply(t, ["-f", file]);
    expect(piped.err).toBe("");
    expect(piped.out.split("\n").filter((l) => l.endsWith(" unchanged"))).toHaveLength(25);
  }, SLOW);
});
