/** The one message for a listen address that cannot be used, naming its flag (INVALID_ARGUMENT: exit 2). */
import { invalid, type SecretdError } from "../errors.js";

/** `flag`'s address could not be listened on; `cause` is the listen error (grpc-js wraps it in its own message). */
export function listenRefused(flag: string, host: string, port: number, cause: unknown): SecretdError {
  const text = cause instanceof Error ? cause.message : String(cause);
  const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? /\b(E[A-Z]+)\b/.exec(text)?.[1];
  const addr = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  const why =
    code === "EADDRINUSE" ? "is already in use (another process listens there; pick another port, or stop that process)"
    : code === "EACCES" ? "may not be listened on by this user (a port below 1024 needs privileges)"
    : code === "EADDRNOTAVAIL" ? "is not an address of this machine"
    : `cannot be listened on (${code ?? "error"})`;
  return invalid(flag, `${addr} ${why}`);
}
