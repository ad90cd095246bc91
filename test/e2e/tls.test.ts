/** TLS and mutual TLS on the real server, with certificates made by openssl in the test. */
import { readFileSync } from "node:fs";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateSecretRequest, GetSecretRequest, SecretServiceClient } from "../../src/gen/secrets/v1/secrets.js";
import { hasOpenssl } from "../helpers/openssl.js";
import { makePki, type Pki } from "../helpers/pki.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { openWatch } from "../helpers/watch.js";

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

  it("when a client with a certificate watches over mutual TLS, then the stream (served by node:http2) gets the value", async () => {
    const token = await mtls.token({ tenant: "t", sub: "s", roles: ["tenant-admin"] });
    const ca = readFileSync(f("ca.crt"));
    const client = new SecretServiceClient(mtls.address, credentials.createSsl(ca, readFileSync(f("client.key")), readFileSync(f("client.crt"))));
    const md = new Metadata();
    md.set("authorization", `Bearer ${token}`);
    await new Promise<void>((resolve, reject) =>
      client.createSecret(CreateSecretRequest.fromPartial({ mesh: "m", name: "over-tls", stringData: { k: "tls-watched" } }), md, (e) => (e ? reject(e) : resolve())),
    );
    const w = openWatch(client, { mesh: "m", items: [{ name: "over-tls" }] }, token);
    const first = await w.next();
    expect(Buffer.from(first.values[0]!.value).toString()).toBe("tls-watched");
    w.cancel();
    client.close();
  });
});
