/**
 * Kuma universal manifests (what `kumactl apply -f` takes): `type: Secret` with a mesh,
 * or `type: GlobalSecret` with none. A Secret without `mesh:` takes --mesh; with neither
 * it is refused (kumactl says "mesh: cannot be empty"), never put in the global scope,
 * which is a GlobalSecret's. `data` is one base64 value; secretd stores it under
 * the key `value`, which is how Kuma's Kubernetes form names it too. Read-only fields
 * kumactl prints (creationTime, modificationTime) are ignored.
 */
import { DEFAULT_TYPE } from "../../domain/validation.js";
import { base64Bytes, isRecord, manifestError, optionalString, requiredString, stringMap, type At, type DesiredSecret, type ManifestSource } from "./manifest.js";

export const KUMA_VALUE_KEY = "value";

export function isKuma(doc: Record<string, unknown>): boolean {
  return doc["type"] === "Secret" || doc["type"] === "GlobalSecret";
}

/** What `kumactl get secrets -o yaml` prints: `items:` (with `total` and `next`), no apiVersion. */
export function isKumaList(doc: Record<string, unknown>): boolean {
  return Array.isArray(doc["items"]) && !("apiVersion" in doc) && !("kind" in doc);
}

export function parseKumaList(doc: Record<string, unknown>, source: ManifestSource): DesiredSecret[] {
  const items = doc["items"] as unknown[];
  return items.flatMap((item, i) => {
    const at: At = { source, prefix: `items[${i}].` };
    if (!isRecord(item) || !isKuma(item)) throw manifestError({ source, prefix: "" }, `items[${i}]`, "must be a Kuma Secret or GlobalSecret (type: Secret or GlobalSecret)");
    return parseKuma(item, source, at);
  });
}

export function parseKuma(doc: Record<string, unknown>, source: ManifestSource, at: At = { source, prefix: "" }): DesiredSecret[] {
  const global = doc["type"] === "GlobalSecret";
  const name = requiredString(doc, "name", at);
  const mesh = optionalString(doc, "mesh", at);
  if (global && mesh !== undefined) throw manifestError(at, "mesh", "a GlobalSecret belongs to no mesh");
  if (mesh === "") throw manifestError(at, "mesh", "cannot be empty: a Secret belongs to a mesh (a GlobalSecret is the global scope's kind)");
  if (doc["data"] === undefined || doc["data"] === null) throw manifestError(at, "data", "is required");
  return [
    {
      source,
      format: global ? "Kuma GlobalSecret" : "Kuma Secret",
      mesh: global ? "" : mesh,
      name,
      type: DEFAULT_TYPE,
      description: "",
      labels: stringMap(doc, "labels", at),
      annotations: {},
      data: { [KUMA_VALUE_KEY]: base64Bytes(doc["data"], "data", at) },
      stringData: {},
      immutable: false,
      ...(global ? {} : { meshField: `${at.prefix}mesh` }),
    },
  ];
}
