/**
 * What each SecretService call's audit events are about (SPEC §6): the secret it names,
 * the version it read or wrote and the data keys involved (names only, never values).
 * A successful call reports what it actually did, from its response; a failed one what
 * it asked for. ProjectSecrets gives one event per source secret (the same request id),
 * so the trail of a secret shows every projection of it.
 */
import type {
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
  Secret,
  UpdateSecretRequest,
} from "../../gen/secrets/v1/secrets.js";
import { EncodedAnswer } from "./response-encoding.js";
import type { AuditTarget } from "./call.js";

function dataKeys(data: Record<string, unknown>, stringData: Record<string, unknown>): string[] {
  return [...new Set([...Object.keys(data), ...Object.keys(stringData)])].sort();
}

function about(mesh: string, name: string, version = 0, keys: readonly string[] = []): AuditTarget[] {
  return [{ mesh, name, version, keys }];
}

export const auditCreate = (req: CreateSecretRequest, res: Secret | undefined): AuditTarget[] =>
  about(req.mesh, req.name, res?.version ?? 0, res ? res.keys : dataKeys(req.data, req.stringData));

export const auditGet = (req: GetSecretRequest, res: Secret | EncodedAnswer | undefined): readonly AuditTarget[] =>
  res instanceof EncodedAnswer ? res.audit : about(req.mesh, req.name, res?.version ?? req.version, res ? Object.keys(res.data).sort() : req.keys);

export const auditList = (req: ListSecretsRequest): AuditTarget[] => about(req.mesh, "");

export const auditUpdate = (req: UpdateSecretRequest, res: Secret | undefined): AuditTarget[] =>
  about(req.mesh, req.name, res?.version ?? 0, res ? res.keys : dataKeys(req.data, req.stringData));

export const auditDelete = (req: DeleteSecretRequest): AuditTarget[] => about(req.mesh, req.name);

export function auditProject(req: ProjectSecretsRequest, res: Projection | EncodedAnswer | undefined): readonly AuditTarget[] {
  if (res instanceof EncodedAnswer) return res.audit;
  if (res === undefined) {
    return req.items.map((it) => ({ mesh: req.mesh, name: it.name, version: 0, keys: it.keys.map((k) => k.key) }));
  }
  return res.sources.map((s) => ({
    mesh: s.mesh,
    name: s.name,
    version: s.version,
    keys: [...new Set(res.values.filter((v) => v.secret === s.name).map((v) => v.key))].sort(),
  }));
}

export const auditGrant = (req: GrantAccessRequest): AuditTarget[] => about(req.mesh, req.name, 0, req.keys);

export const auditRevoke = (req: RevokeAccessRequest): AuditTarget[] => about(req.mesh, req.name);

export const auditListGrants = (req: ListGrantsRequest): AuditTarget[] => about(req.mesh, req.name);

export const auditListConsumers = (req: ListConsumersRequest): AuditTarget[] => about(req.mesh, req.name);
