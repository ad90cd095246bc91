#!/usr/bin/env node
/** CLI entry: parses argv and hands over; no logic of its own. */
import { Command, CommanderError } from "commander";
import { registerServe } from "./cli/serve.js";
import { registerToken } from "./cli/token.js";
import { registerSecretsCommands } from "./cli/secrets-commands.js";
import { registerGrantsCommands } from "./cli/grants-commands.js";
import { registerProject } from "./cli/project-command.js";
import { registerKeys } from "./cli/keys.js";
import { exitCodeOf, formatCommanderError, printError } from "./client/cli-errors.js";
import { installStdio } from "./cli/stdio.js";
import { registerConsumers } from "./cli/consumers-command.js";
import { registerRollout } from "./cli/rollout-command.js";
import { registerSidecar } from "./sidecar/sidecar-command.js";
import { registerRun } from "./sidecar/run-command.js";
import { registerApply } from "./cli/apply-command.js";
import { registerBackupCommands } from "./cli/backup-commands.js";
import { registerDoctor } from "./cli/doctor.js";
import { registerAudit } from "./cli/audit-command.js";
import { registerCsiProvider } from "./csi/csi-provider-command.js";
import { registerRotate } from "./cli/rotate-command.js";

installStdio();
// Set before any command is added: commander copies these settings into every subcommand.
const program = new Command("secretd")
  .description("multi-tenant secret service over gRPC")
  .configureOutput({ outputError: (message, write) => write(formatCommanderError(message)) })
  .showHelpAfterError("(add --help for usage)")
  .exitOverride();
registerServe(program);
registerToken(program);
registerSecretsCommands(program);
registerGrantsCommands(program);
registerProject(program);
registerKeys(program);
registerConsumers(program);
registerRollout(program);
registerSidecar(program);
registerRun(program);
registerApply(program);
registerBackupCommands(program);
registerDoctor(program);
registerAudit(program);
registerCsiProvider(program);
registerRotate(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  // commander has already printed its own usage errors (and help) in the one format.
  process.exitCode = err instanceof CommanderError ? exitCodeOf(err) : printError(err);
  // Leave time to flush stdio; a handle left open by a failed start must not hang the exit.
  setTimeout(() => process.exit(), 1000).unref();
});
