/**
 * Secret use cases: create, read, list, delete. Every method takes the verified
 * principal; the tenant comes only from it. Validation runs before authorization
 * checks that need storage, and errors use the one vocabulary of errors.ts.
 */
import { isDeepStrictEqual } from "node:util";
import type { KeyringSource } from "../crypto/keyring.js";
import type { PlaintextCache } from "../crypto/plaintext-cache.js";
import { randomBytes } from "../crypto/random.js";
import type {
  CreateSecretRequest,
  DeleteSecretRequest,
  GetSecretRequest,
  ListSecretsRequest,
  UpdateSecretRequest,
} from "../gen/secrets/v1/secrets.js";
import type { Scope, SecretRow, SecretWithVersion, Storage } from "../storage/storage.js";
import { accessTo, holdsWhole, keysAt, Level, requireKeys, requireLevel, subjectsOf, TENANT_ADMIN, type Access } from "./access.js";
import { openData, sealData } from "./barrier.js";
import { SecretdError, denied, invalid, notFound } from "../errors.js";
import { decodePageToken, encodePageToken } from "./page-token.js";
import { hasRole, mayUseMesh, type Principal } from "./principal.js";
import { PAGE_BYTES, secretEntryBytes } from "./page-budget.js";
import { TenantGate } from "./tenant-gate.js";
import { requestFingerprint, sameRequest, type FingerprintInput } from "./request-fingerprint.js";
import { validateTypedData } from "./secret-types.js";
import { newUid } from "./uid.js";
import { postgresConfigOf, validateRotatorAnnotations } from "./postgres-rotator.js";
import { refuseWhilePending } from "./running-rotation.js";
import { parseStage, readPending, readPrevious, stageOf, type Stage } from "./stages.js";
import { isServerAnnotation, NEXT, parsePolicy, withRotationNext } from "./rotation-policy.js";
import {
  matchesSelector,
  mergeData,
  parseLabelSelector,
  validateAnnotations,
  validateDescription,
  validateLabels,
  validateMesh,
  validateName,
  validateType,
} from "./validation.js";

/** A secret row with the version read, as the answer cache stamps it (the transport's view of a source). */
export type SourceRow = SecretWithVersion;

export interface SecretsDeps {
  readonly storage: Storage;
  /** Asked per call: a KEK rotation may change it while the server runs. */
  readonly keyring: KeyringSource;
  /** Opened payloads kept across calls (see PlaintextCache); none when absent. */
  readonly plaintexts?: PlaintextCache;
  readonly creatorRoles: readonly string[];
  readonly maxVersions: number;
  readonly now?: () => number;
}

export interface SecretWithData {
  readonly secret: SecretRow;
  readonly data: ReadonlyMap<string, Buffer>;
}

/** A GetSecret answer with the stored row it was made from and when it was decided. */
export interface ReadSecret extends SecretWithData {
  readonly row: SecretWithVersion;
  readonly now: number;
  /** The stage the version read holds ("" for an older version that holds none). */
  readonly stage: Stage | "";
}

/** Annotations the server writes; callers may not set them. */
const RESERVED_ANNOTATION_PREFIX = "secretd.io/";
const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;
/** Rows examined per ListSecrets call when a selector filters most of them out. */
const MAX_LIST_SCAN = 5000;
/**
 * Bytes of rows read (parsed and MAC-checked) per slice of a listing before the event
 * loop is yielded (#27): a page of fat rows is read a few rows at a time, other callers'
 * work runs between the slices, and at most one slice is read past the page's end.
 */
export const LIST_SLICE_BYTES = 256 * 1024;
/** Rows asked for in a listing's first slice, before the rows' size is known. */
const FIRST_SLICE_ROWS = 1;
/**
 * ListSecrets calls of one tenant that read at a time (per process); its others wait
 * (#27): eight listings of fat secrets in flight took eight slices' turns for each of
 * another tenant's turns (bench:isolation list_pages, +207 ms p99 with 1 MiB pages).
 */
export const LISTINGS_PER_TENANT = 2;

export function newEtag(): string {
  return randomBytes(12).toString("base64url");
}

/** Checks mesh syntax and the token's `meshes` claim; returns the scope. */
export function scopeFor(p: Principal, mesh: string): Scope {
  validateMesh(mesh);
  if (!mayUseMesh(p, mesh)) throw denied(`mesh "${mesh}" is not allowed by the token`);
  return { tenant: p.tenant, mesh };
}

export function isExpired(s: SecretRow, now: number): boolean {
  return s.expireTime !== undefined && s.expireTime <= now;
}

export function requireUnexpired(s: SecretRow, now: number): void {
  if (isExpired(s, now)) throw new SecretdError("FAILED_PRECONDITION", `secret "${s.name}" expired`);
}

/**
 * A caller's annotations, checked: the reserved prefix is the server's except for a
 * rotation policy (rotation-policy.ts), which is validated here; the server's read-only
 * rotation-next, sent back as `get -o yaml` showed it, is dropped. An immutable secret
 * refuses a policy (it can never be rotated).
 */
function validateUserAnnotations(annotations: Record<string, string>, immutable: boolean): Record<string, string> {
  const { [NEXT]: _shown, ...own } = annotations;
  validateAnnotations(own);
  validateRotatorAnnotations(own);
  for (const k of Object.keys(own)) {
    if (isServerAnnotation(k)) {
      throw invalid(`annotations["${k}"]`, `the ${RESERVED_ANNOTATION_PREFIX} prefix is reserved for the server (a caller may set rotation-period, -generate, -rotator, -retire, -ack-timeout)`);
    }
  }
  if (parsePolicy(own) !== undefined && immutable) throw invalid("annotations[\"secretd.io/rotation-period\"]", "an immutable secret cannot be rotated, so it takes no rotation policy");
  return own;
}

const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

function validateRequestId(id: string): void {
  if (!REQUEST_ID.test(id)) throw invalid("request_id", "must be 1-128 printable ASCII characters without spaces");
}

/** An optional expire_time as epoch ms: INVALID_ARGUMENT unless a real time in the future. */
export function expireTimeOf(t: Date | undefined, now: number, field: string): number | undefined {
  if (t === undefined) return undefined;
  const ms = t.getTime();
  if (!Number.isFinite(ms)) throw invalid(field, "is not a valid timestamp");
  if (ms <= now) throw invalid(field, "must be in the future");
  return ms;
}

const MASK_PATHS = ["data", "description", "labels", "annotations", "expire_time"] as const;

interface FieldsSet {
  data: boolean;
  description: boolean;
  labels: boolean;
  annotations: boolean;
  expireTime: boolean;
}

/**
 * Which fields an update replaces: the mask's paths, or, with an empty mask, each field
 * set in the request. "data" covers data and string_data together.
 */
function updatedFields(req: UpdateSecretRequest): FieldsSet {
  const paths = req.updateMask ?? [];
  if (paths.length === 0) {
    return {
      data: Object.keys(req.data).length > 0 || Object.keys(req.stringData).length > 0,
      description: req.description !== "",
      labels: Object.keys(req.labels).length > 0,
      annotations: Object.keys(req.annotations).length > 0,
      expireTime: req.expireTime !== undefined,
    };
  }
  for (const path of paths) {
    if (!(MASK_PATHS as readonly string[]).includes(path)) throw invalid("update_mask", `unknown path "${path}" (allowed: ${MASK_PATHS.join(", ")})`);
  }
  return {
    data: paths.includes("data"),
    description: paths.includes("description"),
    labels: paths.includes("labels"),
    annotations: paths.includes("annotations"),
    expireTime: paths.includes("expire_time"),
  };
}

/** The caller's annotations of a stored row: the server's own left out, a rotation policy kept. */
export function withoutReserved(annotations: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(annotations).filter(([k]) => !isServerAnnotation(k)));
}

/**
 * What a key-limited writer may do (SPEC §3): send values of its keys only, which are
 * merged over the current version; every other key is kept as it is and never compared,
 * so the outcome of an update says nothing about values it cannot read. Secret-wide
 * fields are not its to change.
 */
function requireKeyLimitedWrite(set: FieldsSet, sent: ReadonlyMap<string, Buffer> | undefined, writable: ReadonlySet<string>, name: string): void {
  const wide = (["description", "labels", "annotations", "expireTime"] as const).find((f) => set[f]);
  if (wide !== undefined) {
    const field = wide === "expireTime" ? "expire_time" : wide;
    throw denied(`changing ${field} of secret "${name}" needs WRITE on every key; your grant is limited to some keys`);
  }
  for (const k of sent?.keys() ?? []) if (!writable.has(k)) throw denied(`key "${k}" of secret "${name}" is not granted for writing`);
}

function sameData(a: ReadonlyMap<string, Buffer>, b: ReadonlyMap<string, Buffer>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || !v.equals(w)) return false;
  }
  return true;
}

/** True when an update would store exactly what the secret already holds. */
function unchanged(before: SecretRow, after: SecretRow, beforeData: ReadonlyMap<string, Buffer>, afterData: ReadonlyMap<string, Buffer>): boolean {
  return (
    before.description === after.description &&
    before.expireTime === after.expireTime &&
    isDeepStrictEqual(before.labels, after.labels) &&
    isDeepStrictEqual(before.annotations, after.annotations) &&
    sameData(beforeData, afterData)
  );
}

/** An update or delete named an etag that is not (any longer) the current version's. */
export function staleEtag(name: string): SecretdError {
  return new SecretdError("ABORTED", `etag does not match the current version of secret "${name}"`);
}

export class Secrets {
  private readonly now: () => number;
  /** Readers of ListSecrets pages, LISTINGS_PER_TENANT at a time per tenant. */
  readonly listing = new TenantGate(LISTINGS_PER_TENANT);

  constructor(private readonly deps: SecretsDeps) {
    this.now = deps.now ?? Date.now;
  }

  async create(p: Principal, req: CreateSecretRequest): Promise<SecretRow> {
    validateName(req.name);
    const scope = scopeFor(p, req.mesh);
    // Authorized before any costly validation (PEM parsing, key import): a caller who
    // may not create pays for nothing but these checks.
    if (!p.roles.some((r) => this.deps.creatorRoles.includes(r))) {
      throw denied(`creating secrets needs one of the roles ${this.deps.creatorRoles.join(", ")}`);
    }
    if (scope.mesh === "" && !hasRole(p, TENANT_ADMIN)) {
      throw denied(`only ${TENANT_ADMIN} may write global (mesh "") secrets`);
    }
    const type = validateType(req.type);
    validateDescription(req.description);
    validateLabels(req.labels);
    const annotations = validateUserAnnotations(req.annotations, req.immutable);
    await this.#requirePolicyAdminRead(p, scope, annotations);
    const data = mergeData(req.data, req.stringData);
    const typed = validateTypedData(type, data);
    const now = this.now();
    const expireTime = expireTimeOf(req.expireTime, now, "expire_time");

    const uid = newUid();
    const secret: SecretRow = {
      uid,
      tenant: scope.tenant,
      mesh: scope.mesh,
      name: req.name,
      type,
      description: req.description,
      owner: p.sub,
      labels: { ...req.labels },
      annotations: withRotationNext({ ...annotations, ...typed.annotations }, now),
      immutable: req.immutable,
      version: 1,
      etag: newEtag(),
      keys: [...data.keys()].sort(),
      createTime: now,
      updateTime: now,
      expireTime,
    };
    const fingerprintInput: FingerprintInput = { ...secret, sub: p.sub, data };
    if (req.requestId !== "") {
      validateRequestId(req.requestId);
      const replay = await this.replay(scope, p.sub, req.requestId, fingerprintInput);
      if (replay) return replay;
    }
    const version = sealData(this.deps.keyring, secret, 1, data, now);
    const request =
      req.requestId === "" ? undefined : { sub: p.sub, requestId: req.requestId, secretUid: uid, fingerprint: requestFingerprint(this.deps.keyring, fingerprintInput) };
    const result = await this.deps.storage.insertSecret(secret, version, request);
    if (result === "request-exists") {
      // A concurrent retry with the same id won the race: answer as it did.
      const replay = await this.replay(scope, p.sub, req.requestId, fingerprintInput);
      if (replay) return replay;
    }
    if (result !== "ok") {
      throw new SecretdError("ALREADY_EXISTS", `secret "${req.name}" already exists in mesh "${scope.mesh}"`);
    }
    return secret;
  }

  /**
   * A retried CreateSecret: the same request_id with the same request returns the
   * secret it created; with a different request it is refused.
   */
  private async replay(scope: Scope, sub: string, requestId: string, input: FingerprintInput): Promise<SecretRow | undefined> {
    const prior = await this.deps.storage.findCreateRequest(scope.tenant, sub, requestId);
    if (!prior) return undefined;
    if (!sameRequest(this.deps.keyring, prior.fingerprint, input)) {
      throw invalid("request_id", "was already used for a different CreateSecret request");
    }
    const found = await this.deps.storage.readSecret(scope, input.name, 0, true);
    if (found?.secret.uid !== prior.secretUid) return undefined;
    return found.secret;
  }

  /**
   * The stored row a GetSecret of (mesh, name, version) is answered from, access not yet
   * decided: for a memo of an answer this caller got (the answer cache) to see whether
   * that row is still what it was. Nothing of it may reach the caller.
   */
  async source(p: Principal, mesh: string, name: string, version: number): Promise<SecretWithVersion | undefined> {
    return this.deps.storage.readSecret(scopeFor(p, mesh), name, version);
  }

  async get(p: Principal, req: GetSecretRequest): Promise<ReadSecret> {
    validateName(req.name);
    const scope = scopeFor(p, req.mesh);
    if (!Number.isSafeInteger(req.version) || req.version < 0) throw invalid("version", "must be 0 (latest) or a version number");
    const requested = new Set(req.keys);
    if (requested.size !== req.keys.length) throw invalid("keys", "lists a key twice");

    const stage = parseStage(req.stage);
    if (req.stage !== "" && req.version !== 0) throw invalid("stage", "names a version itself: give stage or version, not both");

    let found = await this.deps.storage.readSecret(scope, req.name, stage !== "current" ? 0 : req.version);
    // One instant for access and expiry: an answer kept until the next change of either (answers.ts) must have been decided at it.
    const now = this.now();
    const { secret, access } = this.authorize(p, found, req.name, Level.READ, now);
    requireUnexpired(secret, now);
    // Access is decided on the secret; only then is it told whether a previous version exists.
    if (stage === "previous" && found) found = await readPrevious(this.deps.storage, scope, req.name, found);
    if (stage === "pending" && found) found = await readPending(this.deps.storage, scope, req.name, found);
    const version = found?.version;
    // A pending version (newer than current) is readable by its stage only, never by its number.
    if (!found || !version || (req.version !== 0 && version.version > secret.version)) throw notFound(`version ${req.version} of secret "${req.name}"`);
    const held = req.version === 0 ? stage : await stageOf(this.deps.storage, secret, version.version);
    const allowed = keysAt(access, Level.READ);
    requireKeys(allowed, requested, req.name);

    const all = openData(this.deps.keyring, secret, version, this.deps.plaintexts);
    // Without explicit keys, everything (the opened map is the caller's own copy); a key-limited grantee gets exactly the keys granted.
    const row = found;
    if (requested.size === 0 && allowed === undefined) return { secret: { ...secret, version: version.version, keys: version.keys }, data: all, row, now, stage: held };
    const wanted = requested.size > 0 ? [...requested] : [...all.keys()].filter((k) => allowed === undefined || allowed.has(k));
    const data = new Map<string, Buffer>();
    for (const k of wanted) {
      const v = all.get(k);
      if (v === undefined) throw notFound(`key "${k}" of secret "${req.name}"`);
      data.set(k, v);
    }
    return { secret: { ...secret, version: version.version, keys: version.keys }, data, row, now, stage: held };
  }

  async list(p: Principal, req: ListSecretsRequest): Promise<{ secrets: SecretRow[]; nextPageToken: string }> {
    const scope = scopeFor(p, req.mesh);
    if (req.type !== "") validateType(req.type);
    const selector = parseLabelSelector(req.labelSelector);
    if (req.pageSize < 0) throw invalid("page_size", "must not be negative");
    const pageSize = Math.min(req.pageSize === 0 ? DEFAULT_PAGE_SIZE : req.pageSize, MAX_PAGE_SIZE);
    const within = req.expiringWithin;
    if (within && (within.seconds < 0 || within.nanos < 0)) throw invalid("expiring_within", "must not be negative");
    const expireBefore = within ? this.now() + within.seconds * 1000 + Math.floor(within.nanos / 1e6) : undefined;
    const query = [scope.mesh, req.type, req.labelSelector, within ? `${within.seconds}.${within.nanos}` : ""];
    let after = decodePageToken(req.pageToken, query).after;

    const visibleTo = hasRole(p, TENANT_ADMIN) ? undefined : { owner: p.sub, subjects: subjectsOf(p), now: this.now() };
    return this.listing.run(p.tenant, async () => {
      const out: SecretRow[] = [];
      let scanned = 0;
      let bytes = 0;
      let full = false;
      let more = true;
      // Each slice asks for as many rows as LIST_SLICE_BYTES holds at the size of the rows
      // read so far (at least one, at most what the page can still take plus one).
      let limit = Math.min(FIRST_SLICE_ROWS, pageSize + 1);
      let slices = 0;
      while (!full && more && scanned < MAX_LIST_SCAN) {
        if (slices++ > 0) await new Promise<void>((resolve) => setImmediate(resolve));
        let read: { count: number; lastName: string | undefined } | undefined;
        const onRead = (count: number, lastName: string | undefined): void => void (read = { count, lastName });
        const rows = await this.deps.storage.listSecrets(scope, { afterName: after, limit, type: req.type || undefined, expireBefore, visibleTo, onRead });
        // What the back-end read, rows left out above it included (a tampered row is skipped, not an end).
        const { count, lastName } = read ?? { count: rows.length, lastName: rows.at(-1)?.name };
        more = count === limit;
        let sliceBytes = 0;
        for (const [i, row] of rows.entries()) {
          const size = secretEntryBytes(row);
          sliceBytes += size;
          if (matchesSelector(selector, row.labels)) {
            // A page ends at page_size entries or PAGE_BYTES encoded, whichever comes first
            // (#16 item 4); a row that does not fit starts the next page.
            if (out.length > 0 && bytes + size > PAGE_BYTES) {
              full = true;
              more = true;
              break;
            }
            bytes += size;
            out.push(row);
          }
          scanned++;
          after = row.name;
          if (out.length === pageSize) {
            full = true;
            more ||= i < rows.length - 1;
            break;
          }
        }
        if (!full) {
          scanned += count - rows.length;
          if (lastName !== undefined) after = lastName;
        }
        const perRow = rows.length > 0 ? sliceBytes / rows.length : 1;
        limit = Math.max(1, Math.min(pageSize - out.length + 1, Math.floor(LIST_SLICE_BYTES / perRow)));
      }
      return { secrets: out, nextPageToken: more ? encodePageToken(after, query) : "" };
    });
  }

  /**
   * A rotation policy with the postgres rotator has the scheduler read the admin secret its
   * annotations name, as RotateSecret by hand would need the caller to: so whoever writes
   * such a policy must be able to READ that admin secret now (the scheduler acts on this
   * check; rotations.ts). Without it, WRITE on one secret would let a caller have the
   * server set passwords, with credentials the caller cannot read, on roles it names.
   */
  async #requirePolicyAdminRead(p: Principal, scope: Scope, annotations: Readonly<Record<string, string>>): Promise<void> {
    if (parsePolicy(annotations)?.rotator !== "postgres") return;
    const { admin } = postgresConfigOf(annotations);
    this.authorize(p, await this.deps.storage.readSecret(scope, admin, 0, true), admin, Level.READ);
  }

  async update(p: Principal, req: UpdateSecretRequest): Promise<SecretRow> {
    validateName(req.name);
    const scope = scopeFor(p, req.mesh);
    if (req.etag === "") throw invalid("etag", "is required: pass the etag of the version you are replacing");
    const now = this.now();
    const set = updatedFields(req);
    if (set.description) validateDescription(req.description);
    if (set.labels) validateLabels(req.labels);
    const annotations = set.annotations ? validateUserAnnotations(req.annotations, false) : undefined;
    const newData = set.data ? mergeData(req.data, req.stringData) : undefined;
    const expireTime = set.expireTime ? expireTimeOf(req.expireTime, now, "expire_time") : undefined;

    const found = await this.deps.storage.readSecret(scope, req.name, 0, true);
    const { secret, access } = this.authorize(p, found, req.name, Level.WRITE);
    if (secret.immutable) throw new SecretdError("FAILED_PRECONDITION", `secret "${req.name}" is immutable`);
    if (req.etag !== secret.etag) throw staleEtag(req.name);
    if (!found?.version) throw new SecretdError("INTERNAL", "current version row missing");
    await refuseWhilePending(this.deps.storage, req.name, secret.uid, "cannot be updated");
    if (annotations !== undefined) await this.#requirePolicyAdminRead(p, scope, annotations);

    const current = openData(this.deps.keyring, secret, found.version, this.deps.plaintexts);
    const writable = keysAt(access, Level.WRITE);
    if (writable !== undefined) requireKeyLimitedWrite(set, newData, writable, req.name);
    const data = newData === undefined ? current : writable === undefined ? newData : new Map([...current, ...newData]);
    const typed = validateTypedData(secret.type, data);
    const userAnnotations = annotations ?? withoutReserved(secret.annotations);
    const merged = { ...userAnnotations, ...typed.annotations };
    // The next scheduled rotation counts from the last rotation's start, else from the creation.
    const base = parsePolicy(merged) === undefined ? now : ((await this.deps.storage.readRotation(secret.uid, 0))?.started ?? secret.createTime);

    const next: SecretRow = {
      ...secret,
      description: set.description ? req.description : secret.description,
      labels: set.labels ? { ...req.labels } : secret.labels,
      annotations: withRotationNext(merged, base),
      version: secret.version + 1,
      etag: newEtag(),
      keys: [...data.keys()].sort(),
      updateTime: now,
      expireTime: set.expireTime ? expireTime : secret.expireTime,
    };
    // Nothing to change: no new version, so no real old version is pushed out of max_versions.
    if (unchanged(secret, next, current, data)) return secret;
    const version = sealData(this.deps.keyring, next, next.version, data, now);
    const result = await this.deps.storage.updateSecret(next, version, req.etag, this.deps.maxVersions);
    if (result === "conflict") throw staleEtag(req.name);
    if (result === "missing") throw notFound(`secret "${req.name}"`);
    return next;
  }

  async delete(p: Principal, req: DeleteSecretRequest): Promise<void> {
    validateName(req.name);
    const scope = scopeFor(p, req.mesh);
    const found = await this.deps.storage.readSecret(scope, req.name, 0, true);
    const { secret, access } = this.authorize(p, found, req.name, Level.ADMIN);
    if (!holdsWhole(access, Level.ADMIN)) throw denied(`deleting secret "${req.name}" needs ADMIN on every key; your grant is limited to some keys`);
    await refuseWhilePending(this.deps.storage, req.name, secret.uid, "cannot be deleted");
    if (!req.force) {
      // DataOS: "before deleting a Secret, ensure that no other Resources are using it", made a guarantee.
      const live = (await this.deps.storage.listLeases(secret.uid, this.now())).length;
      if (live > 0) {
        throw new SecretdError("FAILED_PRECONDITION", `secret "${req.name}" is in use by ${live} live consumers (see ListConsumers; delete with force to delete anyway)`);
      }
    }
    const result = await this.deps.storage.deleteSecret(secret.uid, req.etag === "" ? undefined : req.etag);
    if (result === "conflict") throw staleEtag(req.name);
    if (result === "missing") throw notFound(`secret "${req.name}"`);
  }

  /** NOT_FOUND for a missing secret or one the caller has no right on; else the level check. */
  authorize(p: Principal, found: SecretWithVersion | undefined, name: string, level: Level, now = this.now()): { secret: SecretRow; access: Access } {
    if (!found) throw notFound(`secret "${name}"`);
    const access = accessTo(p, found.secret, found.grants, now);
    requireLevel(access, level, name);
    return { secret: found.secret, access };
  }
}
