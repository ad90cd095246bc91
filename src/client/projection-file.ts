/**
 * The projection file of `secretd project` (and of `sidecar` and `run`): YAML mirroring
 * ProjectSecretsRequest.
 *
 *   mesh: default                # optional; must agree with --mesh when both are given
 *   items:
 *     - name: db-password
 *       keys:
 *         - key: password
 *           env: DB_PASSWORD     # default: envPrefix + KEY upper-cased
 *           path: db/pw          # default: <name>/<key>
 *           mode: "0440"         # octal string, or a number; default 0400
 *         - username             # shorthand for {key: username}
 *     - name: api
 *       envPrefix: APP_          # env_prefix is accepted too
 *       optional: true           # a missing secret is skipped
 *     - name: db-password
 *       stage: previous          # during a rotation, the version before current (dual credentials)
 *     - feature-flags            # shorthand for {name: feature-flags}
 *
 * Contract: every structural mistake is INVALID_ARGUMENT naming the field by its path
 * (`items[1].keys[0].mode`); unknown fields are refused rather than ignored, so a typo
 * never silently changes what is projected. Rules the server checks anyway (name and
 * key syntax, path safety) are left to it, so both speak with one voice.
 * A plain number with a leading zero (`mode: 0440`) is octal, as in YAML 1.1, chmod and
 * Kubernetes' defaultMode; YAML 1.2 would silently read it as decimal 440.
 */
import { readFileSync } from "node:fs";
import { parse, type ScalarTag } from "yaml";
import { SecretdError, invalid } from "../errors.js";
import { KeyMapping, ProjectionItem, ProjectSecretsRequest } from "../gen/secrets/v1/secrets.js";

export interface ProjectionFileOptions {
  /** --mesh, when the user gave one: the file's own `mesh:` must then agree with it. */
  readonly mesh?: string | undefined;
}

const MAX_MODE = 0o777;

/** YAML 1.1 octal (0440) ahead of the core schema's decimal int. */
const OCTAL_INT: ScalarTag = {
  identify: (v) => typeof v === "number",
  default: true,
  tag: "tag:yaml.org,2002:int",
  format: "OCT",
  test: /^0[0-7]+$/,
  resolve: (s) => parseInt(s, 8),
};

type Fields = Record<string, unknown>;

function isMapping(v: unknown): v is Fields {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function onlyFields(o: Fields, allowed: readonly string[], at: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw invalid(at === "" ? k : `${at}.${k}`, `unknown field (expected ${allowed.join(", ")})`);
  }
}

function optionalString(o: Fields, key: string, at: string): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw invalid(`${at}.${key}`, `must be a string, not ${describe(v)} (quote it)`);
  return v;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "a mapping" : `the ${typeof v} ${JSON.stringify(v)}`;
}

/** A file mode: an integer, or an octal string "0440" / "440" / "0o440"; 0001..0777. */
export function parseMode(v: unknown, field: string): number {
  let mode: number;
  if (typeof v === "number") {
    mode = v;
  } else if (typeof v === "string" && /^(0o?)?[0-7]{1,4}$/i.test(v.trim())) {
    mode = parseInt(v.trim().replace(/^0o/i, ""), 8);
  } else {
    throw invalid(field, `must be an octal string like "0440" or a number, not ${describe(v)}`);
  }
  if (!Number.isInteger(mode) || mode <= 0 || mode > MAX_MODE) throw invalid(field, "must be a file mode between 0001 and 0777");
  return mode;
}

function parseKeyMapping(v: unknown, at: string): KeyMapping {
  if (typeof v === "string") {
    if (v === "") throw invalid(at, "must not be empty");
    return KeyMapping.fromPartial({ key: v });
  }
  if (!isMapping(v)) throw invalid(at, `must be a key name or a mapping with key, env, path, mode; not ${describe(v)}`);
  onlyFields(v, ["key", "env", "path", "mode"], at);
  const key = optionalString(v, "key", at);
  if (key === undefined || key === "") throw invalid(`${at}.key`, "is required");
  return KeyMapping.fromPartial({
    key,
    env: optionalString(v, "env", at) ?? "",
    path: optionalString(v, "path", at) ?? "",
    mode: v.mode === undefined ? 0 : parseMode(v.mode, `${at}.mode`),
  });
}

function parseItem(v: unknown, at: string): ProjectionItem {
  if (typeof v === "string") {
    if (v === "") throw invalid(at, "must not be empty");
    return ProjectionItem.fromPartial({ name: v });
  }
  if (!isMapping(v)) throw invalid(at, `must be a secret name or a mapping with name, keys, optional, envPrefix; not ${describe(v)}`);
  onlyFields(v, ["name", "keys", "optional", "envPrefix", "env_prefix", "stage"], at);
  const name = optionalString(v, "name", at);
  if (name === undefined || name === "") throw invalid(`${at}.name`, "is required");
  const camel = optionalString(v, "envPrefix", at);
  const snake = optionalString(v, "env_prefix", at);
  if (camel !== undefined && snake !== undefined) throw invalid(`${at}.envPrefix`, "give envPrefix or env_prefix, not both");
  if (v.optional !== undefined && typeof v.optional !== "boolean") throw invalid(`${at}.optional`, `must be true or false, not ${describe(v.optional)}`);
  const stage = optionalString(v, "stage", at) ?? "";
  if (stage !== "" && stage !== "current" && stage !== "previous") throw invalid(`${at}.stage`, `must be current or previous, not ${describe(stage)}`);
  const keys = v.keys ?? [];
  if (!Array.isArray(keys)) throw invalid(`${at}.keys`, `must be a list, not ${describe(keys)}`);
  return ProjectionItem.fromPartial({
    name,
    keys: keys.map((k: unknown, j) => parseKeyMapping(k, `${at}.keys[${j}]`)),
    optional: v.optional === true,
    envPrefix: camel ?? snake ?? "",
    stage,
  });
}

/** Parses the YAML text of a projection file into a request. */
export function parseProjection(text: string, opts: ProjectionFileOptions = {}): ProjectSecretsRequest {
  let doc: unknown;
  try {
    doc = parse(text, { customTags: (tags) => [OCTAL_INT, ...tags], prettyErrors: true });
  } catch (err) {
    throw new SecretdError("INVALID_ARGUMENT", `projection: not valid YAML: ${(err as Error).message}`);
  }
  if (!isMapping(doc)) throw invalid("projection", `must be a mapping with mesh: and items:, not ${describe(doc ?? null)}`);
  onlyFields(doc, ["mesh", "items"], "");
  if (doc.mesh !== undefined && typeof doc.mesh !== "string") throw invalid("mesh", `must be a string ("" for the global scope), not ${describe(doc.mesh)}`);
  const fileMesh = doc.mesh;
  if (fileMesh !== undefined && opts.mesh !== undefined && fileMesh !== opts.mesh) {
    throw invalid("mesh", `the file says "${fileMesh}" but --mesh says "${opts.mesh}"`);
  }
  if (!Array.isArray(doc.items) || doc.items.length === 0) throw invalid("items", "must be a non-empty list of secrets to project");
  return ProjectSecretsRequest.fromPartial({
    mesh: fileMesh ?? opts.mesh ?? "",
    items: doc.items.map((item: unknown, i) => parseItem(item, `items[${i}]`)),
  });
}

/** Reads and parses a projection file; errors name the file as well as the field. */
export function readProjectionFile(file: string, opts: ProjectionFileOptions = {}): ProjectSecretsRequest {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new SecretdError("INVALID_ARGUMENT", `projection file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    return parseProjection(text, opts);
  } catch (err) {
    if (err instanceof SecretdError) throw new SecretdError(err.code, `projection file ${file}: ${err.message}`);
    throw err;
  }
}
