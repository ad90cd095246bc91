/**
 * Bearer-JWT verification (SPEC §2): the one place a Principal is made from a token.
 *
 * Contract: every rejection is UNAUTHENTICATED with a short generic reason; messages
 * never hold the token, a claim value or key material (the jose error is the cause).
 * HS* tokens are verified only with the HS256 secret and every other algorithm only
 * with the JWKS, so a token cannot pick a public key as its HMAC secret. A token
 * naming the OIDC issuer (--jwt-oidc-issuer) is verified with that issuer's keys only,
 * so no other key source can sign for it.
 */
import { hash } from "node:crypto";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from "jose";
import { SecretdError } from "../errors.js";
import type { Principal } from "../domain/principal.js";
import { isCleanIdentifier } from "../domain/text.js";
import { mappedPrincipal, type ClaimsMapping } from "./claims-mapping.js";

export interface VerifierOptions {
  hs256Secret?: Uint8Array;
  /** A local JWKS (public keys). */
  jwks?: { keys: JWK[] };
  jwksUrl?: string;
  /**
   * An OIDC issuer's keys (oidc-key-set.ts): a token whose `iss` is this issuer is
   * verified with these keys only, its `iss` and `aud` (audience, then required) checked.
   */
  oidc?: { issuer: string; getKey: JWTVerifyGetKey };
  /** Tokens whose verified `iss` it maps become Principals through it (claims-mapping.ts). */
  claimsMapping?: ClaimsMapping;
  issuer?: string;
  audience?: string;
  algorithms: readonly string[];
  tenantClaim: string;
  /** Verified tokens kept; default 10_000; 0 disables the cache. */
  cacheSize?: number;
  /** Default 0. */
  clockToleranceSec?: number;
  /** Longest accepted lifetime, exp - iat (exp - now without iat); default 24 h. */
  maxTtlSec?: number;
  /** Milliseconds since epoch; for tests. */
  now?: () => number;
}

export interface TokenVerifier {
  verify(token: string): Promise<Principal>;
}

const DEFAULT_CACHE_SIZE = 10_000;
export const DEFAULT_MAX_TTL_SEC = 24 * 3600;
/** How far in the future an `iat` may be: clocks of issuer and server drift a little. */
export const IAT_SKEW_SEC = 60;

/**
 * Every cache entry is re-verified at least this often (tokens without `exp` included),
 * so a key removed from the JWKS stops being honoured within this time.
 */
export const MAX_CACHE_AGE_MS = 5 * 60_000;

const HMAC_ALG = /^HS\d+$/;

function rejected(reason: string, cause?: unknown): SecretdError {
  return new SecretdError("UNAUTHENTICATED", `invalid token: ${reason}`, cause === undefined ? undefined : { cause });
}

/**
 * Verified tokens, bounded (the oldest insertion is evicted first) and keyed by a
 * SHA-256 of the token so the token itself is never held. An entry is never served at
 * or past its `exp`, before its `nbf`, or more than MAX_CACHE_AGE_MS after insertion.
 */
export class VerifiedTokenCache {
  readonly #entries = new Map<string, { principal: Principal; notBeforeMs: number; notAfterMs: number }>();

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.#entries.size;
  }

  get(token: string, nowMs: number): Principal | undefined {
    if (this.capacity <= 0) return undefined;
    const key = digest(token);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (nowMs >= entry.notAfterMs) {
      this.#entries.delete(key);
      return undefined;
    }
    return nowMs < entry.notBeforeMs ? undefined : entry.principal;
  }

  /** `nbf` in seconds since epoch, as in the token. */
  set(token: string, principal: Principal, nbf: number | undefined, nowMs: number): void {
    if (this.capacity <= 0) return;
    const notAfterMs = Math.min(nowMs + MAX_CACHE_AGE_MS, principal.exp === undefined ? Infinity : principal.exp * 1000);
    if (nowMs >= notAfterMs) return;
    const key = digest(token);
    this.#entries.delete(key);
    while (this.#entries.size >= this.capacity) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { principal, notBeforeMs: nbf === undefined ? -Infinity : nbf * 1000, notAfterMs });
  }
}

/** SHA-256 in one call (crypto.hash: ~0.6 us here, a Hash object ~1.5 us; this runs per call). */
function digest(token: string): string {
  return hash("sha256", token, "base64");
}

/** The JWKS resolver: the local set first, then the URL for a key it does not hold. */
function keySet(opts: VerifierOptions): JWTVerifyGetKey | undefined {
  let local: JWTVerifyGetKey | undefined;
  let remote: JWTVerifyGetKey | undefined;
  try {
    if (opts.jwks !== undefined) local = createLocalJWKSet(opts.jwks);
  } catch (cause) {
    throw new SecretdError("FAILED_PRECONDITION", "JWKS is malformed: expected {\"keys\": [JWK, ...]}", { cause });
  }
  if (opts.jwksUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(opts.jwksUrl);
    } catch (cause) {
      throw new SecretdError("FAILED_PRECONDITION", "JWKS URL is not a valid URL", { cause });
    }
    remote = createRemoteJWKSet(url);
  }
  if (local !== undefined && remote !== undefined) {
    const [l, r] = [local, remote];
    return async (header, token) => {
      try {
        return await l(header, token);
      } catch (err) {
        if (err instanceof errors.JWKSNoMatchingKey) return r(header, token);
        throw err;
      }
    };
  }
  return local ?? remote;
}

/** A JWKS may hold several keys a kid-less token matches: the first that verifies wins. */
async function verifyWithKeySet(token: string, getKey: JWTVerifyGetKey, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, getKey, options)).payload;
  } catch (err) {
    if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
    let last: unknown = err;
    for await (const key of err) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (e) {
        // A claim failure after a good signature is final; a bad signature tries the next key.
        if (!(e instanceof errors.JWSSignatureVerificationFailed)) throw e;
        last = e;
      }
    }
    throw last;
  }
}

const CLAIM_REASONS: Readonly<Record<string, string>> = {
  nbf: "not yet valid",
  iss: "wrong issuer",
  aud: "wrong audience",
};

function reasonOf(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "expired";
  if (err instanceof errors.JWTClaimValidationFailed) {
    // "invalid" = a registered claim of the wrong type; otherwise missing or mismatched.
    if (err.reason === "invalid") return "malformed claims";
    return CLAIM_REASONS[err.claim] ?? "claims rejected";
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return "algorithm not allowed";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "bad signature";
  if (err instanceof errors.JWKSNoMatchingKey) return "unknown key";
  if (err instanceof errors.JWKSMultipleMatchingKeys) return "ambiguous key";
  if (err instanceof errors.JWKSTimeout) return "key set unavailable";
  if (err instanceof errors.JWKSInvalid) return "key set unusable";
  if (err instanceof errors.JOSENotSupported) return "unsupported algorithm or key";
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return "malformed";
  return "verification failed";
}

function stringArray(payload: JWTPayload, claim: string): string[] | undefined {
  const v = payload[claim];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x): x is string => typeof x === "string")) {
    throw rejected(`claim "${claim}" must be an array of strings`);
  }
  if (!v.every(isCleanIdentifier)) throw rejected(`claim "${claim}" holds a string that is not well-formed Unicode or has control characters`);
  return v;
}

function nonEmptyString(payload: JWTPayload, claim: string): string {
  const v = payload[claim];
  if (typeof v !== "string" || v === "") throw rejected(`claim "${claim}" must be a non-empty string`);
  if (!isCleanIdentifier(v)) throw rejected(`claim "${claim}" must be well-formed Unicode without control characters`);
  return v;
}

/**
 * A compact JWS has exactly one spelling: each segment canonical base64url (no padding,
 * unused low bits of the last character zero), so one token is never several cache keys.
 */
function requireCanonical(token: string): void {
  const segments = token.split(".");
  if (segments.length !== 3) throw rejected("malformed");
  for (const seg of segments) {
    if (Buffer.from(seg, "base64url").toString("base64url") !== seg) throw rejected("malformed: non-canonical base64url");
  }
}

/** `exp` required; exp - iat (or exp - now) at most maxTtlSec; no `iat` in the future. */
function requireBoundedLifetime(payload: JWTPayload, nowMs: number, maxTtlSec: number): void {
  const nowSec = nowMs / 1000;
  const { exp, iat } = payload;
  if (typeof exp !== "number") throw rejected("exp is required");
  if (iat !== undefined && iat > nowSec + IAT_SKEW_SEC) throw rejected("issued in the future (iat)");
  if (exp - (iat ?? nowSec) > maxTtlSec) throw rejected(`lifetime exceeds the ${maxTtlSec} s allowed (exp - iat)`);
}

export function principalFrom(payload: JWTPayload, tenantClaim: string): Principal {
  const sub = nonEmptyString(payload, "sub");
  const tenant = nonEmptyString(payload, tenantClaim);
  const roles = stringArray(payload, "roles") ?? [];
  const meshes = stringArray(payload, "meshes");
  // ["x", "*"] would silently mean every mesh: a token says one or the other.
  if (meshes !== undefined && meshes.includes("*") && meshes.length > 1) throw rejected('claim "meshes" must be ["*"] or a list of meshes, not both');
  // Frozen: a cached Principal is shared by every call presenting the same token.
  return Object.freeze({
    sub,
    tenant,
    roles: Object.freeze([...roles]),
    meshes: meshes === undefined || meshes.includes("*") ? undefined : Object.freeze([...meshes]),
    exp: payload.exp,
  });
}

/** The unverified `iss`: it only picks the key set, whose verification then pins `iss` to it. */
function claimedIssuer(token: string): string | undefined {
  try {
    const iss = decodeJwt(token).iss;
    return typeof iss === "string" ? iss : undefined;
  } catch {
    return undefined;
  }
}

export function createVerifier(opts: VerifierOptions): TokenVerifier {
  if (opts.oidc !== undefined && (opts.audience === undefined || opts.audience === "")) {
    throw new SecretdError("FAILED_PRECONDITION", "an OIDC issuer needs an audience (--jwt-audience): its tokens are minted for many audiences");
  }
  const oidc = opts.oidc;
  const mapping = opts.claimsMapping;
  // "none" is dropped whatever its spelling: an unsigned token is never a credential.
  const allowed = new Set(opts.algorithms.filter((a) => a.toLowerCase() !== "none"));
  const getKey = keySet(opts);
  const hmacSecret = opts.hs256Secret;
  const now = opts.now ?? Date.now;
  const cache = new VerifiedTokenCache(opts.cacheSize ?? DEFAULT_CACHE_SIZE);
  const maxTtlSec = opts.maxTtlSec ?? DEFAULT_MAX_TTL_SEC;
  const base: JWTVerifyOptions = {
    clockTolerance: opts.clockToleranceSec ?? 0,
    ...(opts.issuer !== undefined ? { issuer: opts.issuer } : {}),
    ...(opts.audience !== undefined ? { audience: opts.audience } : {}),
  };

  async function verifyUncached(token: string, nowMs: number): Promise<JWTPayload> {
    requireCanonical(token);
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch (cause) {
      throw rejected("malformed", cause);
    }
    if (typeof alg !== "string" || alg === "") throw rejected("malformed");
    if (!allowed.has(alg)) throw rejected("algorithm not allowed");
    // Exactly the header's algorithm, already checked against the allow-list.
    const options: JWTVerifyOptions = { ...base, algorithms: [alg], currentDate: new Date(nowMs) };
    // Only the OIDC issuer's keys sign for it: not the HS256 secret, not another JWKS.
    const fromOidc = oidc !== undefined && claimedIssuer(token) === oidc.issuer;
    try {
      if (HMAC_ALG.test(alg)) {
        if (hmacSecret === undefined || fromOidc) throw rejected("algorithm not allowed");
        return (await jwtVerify(token, hmacSecret, options)).payload;
      }
      if (fromOidc) {
        return await verifyWithKeySet(token, oidc.getKey, { ...options, issuer: oidc.issuer });
      }
      if (getKey === undefined) throw rejected(oidc !== undefined ? "wrong issuer" : "algorithm not allowed");
      return await verifyWithKeySet(token, getKey, options);
    } catch (err) {
      if (err instanceof SecretdError) throw err;
      throw rejected(reasonOf(err), err);
    }
  }

  return {
    async verify(token: string): Promise<Principal> {
      const nowMs = now();
      const hit = cache.get(token, nowMs);
      if (hit !== undefined) return hit;
      const payload = await verifyUncached(token, nowMs);
      requireBoundedLifetime(payload, nowMs, maxTtlSec);
      const mapped = typeof payload.iss === "string" ? mapping?.issuers.get(payload.iss) : undefined;
      const principal = mapped !== undefined ? mappedPrincipal(mapped, payload) : principalFrom(payload, opts.tenantClaim);
      cache.set(token, principal, payload.nbf, nowMs);
      return principal;
    },
  };
}
