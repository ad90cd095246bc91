/** Domain rows to API messages. Values appear only where the RPC returns them; times stay in Timestamp's range. */
import { Level } from "../../domain/access.js";
import type { GrantView } from "../../domain/grants.js";
import { Permission, RotationState, type AuditEvent, type Consumer, type Grant, type Rollout, type Secret } from "../../gen/secrets/v1/secrets.js";
import type { RolloutStatus, RotationStateName } from "../../domain/rollout.js";
import type { AuditRow, LeaseRow, SecretRow } from "../../storage/storage.js";
import { emittedTime } from "./timestamps.js";

/** The one mapping between the wire Permission and the domain's ordered Level. */
const LEVEL_OF: ReadonlyMap<Permission, Level> = new Map([
  [Permission.PERMISSION_UNSPECIFIED, Level.NONE],
  [Permission.PERMISSION_PROJECT, Level.PROJECT],
  [Permission.PERMISSION_READ, Level.READ],
  [Permission.PERMISSION_WRITE, Level.WRITE],
  [Permission.PERMISSION_ADMIN, Level.ADMIN],
]);
const PERMISSION_OF: ReadonlyMap<Level, Permission> = new Map([...LEVEL_OF].map(([p, l]) => [l, p]));

/** NONE for PERMISSION_UNSPECIFIED; undefined for a number that names no permission. */
export function levelOf(permission: Permission): Level | undefined {
  return LEVEL_OF.get(permission);
}

export function permissionOf(level: Level): Permission {
  return PERMISSION_OF.get(level) ?? Permission.PERMISSION_UNSPECIFIED;
}

/**
 * The message only goes to the serializer (and the audit, which reads it): labels and
 * annotations are passed as they are (read-cache rows are frozen), not copied per call.
 */
export function toSecretMessage(row: SecretRow, data?: ReadonlyMap<string, Buffer>, stage = ""): Secret {
  return {
    uid: row.uid,
    mesh: row.mesh,
    name: row.name,
    type: row.type,
    description: row.description,
    owner: row.owner,
    data: data ? Object.fromEntries(data) : {},
    labels: row.labels,
    annotations: row.annotations,
    immutable: row.immutable,
    version: row.version,
    etag: row.etag,
    createTime: emittedTime(row.createTime),
    updateTime: emittedTime(row.updateTime),
    expireTime: row.expireTime === undefined ? undefined : emittedTime(row.expireTime),
    keys: [...row.keys],
    stage,
  };
}

export function toGrantMessage(g: GrantView): Grant {
  return {
    mesh: g.mesh,
    name: g.name,
    subject: g.subject,
    permission: permissionOf(g.level),
    keys: [...g.keys],
    expireTime: g.expireTime === undefined ? undefined : emittedTime(g.expireTime),
    grantedBy: g.grantedBy,
    createTime: emittedTime(g.createTime),
    replaced: g.replaced === undefined ? undefined : toGrantMessage({ ...g.replaced, mesh: g.mesh, name: g.name }),
  };
}

/**
 * A consumer of one secret. `applied` names that secret only (the version its last ack
 * carried): the other sources of the watch may be secrets the caller cannot see.
 */
export function toConsumerMessage(l: LeaseRow): Consumer {
  const applied = l.applied.filter((s) => s.uid === l.secretUid);
  return {
    sub: l.sub,
    roles: [...l.roles],
    revision: l.revision,
    since: emittedTime(l.since),
    lastSeen: emittedTime(l.lastSeen),
    replica: l.replica,
    consumerId: l.watchId,
    appliedRevision: l.appliedRevision,
    appliedTime: l.appliedTime === 0 ? undefined : emittedTime(l.appliedTime),
    applied: applied.map((s) => ({ mesh: s.mesh, name: s.name, version: s.version })),
  };
}

const ROTATION_STATES: Record<RotationStateName, RotationState> = {
  none: RotationState.ROTATION_STATE_NONE,
  waiting_for_acks: RotationState.ROTATION_STATE_WAITING_FOR_ACKS,
  retiring: RotationState.ROTATION_STATE_RETIRING,
  done: RotationState.ROTATION_STATE_DONE,
  timed_out: RotationState.ROTATION_STATE_TIMED_OUT,
  failed: RotationState.ROTATION_STATE_FAILED,
  pending: RotationState.ROTATION_STATE_PENDING,
};

export function toRolloutMessage(r: RolloutStatus): Rollout {
  return {
    mesh: r.mesh,
    name: r.name,
    version: r.version,
    consumers: r.consumers,
    applied: r.applied,
    behind: r.behind.map(toConsumerMessage),
    converged: r.converged,
    state: ROTATION_STATES[r.rotation.state],
    previousVersion: r.rotation.previousVersion,
    started: r.rotation.started === undefined ? undefined : emittedTime(r.rotation.started),
    finished: r.rotation.finished === undefined ? undefined : emittedTime(r.rotation.finished),
    detail: r.rotation.detail,
  };
}

export function toAuditEventMessage(e: AuditRow): AuditEvent {
  return {
    time: emittedTime(e.time),
    requestId: e.requestId,
    method: e.method,
    sub: e.sub,
    mesh: e.mesh,
    name: e.name,
    version: e.version,
    keys: [...e.keys],
    code: e.code,
    peer: e.peer,
    stage: e.stage,
  };
}
