/**
 * Kuma universal manifests (what `kumactl apply -f` takes): `type: Secret` with a mesh,
 * or `type: GlobalSecret` with none. `data` is one base64 value; secretd stores it under
 * the key `value`, which is how Kuma's Kubernetes form names it too.
 */
import { DEFAULT_TYPE } from "../../domain/validation.js";
import { base64Bytes, manifestError, optionalString, requiredString, stringMap, type At, type DesiredSecret, type ManifestSource } from "./manifest.js";

export const KUMA_VALUE_KEY = "value";

export function isKuma(doc: Record<string, unknown>): boolean {
  return doc["type"] === "Secret" || doc["type"] === "GlobalSecret";
}

export function parseKuma(doc: Record<string, unknown>, source: ManifestSource): DesiredSecret[] {
  const at: At = { source, prefix: "" };
  const global = doc["type"] === "GlobalSecret";
  const name = requiredString(doc, "name", at);
  const mesh = optionalString(doc, "mesh", at);
  if (global && mesh !== undefined) throw manifestError(at, "mesh", "a GlobalSecret belongs to no mesh");
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
    },
  ];
}
