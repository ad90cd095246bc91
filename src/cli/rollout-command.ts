/**
 * `secretd rollout status NAME [--version N] [--wait] [--timeout 5m]` (like `kubectl
 * rollout status`): how many live consumers of a secret applied (acked) a version, and
 * who is behind. Exits 0 when converged; otherwise 1: at once without --wait, at the
 * timeout with it, listing the stragglers. A consumer that leaves while waited for (its
 * lease lapsed) is dropped from the count, and the output says so.
 */
import type { Command } from "commander";
import { parseDuration } from "../duration.js";
import { invalid } from "../errors.js";
import { GetRolloutRequest, ListConsumersRequest, type Consumer, type Rollout } from "../gen/secrets/v1/secrets.js";
import { runClient, withClientOptions, type Connection } from "../client/client.js";
import { withExample } from "../client/help.js";
import { formatTime } from "./output.js";

const POLL_MS = 500;
const DEFAULT_WAIT = "5m";

interface RolloutFlags {
  version?: string;
  wait?: boolean;
  timeout: string;
}

function appliedOf(c: Consumer, name: string): number {
  return c.applied.find((a) => a.name === name)?.version ?? 0;
}

/** One line per consumer behind: who, where, what it applied, since when. */
export function stragglerLine(c: Consumer, name: string): string {
  const v = appliedOf(c, name);
  const since = v > 0 ? formatTime(c.appliedTime) : formatTime(c.since);
  return `  behind: ${c.sub} on ${c.replica}: ${v > 0 ? `applied version ${v}` : "applied none"} since ${since ?? "?"} (consumer ${c.consumerId})\n`;
}

function summary(r: Rollout): string {
  return `secret "${r.name}" version ${r.version}: ${r.applied} of ${r.consumers} live consumer${r.consumers === 1 ? "" : "s"} applied it${r.converged ? ": converged" : ""}\n`;
}

/** Live consumer ids of the secret (to tell a straggler that left from one that caught up). */
async function liveIds(conn: Connection, name: string): Promise<Set<string>> {
  const ids = new Set<string>();
  let pageToken = "";
  do {
    const page = await conn.unary(conn.client.listConsumers, ListConsumersRequest.fromPartial({ mesh: conn.mesh, name, pageToken }));
    for (const c of page.consumers) ids.add(c.consumerId);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return ids;
}

export function registerRollout(program: Command): void {
  const rollout = program.command("rollout").description("rollouts of a secret's versions to its consumers");
  const cmd = rollout
    .command("status")
    .description("how many live consumers applied a version of a secret; exit 0 when converged, 1 when not (or on --timeout)")
    .argument("<name>", "secret name")
    .option("--version <n>", "the version (default: the current one)")
    .option("--wait", "wait until converged, at most --timeout (here default 5m; exit 1 then)");
  withExample(cmd, "secretd rollout status db --mesh default --wait --timeout 2m");
  withClientOptions(cmd).action((name: string, _opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<RolloutFlags>();
      // --timeout is the client's own flag (each call's deadline); here it also bounds the wait.
      if (self.getOptionValueSource("timeout") !== "cli" && self.getOptionValueSource("timeout") !== "env") f.timeout = DEFAULT_WAIT;
      if (f.version !== undefined && !/^[1-9]\d{0,15}$/.test(f.version)) throw invalid("--version", `"${f.version.slice(0, 20)}" is not a version number (1, 2, …)`);
      let timeoutMs: number;
      try {
        timeoutMs = parseDuration(f.timeout) * 1000;
      } catch {
        throw invalid("--timeout", `"${f.timeout.slice(0, 32)}" is not a duration like 30s or 5m`);
      }
      const request = GetRolloutRequest.fromPartial({ mesh: conn.mesh, name, version: f.version === undefined ? 0 : Number(f.version) });
      const deadline = Date.now() + timeoutMs;
      let r = await conn.unary(conn.client.getRollout, request);
      // Pin the version: "current" must not move under a --wait.
      request.version = r.version;
      process.stdout.write(summary(r));
      while (!r.converged && f.wait && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_MS, Math.max(0, deadline - Date.now()))));
        const next = await conn.unary(conn.client.getRollout, request);
        const stillBehind = new Set(next.behind.map((c) => c.consumerId));
        const gone = r.behind.filter((c) => !stillBehind.has(c.consumerId));
        if (gone.length > 0) {
          const live = await liveIds(conn, name);
          for (const c of gone) {
            if (!live.has(c.consumerId)) process.stdout.write(`consumer ${c.sub} on ${c.replica} left (its watch ended or its lease lapsed): no longer counted\n`);
          }
        }
        if (next.applied !== r.applied || next.consumers !== r.consumers || next.converged) process.stdout.write(summary(next));
        r = next;
      }
      if (r.converged) return;
      for (const c of r.behind) process.stdout.write(stragglerLine(c, name));
      if (f.wait) process.stdout.write(`timed out after ${f.timeout}: ${r.behind.length} consumer${r.behind.length === 1 ? "" : "s"} behind\n`);
      process.exitCode = 1;
    }),
  );
}
