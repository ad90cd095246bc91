/**
 * JWT key sources on disk (SPEC §7). Errors name the file, never its content: a JSON
 * parse message would quote part of the file, so it is not even kept as the cause.
 */
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, fsyncSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { makeDirs } from "../make-dirs.js";
import { dirname } from "node:path";
import type { JWK } from "jose";
import { SecretdError } from "../errors.js";

/** HS256 needs a key at least as long as its output (RFC 7518 §3.2). */
export const MIN_HS256_SECRET_BYTES = 32;

function precondition(message: string, cause?: unknown): SecretdError {
  return new SecretdError("FAILED_PRECONDITION", message, cause === undefined ? undefined : { cause });
}

function errnoCode(err: unknown): string {
  return typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : "error";
}

function readKeyFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw precondition(`cannot read ${what} ${path} (${errnoCode(cause)})`, cause);
  }
}

/** The raw file bytes with ONE trailing "\n" or "\r\n" removed (editors add one). */
export function readHs256Secret(path: string): Buffer {
  const raw = readKeyFile(path, "JWT HS256 secret file");
  let end = raw.length;
  if (end > 0 && raw[end - 1] === 0x0a) {
    end -= 1;
    if (end > 0 && raw[end - 1] === 0x0d) end -= 1;
  }
  const secret = raw.subarray(0, end);
  if (secret.length < MIN_HS256_SECRET_BYTES) {
    throw precondition(`JWT HS256 secret file ${path} is too short: it must hold at least ${MIN_HS256_SECRET_BYTES} bytes`);
  }
  return secret;
}

/**
 * Creates a development HS256 secret at `path` when none exists (0600; base64url of 32
 * random bytes plus "\n"). The content is written and fsynced under a temporary name
 * opened with O_EXCL, then linked into place: link() fails if the file exists, so two
 * processes starting together never read a half-written key nor overwrite each other's.
 */
export function ensureDevHs256Secret(path: string): { secret: Buffer; created: boolean } {
  if (existsSync(path)) return { secret: readHs256Secret(path), created: false };
  const dir = dirname(path);
  makeDirs(dir);
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  let created = false;
  const fd = openSync(tmp, "wx", 0o600);
  try {
    try {
      writeSync(fd, `${randomBytes(32).toString("base64url")}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, path);
      created = true;
    } catch (err) {
      if (errnoCode(err) !== "EEXIST") throw err;
    }
  } finally {
    unlinkSync(tmp);
  }
  if (created) fsyncDir(dir);
  return { secret: readHs256Secret(path), created };
}

/** Makes the new directory entry durable; best effort where directories cannot be opened. */
function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Some platforms refuse fsync on a directory; the file itself is already synced.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A JWKS file `{"keys": [...]}` of public keys (a private or symmetric key is refused). */
export function readJwksFile(path: string): { keys: JWK[] } {
  const text = readKeyFile(path, "JWKS file").toString("utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw precondition(`JWKS file ${path} is not valid JSON`);
  }
  return publicJwks(parsed, `JWKS file ${path}`);
}

/** A parsed JWKS document checked as readJwksFile does; `where` names it in messages. */
export function publicJwks(parsed: unknown, where: string): { keys: JWK[] } {
  if (!isObject(parsed) || !Array.isArray(parsed.keys)) {
    throw precondition(`${where} must be a JSON object {"keys": [...]}`);
  }
  const keys: JWK[] = [];
  for (const [i, key] of parsed.keys.entries()) {
    if (!isObject(key) || typeof key.kty !== "string") {
      throw precondition(`${where}: keys[${i}] must be a JSON object with a string "kty"`);
    }
    if (key.kty === "oct" || "d" in key || "k" in key || "priv" in key) {
      throw precondition(`${where}: keys[${i}] is a private or symmetric key; a JWKS must hold public keys only`);
    }
    keys.push(key as JWK);
  }
  return { keys };
}
