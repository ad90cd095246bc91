/**
 * `secretd run --projection P.yaml [--restart-on-change] -- CMD ARGS…`: starts CMD with
 * the projected values as environment variables on top of run's own environment (less
 * SECRETD_TOKEN, the credential run itself uses), forwards the signals it receives, and
 * exits with CMD's exit code. With --restart-on-change the values come from
 * WatchProjection and each new revision restarts CMD (SIGTERM, --grace-period, SIGKILL)
 * with the new values; a lost connection or lost access leaves CMD running as it is.
 */
import { type Command } from "commander";
import { parseDuration } from "../duration.js";
import { invalid } from "../errors.js";
import type { Projection, ProjectSecretsRequest } from "../gen/secrets/v1/secrets.js";
import { createLogger } from "../logger.js";
import { connect, printCallError, withClientOptions, type ClientFlags, type Connection } from "../client/client.js";
import { errorLine } from "../client/cli-errors.js";
import { withExample } from "../client/help.js";
import { projectedEnv } from "../client/projected-env.js";
import { readProjectionFile } from "../client/projection-file.js";
import { Acker } from "./acker.js";
import { Backoff } from "./backoff.js";
import { childEnv } from "./change-notifier.js";
import { projectionSummary } from "./projected-files.js";
import { maxBackoffMs, tokenSourceOf } from "./sidecar-command.js";
import { exitCodeOf, FORWARDED_SIGNALS, Supervisor } from "./supervisor.js";
import { WatchLoop } from "./watch-loop.js";
import { WATCH_CHANNEL_OPTIONS } from "./channel-options.js";

interface RunFlags extends ClientFlags {
  projection: string;
  restartOnChange?: boolean;
  gracePeriod: string;
  maxBackoff: string;
  ackAfter: string;
}

/** The environment CMD gets: run's own, minus SECRETD_TOKEN, plus the projected values (every name checked, projected-env.ts). */
export function envFor(request: ProjectSecretsRequest, p: Projection): NodeJS.ProcessEnv {
  return childEnv(projectedEnv(request, p));
}

export function registerRun(program: Command): void {
  const cmd = program
    .command("run")
    .description("run a command with projected values as environment variables")
    .usage("--projection <file> [options] -- <command> [args...]")
    .argument("<command...>", "the command to run, after --")
    .requiredOption("--projection <file>", "projection file (YAML mirroring ProjectSecretsRequest: mesh, items)")
    .option("--restart-on-change", "watch the projection and restart the command with the new values on each change")
    .option("--grace-period <duration>", "how long a restart waits after SIGTERM before SIGKILL", "10s")
    .option("--ack-after <duration>", "with --restart-on-change: ack a new revision once the restarted command has stayed up this long", "2s")
    .option("--max-backoff <duration>", "longest wait between reconnects (at most 30s)", "30s");
  withExample(cmd, "secretd run --projection app.yaml --restart-on-change -- node server.js");
  withClientOptions(cmd).action(async (argv: string[], _opts: unknown, self: Command) => {
    const f = self.opts<RunFlags>();
    const log = createLogger("info", 2, { sync: true });
    let token = "";
    let opened: { conn: Connection; token: string } | undefined;
    try {
      const [command, ...args] = argv;
      if (command === undefined || command === "") throw invalid("command", "give the command to run after --");
      let graceMs: number;
      try {
        graceMs = parseDuration(f.gracePeriod) * 1000;
      } catch {
        throw invalid("--grace-period", `"${f.gracePeriod.slice(0, 32)}" is not a duration like 10s`);
      }
      let ackAfterMs: number;
      try {
        ackAfterMs = parseDuration(f.ackAfter) * 1000;
      } catch {
        throw invalid("--ack-after", `"${f.ackAfter.slice(0, 32)}" is not a duration like 2s`);
      }
      const backoff = new Backoff({ maxMs: maxBackoffMs(f.maxBackoff) });
      const request = readProjectionFile(f.projection, f.mesh !== undefined ? { mesh: f.mesh } : {});
      opened = connect(self, WATCH_CHANNEL_OPTIONS);
      token = opened.token;
      const { conn } = opened;
      const child = new Supervisor(command, args, graceMs, (code) => process.stderr.write(`secretd: cannot start ${command.slice(0, 128)}: ${code}\n`));
      for (const s of FORWARDED_SIGNALS) process.on(s, () => child.forward(s) || process.exit(exitCodeOf(null, s)));

      // One snapshot first, in both modes: a bad server, token or grant fails fast, before CMD runs.
      const p = await conn.unary(conn.client.projectSecrets, request);
      child.start(envFor(request, p));
      let loop: WatchLoop | undefined;
      if (f.restartOnChange) {
        const tokens = tokenSourceOf(f, token);
        const acker = new Acker(() => conn.client, tokens, log.logger);
        loop = new WatchLoop({
          client: conn.client,
          request,
          knownRevision: p.revision,
          token: tokens,
          backoff,
          log: log.logger,
          onProjection: async (next) => {
            let env: NodeJS.ProcessEnv;
            try {
              env = envFor(request, next);
            } catch (err) {
              // A name or value the new revision brings cannot be env: CMD keeps running as it is.
              log.logger.error({ ...projectionSummary(next), error: errorLine(err) }, "the changed projection cannot be the command's environment; the command keeps its current values");
              return;
            }
            log.logger.info(projectionSummary(next), "projection changed: restarting the command");
            await child.restart(env);
            // Acked once the new child stayed up --ack-after; one that exits (or is replaced) first is not.
            void child.stayedUp(ackAfterMs).then((up) => {
              if (up) void acker.ack(next);
              else if (Acker.ackable(next)) log.logger.warn({ revision: next.revision }, "not acking: the restarted command did not stay up");
            });
          },
          onAccessGone: () => log.logger.error("access to the projection is gone; the command keeps its current values"),
          onFatal: (err) => log.logger.error({ error: err instanceof Error ? err.message : String(err) }, "watch stopped; the command keeps its current values"),
        });
        loop.start();
      } else {
        conn.close();
      }
      const code = await child.exited;
      loop?.stop();
      conn.close();
      process.exit(code);
    } catch (err) {
      process.exitCode = await printCallError(err, self, opened?.conn, token);
      process.exit();
    }
  });
}
