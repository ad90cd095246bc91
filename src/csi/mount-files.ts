/**
 * A Projection as a MountResponse: the files the driver writes into the pod's volume,
 * and the object versions its rotation reconciler compares.
 *
 * Contract:
 * - Files follow the sidecar's layout rules (validateSet of sidecar/atomic-writer.ts):
 *   relative paths only, no `..`, no duplicates, no file that is also a directory. A
 *   mode comes from the mapping when it sets one, else from the driver's `permission`,
 *   else the server's default (0400).
 * - One ObjectVersion per source secret, `mesh/name` (`name` for the global scope) →
 *   its version; plus FILES_ID → an HMAC of the projection's revision and the modes, so
 *   a change of values, paths or modes that no version shows (a secret deleted and
 *   created again) still reads as a change. The HMAC key is random per process: what the
 *   driver stores in SecretProviderClassPodStatus reveals nothing about the values (the
 *   revision itself is a plain SHA-256 of them). A provider restart changes it once.
 *   There is always at least this one version: the driver treats none as an error.
 * - The encoded answer must fit the driver's default receive limit (4 MiB).
 */
import { createHmac, randomBytes } from "node:crypto";
import { SecretdError } from "../errors.js";
import type { Projection, ProjectSecretsRequest, ProjectedValue } from "../gen/secrets/v1/secrets.js";
import { File, MountResponse, ObjectVersion } from "../gen/csi/provider/v1alpha1/service.js";
import { validateSet } from "../sidecar/atomic-writer.js";

/** The driver's default --max-call-recv-msg-size. */
export const MAX_MOUNT_RESPONSE_BYTES = 4 * 1024 * 1024;
/** Not a valid `mesh/name`: a mesh is a DNS-1123 label, so it never collides with a source. */
export const FILES_ID = "secretd:files";

const filesKey = randomBytes(32);

/** Whether the projection's mapping for this value set a mode of its own. */
function modeIsExplicit(request: ProjectSecretsRequest, v: ProjectedValue): boolean {
  return request.items.some((item) => item.name === v.secret && item.keys.some((k) => k.key === v.key && k.mode !== 0 && (k.path === "" || k.path === v.path)));
}

export function mountFiles(request: ProjectSecretsRequest, p: Projection, permission: number | undefined): File[] {
  const files = p.values.map((v) => File.fromPartial({ path: v.path, mode: permission === undefined || modeIsExplicit(request, v) ? v.mode : permission, contents: v.value }));
  try {
    validateSet(files.map((f) => ({ path: f.path, mode: f.mode, value: f.contents })));
  } catch (err) {
    // The projection's shape is the SecretProviderClass's mistake; the message names a path, never a value.
    if (err instanceof SecretdError) throw new SecretdError(err.code, `attributes.objects: ${err.message}`);
    throw err;
  }
  return files;
}

function sourceId(mesh: string, name: string): string {
  return mesh === "" ? name : `${mesh}/${name}`;
}

export function objectVersions(p: Projection, files: readonly File[]): ObjectVersion[] {
  const byId = new Map<string, string[]>();
  for (const s of p.sources) {
    const id = sourceId(s.mesh, s.name);
    const versions = byId.get(id) ?? [];
    if (!versions.includes(String(s.version))) versions.push(String(s.version));
    byId.set(id, versions);
  }
  const mac = createHmac("sha256", filesKey).update(p.revision);
  for (const f of files) mac.update(`\0${f.path}\0${f.mode}`);
  return [
    ...[...byId].map(([id, versions]) => ObjectVersion.fromPartial({ id, version: versions.join(",") })),
    ObjectVersion.fromPartial({ id: FILES_ID, version: mac.digest("base64url") }),
  ];
}

/** True when the driver already holds exactly these objects at these versions. */
export function sameVersions(current: readonly ObjectVersion[], next: readonly ObjectVersion[]): boolean {
  if (current.length !== next.length) return false;
  const have = new Map(current.map((o) => [o.id, o.version]));
  return next.every((o) => have.get(o.id) === o.version);
}

/** The answer, refused when the driver could not receive it. */
export function mountResponse(versions: ObjectVersion[], files: File[]): MountResponse {
  const response = MountResponse.fromPartial({ objectVersion: versions, files });
  const size = MountResponse.encode(response).finish().length;
  if (size > MAX_MOUNT_RESPONSE_BYTES) {
    throw new SecretdError("RESOURCE_EXHAUSTED", `the files come to ${size} bytes encoded, more than the driver's default limit of ${MAX_MOUNT_RESPONSE_BYTES} (4 MiB): split the SecretProviderClass`);
  }
  return response;
}
