/**
 * Kubernetes `v1/Secret` manifests, alone, in a `List` (what `kubectl get secret -o yaml`
 * prints) or one per YAML document. Kuma's Kubernetes form rides on it: the label
 * `kuma.io/mesh` gives the mesh, type `system.kuma.io/secret` is Opaque and
 * `system.kuma.io/global-secret` is an Opaque secret of the global scope.
 */
import { DEFAULT_TYPE } from "../../domain/validation.js";
import {
  base64Map,
  booleanField,
  entry,
  isRecord,
  manifestError,
  optionalString,
  requiredString,
  stringMap,
  type At,
  type DesiredSecret,
  type ManifestSource,
} from "./manifest.js";

export const KUMA_MESH_LABEL = "kuma.io/mesh";
const KUMA_SECRET = "system.kuma.io/secret";
const KUMA_GLOBAL_SECRET = "system.kuma.io/global-secret";
/** kubectl keeps the whole applied object here, values in clear: never stored. */
const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

export function isKubernetes(doc: Record<string, unknown>): boolean {
  return "apiVersion" in doc && "kind" in doc;
}

function secret(obj: Record<string, unknown>, at: At, source: ManifestSource): DesiredSecret {
  const meta = obj["metadata"];
  if (!isRecord(meta)) throw manifestError(at, "metadata", "is required and must be a mapping");
  const metaAt: At = { source, prefix: `${at.prefix}metadata.` };
  const name = requiredString(meta, "name", metaAt);
  const labels = stringMap(meta, "labels", metaAt);
  const annotations = stringMap(meta, "annotations", metaAt);
  delete annotations[LAST_APPLIED];
  const rawType = optionalString(obj, "type", at) ?? DEFAULT_TYPE;
  const global = rawType === KUMA_GLOBAL_SECRET;
  const type = rawType === KUMA_SECRET || global ? DEFAULT_TYPE : rawType;
  const labelledMesh = labels[KUMA_MESH_LABEL];
  // The label is Kuma's way of saying the scope, which secretd holds as the mesh itself.
  delete labels[KUMA_MESH_LABEL];
  if (global && labelledMesh !== undefined) {
    throw manifestError(metaAt, entry("labels", KUMA_MESH_LABEL), `a ${KUMA_GLOBAL_SECRET} belongs to no mesh`);
  }
  return {
    source,
    format: global ? "Kuma GlobalSecret (Kubernetes)" : labelledMesh !== undefined ? "Kuma Secret (Kubernetes)" : "Kubernetes Secret",
    mesh: global ? "" : labelledMesh,
    name,
    type,
    description: "",
    labels,
    annotations,
    data: base64Map(obj, "data", at),
    stringData: stringMap(obj, "stringData", at),
    immutable: booleanField(obj, "immutable", at),
  };
}

function checkKind(obj: Record<string, unknown>, at: At, kinds: readonly string[]): string {
  const apiVersion = obj["apiVersion"];
  const kind = obj["kind"];
  if (apiVersion !== "v1") throw manifestError(at, "apiVersion", `must be v1 (got ${JSON.stringify(String(apiVersion).slice(0, 40))})`);
  if (typeof kind !== "string" || !kinds.includes(kind)) {
    throw manifestError(at, "kind", `must be ${kinds.join(" or ")} (got ${JSON.stringify(String(kind).slice(0, 40))})`);
  }
  return kind;
}

export function parseKubernetes(doc: Record<string, unknown>, source: ManifestSource): DesiredSecret[] {
  const at: At = { source, prefix: "" };
  const kind = checkKind(doc, at, ["Secret", "List", "SecretList"]);
  if (kind === "Secret") return [secret(doc, at, source)];
  const items = doc["items"] ?? [];
  if (!Array.isArray(items)) throw manifestError(at, "items", "must be a list");
  return items.map((item: unknown, i) => {
    const itemAt: At = { source, prefix: `items[${i}].` };
    if (!isRecord(item)) throw manifestError({ source, prefix: "" }, `items[${i}]`, "must be a mapping");
    checkKind(item, itemAt, ["Secret"]);
    return secret(item, itemAt, source);
  });
}
