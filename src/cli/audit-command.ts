/**
 * `secretd audit`: the tenant's audit trail (tenant-admin tokens only), oldest first,
 * filtered by secret, mesh, sub and time. `--since 1h` means the last hour; an RFC 3339
 * time works too. Events reach the trail within a second of their call.
 */
import { Option, type Command } from "commander";
import { parseDuration } from "../duration.js";
import { SecretdError, invalid } from "../errors.js";
import { ListAuditEventsRequest, type AuditEvent, type ListAuditEventsResponse } from "../gen/secrets/v1/secrets.js";
import { runClient, withClientOptions } from "../client/client.js";
import { auditTable, auditView, renderDoc, type DocFormat } from "./output.js";

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const MAX_PAGES = 100_000;

interface AuditFlags {
  secret?: string;
  sub?: string;
  since?: string;
  until?: string;
  pageSize?: string;
  pageToken?: string;
  all?: boolean;
  output: DocFormat | "table";
}

/** "1h" (that long ago) or an RFC 3339 time. */
export function pointInTime(v: string, flag: string, now = Date.now()): Date {
  if (RFC3339.test(v)) {
    const ms = Date.parse(v);
    if (Number.isFinite(ms)) return new Date(ms);
  }
  try {
    return new Date(now - parseDuration(v) * 1000);
  } catch {
    throw invalid(flag, `"${v.slice(0, 40)}" is neither a duration like 15m, 1h, 7d nor an RFC 3339 time`);
  }
}

export function registerAudit(program: Command): void {
  const cmd = program
    .command("audit")
    .description("show the tenant's audit trail, oldest first (needs a tenant-admin token)")
    .option("--secret <name>", "only events about this secret")
    .option("--sub <sub>", "only events of calls made by this principal")
    .option("--since <when>", "only events from this point on: a duration ago (15m, 1h, 7d) or an RFC 3339 time")
    .option("--until <when>", "only events before this point: a duration ago or an RFC 3339 time")
    .option("--page-size <n>", "events per page (server default 100, max 1000)")
    .option("--page-token <token>", "continue from a previous page")
    .option("--all", "follow next_page_token until the last page")
    .addOption(new Option("-o, --output <format>", "output format").choices(["table", "json", "yaml"]).default("table"))
    .addHelpText("after", "\nExample:\n  secretd audit --secret db-password --since 1h -o yaml\n\nWith --mesh, only events of that mesh; without it, every mesh.");
  withClientOptions(cmd).action((_opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<AuditFlags>();
      if (f.pageSize !== undefined && !/^\d{1,6}$/.test(f.pageSize)) throw invalid("--page-size", `"${f.pageSize.slice(0, 32)}" must be a whole number`);
      const base = {
        mesh: conn.meshGiven ? conn.mesh : "",
        name: f.secret ?? "",
        sub: f.sub ?? "",
        since: f.since === undefined ? undefined : pointInTime(f.since, "--since"),
        until: f.until === undefined ? undefined : pointInTime(f.until, "--until"),
        pageSize: f.pageSize === undefined ? 0 : Number(f.pageSize),
      };
      const events: AuditEvent[] = [];
      let token = f.pageToken ?? "";
      let page: ListAuditEventsResponse;
      let pages = 0;
      do {
        page = await conn.unary(conn.client.listAuditEvents, ListAuditEventsRequest.fromPartial({ ...base, pageToken: token }));
        events.push(...page.events);
        if (page.nextPageToken !== "" && page.nextPageToken === token) throw new SecretdError("INTERNAL", "the server returned the same page token twice");
        token = page.nextPageToken;
      } while (f.all === true && token !== "" && ++pages < MAX_PAGES);
      const next = f.all === true ? "" : token;
      if (f.output === "table") {
        if (events.length > 0) process.stdout.write(auditTable(events));
        else process.stderr.write("no audit events\n");
        if (next !== "") process.stderr.write(`more events: add --all, or --page-token ${next}\n`);
      } else {
        const doc: Record<string, unknown> = { events: events.map(auditView) };
        if (next !== "") doc.nextPageToken = next;
        process.stdout.write(renderDoc(doc, f.output));
      }
    }),
  );
}
