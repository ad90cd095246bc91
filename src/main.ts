#!/usr/bin/env node
/** CLI entry: parses argv and hands over; no logic of its own. */
import { Command } from "commander";
import { registerServe } from "./cli/serve.js";
import { registerToken } from "./cli/token.js";
import { registerSecretsCommands } from "./cli/secrets-commands.js";
import { registerGrantsCommands } from "./cli/grants-commands.js";
import { registerProject } from "./cli/project-command.js";
import { registerKeys } from "./cli/keys.js";
import { registerConsumers } from "./cli/consumers-command.js";
import { registerSidecar } from "./sidecar/sidecar-command.js";
import { registerRun } from "./sidecar/run-command.js";
import { registerApply } from "./cli/apply-command.js";
import { registerBackupCommands } from "./cli/backup-commands.js";
import { registerDoctor } from "./cli/doctor.js";
import { SecretdError } from "./domain/errors.js";

const program = new Command("secretd").description("multi-tenant secret service over gRPC").showHelpAfterError();
registerServe(program);
registerToken(program);
registerSecretsCommands(program);
registerGrantsCommands(program);
registerProject(program);
registerKeys(program);
registerConsumers(program);
registerSidecar(program);
registerRun(program);
registerApply(program);
registerBackupCommands(program);
registerDoctor(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`secretd: ${err instanceof SecretdError ? err.message : String(err)}\n`);
  process.exit(err instanceof SecretdError && err.code === "INVALID_ARGUMENT" ? 2 : 1);
});
