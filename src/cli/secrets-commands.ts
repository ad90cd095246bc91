/**
 * Client verbs on secrets: create, get, list, update, delete. Each is a thin mapping
 * from flags to one request (list --all and update --force make two or more calls);
 * the server does the validation, so its field-naming errors reach the user unchanged.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import type { Command } from "commander";
import { SecretdError, invalid } from "../errors.js";
import { defaultEnvName } from "../domain/env-names.js";
import {
  CreateSecretRequest,
  DeleteSecretRequest,
  GetSecretRequest,
  ListSecretsRequest,
  UpdateSecretRequest,
  type ListSecretsResponse,
  type Secret,
} from "../gen/secrets/v1/secrets.js";
import { expireTimeFrom, outputOption, repeatable, runClient, SCOPED, withClientOptions, withExpiryOptions, type Connection } from "../client/client.js";
import { checkedEnv } from "../client/projected-env.js";
import { withExample } from "../client/help.js";
import { updateMask } from "./update-mask.js";
import { envLines, renderDoc, secretsTable, secretView, type DocFormat } from "./output.js";

export interface DataFlags {
  fromLiteral?: string[];
  fromFile?: string[];
  label?: string[];
  annotation?: string[];
  description?: string;
  expireTime?: string;
  ttl?: string;
}

/** Flags that set a secret's values and metadata: shared by create and update. */
function withDataOptions(cmd: Command): Command {
  cmd
    .addOption(repeatable("--from-literal <key=value>", "a value given inline (repeatable)"))
    .addOption(repeatable("--from-file <[key=]path>", "a value read from a file, byte for byte; key defaults to the file name (repeatable)"))
    .addOption(repeatable("--label <key=value>", "a label (repeatable)"))
    .addOption(repeatable("--annotation <key=value>", "an annotation (repeatable)"))
    .option("--description <text>", "a description");
  return withExpiryOptions(cmd, "secret");
}

/**
 * Splits "k=v" at the first "="; the key must not be empty, the value may be. A
 * malformed argument is named by its flag and position, never quoted: it may be a value
 * typed without its key (`--from-literal s3cr3t`).
 */
function keyValue(arg: string, flag: string, index: number): [string, string] {
  const eq = arg.indexOf("=");
  if (eq <= 0) throw invalid(flag, `occurrence #${index + 1} must look like key=value (its text is not shown: it may hold a value)`);
  return [arg.slice(0, eq), arg.slice(eq + 1)];
}

function stringMap(args: readonly string[] = [], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, a] of args.entries()) {
    const [k, v] = keyValue(a, flag, i);
    if (k in out) throw invalid(flag, `key "${k.slice(0, 64)}" given twice`);
    out[k] = v;
  }
  return out;
}

/** The data map from --from-literal and --from-file; a key may come from one flag only. */
export function dataFrom(flags: DataFlags): Record<string, Buffer> {
  const data: Record<string, Buffer> = {};
  const put = (k: string, v: Buffer, flag: string): void => {
    if (k in data) throw invalid(flag, `data key "${k.slice(0, 64)}" given twice`);
    data[k] = v;
  };
  for (const [i, a] of (flags.fromLiteral ?? []).entries()) {
    const [k, v] = keyValue(a, "--from-literal", i);
    put(k, Buffer.from(v, "utf8"), "--from-literal");
  }
  for (const a of flags.fromFile ?? []) {
    const eq = a.indexOf("=");
    const file = eq < 0 ? a : a.slice(eq + 1);
    const key = eq < 0 ? path.basename(a) : a.slice(0, eq);
    if (key === "" || file === "") throw invalid("--from-file", `"${a.slice(0, 64)}" must look like key=path or path`);
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new SecretdError("INVALID_ARGUMENT", `--from-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
    put(key, bytes, "--from-file");
  }
  return data;
}

function nonNegativeInt(v: string, flag: string): number {
  if (!/^\d{1,15}$/.test(v)) throw invalid(flag, `"${v.slice(0, 32)}" must be a whole number`);
  return Number(v);
}

function print(s: Secret, format: DocFormat, withData = false): void {
  process.stdout.write(renderDoc(secretView(s, withData), format));
}

function registerCreate(program: Command): void {
  const cmd = program
    .command("create")
    .description("create a secret; prints its metadata (uid, version, etag, keys)")
    .argument("<name>", "secret name")
    .option("--type <type>", "secret type (default Opaque)")
    .option("--immutable", "the values can never change")
    .option("--request-id <id>", "makes retries idempotent: the same id returns the same secret");
  withDataOptions(withClientOptions(cmd)).addOption(outputOption(["yaml", "json"], "yaml"));
  withExample(cmd, "secretd create db --mesh default --from-literal user=app --from-file password=./pw.txt --label app=db");
  cmd.action((name: string, _opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<DataFlags & { type?: string; immutable?: boolean; requestId?: string; output: DocFormat }>();
      const req = CreateSecretRequest.fromPartial({
        mesh: conn.mesh,
        name,
        type: f.type ?? "",
        data: dataFrom(f),
        labels: stringMap(f.label, "--label"),
        annotations: stringMap(f.annotation, "--annotation"),
        description: f.description ?? "",
        immutable: f.immutable === true,
        expireTime: expireTimeFrom(f),
        requestId: f.requestId ?? "",
      });
      print(await conn.unary(conn.client.createSecret, req), f.output);
    }),
  );
}

interface GetFlags {
  version?: string;
  stage?: string;
  key?: string[];
  output: DocFormat | "env" | "raw";
}

/** KEY=value lines, env names derived as projections derive them, under the same policy (projected-env.ts). */
function secretEnvLines(secret: Secret): string {
  const keys = Object.keys(secret.data).sort();
  const candidates = keys.map((key) => ({ secret: secret.name, key, env: defaultEnvName("", key), explicit: false, value: secret.data[key] ?? Buffer.alloc(0) }));
  return envLines(checkedEnv(candidates, { value: " (use --output json or raw)", name: "use `secretd project` with an explicit env name" }));
}

function registerGet(program: Command): void {
  const cmd = program
    .command("get")
    .description("read a secret with its values (text when UTF-8, else base64 marked as binary)")
    .argument("<name>", "secret name")
    .option("--version <n>", "version number (default: the latest)")
    .option("--stage <stage>", "current (default) or previous: the version a rotation keeps readable (not with --version)")
    .addOption(repeatable("--key <key>", "only this data key (repeatable)"))
    .addOption(outputOption(["yaml", "json", "env", "raw"], "yaml"));
  withExample(cmd, "secretd get db --mesh default --key password -o raw > /run/pw");
  withClientOptions(cmd).action((name: string, _opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<GetFlags>();
      const keys = f.key ?? [];
      if (f.output === "raw" && keys.length !== 1) throw invalid("--output raw", "needs exactly one --key: it writes that value's bytes and nothing else");
      const req = GetSecretRequest.fromPartial({ mesh: conn.mesh, name, version: f.version === undefined ? 0 : nonNegativeInt(f.version, "--version"), keys, stage: f.stage ?? "" });
      const secret = await conn.unary(conn.client.getSecret, req);
      if (f.output === "raw") {
        const key = keys[0] ?? "";
        const value = secret.data[key];
        if (value === undefined) throw new SecretdError("NOT_FOUND", `key "${key}" is not in secret "${name}"`);
        process.stdout.write(value);
      } else if (f.output === "env") {
        process.stdout.write(secretEnvLines(secret));
      } else {
        print(secret, f.output, true);
      }
    }, SCOPED),
  );
}

interface ListFlags {
  selector?: string;
  type?: string;
  pageSize?: string;
  pageToken?: string;
  all?: boolean;
  output: DocFormat | "table";
}

/** Upper bound on pages followed by --all: a server bug must not loop forever. */
const MAX_PAGES = 100_000;

function registerList(program: Command): void {
  const cmd = program
    .command("list")
    .description("list the secrets of a scope you may see (metadata only)")
    .option("--selector <selector>", "label selector, e.g. app=web,tier!=db")
    .option("--type <type>", "only secrets of this type")
    .option("--page-size <n>", "secrets per page (server default 100, max 1000)")
    .option("--page-token <token>", "continue from a previous page")
    .option("--all", "follow next_page_token until the last page")
    .addOption(outputOption(["table", "json", "yaml"], "table"));
  withExample(cmd, "secretd list --mesh default --selector app=db -o json");
  withClientOptions(cmd).action((_opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<ListFlags>();
      const base = {
        mesh: conn.mesh,
        labelSelector: f.selector ?? "",
        type: f.type ?? "",
        pageSize: f.pageSize === undefined ? 0 : nonNegativeInt(f.pageSize, "--page-size"),
      };
      const secrets: Secret[] = [];
      let token = f.pageToken ?? "";
      let page: ListSecretsResponse;
      let pages = 0;
      do {
        page = await conn.unary(conn.client.listSecrets, ListSecretsRequest.fromPartial({ ...base, pageToken: token }));
        secrets.push(...page.secrets);
        if (page.nextPageToken !== "" && page.nextPageToken === token) throw new SecretdError("INTERNAL", "the server returned the same page token twice");
        token = page.nextPageToken;
      } while (f.all === true && token !== "" && ++pages < MAX_PAGES);
      const next = f.all === true ? "" : token;
      if (f.output === "table") {
        process.stdout.write(secrets.length > 0 ? secretsTable(secrets) : "");
        if (secrets.length === 0) process.stderr.write("no secrets\n");
        if (next !== "") process.stderr.write(`more secrets: add --all, or --page-token ${next}\n`);
      } else {
        const doc: Record<string, unknown> = { secrets: secrets.map((s) => secretView(s)) };
        if (next !== "") doc.nextPageToken = next;
        process.stdout.write(renderDoc(doc, f.output));
      }
    }),
  );
}

/** The update flags present on the command line, by name (for updateMask). */
function givenFlags(f: DataFlags): Set<string> {
  const named: Array<[string, unknown]> = [
    ["--from-literal", f.fromLiteral],
    ["--from-file", f.fromFile],
    ["--label", f.label],
    ["--annotation", f.annotation],
    ["--description", f.description],
    ["--expire-time", f.expireTime],
    ["--ttl", f.ttl],
  ];
  return new Set(named.filter(([, v]) => v !== undefined).map(([flag]) => flag));
}

/**
 * The current etag, for update --force. An expired secret is no longer served by
 * GetSecret, but reviving it is what an update is for: its etag is then found among
 * the expired secrets that ListSecrets (expiring_within 0) returns.
 */
async function currentEtag(conn: Connection, name: string): Promise<string> {
  try {
    return (await conn.unary(conn.client.getSecret, GetSecretRequest.fromPartial({ mesh: conn.mesh, name }))).etag;
  } catch (err) {
    if ((err as Partial<ServiceError>).code !== status.FAILED_PRECONDITION) throw err;
    let pageToken = "";
    for (let pages = 0; pages < MAX_PAGES; pages++) {
      const req = ListSecretsRequest.fromPartial({ mesh: conn.mesh, expiringWithin: { seconds: 0, nanos: 0 }, pageSize: 1000, pageToken });
      const page = await conn.unary(conn.client.listSecrets, req);
      const hit = page.secrets.find((s) => s.name === name);
      if (hit) return hit.etag;
      if (page.nextPageToken === "" || page.nextPageToken === pageToken) break;
      pageToken = page.nextPageToken;
    }
    throw err;
  }
}

function registerUpdate(program: Command): void {
  const cmd = program
    .command("update")
    .description("write a new version, compare-and-set on --etag; data flags replace all values, other fields are replaced when given")
    .argument("<name>", "secret name")
    .option("--etag <etag>", "etag of the version you are replacing (from get, list or create)")
    .option("--force", "instead of --etag: update whatever version is current (an expired one too)")
    .option("--mask <paths>", "fields to replace: data,labels,annotations,description,expire_time (default: the fields given); each needs its flag or --clear")
    .addOption(repeatable("--clear <paths>", "write these fields empty: data (no keys), labels, annotations, description, expire_time (never expires)"));
  withDataOptions(withClientOptions(cmd)).addOption(outputOption(["yaml", "json"], "yaml"));
  withExample(cmd, "secretd update db --mesh default --etag \"$(secretd get db --mesh default -o json | jq -r .etag)\" --from-literal user=app2");
  cmd.action((name: string, _opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<DataFlags & { etag?: string; force?: boolean; mask?: string; clear?: string[]; output: DocFormat }>();
      if (f.etag === undefined && f.force !== true) {
        throw invalid("--etag", "is required: pass the etag you read (get, list, create), or --force to update the current version");
      }
      if (f.etag !== undefined && f.force === true) throw invalid("--force", "cannot be combined with --etag: --etag updates only that version, --force whatever is current");
      // Built before any call, so a bad flag fails without touching the server.
      const fields = {
        mesh: conn.mesh,
        name,
        data: dataFrom(f),
        labels: stringMap(f.label, "--label"),
        annotations: stringMap(f.annotation, "--annotation"),
        description: f.description ?? "",
        expireTime: expireTimeFrom(f),
        updateMask: updateMask(f.mask, f.clear ?? [], givenFlags(f)),
      };
      const etag = f.etag ?? (await currentEtag(conn, name));
      const updated = await conn.unary(conn.client.updateSecret, UpdateSecretRequest.fromPartial({ ...fields, etag }));
      // The server keeps the version when the update changes nothing.
      if (updated.etag === etag) process.stderr.write(`secret "${name}" unchanged: version ${updated.version} kept\n`);
      print(updated, f.output);
    }, SCOPED),
  );
}

function registerDelete(program: Command): void {
  const cmd = program
    .command("delete")
    .description("delete a secret with every version and grant (final)")
    .argument("<name>", "secret name")
    .option("--etag <etag>", "delete only if this is still the current version")
    .option("--force", "delete even while watched (live consumers; see `secretd consumers NAME`)");
  withExample(cmd, "secretd delete db --mesh default", "secretd delete db --mesh default --force   # even while a sidecar watches it");
  withClientOptions(cmd).action((name: string, _opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<{ etag?: string; force?: boolean }>();
      await conn.unary(conn.client.deleteSecret, DeleteSecretRequest.fromPartial({ mesh: conn.mesh, name, etag: f.etag ?? "", force: f.force === true }));
      process.stdout.write(`secret "${name}" deleted\n`);
    }, SCOPED),
  );
}

export function registerSecretsCommands(program: Command): void {
  registerCreate(program);
  registerGet(program);
  registerList(program);
  registerUpdate(program);
  registerDelete(program);
}
