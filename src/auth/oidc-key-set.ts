/**
 * The public keys of an OIDC issuer (SPEC §7 --jwt-oidc-issuer), found the way a
 * Kubernetes API server publishes them: `<issuer>/.well-known/openid-configuration`,
 * whose `issuer` must be the configured one, names `jwks_uri`.
 *
 * Rotation: a token with a `kid` this set does not hold refetches (discovery, then the
 * JWKS) at most once per cooldown; keys older than maxAge are refetched before use, so a
 * key the issuer removed stops verifying within maxAge. A failed refetch keeps the last
 * good keys and is retried after the cooldown. Messages name the URL and HTTP status,
 * never a response body.
 */
import { createLocalJWKSet, errors, type JWTVerifyGetKey } from "jose";
import { SecretdError } from "../errors.js";
import { publicJwks } from "./keys.js";

export interface OidcKeySetOptions {
  issuer: string;
  /** Milliseconds since epoch (the app's clock): cooldown and age are judged by it. */
  now?: () => number;
  /** Least time between two fetches; default 30 s (as jose's remote JWKS). */
  cooldownMs?: number;
  /** Keys fetched longer ago than this are refetched before use; default 5 min. */
  maxAgeMs?: number;
  /** Per HTTP request; default 5 s. */
  timeoutMs?: number;
  /** A refetch while running failed (the last good keys stay). */
  onRefreshError?: (message: string) => void;
}

export const OIDC_COOLDOWN_MS = 30_000;
export const OIDC_MAX_AGE_MS = 5 * 60_000;
const MAX_DOCUMENT_BYTES = 1024 * 1024;

function unavailable(message: string, cause?: unknown): SecretdError {
  return new SecretdError("FAILED_PRECONDITION", message, cause === undefined ? undefined : { cause });
}

/** A URL as messages show it: origin and path, never credentials or a query. */
function shown(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return "(not a URL)";
  }
}

/** The discovery URL: the issuer without a trailing "/", then the well-known path (OIDC Discovery §4). */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
}

async function getJson(url: string, what: string, timeoutMs: number): Promise<unknown> {
  const where = shown(url);
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: "application/json" }, redirect: "error", signal: AbortSignal.timeout(timeoutMs) });
  } catch (cause) {
    const why = cause instanceof Error && cause.name === "TimeoutError" ? "timed out" : "unreachable";
    throw unavailable(`cannot fetch the ${what} ${where}: ${why}`, cause);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw unavailable(`cannot fetch the ${what} ${where}: HTTP ${res.status}`);
  }
  const body = await res.arrayBuffer();
  if (body.byteLength > MAX_DOCUMENT_BYTES) throw unavailable(`the ${what} ${where} is larger than ${MAX_DOCUMENT_BYTES} bytes`);
  try {
    return JSON.parse(Buffer.from(body).toString("utf8"));
  } catch {
    throw unavailable(`the ${what} ${where} is not valid JSON`);
  }
}

/** Discovery, then the JWKS it names, as a jose key resolver. */
async function load(issuer: string, timeoutMs: number): Promise<JWTVerifyGetKey> {
  const url = discoveryUrl(issuer);
  const doc = await getJson(url, "OIDC discovery document", timeoutMs);
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw unavailable(`the OIDC discovery document ${shown(url)} is not a JSON object`);
  const { issuer: said, jwks_uri: jwksUri } = doc as Record<string, unknown>;
  if (said !== issuer) {
    throw unavailable(`the OIDC discovery document ${shown(url)} names another issuer (${typeof said === "string" ? JSON.stringify(said.slice(0, 200)) : "none"}); --jwt-oidc-issuer must be exactly its "issuer"`);
  }
  if (typeof jwksUri !== "string" || !/^https?:\/\//.test(jwksUri)) throw unavailable(`the OIDC discovery document ${shown(url)} has no http(s) "jwks_uri"`);
  const jwks = publicJwks(await getJson(jwksUri, "OIDC JWKS", timeoutMs), `the OIDC JWKS ${shown(jwksUri)}`);
  try {
    return createLocalJWKSet(jwks);
  } catch (cause) {
    throw unavailable(`the OIDC JWKS ${shown(jwksUri)} is malformed`, cause);
  }
}

export class OidcKeySet {
  readonly issuer: string;
  readonly #now: () => number;
  readonly #cooldownMs: number;
  readonly #maxAgeMs: number;
  readonly #timeoutMs: number;
  readonly #onRefreshError: (message: string) => void;
  #keys: JWTVerifyGetKey;
  #fetchedAt: number;
  #attemptedAt: number;
  #inflight: Promise<void> | undefined;

  private constructor(opts: OidcKeySetOptions, keys: JWTVerifyGetKey, now: () => number, at: number) {
    this.issuer = opts.issuer;
    this.#now = now;
    this.#cooldownMs = opts.cooldownMs ?? OIDC_COOLDOWN_MS;
    this.#maxAgeMs = opts.maxAgeMs ?? OIDC_MAX_AGE_MS;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#onRefreshError = opts.onRefreshError ?? (() => undefined);
    this.#keys = keys;
    this.#fetchedAt = at;
    this.#attemptedAt = at;
  }

  /** Fetches discovery and keys once; a failure is FAILED_PRECONDITION saying which step and URL. */
  static async open(opts: OidcKeySetOptions): Promise<OidcKeySet> {
    const now = opts.now ?? Date.now;
    const keys = await load(opts.issuer, opts.timeoutMs ?? 5000);
    return new OidcKeySet(opts, keys, now, now());
  }

  /** The resolver jwtVerify takes. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (this.#now() - this.#fetchedAt >= this.#maxAgeMs) await this.#refresh();
    try {
      return await this.#keys(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      if (!(await this.#refresh())) throw err;
      return this.#keys(header, token);
    }
  };

  /** One fetch at a time, at most one per cooldown; true when new keys came in. */
  async #refresh(): Promise<boolean> {
    if (this.#inflight === undefined) {
      if (this.#now() - this.#attemptedAt < this.#cooldownMs) return false;
      this.#attemptedAt = this.#now();
      this.#inflight = load(this.issuer, this.#timeoutMs)
        .then((keys) => {
          this.#keys = keys;
          this.#fetchedAt = this.#now();
        })
        .catch((err: unknown) => {
          this.#onRefreshError(`${err instanceof Error ? err.message : "refetch failed"}; keeping the last good keys`);
          throw err;
        })
        .finally(() => (this.#inflight = undefined));
    }
    try {
      await this.#inflight;
      return true;
    } catch {
      return false;
    }
  }
}
