/**
 * `secretd rotate NAME`: RotateSecret from flags (#30 item 4). The new values come from
 * --from-literal / --from-file or are made by the server (--generate key[:length]), so a
 * generated password never crosses the wire on the way in. Without --etag the current
 * version's is read first. --wait follows the rotation (GetRollout) until it ends, a
 * rotator's step retried while PENDING included: exit 0 when done, 1 when it timed out or
 * failed.
 */
import type { Command } from "commander";
import { Option } from "commander";
import { invalid } from "../errors.js";
import { parseDuration } from "../duration.js";
import { GetRolloutRequest, GetSecretRequest, Retire, RotateSecretRequest, RotationState, type Rollout } from "../gen/secrets/v1/secrets.js";
import { outputOption, repeatable, runClient, SCOPED, withClientOptions, type Connection } from "../client/client.js";
import { withExample } from "../client/help.js";
import { stateName } from "../domain/rollout.js";
import { formatTime, renderDoc, type DocFormat } from "./output.js";
import { dataFrom, type DataFlags } from "./secrets-commands.js";

interface RotateFlags extends DataFlags {
  generate?: string[];
  retire: "after-ack" | "immediate" | "never";
  ackTimeout?: string;
  etag?: string;
  wait?: boolean;
  rotator?: string;
  output: DocFormat;
}

const RETIRE: Record<RotateFlags["retire"], Retire> = { "after-ack": Retire.RETIRE_AFTER_ACK, immediate: Retire.RETIRE_IMMEDIATE, never: Retire.RETIRE_NEVER };
const WAIT_POLL_MS = 250;

function generateFrom(args: readonly string[] = []): { key: string; length: number; alphabet: string }[] {
  return args.map((a, i) => {
    const m = /^([^:]+)(?::(\d{1,6}))?$/.exec(a);
    if (!m) throw invalid("--generate", `occurrence #${i + 1} must look like key or key:length`);
    return { key: m[1]!, length: m[2] === undefined ? 0 : Number(m[2]), alphabet: "" };
  });
}

export function rolloutView(r: Rollout): Record<string, unknown> {
  return {
    name: r.name,
    mesh: r.mesh,
    version: r.version,
    previousVersion: r.previousVersion,
    state: stateName(r.state),
    consumers: r.consumers,
    applied: r.applied,
    converged: r.converged,
    ...(r.behind.length > 0 ? { behind: r.behind.map((c) => ({ sub: c.sub, consumerId: c.consumerId, replica: c.replica })) } : {}),
    ...(r.started ? { started: formatTime(r.started) } : {}),
    ...(r.finished ? { finished: formatTime(r.finished) } : {}),
    ...(r.detail !== "" ? { detail: r.detail } : {}),
  };
}

/** Still running: a rotator's step (PENDING, retried with backoff), waiting for acks, or retiring. */
const ACTIVE = new Set([RotationState.ROTATION_STATE_PENDING, RotationState.ROTATION_STATE_WAITING_FOR_ACKS, RotationState.ROTATION_STATE_RETIRING]);

async function waitForEnd(conn: Connection, r: Rollout): Promise<Rollout> {
  let last = r;
  while (ACTIVE.has(last.state)) {
    await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
    last = await conn.unary(conn.client.getRollout, GetRolloutRequest.fromPartial({ mesh: r.mesh, name: r.name, version: r.version }));
  }
  return last;
}

export function registerRotate(program: Command): void {
  const cmd = program
    .command("rotate")
    .description("make new values the current version; the old one stays readable as stage previous until retired")
    .argument("<name>", "secret name")
    .addOption(repeatable("--from-literal <key=value>", "a new value given inline (repeatable); keys not named keep their value"))
    .addOption(repeatable("--from-file <[key=]path>", "a new value read from a file (repeatable)"))
    .addOption(repeatable("--generate <key[:length]>", "the server makes this value: letters and digits, length default 32 (repeatable)"))
    .addOption(new Option("--retire <when>", "when the previous version stops being readable").choices(["after-ack", "immediate", "never"]).default("after-ack"))
    .option("--ack-timeout <duration>", "after-ack: retire anyway after this long (default 10m), recording who never confirmed")
    .addOption(new Option("--rotator <name>", "exec: the server's --rotator-exec command accepts the new values first, and retires the old; postgres: the built-in alternating-users rotator").choices(["exec", "postgres"]))
    .option("--etag <etag>", "rotate only if this is still the current version (default: the current one)")
    .option("--wait", "follow the rotation until it ends: exit 0 done, 1 timed out or failed");
  withClientOptions(cmd).addOption(outputOption(["yaml", "json"], "yaml"));
  withExample(cmd, "secretd rotate db --mesh default --generate password:32 --retire after-ack --ack-timeout 5m --wait");
  cmd.action((name: string, _opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<RotateFlags>();
      // Built before any call, so a bad flag fails without touching the server.
      const ackTimeout = f.ackTimeout === undefined ? undefined : { seconds: parseDuration(f.ackTimeout), nanos: 0 };
      if (ackTimeout !== undefined && f.retire !== "after-ack") throw invalid("--ack-timeout", "applies to --retire after-ack only");
      const fields = { mesh: conn.mesh, name, data: dataFrom(f), generate: generateFrom(f.generate), retire: RETIRE[f.retire], ackTimeout, rotator: f.rotator ?? "" };
      const etag = f.etag ?? (await conn.unary(conn.client.getSecret, GetSecretRequest.fromPartial({ mesh: conn.mesh, name, keys: [] }))).etag;
      let rollout = await conn.unary(conn.client.rotateSecret, RotateSecretRequest.fromPartial({ ...fields, etag }));
      if (f.wait === true) {
        if (process.stderr.isTTY) process.stderr.write(`rotating secret "${name}" to version ${rollout.version}: waiting for ${rollout.consumers - rollout.applied} consumer(s)…\n`);
        rollout = await waitForEnd(conn, rollout);
      }
      process.stdout.write(renderDoc(rolloutView(rollout), f.output));
      if (rollout.state === RotationState.ROTATION_STATE_TIMED_OUT || rollout.state === RotationState.ROTATION_STATE_FAILED) process.exitCode = 1;
    }, SCOPED),
  );
}
