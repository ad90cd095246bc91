/**
 * The `secretd` binary (dist/main.js) as a long-running child process of a test: its
 * stdout and stderr collected as they come, its exit awaited. The server lives in the
 * test process, so children are always asynchronous (a sync spawn would block the very
 * event loop that must answer them).
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import path from "node:path";

export const MAIN = path.resolve("dist/main.js");

export interface CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** stderr parsed as JSON log lines (non-JSON lines are skipped). */
  logs(): Array<Record<string, unknown>>;
  /** Resolves with the exit code (128 + n for a signal) once the process ended. */
  readonly exited: Promise<number>;
  /** Sends a signal and waits for the exit; SIGKILL after 10 s. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

export interface CliOptions extends SpawnOptions {
  /** A command the binary runs under, e.g. WITHOUT_DAC_OVERRIDE. */
  readonly launcher?: readonly string[];
}

/**
 * Root without the capabilities that let it ignore file modes: a 0555 directory is then
 * not writable for it, as for anyone else. It stays root, so it still reads the clone
 * it runs from wherever that is (a 0700 home or `mktemp -d`), which another user could not.
 */
export const WITHOUT_DAC_OVERRIDE: readonly string[] = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"];

export function startCli(args: string[], env: NodeJS.ProcessEnv, opts: CliOptions = {}): CliProcess {
  const { launcher = [], ...spawnOpts } = opts;
  const [cmd, ...pre] = [...launcher, process.execPath];
  const child = spawn(cmd!, [...pre, MAIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"], ...spawnOpts });
  let out = "";
  let err = "";
  child.stdout?.on("data", (b: Buffer) => (out += b.toString("utf8")));
  child.stderr?.on("data", (b: Buffer) => (err += b.toString("utf8")));
  const exited = new Promise<number>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve(code ?? 128 + (signal === "SIGKILL" ? 9 : signal === "SIGTERM" ? 15 : 0)));
  });
  return {
    child,
    pid: child.pid ?? -1,
    stdout: () => out,
    stderr: () => err,
    logs: () =>
      err
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    exited,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Runs the binary to its end. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv, opts: CliOptions = {}): Promise<{ code: number; out: string; err: string }> {
  const p = startCli(args, env, opts);
  const code = await p.exited;
  return { code, out: p.stdout(), err: p.stderr() };
}

/** Polls `check` until it returns true (or a value), failing with `what` after `ms`. */
export async function waitFor<T>(what: string, check: () => T | false | undefined | Promise<T | false | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== false && v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
