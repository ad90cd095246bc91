/** `secretd token mint`: HS256 tokens the verifier accepts, and the --ttl syntax. */
import { SignJWT, type JWTPayload } from "jose";
import { invalid } from "../errors.js";

export interface MintOptions {
  secret: Uint8Array;
  tenant: string;
  sub: string;
  roles?: string[];
  meshes?: string[];
  ttlSec: number;
  issuer?: string;
  audience?: string;
  /** Default "tenant". */
  tenantClaim?: string;
}

export async function mintToken(opts: MintOptions): Promise<string> {
  if (opts.tenant === "") throw invalid("tenant", "must not be empty");
  if (opts.sub === "") throw invalid("sub", "must not be empty");
  if (!Number.isSafeInteger(opts.ttlSec) || opts.ttlSec <= 0) throw invalid("ttl", "must be a positive whole number of seconds");
  const claims: JWTPayload = { [opts.tenantClaim ?? "tenant"]: opts.tenant };
  if (opts.roles !== undefined) claims.roles = opts.roles;
  if (opts.meshes !== undefined) claims.meshes = opts.meshes;
  const iat = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(opts.sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + opts.ttlSec);
  if (opts.issuer !== undefined) jwt.setIssuer(opts.issuer);
  if (opts.audience !== undefined) jwt.setAudience(opts.audience);
  return jwt.sign(opts.secret);
}
