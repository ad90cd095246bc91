/**
 * Help text conventions: each verb lists its own flags (commander does that) and ends
 * with one example, added here so every verb prints it the same way.
 */
import type { Command } from "commander";

export function withExample(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText("after", `\n${lines.length === 1 ? "Example" : "Examples"}:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`);
}
