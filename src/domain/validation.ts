/**
 * Pure request-field checks (SPEC §5), following the Kubernetes rules for names,
 * data keys, labels, annotations and label selectors. Every failure is
 * `invalid(field, rule)`; a message may name a data key or a label key but never
 * echoes a value, so callers can send it back as is.
 */
import { invalid } from "../errors.js";
import { isKnownSecretType } from "./secret-types.js";

export const MAX_NAME_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;
export const MAX_DATA_KEY_LENGTH = 253;
export const MAX_DATA_SIZE = 1024 * 1024;
/** Data keys per secret: as many files as a sidecar projects, and a bounded `keys` list in every ListSecrets entry. */
export const MAX_DATA_KEYS = 4096;
export const MAX_ANNOTATIONS_SIZE = 256 * 1024;
export const MAX_LABELS = 64;
export const MAX_ANNOTATIONS = 128;
export const MAX_DESCRIPTION_LENGTH = 4096;
export const DEFAULT_TYPE = "Opaque";

const DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_RE = new RegExp(`^${DNS1123_LABEL}$`);
const DNS1123_SUBDOMAIN_RE = new RegExp(`^${DNS1123_LABEL}(\\.${DNS1123_LABEL})*$`);
const DATA_KEY_RE = /^[-._a-zA-Z0-9]+$/;
const QUALIFIED_NAME_PART_RE = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const CUSTOM_TYPE_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[-._a-zA-Z0-9]+$/;
// C0 and C1 control characters (Cc: U+0000–U+001F, U+007F–U+009F) except tab and newline.
const FORBIDDEN_CONTROL_RE = /[^\P{Cc}\t\n]/u;

const SUBDOMAIN_RULE =
  "must be a DNS-1123 subdomain: lower-case alphanumerics, '-' and '.', each dot-separated part starting and ending with an alphanumeric";
const LABEL_RULE = "a DNS-1123 label: lower-case alphanumerics and '-', starting and ending with an alphanumeric";
const NAME_PART_RULE =
  "must be 1-63 characters of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric";

/** `prefix["key"]`, with the key quoted and shortened so a message stays readable. */
export function keyField(prefix: string, key: string): string {
  const shown = key.length > 80 ? `${key.slice(0, 80)}…` : key;
  return `${prefix}[${JSON.stringify(shown)}]`;
}

export function validateName(name: string, field = "name"): void {
  if (name === "") throw invalid(field, "must not be empty");
  if (name.length > MAX_NAME_LENGTH) throw invalid(field, `must be at most ${MAX_NAME_LENGTH} characters`);
  if (!DNS1123_SUBDOMAIN_RE.test(name)) throw invalid(field, SUBDOMAIN_RULE);
}

/** A projection revision as the server makes them: hex SHA-256 (SPEC §4 Projection.revision). */
const REVISION_RE = /^[0-9a-f]{64}$/;

/** "" (none held) or a revision the server sent: a watch keeps it, so its size is bounded. */
export function validateRevision(revision: string, field: string): void {
  if (revision === "") return;
  if (revision.length !== 64 || !REVISION_RE.test(revision)) {
    throw invalid(field, "must be empty or a revision as the server sends it: 64 lower-case hex characters");
  }
}

/** "" is the tenant-wide global scope; anything else is a DNS-1123 label. */
export function validateMesh(mesh: string, field = "mesh"): void {
  if (mesh === "") return;
  if (mesh.length > MAX_LABEL_LENGTH) throw invalid(field, `must be empty or at most ${MAX_LABEL_LENGTH} characters`);
  if (!DNS1123_LABEL_RE.test(mesh)) throw invalid(field, `must be empty or ${LABEL_RULE}`);
}

export function validateDataKey(key: string, field: string): void {
  if (key === "") throw invalid(field, "key must not be empty");
  if (key.length > MAX_DATA_KEY_LENGTH) throw invalid(field, `key must be at most ${MAX_DATA_KEY_LENGTH} characters`);
  if (!DATA_KEY_RE.test(key)) throw invalid(field, "key must consist of alphanumerics, '-', '_' or '.'");
  if (key === "." || key === "..") throw invalid(field, "key must not be '.' or '..'");
  if (key.startsWith("..")) throw invalid(field, "key must not start with '..'");
}

function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * The data a version holds: `string_data` (UTF-8) merged over `data`, as Kubernetes
 * does. Size counts key bytes plus value bytes of the merged result.
 */
export function mergeData(
  data: Readonly<Record<string, Uint8Array>>,
  stringData: Readonly<Record<string, string>>,
): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of Object.entries(data)) {
    validateDataKey(k, keyField("data", k));
    out.set(k, asBuffer(v));
  }
  for (const [k, v] of Object.entries(stringData)) {
    validateDataKey(k, keyField("string_data", k));
    out.set(k, Buffer.from(v, "utf8"));
  }
  if (out.size > MAX_DATA_KEYS) throw invalid("data", `must have at most ${MAX_DATA_KEYS} keys (got ${out.size})`);
  let size = 0;
  for (const [k, v] of out) size += Buffer.byteLength(k, "utf8") + v.byteLength;
  if (size > MAX_DATA_SIZE) throw invalid("data", `total size ${size} exceeds ${MAX_DATA_SIZE} bytes`);
  return out;
}

/** Why `key` is not a Kubernetes qualified name (`[prefix/]name`), or undefined. */
function qualifiedNameProblem(key: string): string | undefined {
  const parts = key.split("/");
  if (parts.length > 2) return "key must be a qualified name: an optional prefix and '/', then a name (at most one '/')";
  const name = parts.length === 2 ? parts[1]! : parts[0]!;
  if (parts.length === 2) {
    const prefix = parts[0]!;
    if (prefix === "") return "key prefix before '/' must not be empty";
    if (prefix.length > MAX_NAME_LENGTH) return `key prefix must be at most ${MAX_NAME_LENGTH} characters`;
    if (!DNS1123_SUBDOMAIN_RE.test(prefix)) return `key prefix ${SUBDOMAIN_RULE}`;
  }
  if (name === "") return "key name must not be empty";
  if (name.length > MAX_LABEL_LENGTH) return `key name must be at most ${MAX_LABEL_LENGTH} characters`;
  if (!QUALIFIED_NAME_PART_RE.test(name)) return `key name ${NAME_PART_RULE}`;
  return undefined;
}

function labelValueProblem(value: string): string | undefined {
  if (value.length > MAX_LABEL_LENGTH) return `value must be at most ${MAX_LABEL_LENGTH} characters`;
  if (value !== "" && !QUALIFIED_NAME_PART_RE.test(value)) {
    return "value must be empty or alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric";
  }
  return undefined;
}

export function validateLabels(labels: Readonly<Record<string, string>>, field = "labels"): void {
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) throw invalid(field, `must have at most ${MAX_LABELS} entries (got ${entries.length})`);
  for (const [k, v] of entries) {
    const problem = qualifiedNameProblem(k) ?? labelValueProblem(v);
    if (problem !== undefined) throw invalid(keyField(field, k), problem);
  }
}

export function validateAnnotations(annotations: Readonly<Record<string, string>>, field = "annotations"): void {
  const entries = Object.entries(annotations);
  if (entries.length > MAX_ANNOTATIONS) {
    throw invalid(field, `must have at most ${MAX_ANNOTATIONS} entries (got ${entries.length})`);
  }
  let size = 0;
  for (const [k, v] of entries) {
    // Kubernetes checks annotation keys lower-cased, so upper case is allowed here.
    const problem = qualifiedNameProblem(k.toLowerCase());
    if (problem !== undefined) throw invalid(keyField(field, k), problem);
    size += Buffer.byteLength(k, "utf8") + Buffer.byteLength(v, "utf8");
  }
  if (size > MAX_ANNOTATIONS_SIZE) throw invalid(field, `total size ${size} exceeds ${MAX_ANNOTATIONS_SIZE} bytes`);
}

/** Returns the effective type: "" means Opaque. */
export function validateType(type: string, field = "type"): string {
  if (type === "") return DEFAULT_TYPE;
  if (isKnownSecretType(type)) return type;
  if (type.length > MAX_NAME_LENGTH) throw invalid(field, `must be at most ${MAX_NAME_LENGTH} characters`);
  if (!CUSTOM_TYPE_RE.test(type)) {
    throw invalid(field, "must be a known type (e.g. Opaque, kubernetes.io/tls) or look like domain/name");
  }
  return type;
}

export function validateDescription(description: string, field = "description"): void {
  // Code units ≥ code points, so only long strings need counting.
  if (description.length > MAX_DESCRIPTION_LENGTH) {
    let n = 0;
    for (const _ of description) if (++n > MAX_DESCRIPTION_LENGTH) break;
    if (n > MAX_DESCRIPTION_LENGTH) throw invalid(field, `must be at most ${MAX_DESCRIPTION_LENGTH} characters`);
  }
  if (FORBIDDEN_CONTROL_RE.test(description)) {
    throw invalid(field, "must not contain control characters other than newline and tab");
  }
}

// ---- label selectors (Kubernetes syntax) ----

export type LabelRequirement =
  | { readonly op: "exists" | "notexists"; readonly key: string }
  | { readonly op: "in" | "notin"; readonly key: string; readonly values: ReadonlySet<string> }
  | { readonly op: "gt" | "lt"; readonly key: string; readonly value: bigint };

/** All requirements must hold; the empty selector matches everything. */
export type LabelSelector = readonly LabelRequirement[];

type Token =
  | { readonly kind: "word"; readonly text: string; readonly pos: number }
  | { readonly kind: "!" | "=" | "==" | "!=" | "," | "(" | ")" | "<" | ">" | "end"; readonly pos: number };

const SELECTOR_FIELD = "label_selector";
const SPECIAL = new Set(["!", "=", ",", "(", ")", "<", ">"]);
const INTEGER_RE = /^-?[0-9]+$/;

function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if ((c === "!" || c === "=") && s[i + 1] === "=") {
      out.push({ kind: c === "!" ? "!=" : "==", pos: i });
      i += 2;
    } else if (SPECIAL.has(c)) {
      out.push({ kind: c as "!" | "=" | "," | "(" | ")" | "<" | ">", pos: i });
      i++;
    } else {
      const start = i;
      while (i < s.length && !SPECIAL.has(s[i]!) && !/\s/.test(s[i]!)) i++;
      out.push({ kind: "word", text: s.slice(start, i), pos: start });
    }
  }
  out.push({ kind: "end", pos: s.length });
  return out;
}

function describe(t: Token): string {
  if (t.kind === "end") return "end of input";
  if (t.kind === "word") return "a word";
  return `'${t.kind}'`;
}

class SelectorParser {
  private i = 0;
  constructor(private readonly tokens: readonly Token[]) {}

  parse(): LabelSelector {
    if (this.peek().kind === "end") return [];
    const out: LabelRequirement[] = [];
    for (;;) {
      out.push(this.requirement());
      const t = this.next();
      if (t.kind === "end") return out;
      if (t.kind !== ",") throw this.expected("',' or end of input", t);
    }
  }

  private peek(): Token {
    return this.tokens[this.i]!;
  }

  private next(): Token {
    const t = this.tokens[this.i]!;
    if (t.kind !== "end") this.i++;
    return t;
  }

  private expected(what: string, t: Token) {
    return invalid(SELECTOR_FIELD, `at position ${t.pos + 1}: expected ${what}, found ${describe(t)}`);
  }

  private requirement(): LabelRequirement {
    const first = this.next();
    if (first.kind === "!") {
      const k = this.next();
      if (k.kind !== "word") throw this.expected("a label key after '!'", k);
      return { op: "notexists", key: checkKey(k.text) };
    }
    if (first.kind !== "word") throw this.expected("a label key or '!'", first);
    const key = checkKey(first.text);
    const op = this.peek();
    switch (op.kind) {
      case "end":
      case ",":
        return { op: "exists", key };
      case "=":
      case "==":
      case "!=":
        this.next();
        return { op: op.kind === "!=" ? "notin" : "in", key, values: new Set([this.singleValue(key)]) };
      case "<":
      case ">": {
        this.next();
        const v = this.next();
        if (v.kind !== "word" || !INTEGER_RE.test(v.text)) throw this.expected("an integer", v);
        return { op: op.kind === "<" ? "lt" : "gt", key, value: BigInt(v.text) };
      }
      case "word":
        if (op.text === "in" || op.text === "notin") {
          this.next();
          return { op: op.text, key, values: this.valueSet(key) };
        }
        break;
      default:
        break;
    }
    throw this.expected("an operator (=, ==, !=, in, notin, <, >), ',' or end of input", op);
  }

  /** `k=` with nothing after it selects the empty value, as in Kubernetes. */
  private singleValue(key: string): string {
    const t = this.peek();
    if (t.kind === "word") {
      this.next();
      return checkValue(key, t.text);
    }
    if (t.kind === "end" || t.kind === ",") return "";
    throw this.expected("a value", t);
  }

  private valueSet(key: string): ReadonlySet<string> {
    const open = this.next();
    if (open.kind !== "(") throw this.expected("'('", open);
    if (this.peek().kind === ")") throw invalid(SELECTOR_FIELD, `key ${JSON.stringify(key)}: the value set must not be empty`);
    const values = new Set<string>();
    for (;;) {
      const t = this.peek();
      if (t.kind === "word") {
        this.next();
        values.add(checkValue(key, t.text));
      } else {
        values.add(""); // an empty item, as in `k in (a,)`
      }
      const sep = this.next();
      if (sep.kind === ")") return values;
      if (sep.kind !== ",") throw this.expected("',' or ')'", sep);
    }
  }
}

function checkKey(key: string): string {
  const problem = qualifiedNameProblem(key);
  if (problem !== undefined) throw invalid(SELECTOR_FIELD, `label ${JSON.stringify(key)}: ${problem}`);
  return key;
}

function checkValue(key: string, value: string): string {
  const problem = labelValueProblem(value);
  if (problem !== undefined) throw invalid(SELECTOR_FIELD, `label ${JSON.stringify(key)}: ${problem}`);
  return value;
}

/**
 * Parses `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>n`, `k<n`,
 * comma-separated. "" (or only spaces) is the empty selector.
 */
/** Bounds the work one ListSecrets call can ask for: selector cost is paid per row. */
export const MAX_SELECTOR_LENGTH = 4096;
export const MAX_SELECTOR_REQUIREMENTS = 64;

export function parseLabelSelector(s: string): LabelSelector {
  if (s.length > MAX_SELECTOR_LENGTH) throw invalid("label_selector", `at most ${MAX_SELECTOR_LENGTH} characters`);
  const sel = new SelectorParser(tokenize(s)).parse();
  if (sel.length > MAX_SELECTOR_REQUIREMENTS) throw invalid("label_selector", `at most ${MAX_SELECTOR_REQUIREMENTS} requirements`);
  return sel;
}

/** Kubernetes semantics: `!=` and `notin` also match objects without the key. */
export function matchesSelector(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const r of sel) {
    const value = Object.hasOwn(labels, r.key) ? labels[r.key] : undefined;
    switch (r.op) {
      case "exists":
        if (value === undefined) return false;
        break;
      case "notexists":
        if (value !== undefined) return false;
        break;
      case "in":
        if (value === undefined || !r.values.has(value)) return false;
        break;
      case "notin":
        if (value !== undefined && r.values.has(value)) return false;
        break;
      case "gt":
      case "lt": {
        if (value === undefined || !INTEGER_RE.test(value)) return false;
        const n = BigInt(value);
        if (r.op === "gt" ? !(n > r.value) : !(n < r.value)) return false;
        break;
      }
    }
  }
  return true;
}
