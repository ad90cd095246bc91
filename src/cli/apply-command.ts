/**
 * `secretd apply -f FILE|DIR|-`: Kubernetes, Kuma, Nanocl and DataOS secret manifests
 * (SPEC §7), kubectl-style. Three phases, so a bad input writes nothing: every document
 * is parsed and validated; then every named secret is read and compared (a type or
 * immutable change is refused here); only then are creates and updates sent, each update
 * a compare-and-set on the etag read. An object equal to what the server holds is
 * `unchanged`: no write is sent, so no version is made.
 */
import { readFileSync } from "node:fs";
import { status, type ServiceError } from "@grpc/grpc-js";
import { Option, type Command } from "commander";
import { CreateSecretRequest, GetSecretRequest, UpdateSecretRequest, type Secret } from "../gen/secrets/v1/secrets.js";
import { repeatable, runClient, withClientOptions, type Connection } from "../client/client.js";
import { printError } from "../client/cli-errors.js";
import { withExample } from "../client/help.js";
import { loadManifests, readInputs } from "./manifests/read-manifests.js";
import { where, type DesiredSecret } from "./manifests/manifest.js";
import { desiredData, planChange, type Plan } from "./manifests/plan.js";
import { renderDoc, type DocFormat } from "./output.js";
import { progress } from "./progress.js";

interface ApplyFlags {
  filename?: string[];
  dryRun?: boolean;
  mesh?: string;
  output: "text" | DocFormat;
}

const EXAMPLES = [
  "kubectl get secret db-creds -o yaml | secretd apply -f -",
  "kubectl get secrets -n kuma-system --field-selector type=system.kuma.io/secret -o yaml | secretd apply -f -",
  "kumactl get secrets --mesh default -o yaml | secretd apply -f -",
  "secretd apply -f Statefile.yml          # Nanocl Statefile: its Secrets: section",
  "secretd apply -f secrets/ --dry-run     # every .yaml/.yml/.json file of the directory",
  "secretd apply -f dataos-secret.yaml -o json",
];

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number" && typeof (err as Partial<ServiceError>).details === "string";
}

/** The server's refusal with the document it was about, printed the one way (printError). */
function about(d: DesiredSecret, err: unknown): unknown {
  if (!isServiceError(err)) return err;
  const e = new Error(err.message) as ServiceError;
  e.code = err.code;
  e.details = `${where(d.source)}: secret "${d.name}": ${err.details}`;
  return e;
}

async function readExisting(conn: Connection, mesh: string, d: DesiredSecret): Promise<Secret | undefined> {
  try {
    return await conn.unary(conn.client.getSecret, GetSecretRequest.fromPartial({ mesh, name: d.name }));
  } catch (err) {
    if (isServiceError(err) && err.code === status.NOT_FOUND) return undefined;
    throw about(d, err);
  }
}

async function write(conn: Connection, p: Plan): Promise<Secret> {
  const d = p.desired;
  try {
    if (p.action === "created") {
      const req = CreateSecretRequest.fromPartial({
        mesh: p.mesh,
        name: d.name,
        type: d.type,
        data: d.data,
        stringData: d.stringData,
        description: d.description,
        labels: d.labels,
        annotations: d.annotations,
        immutable: d.immutable,
      });
      return await conn.unary(conn.client.createSecret, req);
    }
    const req = UpdateSecretRequest.fromPartial({
      mesh: p.mesh,
      name: d.name,
      etag: p.existing?.etag ?? "",
      data: d.data,
      stringData: d.stringData,
      description: d.description,
      labels: d.labels,
      annotations: d.annotations,
      updateMask: [...p.changed],
    });
    return await conn.unary(conn.client.updateSecret, req);
  } catch (err) {
    throw about(d, err);
  }
}

interface Outcome {
  readonly plan: Plan;
  /** The secret after the write (or as read, when unchanged); undefined for a dry-run create. */
  readonly secret: Secret | undefined;
}

function outcomeView(o: Outcome, dryRun: boolean): Record<string, unknown> {
  const d = o.plan.desired;
  const s = o.secret;
  return {
    action: o.plan.action,
    ...(dryRun ? { dryRun: true } : {}),
    file: d.source.file,
    document: d.source.document,
    format: d.format,
    mesh: o.plan.mesh,
    name: d.name,
    type: d.type,
    uid: s?.uid ?? "",
    version: s?.version ?? 0,
    ...(s !== undefined && s.stage !== "" ? { stage: s.stage } : {}),
    keys: s !== undefined && !dryRun ? s.keys : [...desiredData(d).keys()].sort(),
    changed: o.plan.changed,
  };
}

/** Fewer objects than this finish before a counter would be read. */
const PROGRESS_MIN_OBJECTS = 20;

async function apply(conn: Connection, desired: readonly DesiredSecret[], f: ApplyFlags): Promise<void> {
  const dryRun = f.dryRun === true;
  const text = f.output === "text";
  const total = desired.length;
  const counted = total >= PROGRESS_MIN_OBJECTS;
  // On one terminal for both streams, a line starts by erasing the counter drawn on stderr.
  const lead = counted && process.stdout.isTTY === true && process.stderr.isTTY === true ? "\r\x1b[K" : "";
  const reading = progress("reading");
  const plans: Plan[] = [];
  try {
    for (const d of desired) {
      const mesh = d.mesh ?? conn.mesh;
      plans.push(planChange(d, mesh, await readExisting(conn, mesh, d)));
      if (counted) reading.update(`${plans.length} of ${total}`);
    }
  } finally {
    reading.done();
  }
  const writing = progress(dryRun ? "checking" : "applying");
  const outcomes: Outcome[] = [];
  try {
    for (const p of plans) {
      const secret = p.action === "unchanged" || dryRun ? p.existing : await write(conn, p);
      outcomes.push({ plan: p, secret });
      if (text) process.stdout.write(`${lead}secret/${p.desired.name} ${p.action}${dryRun ? " (dry run)" : ""}\n`);
      if (counted) writing.update(`${outcomes.length} of ${total}`);
    }
  } finally {
    writing.done();
    if (!text) process.stdout.write(renderDoc({ items: outcomes.map((o) => outcomeView(o, dryRun)) }, f.output === "json" ? "json" : "yaml"));
  }
}

function readStdin(): string {
  try {
    return readFileSync(0, "utf8");
  } catch {
    return "";
  }
}

export function registerApply(program: Command): void {
  const cmd = program
    .command("apply")
    .description("create or update secrets from Kubernetes, Kuma, Nanocl or DataOS manifests (by name; the uid is kept)")
    .addOption(repeatable("-f, --filename <file|dir|->", "a manifest file, a directory of them, or - for stdin (repeatable)"))
    .option("--dry-run", "say what would be created, configured or unchanged; write nothing")
    .addOption(new Option("-o, --output <format>", "text: one line per object; json or yaml: a document").choices(["text", "json", "yaml"]).default("text"));
  withExample(withClientOptions(cmd), ...EXAMPLES);
  cmd.action(async (_opts: unknown, self: Command) => {
    const f = self.opts<ApplyFlags>();
    let desired: DesiredSecret[];
    try {
      desired = loadManifests(readInputs(f.filename ?? [], readStdin), f.mesh ?? "");
    } catch (err) {
      process.exitCode = printError(err);
      return;
    }
    await runClient(self, (conn) => apply(conn, desired, f));
  });
}
