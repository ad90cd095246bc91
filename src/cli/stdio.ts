/**
 * Process-wide behaviour of the CLI's standard streams, set once by main.ts:
 * - a reader that goes away (`secretd list -o json | head -1`) ends the process quietly
 *   (status 0 unless a failure already set one), as a well-behaved filter does, instead of an EPIPE stack trace;
 * - Node's DEP0123 warning ("Setting the TLS ServerName to an IP address…"), which
 *   grpc-js triggers on every TLS connection to an IP address, is not printed: it is
 *   about grpc-js's internals, not about anything the user can change.
 */
export function installStdio(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
      throw err;
    });
  }
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]): void => {
    const code = typeof rest[0] === "object" && rest[0] !== null ? (rest[0] as { code?: unknown }).code : rest[1];
    if (code === "DEP0123") return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}
