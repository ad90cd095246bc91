/** TLS and mutual TLS on the real server, with certificates made by openssl in the test. */
import { readFileSync } from "node:fs";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetSecretRequest, SecretServiceClient } from "../../src/gen/secrets/v1/secrets.js";
import { hasOpenssl } from "../helpers/openssl.js";
import { makePki, type Pki } from "../helpers/pki.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

let pki: Pki;
const f = (n: string): string => pki.file(n);

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
    pki = makePki();
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
