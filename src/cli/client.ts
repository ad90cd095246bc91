/**
 * What every client verb shares: the connection flags, the bearer token, a promisified
 * unary call with a deadline, and the one error printer. The token is a credential: it
 * goes into call metadata and nowhere else — never into a message, not even an error.
 */
import { readFileSync } from "node:fs";
import { credentials, Metadata, status, type CallOptions, type ChannelCredentials, type ChannelOptions, type ClientUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { Option, type Command } from "commander";
import { parseDuration } from "../auth/mint.js";
import { SecretdError, invalid } from "../domain/errors.js";
import { SecretServiceClient } from "../gen/secrets/v1/secrets.js";

export const DEFAULT_SERVER = "127.0.0.1:50051";
const DEFAULT_TIMEOUT = "10s";

/** The flags withClientOptions adds, as commander hands them over. */
export interface ClientFlags {
  server?: string;
  token?: string;
  tokenFile?: string;
  mesh?: string;
  tlsCa?: string;
  timeout?: string;
}

/** A client method in its (request, metadata, options, callback) form. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export interface Connection {
  readonly client: SecretServiceClient;
  /** The scope of the call: --mesh, "" (the tenant-wide global scope) when not given. */
  readonly mesh: string;
  /** Whether --mesh was given on the command line (a file's own mesh may otherwise win). */
  readonly meshGiven: boolean;
  /** Calls e.g. `conn.unary(conn.client.getSecret, req)` with the bearer token and the deadline. */
  unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req): Promise<Res>;
  close(): void;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A repeatable flag: each occurrence appends to a list; undefined when never given. */
export function repeatable(flags: string, description: string): Option {
  return new Option(flags, description).argParser(collect);
}

/** Adds the connection flags every client verb takes. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--server <host:port>", "server address").env("SECRETD_SERVER").default(DEFAULT_SERVER))
    .addOption(new Option("--token <jwt>", "bearer token (prefer --token-file or SECRETD_TOKEN: flags show in ps)").env("SECRETD_TOKEN"))
    .option("--token-file <file>", "file holding the bearer token (trailing newline ignored)")
    .option("--mesh <mesh>", 'mesh of the secret (default "", the tenant-wide global scope)')
    .option("--tls-ca <file>", "use TLS, trusting this CA bundle (PEM); plaintext when not given")
    .option("--timeout <duration>", "deadline of each call: 90s, 5m, …", DEFAULT_TIMEOUT);
}

/** A token must be a single header-safe word; grpc-js would echo a bad value in its error. */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

/** The token from exactly one source: --token or --token-file, else SECRETD_TOKEN. */
function resolveToken(cmd: Command, flags: ClientFlags): string {
  const fromCli = flags.token !== undefined && cmd.getOptionValueSource("token") === "cli";
  if (fromCli && flags.tokenFile !== undefined) throw invalid("--token", "give either --token or --token-file, not both");
  let token: string;
  if (flags.tokenFile !== undefined) {
    try {
      token = readFileSync(flags.tokenFile, "utf8").trim();
    } catch (err) {
      throw new SecretdError("INVALID_ARGUMENT", `--token-file: cannot read ${flags.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
    }
  } else if (flags.token !== undefined) {
    token = flags.token.trim();
  } else {
    throw invalid("token", "none given: pass --token or --token-file, or set SECRETD_TOKEN");
  }
  if (token === "") throw invalid("token", "is empty");
  if (!TOKEN_CHARS.test(token)) throw invalid("token", "holds characters a bearer token cannot hold (spaces, control or non-ASCII)");
  return token;
}

function channelCredentials(tlsCa: string | undefined): ChannelCredentials {
  if (tlsCa === undefined) return credentials.createInsecure();
  try {
    return credentials.createSsl(readFileSync(tlsCa));
  } catch (err) {
    throw new SecretdError("INVALID_ARGUMENT", `--tls-ca: cannot use ${tlsCa}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function timeoutMs(value: string): number {
  try {
    return parseDuration(value) * 1000;
  } catch {
    throw invalid("--timeout", `"${value.slice(0, 32)}" is not a duration like 10s, 5m or 1h`);
  }
}

/**
 * Opens a channel from the command's flags. Throws INVALID_ARGUMENT for bad flags.
 * `channelOptions` are grpc-js channel settings (e.g. a larger receive limit for projections).
 */
export function connect(cmd: Command, channelOptions: ChannelOptions = {}): { conn: Connection; token: string } {
  const flags = cmd.opts<ClientFlags>();
  const token = resolveToken(cmd, flags);
  const server = flags.server ?? DEFAULT_SERVER;
  if (server === "") throw invalid("--server", "must not be empty");
  const timeout = timeoutMs(flags.timeout ?? DEFAULT_TIMEOUT);
  const client = new SecretServiceClient(server, channelCredentials(flags.tlsCa), channelOptions);
  const conn: Connection = {
    client,
    mesh: flags.mesh ?? "",
    meshGiven: flags.mesh !== undefined,
    unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
      const md = new Metadata();
      md.set("authorization", `Bearer ${token}`);
      return new Promise<Res>((resolve, reject) => {
        method.call(client, request, md, { deadline: Date.now() + timeout }, (err, res) => (err ? reject(err) : resolve(res)));
      });
    },
    close: () => client.close(),
  };
  return { conn, token };
}

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number" && typeof (err as Partial<ServiceError>).details === "string";
}

/** "NOT_FOUND", "UNAVAILABLE", …: the gRPC name of a numeric status code. */
function codeName(code: number): string {
  return status[code] ?? `CODE_${code}`;
}

/**
 * Prints `secretd: <GRPC CODE NAME>: <details>` to stderr and returns the exit code:
 * 2 for INVALID_ARGUMENT (a usage error, as elsewhere in the CLI), 1 for anything else.
 * `secrets` are scrubbed from the message as a last guard.
 */
export function printError(err: unknown, secrets: readonly string[] = []): number {
  let code: string;
  let details: string;
  if (err instanceof SecretdError) {
    code = err.code;
    details = err.message;
  } else if (isServiceError(err)) {
    code = codeName(err.code);
    details = err.details;
  } else {
    code = "UNKNOWN";
    details = err instanceof Error ? err.message : String(err);
  }
  for (const s of secrets) if (s !== "") details = details.split(s).join("[redacted]");
  process.stderr.write(`secretd: ${code}: ${details}\n`);
  return code === "INVALID_ARGUMENT" ? 2 : 1;
}

/**
 * Runs a client verb: connects from the command's flags, runs `body`, prints any error
 * the one way and sets the exit code, and always closes the channel so the process ends.
 */
export async function runClient(cmd: Command, body: (conn: Connection) => Promise<void>): Promise<void> {
  let conn: Connection | undefined;
  let token = "";
  try {
    ({ conn, token } = connect(cmd));
    await body(conn);
  } catch (err) {
    process.exitCode = printError(err, [token]);
  } finally {
    conn?.close();
  }
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** Adds --expire-time / --ttl, read back with expireTimeFrom. */
export function withExpiryOptions(cmd: Command, what: string): Command {
  return cmd
    .option("--expire-time <rfc3339>", `when the ${what} ends, e.g. 2030-01-01T00:00:00Z`)
    .option("--ttl <duration>", `lifetime of the ${what} from now: 90s, 15m, 1h, 7d`);
}

/** The end time from --expire-time or --ttl (at most one), or undefined for "never". */
export function expireTimeFrom(flags: { expireTime?: string | undefined; ttl?: string | undefined }, now = Date.now()): Date | undefined {
  if (flags.expireTime !== undefined && flags.ttl !== undefined) throw invalid("--expire-time", "give either --expire-time or --ttl, not both");
  if (flags.ttl !== undefined) {
    try {
      return new Date(now + parseDuration(flags.ttl) * 1000);
    } catch {
      throw invalid("--ttl", `"${flags.ttl.slice(0, 32)}" is not a duration like 90s, 15m, 1h or 7d`);
    }
  }
  if (flags.expireTime === undefined) return undefined;
  const ms = RFC3339.test(flags.expireTime) ? Date.parse(flags.expireTime) : Number.NaN;
  if (!Number.isFinite(ms)) throw invalid("--expire-time", `"${flags.expireTime.slice(0, 40)}" is not an RFC 3339 time like 2030-01-01T00:00:00Z`);
  return new Date(ms);
}
