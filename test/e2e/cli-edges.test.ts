/**
 * The CLI's edges as a new operator meets them (issue #15 items 7, 11-14; #12.5), all
 * through the real `secretd` binary: address parsing, connection failures in one
 * sentence (refused, TLS against plaintext and back), a closed stdout, values never
 * echoed in errors, the one error-line format with SPEC §7 exit codes, and help text.
 */
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAIN, runCli } from "../helpers/cli.js";
import { hasOpenssl } from "../helpers/openssl.js";
import { makePki, type Pki } from "../helpers/pki.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const SLOW = 60_000;
let plain: TestServer;
let token: string;

beforeAll(async () => {
  plain = await startTestServer();
  token = await plain.token({ tenant: "acme", sub: "olivia", roles: ["tenant-admin"] });
});
afterAll(async () => {
  await plain.stop();
});

function as(extra: Record<string, string> = {}): { env: Record<string, string> } {
  return { env: { SECRETD_SERVER: plain.address, SECRETD_TOKEN: token, ...extra } };
}

/** One line on stderr, in the one format. */
function oneLine(err: string, code: string): string {
  const lines = err.split("\n").filter((l) => l !== "");
  expect(lines, err).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^secretd: ${code}: `));
  return lines[0]!;
}

describe("--server", () => {
  it("when the address is a URL or has a bad port, then the CLI exits 2 naming the flag, before dialling", async () => {
    for (const bad of ["http://127.0.0.1:50051", "nohost:xx", "127.0.0.1:99999"]) {
      const r = await runCli(["list", "--server", bad], as());
      expect(r.status, bad).toBe(2);
      expect(oneLine(r.err, "INVALID_ARGUMENT")).toContain("--server");
    }
    const env = await runCli(["list"], as({ SECRETD_SERVER: "https://x" }));
    expect(env.status).toBe(2);
    expect(oneLine(env.err, "INVALID_ARGUMENT")).toContain("SECRETD_SERVER");
  }, SLOW);

  it("when nothing listens there, then one plain line says the connection was refused, exit 1", async () => {
    const r = await runCli(["list", "--server", "127.0.0.1:1"], as());
    expect(r.status).toBe(1);
    expect(oneLine(r.err, "UNAVAILABLE")).toContain("cannot reach 127.0.0.1:1: connection refused");
  }, SLOW);

  it("when only a host is given, then the default port 50051 is dialled", async () => {
    // A name that never resolves (RFC 6761 .invalid): the line names the target the CLI
    // made of it, and nothing on this machine (a server on 50051 or not) is ever dialled.
    for (const [args, extra] of [
      [["--server", "secretd-test.invalid"], {}],
      [[], { SECRETD_SERVER: "secretd-test.invalid" }],
    ] as const) {
      const r = await runCli(["list", ...args, "--timeout", "3s"], as(extra));
      expect(r.status, r.err).toBe(1);
      expect(oneLine(r.err, "UNAVAILABLE")).toContain("cannot reach secretd-test.invalid:50051: ");
      expect(r.err).not.toContain(":443");
    }
  }, SLOW);
});

describe.runIf(hasOpenssl)("TLS and plaintext disagreeing", () => {
  let pki: Pki;
  let tls: TestServer;
  let tlsToken: string;
  beforeAll(async () => {
    pki = makePki();
    tls = await startTestServer({ tlsCert: pki.file("server.crt"), tlsKey: pki.file("server.key") });
    tlsToken = await tls.token({ tenant: "acme", sub: "olivia", roles: ["tenant-admin"] });
  });
  afterAll(async () => {
    await tls?.stop();
    rmSync(pki.dir, { recursive: true, force: true });
  });

  it("when a plaintext client dials a TLS server, then the line says the server speaks TLS and to pass --ca", async () => {
    const r = await runCli(["list", "--server", tls.address], { env: { SECRETD_TOKEN: tlsToken } });
    expect(r.status).toBe(1);
    const line = oneLine(r.err, "UNAVAILABLE");
    expect(line).toContain("the server speaks TLS and this client plaintext");
    expect(line).toContain("--ca");
  }, SLOW);

  it("when a TLS client dials a plaintext server, then the line says the server speaks plaintext", async () => {
    const r = await runCli(["list", "--ca", pki.file("ca.crt")], as());
    expect(r.status).toBe(1);
    expect(oneLine(r.err, "UNAVAILABLE")).toContain("the server speaks plaintext and this client TLS");
  }, SLOW);

  it("when TLS is right, then the call works with no DEP0123 warning for the IP address", async () => {
    const r = await runCli(["list", "--server", tls.address, "--ca", pki.file("ca.crt"), "-o", "json"], { env: { SECRETD_TOKEN: tlsToken } });
    expect(r.err).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ secrets: [] });
  }, SLOW);

  it("when the CA does not sign the server's certificate, or a key does not match --cert, then each is named", async () => {
    const untrusted = await runCli(["list", "--server", tls.address, "--ca", pki.file("client.crt")], { env: { SECRETD_TOKEN: tlsToken } });
    expect(untrusted.status).toBe(1);
    expect(oneLine(untrusted.err, "UNAVAILABLE")).toContain("not trusted by --ca");
    const mismatch = await runCli(["list", "--ca", pki.file("ca.crt"), "--cert", pki.file("client.crt"), "--cert-key", pki.file("other.key")], as());
    expect(mismatch.status).toBe(2);
    expect(oneLine(mismatch.err, "INVALID_ARGUMENT")).toContain("--cert-key");
    const notCa = await runCli(["list", "--ca", pki.file("ca.key")], as());
    expect(notCa.status).toBe(2);
    expect(oneLine(notCa.err, "INVALID_ARGUMENT")).toContain("--ca");
  }, SLOW);

  it("when --tls is given without --ca and the system's CAs do not trust the server, then the line says so and does not blame --ca", async () => {
    const r = await runCli(["list", "--server", tls.address, "--tls"], { env: { SECRETD_TOKEN: tlsToken } });
    expect(r.status).toBe(1);
    const line = oneLine(r.err, "UNAVAILABLE");
    expect(line).toContain("the server's certificate is not trusted by the system's CAs (no --ca was given; pass --ca with the CA bundle that signed it)");
    expect(line).not.toContain("not trusted by --ca");
  }, SLOW);
});

describe("a closed stdout", () => {
  it("when the reader goes away mid-output (| head -1), then the CLI ends quietly with status 0", async () => {
    for (let i = 0; i < 300; i++) {
      await plain.call("createSecret", { mesh: "pipe", name: `s-${i}`, stringData: { k: "v" }, labels: { app: "a-rather-long-label-value-to-fill-the-pipe", n: String(i) } }, token);
    }
    const child = spawn(process.execPath, [MAIN, "list", "--mesh", "pipe", "--all", "--page-size", "1000", "-o", "json"], {
      env: { ...process.env, SECRETD_SERVER: plain.address, SECRETD_TOKEN: token },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    child.stdout.once("data", () => child.stdout.destroy());
    const status = await new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    expect(err).toBe("");
    expect(status).toBe(0);
  }, SLOW);
});

describe("errors", () => {
  it("when --from-literal has no key=, then the error names the argument by position and never shows the value", async () => {
    const r = await runCli(["create", "x", "--from-literal", "a=1", "--from-literal", "s3cr3t-value"], as());
    expect(r.status).toBe(2);
    const line = oneLine(r.err, "INVALID_ARGUMENT");
    expect(line).toContain("--from-literal");
    expect(line).toContain("#2");
    expect(r.err).not.toContain("s3cr3t");
  }, SLOW);

  it("when the command line is wrong, then the line is `secretd: INVALID_ARGUMENT: …` and the exit code 2", async () => {
    const unknown = await runCli(["list", "--bogus"], as());
    expect(unknown.status).toBe(2);
    expect(unknown.err.split("\n")[0]).toMatch(/^secretd: INVALID_ARGUMENT: unknown option '--bogus'/);
    const missing = await runCli(["get"], as());
    expect(missing.status).toBe(2);
    expect(missing.err).toMatch(/^secretd: INVALID_ARGUMENT: missing required argument 'name'/);
    const ttl = await runCli(["grant", "x", "--subject", "user:a", "--permission", "read", "--ttl", "forever"], as());
    expect(ttl.status).toBe(2);
    expect(oneLine(ttl.err, "INVALID_ARGUMENT")).toContain("--ttl");
    const file = await runCli(["create", "x", "--from-file", "k=/nonexistent/file"], as());
    expect(file.status).toBe(2);
    expect(oneLine(file.err, "INVALID_ARGUMENT")).toContain("--from-file");
    const choice = await runCli(["list", "-o", "xml"], as());
    expect(choice.status).toBe(2);
    expect(choice.err).toMatch(/^secretd: INVALID_ARGUMENT: /);
  }, SLOW);

  it("when the server refuses, then its code and message are printed and the exit code is 1", async () => {
    const r = await runCli(["get", "no-such-secret"], as());
    expect(r.status).toBe(1);
    oneLine(r.err, "NOT_FOUND");
    const bad = await runCli(["create", "Not_A_Name", "--from-literal", "k=v"], as());
    expect(bad.status).toBe(1);
    expect(oneLine(bad.err, "INVALID_ARGUMENT")).toContain("name");
  }, SLOW);

  it("when get, update or a grant finds no secret, then the line names the scope searched: the mesh, or the global scope when no mesh was given", async () => {
    const none = await runCli(["get", "db"], as());
    expect(none.status).toBe(1);
    expect(oneLine(none.err, "NOT_FOUND")).toBe('secretd: NOT_FOUND: secret "db" not found in the global scope (mesh ""; no --mesh or SECRETD_MESH given)');
    const meshed = await runCli(["get", "db", "--mesh", "default"], as());
    expect(oneLine(meshed.err, "NOT_FOUND")).toBe('secretd: NOT_FOUND: secret "db" not found in mesh "default"');
    const env = await runCli(["update", "db", "--force", "--label", "a=b"], as({ SECRETD_MESH: "payments" }));
    expect(oneLine(env.err, "NOT_FOUND")).toBe('secretd: NOT_FOUND: secret "db" not found in mesh "payments"');
    const grant = await runCli(["grant", "db", "--subject", "user:x", "--permission", "read", "--mesh", ""], as());
    expect(oneLine(grant.err, "NOT_FOUND")).toBe('secretd: NOT_FOUND: secret "db" not found in the global scope (mesh "")');
  }, SLOW);

  it("when --ttl is a bare number, then it is refused (exit 2) asking for a unit, not read as seconds", async () => {
    for (const args of [["create", "ttl-bare", "--from-literal", "k=v", "--ttl", "30"], ["grant", "x", "--subject", "user:a", "--permission", "read", "--ttl", "3600"], ["token", "mint", "--tenant", "t", "--sub", "s", "--ttl", "60"]]) {
      const r = await runCli(args, as());
      expect(r.status, args.join(" ")).toBe(2);
      expect(oneLine(r.err, "INVALID_ARGUMENT"), args.join(" ")).toMatch(/^secretd: INVALID_ARGUMENT: --ttl: "\d+" has no unit: write it as 30s, 5m, 1h or 7d/);
    }
    const withUnit = await runCli(["create", "ttl-unit", "--from-literal", "k=v", "--ttl", "30s", "-o", "json"], as());
    expect(withUnit.err).toBe("");
    expect(Date.parse((JSON.parse(withUnit.out) as { expireTime: string }).expireTime)).toBeGreaterThan(Date.now());
    expect((await plain.call<{ secrets: unknown[] }>("listSecrets", { mesh: "" }, token)).secrets.map((x) => (x as { name: string }).name)).not.toContain("ttl-bare");
  }, SLOW);

  it("when SECRETD_MESH is set, then it is the default mesh of every verb", async () => {
    const created = await runCli(["create", "meshy", "--from-literal", "k=v", "-o", "json"], as({ SECRETD_MESH: "payments" }));
    expect(created.err).toBe("");
    expect(JSON.parse(created.out)).toMatchObject({ mesh: "payments", name: "meshy" });
    const got = await runCli(["get", "meshy", "--mesh", "payments", "--key", "k", "-o", "raw"], as());
    expect(got.out).toBe("v");
  }, SLOW);
});

describe("--help", () => {
  it("when asked for a verb's help, then it shows that verb's flags and one example", async () => {
    for (const verb of [["create"], ["get"], ["list"], ["update"], ["delete"], ["grant"], ["revoke"], ["list-grants"], ["project"], ["token", "mint"], ["keys", "rotate"], ["keys", "rewrap"], ["serve"], ["consumers"], ["sidecar"], ["run"], ["apply"], ["backup"], ["restore"], ["doctor"]]) {
      const r = await runCli([...verb, "--help"]);
      expect(r.status, verb.join(" ")).toBe(0);
      expect(r.out, verb.join(" ")).toMatch(/\nExamples?:\n {2}\$ .*secretd /);
    }
    const mint = (await runCli(["token", "mint", "--help"])).out;
    for (const serverOnly of ["--listen", "--tls-cert", "--kek-file", "--max-versions", "--metrics-listen", "--creator-roles"]) expect(mint).not.toContain(serverOnly);
    const rotate = (await runCli(["keys", "rotate", "--help"])).out;
    for (const serverOnly of ["--listen", "--jwt-", "--tls-"]) expect(rotate).not.toContain(serverOnly);
    const serve = (await runCli(["serve", "--help"])).out.replace(/\s+/g, " ");
    for (const alg of ["PS384", "PS512", "ES512"]) expect(serve).toContain(alg);
    expect(serve).toMatch(/--metrics-listen <value> Prometheus metrics address host:port, serving \/metrics/);
  }, 2 * SLOW);
});
