/**
 * OidcKeySet's refetch bounds, counted at a local issuer on port 0 with a clock the test
 * moves: unknown kids refetch at most once per cooldown (however many arrive), stale keys
 * are refetched once, and a failed refetch keeps the last good keys.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OidcKeySet } from "../../src/auth/oidc-key-set.js";
import { SecretdError } from "../../src/errors.js";

let server: http.Server;
let url: string;
let keys: JWK[] = [];
let jwksHits = 0;
let failing = false;

async function key(kid: string): Promise<{ jwk: JWK; privateKey: CryptoKey; kid: string }> {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "RS256" } };
}

function token(k: { kid: string; privateKey: CryptoKey }): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: "RS256", kid: k.kid }).setIssuer(url).setExpirationTime("10m").sign(k.privateKey);
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (failing) return void res.writeHead(503).end();
    if (req.url === "/.well-known/openid-configuration") return void res.writeHead(200).end(JSON.stringify({ issuer: url, jwks_uri: `${url}/keys` }));
    if (req.url === "/keys") {
      jwksHits++;
      return void res.writeHead(200).end(JSON.stringify({ keys }));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

/** The key a token resolves to, or the error's constructor name. */
async function resolve(set: OidcKeySet, jwt: string): Promise<string> {
  const [h] = jwt.split(".");
  const header = JSON.parse(Buffer.from(h!, "base64url").toString()) as { alg: string; kid: string };
  try {
    await set.getKey(header, { payload: "", signature: "" } as never);
    return "ok";
  } catch (e) {
    return (e as Error).constructor.name;
  }
}

describe("OidcKeySet", () => {
  it("refetches for unknown kids at most once per cooldown, however many arrive at once", async () => {
    const k1 = await key("k1");
    const k2 = await key("k2");
    keys = [k1.jwk];
    jwksHits = 0;
    let t = 1_000_000;
    const set = await OidcKeySet.open({ issuer: url, now: () => t, cooldownMs: 30_000, maxAgeMs: 300_000 });
    expect(jwksHits).toBe(1);
    keys = [k1.jwk, k2.jwk];
    // Within the cooldown of the start's fetch: refused without a fetch.
    expect(await resolve(set, await token(k2))).toBe("JWKSNoMatchingKey");
    expect(jwksHits).toBe(1);
    t += 30_000;
    const unknown = await Promise.all(Array.from({ length: 20 }, async (_, i) => resolve(set, await token(await key(`stranger-${i}`)))));
    expect(new Set(unknown)).toEqual(new Set(["JWKSNoMatchingKey"]));
    expect(jwksHits).toBe(2);
    // k2 came in with that one refetch.
    expect(await resolve(set, await token(k2))).toBe("ok");
    expect(jwksHits).toBe(2);
  });

  it("refetches keys older than maxAge (a removed key stops), and keeps the last good keys when that fails", async () => {
    const k1 = await key("k1");
    const k2 = await key("k2");
    keys = [k1.jwk];
    jwksHits = 0;
    let t = 5_000_000;
    const warnings: string[] = [];
    const set = await OidcKeySet.open({ issuer: url, now: () => t, cooldownMs: 30_000, maxAgeMs: 300_000, onRefreshError: (m) => warnings.push(m) });
    keys = [k2.jwk];
    expect(await resolve(set, await token(k1))).toBe("ok");
    t += 300_000;
    expect(await resolve(set, await token(k1))).toBe("JWKSNoMatchingKey");
    expect(await resolve(set, await token(k2))).toBe("ok");
    expect(jwksHits).toBe(2);
    failing = true;
    try {
      t += 300_000;
      expect(await resolve(set, await token(k2))).toBe("ok");
      expect(warnings.some((w) => w.includes("HTTP 503") && w.includes("keeping the last good keys"))).toBe(true);
    } finally {
      failing = false;
    }
  });

  it("refuses to open when discovery fails, naming the URL and status", async () => {
    failing = true;
    try {
      const e = await OidcKeySet.open({ issuer: url }).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(SecretdError);
      expect((e as SecretdError).code).toBe("FAILED_PRECONDITION");
      expect((e as SecretdError).message).toBe(`cannot fetch the OIDC discovery document ${url}/.well-known/openid-configuration: HTTP 503`);
    } finally {
      failing = false;
    }
  });
});
