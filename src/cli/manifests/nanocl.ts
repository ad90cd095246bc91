/**
 * Nanocl Statefiles: `ApiVersion` and a `Secrets:` list of `Key`, `Kind`, `Data`. The
 * name is the Key, dots kept. `Kind: Env` holds NAME=VALUE entries, each one data key of
 * a `nanocl.io/env` secret (key NAME, value VALUE, what a cargo gets: SPEC §5); `Kind:
 * Tls` holds Certificate and CertificateKey (and any other field, e.g. CertificateClient)
 * as keys of a `nanocl.io/tls` secret. Nanocl lets a user name a Kind of their own: any
 * other Kind is a `nanocl.io/<kind lower-cased>` secret with its `Data` mapping as keys
 * (Env and Tls are matched in any case, and as `nanocl.io/env`, `nanocl.io/tls`, so a
 * custom kind never takes a built-in type).
 * The Statefile's other sections (Cargoes, Resources, …) are not secretd's and are ignored.
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
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NANOCL_TYPE_PREFIX = "nanocl.io/";
/** What the name part of a `domain/name` type may hold (SPEC §5). */
const CUSTOM_KIND_RE = /^[-._a-z0-9]{1,200}$/;

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
    if (!ENV_NAME_RE.test(key)) throw manifestError(at, field, "NAME must be an environment name matching [A-Za-z_][A-Za-z0-9_]*");
    if (key in out) throw manifestError(at, field, `${JSON.stringify(key.slice(0, 80))} is given twice`);
    out[key] = Buffer.from(e.slice(eq + 1), "utf8");
  });
  return out;
}

function mappingData(obj: Record<string, unknown>, at: At): Record<string, Buffer> {
  if (!isRecord(obj["Data"])) throw manifestError(at, "Data", "must be a mapping of keys to values");
  return Object.fromEntries(Object.entries(stringMap(obj, "Data", at, true)).map(([k, v]) => [k, Buffer.from(v, "utf8")]));
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
    // Newer Statefiles spell the built-in kinds as types (`Kind: nanocl.io/env`).
    const lower = kind.toLowerCase().replace(/^nanocl\.io\//, "");
    if (lower !== "env" && lower !== "tls" && !CUSTOM_KIND_RE.test(lower)) {
      throw manifestError(at, "Kind", "must be Env, Tls or a kind of your own of at most 200 letters, digits, '-', '_' or '.'");
    }
    const type = lower === "env" ? NANOCL_ENV_TYPE : lower === "tls" ? NANOCL_TLS_TYPE : `${NANOCL_TYPE_PREFIX}${lower}`;
    return {
      source,
      format: `Nanocl ${kind} secret`,
      mesh: undefined,
      name,
      type,
      description: "",
      labels: {},
      annotations: {},
      data: lower === "env" ? envData(s["Data"], at) : lower === "tls" ? tlsData(s, at) : mappingData(s, at),
      stringData: {},
      immutable: false,
    };
  });
}
