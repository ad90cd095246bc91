/** TLS and mutual TLS on the real server, with certificates made by openssl in the test. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetSecretRequest, SecretServiceClient } from "../../src/gen/secrets/v1/secrets.js";
import { hasOpenssl } from "../helpers/openssl.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-tls-"));
const f = (n: string): string => path.join(dir, n);

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { stdio: "ignore" });
}

/** A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate. */
function makePki(): void {
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f("ca.key"), "-out", f("ca.crt"), "-days", "2", "-subj", "/CN=test-ca");
  writeFileSync(f("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const who of ["server", "client"]) {
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f(`${who}.key`), "-out", f(`${who}.csr`), "-subj", `/CN=${who}`);
    openssl("x509", "-req", "-in", f(`${who}.csr`), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f(`${who}.crt`), "-days", "2", "-extfile", f("san.ext"));
  }
}

function getCode(client: InstanceType<typeof SecretServiceClient>, token: string): Promise<number> {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) =>
    client.getSecret(GetSecretRequest.fromPartial({ mesh: "m", name: "nope" }), md, { deadline: Date.now() + 5000 }, (e: ServiceError | null) =>
      resolve(e ? e.code : status.OK),
    ),
  );
}

describe.runIf(hasOpenssl)("TLS", () => {
  let tls: TestServer;
  let mtls: TestServer;
  beforeAll(async () => {
    makePki();
    tls = await startTestServer({ tlsCert: f("server.crt"), tlsKey: f("server.key") });
    mtls = await startTestServer({ tlsCert: f("server.crt"), tlsKey: f("server.key"), tlsClientCa: f("ca.crt") });
  });
  afterAll(async () => {
    await tls?.stop();
    await mtls?.stop();
  });

  it("when TLS is configured, then a client trusting the CA is served and a plaintext client is not", async () => {
    const token = await tls.token({ tenant: "t", sub: "s", roles: ["tenant-admin"] });
    const secure = new SecretServiceClient(tls.address, credentials.createSsl(readFileSync(f("ca.crt"))));
    expect(await getCode(secure, token)).toBe(status.NOT_FOUND);
    const plain = new SecretServiceClient(tls.address, credentials.createInsecure());
    expect(await getCode(plain, token)).toBe(status.UNAVAILABLE);
    secure.close();
    plain.close();
  });

  it("when a client CA is configured, then only clients with a certificate it signed are served", async () => {
    const token = await mtls.token({ tenant: "t", sub: "s", roles: ["tenant-admin"] });
    const ca = readFileSync(f("ca.crt"));
    const withCert = new SecretServiceClient(mtls.address, credentials.createSsl(ca, readFileSync(f("client.key")), readFileSync(f("client.crt"))));
    expect(await getCode(withCert, token)).toBe(status.NOT_FOUND);
    const without = new SecretServiceClient(mtls.address, credentials.createSsl(ca));
    expect(await getCode(without, token)).toBe(status.UNAVAILABLE);
    withCert.close();
    without.close();
  });
});
