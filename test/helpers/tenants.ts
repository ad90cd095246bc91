/**
 * The isolation suite's cast (#27): a victim tenant with a secret it reads and projects,
 * and an attacker tenant whose admin can read the attacker's own audit trail. Each
 * attack test runs the attacker, then asserts what must hold for the victim: its calls
 * succeed and every one of its audit events is there.
 */
import { Metadata } from "@grpc/grpc-js";
import { expect } from "vitest";
import type { AuditEvent, ListAuditEventsResponse, Projection, Secret } from "../../src/gen/secrets/v1/secrets.js";
import type { TestServer } from "./server.js";

export const VICTIM_MESH = "victim";
const VICTIM_VALUE = "victim-value-Qk4r9Z";

export function withRequestId(id: string, token?: string): Metadata {
  const md = new Metadata();
  md.set("x-request-id", id);
  if (token !== undefined) md.set("authorization", `Bearer ${token}`);
  return md;
}

/** Every audit event a tenant-admin sees, paged through. */
export async function auditEvents(s: TestServer, adminToken: string, filter: object = {}): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let pageToken = "";
  for (let i = 0; i < 10_000; i++) {
    const page = await s.call<ListAuditEventsResponse>("listAuditEvents", { ...filter, pageSize: 1000, pageToken }, adminToken);
    out.push(...page.events);
    if (page.nextPageToken === "") return out;
    pageToken = page.nextPageToken;
  }
  throw new Error("paging did not end");
}

export interface Victim {
  readonly token: string;
  readonly admin: string;
  /** A GetSecret and a ProjectSecrets of the victim's secret, each checked; returns their request ids. */
  calls(tag: string): Promise<string[]>;
  /** Flushes the audit queue and expects an event of the victim's for every request id given. */
  expectAudited(requestIds: readonly string[]): Promise<void>;
}

export async function startVictim(s: TestServer): Promise<Victim> {
  const token = await s.token({ tenant: "victim", sub: "vera", roles: ["data-developer"] });
  const admin = await s.token({ tenant: "victim", sub: "vic", roles: ["tenant-admin"] });
  await s.call("createSecret", { mesh: VICTIM_MESH, name: "db", stringData: { password: VICTIM_VALUE } }, token);
  return {
    token,
    admin,
    async calls(tag) {
      const get = `${tag}-get`;
      const project = `${tag}-project`;
      const secret = await s.call<Secret>("getSecret", { mesh: VICTIM_MESH, name: "db" }, token, withRequestId(get));
      expect(Buffer.from(secret.data.password!).toString()).toBe(VICTIM_VALUE);
      const p = await s.call<Projection>("projectSecrets", { mesh: VICTIM_MESH, items: [{ name: "db", keys: [{ key: "password" }] }] }, token, withRequestId(project));
      expect(p.values.map((v) => Buffer.from(v.value).toString())).toEqual([VICTIM_VALUE]);
      return [get, project];
    },
    async expectAudited(requestIds) {
      await s.app.audit.flush();
      const seen = new Set((await auditEvents(s, admin, { sub: "vera" })).filter((e) => e.code === "OK").map((e) => e.requestId));
      expect(requestIds.filter((id) => !seen.has(id))).toEqual([]);
    },
  };
}

/** The attacker tenant's admin, to read the attacker's own events. */
export async function attackerAdmin(s: TestServer): Promise<string> {
  return s.token({ tenant: "evil", sub: "eve", roles: ["tenant-admin"] });
}

/** The attacker's events with this request id (after a flush). */
export async function eventsOf(s: TestServer, adminToken: string, requestId: string): Promise<AuditEvent[]> {
  await s.app.audit.flush();
  return (await auditEvents(s, adminToken, { sub: "mallory" })).filter((e) => e.requestId === requestId);
}
