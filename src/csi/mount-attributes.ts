/**
 * A MountRequest's `attributes` and `permission` as the Secrets Store CSI Driver builds
 * them (pkg/secrets-store/nodeserver.go): one JSON object of strings, the
 * SecretProviderClass `parameters` merged with the pod's volume attributes, and the
 * driver's default file mode as JSON of a number (0644 is "420").
 *
 *   objects        the projection, as the YAML of a sidecar's projection file (required)
 *   mesh           the mesh of the projection (the YAML's own `mesh:` must then agree)
 *   serverAddress  optional: host[:port] of secretd instead of the provider's --server
 *   audience       optional: which of the pod's service-account tokens to present
 *   csi.storage.k8s.io/pod.name, pod.namespace, pod.uid, serviceAccount.name
 *   csi.storage.k8s.io/serviceAccount.tokens   JSON: audience → {token, expirationTimestamp}
 *
 * Contract: every mistake is an INVALID_ARGUMENT naming the attribute; a message never
 * holds a token or any part of one. The projection is parsed by the sidecar's own
 * parser (client/projection-file.ts), so a SecretProviderClass's `objects` and a
 * sidecar's projection file are one format.
 */
import { SecretdError, invalid } from "../errors.js";
import type { ProjectSecretsRequest } from "../gen/secrets/v1/secrets.js";
import { parseProjection } from "../client/projection-file.js";
import { parseServerAddress, type ServerAddress } from "../client/server-address.js";

const POD = "csi.storage.k8s.io/";
export const TOKENS_ATTRIBUTE = `${POD}serviceAccount.tokens`;

/** A bearer token is one header-safe word (as client.ts requires of --token). */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

export interface PodInfo {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  readonly serviceAccount: string;
}

export interface MountAttributes {
  readonly projection: ProjectSecretsRequest;
  /** Undefined: the provider's --server. */
  readonly server: ServerAddress | undefined;
  /** The service-account token picked for the call; a credential: never logged. */
  readonly token: string;
}

function objectOfJson(text: string, field: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw invalid(field, "is not valid JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw invalid(field, "must be a JSON object");
  return v as Record<string, unknown>;
}

function stringAttr(attrs: Record<string, unknown>, key: string): string | undefined {
  const v = attrs[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw invalid(`attributes.${key}`, "must be a string (SecretProviderClass parameters are strings)");
  return v;
}

/**
 * The pod's token: the one for `audience`, or the only one when no audience is given.
 * The tokens come from the CSIDriver object's `tokenRequests`.
 */
function pickToken(attrs: Record<string, unknown>, audience: string | undefined): string {
  const raw = stringAttr(attrs, TOKENS_ATTRIBUTE);
  if (raw === undefined || raw === "") {
    throw invalid(`attributes.${TOKENS_ATTRIBUTE}`, "is missing: the CSIDriver object needs tokenRequests with secretd's audience");
  }
  const tokens = objectOfJson(raw, `attributes.${TOKENS_ATTRIBUTE}`);
  const audiences = Object.keys(tokens);
  let chosen: string;
  if (audience !== undefined && audience !== "") {
    if (!(audience in tokens)) {
      throw invalid("attributes.audience", `no token for audience "${audience.slice(0, 128)}" (tokens are for ${audiences.length} other audience(s)): add it to the CSIDriver's tokenRequests`);
    }
    chosen = audience;
  } else {
    if (audiences.length !== 1) throw invalid("attributes.audience", `is required: the pod has ${audiences.length} service-account tokens, one per audience`);
    chosen = audiences[0]!;
  }
  const entry = tokens[chosen];
  const token = typeof entry === "object" && entry !== null ? (entry as Record<string, unknown>).token : undefined;
  if (typeof token !== "string" || token === "") throw invalid(`attributes.${TOKENS_ATTRIBUTE}`, `the entry for audience "${chosen.slice(0, 128)}" has no token`);
  if (!TOKEN_CHARS.test(token)) throw invalid(`attributes.${TOKENS_ATTRIBUTE}`, "holds a token with characters a bearer token cannot hold");
  return token;
}

function podFields(attrs: Record<string, unknown>): PodInfo {
  const field = (k: string): string => stringAttr(attrs, `${POD}${k}`) ?? "";
  return { name: field("pod.name"), namespace: field("pod.namespace"), uid: field("pod.uid"), serviceAccount: field("serviceAccount.name") };
}

/** The pod, for log lines, from attributes that may be malformed: blanks for what is missing or bad. */
export function podOf(text: string): PodInfo {
  const blank: PodInfo = { name: "", namespace: "", uid: "", serviceAccount: "" };
  try {
    const attrs = objectOfJson(text, "attributes");
    const clean = Object.fromEntries(Object.entries(attrs).filter(([k, v]) => k.startsWith(POD) && k !== TOKENS_ATTRIBUTE && typeof v === "string"));
    return podFields(clean);
  } catch {
    return blank;
  }
}

export function parseAttributes(text: string): MountAttributes {
  const attrs = objectOfJson(text, "attributes");
  const objects = stringAttr(attrs, "objects");
  if (objects === undefined || objects.trim() === "") {
    throw invalid("attributes.objects", "is required: the SecretProviderClass parameter `objects` holds the projection as YAML (mesh, items)");
  }
  const mesh = stringAttr(attrs, "mesh");
  let projection: ProjectSecretsRequest;
  try {
    projection = parseProjection(objects, mesh !== undefined ? { mesh } : {});
  } catch (err) {
    if (err instanceof SecretdError) throw new SecretdError(err.code, `attributes.objects: ${err.message}`);
    throw err;
  }
  const address = stringAttr(attrs, "serverAddress");
  const server = address === undefined || address === "" ? undefined : parseServerAddress(address, "attributes.serverAddress");
  return { projection, server, token: pickToken(attrs, stringAttr(attrs, "audience")) };
}

/**
 * The driver's default mode for files whose mapping sets none: JSON of a decimal
 * number (os.FileMode 0644 marshals as 420). Undefined when the driver sent none.
 */
export function parsePermission(text: string): number | undefined {
  if (text.trim() === "") return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw invalid("permission", "is not JSON of a file mode (e.g. 420 for 0644)");
  }
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > 0o777) throw invalid("permission", "must be a file mode between 1 and 511 (0777)");
  return v;
}
