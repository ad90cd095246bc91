/**
 * What every client verb shares (sidecar, run, apply, audit, … build on it too): the
 * connection flags, the bearer token, a promisified unary call with a deadline, and the
 * one error printer. The token is a credential: it goes into call metadata and nowhere
 * else — never into a message, not even an error.
 *
 *   --server host[:port]   SECRETD_SERVER, default 127.0.0.1:50051 (port 50051 when omitted)
 *   --token / --token-file SECRETD_TOKEN
 *   --mesh                 SECRETD_MESH, default "" (the tenant-wide global scope)
 *   --ca / --cert / --cert-key   TLS (plaintext without them); --tls: TLS with the system CAs
 *   --timeout              deadline of each unary call
 */
import { credentials, Metadata, status, type CallOptions, type ChannelCredentials, type ChannelOptions, type ClientUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { Option, type Command } from "commander";
import { parseDuration } from "../duration.js";
import { SecretdError, invalid } from "../errors.js";
import { SecretServiceClient } from "../gen/secrets/v1/secrets.js";
import { isServiceError, printError } from "./cli-errors.js";
import { checkCaBundle, checkCertKeyPair, readFlagFile } from "../tls-material.js";
import { describeConnectionFailure, type Dialled } from "./connection-failure.js";
import { DEFAULT_PORT, parseServerAddress, type ServerAddress } from "./server-address.js";
import { ttlSeconds } from "./ttl-flag.js";

export const DEFAULT_SERVER = `127.0.0.1:${DEFAULT_PORT}`;
const DEFAULT_TIMEOUT = "10s";

/** The flags withClientOptions adds, as commander hands them over. */
export interface ClientFlags {
  server?: string;
  token?: string;
  tokenFile?: string;
  mesh?: string;
  ca?: string;
  cert?: string;
  certKey?: string;
  tls?: boolean;
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

/** Everything needed to open a channel, parsed and checked from the flags before any dialling. */
export interface ClientSettings {
  readonly address: ServerAddress;
  readonly credentials: ChannelCredentials;
  readonly dialled: Dialled;
  readonly token: string;
  /** The scope of the call: --mesh / SECRETD_MESH, "" (the tenant-wide global scope) when not given. */
  readonly mesh: string;
  /** Whether a mesh was given (flag or SECRETD_MESH): a file's own mesh may otherwise win. */
  readonly meshGiven: boolean;
  readonly timeoutMs: number;
  /** Call metadata carrying the bearer token. */
  metadata(): Metadata;
}

export interface Connection {
  readonly client: SecretServiceClient;
  readonly settings: ClientSettings;
  /** The scope of the call: --mesh, "" (the tenant-wide global scope) when not given. */
  readonly mesh: string;
  /** Whether --mesh was given on the command line (a file's own mesh may otherwise win). */
  readonly meshGiven: boolean;
  /** Calls e.g. `conn.unary(conn.client.getSecret, req)` with the bearer token and the deadline. */
  unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req): Promise<Res>;
  /**
   * Closes the channel and opens a fresh one (`client` is then the new one): a new
   * connection attempt now, not when grpc-js's own reconnect backoff of the old channel
   * ends. Fresh only with `grpc.use_local_subchannel_pool` (WATCH_CHANNEL_OPTIONS): the
   * global pool would hand back the old, backing-off connection.
   */
  reopen(): SecretServiceClient;
  close(): void;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A repeatable flag: each occurrence appends to a list; undefined when never given. */
export function repeatable(flags: string, description: string): Option {
  return new Option(flags, description).argParser(collect);
}

/** `-o, --output <format>` with its choices: every read verb takes json and yaml. */
export function outputOption(choices: readonly string[], fallback: string, description = "output format"): Option {
  return new Option("-o, --output <format>", description).choices(choices).default(fallback);
}

/** Adds the connection flags every client verb takes. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--server <host[:port]>", `server address (port ${DEFAULT_PORT} when omitted)`).env("SECRETD_SERVER").default(DEFAULT_SERVER))
    .addOption(new Option("--token <jwt>", "bearer token (prefer --token-file or SECRETD_TOKEN: flags show in ps)").env("SECRETD_TOKEN"))
    .option("--token-file <file>", "file holding the bearer token (trailing newline ignored)")
    .addOption(new Option("--mesh <mesh>", 'mesh of the secret (default "", the tenant-wide global scope)').env("SECRETD_MESH"))
    .option("--ca <file>", "use TLS, trusting this CA bundle (PEM); plaintext when no TLS flag is given")
    .addOption(new Option("--tls-ca <file>").hideHelp())
    .option("--cert <file>", "client certificate (PEM) for mutual TLS; needs --cert-key")
    .option("--cert-key <file>", "private key (PEM) of --cert")
    .option("--tls", "use TLS, trusting the system's CAs (implied by --ca or --cert)")
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
    token = readFlagFile(flags.tokenFile, "--token-file").toString("utf8").trim();
    if (token === "") throw invalid("--token-file", `${flags.tokenFile} is empty`);
  } else if (flags.token !== undefined) {
    token = flags.token.trim();
  } else {
    throw invalid("token", "none given: pass --token or --token-file, or set SECRETD_TOKEN");
  }
  if (token === "") throw invalid("token", "is empty");
  if (!TOKEN_CHARS.test(token)) throw invalid("token", "holds characters a bearer token cannot hold (spaces, control or non-ASCII)");
  return token;
}

/** The channel credentials of the TLS flags (--ca, --cert/--cert-key, --tls); plaintext without them. */
export function channelCredentials(flags: ClientFlags): { creds: ChannelCredentials; tls: boolean; clientCert: boolean; customCa: boolean } {
  const caFile = flags.ca ?? flags.tlsCa;
  if ((flags.cert === undefined) !== (flags.certKey === undefined)) {
    throw invalid(flags.cert === undefined ? "--cert-key" : "--cert", "--cert and --cert-key go together");
  }
  const tls = caFile !== undefined || flags.cert !== undefined || flags.tls === true;
  if (!tls) return { creds: credentials.createInsecure(), tls: false, clientCert: false, customCa: false };
  const ca = caFile === undefined ? null : readFlagFile(caFile, "--ca");
  const key = flags.certKey === undefined ? null : readFlagFile(flags.certKey, "--cert-key");
  const cert = flags.cert === undefined ? null : readFlagFile(flags.cert, "--cert");
  if (ca !== null) checkCaBundle(ca, "--ca");
  if (cert !== null && key !== null) checkCertKeyPair(cert, key, "--cert", "--cert-key");
  return { creds: credentials.createSsl(ca, key, cert), tls: true, clientCert: cert !== null, customCa: ca !== null };
}

function timeoutMs(value: string): number {
  try {
    return parseDuration(value) * 1000;
  } catch {
    throw invalid("--timeout", `"${value.slice(0, 32)}" is not a duration like 10s, 5m or 1h`);
  }
}

/** Parses and checks the connection flags of a command. Throws INVALID_ARGUMENT naming the flag. */
export function clientSettings(cmd: Command): ClientSettings {
  const flags = cmd.opts<ClientFlags>();
  const address = parseServerAddress(flags.server ?? DEFAULT_SERVER, cmd.getOptionValueSource("server") === "env" ? "SECRETD_SERVER" : "--server");
  const timeout = timeoutMs(flags.timeout ?? DEFAULT_TIMEOUT);
  const { creds, tls, clientCert, customCa } = channelCredentials(flags);
  const token = resolveToken(cmd, flags);
  return {
    address,
    credentials: creds,
    dialled: { address, tls, clientCert, customCa },
    token,
    mesh: flags.mesh ?? "",
    meshGiven: flags.mesh !== undefined,
    timeoutMs: timeout,
    metadata() {
      const md = new Metadata();
      md.set("authorization", `Bearer ${token}`);
      return md;
    },
  };
}

/**
 * Opens a channel from the command's flags. Throws INVALID_ARGUMENT for bad flags.
 * `channelOptions` are grpc-js channel settings (e.g. a larger receive limit for projections).
 */
export function connect(cmd: Command, channelOptions: ChannelOptions = {}): { conn: Connection; token: string } {
  const settings = clientSettings(cmd);
  const open = (): SecretServiceClient => new SecretServiceClient(settings.address.target, settings.credentials, channelOptions);
  let client = open();
  const conn: Connection = {
    get client() {
      return client;
    },
    settings,
    mesh: settings.mesh,
    meshGiven: settings.meshGiven,
    unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
      return new Promise<Res>((resolve, reject) => {
        method.call(client, request, settings.metadata(), { deadline: Date.now() + settings.timeoutMs }, (err, res) => (err ? reject(err) : resolve(res)));
      });
    },
    reopen() {
      client.close();
      client = open();
      return client;
    },
    close: () => client.close(),
  };
  return { conn, token: settings.token };
}

/**
 * A call error as the user should read it: a failure to connect becomes one sentence
 * (UNAVAILABLE: "cannot reach 127.0.0.1:50051: connection refused", TLS against
 * plaintext, …); a deadline passed before any answer says so; anything the server
 * answered is returned unchanged.
 */
export async function explainCallError(err: unknown, dialled: Dialled, timeout?: string): Promise<unknown> {
  if (!isServiceError(err)) return err;
  if (err.code === status.UNAVAILABLE) {
    const sentence = await describeConnectionFailure(err.details, dialled);
    if (sentence !== undefined) return new SecretdError("UNAVAILABLE", sentence);
  }
  if (err.code === status.DEADLINE_EXCEEDED && /LB pick|Waiting for LB|connect/i.test(err.details)) {
    return new SecretdError("UNAVAILABLE", `cannot reach ${dialled.address.target}: no connection within the --timeout${timeout ? ` of ${timeout}` : ""}`);
  }
  return err;
}

/**
 * Prints a client verb's failure the one way (a connection failure as one sentence, see
 * explainCallError; `token` scrubbed) and returns the exit code it calls for. `conn` is
 * undefined when the flags failed before a channel was opened.
 */
export async function printCallError(err: unknown, cmd: Command, conn: Connection | undefined, token: string): Promise<number> {
  const shown = conn === undefined ? err : await explainCallError(err, conn.settings.dialled, cmd.opts<ClientFlags>().timeout);
  return printError(shown, [token]);
}

/**
 * The server's NOT_FOUND names the secret, not where it looked: the CLI adds the scope it
 * asked in, and when that is the global scope because no mesh was given, says so
 * (`secret "db" not found in the global scope (mesh ""; no --mesh or SECRETD_MESH given)`).
 */
export function withScopeSearched(err: unknown, conn: Pick<Connection, "mesh" | "meshGiven">): unknown {
  if (!isServiceError(err) || err.code !== status.NOT_FOUND) return err;
  const scope =
    conn.mesh !== "" ? `in mesh "${conn.mesh}"` : conn.meshGiven ? 'in the global scope (mesh "")' : 'in the global scope (mesh ""; no --mesh or SECRETD_MESH given)';
  const e = new Error(err.message) as ServiceError;
  e.code = err.code;
  e.details = `${err.details} ${scope}`;
  e.metadata = err.metadata;
  return e;
}

export interface RunClientOptions {
  /** The verb works on one secret of the --mesh scope: a NOT_FOUND names that scope. */
  readonly scoped?: boolean;
}

/** For verbs on one secret of the --mesh scope (get, update, delete, grant, …). */
export const SCOPED: RunClientOptions = { scoped: true };

/**
 * Runs a client verb: connects from the command's flags, runs `body`, prints any error
 * the one way and sets the exit code, and always closes the channel so the process ends.
 */
export async function runClient(cmd: Command, body: (conn: Connection) => Promise<void>, opts: RunClientOptions = {}): Promise<void> {
  let conn: Connection | undefined;
  let token = "";
  try {
    ({ conn, token } = connect(cmd));
    await body(conn);
  } catch (err) {
    const shown = opts.scoped === true && conn !== undefined ? withScopeSearched(err, conn) : err;
    process.exitCode = await printCallError(shown, cmd, conn, token);
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
  if (flags.ttl !== undefined) return new Date(now + ttlSeconds(flags.ttl) * 1000);
  if (flags.expireTime === undefined) return undefined;
  const ms = RFC3339.test(flags.expireTime) ? Date.parse(flags.expireTime) : Number.NaN;
  if (!Number.isFinite(ms)) throw invalid("--expire-time", `"${flags.expireTime.slice(0, 40)}" is not an RFC 3339 time like 2030-01-01T00:00:00Z`);
  return new Date(ms);
}
