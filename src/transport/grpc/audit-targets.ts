/**
 * What each SecretService call's audit events are about (SPEC §6): the secret it names,
 * the version it read or wrote and the data keys involved (names only, never values).
 * A successful call reports what it actually did, from its response; a failed one what
 * it asked for. An event naming a version names its stage too (stages.ts): the version a
 * read returned or a write made, "previous" for a read of the version a rotation keeps. An answered ProjectSecrets gives one event per source secret (the same
 * request id), so the trail of a secret shows every projection of it: at most MAX_ITEMS,
 * built in one pass over the values. A failed one is one event, never one per item (#27).
 */
import type {
  AckProjectionRequest,
  AckProjectionResponse,
  CreateSecretRequest,
  DeleteSecretRequest,
  GetSecretRequest,
  GrantAccessRequest,
  ListConsumersRequest,
  ListGrantsRequest,
  ListSecretsRequest,
  ProjectSecretsRequest,
  Projection,
  RevokeAccessRequest,
  Rollout,
  RotateSecretRequest,
  GetRolloutRequest,
  Secret,
  UpdateSecretRequest,
} from "../../gen/secrets/v1/secrets.js";
import { RotationState } from "../../gen/secrets/v1/secrets.js";
import { MAX_ITEMS, MAX_MAPPINGS } from "../../domain/projection-bounds.js";
import { EncodedAnswer } from "./response-encoding.js";
import type { AuditTarget } from "./call.js";

/** AckProjection's (empty) answer, with what it confirmed for the audit step; the encoder writes no field of it. */
export type AckAnswer = AckProjectionResponse & { readonly acked?: ReadonlyArray<{ readonly mesh: string; readonly name: string; readonly version: number }> };

function dataKeys(data: Record<string, unknown>, stringData: Record<string, unknown>): string[] {
  return [...new Set([...Object.keys(data), ...Object.keys(stringData)])].sort();
}

function about(mesh: string, name: string, version = 0, keys: readonly string[] = [], stage = ""): AuditTarget[] {
  return [{ mesh, name, version, keys, stage }];
}

export const auditCreate = (req: CreateSecretRequest, res: Secret | undefined): AuditTarget[] =>
  about(req.mesh, req.name, res?.version ?? 0, res ? res.keys : dataKeys(req.data, req.stringData), res?.stage ?? "");

export const auditGet = (req: GetSecretRequest, res: Secret | EncodedAnswer | undefined): readonly AuditTarget[] =>
  res instanceof EncodedAnswer
    ? res.audit
    : about(req.mesh, req.name, res?.version ?? req.version, res ? Object.keys(res.data).sort() : req.keys, res?.stage ?? req.stage);

export const auditList = (req: ListSecretsRequest): AuditTarget[] => about(req.mesh, "");

export const auditUpdate = (req: UpdateSecretRequest, res: Secret | undefined): AuditTarget[] =>
  about(req.mesh, req.name, res?.version ?? 0, res ? res.keys : dataKeys(req.data, req.stringData), res?.stage ?? "");

export const auditDelete = (req: DeleteSecretRequest): AuditTarget[] => about(req.mesh, req.name);

/**
 * A failed projection, from its request (the caller's): ONE target, never one per item.
 * A request about one secret names it, with the keys asked of it; any other (several
 * secrets, or past MAX_ITEMS or MAX_MAPPINGS) has name "" and its counts where keys go
 * ("items: N", "mappings: N", "secrets: N"; no data key name holds ':' or a space).
 */
function projectAttempt(req: ProjectSecretsRequest): AuditTarget[] {
  let mappings = 0;
  for (const it of req.items) mappings += it.keys.length;
  const counts = [`items: ${req.items.length}`, `mappings: ${mappings}`];
  if (req.items.length > MAX_ITEMS || mappings > MAX_MAPPINGS) return [{ mesh: req.mesh, name: "", version: 0, keys: counts }];
  const names = new Set(req.items.map((it) => it.name));
  if (names.size !== 1) return [{ mesh: req.mesh, name: "", version: 0, keys: [...counts, `secrets: ${names.size}`] }];
  const keys = new Set(req.items.flatMap((it) => it.keys.map((k) => k.key)));
  const stages = new Set(req.items.map((it) => it.stage));
  return [{ mesh: req.mesh, name: req.items[0]!.name, version: 0, keys: [...keys].sort(), stage: stages.size === 1 ? req.items[0]!.stage : "" }];
}

/**
 * The stage of each answered source. A projection reads a secret at most twice, current
 * and previous (projection.ts), and previous is the older version: of two sources of one
 * name the lower version is previous; a lone source is previous when its items asked
 * for that stage only.
 */
function sourceStages(req: ProjectSecretsRequest, res: Projection): string[] {
  const asksCurrent = new Set(req.items.filter((it) => it.stage !== "previous").map((it) => it.name));
  const asksPrevious = new Set(req.items.filter((it) => it.stage === "previous").map((it) => it.name));
  const lowest = new Map<string, number>();
  const count = new Map<string, number>();
  for (const s of res.sources) {
    count.set(s.name, (count.get(s.name) ?? 0) + 1);
    lowest.set(s.name, Math.min(lowest.get(s.name) ?? Infinity, s.version));
  }
  return res.sources.map((s) => {
    if (count.get(s.name)! > 1) return s.version === lowest.get(s.name) ? "previous" : "current";
    return asksPrevious.has(s.name) && !asksCurrent.has(s.name) ? "previous" : "current";
  });
}

/**
 * A projection that was answered: one target per source, with the keys projected from
 * its secret (one pass over the values; a value names its secret, not the stage it came
 * from, so both stages of one secret list the keys of both).
 */
function projected(req: ProjectSecretsRequest, res: Projection): AuditTarget[] {
  const keysOf = new Map<string, Set<string>>(res.sources.map((s) => [s.name, new Set<string>()]));
  for (const v of res.values) keysOf.get(v.secret)?.add(v.key);
  const stages = sourceStages(req, res);
  return res.sources.map((s, i) => ({ mesh: s.mesh, name: s.name, version: s.version, keys: [...keysOf.get(s.name)!].sort(), stage: stages[i]! }));
}

export function auditProject(req: ProjectSecretsRequest, res: Projection | EncodedAnswer | undefined): readonly AuditTarget[] {
  if (res instanceof EncodedAnswer) return res.audit;
  return res === undefined ? projectAttempt(req) : projected(req, res);
}

export const auditGrant = (req: GrantAccessRequest): AuditTarget[] => about(req.mesh, req.name, 0, req.keys);

export const auditRevoke = (req: RevokeAccessRequest): AuditTarget[] => about(req.mesh, req.name);

export const auditListGrants = (req: ListGrantsRequest): AuditTarget[] => about(req.mesh, req.name);

/** An answered ack is about the sources of the revision it confirmed; a refused one about nothing it could name. */
export const auditAck = (_req: AckProjectionRequest, res: AckAnswer | undefined): AuditTarget[] =>
  res?.acked === undefined || res.acked.length === 0 ? about("", "") : res.acked.map((s) => ({ mesh: s.mesh, name: s.name, version: s.version, keys: [] }));

export const auditGetRollout = (req: GetRolloutRequest, res: Rollout | undefined): AuditTarget[] => about(req.mesh, req.name, res?.version ?? req.version);

export const auditListConsumers = (req: ListConsumersRequest): AuditTarget[] => about(req.mesh, req.name);

/** The keys the postgres rotator makes itself (rotations.ts). */
const POSTGRES_ROTATOR_KEYS = ["password", "username"];

/**
 * The version a rotation made current (or 0 when refused), with the keys it replaced or
 * generated (the postgres rotator's own among them); "pending" while its rotator's step
 * has not succeeded. Retiring the previous version is an event of its own (rotation-audit.ts).
 */
export const auditRotate = (req: RotateSecretRequest, res: Rollout | undefined): AuditTarget[] =>
  about(
    req.mesh,
    req.name,
    res?.version ?? 0,
    [...new Set([...dataKeys(req.data, req.stringData), ...req.generate.map((g) => g.key), ...(req.rotator === "postgres" ? POSTGRES_ROTATOR_KEYS : [])])].sort(),
    res === undefined ? "" : res.state === RotationState.ROTATION_STATE_PENDING ? "pending" : "current",
  );

