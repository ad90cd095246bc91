/**
 * A wire-level look at a request before ts-proto decodes it, driven by the descriptors
 * `buf build` produced (so it follows the proto as it changes). It refuses what the
 * decoder would silently alter or turn into INTERNAL:
 * - a string field that is not valid UTF-8 (the decoder substitutes U+FFFD, so two
 *   different byte strings would become one name);
 * - a 64-bit integer outside ±(2^53 - 1) (ts-proto throws, grpc-js answers INTERNAL);
 * - a map key `__proto__` (ts-proto assigns map entries into a plain object, where that
 *   key sets the prototype or is dropped without a trace);
 * - a google.protobuf.Timestamp outside its range (timestamps.ts);
 * - a repeated or map field of more than MAX_ENTRIES entries (twice what any valid
 *   request holds, so a request just past a limit still gets that limit's own message),
 *   so a 2 MiB request of 400,000 tiny items is refused after a few thousand, before it
 *   is decoded or walked any further (#27).
 * Each is INVALID_ARGUMENT naming the field. It also reads each Timestamp exactly, so the
 * caller can replace the Date ts-proto rounded (see timestamps.ts) with the truncated one.
 */
import { createFileRegistry, fromBinary, ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { invalid, type SecretdError } from "../../errors.js";
import { keyField, MAX_DATA_KEYS } from "../../domain/validation.js";
import { descriptorSetBase64 } from "../../gen/descriptor-set.js";
import { timestampMs, timestampProblem } from "./timestamps.js";

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const INT64 = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);
/** Nesting deeper than any request of ours; stops a crafted recursion early. */
const MAX_DEPTH = 16;
/** Entries of one repeated or map field in one message: twice MAX_DATA_KEYS, the most any request needs. */
const MAX_ENTRIES = 2 * MAX_DATA_KEYS;

class Problem extends Error {
  constructor(readonly error: SecretdError) {
    super(error.message);
  }
}

const TIMESTAMP = "google.protobuf.Timestamp";

/** A Timestamp read from the wire: where ts-proto put its Date (field local names), and its exact epoch ms. */
export interface TimestampAt {
  readonly path: readonly string[];
  readonly ms: number;
}

/** What a walk collects besides problems: Timestamps outside lists and maps. */
type Found = TimestampAt[];

const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, Buffer.from(descriptorSetBase64, "base64")));

/** Input message descriptor of each method, by its gRPC path (`/pkg.Service/Method`). */
export function requestDescriptor(path: string): DescMessage | undefined {
  const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
  if (!m) return undefined;
  return registry.getService(m[1]!)?.methods.find((x) => x.name === m[2])?.input;
}

function readString(r: BinaryReader, field: string): string {
  try {
    return utf8.decode(r.bytes());
  } catch {
    throw new Problem(invalid(field, "must be valid UTF-8"));
  }
}

function readScalar(r: BinaryReader, scalar: ScalarType, wire: WireType, field: string): string | undefined {
  if (scalar === ScalarType.STRING && wire === WireType.LengthDelimited) return readString(r, field);
  if (INT64.has(scalar) && (wire === WireType.Varint || wire === WireType.Bit64)) {
    const v = scalar === ScalarType.UINT64 || scalar === ScalarType.FIXED64
      ? BigInt(scalar === ScalarType.UINT64 ? r.uint64() : r.fixed64())
      : BigInt(scalar === ScalarType.INT64 ? r.int64() : scalar === ScalarType.SINT64 ? r.sint64() : r.sfixed64());
    if (v > MAX_SAFE || v < -MAX_SAFE) throw new Problem(invalid(field, `must be between -${MAX_SAFE} and ${MAX_SAFE}`));
    return undefined;
  }
  r.skip(wire);
  return undefined;
}

function checkMapEntry(bytes: Uint8Array, f: DescField & { fieldKind: "map" }, path: string, depth: number): void {
  const r = new BinaryReader(bytes);
  let key: string | undefined;
  const values: Array<[number, Uint8Array]> = [];
  while (r.pos < r.len) {
    const [no, wire] = r.tag();
    if (no === 1) {
      const k = readScalar(r, f.mapKey, wire, `${path} key`);
      if (k !== undefined) key = k;
    } else if (no === 2 && wire === WireType.LengthDelimited) {
      values.push([wire, r.bytes()]);
    } else r.skip(wire);
  }
  const field = key === undefined ? path : keyField(path, key);
  if (key === "__proto__") throw new Problem(invalid(field, "the key __proto__ is not allowed"));
  for (const [, v] of values) {
    if (f.mapKind === "message" && f.message.typeName === TIMESTAMP) readTimestamp(v, field);
    else if (f.mapKind === "message") checkMessage(v, f.message, field, depth + 1);
    else if (f.mapKind === "scalar" && f.scalar === ScalarType.STRING) {
      try {
        utf8.decode(v);
      } catch {
        throw new Problem(invalid(field, "must be valid UTF-8"));
      }
    }
  }
}

function readTimestamp(bytes: Uint8Array, field: string): number {
  const r = new BinaryReader(bytes);
  let seconds = 0n;
  let nanos = 0;
  while (r.pos < r.len) {
    const [no, wire] = r.tag();
    if (no === 1 && wire === WireType.Varint) seconds = BigInt(r.int64());
    else if (no === 2 && wire === WireType.Varint) nanos = r.int32();
    else r.skip(wire);
  }
  const problem = timestampProblem(seconds, nanos);
  if (problem !== undefined) throw new Problem(invalid(`${field}.${problem.field}`, problem.rule));
  return timestampMs(seconds, nanos);
}

function checkMessage(bytes: Uint8Array, desc: DescMessage, path: string, depth: number, at?: readonly string[], found?: Found): void {
  if (depth > MAX_DEPTH) throw new Problem(invalid(path || "request", "is nested too deeply"));
  const r = new BinaryReader(bytes);
  const counts = new Map<number, number>();
  while (r.pos < r.len) {
    const [no, wire] = r.tag();
    const f = desc.fields.find((x) => x.number === no);
    if (f === undefined) {
      r.skip(wire);
      continue;
    }
    const name = path === "" ? f.name : `${path}.${f.name}`;
    if (f.fieldKind === "list" || f.fieldKind === "map") {
      const n = (counts.get(no) ?? 0) + 1;
      counts.set(no, n);
      if (n > MAX_ENTRIES) throw new Problem(invalid(name, `must have at most ${MAX_ENTRIES} entries`));
    }
    switch (f.fieldKind) {
      case "scalar":
        readScalar(r, f.scalar, wire, name);
        break;
      case "message":
        if (wire !== WireType.LengthDelimited) r.skip(wire);
        else if (f.message.typeName === TIMESTAMP) {
          const ms = readTimestamp(r.bytes(), name);
          if (at !== undefined && found !== undefined) found.push({ path: [...at, f.localName], ms });
        } else checkMessage(r.bytes(), f.message, name, depth + 1, at === undefined ? undefined : [...at, f.localName], found);
        break;
      case "list": {
        const i = counts.get(no)! - 1;
        const item = `${name}[${i}]`;
        if (f.listKind === "message" && wire === WireType.LengthDelimited) {
          if (f.message.typeName === TIMESTAMP) readTimestamp(r.bytes(), item);
          else checkMessage(r.bytes(), f.message, item, depth + 1);
        }
        else if (f.listKind === "scalar" && INT64.has(f.scalar) && wire === WireType.LengthDelimited) {
          const packed = new BinaryReader(r.bytes());
          const w = f.scalar === ScalarType.FIXED64 || f.scalar === ScalarType.SFIXED64 ? WireType.Bit64 : WireType.Varint;
          while (packed.pos < packed.len) readScalar(packed, f.scalar, w, item);
        } else if (f.listKind === "scalar") readScalar(r, f.scalar, wire, item);
        else r.skip(wire);
        break;
      }
      case "map":
        if (wire === WireType.LengthDelimited) checkMapEntry(r.bytes(), f, name, depth);
        else r.skip(wire);
        break;
      default:
        r.skip(wire);
    }
  }
}

/**
 * The first problem of an encoded request of type `desc`, or the exact Timestamps it
 * holds (outside lists and maps). Malformed wire data is left to the decoder, whose
 * failure the caller turns into its own error.
 */
export function checkRequest(desc: DescMessage, bytes: Uint8Array): { problem: SecretdError } | { problem?: undefined; timestamps: readonly TimestampAt[] } {
  const timestamps: Found = [];
  try {
    checkMessage(bytes, desc, "", 0, [], timestamps);
    return { timestamps };
  } catch (err) {
    if (err instanceof Problem) return { problem: err.error };
    return { problem: invalid("request", `is not a valid ${desc.name} encoding`) };
  }
}
