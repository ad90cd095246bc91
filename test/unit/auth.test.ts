import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { decodeJwt, exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearerToken, MAX_TOKEN_LENGTH } from "../../src/auth/bearer.js";
import { ensureDevHs256Secret, readHs256Secret, readJwksFile } from "../../src/auth/keys.js";
import { mintToken } from "../../src/auth/mint.js";
import { parseDuration } from "../../src/duration.js";
import { createVerifier, MAX_CACHE_AGE_MS, VerifiedTokenCache, type VerifierOptions } from "../../src/auth/verifier.js";
import { SecretdError } from "../../src/errors.js";
import type { Principal } from "../../src/domain/principal.js";

const T0 = 1_700_000_000; // seconds; every verifier below runs on a fixed clock
const SECRET = new TextEncoder().encode("0123456789abcdef0123456789abcdef-test-secret");
const OTHER_SECRET = new TextEncoder().encode("another-secret-of-more-than-32-bytes!!");

function b64url(o: unknown): string {
  return Buffer.from(JSON.stringify(o)).toString("base64url");
}

/** Claims of a valid token; a key set to undefined is left out of the token. */
function claims(over: Record<string, unknown> = {}): JWTPayload {
  return { sub: "alice", tenant: "acme", iat: T0, exp: T0 + 3600, ...over };
}

async function sign(payload: JWTPayload, key: Parameters<SignJWT["sign"]>[0], header: { alg: string; kid?: string } = { alg: "HS256" }): Promise<string> {
  return new SignJWT(payload).setProtectedHeader(header).sign(key);
}

function verifier(over: Partial<VerifierOptions> = {}, clock: { ms: number } = { ms: T0 * 1000 }) {
  return createVerifier({ hs256Secret: SECRET, algorithms: ["HS256"], tenantClaim: "tenant", now: () => clock.ms, ...over });
}

async function rejection(p: Promise<unknown>): Promise<SecretdError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SecretdError);
  const se = err as SecretdError;
  expect(se.code).toBe("UNAUTHENTICATED");
  return se;
}

/** Rejected as UNAUTHENTICATED with `reason`, and the message never quotes the token. */
async function expectRejected(token: string, v: ReturnType<typeof createVerifier>, reason?: RegExp): Promise<SecretdError> {
  const err = await rejection(v.verify(token));
  expect(err.message).not.toContain(token);
  if (reason) expect(err.message).toMatch(reason);
  return err;
}

interface KeyPairJwk {
  alg: string;
  privateKey: Parameters<SignJWT["sign"]>[0];
  jwk: JWK;
}

const tmp = mkdtempSync(path.join(tmpdir(), "secretd-auth-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("createVerifier with HS256", () => {
  it("when a token is signed with the secret, then the principal carries its claims", async () => {
    const p = await verifier().verify(await sign(claims({ roles: ["tenant-admin"], meshes: ["default"] }), SECRET));
    expect(p).toEqual<Principal>({ sub: "alice", tenant: "acme", roles: ["tenant-admin"], meshes: ["default"], exp: T0 + 3600 });
  });

  it("when roles and meshes are absent, then roles is [] and meshes is undefined (every mesh)", async () => {
    const p = await verifier().verify(await sign(claims(), SECRET));
    expect(p.roles).toEqual([]);
    expect(p.meshes).toBeUndefined();
  });

  it("when the token is signed with another secret, then it is rejected as a bad signature", async () => {
    await expectRejected(await sign(claims(), OTHER_SECRET), verifier(), /bad signature/);
  });

  it("when the signature is tampered with, then it is rejected", async () => {
    const token = await sign(claims(), SECRET);
    const [h, p] = token.split(".");
    const forged = `${h}.${b64url({ ...claims(), tenant: "other" })}.${token.split(".")[2]}`;
    expect(p).not.toBe(forged.split(".")[1]);
    await expectRejected(forged, verifier(), /bad signature/);
  });

  it("when the token is not a JWS, then it is rejected as malformed", async () => {
    await expectRejected("not-a-jwt", verifier(), /malformed/);
    await expectRejected(`${b64url({ alg: "HS256" })}.e30`, verifier(), /malformed/);
  });

  it("when no HS256 secret is configured, then an HS256 token is rejected", async () => {
    const { jwk } = await rsaKey();
    await expectRejected(await sign(claims(), SECRET), verifier({ hs256Secret: undefined, jwks: { keys: [jwk] }, algorithms: ["HS256", "RS256"] }));
  });
});

describe("createVerifier: alg none and algorithm confusion", () => {
  const unsigned = (payload: JWTPayload): string => `${b64url({ alg: "none", typ: "JWT" })}.${b64url(payload)}.`;

  it("when alg is none, then it is rejected even when none is in the allow-list", async () => {
    const { jwk } = await rsaKey();
    for (const algorithms of [["none", "HS256", "RS256"], ["NONE", "RS256"], ["HS256"]]) {
      await expectRejected(unsigned(claims()), verifier({ algorithms, jwks: { keys: [jwk] } }), /algorithm not allowed/);
    }
  });

  it("when alg is none with a signature appended, then it is still rejected", async () => {
    const t = `${b64url({ alg: "none" })}.${b64url(claims())}.${Buffer.from("x").toString("base64url")}`;
    await expectRejected(t, verifier({ algorithms: ["none", "HS256"] }));
  });

  it("when an HS256 token is signed with the RSA public key (PEM or JWK bytes) of the JWKS, then it is rejected", async () => {
    const { jwk, publicPem } = await rsaKey();
    const keyMaterials = [new TextEncoder().encode(publicPem), new TextEncoder().encode(JSON.stringify(jwk))];
    for (const material of keyMaterials) {
      const token = await sign(claims(), material, { alg: "HS256", kid: jwk.kid ?? "" });
      // With a JWKS only, and with a JWKS plus an unrelated HS256 secret.
      await expectRejected(token, verifier({ hs256Secret: undefined, jwks: { keys: [jwk] }, algorithms: ["HS256", "RS256"] }));
      await expectRejected(token, verifier({ jwks: { keys: [jwk] }, algorithms: ["HS256", "RS256"] }), /bad signature/);
    }
  });

  it("when the token's alg is outside the allow-list, then it is rejected", async () => {
    await expectRejected(await sign(claims(), SECRET, { alg: "HS512" }), verifier({ algorithms: ["HS256"] }), /algorithm not allowed/);
    const { jwk, privateKey } = await rsaKey();
    const rs = await sign(claims(), privateKey, { alg: "RS256", kid: jwk.kid ?? "" });
    await expectRejected(rs, verifier({ jwks: { keys: [jwk] }, algorithms: ["HS256"] }), /algorithm not allowed/);
    // Listed, but the JWKS path needs a key set.
    await expectRejected(rs, verifier({ algorithms: ["HS256", "RS256"] }));
  });
});

let rsa: (KeyPairJwk & { publicPem: string }) | undefined;
async function rsaKey(): Promise<KeyPairJwk & { publicPem: string }> {
  if (rsa) return rsa;
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  rsa = { alg: "RS256", privateKey, jwk: { ...(await exportJWK(publicKey)), kid: "rsa-1" }, publicPem: await exportSPKI(publicKey) };
  return rsa;
}

describe("createVerifier with a local JWKS", () => {
  const pairs: KeyPairJwk[] = [];
  beforeAll(async () => {
    pairs.push(await rsaKey());
    for (const [alg, kid] of [["ES256", "ec-1"], ["EdDSA", "ed-1"]] as const) {
      const { publicKey, privateKey } = await generateKeyPair(alg, alg === "EdDSA" ? { crv: "Ed25519" } : {});
      pairs.push({ alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid } });
    }
  });
  const jwksVerifier = (over: Partial<VerifierOptions> = {}) =>
    verifier({ hs256Secret: undefined, jwks: { keys: pairs.map((p) => p.jwk) }, algorithms: ["RS256", "ES256", "EdDSA"], ...over });

  it.each(["RS256", "ES256", "EdDSA"])("when a %s token names a kid of the JWKS, then it is accepted", async (alg) => {
    const pair = pairs.find((p) => p.alg === alg);
    if (!pair) throw new Error("no key");
    const p = await jwksVerifier().verify(await sign(claims(), pair.privateKey, { alg, kid: pair.jwk.kid ?? "" }));
    expect(p.sub).toBe("alice");
    expect(p.tenant).toBe("acme");
  });

  it("when the kid is unknown, then it is rejected", async () => {
    const pair = pairs[0];
    if (!pair) throw new Error("no key");
    await expectRejected(await sign(claims(), pair.privateKey, { alg: "RS256", kid: "nope" }), jwksVerifier(), /unknown key/);
  });

  it("when a token is signed by a key outside the JWKS under a known kid, then it is rejected", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    await expectRejected(await sign(claims(), privateKey, { alg: "ES256", kid: "ec-1" }), jwksVerifier(), /bad signature/);
  });

  it("when a kid-less token matches several keys, then the one that verifies it is used", async () => {
    const a = await generateKeyPair("ES256");
    const b = await generateKeyPair("ES256");
    const v = verifier({ hs256Secret: undefined, jwks: { keys: [await exportJWK(a.publicKey), await exportJWK(b.publicKey)] }, algorithms: ["ES256"] });
    expect((await v.verify(await sign(claims(), b.privateKey, { alg: "ES256" }))).sub).toBe("alice");
    const c = await generateKeyPair("ES256");
    await expectRejected(await sign(claims(), c.privateKey, { alg: "ES256" }), v, /bad signature/);
  });
});

describe("createVerifier: registered claims", () => {
  it("when the token is expired or at its exp, then it is rejected", async () => {
    await expectRejected(await sign(claims({ exp: T0 - 1 }), SECRET), verifier(), /expired/);
    await expectRejected(await sign(claims({ exp: T0 }), SECRET), verifier(), /expired/);
  });

  it("when exp passed within the clock tolerance, then it is accepted", async () => {
    expect((await verifier({ clockToleranceSec: 30 }).verify(await sign(claims({ exp: T0 - 10 }), SECRET))).sub).toBe("alice");
  });

  it("when nbf is in the future, then it is rejected as not yet valid", async () => {
    await expectRejected(await sign(claims({ nbf: T0 + 60 }), SECRET), verifier(), /not yet valid/);
  });

  it("when the issuer is wrong or missing while one is configured, then it is rejected", async () => {
    const v = verifier({ issuer: "https://idp.example" });
    await expectRejected(await sign(claims({ iss: "https://evil.example" }), SECRET), v, /wrong issuer/);
    await expectRejected(await sign(claims(), SECRET), v, /wrong issuer/);
    expect((await v.verify(await sign(claims({ iss: "https://idp.example" }), SECRET))).sub).toBe("alice");
  });

  it("when the audience is wrong while one is configured, then it is rejected", async () => {
    const v = verifier({ audience: "secretd" });
    await expectRejected(await sign(claims({ aud: "other" }), SECRET), v, /wrong audience/);
    await expectRejected(await sign(claims(), SECRET), v, /wrong audience/);
    expect((await v.verify(await sign(claims({ aud: ["x", "secretd"] }), SECRET))).sub).toBe("alice");
  });
});

describe("createVerifier: secretd claims", () => {
  it.each<[string, unknown]>([
    ["missing", undefined],
    ["empty", ""],
    ["a number", 42],
    ["an array", ["acme"]],
    ["an object", { name: "acme-secret-value" }],
  ])("when the tenant claim is %s, then the token is rejected without quoting the value", async (_, tenant) => {
    const err = await expectRejected(await sign(claims({ tenant }), SECRET), verifier(), /"tenant"/);
    expect(err.message).not.toContain("acme");
  });

  it.each<[string, unknown]>([
    ["missing", undefined],
    ["empty", ""],
    ["a number", 7],
  ])("when sub is %s, then the token is rejected", async (_, sub) => {
    await expectRejected(await sign(claims({ sub }), SECRET), verifier(), /"sub"/);
  });

  it.each<[string, unknown]>([
    ["a string", "tenant-admin"],
    ["an array with a number", ["reader", 1]],
    ["an array with null", [null]],
    ["an object", { admin: true }],
    ["null", null],
  ])("when roles is %s, then the token is rejected", async (_, roles) => {
    await expectRejected(await sign(claims({ roles }), SECRET), verifier(), /"roles"/);
  });

  it("when meshes holds \"*\", then the principal may use every mesh", async () => {
    expect((await verifier().verify(await sign(claims({ meshes: ["*"] }), SECRET))).meshes).toBeUndefined();
    await expectRejected(await sign(claims({ meshes: ["a", "*"] }), SECRET), verifier(), /"meshes" must be \["\*"\] or a list/);
    expect((await verifier().verify(await sign(claims({ meshes: [] }), SECRET))).meshes).toEqual([]);
  });

  it("when meshes is not an array of strings, then the token is rejected", async () => {
    for (const meshes of ["*", "default", [1], null]) {
      await expectRejected(await sign(claims({ meshes }), SECRET), verifier(), /"meshes"/);
    }
  });

  it("when a custom tenant claim is configured, then the tenant comes from it and only from it", async () => {
    const v = verifier({ tenantClaim: "org_id" });
    const p = await v.verify(await sign(claims({ tenant: undefined, org_id: "org-7" }), SECRET));
    expect(p.tenant).toBe("org-7");
    await expectRejected(await sign(claims(), SECRET), v, /"org_id"/);
  });

  it("when a principal is returned, then it cannot be mutated (it is shared through the cache)", async () => {
    const p = await verifier().verify(await sign(claims({ roles: ["r"] }), SECRET));
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(p.roles)).toBe(true);
  });
});

describe("createVerifier: verified-token cache", () => {
  // The HS256 secret is read on every jose verification, so zeroing it after a first
  // verification makes every cache miss fail: a success afterwards proves a cache hit.

  it("when a token was verified, then it is served from the cache until its exp and not at exp", async () => {
    const secret = new Uint8Array(SECRET);
    const clock = { ms: T0 * 1000 };
    const v = verifier({ hs256Secret: secret }, clock);
    const token = await sign(claims({ exp: T0 + 60 }), secret);
    await v.verify(token);
    secret.fill(0);
    clock.ms = (T0 + 59) * 1000;
    expect((await v.verify(token)).sub).toBe("alice");
    clock.ms = (T0 + 60) * 1000;
    await expectRejected(token, v);
    secret.set(SECRET);
    await expectRejected(token, v, /expired/);
  });

  it("when a token lives longer than five minutes, then its cache entry ends after five minutes", async () => {
    const secret = new Uint8Array(SECRET);
    const clock = { ms: T0 * 1000 };
    const v = verifier({ hs256Secret: secret }, clock);
    const token = await sign(claims({ exp: T0 + 3600 }), secret);
    expect((await v.verify(token)).exp).toBe(T0 + 3600);
    secret.fill(0);
    clock.ms = T0 * 1000 + MAX_CACHE_AGE_MS - 1;
    expect((await v.verify(token)).sub).toBe("alice");
    clock.ms = T0 * 1000 + MAX_CACHE_AGE_MS;
    await expectRejected(token, v, /bad signature/);
  });

  it("when more tokens than cacheSize were verified, then the oldest entry is evicted", async () => {
    const secret = new Uint8Array(SECRET);
    const v = verifier({ hs256Secret: secret, cacheSize: 2 });
    const [a, b, c] = await Promise.all(["a", "b", "c"].map((sub) => sign(claims({ sub }), secret)));
    if (!a || !b || !c) throw new Error("tokens");
    for (const t of [a, b, c]) await v.verify(t);
    secret.fill(0);
    expect((await v.verify(b)).sub).toBe("b");
    expect((await v.verify(c)).sub).toBe("c");
    await expectRejected(a, v, /bad signature/);
  });

  it("when a verification fails, then the failure is not cached", async () => {
    const secret = new Uint8Array(SECRET);
    const token = await sign(claims(), secret);
    secret.fill(0);
    const v = verifier({ hs256Secret: secret });
    await expectRejected(token, v, /bad signature/);
    secret.set(SECRET);
    expect((await v.verify(token)).sub).toBe("alice");
  });

  it("when many tokens are inserted, then the cache never holds more than its capacity", () => {
    const cache = new VerifiedTokenCache(100);
    const p: Principal = { sub: "s", tenant: "t", roles: [], meshes: undefined, exp: T0 + 3600 };
    for (let i = 0; i < 1000; i++) cache.set(`token-${i}`, p, undefined, T0 * 1000);
    expect(cache.size).toBe(100);
    expect(cache.get("token-899", T0 * 1000)).toBeUndefined();
    expect(cache.get("token-900", T0 * 1000)).toBe(p);
  });

  it("when an entry's nbf is still ahead, then the cache does not serve it", () => {
    const cache = new VerifiedTokenCache(10);
    const p: Principal = { sub: "s", tenant: "t", roles: [], meshes: undefined, exp: T0 + 3600 };
    cache.set("tok", p, T0 + 10, T0 * 1000);
    expect(cache.get("tok", T0 * 1000)).toBeUndefined();
    expect(cache.get("tok", (T0 + 10) * 1000)).toBe(p);
  });

  it("when cacheSize is 0, then nothing is cached", () => {
    const cache = new VerifiedTokenCache(0);
    cache.set("tok", { sub: "s", tenant: "t", roles: [], meshes: undefined, exp: undefined }, undefined, 0);
    expect(cache.size).toBe(0);
  });
});

describe("bearerToken", () => {
  it("when one Bearer value is given, then the token is returned (scheme case-insensitive)", () => {
    expect(bearerToken(["Bearer abc.def.ghi"])).toBe("abc.def.ghi");
    expect(bearerToken(["bearer abc.def.ghi"])).toBe("abc.def.ghi");
    expect(bearerToken(["BEARER \t abc.def.ghi "])).toBe("abc.def.ghi");
    expect(bearerToken([Buffer.from("Bearer abc")])).toBe("abc");
  });

  it.each<[string, Array<string | Buffer>]>([
    ["missing", []],
    ["given twice", ["Bearer SENSITIVE.a", "Bearer SENSITIVE.b"]],
    ["Basic", ["Basic SENSITIVE"]],
    ["a bare token", ["SENSITIVE.def.ghi"]],
    ["an empty Bearer", ["Bearer "]],
    ["two tokens", ["Bearer SENSITIVE SENSITIVE2"]],
    ["a token with odd characters", ["Bearer SENSITIVE,b"]],
  ])("when the authorization value is %s, then it is UNAUTHENTICATED without quoting it", (_, values) => {
    let err: unknown;
    try {
      bearerToken(values);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SecretdError);
    expect((err as SecretdError).code).toBe("UNAUTHENTICATED");
    expect((err as SecretdError).message).not.toContain("SENSITIVE");
  });

  it("when the token is longer than 8192 characters, then it is refused as too large", () => {
    const ok = "a".repeat(MAX_TOKEN_LENGTH);
    expect(bearerToken([`Bearer ${ok}`])).toBe(ok);
    expect(() => bearerToken([`Bearer ${ok}a`])).toThrow(/token too large/);
    expect(() => bearerToken([`Bearer ${"a".repeat(1 << 20)}`])).toThrow(/token too large/);
  });
});

describe("key files", () => {
  const secret32 = "x".repeat(32);

  it("when the HS256 secret file ends with one newline or CRLF, then exactly that is removed", () => {
    const cases: Array<[string, string]> = [
      [secret32, secret32],
      [`${secret32}\n`, secret32],
      [`${secret32}\r\n`, secret32],
      [`${secret32}\n\n`, `${secret32}\n`],
      [`${secret32} `, `${secret32} `],
    ];
    for (const [i, [content, expected]] of cases.entries()) {
      const f = path.join(tmp, `hs-${i}.key`);
      writeFileSync(f, content);
      expect(readHs256Secret(f).toString("utf8")).toBe(expected);
    }
  });

  it("when the HS256 secret is shorter than 32 bytes, then it is refused naming the file", () => {
    const f = path.join(tmp, "short.key");
    writeFileSync(f, `${"x".repeat(31)}\n`);
    expect(() => readHs256Secret(f)).toThrow(SecretdError);
    try {
      readHs256Secret(f);
    } catch (e) {
      expect((e as SecretdError).code).toBe("FAILED_PRECONDITION");
      expect((e as SecretdError).message).toContain(f);
      expect((e as SecretdError).message).toContain("at least 32 bytes");
    }
  });

  it("when the HS256 secret file is missing, then it is FAILED_PRECONDITION naming the file", () => {
    const f = path.join(tmp, "missing.key");
    expect(() => readHs256Secret(f)).toThrow(expect.objectContaining({ code: "FAILED_PRECONDITION", message: expect.stringContaining(f) }));
  });

  it("when no dev secret exists, then one is created 0600 and later starts reuse it", () => {
    const f = path.join(tmp, "dev", "jwt-dev.key");
    const first = ensureDevHs256Secret(f);
    expect(first.created).toBe(true);
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readFileSync(f, "utf8")).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
    expect(first.secret.toString("utf8")).toBe(readFileSync(f, "utf8").trimEnd());
    const second = ensureDevHs256Secret(f);
    expect(second.created).toBe(false);
    expect(second.secret.equals(first.secret)).toBe(true);
  });

  it("when the JWKS file is good, then its keys are returned", async () => {
    const { jwk } = await rsaKey();
    const f = path.join(tmp, "jwks.json");
    writeFileSync(f, JSON.stringify({ keys: [jwk] }));
    expect(readJwksFile(f)).toEqual({ keys: [jwk] });
  });

  it.each<[string, string]>([
    ["not JSON", "{not json: SECRET-MATERIAL"],
    ["not a key set", JSON.stringify([{ kty: "RSA" }])],
    ["keys without kty", JSON.stringify({ keys: [{ n: "x" }] })],
    ["a private key", JSON.stringify({ keys: [{ kty: "EC", crv: "P-256", x: "a", y: "b", d: "SECRET-MATERIAL" }] })],
    ["a symmetric key", JSON.stringify({ keys: [{ kty: "oct", k: "SECRET-MATERIAL" }] })],
  ])("when the JWKS file is %s, then it is FAILED_PRECONDITION naming the file and no content", (_, content) => {
    const f = path.join(tmp, "bad-jwks.json");
    writeFileSync(f, content);
    let err: unknown;
    try {
      readJwksFile(f);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SecretdError);
    expect((err as SecretdError).code).toBe("FAILED_PRECONDITION");
    expect((err as SecretdError).message).toContain(f);
    expect((err as SecretdError).message).not.toContain("SECRET-MATERIAL");
  });
});

describe("mintToken and parseDuration", () => {
  it("when a token is minted, then createVerifier accepts it with the same claims", async () => {
    const token = await mintToken({ secret: SECRET, tenant: "acme", sub: "bob", roles: ["data-developer"], meshes: ["prod"], ttlSec: 600, issuer: "secretd", audience: "api", tenantClaim: "org" });
    const now = Date.now();
    const v = createVerifier({ hs256Secret: SECRET, algorithms: ["HS256"], tenantClaim: "org", issuer: "secretd", audience: "api" });
    const p = await v.verify(token);
    expect(p).toMatchObject({ sub: "bob", tenant: "acme", roles: ["data-developer"], meshes: ["prod"] });
    expect(p.exp).toBeGreaterThanOrEqual(Math.floor(now / 1000) + 599);
    expect(p.exp).toBeLessThanOrEqual(Math.floor(now / 1000) + 601);
  });

  it("when roles and meshes are not given, then the token holds neither claim", async () => {
    const token = await mintToken({ secret: SECRET, tenant: "acme", sub: "bob", ttlSec: 60 });
    const payload = decodeJwt(token);
    expect(payload).not.toHaveProperty("roles");
    expect(payload).not.toHaveProperty("meshes");
    expect(payload.tenant).toBe("acme");
    expect(typeof payload.iat).toBe("number");
    expect(payload.exp).toBe((payload.iat ?? 0) + 60);
  });

  it("when durations are parsed, then units s, m, h, d and plain seconds work", () => {
    expect(parseDuration("90s")).toBe(90);
    expect(parseDuration("15m")).toBe(900);
    expect(parseDuration("1h")).toBe(3600);
    expect(parseDuration("7d")).toBe(604_800);
    expect(parseDuration("45")).toBe(45);
  });

  it.each(["", "1x", "h", "-5s", "1.5h", " 1h", "1h ", "0", "0s", "1e3", "99999999999999999999d"])(
    "when the duration is %j, then it is INVALID_ARGUMENT",
    (s) => {
      expect(() => parseDuration(s)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    },
  );
});
