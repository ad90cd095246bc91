/**
 * DataOS secret manifests (what `dataos-ctl resource apply -f` takes): `type: secret`
 * with `name`, `version` and a `secret:` block (`spec:` in newer schema versions), or
 * `type: instance-secret` with an `instance-secret:` block (DataOS documents both; an
 * instance secret is the instance-wide kind, read the same way here). The block's `data`
 * pairs become string_data; its `type` and `acl` are kept as the annotations
 * dataos.info/secret-type and dataos.info/acl; its `files` name files whose bytes become
 * keys of the same name. A manifest is untrusted input: a file is read only when it is a
 * regular file inside the manifest's directory, within the size a secret may hold
 * (referenced-file.ts). The resource meta fields secretd has no use for (tags, owner,
 * layer, workspace) are ignored: the owner is whoever applies it.
 */
import { MAX_DATA_SIZE, DEFAULT_TYPE } from "../../domain/validation.js";
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
import { ReferencedFileError, readReferencedFile } from "./referenced-file.js";

export const DATAOS_TYPE_ANNOTATION = "dataos.info/secret-type";
export const DATAOS_ACL_ANNOTATION = "dataos.info/acl";

const SECRET = "secret";
const INSTANCE_SECRET = "instance-secret";

export function isDataos(doc: Record<string, unknown>): boolean {
  return doc["type"] === SECRET || doc["type"] === INSTANCE_SECRET;
}

/** Each `files` entry read within what the secret may still hold; the first refusal names the entry. */
function files(block: Record<string, unknown>, at: At, baseDir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  let left = MAX_DATA_SIZE;
  for (const [k, p] of Object.entries(stringMap(block, "files", at))) {
    try {
      out[k] = readReferencedFile(baseDir, p, left);
    } catch (err) {
      if (err instanceof ReferencedFileError) throw manifestError(at, entry("files", k), `${JSON.stringify(p.slice(0, 200))} ${err.message}`);
      throw err;
    }
    left -= out[k].length;
  }
  return out;
}

export function parseDataos(doc: Record<string, unknown>, source: ManifestSource, baseDir: string): DesiredSecret[] {
  const top: At = { source, prefix: "" };
  const name = requiredString(doc, "name", top);
  const version = doc["version"];
  if (version === undefined || version === null || version === "") throw manifestError(top, "version", "is required");
  const kind = doc["type"] === INSTANCE_SECRET ? INSTANCE_SECRET : SECRET;
  const blockName = kind in doc ? kind : "spec";
  const block = optionalRecord(doc, blockName, top);
  if (block === undefined) throw manifestError(top, kind, `is required: the ${kind}: block (or spec:)`);
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
      format: kind === SECRET ? "DataOS secret" : "DataOS instance-secret",
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
