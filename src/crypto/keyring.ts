/**
 * Key-encryption keys (KEKs) and the keyring file that holds them.
 *
 * File format: {"version":1,"active":"<id>","keys":[{"id","key":"<base64 of 32 bytes>","created":"<RFC3339>"}]}.
 * Data keys are always wrapped with the active KEK and unwrapped with whichever KEK
 * their blob names, so a rotated-out key must stay in the file until every data key
 * has been rewrapped. Error and warning messages name the file and the problem, never
 * key material (a JSON parser's message may quote the input, so it is not passed on).
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { SecretdError } from "../errors.js";
import { DataKeyCache } from "./data-key-cache.js";
import { makeDirs } from "../make-dirs.js";

export interface Kek {
  readonly id: string;
  /** 32 bytes of AES-256 key. */
  readonly key: Buffer;
  readonly created: string;
}

const FILE_VERSION = 1;
const KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const BASE64_32 = /^[A-Za-z0-9+/]{43}=$/;

export function isKeyId(id: string): boolean {
  return KEY_ID.test(id);
}

/**
 * Where the domain gets its keyring. A running server's keyring can change under it
 * (`secretd keys rotate` in another process), so callers ask for it per operation
 * instead of holding one Keyring for the process lifetime.
 */
export interface KeyringSource {
  /** The keyring to seal with now: its active KEK wraps new data keys. */
  current(): Keyring;
  /**
   * A keyring that holds `kekId` if one can be had (a file-backed source may re-read its
   * file, rate-limited); otherwise the current one, which then fails to open the blob.
   */
  holding(kekId: string): Keyring;
}

export class Keyring implements KeyringSource {
  readonly active: Kek;
  readonly keys: readonly Kek[];
  readonly #byId: ReadonlyMap<string, Kek>;
  /** Data keys unwrapped by these KEKs; cleared when a holder replaces this keyring. */
  readonly dataKeys = new DataKeyCache();

  /** Throws FAILED_PRECONDITION when the keys are unusable (see keyringProblem). */
  constructor(keys: Kek[], activeId: string) {
    const problem = keyringProblem(keys, activeId);
    if (problem !== undefined) throw new SecretdError("FAILED_PRECONDITION", `keyring: ${problem}`);
    this.keys = Object.freeze([...keys]);
    this.#byId = new Map(keys.map((k) => [k.id, k]));
    this.active = this.#byId.get(activeId)!;
  }

  get(id: string): Kek | undefined {
    return this.#byId.get(id);
  }

  /** A fixed keyring is its own source: it never changes. */
  current(): Keyring {
    return this;
  }

  holding(): Keyring {
    return this;
  }

  /** So a keyring that ends up in a log line shows ids, never key bytes. */
  toJSON(): { active: string; keys: { id: string; created: string }[] } {
    return { active: this.active.id, keys: this.keys.map((k) => ({ id: k.id, created: k.created })) };
  }
}

function keyringProblem(keys: readonly Kek[], activeId: string): string | undefined {
  if (keys.length === 0) return "no keys";
  const seen = new Set<string>();
  for (const k of keys) {
    if (!isKeyId(k.id)) return `key id ${JSON.stringify(k.id.slice(0, 80))} does not match [A-Za-z0-9_-]{1,64}`;
    if (seen.has(k.id)) return `duplicate key id ${k.id}`;
    seen.add(k.id);
    if (k.key.length !== KEY_BYTES) return `key ${k.id} is not ${KEY_BYTES} bytes`;
    if (!RFC3339.test(k.created) || Number.isNaN(Date.parse(k.created))) return `key ${k.id}: created is not an RFC 3339 time`;
  }
  if (!seen.has(activeId)) return `active key ${JSON.stringify(activeId.slice(0, 80))} is not among the keys`;
  return undefined;
}

export interface LoadKeyringOptions {
  /** Create the file with one fresh key when it is missing (the dev default path only). */
  readonly create: boolean;
  readonly warn: (msg: string) => void;
}

export function loadKeyring(file: string, opts: LoadKeyringOptions): Keyring {
  const existing = readKeyringFile(file, opts.warn);
  if (existing !== undefined) return existing;
  if (!opts.create) {
    throw new SecretdError(
      "FAILED_PRECONDITION",
      `KEK file ${file} does not exist: for a new, empty database create it with secretd keys init --kek-file ${file}; ` +
        "for existing or restored data, put the keyring it was sealed under there (a new key cannot open it)",
    );
  }
  const created = withTempFile(file, (tmp) => {
    // Another process may have created it while we waited for the temp file.
    const raced = readKeyringFile(file, opts.warn);
    if (raced !== undefined) return { keyring: raced, fresh: false };
    const kek = freshKek(new Set());
    const keyring = new Keyring([kek], kek.id);
    return { keyring: installKeyring(file, tmp, keyring), fresh: true };
  }, { mkdir: true });
  if (created.fresh) {
    opts.warn(`created a new dev KEK at ${file}; back this file up, because secrets sealed under it cannot be read without it`);
  }
  return created.keyring;
}

/**
 * Writes a new keyring file holding one fresh key (`secretd keys init`), mode 0600, making
 * missing parent directories 0700. Never replaces a file: the staged file is hard-linked to
 * `file`, which fails (ALREADY_EXISTS) when anything is there, even a file created
 * concurrently, so an existing keyring is left byte for byte as it was.
 */
export function createKeyring(file: string): Keyring {
  const exists = (): SecretdError => new SecretdError("ALREADY_EXISTS", `KEK file ${file} already exists; it is left as it is (keys init never replaces a keyring: use secretd keys rotate to add a key)`);
  if (fs.lstatSync(file, { throwIfNoEntry: false }) !== undefined) throw exists();
  return withTempFile(file, (tmp) => {
    const kek = freshKek(new Set());
    const keyring = new Keyring([kek], kek.id);
    writeTemp(tmp, keyring);
    try {
      fs.linkSync(tmp.path, file);
    } catch (err) {
      if (errnoCode(err) === "EEXIST") throw exists();
      throw new SecretdError("FAILED_PRECONDITION", `cannot write KEK file ${file} (${errnoCode(err) ?? "error"})`, { cause: err });
    }
    fsyncDir(path.dirname(file));
    return keyring;
  }, { mkdir: true });
}

/**
 * Appends a fresh key and makes it active. Holding the temp file (created O_EXCL)
 * while reading serialises concurrent rotations, so none loses another's key.
 */
export function rotateKeyring(file: string): Keyring {
  return withTempFile(file, (tmp) => {
    const current = readKeyringFile(file, () => {});
    if (current === undefined) throw new SecretdError("FAILED_PRECONDITION", `KEK file ${file} does not exist`);
    const kek = freshKek(new Set(current.keys.map((k) => k.id)));
    return installKeyring(file, tmp, new Keyring([...current.keys, kek], kek.id));
  }, { mkdir: false });
}

/** undefined when the file does not exist; FAILED_PRECONDITION when it cannot be used. */
function readKeyringFile(file: string, warn: (msg: string) => void): Keyring | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return undefined;
    throw new SecretdError("FAILED_PRECONDITION", `KEK file ${file} cannot be opened (${errnoCode(err) ?? "error"})`, { cause: err });
  }
  let text: string;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SecretdError("FAILED_PRECONDITION", `KEK file ${file} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      warn(`KEK file ${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}); run chmod 600 on it`);
    }
    text = fs.readFileSync(fd, "utf8");
  } finally {
    fs.closeSync(fd);
  }
  const parsed = parseKeyring(text);
  if (typeof parsed === "string") throw new SecretdError("FAILED_PRECONDITION", `KEK file ${file} is malformed: ${parsed}`);
  return parsed;
}

/** The keyring, or a description of what is wrong with the text. */
function parseKeyring(text: string): Keyring | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return "not valid JSON";
  }
  if (!isRecord(doc)) return "not a JSON object";
  if (doc["version"] !== FILE_VERSION) return `version must be ${FILE_VERSION}`;
  const active = doc["active"];
  if (typeof active !== "string") return `"active" must be a string`;
  const entries = doc["keys"];
  if (!Array.isArray(entries)) return `"keys" must be an array`;
  const keys: Kek[] = [];
  for (const [i, entry] of entries.entries()) {
    if (!isRecord(entry)) return `keys[${i}] is not an object`;
    const { id, key, created } = entry;
    if (typeof id !== "string") return `keys[${i}].id must be a string`;
    if (typeof created !== "string") return `keys[${i}].created must be a string`;
    if (typeof key !== "string" || !BASE64_32.test(key)) return `keys[${i}].key must be the base64 of ${KEY_BYTES} bytes`;
    keys.push({ id, key: Buffer.from(key, "base64"), created });
  }
  return keyringProblem(keys, active) ?? new Keyring(keys, active);
}

function serializeKeyring(keyring: Keyring): string {
  const keys = keyring.keys.map((k) => ({ id: k.id, key: k.key.toString("base64"), created: k.created }));
  return `${JSON.stringify({ version: FILE_VERSION, active: keyring.active.id, keys }, null, 2)}\n`;
}

function freshKek(taken: ReadonlySet<string>): Kek {
  const now = new Date();
  const stamp = now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  let id: string;
  do id = `k-${stamp}-${randomBytes(2).toString("hex")}`;
  while (taken.has(id));
  return { id, key: randomBytes(KEY_BYTES), created: now.toISOString().replace(/\.\d{3}Z$/, "Z") };
}

/**
 * Runs `fn` holding `<file>.tmp`, created O_EXCL with mode 0600: it is both the staging
 * file and a lock. A leftover temp file (a writer died) is reported, not overwritten.
 */
function withTempFile<T>(file: string, fn: (tmp: TempFile) => T, opts: { mkdir: boolean }): T {
  const dir = path.dirname(file);
  if (opts.mkdir) mkdirDurable(dir);
  const tmpPath = `${file}.tmp`;
  let fd: number;
  try {
    fd = fs.openSync(tmpPath, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  } catch (err) {
    if (errnoCode(err) === "EEXIST") {
      throw new SecretdError("FAILED_PRECONDITION", `${tmpPath} exists: another process is writing the KEK file, or a write was interrupted (remove it if no other process is running)`);
    }
    throw new SecretdError("FAILED_PRECONDITION", `cannot write KEK file ${file} (${errnoCode(err) ?? "error"})`, { cause: err });
  }
  const tmp: TempFile = { fd, path: tmpPath, renamed: false };
  try {
    return fn(tmp);
  } finally {
    if (tmp.fd !== -1) fs.closeSync(tmp.fd);
    if (!tmp.renamed) fs.rmSync(tmpPath, { force: true });
  }
}

interface TempFile {
  fd: number;
  readonly path: string;
  renamed: boolean;
}

/** Writes the keyring to the temp file, fsyncs it, renames it over `file`, fsyncs the directory. */
function installKeyring(file: string, tmp: TempFile, keyring: Keyring): Keyring {
  writeTemp(tmp, keyring);
  fs.renameSync(tmp.path, file);
  tmp.renamed = true;
  fsyncDir(path.dirname(file));
  return keyring;
}

/** Writes the keyring to the temp file (0600), fsyncs and closes it. */
function writeTemp(tmp: TempFile, keyring: Keyring): void {
  fs.fchmodSync(tmp.fd, 0o600); // the umask may have taken bits from the requested mode
  fs.writeFileSync(tmp.fd, serializeKeyring(keyring));
  fs.fsyncSync(tmp.fd);
  fs.closeSync(tmp.fd);
  tmp.fd = -1;
}

/** mkdir -p (0700), then fsync the parent of every directory it created. */
function mkdirDurable(dir: string): void {
  const first = makeDirs(dir);
  if (first === undefined) return;
  const created = path.resolve(first);
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    fsyncDir(path.dirname(d));
    if (d === created || d === path.dirname(d)) break;
  }
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && "code" in err && typeof err.code === "string" ? err.code : undefined;
}
