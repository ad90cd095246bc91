/**
 * `secretd sidecar`: keeps DIR in sync with a projection through WatchProjection, in
 * the kubelet's atomic layout (atomic-writer.ts). `--once` writes the current set with
 * one ProjectSecrets call and exits (init containers).
 *
 * Contract (SPEC §8): a lost connection never removes the last good set; access gone
 * (PERMISSION_DENIED / NOT_FOUND of a non-optional item) swaps in an empty set and keeps
 * retrying; a bad flag, projection file (a path escaping DIR too) or DIR exits 2 with a
 * message naming it before anything is contacted; a missing DIR is created when its
 * parent exists. Logs are JSON lines on stderr that never hold a value or token.
 */
import { constants as osConstants } from "node:os";
import { status, type ServiceError } from "@grpc/grpc-js";
import { Option, type Command } from "commander";
import { parseDuration } from "../duration.js";
import { invalid } from "../errors.js";
import type { Projection } from "../gen/secrets/v1/secrets.js";
import { createLogger } from "../logger.js";
import { connect, printCallError, withClientOptions, type ClientFlags, type Connection } from "../client/client.js";
import { withExample } from "../client/help.js";
import { readProjectionFile } from "../client/projection-file.js";
import { Acker } from "./acker.js";
import { AtomicWriter } from "./atomic-writer.js";
import { Backoff, DEFAULT_MAX_MS } from "./backoff.js";
import { ChangeNotifier, type ChangeAction } from "./change-notifier.js";
import { checkProjectionPaths, projectedFiles, projectionSummary } from "./projected-files.js";
import { staticToken, tokenFile, type TokenSource } from "./token-source.js";
import { WatchLoop } from "./watch-loop.js";
import { WATCH_CHANNEL_OPTIONS } from "./channel-options.js";

interface SidecarFlags extends ClientFlags {
  dir: string;
  projection: string;
  once?: boolean;
  execOnChange?: string;
  signalPid?: string;
  signal: string;
  maxBackoff: string;
  logLevel: string;
}

function changeAction(f: SidecarFlags): ChangeAction {
  if (f.execOnChange !== undefined && f.signalPid !== undefined) throw invalid("--exec-on-change", "give either --exec-on-change or --signal-pid, not both");
  if (f.execOnChange !== undefined) {
    if (f.execOnChange.trim() === "") throw invalid("--exec-on-change", "must not be empty");
    return { exec: f.execOnChange };
  }
  const signal = f.signal.toUpperCase().replace(/^(SIG)?/, "SIG") as NodeJS.Signals;
  if (!(signal in osConstants.signals)) throw invalid("--signal", `"${f.signal.slice(0, 16)}" is not a signal name like SIGHUP`);
  if (f.signalPid === undefined) return undefined;
  if (!/^[1-9]\d{0,9}$/.test(f.signalPid)) throw invalid("--signal-pid", `"${f.signalPid.slice(0, 16)}" is not a process id`);
  return { pid: Number(f.signalPid), signal };
}

/** --token-file is watched and re-read; --token / SECRETD_TOKEN stay as given. */
export function tokenSourceOf(f: ClientFlags, fallback: string): TokenSource {
  return f.tokenFile !== undefined ? tokenFile(f.tokenFile) : staticToken(fallback);
}

export function maxBackoffMs(value: string): number {
  try {
    return Math.min(parseDuration(value) * 1000, DEFAULT_MAX_MS);
  } catch {
    throw invalid("--max-backoff", `"${value.slice(0, 32)}" is not a duration like 5s or 30s`);
  }
}

function isAccessGone(err: unknown): err is ServiceError {
  const code = (err as Partial<ServiceError>).code;
  return code === status.PERMISSION_DENIED || code === status.NOT_FOUND;
}

export function registerSidecar(program: Command): void {
  const cmd = program
    .command("sidecar")
    .description("keep a directory in sync with a projection (the Kubernetes ..data layout), through WatchProjection")
    .requiredOption("--dir <dir>", "directory to keep the projected files in (created 0700 when missing and its parent exists)")
    .requiredOption("--projection <file>", "projection file (YAML mirroring ProjectSecretsRequest: mesh, items)")
    .option("--once", "write the current set and exit (for init containers)")
    .option("--exec-on-change <cmd>", "run this shell command after each change of the files")
    .option("--signal-pid <pid>", "send --signal to this process after each change of the files")
    .option("--signal <name>", "signal for --signal-pid", "SIGHUP")
    .option("--max-backoff <duration>", "longest wait between reconnects (at most 30s)", "30s")
    .addOption(new Option("--log-level <level>", "log level").choices(["debug", "info", "warn", "error"]).default("info"));
  withExample(cmd, "secretd sidecar --projection app.yaml --dir /run/secrets/app --signal-pid 1");
  withClientOptions(cmd).action(async (_opts: unknown, self: Command) => {
    const f = self.opts<SidecarFlags>();
    const log = createLogger(f.logLevel, 2, { sync: true });
    let token = "";
    let opened: { conn: Connection; token: string } | undefined;
    try {
      const action = changeAction(f);
      const backoff = new Backoff({ maxMs: maxBackoffMs(f.maxBackoff) });
      const request = readProjectionFile(f.projection, f.mesh !== undefined ? { mesh: f.mesh } : {});
      checkProjectionPaths(request, `projection file ${f.projection}`);
      opened = connect(self, WATCH_CHANNEL_OPTIONS); // flags checked; nothing dialled yet
      token = opened.token;
      const writer = new AtomicWriter(f.dir);
      writer.checkDir(); // last of the checks: it may create DIR
      writer.currentSet(); // a planted ..data is refused before anything is fetched
      const { conn } = opened;
      const notifier = new ChangeNotifier(action, f.dir, log.logger);

      const tokens = tokenSourceOf(f, token);
      const acker = new Acker(() => conn.client, tokens, log.logger);
      const apply = (p: Projection): void => {
        const hadSet = writer.currentSet() !== undefined;
        const r = writer.write(projectedFiles(p));
        log.logger.info({ ...projectionSummary(p), set: r.set, changed: r.changed }, r.changed ? "files updated" : "files unchanged");
        // Acked once applied: the files swapped and the hook (if it runs) succeeded.
        const done = (ok: boolean): void => {
          if (ok) void acker.ack(p);
          else if (Acker.ackable(p)) log.logger.warn({ revision: p.revision }, "not acking: the change hook failed");
        };
        if (r.changed && hadSet) notifier.notify(p.revision, done);
        else done(true);
      };
      const removeAll = (): void => {
        const r = writer.write([]);
        log.logger.warn({ set: r.set, changed: r.changed }, "values removed");
        if (r.changed) notifier.notify("");
      };

      if (f.once) {
        try {
          apply(await conn.unary(conn.client.projectSecrets, request));
        } catch (err) {
          if (isAccessGone(err)) removeAll();
          throw err;
        } finally {
          conn.close();
        }
        return;
      }

      const loop = new WatchLoop({
        client: conn.client,
        reopen: () => conn.reopen(),
        request,
        token: tokens,
        backoff,
        log: log.logger,
        onProjection: apply,
        onAccessGone: removeAll,
        onFatal: (err) => {
          void printCallError(err, self, conn, token).then((code) => {
            process.exitCode = code;
            conn.close();
          });
        },
      });
      const stop = (signal: string): void => {
        log.logger.info({ signal }, "stopping; the files stay");
        loop.stop();
        conn.close();
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
      log.logger.info({ dir: f.dir, items: request.items.length, mesh: request.mesh }, "watching");
      loop.start();
    } catch (err) {
      process.exitCode = await printCallError(err, self, opened?.conn, token);
      opened?.conn.close();
    }
  });
}
