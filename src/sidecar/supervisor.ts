/**
 * The child of `secretd run`: started with an environment, sent the signals `run`
 * receives, restarted on demand (SIGTERM, a grace period, then SIGKILL, then a fresh
 * start). `exited` resolves with the exit code `run` must return when the child ends
 * by itself: its own code, 128 + the signal number when a signal ended it, 127 when it
 * could not be started at all (as a shell does).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { constants as osConstants } from "node:os";

export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH"];

export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal !== null ? (osConstants.signals[signal] ?? 0) : 0);
}

export class Supervisor {
  private child: ChildProcess | undefined;
  private restarting = false;
  private resolveExit: (code: number) => void = () => undefined;
  /** Resolves when the child ends other than by a restart. */
  readonly exited: Promise<number>;

  constructor(
    private readonly command: string,
    private readonly args: readonly string[],
    private readonly graceMs: number,
    private readonly onStartError: (what: string) => void,
  ) {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  start(env: NodeJS.ProcessEnv): void {
    const child = spawn(this.command, [...this.args], { stdio: "inherit", env });
    this.child = child;
    let ended = false;
    child.on("error", (err: NodeJS.ErrnoException) => {
      if (ended) return;
      ended = true;
      this.onStartError(err.code ?? "error");
      this.child = undefined;
      this.resolveExit(127);
    });
    child.on("exit", (code, signal) => {
      if (ended) return;
      ended = true;
      if (this.child === child) this.child = undefined;
      if (!this.restarting) this.resolveExit(exitCodeOf(code, signal));
    });
  }

  /**
   * Resolves true when the running child is still the running one `ms` from now (it
   * stayed up), false as soon as it ends or is replaced.
   */
  stayedUp(ms: number): Promise<boolean> {
    const child = this.child;
    if (child === undefined) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onExit = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        child.off("exit", onExit);
        resolve(this.child === child);
      }, ms);
      child.once("exit", onExit);
    });
  }

  /** Sends the signal to the child; false when there is no child to send it to. */
  forward(signal: NodeJS.Signals): boolean {
    if (this.child === undefined) return false;
    this.child.kill(signal);
    return true;
  }

  /** Stops the child (SIGTERM, then SIGKILL after the grace period) and starts it again. */
  async restart(env: NodeJS.ProcessEnv): Promise<void> {
    const child = this.child;
    if (child === undefined) return; // it already ended: run is on its way out
    this.restarting = true;
    await new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill("SIGKILL"), this.graceMs);
      child.once("exit", () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill("SIGTERM");
    });
    this.restarting = false;
    this.start(env);
  }
}
