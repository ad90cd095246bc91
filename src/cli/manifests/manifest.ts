/**
 * What every manifest format turns into: one desired secret per object, with where it
 * came from (file, 1-based document index), and the field readers the format parsers
 * share. Every failure is INVALID_ARGUMENT "FILE: document N: FIELD: problem"; a message
 * names fields and keys but never echoes a value.
 */
import { SecretdError } from "../../errors.js";

export interface ManifestSource {
  readonly file: string;
  /** 1-based position of the YAML document in its file. */
  readonly document: number;
}

export interface DesiredSecret {
  readonly source: ManifestSource;
  /** "Kubernetes Secret", "Kuma GlobalSecret", …: shown in messages. */
  readonly format: string;
  /** The manifest's own scope; undefined = --mesh, else the global scope "". */
  readonly mesh: string | undefined;
  readonly name: string;
  readonly type: string;
  readonly description: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  /** Values given as bytes (Kubernetes data, Kuma data, Nanocl entries). */
  readonly data: Record<string, Buffer>;
  /** Values given as text (Kubernetes stringData, DataOS secret.data); merged over data. */
  readonly stringData: Record<string, string>;
  readonly immutable: boolean;
  /**
   * The field that names the mesh, for a format that always belongs to one (a Kuma
   * universal Secret: kumactl refuses one without `mesh:`): when neither it nor --mesh
   * gives a mesh, the object is refused instead of landing in the global scope.
   */
  readonly meshField?: string;
}

/** Where a parser is: the document, and the path of the object inside it (e.g. "items[2]."). */
export interface At {
  readonly source: ManifestSource;
  readonly prefix: string;
}

export function where(source: ManifestSource): string {
  return `${source.file}: document ${source.document}`;
}

export function manifestError(at: At, field: string, problem: string): SecretdError {
  return new SecretdError("INVALID_ARGUMENT", `${where(at.source)}: ${at.prefix}${field}: ${problem}`);
}

/** Re-throws a validation error (e.g. `name: must be …`) with the document it is about. */
export function inDocument<T>(source: ManifestSource, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SecretdError) throw new SecretdError(err.code, `${where(source)}: ${err.message}`);
    throw err;
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** `field["key"]`, as the domain's validation messages name map entries. */
export function entry(field: string, key: string): string {
  const shown = key.length > 80 ? `${key.slice(0, 80)}…` : key;
  return `${field}[${JSON.stringify(shown)}]`;
}

export function requiredString(obj: Record<string, unknown>, field: string, at: At): string {
  const v = obj[field];
  if (v === undefined || v === null || v === "") throw manifestError(at, field, "is required");
  if (typeof v !== "string") throw manifestError(at, field, "must be a string");
  return v;
}

export function optionalString(obj: Record<string, unknown>, field: string, at: At): string | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw manifestError(at, field, "must be a string");
  return v;
}

export function optionalRecord(obj: Record<string, unknown>, field: string, at: At): Record<string, unknown> | undefined {
  const v = obj[field];
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) throw manifestError(at, field, "must be a mapping");
  return v;
}

/** A mapping of strings (labels, annotations, stringData); `scalars` also takes numbers and booleans as text. */
export function stringMap(obj: Record<string, unknown>, field: string, at: At, scalars = false): Record<string, string> {
  const m = optionalRecord(obj, field, at) ?? {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) {
    if (typeof v === "string") out[k] = v;
    else if (scalars && (typeof v === "number" || typeof v === "boolean")) out[k] = String(v);
    else if (scalars && (v === null || v === undefined)) out[k] = "";
    else throw manifestError(at, entry(field, k), scalars ? "must be a string, a number or a boolean" : "must be a string");
  }
  return out;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard base64 with padding, line breaks and spaces ignored (YAML block scalars). */
export function base64Bytes(v: unknown, field: string, at: At): Buffer {
  if (typeof v !== "string") throw manifestError(at, field, "must be a base64 string");
  const compact = v.replace(/[\s]/g, "");
  if (!BASE64.test(compact)) throw manifestError(at, field, "is not valid base64");
  return Buffer.from(compact, "base64");
}

export function base64Map(obj: Record<string, unknown>, field: string, at: At): Record<string, Buffer> {
  const m = optionalRecord(obj, field, at) ?? {};
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(m)) out[k] = base64Bytes(v ?? "", entry(field, k), at);
  return out;
}

/** Kubernetes takes `immutable: true`; its own docs also show the string "true". */
export function booleanField(obj: Record<string, unknown>, field: string, at: At): boolean {
  const v = obj[field];
  if (v === undefined || v === null) return false;
  if (typeof v === "boolean") return v;
  if (v === "true" || v === "false") return v === "true";
  throw manifestError(at, field, "must be true or false");
}
