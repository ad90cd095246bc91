/**
 * DataOS secret manifests (what `dataos-ctl resource apply -f` takes): `type: secret`
 * with `name`, `version` and a `secret:` block (`spec:` in newer schema versions).
 * `secret.data` pairs become string_data; `secret.type` and `secret.acl` are kept as
 * the annotations dataos.info/secret-type and dataos.info/acl; `secret.files` names
 * files (relative to the manifest) whose bytes become keys of the same name. The
 * resource meta fields secretd has no use for (tags, owner, layer, workspace) are
 * ignored: the owner is whoever applies it.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { DEFAULT_TYPE } from "../../domain/validation.js";
import {
  entry,
  isRecord,
  manifestError,
  optionalRecord,
  optionalString,
  requiredString,
  stringMap,
  type At,
  type DesiredSecret,
  type ManifestSource,
} from "./manifest.js";

export const DATAOS_TYPE_ANNOTATION = "dataos.info/secret-type";
export const DATAOS_ACL_ANNOTATION = "dataos.info/acl";

export function isDataos(doc: Record<string, unknown>): boolean {
  return doc["type"] === "secret";
}

function files(block: Record<string, unknown>, at: At, baseDir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, p] of Object.entries(stringMap(block, "files", at))) {
    try {
      out[k] = readFileSync(path.resolve(baseDir, p));
    } catch (err) {
      throw manifestError(at, entry("files", k), `cannot read ${p} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
  }
  return out;
}

export function parseDataos(doc: Record<string, unknown>, source: ManifestSource, baseDir: string): DesiredSecret[] {
  const top: At = { source, prefix: "" };
  const name = requiredString(doc, "name", top);
  const version = doc["version"];
  if (version === undefined || version === null || version === "") throw manifestError(top, "version", "is required");
  const blockName = "secret" in doc ? "secret" : "spec";
  const block = optionalRecord(doc, blockName, top);
  if (block === undefined) throw manifestError(top, "secret", "is required (a secret: or spec: block)");
  const at: At = { source, prefix: `${blockName}.` };
  if (!isRecord(block["data"]) && block["files"] === undefined) throw manifestError(at, "data", "is required and must be a mapping");
  const annotations: Record<string, string> = {};
  const subtype = optionalString(block, "type", at);
  if (subtype !== undefined) annotations[DATAOS_TYPE_ANNOTATION] = subtype;
  const acl = optionalString(block, "acl", at);
  if (acl !== undefined) annotations[DATAOS_ACL_ANNOTATION] = acl;
  return [
    {
      source,
      format: "DataOS secret",
      mesh: undefined,
      name,
      type: DEFAULT_TYPE,
      description: optionalString(doc, "description", top) ?? "",
      labels: {},
      annotations,
      data: files(block, at, baseDir),
      stringData: stringMap(block, "data", at, true),
      immutable: false,
    },
  ];
}
