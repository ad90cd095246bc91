/**
 * Kubernetes service-account tokens as identities (#31 item 2), through the real server.
 * A local HTTP server on port 0 plays the API server's service-account issuer: it serves
 * /.well-known/openid-configuration and the JWKS it names; tokens are RS256 with the
 * claims a projected service-account token carries. The claims mapping binds
 * payments:api and the namespace "shop"; payments:batch is bound by nothing.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintToken } from "../../src/auth/mint.js";
import { OIDC_COOLDOWN_MS, OIDC_MAX_AGE_MS } from "../../src/auth/oidc-key-set.js";
import { Permission, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { E2E_WORKERS, startTestServer, type TestServer } from "../helpers/server.js";
import { callError } from "../helpers/errors.js";

const AUD = "secretd";
const MESH = "payments";

interface Issuer {
  readonly url: string;
  /** The JWKS served now. */
  keys: JWK[];
  /** What the discovery document says the issuer is (default: url). */
  says?: string;
  close(): Promise<void>;
}

async function startIssuer(): Promise<Issuer> {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer: Issuer = { url, keys: [], close: () => new Promise((r) => server.close(() => r())) };
  server.on("request", (req, res) => {
    const json = (body: unknown): void => void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.url === "/.well-known/openid-configuration") {
      json({ issuer: issuer.says ?? url, jwks_uri: `${url}/openid/v1/jwks`, response_types_supported: ["id_token"], subject_types_supported: ["public"], id_token_signing_alg_values_supported: ["RS256"] });
    } else if (req.url === "/openid/v1/jwks") {
      json({ keys: issuer.keys });
    } else {
      res.writeHead(404).end();
    }
  });
  return issuer;
}

interface Key {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function newKey(kid: string): Promise<Key> {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" } };
}

/** A projected service-account token as the kubelet gets it from the TokenRequest API. */
async function saToken(key: Key, iss: string, ns: string, sa: string, o: { aud?: string; expSec?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const exp = o.expSec ?? now + 600;
  return new SignJWT({
    "kubernetes.io": {
      namespace: ns,
      node: { name: "node-1", uid: "3f6c9f3e-node" },
      pod: { name: `${sa}-5d8f7`, uid: randomBytes(8).toString("hex") },
      serviceaccount: { name: sa, uid: `uid-${sa}` },
    },
  })
    .setProtectedHeader({ alg: "RS256", kid: key.kid })
    .setIssuer(iss)
    .setAudience([o.aud ?? AUD])
    .setSubject(`system:serviceaccount:${ns}:${sa}`)
    .setIssuedAt(Math.min(now, exp - 60))
    .setNotBefore(Math.min(now, exp - 60))
    .setExpirationTime(exp)
    .setJti(randomBytes(8).toString("hex"))
    .sign(key.privateKey);
}

function mappingYaml(iss: string): string {
  return [
    "issuers:",
    `  - issuer: ${iss}`,
    "    tenant: acme",
    "    meshClaim: kubernetes.io.namespace",
    "    bindings:",
    "      - subject: system:serviceaccount:payments:api",
    "        roles: [payments-reader]",
    "      - namespace: shop",
    "        roles: [payments-reader]",
    "",
  ].join("\n");
}

const refusal = callError;

// The key rotation below moves the server's clock past the refetch cooldown; with
// --workers that clock is the real one (minutes of waiting), so this file runs in process.
describe.skipIf(E2E_WORKERS > 1)("Kubernetes service-account tokens", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-k8s-"));
  const hsFile = path.join(dir, "hs256.key");
  const mappingFile = path.join(dir, "mapping.yaml");
  let issuer: Issuer;
  let key1: Key;
  let s: TestServer;
  let admin: string;
  let hs: Buffer;

  const get = (token: string, mesh = MESH): Promise<Secret> => s.call<Secret>("getSecret", { mesh, name: "db" }, token);

  beforeAll(async () => {
    issuer = await startIssuer();
    key1 = await newKey("k1");
    issuer.keys = [key1.jwk];
    hs = randomBytes(32);
    writeFileSync(hsFile, hs, { mode: 0o600 });
    writeFileSync(mappingFile, mappingYaml(issuer.url));
    s = await startTestServer({ jwtHs256SecretFile: hsFile, jwtOidcIssuer: issuer.url, jwtAudience: AUD, claimsMapping: mappingFile });
    // The HS256 path is as before (with --jwt-audience its tokens name the audience too).
    admin = await mintToken({ secret: hs, tenant: "acme", sub: "alice", roles: ["tenant-admin"], audience: AUD, ttlSec: 600 });
    await s.call("createSecret", { mesh: MESH, name: "db", stringData: { password: "pw-1" } }, admin);
    await s.call("createSecret", { mesh: "shop", name: "db", stringData: { password: "pw-shop" } }, admin);
    for (const mesh of [MESH, "shop"]) {
      await s.call("grantAccess", { mesh, name: "db", subject: "role:payments-reader", permission: Permission.PERMISSION_READ }, admin);
    }
  });

  afterAll(async () => {
    await s?.stop();
    await issuer?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("gives a bound service account what its binding grants, in its own namespace's mesh", async () => {
    const secret = await get(await saToken(key1, issuer.url, "payments", "api"));
    expect(Buffer.from(secret.data.password!).toString()).toBe("pw-1");
    const line = s.logs.find((l) => l.includes("system:serviceaccount:payments:api"));
    expect(line).toBeDefined();
    expect(line).toContain('"tenant":"acme"');
  });

  it("refuses another namespace's mesh (PERMISSION_DENIED), while the pod's own namespace works", async () => {
    const shop = await saToken(key1, issuer.url, "shop", "web");
    expect(Buffer.from((await get(shop, "shop")).data.password!).toString()).toBe("pw-shop");
    expect((await refusal(get(shop, MESH))).code).toBe(status.PERMISSION_DENIED);
  });

  it("refuses a service account no binding names, even in a bound namespace's mesh", async () => {
    const e = await refusal(get(await saToken(key1, issuer.url, "payments", "batch")));
    expect(e.code).toBe(status.PERMISSION_DENIED);
    expect(e.details).toContain("not bound in the claims mapping");
  });

  it("refuses a token for another audience, an expired one and one from another issuer (UNAUTHENTICATED)", async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, string][] = [
      ["wrong audience", await saToken(key1, issuer.url, "payments", "api", { aud: "https://kubernetes.default.svc" })],
      ["expired", await saToken(key1, issuer.url, "payments", "api", { expSec: now - 120 })],
      ["wrong issuer", await saToken(key1, `${issuer.url}/other`, "payments", "api")],
    ];
    for (const [reason, token] of cases) {
      const e = await refusal(get(token));
      expect(e.code, reason).toBe(status.UNAUTHENTICATED);
      expect(e.details, reason).toContain(reason);
    }
    // The HS256 secret cannot sign for the OIDC issuer (the mapping would read it).
    const forged = await mintToken({ secret: hs, tenant: "acme", sub: "system:serviceaccount:payments:api", issuer: issuer.url, audience: AUD, ttlSec: 600 });
    expect((await refusal(get(forged))).details).toContain("algorithm not allowed");
    // A token of the issuer signed by a key it never published.
    const stranger = await newKey("k1");
    expect((await refusal(get(await saToken(stranger, issuer.url, "payments", "api")))).code).toBe(status.UNAUTHENTICATED);
  });

  it("picks up a new key (new kid) at the issuer without a restart, and drops a removed one", async () => {
    const key2 = await newKey("k2");
    issuer.keys = [key2.jwk];
    // Past the refetch cooldown since start: the unknown kid makes the server refetch.
    await s.clock.advance(OIDC_COOLDOWN_MS);
    expect(Buffer.from((await get(await saToken(key2, issuer.url, "payments", "api"))).data.password!).toString()).toBe("pw-1");
    // k1 left the JWKS; once the keys are older than their max age, a fresh k1 token fails.
    await s.clock.advance(OIDC_MAX_AGE_MS);
    const e = await refusal(get(await saToken(key1, issuer.url, "payments", "api")));
    expect(e.code).toBe(status.UNAUTHENTICATED);
    expect(e.details).toContain("unknown key");
  });

  it("keeps the last good keys while the issuer is unreachable", async () => {
    const key3 = await newKey("k3");
    issuer.keys = [key3.jwk];
    await s.clock.advance(OIDC_COOLDOWN_MS);
    expect((await get(await saToken(key3, issuer.url, "payments", "api"))).name).toBe("db");
    issuer.says = "https://moved.example"; // every refetch now fails (mismatched issuer)
    await s.clock.advance(OIDC_MAX_AGE_MS);
    expect((await get(await saToken(key3, issuer.url, "payments", "api"))).name).toBe("db");
    expect(s.logs.some((l) => l.includes("keeping the last good keys"))).toBe(true);
    issuer.says = undefined;
  });
});

describe("--jwt-oidc-issuer at start", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-k8s-start-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses a discovery document naming another issuer, and an unreachable issuer, with a clear message", async () => {
    const issuer = await startIssuer();
    try {
      issuer.says = "https://kubernetes.default.svc.cluster.local";
      await expect(startTestServer({ dataDir: path.join(dir, "a"), jwtOidcIssuer: issuer.url, jwtAudience: AUD })).rejects.toThrow(
        /OIDC discovery document .*openid-configuration names another issuer .*--jwt-oidc-issuer must be exactly its "issuer"/,
      );
    } finally {
      await issuer.close();
    }
    await expect(startTestServer({ dataDir: path.join(dir, "b"), jwtOidcIssuer: issuer.url, jwtAudience: AUD })).rejects.toThrow(/cannot fetch the OIDC discovery document .*: unreachable/);
  });

  it("refuses --jwt-oidc-issuer without --jwt-audience, naming the setting", async () => {
    await expect(startTestServer({ dataDir: path.join(dir, "c"), jwtOidcIssuer: "https://issuer.example" })).rejects.toThrow(/--jwt-audience \/ SECRETD_JWT_AUDIENCE: required with --jwt-oidc-issuer/);
  });

  it("refuses a bad claims-mapping file naming the entry", async () => {
    const file = path.join(dir, "bad-mapping.yaml");
    writeFileSync(file, "issuers:\n  - issuer: https://i\n    tenant: acme\n    meshClaim: kubernetes.io.namespace\n    bindings:\n      - subject: s\n        role: [x]\n");
    await expect(startTestServer({ dataDir: path.join(dir, "d"), claimsMapping: file })).rejects.toThrow(/issuers\[0\]\.bindings\[0\]: unknown key "role"/);
  });
});
