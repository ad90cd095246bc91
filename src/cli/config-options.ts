/** Adds every configuration setting of config.ts as a flag of a command. */
import type { Command } from "commander";
import { SETTINGS, loadConfig, type Config } from "../config.js";

export function withConfigOptions(cmd: Command): Command {
  cmd.option("--config <file>", "YAML configuration file (env SECRETD_CONFIG)");
  for (const s of SETTINGS) cmd.option(`--${s.flag} ${s.boolean ? "[bool]" : "<value>"}`, `${s.doc} (env ${s.env}${s.default ? `, default ${s.default}` : ""})`);
  return cmd;
}

export function configFrom(opts: Record<string, unknown>): Config {
  const flags: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts)) {
    if (typeof v === "string") flags[k] = v;
    else if (v === true) flags[k] = "true"; // a bare switch such as --metrics-tenant-labels
  }
  return loadConfig(flags, process.env);
}
