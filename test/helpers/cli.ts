/**
 * Runs the built `secretd` binary (dist/main.js) as a child process, asynchronously: a
 * test server living in the test process must keep answering while the CLI runs.
 */
import { spawn } from "node:child_process";
import path from "node:path";

export const MAIN = path.resolve("dist/main.js");

export interface CliRun {
  readonly status: number | null;
  readonly stdout: Buffer;
  readonly out: string;
  readonly err: string;
}

export interface CliOptions {
  /** Added to the environment (SECRETD_* of the test process are removed first). */
  readonly env?: Record<string, string>;
  /** Written to the child's stdin, then closed; stdin is empty otherwise. */
  readonly stdin?: string;
}

export function runCli(args: readonly string[], opts: CliOptions = {}): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SECRETD_")));
  Object.assign(env, opts.env ?? {});
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (status) => {
      const stdout = Buffer.concat(out);
      resolve({ status, stdout, out: stdout.toString("utf8"), err: Buffer.concat(err).toString("utf8") });
    });
    child.stdin.end(opts.stdin ?? "");
  });
}
