/**
 * RotateSecret (#30 item 4): a new version becomes current and the one it replaces
 * `previous`, in one transaction with the rotation's record; then IMMEDIATE has retired
 * the previous version already, NEVER keeps it until the next rotation, and AFTER_ACK
 * leaves it to the rotation driver (rotation-driver.ts), which retires it once every live
 * consumer has applied the new version, or at ack_timeout. WRITE-level and a
 * compare-and-set on the etag, as UpdateSecret. The record and every message name
 * versions, subs and consumer ids, never a value.
 */
import type { KeyringSource } from "../crypto/keyring.js";
import type { PlaintextCache } from "../crypto/plaintext-cache.js";
import { SecretdError, invalid, notFound } from "../errors.js";
import type { RotateSecretRequest } from "../gen/secrets/v1/secrets.js";
import { Retire, RotationState } from "./rotation-enums.js";
import type { RotationRow, SecretRow, Storage } from "../storage/storage.js";
import { keysAt, Level } from "./access.js";
import { openData, sealData } from "./barrier.js";
import { DEFAULT_ALPHABET, DEFAULT_LENGTH, generate, generatedValues } from "./generated-values.js";
import { otherRole, postgresConfigOf } from "./postgres-rotator.js";
import type { Rotator } from "./exec-rotator.js";
import type { RotationSteps } from "./rotation-step.js";
import type { Principal } from "./principal.js";
import type { RolloutProbe } from "./rollout-probe.js";
import { summaryOf, type RolloutStatus } from "./rollout.js";
import { runningRefusal } from "./running-rotation.js";
import { newEtag, scopeFor, staleEtag, withoutReserved, type Secrets } from "./secrets.js";
import { validateTypedData } from "./secret-types.js";
import { ROTATOR_NAMES, withRotationNext } from "./rotation-policy.js";
import { mergeData, validateName } from "./validation.js";

export const DEFAULT_ACK_TIMEOUT_MS = 10 * 60_000;
export const MAX_ACK_TIMEOUT_MS = 7 * 24 * 3_600_000;

export interface RotationsDeps {
  readonly storage: Storage;
  readonly keyring: KeyringSource;
  readonly plaintexts?: PlaintextCache;
  readonly secrets: Secrets;
  readonly maxVersions: number;
  readonly probe: RolloutProbe;
  /** The exec rotator, when the server has one (--rotator-exec). */
  readonly rotator?: Rotator | undefined;
  /** The write-ahead step runner (rotation-step.ts) rotations with a rotator go through. */
  readonly steps?: RotationSteps;
  /** This process's name in rotation claims (the driver's) and how long a claim taken at RotateSecret lasts. */
  readonly driverName?: string;
  readonly claimMs?: number;
  /** Told when a rotation was recorded that the driver has to finish (it looks at once). */
  readonly onStarted?: () => void;
  /** Told when RotateSecret's own write retired the previous version (IMMEDIATE without a rotator): the audit. */
  readonly onRetired?: (r: RotationRow) => void;
  readonly now?: () => number;
}

function ackTimeoutOf(req: RotateSecretRequest): number {
  const d = req.ackTimeout;
  if (d === undefined) return DEFAULT_ACK_TIMEOUT_MS;
  if (req.retire !== Retire.RETIRE_AFTER_ACK) throw invalid("ack_timeout", "applies to retire AFTER_ACK only");
  const ms = d.seconds * 1000 + Math.floor(d.nanos / 1e6);
  if (!Number.isFinite(ms) || d.seconds < 0 || d.nanos < 0 || ms <= 0) throw invalid("ack_timeout", "must be positive");
  if (ms > MAX_ACK_TIMEOUT_MS) throw invalid("ack_timeout", "must be at most 7 days");
  return ms;
}

export class Rotations {
  private readonly now: () => number;

  constructor(private readonly deps: RotationsDeps) {
    this.now = deps.now ?? Date.now;
  }

  async rotate(p: Principal, req: RotateSecretRequest): Promise<RolloutStatus> {
    validateName(req.name);
    const scope = scopeFor(p, req.mesh);
    if (req.etag === "") throw invalid("etag", "is required: pass the etag of the version you are rotating");
    if (req.retire !== Retire.RETIRE_AFTER_ACK && req.retire !== Retire.RETIRE_IMMEDIATE && req.retire !== Retire.RETIRE_NEVER) {
      throw invalid("retire", "must be AFTER_ACK, IMMEDIATE or NEVER");
    }
    const ackTimeout = ackTimeoutOf(req);
    if (!ROTATOR_NAMES.includes(req.rotator)) throw invalid("rotator", `unknown rotator "${req.rotator.slice(0, 64)}" (allowed: "", ${ROTATOR_NAMES.filter((n) => n !== "").join(", ")})`);
    if (req.rotator === "exec" && this.deps.rotator === undefined) throw new SecretdError("FAILED_PRECONDITION", "this server has no exec rotator (start it with --rotator-exec)");
    const given = mergeData(req.data, req.stringData);
    const made = generatedValues(req.generate);
    for (const k of made.keys()) if (given.has(k)) throw invalid("generate", `key "${k}" is also given in data or string_data`);
    const postgres = req.rotator === "postgres";
    if (postgres && (given.has("username") || given.has("password") || made.has("username") || made.has("password"))) {
      throw invalid("data", "the postgres rotator makes username and password itself: give only other keys");
    }
    if (given.size + made.size === 0 && !postgres) throw invalid("data", "give the new values: data, string_data or generate");

    const found = await this.deps.storage.readSecret(scope, req.name, 0, true);
    const { secret, access } = this.deps.secrets.authorize(p, found, req.name, Level.WRITE);
    if (postgres) {
      // The other role, with a password the server makes. The server reads the admin secret
      // itself, for this rotation and its retries: the caller must be able to READ it now.
      const config = postgresConfigOf(secret.annotations);
      const adminRow = await this.deps.storage.readSecret(scope, config.admin, 0, true);
      // The scheduler (a system principal scoped to this one secret) acts on the policy,
      // whose writer had to be able to READ the admin secret (secrets.ts); others must now.
      if (p.only?.secretUid !== secret.uid) this.deps.secrets.authorize(p, adminRow, config.admin, Level.READ);
      else if (adminRow === undefined) throw notFound(`secret "${config.admin}"`);
      const current = found?.version ? openData(this.deps.keyring, secret, found.version, this.deps.plaintexts) : new Map<string, Buffer>();
      given.set("username", Buffer.from(otherRole(config, current.get("username")?.toString())));
      made.set("password", Buffer.from(generate(DEFAULT_LENGTH, DEFAULT_ALPHABET), "ascii"));
    }
    if (secret.immutable) throw new SecretdError("FAILED_PRECONDITION", `secret "${req.name}" is immutable: it cannot be rotated`);
    if (req.etag !== secret.etag) throw staleEtag(req.name);
    if (!found?.version) throw new SecretdError("INTERNAL", "current version row missing");
    const writable = keysAt(access, Level.WRITE);
    for (const k of [...given.keys(), ...made.keys()]) {
      if (writable !== undefined && !writable.has(k)) throw new SecretdError("PERMISSION_DENIED", `key "${k}" of secret "${req.name}" is not granted for writing`);
    }

    // The keys named are replaced; every other key of the current version is kept.
    const current = openData(this.deps.keyring, secret, found.version, this.deps.plaintexts);
    const data = new Map([...current, ...given, ...made]);
    const typed = validateTypedData(secret.type, data);
    const now = this.now();
    const next: SecretRow = {
      ...secret,
      // A rotation policy's next time counts from this rotation's start (rotation-policy.ts).
      annotations: withRotationNext({ ...withoutReserved(secret.annotations), ...typed.annotations }, now),
      version: secret.version + 1,
      etag: newEtag(),
      keys: [...data.keys()].sort(),
      updateTime: now,
    };
    const rotator = req.rotator === "" ? undefined : (this.deps.steps?.rotator(req.rotator) ?? (req.rotator === "exec" ? this.deps.rotator : undefined));
    if (rotator !== undefined && this.deps.steps !== undefined) return this.writeAhead(req, scope.mesh, secret, next, data, made, ackTimeout, access.level >= Level.ADMIN);
    const version = sealData(this.deps.keyring, next, next.version, data, now);
    for (const v of made.values()) v.fill(0);
    // With a rotator, retiring runs its hook: IMMEDIATE goes to the driver at once (RETIRING) instead of in this write.
    const hooked = rotator !== undefined && req.retire === Retire.RETIRE_IMMEDIATE;
    const waits = req.retire === Retire.RETIRE_AFTER_ACK || hooked;
    const rotation: RotationRow = {
      secretUid: secret.uid,
      tenant: secret.tenant,
      mesh: secret.mesh,
      name: secret.name,
      rotator: req.rotator,
      version: next.version,
      previousVersion: secret.version,
      retire: req.retire,
      state: hooked ? RotationState.ROTATION_STATE_RETIRING : waits ? RotationState.ROTATION_STATE_WAITING_FOR_ACKS : RotationState.ROTATION_STATE_DONE,
      started: now,
      deadline: hooked ? now : waits ? now + ackTimeout : now,
      finished: waits ? undefined : now,
      previousReadable: req.retire !== Retire.RETIRE_IMMEDIATE || hooked,
      detail:
        hooked
          ? ""
          : req.retire === Retire.RETIRE_IMMEDIATE
          ? `version ${secret.version} retired at once (IMMEDIATE)`
          : req.retire === Retire.RETIRE_NEVER
            ? `version ${secret.version} stays readable as stage "previous" until the next rotation (NEVER)`
            : "",
      driver: "",
      driverExpire: 0,
    };
    // Two versions at least: the one made previous must outlive this write.
    const result = await this.deps.storage.rotateSecret(next, version, req.etag, Math.max(2, this.deps.maxVersions), rotation);
    if (result === "conflict") throw staleEtag(req.name);
    if (result === "missing") throw notFound(`secret "${req.name}"`);
    if (result !== "ok") throw runningRefusal(req.name, result.running);
    if (waits) this.deps.onStarted?.();
    if (!rotation.previousReadable) this.deps.onRetired?.(rotation);
    const view = await this.view(scope.mesh, req.name, rotation);
    // Who consumes the secret is for those who may see ListConsumers (ADMIN): a WRITE-only caller gets the counts.
    return access.level >= Level.ADMIN ? view : { ...view, behind: [] };
  }

  /**
   * With a rotator (rotation-step.ts): the rotation is recorded PENDING first (the etag
   * compare-and-set and the one-active-rotation slot decide here, before the rotator
   * acts), claimed by this process, then the step runs on the sealed values.
   */
  private async writeAhead(
    req: RotateSecretRequest,
    mesh: string,
    secret: SecretRow,
    next: SecretRow,
    data: Map<string, Buffer>,
    made: Map<string, Buffer>,
    ackTimeout: number,
    admin: boolean,
  ): Promise<RolloutStatus> {
    const steps = this.deps.steps!;
    const now = this.now();
    const version = sealData(this.deps.keyring, next, next.version, data, now);
    for (const v of made.values()) v.fill(0);
    const claim = { driver: this.deps.driverName ?? "", expire: now + (this.deps.claimMs ?? 0) };
    const pending: RotationRow = {
      secretUid: secret.uid,
      tenant: secret.tenant,
      mesh: secret.mesh,
      name: secret.name,
      rotator: req.rotator,
      version: next.version,
      previousVersion: secret.version,
      retire: req.retire,
      state: RotationState.ROTATION_STATE_PENDING,
      started: now,
      deadline: now + ackTimeout,
      finished: undefined,
      previousReadable: true,
      detail: `waiting for the ${req.rotator} rotator's rotate step`,
      driver: claim.driver,
      driverExpire: claim.expire,
    };
    const begun = await this.deps.storage.beginRotation(version, req.etag, pending);
    if (begun === "conflict") throw staleEtag(req.name);
    if (begun === "missing") throw notFound(`secret "${req.name}"`);
    if (begun !== "ok") throw runningRefusal(req.name, begun.running);
    const step = await steps.run(pending, claim);
    if (step.kind === "refused") throw new SecretdError("FAILED_PRECONDITION", step.reason);
    if (step.kind === "promoted") this.deps.onStarted?.();
    const record = step.kind === "promoted" ? step.rotation : ((await this.deps.storage.readRotation(secret.uid, next.version)) ?? pending);
    // A step retried has noted so on the record (rotation-step.ts): the answer is what GetRollout shows.
    const view = await this.view(mesh, req.name, record);
    return admin ? view : { ...view, behind: [] };
  }

  private async view(mesh: string, name: string, r: RotationRow): Promise<RolloutStatus> {
    return { mesh, name, ...(await this.deps.probe(r.secretUid, r.version)), rotation: summaryOf(r) };
  }
}
