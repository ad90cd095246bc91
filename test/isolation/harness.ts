/**
 * What the noisy-neighbor tests (#27) share. The cast: a victim tenant with a secret it
 * reads, projects and watches, and an attacker tenant ("evil": "mallory" attacks, "eve",
 * its tenant-admin, reads the attacker's own audit trail). Each attack test runs the
 * attacker, then asserts what must hold for the victim: its calls succeed and every one
 * of its audit events is there. And the tools: the server's resident memory (it runs in
 * this process, so /proc/<this pid>/status), waiting on a condition, and a node:http2
 * client stream whose outcome (grpc-status, or the RST_STREAM code) is recorded as it comes.
 */
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { Metadata } from "@grpc/grpc-js";
import { expect } from "vitest";
import type { AuditEvent, ListAuditEventsResponse, Projection, Secret } from "../../src/gen/secrets/v1/secrets.js";
import type { TestServer } from "../helpers/server.js";
import { openWatch } from "../helpers/watch.js";

export const S = "/secrets.v1.SecretService";
export const MiB = 1024 * 1024;

/** VmRSS of the server's process, in bytes (after a GC when exposed). */
export function vmRss(): number {
  global.gc?.();
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${process.pid}/status`, "utf8"));
  if (!m) throw new Error("no VmRSS in /proc/<pid>/status");
  return Number(m[1]) * 1024;
}

export async function until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`not met in time: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** How a client stream ended: its grpc-status (headers or trailers), or the server's RST_STREAM code. */
export interface Outcome {
  status?: string;
  rstCode?: number;
  closed: boolean;
}

/** A gRPC request on `session`; `body` is written (never ended when `end` is false). Nothing is read when `read` is false. */
export function h2Request(session: http2.ClientHttp2Session, path: string, body: Buffer, opts: { token?: string; end?: boolean; read?: boolean } = {}): { stream: http2.ClientHttp2Stream; outcome: Outcome } {
  const headers: http2.OutgoingHttpHeaders = { ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const stream = session.request(headers);
  const outcome: Outcome = { closed: false };
  const take = (h: http2.IncomingHttpHeaders): void => {
    if (h["grpc-status"] !== undefined) outcome.status = String(h["grpc-status"]);
  };
  stream.on("response", take);
  stream.on("trailers", take);
  stream.on("error", () => undefined);
  stream.on("close", () => {
    outcome.closed = true;
    if (outcome.status === undefined) outcome.rstCode = stream.rstCode;
  });
  if (opts.read === false) stream.pause();
  else stream.resume();
  if (opts.end === false) stream.write(body);
  else stream.end(body);
  return { stream, outcome };
}

/** A connection to `address`; `localAddress` (127.0.0.2, ...) makes it another peer. */
export function connect(address: string, opts: { zeroWindow?: boolean; localAddress?: string } = {}): http2.ClientHttp2Session {
  const session = http2.connect(`http://${address}`, {
    ...(opts.zeroWindow ? { settings: { initialWindowSize: 0 } } : {}),
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
  });
  session.on("error", () => undefined);
  return session;
}

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
  /** A GetSecret of the victim's secret, and a watch of it that delivers its first message. */
  served(): Promise<void>;
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
    async served() {
      const secret = await s.call<Secret>("getSecret", { mesh: VICTIM_MESH, name: "db" }, token);
      expect(Buffer.from(secret.data.password!).toString()).toBe(VICTIM_VALUE);
      const w = openWatch(s.client, { mesh: VICTIM_MESH, items: [{ name: "db" }] }, token);
      try {
        expect(Buffer.from((await w.next()).values[0]!.value).toString()).toBe(VICTIM_VALUE);
      } finally {
        w.cancel();
      }
    },
  };
}

/** The attacker ("evil"/"mallory") with `roles`. */
export async function attackerToken(s: TestServer, roles: string[] = []): Promise<string> {
  return s.token({ tenant: "evil", sub: "mallory", roles });
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
