/**
 * Commander exits 1 on a usage error (missing or unknown option, missing argument);
 * SPEC §7 says bad usage exits 2. Help and --version still exit 0.
 */
import type { Command } from "commander";

export function exitTwoOnUsageError(cmd: Command): Command {
  return cmd.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
}
