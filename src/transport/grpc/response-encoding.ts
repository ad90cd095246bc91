/**
 * Response serializers for the hot read RPCs (Secret for Create/Get/Update, Projection
 * for ProjectSecrets): the exact bytes ts-proto's encode gives, written in two passes
 * (sizes, then one exactly-sized buffer) instead of a growing BinaryWriter with a fork
 * per map entry and timestamp, and without the copy the generated serializer makes with
 * Buffer.from. A message holding anything unusual (a negative number, a non-integer)
 * goes to the generated encoder, so the fast path only ever sees values it encodes the
 * same way; test/unit/response-encoding.test.ts compares the two byte for byte.
 * Field tags come from the descriptor set buf generated (src/gen/descriptor-set.ts), not
 * from numbers written here: a renumbered field changes them, and a field whose tag
 * would no longer fit the width this file writes it in stops the server at start-up.
 */
import { createFileRegistry, fromBinary, ScalarType } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { descriptorSetBase64 } from "../../gen/descriptor-set.js";
import { Projection, Secret, SecretServiceService } from "../../gen/secrets/v1/secrets.js";
import type { AuditTarget } from "./call.js";

const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, Buffer.from(descriptorSetBase64, "base64")));

/** Each field's tag (number << 3 | wire type) in message `typeName`, checked to be `bytes` long on the wire. */
function tagsOf<F extends string>(typeName: string, fields: Record<F, 1 | 2>): Record<F, number> {
  const message = registry.getMessage(typeName);
  if (!message) throw new Error(`response-encoding: ${typeName} is not in the descriptor set`);
  const out = {} as Record<F, number>;
  for (const [name, width] of Object.entries(fields) as [F, 1 | 2][]) {
    const f = message.fields.find((x) => x.localName === name);
    if (!f) throw new Error(`response-encoding: ${typeName} has no field ${name}`);
    const varint = f.fieldKind === "scalar" && f.scalar !== ScalarType.STRING && f.scalar !== ScalarType.BYTES;
    const tag = (f.number << 3) | (varint ? 0 : 2);
    if ((tag < 0x80 ? 1 : 2) !== width || tag >= 0x4000) throw new Error(`response-encoding: ${typeName}.${name}'s tag ${tag} is not ${width} byte(s)`);
    out[name] = tag;
  }
  return out;
}

const SECRET = tagsOf("secrets.v1.Secret", {
  uid: 1, mesh: 1, name: 1, type: 1, description: 1, owner: 1, data: 1, labels: 1, annotations: 1,
  immutable: 1, version: 1, etag: 1, createTime: 1, updateTime: 1, expireTime: 1, keys: 2, stage: 2,
});
const PROJECTION = tagsOf("secrets.v1.Projection", { values: 1, sources: 1, revision: 1, consumerId: 1 });
const VALUE = tagsOf("secrets.v1.ProjectedValue", { secret: 1, key: 1, env: 1, path: 1, mode: 1, value: 1 });
const REF = tagsOf("secrets.v1.SecretRef", { mesh: 1, name: 1, version: 1 });
/** Map entries (key = 1, value = 2) and google.protobuf.Timestamp (seconds = 1, nanos = 2) are fixed by protobuf itself. */
const ENTRY_KEY = 10;
const ENTRY_VALUE = 18;
const SECONDS = 8;
const NANOS = 16;

/** A non-negative safe integer: the only numbers the fast path writes. */
function plain(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function strSize(s: string): number {
  const len = Buffer.byteLength(s, "utf8");
  return varintSize(len) + len;
}

function msSeconds(ms: number): number {
  return Math.trunc(ms / 1000);
}

function msNanos(ms: number): number {
  return (ms % 1000) * 1_000_000;
}

/** Timestamp's body size for a date, or -1 when the fast path must not take it. */
function timestampBody(d: Date): number {
  const ms = d.getTime();
  if (!plain(ms)) return -1;
  const s = msSeconds(ms);
  const ns = msNanos(ms);
  return (s !== 0 ? 1 + varintSize(s) : 0) + (ns !== 0 ? 1 + varintSize(ns) : 0);
}

class Out {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(n: number): void {
    const b = this.buf;
    while (n >= 0x80) {
      b[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    b[this.pos++] = n;
  }

  /** A length-delimited string field; `len` is its UTF-8 byte length. */
  str(tag: number, s: string, len: number): void {
    this.buf[this.pos++] = tag;
    this.varint(len);
    this.pos += this.buf.write(s, this.pos, len, "utf8");
  }

  bytes(tag: number, v: Uint8Array): void {
    this.buf[this.pos++] = tag;
    this.varint(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  timestamp(tag: number, d: Date, body: number): void {
    const ms = d.getTime();
    const s = msSeconds(ms);
    const ns = msNanos(ms);
    this.buf[this.pos++] = tag;
    this.varint(body);
    if (s !== 0) {
      this.buf[this.pos++] = SECONDS;
      this.varint(s);
    }
    if (ns !== 0) {
      this.buf[this.pos++] = NANOS;
      this.varint(ns);
    }
  }
}

const generic = (m: Secret): Buffer => {
  const u = Secret.encode(m).finish();
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
};

const SECRET_STRINGS = ["uid", "mesh", "name", "type", "description", "owner"] as const;

/** Secret.encode(m).finish(), as a Buffer. */
export function encodeSecret(m: Secret | EncodedAnswer): Buffer {
  if (m instanceof EncodedAnswer) return m.encoded;
  if (!plain(m.version)) return generic(m);
  const lens = SECRET_STRINGS.map((f) => Buffer.byteLength(m[f], "utf8"));
  let size = 0;
  for (const len of lens) if (len !== 0) size += 1 + varintSize(len) + len;
  const dataKeys = Object.keys(m.data);
  const entrySizes: number[] = [];
  for (const k of dataKeys) {
    const v = m.data[k]!;
    const e = (k !== "" ? 1 + strSize(k) : 0) + (v.length !== 0 ? 1 + varintSize(v.length) + v.length : 0);
    entrySizes.push(e);
    size += 1 + varintSize(e) + e;
  }
  for (const map of [m.labels, m.annotations]) {
    for (const [k, v] of Object.entries(map)) {
      const e = (k !== "" ? 1 + strSize(k) : 0) + (v !== "" ? 1 + strSize(v) : 0);
      entrySizes.push(e);
      size += 1 + varintSize(e) + e;
    }
  }
  if (m.immutable) size += 2;
  if (m.version !== 0) size += 1 + varintSize(m.version);
  const etagLen = Buffer.byteLength(m.etag, "utf8");
  if (etagLen !== 0) size += 1 + varintSize(etagLen) + etagLen;
  const times = [m.createTime, m.updateTime, m.expireTime];
  const bodies: number[] = [];
  for (const t of times) {
    if (t === undefined) {
      bodies.push(0);
      continue;
    }
    const body = timestampBody(t);
    if (body < 0) return generic(m);
    bodies.push(body);
    size += 1 + varintSize(body) + body;
  }
  const keyLens = m.keys.map((k) => Buffer.byteLength(k, "utf8"));
  for (const len of keyLens) size += 2 + varintSize(len) + len;
  const stageLen = Buffer.byteLength(m.stage, "utf8");
  if (stageLen !== 0) size += 2 + varintSize(stageLen) + stageLen;

  const o = new Out(Buffer.allocUnsafe(size));
  SECRET_STRINGS.forEach((f, i) => {
    const len = lens[i]!;
    if (len !== 0) o.str(SECRET[f], m[f], len);
  });
  let e = 0;
  for (const k of dataKeys) {
    const v = m.data[k]!;
    o.buf[o.pos++] = SECRET.data;
    o.varint(entrySizes[e++]!);
    if (k !== "") o.str(ENTRY_KEY, k, Buffer.byteLength(k, "utf8"));
    if (v.length !== 0) o.bytes(ENTRY_VALUE, v);
  }
  for (const [tag, map] of [[SECRET.labels, m.labels], [SECRET.annotations, m.annotations]] as const) {
    for (const [k, v] of Object.entries(map)) {
      o.buf[o.pos++] = tag;
      o.varint(entrySizes[e++]!);
      if (k !== "") o.str(ENTRY_KEY, k, Buffer.byteLength(k, "utf8"));
      if (v !== "") o.str(ENTRY_VALUE, v, Buffer.byteLength(v, "utf8"));
    }
  }
  if (m.immutable) {
    o.buf[o.pos++] = SECRET.immutable;
    o.buf[o.pos++] = 1;
  }
  if (m.version !== 0) {
    o.buf[o.pos++] = SECRET.version;
    o.varint(m.version);
  }
  if (etagLen !== 0) o.str(SECRET.etag, m.etag, etagLen);
  const timeTags = [SECRET.createTime, SECRET.updateTime, SECRET.expireTime];
  times.forEach((t, i) => {
    if (t !== undefined) o.timestamp(timeTags[i]!, t, bodies[i]!);
  });
  m.keys.forEach((k, i) => {
    o.varint(SECRET.keys);
    o.varint(keyLens[i]!);
    o.pos += o.buf.write(k, o.pos, keyLens[i]!, "utf8");
  });
  if (stageLen !== 0) {
    o.varint(SECRET.stage);
    o.varint(stageLen);
    o.pos += o.buf.write(m.stage, o.pos, stageLen, "utf8");
  }
  if (o.pos !== size) throw new Error(`encodeSecret wrote ${o.pos} of ${size} bytes`);
  return o.buf;
}

const genericProjection = (m: Projection): Buffer => {
  const u = Projection.encode(m).finish();
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
};

/** A Secret or Projection already encoded (answers.ts): sent as it is, audited with `audit`. */
export class EncodedAnswer {
  constructor(
    readonly encoded: Buffer,
    readonly audit: readonly AuditTarget[],
  ) {}
}

const VALUE_STRINGS = [VALUE.secret, VALUE.key, VALUE.env, VALUE.path];

/** Projection.encode(m).finish(), as a Buffer (an EncodedAnswer's own bytes). */
export function encodeProjection(m: Projection | EncodedAnswer): Buffer {
  if (m instanceof EncodedAnswer) return m.encoded;
  let size = 0;
  const lens: number[] = [];
  const bodies: number[] = [];
  for (const v of m.values) {
    if (!plain(v.mode) || v.mode > 0xffffffff) return genericProjection(m);
    let body = 0;
    for (const s of [v.secret, v.key, v.env, v.path]) {
      const len = Buffer.byteLength(s, "utf8");
      lens.push(len);
      if (len !== 0) body += 1 + varintSize(len) + len;
    }
    if (v.mode !== 0) body += 1 + varintSize(v.mode);
    if (v.value.length !== 0) body += 1 + varintSize(v.value.length) + v.value.length;
    bodies.push(body);
    size += 1 + varintSize(body) + body;
  }
  for (const r of m.sources) {
    if (!plain(r.version)) return genericProjection(m);
    let body = 0;
    for (const s of [r.mesh, r.name]) {
      const len = Buffer.byteLength(s, "utf8");
      lens.push(len);
      if (len !== 0) body += 1 + varintSize(len) + len;
    }
    if (r.version !== 0) body += 1 + varintSize(r.version);
    bodies.push(body);
    size += 1 + varintSize(body) + body;
  }
  const revLen = Buffer.byteLength(m.revision, "utf8");
  if (revLen !== 0) size += 1 + varintSize(revLen) + revLen;
  const idLen = Buffer.byteLength(m.consumerId, "utf8");
  if (idLen !== 0) size += 1 + varintSize(idLen) + idLen;

  const o = new Out(Buffer.allocUnsafe(size));
  let l = 0;
  let b = 0;
  for (const v of m.values) {
    o.buf[o.pos++] = PROJECTION.values;
    o.varint(bodies[b++]!);
    [v.secret, v.key, v.env, v.path].forEach((s, i) => {
      const len = lens[l++]!;
      if (len !== 0) o.str(VALUE_STRINGS[i]!, s, len);
    });
    if (v.mode !== 0) {
      o.buf[o.pos++] = VALUE.mode;
      o.varint(v.mode);
    }
    if (v.value.length !== 0) o.bytes(VALUE.value, v.value);
  }
  for (const r of m.sources) {
    o.buf[o.pos++] = PROJECTION.sources;
    o.varint(bodies[b++]!);
    [r.mesh, r.name].forEach((s, i) => {
      const len = lens[l++]!;
      if (len !== 0) o.str(i === 0 ? REF.mesh : REF.name, s, len);
    });
    if (r.version !== 0) {
      o.buf[o.pos++] = REF.version;
      o.varint(r.version);
    }
  }
  if (revLen !== 0) o.str(PROJECTION.revision, m.revision, revLen);
  if (idLen !== 0) o.str(PROJECTION.consumerId, m.consumerId, idLen);
  if (o.pos !== size) throw new Error(`encodeProjection wrote ${o.pos} of ${size} bytes`);
  return o.buf;
}

/** The service definition with these serializers on the methods that answer a Secret or a Projection. */
export function withFastResponses<S extends typeof SecretServiceService>(def: S): S {
  return {
    ...def,
    createSecret: { ...def.createSecret, responseSerialize: encodeSecret },
    getSecret: { ...def.getSecret, responseSerialize: encodeSecret },
    updateSecret: { ...def.updateSecret, responseSerialize: encodeSecret },
    projectSecrets: { ...def.projectSecrets, responseSerialize: encodeProjection },
  };
}
