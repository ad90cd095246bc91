/**
 * JWT attack suite against the live server (SPEC §2). The server trusts BOTH an HS256
 * secret file and a JWKS file (RSA, EC and Ed25519 public keys), and checks issuer and
 * audience, which is the configuration where algorithm confusion would bite: every
 * forged, stale, misdirected or malformed credential must be UNAUTHENTICATED, valid
 * tokens of each family must be accepted, and no token (nor its signature) may reach a
 * log line or an error message.
 */
import { createHmac, createPublicKey } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetSecretRequest, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { grpcFrame, rawRequest } from "./raw-http2.js";

const ISS = "https://issuer.secretd.test";
const AUD = "secretd-attack-suite";
const HS_SECRET = Buffer.from("attack-suite-hs256-secret-0123456789abcdef");
const MESH = "attack";
const NAME = "crown-jewels";

const now = Math.floor(Date.now() / 1000);
const b64u = (x: string | Uint8Array): string => Buffer.from(x).toString("base64url");

/** Claims of a valid token; a claim set to undefined is left out. */
function claims(over: Record<string, unknown> = {}): JWTPayload {
  const c: Record<string, unknown> = { sub: "alice", tenant: "acme", roles: ["tenant-admin"], iss: ISS, aud: AUD, iat: now, exp: now + 600, ...over };
  for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
  return c as JWTPayload;
}

/** A compact JWS built by hand, so nothing in a library can refuse to forge it. */
function handBuilt(header: Record<string, unknown>, payload: JWTPayload, sign: (input: string) => Buffer): string {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  return `${input}.${b64u(sign(input))}`;
}

const hmac = (key: string | Buffer) => (input: string): Buffer => createHmac("sha256", key).update(input).digest();
const unsigned = (): Buffer => Buffer.alloc(0);

async function signed(payload: JWTPayload, key: CryptoKey | Uint8Array, header: { alg: string; kid?: string }): Promise<string> {
  return new SignJWT(payload).setProtectedHeader(header).sign(key);
}

// ---- keys: the trusted ones (in the JWKS) and an attacker's ----
const rsa = await generateKeyPair("RS256", { extractable: true });
const ec = await generateKeyPair("ES256", { extractable: true });
const ed = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
const attackerRsa = await generateKeyPair("RS256", { extractable: true });

const jwk = async (k: CryptoKey, kid: string, alg: string): Promise<JWK> => ({ ...(await exportJWK(k)), kid, alg, use: "sig" });
const JWKS = { keys: [await jwk(rsa.publicKey, "rsa-1", "RS256"), await jwk(ec.publicKey, "ec-1", "ES256"), await jwk(ed.publicKey, "ed-1", "EdDSA")] };

const rsaPem = await exportSPKI(rsa.publicKey);
const ecPem = await exportSPKI(ec.publicKey);
const rsaDer = createPublicKey(rsaPem).export({ type: "spki", format: "der" });
const ecDer = createPublicKey(ecPem).export({ type: "spki", format: "der" });

/** The same signature bytes, spelled with another last base64url character (unused low bits set). */
function nonCanonical(token: string): string {
  const [h, p, sig] = token.split(".") as [string, string, string];
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const unusedBits = (6 - ((Buffer.from(sig, "base64url").length * 8) % 6)) % 6;
  const last = alphabet.indexOf(sig.at(-1)!);
  const sibling = alphabet[last ^ ((1 << unusedBits) - 1)]!;
  const spelled = `${sig.slice(0, -1)}${sibling}`;
  if (spelled === sig || !Buffer.from(spelled, "base64url").equals(Buffer.from(sig, "base64url"))) throw new Error("no non-canonical spelling");
  return `${h}.${p}.${spelled}`;
}

// ---- tokens the server must accept ----
const GOOD = {
  hs256: await signed(claims(), HS_SECRET, { alg: "HS256" }),
  rs256: await signed(claims(), rsa.privateKey, { alg: "RS256", kid: "rsa-1" }),
  es256: await signed(claims(), ec.privateKey, { alg: "ES256", kid: "ec-1" }),
  eddsa: await signed(claims(), ed.privateKey, { alg: "EdDSA", kid: "ed-1" }),
  lowercase: await signed(claims({ sub: "lower" }), HS_SECRET, { alg: "HS256" }),
  /** Exactly the 24 h bound, an iat within the clock-skew allowance, and no iat at all. */
  atBound: await signed(claims({ iat: now, exp: now + 24 * 3600 }), HS_SECRET, { alg: "HS256" }),
  skewedIat: await signed(claims({ iat: now + 30, exp: now + 600 }), HS_SECRET, { alg: "HS256" }),
  noIat: await signed(claims({ iat: undefined, exp: now + 600 }), HS_SECRET, { alg: "HS256" }),
  unicode: await signed(claims({ sub: "zoë-😀" }), HS_SECRET, { alg: "HS256" }),
};

const bearer = (token: string, scheme = "Bearer"): Metadata => {
  const md = new Metadata();
  md.set("authorization", `${scheme} ${token}`);
  return md;
};
const withKey = (key: string, value: string | Buffer): Metadata => {
  const md = new Metadata();
  md.set(key, value);
  return md;
};

interface Attack {
  readonly when: string;
  readonly md: Metadata;
  /** The credential material this attack sends, checked against logs and messages. */
  readonly tokens: readonly string[];
}

const attack = (when: string, token: string): Attack => ({ when, md: bearer(token), tokens: [token] });

const noneHeader = (alg: string): Record<string, unknown> => ({ alg, typ: "JWT" });
const oversized = await signed(claims({ pad: "p".repeat(9 * 1024) }), HS_SECRET, { alg: "HS256" });
const hugeGarbage = `${b64u("{}")}.${"A".repeat(32 * 1024)}.${"B".repeat(64)}`;

const ATTACKS: Attack[] = [
  // alg none, whatever its spelling, with or without a signature part
  attack("alg is none and the signature is empty", handBuilt(noneHeader("none"), claims(), unsigned)),
  attack("alg is None", handBuilt(noneHeader("None"), claims(), unsigned)),
  attack("alg is NONE", handBuilt(noneHeader("NONE"), claims(), unsigned)),
  attack("alg is none with a signature copied from a valid token", `${handBuilt(noneHeader("none"), claims(), unsigned)}${GOOD.hs256.split(".")[2]}`),
  attack("alg is none and the token has only two parts", handBuilt(noneHeader("none"), claims(), unsigned).slice(0, -1)),
  attack("the alg header is missing", handBuilt({ typ: "JWT" }, claims(), hmac(HS_SECRET))),
  attack("the alg header is empty", handBuilt({ alg: "" }, claims(), hmac(HS_SECRET))),
  attack("the alg header is an array", handBuilt({ alg: ["HS256"] }, claims(), hmac(HS_SECRET))),
  // algorithm confusion: a public key used as the HMAC secret
  attack("HS256 is signed with the RSA public key PEM", handBuilt({ alg: "HS256" }, claims(), hmac(rsaPem))),
  attack("HS256 is signed with the RSA public key PEM and names its kid", handBuilt({ alg: "HS256", kid: "rsa-1" }, claims(), hmac(rsaPem))),
  attack("HS256 is signed with the RSA public key PEM without its trailing newline", handBuilt({ alg: "HS256", kid: "rsa-1" }, claims(), hmac(rsaPem.trimEnd()))),
  attack("HS256 is signed with the RSA public key DER", handBuilt({ alg: "HS256", kid: "rsa-1" }, claims(), hmac(rsaDer))),
  attack("HS256 is signed with the RSA public JWK JSON", handBuilt({ alg: "HS256", kid: "rsa-1" }, claims(), hmac(JSON.stringify(JWKS.keys[0])))),
  attack("HS256 is signed with the EC public key PEM", handBuilt({ alg: "HS256" }, claims(), hmac(ecPem))),
  attack("HS256 is signed with the EC public key PEM and names its kid", handBuilt({ alg: "HS256", kid: "ec-1" }, claims(), hmac(ecPem))),
  attack("HS256 is signed with the EC public key DER", handBuilt({ alg: "HS256", kid: "ec-1" }, claims(), hmac(ecDer))),
  attack("HS512 (not allowed) is signed with the real HS256 secret", await signed(claims(), HS_SECRET, { alg: "HS512" })),
  attack("RS256 carries an HMAC made with the RSA public key PEM", handBuilt({ alg: "RS256", kid: "rsa-1" }, claims(), hmac(rsaPem))),
  attack("RS256 carries an HMAC made with the HS256 secret", handBuilt({ alg: "RS256", kid: "rsa-1" }, claims(), hmac(HS_SECRET))),
  attack("ES256 names the kid of the RSA key", handBuilt({ alg: "ES256", kid: "rsa-1" }, claims(), () => Buffer.alloc(64, 1))),
  // keys the server does not trust
  attack("RS256 is signed by an unknown key with an unknown kid", await signed(claims(), attackerRsa.privateKey, { alg: "RS256", kid: "no-such-kid" })),
  attack("RS256 is signed by an unknown key that claims a trusted kid", await signed(claims(), attackerRsa.privateKey, { alg: "RS256", kid: "rsa-1" })),
  attack(
    "RS256 embeds the attacker's own key in a jwk header",
    await new SignJWT(claims()).setProtectedHeader({ alg: "RS256", jwk: await exportJWK(attackerRsa.publicKey) }).sign(attackerRsa.privateKey),
  ),
  attack("HS256 is signed with another secret", await signed(claims(), Buffer.from("x".repeat(48)), { alg: "HS256" })),
  attack("the payload of a valid token is swapped for another tenant's", (() => {
    const [h, , sig] = GOOD.hs256.split(".");
    return `${h}.${b64u(JSON.stringify(claims({ tenant: "globex" })))}.${sig}`;
  })()),
  attack("the signature of a valid RS256 token is truncated", GOOD.rs256.slice(0, -8)),
  // time, issuer and audience
  attack("the token expired", await signed(claims({ iat: now - 3600, exp: now - 600 }), HS_SECRET, { alg: "HS256" })),
  attack("the RS256 token expired", await signed(claims({ iat: now - 3600, exp: now - 600 }), rsa.privateKey, { alg: "RS256", kid: "rsa-1" })),
  attack("the token is not yet valid", await signed(claims({ nbf: now + 3600, exp: now + 7200 }), HS_SECRET, { alg: "HS256" })),
  attack("exp is a string", await signed(claims({ exp: String(now + 600) }), HS_SECRET, { alg: "HS256" })),
  attack("the issuer is wrong", await signed(claims({ iss: "https://evil.test" }), HS_SECRET, { alg: "HS256" })),
  attack("the issuer is missing", await signed(claims({ iss: undefined }), HS_SECRET, { alg: "HS256" })),
  attack("the audience is wrong", await signed(claims({ aud: "someone-else" }), HS_SECRET, { alg: "HS256" })),
  attack("the audience is missing", await signed(claims({ aud: undefined }), ec.privateKey, { alg: "ES256", kid: "ec-1" })),
  // the tenant and sub claims
  attack("the tenant claim is missing", await signed(claims({ tenant: undefined }), HS_SECRET, { alg: "HS256" })),
  attack("the tenant claim is empty", await signed(claims({ tenant: "" }), HS_SECRET, { alg: "HS256" })),
  attack("the tenant claim is a number", await signed(claims({ tenant: 42 }), HS_SECRET, { alg: "HS256" })),
  attack("the tenant claim is an array", await signed(claims({ tenant: ["acme"] }), HS_SECRET, { alg: "HS256" })),
  attack("the tenant claim is an object", await signed(claims({ tenant: { name: "acme" } }), rsa.privateKey, { alg: "RS256", kid: "rsa-1" })),
  attack("the tenant claim is null", await signed(claims({ tenant: null }), HS_SECRET, { alg: "HS256" })),
  attack("the tenant claim is true", await signed(claims({ tenant: true }), HS_SECRET, { alg: "HS256" })),
  attack("sub is missing", await signed(claims({ sub: undefined }), HS_SECRET, { alg: "HS256" })),
  attack("sub is empty", await signed(claims({ sub: "" }), ed.privateKey, { alg: "EdDSA", kid: "ed-1" })),
  attack("roles is a string instead of an array", await signed(claims({ roles: "tenant-admin" }), HS_SECRET, { alg: "HS256" })),
  // malformed or oversized
  attack("the token is larger than 8 KiB", oversized),
  attack("the token is 32 KiB of garbage", hugeGarbage),
  attack("the token is not a JWT", "not-a-jwt"),
  attack("the token has four parts", `${GOOD.hs256}.${GOOD.hs256.split(".")[2]}`),
  // #16 item 8: identities that are not one spelling (lone surrogates collide as U+FFFD on disk)
  attack("sub holds a lone low surrogate", await signed(claims({ sub: "bob\udfff" }), HS_SECRET, { alg: "HS256" })),
  attack("sub holds a lone high surrogate", await signed(claims({ sub: "bob\ud800x" }), rsa.privateKey, { alg: "RS256", kid: "rsa-1" })),
  attack("the tenant claim holds a lone surrogate", await signed(claims({ tenant: "acme\udc00" }), HS_SECRET, { alg: "HS256" })),
  attack("sub holds a control character", await signed(claims({ sub: "alice\u0000" }), HS_SECRET, { alg: "HS256" })),
  attack("the tenant claim holds a newline", await signed(claims({ tenant: "acme\nglobex" }), HS_SECRET, { alg: "HS256" })),
  attack("a role holds a lone surrogate", await signed(claims({ roles: ["tenant-admin\udfff"] }), HS_SECRET, { alg: "HS256" })),
  attack("a mesh holds a C1 control character", await signed(claims({ meshes: ["attack\u0085"] }), HS_SECRET, { alg: "HS256" })),
  // #16 item 12: "*" mixed with names would silently mean every mesh
  attack("meshes mixes a name with \"*\"", await signed(claims({ meshes: ["dev", "*"] }), HS_SECRET, { alg: "HS256" })),
  // #16 item 9: one token, several spellings
  attack("the HS256 signature's last character is a non-canonical sibling", nonCanonical(GOOD.hs256)),
  attack("the EdDSA signature's last character is a non-canonical sibling", nonCanonical(GOOD.eddsa)),
  attack("the signature carries base64 padding", `${GOOD.hs256}=`),
  attack("the payload segment is padded", (() => {
    const [h, p, sig] = GOOD.hs256.split(".");
    return `${h}.${p}${"=".repeat((4 - (p!.length % 4)) % 4 || 4)}.${sig}`;
  })()),
  // #16 item 10: lifetimes
  attack("exp is missing", await signed(claims({ exp: undefined }), HS_SECRET, { alg: "HS256" })),
  attack("exp is missing from an RS256 token", await signed(claims({ exp: undefined }), rsa.privateKey, { alg: "RS256", kid: "rsa-1" })),
  attack("exp is in the year 2999", await signed(claims({ exp: Math.floor(Date.UTC(2999, 0, 1) / 1000) }), HS_SECRET, { alg: "HS256" })),
  attack("exp is 1e300", await signed(claims({ exp: 1e300 }), HS_SECRET, { alg: "HS256" })),
  attack("exp - iat is one second over 24 h", await signed(claims({ iat: now, exp: now + 24 * 3600 + 1 }), HS_SECRET, { alg: "HS256" })),
  attack("there is no iat and exp is more than 24 h away", await signed(claims({ iat: undefined, exp: now + 25 * 3600 }), HS_SECRET, { alg: "HS256" })),
  attack("iat is an hour in the future", await signed(claims({ iat: now + 3600, exp: now + 7200 }), HS_SECRET, { alg: "HS256" })),
  attack("iat is in the past far enough that exp - iat is over 24 h", await signed(claims({ iat: now - 30 * 3600, exp: now + 600 }), HS_SECRET, { alg: "HS256" })),
  attack("the header is not JSON", `${b64u("{alg:HS256")}.${GOOD.hs256.split(".")[1]}.${GOOD.hs256.split(".")[2]}`),
];

// Metadata attacks: the credential is fine, where or how it is sent is not.
const METADATA_ATTACKS: Attack[] = [
  { when: "the token is in x-authorization", md: withKey("x-authorization", `Bearer ${GOOD.hs256}`), tokens: [GOOD.hs256] },
  { when: "the token is in authentication", md: withKey("authentication", `Bearer ${GOOD.hs256}`), tokens: [GOOD.hs256] },
  { when: "the token is in a token key", md: withKey("token", GOOD.hs256), tokens: [GOOD.hs256] },
  { when: "the token is in authorization-bin", md: withKey("authorization-bin", Buffer.from(`Bearer ${GOOD.hs256}`)), tokens: [GOOD.hs256] },
  { when: "there is no authorization at all", md: new Metadata(), tokens: [] },
  { when: "authorization is empty", md: withKey("authorization", ""), tokens: [] },
  { when: "authorization is Bearer with no token", md: withKey("authorization", "Bearer"), tokens: [] },
  { when: "authorization is Bearer and spaces", md: withKey("authorization", "Bearer    "), tokens: [] },
  { when: "the token has no scheme", md: withKey("authorization", GOOD.hs256), tokens: [GOOD.hs256] },
  { when: "the scheme is Basic", md: withKey("authorization", `Basic ${GOOD.hs256}`), tokens: [GOOD.hs256] },
  { when: "the scheme is Bearer: with a colon", md: withKey("authorization", `Bearer: ${GOOD.hs256}`), tokens: [GOOD.hs256] },
  { when: "the token is followed by a second word", md: withKey("authorization", `Bearer ${GOOD.hs256} extra`), tokens: [GOOD.hs256] },
];

let s: TestServer;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "secretd-jwt-attacks-"));
  const secretFile = path.join(dir, "hs256.key");
  const jwksFile = path.join(dir, "jwks.json");
  writeFileSync(secretFile, HS_SECRET);
  chmodSync(secretFile, 0o600);
  writeFileSync(jwksFile, JSON.stringify(JWKS));
  s = await startTestServer({ jwtHs256SecretFile: secretFile, jwtJwksFile: jwksFile, jwtIssuer: ISS, jwtAudience: AUD });
  await s.call("createSecret", { mesh: MESH, name: NAME, stringData: { pw: "attack-suite-value" } }, GOOD.hs256);
});

afterAll(async () => {
  await s?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const getSecret = (md: Metadata): Promise<Secret> => s.call<Secret>("getSecret", { mesh: MESH, name: NAME }, undefined, md);

async function failure(md: Metadata): Promise<ServiceError> {
  const outcome = await getSecret(md).then(
    (res) => ({ res }),
    (err: unknown) => ({ err: err as ServiceError }),
  );
  if ("res" in outcome) throw new Error("the server accepted a credential it must refuse");
  return outcome.err;
}

/** The parts of a credential that must never appear in a log line or an error message. */
function secretsOf(token: string): string[] {
  const parts = token.split(".");
  const out = [token];
  for (const p of parts.slice(1)) if (p.length >= 16) out.push(p);
  return out;
}

describe("valid tokens", () => {
  it.each([
    ["HS256", GOOD.hs256],
    ["RS256", GOOD.rs256],
    ["ES256", GOOD.es256],
    ["EdDSA", GOOD.eddsa],
    ["24 h lifetime (the bound)", GOOD.atBound],
    ["iat 30 s ahead (within the skew allowance)", GOOD.skewedIat],
    ["iat-less", GOOD.noIat],
    ["well-formed non-ASCII sub", GOOD.unicode],
  ])("when a %s token is valid, then the call succeeds", async (_alg, token) => {
    const got = await getSecret(bearer(token));
    expect(Buffer.from(got.data.pw!).toString()).toBe("attack-suite-value");
  });

  it("when the scheme is a lowercase bearer, then the token is accepted", async () => {
    const got = await getSecret(bearer(GOOD.lowercase, "bearer"));
    expect(got.name).toBe(NAME);
  });
});

describe("forged, stale and malformed tokens", () => {
  it.each(ATTACKS.map((a) => [a.when, a] as const))("when %s, then UNAUTHENTICATED and the message does not quote it", async (_when, a) => {
    const err = await failure(a.md);
    expect(err.code).toBe(status.UNAUTHENTICATED);
    for (const t of a.tokens) for (const part of secretsOf(t)) expect(err.details).not.toContain(part);
  });
});

describe("credentials in the wrong place or shape", () => {
  it.each(METADATA_ATTACKS.map((a) => [a.when, a] as const))("when %s, then UNAUTHENTICATED and the message does not quote it", async (_when, a) => {
    const err = await failure(a.md);
    expect(err.code).toBe(status.UNAUTHENTICATED);
    for (const t of a.tokens) for (const part of secretsOf(t)) expect(err.details).not.toContain(part);
  });
});

/**
 * Two `authorization` fields in one request. grpc-js clients refuse to send them, so
 * these go out as hand-encoded HTTP/2. The result is read from the server's log line,
 * found by the request id.
 */
describe("duplicate authorization fields", () => {
  let seq = 0;
  async function twoValues(first: string, second: string): Promise<string | undefined> {
    const rid = `dup-auth-${++seq}`;
    const end = await rawRequest(
      s.app.port,
      [
        [":method", "POST"],
        [":scheme", "http"],
        [":path", "/secrets.v1.SecretService/GetSecret"],
        [":authority", s.address],
        ["content-type", "application/grpc"],
        ["te", "trailers"],
        ["x-request-id", rid],
        ["authorization", first],
        ["authorization", second],
      ],
      grpcFrame(GetSecretRequest.encode(GetSecretRequest.fromPartial({ mesh: MESH, name: NAME })).finish()),
    );
    expect(end.kind).toBe("ended");
    const line = s.logs.map((l) => JSON.parse(l) as { rid?: string; code?: string }).find((l) => l.rid === rid);
    return line?.code;
  }

  it("when a malformed value comes before a valid one, then UNAUTHENTICATED", async () => {
    expect(await twoValues("Bearer not-a-jwt", `Bearer ${GOOD.hs256}`)).toBe("UNAUTHENTICATED");
    expect(await twoValues("Basic dXNlcjpwYXNz", `Bearer ${GOOD.rs256}`)).toBe("UNAUTHENTICATED");
  });

  // KNOWN BUG (reported, not fixed here): node:http2 keeps only the FIRST value of a
  // single-value header such as `authorization` and drops the rest before grpc-js builds
  // the call metadata, so bearerToken()'s "more than one authorization value" check never
  // sees the duplicate and the first value is used. When this is fixed, this test fails:
  // turn it into a plain `it`.
  it.fails("when a valid value comes before another value, then UNAUTHENTICATED (fails today: the first value is used)", async () => {
    expect(await twoValues(`Bearer ${GOOD.hs256}`, "Bearer not-a-jwt")).toBe("UNAUTHENTICATED");
  });
});

describe("logs", () => {
  it("when every attack and every valid call has run, then no log line holds a token, its payload or its signature", async () => {
    // Run them all once more here, so this test stands on its own whatever the order.
    for (const a of [...ATTACKS, ...METADATA_ATTACKS]) await failure(a.md);
    for (const t of [GOOD.hs256, GOOD.rs256, GOOD.es256, GOOD.eddsa]) await getSecret(bearer(t));
    await getSecret(bearer(GOOD.lowercase, "bearer"));

    const all = [...ATTACKS, ...METADATA_ATTACKS].flatMap((a) => a.tokens).concat(Object.values(GOOD));
    expect(s.logs.length).toBeGreaterThan(ATTACKS.length);
    const leaks = s.logs.filter((line) => all.some((t) => secretsOf(t).some((part) => line.includes(part))));
    expect(leaks).toEqual([]);
    // A refused call is still one log line, with its code and no principal.
    const refused = s.logs.map((l) => JSON.parse(l) as { code?: string; tenant?: string }).filter((l) => l.code === "UNAUTHENTICATED");
    expect(refused.length).toBeGreaterThanOrEqual(ATTACKS.length + METADATA_ATTACKS.length);
    expect(refused.every((l) => l.tenant === undefined)).toBe(true);
  });
});
