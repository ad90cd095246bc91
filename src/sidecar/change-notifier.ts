/**
 * What the sidecar does after it swapped in a new set: run `--exec-on-change CMD`
 * (through /bin/sh, never two at once: changes during a run cause one more run after
 * it) or send a signal to `--signal-pid PID`. The command gets SECRETD_DIR and
 * SECRETD_REVISION, and not the sidecar's own SECRETD_TOKEN. `done` learns whether the
 * action for that revision succeeded (the sidecar acks only then); a revision superseded
 * while a command ran is never reported (its successor is).
 */
import { spawn } from "node:child_process";
import type { Logger } from "pino";

export type ChangeAction = { readonly exec: string } | { readonly pid: number; readonly signal: NodeJS.Signals } | undefined;

/** The sidecar's environment minus its credential. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.SECRETD_TOKEN;
  return env;
}

type Done = (ok: boolean) => void;

export class ChangeNotifier {
  private running = false;
  private again: { revision: string; done: Done } | undefined;

  constructor(
    private readonly action: ChangeAction,
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  notify(revision: string, done: Done = () => undefined): void {
    const a = this.action;
    if (a === undefined) return done(true);
    if ("pid" in a) {
      try {
        process.kill(a.pid, a.signal);
        this.log.info({ pid: a.pid, signal: a.signal }, "signalled");
        done(true);
      } catch (err) {
        this.log.error({ pid: a.pid, signal: a.signal, error: (err as NodeJS.ErrnoException).code ?? "error" }, "cannot signal --signal-pid");
        done(false);
      }
      return;
    }
    if (this.running) {
      this.again = { revision, done };
      return;
    }
    this.running = true;
    const child = spawn("/bin/sh", ["-c", a.exec], {
      stdio: ["ignore", "inherit", "inherit"],
      env: childEnv({ SECRETD_DIR: this.dir, SECRETD_REVISION: revision }),
    });
    let finished = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null, error?: string): void => {
      if (finished) return; // "exit" may or may not follow "error"
      finished = true;
      this.running = false;
      const ok = error === undefined && code === 0;
      if (!ok) this.log.error({ code, signal, error }, "--exec-on-change failed");
      else this.log.info("--exec-on-change done");
      const next = this.again;
      this.again = undefined;
      if (next === undefined) done(ok);
      else this.notify(next.revision, next.done); // the newer revision's run decides (this one is superseded)
    };
    child.on("error", (err: NodeJS.ErrnoException) => finish(null, null, err.code ?? "error"));
    child.on("exit", (code, signal) => finish(code, signal));
  }
}
