/**
 * ListAuditEvents: a tenant-admin reads its own tenant's audit trail, filtered by mesh,
 * name, sub and time, in (time, id) order with keyset paging. The tenant is the
 * token's; a token limited to some meshes sees their events and the global scope's.
 */
import { TENANT_ADMIN } from "./access.js";
import { denied, invalid } from "../errors.js";
import { auditEntryBytes, PAGE_BYTES } from "./page-budget.js";
import { decodePageToken, encodePageToken } from "./page-token.js";
import { hasRole, type Principal } from "./principal.js";
import { scopeFor } from "./secrets.js";
import { validateName } from "./validation.js";
import type { ListAuditEventsRequest } from "../gen/secrets/v1/secrets.js";
import type { AuditQuery, AuditStore, StoredAuditRow } from "../storage/storage.js";

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;
const MAX_SUB_LENGTH = 256;
const RPC = "ListAuditEvents";

export interface AuditPage {
  readonly events: StoredAuditRow[];
  readonly nextPageToken: string;
}

function timeOf(t: Date | undefined, field: string): number | undefined {
  if (t === undefined) return undefined;
  const ms = t.getTime();
  if (!Number.isFinite(ms) || ms < 0) throw invalid(field, "is not a valid timestamp");
  return ms;
}

/** "<time>.<id>" of the last event of a page. */
function positionOf(token: string, query: readonly string[]): AuditQuery["after"] {
  const { after } = decodePageToken(token, query, RPC);
  if (after === "") return undefined;
  const m = /^(\d{1,16})\.(\d{1,16})$/.exec(after);
  if (!m) throw invalid("page_token", `is not a token returned by ${RPC}`);
  return { time: Number(m[1]), id: Number(m[2]) };
}

export async function listAuditEvents(storage: Pick<AuditStore, "listAudit">, p: Principal, req: ListAuditEventsRequest): Promise<AuditPage> {
  if (!hasRole(p, TENANT_ADMIN)) throw denied(`listing audit events needs the ${TENANT_ADMIN} role`);
  if (req.mesh !== "") scopeFor(p, req.mesh);
  if (req.name !== "") validateName(req.name);
  if (req.sub.length > MAX_SUB_LENGTH) throw invalid("sub", `must be at most ${MAX_SUB_LENGTH} characters`);
  const since = timeOf(req.since, "since");
  const until = timeOf(req.until, "until");
  if (since !== undefined && until !== undefined && until <= since) throw invalid("until", "must be after since");
  if (req.pageSize < 0) throw invalid("page_size", "must not be negative");
  const pageSize = Math.min(req.pageSize === 0 ? DEFAULT_PAGE_SIZE : req.pageSize, MAX_PAGE_SIZE);

  const query = [req.mesh, req.name, req.sub, String(since ?? ""), String(until ?? "")];
  const after = positionOf(req.pageToken, query);
  const meshes = req.mesh === "" && p.meshes !== undefined ? ["", ...p.meshes] : undefined;
  const rows = await storage.listAudit(p.tenant, {
    after,
    limit: pageSize + 1,
    mesh: req.mesh === "" ? undefined : req.mesh,
    name: req.name === "" ? undefined : req.name,
    sub: req.sub === "" ? undefined : req.sub,
    meshes,
    since,
    until,
  });
  // A page also ends before PAGE_BYTES encoded: an event may carry 256 keys of 256
  // characters, and 1,000 of those would pass the send limit (#16 item 4).
  const events: StoredAuditRow[] = [];
  let bytes = 0;
  for (const row of rows.slice(0, pageSize)) {
    const size = auditEntryBytes(row);
    if (events.length > 0 && bytes + size > PAGE_BYTES) break;
    bytes += size;
    events.push(row);
  }
  if (rows.length <= pageSize && events.length === rows.length) return { events, nextPageToken: "" };
  const last = events[events.length - 1]!;
  return { events, nextPageToken: encodePageToken(`${last.time}.${last.id}`, query) };
}
