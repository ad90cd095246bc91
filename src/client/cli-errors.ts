/**
 * The one way the CLI reports a failure: a single line `secretd: <CODE>: <details>` on
 * stderr, and an exit code per SPEC §7:
 *   0 ok · 1 the server refused, or could not be reached · 2 bad usage or input
 * A SecretdError raised by the CLI itself (a flag, a file, an argument) is usage/input;
 * its code is INVALID_ARGUMENT for a bad flag or file and exits 2. Anything the server
 * answered exits 1 whatever its code, so a script can tell "my command line is wrong"
 * from "the server said no".
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { CommanderError } from "commander";
import { SecretdError } from "../errors.js";

export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number" && typeof (err as Partial<ServiceError>).details === "string";
}

/** "NOT_FOUND", "UNAVAILABLE", …: the gRPC name of a numeric status code. */
export function codeName(code: number): string {
  return status[code] ?? `CODE_${code}`;
}

/** Local failures that are about the command line or its input files. */
const USAGE_CODES = new Set(["INVALID_ARGUMENT"]);

export function exitCodeOf(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  if (err instanceof SecretdError) return USAGE_CODES.has(err.code) ? EXIT_USAGE : EXIT_REFUSED;
  return EXIT_REFUSED;
}

/** The `<CODE>: <details>` of an error, on one line, with `secrets` scrubbed as a last guard. */
export function errorLine(err: unknown, secrets: readonly string[] = []): string {
  let code: string;
  let details: string;
  if (err instanceof SecretdError) {
    code = err.code;
    details = err.message;
  } else if (isServiceError(err)) {
    code = codeName(err.code);
    details = err.details;
  } else {
    code = "INTERNAL";
    details = err instanceof Error ? err.message : String(err);
  }
  for (const s of secrets) if (s !== "") details = details.split(s).join("[redacted]");
  details = details.replace(/\s*\n\s*/g, " ").trim();
  return `${code}: ${details}`;
}

/** Prints the error line to stderr and returns the exit code it calls for. */
export function printError(err: unknown, secrets: readonly string[] = []): number {
  process.stderr.write(`secretd: ${errorLine(err, secrets)}\n`);
  return exitCodeOf(err);
}

/**
 * commander's own messages ("error: unknown option '--x'") in the one format. Used as
 * `outputError` of the program, inherited by every command.
 */
export function formatCommanderError(message: string): string {
  return `secretd: INVALID_ARGUMENT: ${message.replace(/^error:\s*/, "").trim()}\n`;
}
