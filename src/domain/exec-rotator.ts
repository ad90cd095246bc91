/**
 * The `exec` rotator (#30 item 5): an executable the operator configures
 * (--rotator-exec), run by the server without a shell as
 * `<exec> rotate|retire <tenant> <mesh> <name> <version>`, with the version's values on
 * stdin as JSON `{"data": {"<key>": "<base64>"}}`. Exit status 0 accepts; 75 (EX_TEMPFAIL)
 * asks to be tried again later (a rotate step is retried with backoff); anything else, or
 * running past --rotator-timeout (then it is killed), refuses. Its stdout and stderr are
 * discarded (they may echo a value) and its environment is PATH alone (no token, no key
 * file path); an outcome names only the status, signal or time bound. A timeout kills
 * its whole process group.
 */
import { spawn } from "node:child_process";

export type RotatorAction = "rotate" | "retire";

export interface RotatorTarget {
  readonly tenant: string;
  readonly mesh: string;
  readonly name: string;
  readonly version: number;
  /** The secret's annotations (a built-in rotator's configuration); exec ignores them. */
  readonly annotations?: Readonly<Record<string, string>>;
}

/**
 * "ok", or why the rotator refused (never a value). `transient`: it may succeed when tried
 * again (exec: exit status 75, EX_TEMPFAIL; postgres: the target unreachable), so a
 * rotate step is retried with backoff instead of failing the rotation.
 */
export type RotatorOutcome = { readonly ok: true } | { readonly ok: false; readonly reason: string; readonly transient?: boolean };

/** exec's "try again later" status (sysexits.h EX_TEMPFAIL). */
export const EX_TEMPFAIL = 75;

export type Rotator = (action: RotatorAction, target: RotatorTarget, values: ReadonlyMap<string, Buffer>) => Promise<RotatorOutcome>;

export function execRotator(exec: string, timeoutMs: number): Rotator {
  return (action, t, values) =>
    new Promise((resolve) => {
      const input = Buffer.from(JSON.stringify({ data: Object.fromEntries([...values].map(([k, v]) => [k, v.toString("base64")])) }));
      let settled = false;
      const done = (o: RotatorOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        input.fill(0);
        resolve(o);
      };
      const child = spawn(exec, [action, t.tenant, t.mesh, t.name, String(t.version)], {
        stdio: ["pipe", "ignore", "ignore"],
        env: { PATH: process.env.PATH ?? "" },
        shell: false,
        // Its own process group: a timeout kills what it started too.
        detached: true,
      });
      const timer = setTimeout(() => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        } catch {
          child.kill("SIGKILL");
        }
        done({ ok: false, reason: `timed out after ${Math.round(timeoutMs / 1000)}s (killed)` });
      }, timeoutMs);
      child.on("error", (err: NodeJS.ErrnoException) => done({ ok: false, reason: `could not start (${err.code ?? "error"})` }));
      child.on("exit", (code, signal) =>
        done(
          code === 0
            ? { ok: true }
            : code === EX_TEMPFAIL
              ? { ok: false, reason: `exited with status ${EX_TEMPFAIL} (EX_TEMPFAIL)`, transient: true }
              : { ok: false, reason: signal !== null ? `ended by ${signal}` : `exited with status ${code}` },
        ),
      );
      // A command that never reads its stdin (or exits first) must not fail the server.
      child.stdin.on("error", () => undefined);
      child.stdin.end(input);
    });
}
