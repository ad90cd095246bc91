/**
 * What applying one desired secret does to what the server holds: create it, update it
 * (listing the fields that differ), or nothing. Compared here, on the client, so an
 * unchanged object sends no write and makes no new version. Server-owned annotations
 * (secretd.io/…) are left out of the comparison.
 */
import { SecretdError } from "../../errors.js";
import type { Secret } from "../../gen/secrets/v1/secrets.js";
import { isServerAnnotation } from "../../domain/rotation-policy.js";
import { where, type DesiredSecret } from "./manifest.js";

export type Action = "created" | "configured" | "unchanged";

/** A field an update replaces, as UpdateSecretRequest.update_mask names it. */
export type ChangedField = "data" | "description" | "labels" | "annotations";

export interface Plan {
  readonly desired: DesiredSecret;
  readonly mesh: string;
  readonly action: Action;
  /** The secret as read before the write (undefined when it is to be created). */
  readonly existing: Secret | undefined;
  readonly changed: readonly ChangedField[];
}


/** The values the new version holds: stringData merged over data, as the server does. */
export function desiredData(d: DesiredSecret): Map<string, Buffer> {
  const out = new Map<string, Buffer>(Object.entries(d.data));
  for (const [k, v] of Object.entries(d.stringData)) out.set(k, Buffer.from(v, "utf8"));
  return out;
}

function sameData(a: ReadonlyMap<string, Buffer>, b: Readonly<Record<string, Uint8Array>>): boolean {
  const bKeys = Object.keys(b);
  if (bKeys.length !== a.size) return false;
  return bKeys.every((k) => {
    const x = a.get(k);
    const y = b[k];
    return x !== undefined && y !== undefined && x.equals(y);
  });
}

function sameMap(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ak = Object.keys(a);
  return ak.length === Object.keys(b).length && ak.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

function ownAnnotations(m: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).filter(([k]) => !isServerAnnotation(k)));
}

function refuse(d: DesiredSecret, problem: string): SecretdError {
  return new SecretdError("FAILED_PRECONDITION", `${where(d.source)}: secret "${d.name}": ${problem}`);
}

/** Throws FAILED_PRECONDITION when the change is one the server cannot make (type, immutable). */
export function planChange(desired: DesiredSecret, mesh: string, existing: Secret | undefined): Plan {
  if (existing === undefined) return { desired, mesh, action: "created", existing, changed: [] };
  if (existing.type !== desired.type) {
    throw refuse(desired, `type cannot change from ${existing.type} to ${desired.type} (delete the secret, then apply)`);
  }
  const changed: ChangedField[] = [];
  if (!sameData(desiredData(desired), existing.data)) changed.push("data");
  if (existing.description !== desired.description) changed.push("description");
  if (!sameMap(existing.labels, desired.labels)) changed.push("labels");
  if (!sameMap(ownAnnotations(existing.annotations), desired.annotations)) changed.push("annotations");
  if (existing.immutable !== desired.immutable) {
    throw refuse(desired, `immutable cannot change from ${existing.immutable} to ${desired.immutable} (delete the secret, then apply)`);
  }
  if (existing.immutable && changed.length > 0) throw refuse(desired, `is immutable and its ${changed.join(", ")} differ (delete it, then apply)`);
  return { desired, mesh, action: changed.length === 0 ? "unchanged" : "configured", existing, changed };
}
