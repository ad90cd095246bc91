/**
 * Runs the built `secretd` binary (dist/main.js, built by global-setup) as a child
 * process, asynchronously: a server started in the test process must keep answering
 * while the CLI runs, which spawnSync would prevent.
 */
import { spawn } from "node:child_process";
import path from "node:path";

export const MAIN = path.resolve("dist/main.js");

export interface CliRun {
  status: number | null;
  stdout: Buffer;
  out: string;
  err: string;
}

export interface CliOptions {
  /** Added to (and overriding) the test process's environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  stdin?: string;
  cwd?: string;
}

/** The SECRETD_* variables of the developer's shell must not leak into a test run. */
function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("SECRETD_")) env[k] = v;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export function runCli(args: readonly string[], opts: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: cleanEnv(opts.env), cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.stdin.end(opts.stdin ?? "");
    child.on("close", (status) => {
      const stdout = Buffer.concat(out);
      resolve({ status, stdout, out: stdout.toString("utf8"), err: Buffer.concat(err).toString("utf8") });
    });
  });
}
