/** Domain rows to API messages. Values appear only where the RPC returns them; times stay in Timestamp's range. */
import { permissionOf, type GrantView } from "../../domain/grants.js";
import type { AuditEvent, Consumer, Grant, Secret } from "../../gen/secrets/v1/secrets.js";
import type { AuditRow, LeaseRow, SecretRow } from "../../storage/storage.js";
import { emittedTime } from "./timestamps.js";

/**
 * The message only goes to the serializer (and the audit, which reads it): labels and
 * annotations are passed as they are (read-cache rows are frozen), not copied per call.
 */
export function toSecretMessage(row: SecretRow, data?: ReadonlyMap<string, Buffer>): Secret {
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

export function toConsumerMessage(l: LeaseRow): Consumer {
  return {
    sub: l.sub,
    roles: [...l.roles],
    revision: l.revision,
    since: emittedTime(l.since),
    lastSeen: emittedTime(l.lastSeen),
    replica: l.replica,
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
  };
}
