/**
 * Adds configuration settings of config.ts as flags of a command: every setting for
 * `serve`, only the ones it reads for a local tool (`token mint`, `keys …`), so each
 * verb's --help lists its own flags and nothing else.
 */
import type { Command } from "commander";
import { SETTINGS, loadConfig, type Config } from "../config.js";

export type SettingKey = (typeof SETTINGS)[number]["key"];

export function withConfigOptions(cmd: Command, only?: readonly SettingKey[]): Command {
  cmd.option("--config <file>", "YAML configuration file (env SECRETD_CONFIG)");
  for (const s of SETTINGS) {
    if (only !== undefined && !only.includes(s.key)) continue;
    cmd.option(`--${s.flag} ${s.boolean ? "[bool]" : "<value>"}`, `${s.doc} (env ${s.env}${s.default ? `, default ${s.default}` : ""})`);
  }
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
