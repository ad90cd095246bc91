/**
 * Reads `apply -f` inputs (files, directories of .yaml/.yml/.json files, or "-" for
 * stdin), splits them into YAML documents, recognises each document's format and checks
 * every desired secret with the server's own validation rules, all before anything is
 * sent: one bad document refuses the whole input.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { SecretdError } from "../../errors.js";
import { validateTypedData } from "../../domain/secret-types.js";
// Annotations the server owns (a manifest round-tripped from secretd may carry them); a rotation policy is the caller's.
import { isServerAnnotation } from "../../domain/rotation-policy.js";
import {
  keyField,
  mergeData,
  validateAnnotations,
  validateDataKey,
  validateDescription,
  validateLabels,
  validateMesh,
  validateName,
  validateType,
} from "../../domain/validation.js";
import { isDataos, parseDataos } from "./dataos.js";
import { isKubernetes, parseKubernetes } from "./kubernetes.js";
import { isKuma, isKumaList, parseKuma, parseKumaList } from "./kuma.js";
import { inDocument, isRecord, where, type DesiredSecret, type ManifestSource } from "./manifest.js";
import { isNanocl, parseNanocl } from "./nanocl.js";

export const STDIN = "-";
const STDIN_NAME = "<stdin>";
const MANIFEST_EXT = /\.(ya?ml|json)$/i;

export interface Input {
  /** As shown in messages: the path given, or <stdin>. */
  readonly name: string;
  readonly text: string;
  /** Relative file references (DataOS secret.files) resolve against this. */
  readonly baseDir: string;
}

function readInput(file: string): Input {
  try {
    return { name: file, text: readFileSync(file, "utf8"), baseDir: path.dirname(path.resolve(file)) };
  } catch (err) {
    throw new SecretdError("INVALID_ARGUMENT", `-f ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

/** The inputs `-f` names, in order; a directory gives its manifest files sorted by name. */
export function readInputs(args: readonly string[], stdin: () => string): Input[] {
  if (args.length === 0) throw new SecretdError("INVALID_ARGUMENT", "-f: give a file, a directory or - (stdin)");
  const out: Input[] = [];
  for (const arg of args) {
    if (arg === STDIN) {
      out.push({ name: STDIN_NAME, text: stdin(), baseDir: process.cwd() });
      continue;
    }
    let isDir: boolean;
    try {
      isDir = statSync(arg).isDirectory();
    } catch (err) {
      throw new SecretdError("INVALID_ARGUMENT", `-f ${arg}: cannot read it (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
    if (!isDir) {
      out.push(readInput(arg));
      continue;
    }
    const files = readdirSync(arg, { withFileTypes: true })
      .filter((e) => e.isFile() && MANIFEST_EXT.test(e.name))
      .map((e) => e.name)
      .sort();
    if (files.length === 0) throw new SecretdError("INVALID_ARGUMENT", `-f ${arg}: no .yaml, .yml or .json files in this directory`);
    for (const f of files) out.push(readInput(path.join(arg, f)));
  }
  return out;
}

function parseDocument(doc: unknown, source: ManifestSource, baseDir: string): DesiredSecret[] {
  if (!isRecord(doc)) throw new SecretdError("INVALID_ARGUMENT", `${where(source)}: must be a mapping (a manifest object)`);
  if (isKubernetes(doc)) return parseKubernetes(doc, source);
  if (isNanocl(doc)) return parseNanocl(doc, source);
  if (isKuma(doc)) return parseKuma(doc, source);
  if (isKumaList(doc)) return parseKumaList(doc, source);
  if (isDataos(doc)) return parseDataos(doc, source, baseDir);
  throw new SecretdError(
    "INVALID_ARGUMENT",
    `${where(source)}: not a Kubernetes Secret (apiVersion: v1, kind: Secret or List), a Kuma Secret/GlobalSecret (type: Secret/GlobalSecret), a Nanocl Statefile (ApiVersion, Secrets) or a DataOS secret (type: secret or instance-secret)`,
  );
}

/** The desired secrets of one input, document by document; empty documents are skipped. */
export function parseInput(input: Input): DesiredSecret[] {
  const out: DesiredSecret[] = [];
  const docs = parseAllDocuments(input.text);
  const list = Array.isArray(docs) ? docs : [];
  // Syntax first, for the whole input: a broken document is reported before any other.
  list.forEach((doc, i) => {
    const error = doc.errors[0];
    if (error !== undefined) {
      // The parser's message quotes the offending line, which may hold a value: only its position.
      const pos = error.linePos ? ` at line ${error.linePos[0].line}, column ${error.linePos[0].col}` : "";
      throw new SecretdError("INVALID_ARGUMENT", `${where({ file: input.name, document: i + 1 })}: not valid YAML or JSON${pos}`);
    }
  });
  list.forEach((doc, i) => {
    const source: ManifestSource = { file: input.name, document: i + 1 };
    let js: unknown;
    try {
      js = doc.toJS({ maxAliasCount: 100 });
    } catch {
      throw new SecretdError("INVALID_ARGUMENT", `${where(source)}: too many YAML aliases`);
    }
    if (js === null || js === undefined) return;
    out.push(...parseDocument(js, source, input.baseDir));
  });
  return out;
}

function withoutReserved(annotations: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(annotations).filter(([k]) => !isServerAnnotation(k)));
}

/**
 * The server's validation (SPEC §5), run here so a bad object is found before the first
 * write. Returns the object with server-owned annotations dropped.
 */
export function checkDesired(d: DesiredSecret): DesiredSecret {
  return inDocument(d.source, () => {
    validateName(d.name);
    if (d.mesh !== undefined) validateMesh(d.mesh);
    const type = validateType(d.type);
    for (const k of Object.keys(d.data)) validateDataKey(k, keyField("data", k));
    for (const k of Object.keys(d.stringData)) validateDataKey(k, keyField("stringData", k));
    const merged = mergeData(d.data, d.stringData);
    validateTypedData(type, merged);
    validateLabels(d.labels);
    const annotations = withoutReserved(d.annotations);
    validateAnnotations(annotations);
    validateDescription(d.description);
    return { ...d, type, annotations };
  });
}

/** Every object of every input, checked, with no (mesh, name) given twice. */
export function loadManifests(inputs: readonly Input[], meshFlag: string): DesiredSecret[] {
  validateMesh(meshFlag, "--mesh");
  const all = inputs.flatMap(parseInput).map(checkDesired);
  const seen = new Map<string, DesiredSecret>();
  for (const d of all) {
    const mesh = d.mesh ?? meshFlag;
    if (mesh === "" && d.meshField !== undefined) {
      throw new SecretdError(
        "INVALID_ARGUMENT",
        `${where(d.source)}: ${d.meshField}: is required: a ${d.format} belongs to a mesh (kumactl refuses one without it); add mesh: (e.g. default) or pass --mesh, or make it a GlobalSecret for the global scope`,
      );
    }
    const id = `${mesh}\u0000${d.name}`;
    const first = seen.get(id);
    if (first !== undefined) {
      throw new SecretdError("INVALID_ARGUMENT", `${where(d.source)}: secret "${d.name}"${mesh === "" ? "" : ` in mesh "${mesh}"`} is also declared by ${where(first.source)}`);
    }
    seen.set(id, d);
  }
  return all;
}
