/**
 * Nanocl Statefiles: `ApiVersion` and a `Secrets:` list of `Key`, `Kind`, `Data`. The
 * name is the Key, dots kept. `Kind: Env` holds NAME=VALUE entries, each one data key of
 * a `nanocl.io/env` secret (key NAME, value the whole NAME=VALUE entry, as the type
 * requires: SPEC §5); `Kind: Tls` holds Certificate and CertificateKey (and any
 * other field, e.g. CertificateClient) as keys of a `nanocl.io/tls` secret. The
 * Statefile's other sections (Cargoes, Resources, …) are not secretd's and are ignored.
 */
import {
  entry,
  isRecord,
  manifestError,
  requiredString,
  stringMap,
  type At,
  type DesiredSecret,
  type ManifestSource,
} from "./manifest.js";

export const NANOCL_ENV_TYPE = "nanocl.io/env";
export const NANOCL_TLS_TYPE = "nanocl.io/tls";

export function isNanocl(doc: Record<string, unknown>): boolean {
  return "ApiVersion" in doc;
}

function envData(data: unknown, at: At): Record<string, Buffer> {
  if (!Array.isArray(data)) throw manifestError(at, "Data", "must be a list of NAME=VALUE entries");
  const out: Record<string, Buffer> = {};
  data.forEach((e: unknown, i) => {
    const field = `Data[${i}]`;
    if (typeof e !== "string") throw manifestError(at, field, "must be a NAME=VALUE string");
    const eq = e.indexOf("=");
    if (eq <= 0) throw manifestError(at, field, "must look like NAME=VALUE");
    const key = e.slice(0, eq);
    if (key in out) throw manifestError(at, field, `${JSON.stringify(key.slice(0, 80))} is given twice`);
    out[key] = Buffer.from(e, "utf8");
  });
  return out;
}

function tlsData(obj: Record<string, unknown>, at: At): Record<string, Buffer> {
  if (!isRecord(obj["Data"])) throw manifestError(at, "Data", "must be a mapping with Certificate and CertificateKey");
  const fields = stringMap(obj, "Data", at, true);
  for (const required of ["Certificate", "CertificateKey"]) {
    if (!(required in fields) || fields[required] === "") throw manifestError(at, entry("Data", required), "is required");
  }
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Buffer.from(v, "utf8")]));
}

export function parseNanocl(doc: Record<string, unknown>, source: ManifestSource): DesiredSecret[] {
  const top: At = { source, prefix: "" };
  requiredString(doc, "ApiVersion", top);
  const secrets = doc["Secrets"];
  if (secrets === undefined || secrets === null) throw manifestError(top, "Secrets", "is required: this Statefile declares no secrets");
  if (!Array.isArray(secrets)) throw manifestError(top, "Secrets", "must be a list");
  return secrets.map((s: unknown, i): DesiredSecret => {
    const at: At = { source, prefix: `Secrets[${i}].` };
    if (!isRecord(s)) throw manifestError(top, `Secrets[${i}]`, "must be a mapping");
    const name = requiredString(s, "Key", at);
    const kind = requiredString(s, "Kind", at);
    if (kind !== "Env" && kind !== "Tls") throw manifestError(at, "Kind", `must be Env or Tls (got ${JSON.stringify(kind.slice(0, 40))})`);
    return {
      source,
      format: `Nanocl ${kind} secret`,
      mesh: undefined,
      name,
      type: kind === "Env" ? NANOCL_ENV_TYPE : NANOCL_TLS_TYPE,
      description: "",
      labels: {},
      annotations: {},
      data: kind === "Env" ? envData(s["Data"], at) : tlsData(s, at),
      stringData: {},
      immutable: false,
    };
  });
}
