/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), served by hand.
 *
 * @grpc/reflection drops each file's `dependency` list, and grpcurl then cannot resolve
 * imported types such as google.protobuf.Timestamp (grpc-node #2595, grpcurl #459). This
 * module serves the exact FileDescriptorProto bytes that `buf build` produced, sliced
 * straight out of the FileDescriptorSet, so every file keeps its imports, its options
 * and its comments. Answers to file_by_filename and file_containing_symbol carry the
 * requested file first, then all its transitive dependencies.
 *
 * The wire codec of ServerReflectionRequest / ServerReflectionResponse is hand-written
 * (field numbers from grpc/reflection/v1/reflection.proto; v1alpha is identical on the
 * wire), and the reflection services describe themselves as well.
 */
import type * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { SecretdError } from "../../errors.js";
import { toStatus } from "./status.js";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";

// ---------------------------------------------------------------------------------------
// Messages and codec
// ---------------------------------------------------------------------------------------

export type ReflectionRequestMessage =
  | { case: "fileByFilename"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: "listServices"; value: string }
  | { case: undefined; value?: undefined };

/** A decoded ServerReflectionRequest; `raw` is its exact wire form (echoed back). */
export interface ReflectionRequest {
  host: string;
  message: ReflectionRequestMessage;
  raw: Uint8Array;
}

export type ReflectionResponseMessage =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } }
  | { case: undefined; value?: undefined };

export interface ReflectionResponse {
  validHost: string;
  /** The serialized ServerReflectionRequest this answers, if any. */
  originalRequest?: Uint8Array;
  message: ReflectionResponseMessage;
}

const LEN = WireType.LengthDelimited;

/** A plain Uint8Array copy (Buffer#slice would return a view into the whole message). */
function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

export function encodeReflectionRequest(req: { host?: string; message: ReflectionRequestMessage }): Uint8Array {
  const w = new BinaryWriter();
  if (req.host) w.tag(1, LEN).string(req.host);
  const m = req.message;
  switch (m.case) {
    case "fileByFilename":
      w.tag(3, LEN).string(m.value);
      break;
    case "fileContainingSymbol":
      w.tag(4, LEN).string(m.value);
      break;
    case "fileContainingExtension":
      w.tag(5, LEN).fork();
      if (m.value.containingType) w.tag(1, LEN).string(m.value.containingType);
      if (m.value.extensionNumber) w.tag(2, WireType.Varint).int32(m.value.extensionNumber);
      w.join();
      break;
    case "allExtensionNumbersOfType":
      w.tag(6, LEN).string(m.value);
      break;
    case "listServices":
      w.tag(7, LEN).string(m.value);
      break;
    case undefined:
      break;
  }
  return w.finish();
}

export function decodeReflectionRequest(bytes: Uint8Array): ReflectionRequest {
  const r = new BinaryReader(bytes);
  let host = "";
  let message: ReflectionRequestMessage = { case: undefined };
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (wt === LEN && no === 1) host = r.string();
    else if (wt === LEN && no === 3) message = { case: "fileByFilename", value: r.string() };
    else if (wt === LEN && no === 4) message = { case: "fileContainingSymbol", value: r.string() };
    else if (wt === LEN && no === 5) message = { case: "fileContainingExtension", value: decodeExtensionRequest(r.bytes()) };
    else if (wt === LEN && no === 6) message = { case: "allExtensionNumbersOfType", value: r.string() };
    else if (wt === LEN && no === 7) message = { case: "listServices", value: r.string() };
    else r.skip(wt, no);
  }
  return { host, message, raw: copy(bytes) };
}

function decodeExtensionRequest(bytes: Uint8Array): { containingType: string; extensionNumber: number } {
  const r = new BinaryReader(bytes);
  let containingType = "";
  let extensionNumber = 0;
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (wt === LEN && no === 1) containingType = r.string();
    else if (wt === WireType.Varint && no === 2) extensionNumber = r.int32();
    else r.skip(wt, no);
  }
  return { containingType, extensionNumber };
}

export function encodeReflectionResponse(res: ReflectionResponse): Uint8Array {
  const w = new BinaryWriter();
  if (res.validHost) w.tag(1, LEN).string(res.validHost);
  if (res.originalRequest) w.tag(2, LEN).bytes(res.originalRequest);
  const m = res.message;
  switch (m.case) {
    case "fileDescriptorResponse":
      w.tag(4, LEN).fork();
      for (const fd of m.value.fileDescriptorProto) w.tag(1, LEN).bytes(fd);
      w.join();
      break;
    case "allExtensionNumbersResponse":
      w.tag(5, LEN).fork();
      if (m.value.baseTypeName) w.tag(1, LEN).string(m.value.baseTypeName);
      if (m.value.extensionNumber.length > 0) {
        w.tag(2, LEN).fork();
        for (const n of m.value.extensionNumber) w.int32(n);
        w.join();
      }
      w.join();
      break;
    case "listServicesResponse":
      w.tag(6, LEN).fork();
      for (const s of m.value.service) w.tag(1, LEN).fork().tag(1, LEN).string(s.name).join();
      w.join();
      break;
    case "errorResponse":
      w.tag(7, LEN).fork();
      if (m.value.errorCode) w.tag(1, WireType.Varint).int32(m.value.errorCode);
      if (m.value.errorMessage) w.tag(2, LEN).string(m.value.errorMessage);
      w.join();
      break;
    case undefined:
      break;
  }
  return w.finish();
}

export function decodeReflectionResponse(bytes: Uint8Array): ReflectionResponse {
  const r = new BinaryReader(bytes);
  const res: ReflectionResponse = { validHost: "", message: { case: undefined } };
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (wt === LEN && no === 1) res.validHost = r.string();
    else if (wt === LEN && no === 2) res.originalRequest = copy(r.bytes());
    else if (wt === LEN && no === 4) res.message = { case: "fileDescriptorResponse", value: decodeFileDescriptorResponse(r.bytes()) };
    else if (wt === LEN && no === 5) res.message = { case: "allExtensionNumbersResponse", value: decodeExtensionNumbers(r.bytes()) };
    else if (wt === LEN && no === 6) res.message = { case: "listServicesResponse", value: decodeListServices(r.bytes()) };
    else if (wt === LEN && no === 7) res.message = { case: "errorResponse", value: decodeError(r.bytes()) };
    else r.skip(wt, no);
  }
  return res;
}

function decodeFileDescriptorResponse(bytes: Uint8Array): { fileDescriptorProto: Uint8Array[] } {
  const r = new BinaryReader(bytes);
  const fileDescriptorProto: Uint8Array[] = [];
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (wt === LEN && no === 1) fileDescriptorProto.push(copy(r.bytes()));
    else r.skip(wt, no);
  }
  return { fileDescriptorProto };
}

function decodeExtensionNumbers(bytes: Uint8Array): { baseTypeName: string; extensionNumber: number[] } {
  const r = new BinaryReader(bytes);
  let baseTypeName = "";
  const extensionNumber: number[] = [];
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (wt === LEN && no === 1) baseTypeName = r.string();
    else if (no === 2 && wt === WireType.Varint) extensionNumber.push(r.int32());
    else if (no === 2 && wt === LEN) {
      const packed = new BinaryReader(r.bytes());
      while (packed.pos < packed.len) extensionNumber.push(packed.int32());
    } else r.skip(wt, no);
  }
  return { baseTypeName, extensionNumber };
}

function decodeListServices(bytes: Uint8Array): { service: { name: string }[] } {
  const r = new BinaryReader(bytes);
  const service: { name: string }[] = [];
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (wt === LEN && no === 1) {
      const s = new BinaryReader(r.bytes());
      let name = "";
      while (s.pos < s.len) {
        const [sno, swt] = s.tag();
        if (swt === LEN && sno === 1) name = s.string();
        else s.skip(swt, sno);
      }
      service.push({ name });
    } else r.skip(wt, no);
  }
  return { service };
}

function decodeError(bytes: Uint8Array): { errorCode: number; errorMessage: string } {
  const r = new BinaryReader(bytes);
  let errorCode = 0;
  let errorMessage = "";
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (wt === WireType.Varint && no === 1) errorCode = r.int32();
    else if (wt === LEN && no === 2) errorMessage = r.string();
    else r.skip(wt, no);
  }
  return { errorCode, errorMessage };
}

// ---------------------------------------------------------------------------------------
// Descriptor index
// ---------------------------------------------------------------------------------------

/** A reflection error answer carries its status as status.ts gives it for a SecretdError. */
function errorAnswer(err: SecretdError): { errorCode: number; errorMessage: string } {
  const s = toStatus(err, "");
  return { errorCode: s.code, errorMessage: s.details };
}

interface IndexedFile {
  name: string;
  bytes: Uint8Array;
  dependency: string[];
}

/** Splits a serialized FileDescriptorSet into the exact bytes of each FileDescriptorProto. */
export function splitFileDescriptorSet(set: Uint8Array): Uint8Array[] {
  const r = new BinaryReader(set);
  const files: Uint8Array[] = [];
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (wt === LEN && no === 1) files.push(copy(r.bytes()));
    else r.skip(wt, no);
  }
  return files;
}

export interface ReflectionOptions {
  /** A serialized google.protobuf.FileDescriptorSet (`buf build --as-file-descriptor-set`). */
  descriptorSet: Uint8Array;
  /** Fully-qualified names of the services that list_services answers with. */
  services: string[];
  /** Serialized FileDescriptorProtos of other services (e.g. grpc.health.v1). */
  extraFiles?: Uint8Array[];
}

/**
 * Answers ServerReflectionRequests from a fixed set of files. Files from the descriptor
 * set win over extra files (and the reflection protos) of the same name. Throws if a
 * file imports one that is not in the set, since clients could not resolve it either.
 */
export class ReflectionIndex {
  private readonly files = new Map<string, IndexedFile>();
  private readonly symbols = new Map<string, string>();
  private readonly messages = new Set<string>();
  /** extendee FQN → extension number → file name. */
  private readonly extensions = new Map<string, Map<number, string>>();
  private readonly services: string[];

  constructor(opts: ReflectionOptions) {
    this.services = [...opts.services];
    const all = [
      ...splitFileDescriptorSet(opts.descriptorSet),
      ...(opts.extraFiles ?? []),
      ...reflectionFileDescriptors(),
    ];
    for (const bytes of all) this.addFile(bytes);
    for (const f of this.files.values()) {
      for (const dep of f.dependency) {
        if (!this.files.has(dep)) throw new Error(`reflection: ${f.name} imports ${dep}, which is not in the descriptor set`);
      }
    }
  }

  private addFile(bytes: Uint8Array): void {
    const fd = fromBinary(FileDescriptorProtoSchema, bytes);
    if (!fd.name) throw new Error("reflection: a FileDescriptorProto has no name");
    if (this.files.has(fd.name)) return;
    this.files.set(fd.name, { name: fd.name, bytes, dependency: [...fd.dependency] });
    const file = fd.name;
    const scope = fd.package ? `${fd.package}.` : "";
    for (const m of fd.messageType) this.addMessage(file, scope, m);
    for (const e of fd.enumType) this.addEnum(file, scope, e);
    for (const x of fd.extension) this.addExtension(file, scope, x);
    for (const s of fd.service) {
      const svc = `${scope}${s.name}`;
      this.addSymbol(svc, file);
      for (const m of s.method) this.addSymbol(`${svc}.${m.name}`, file);
    }
  }

  private addSymbol(name: string, file: string): void {
    if (!this.symbols.has(name)) this.symbols.set(name, file);
  }

  private addMessage(file: string, scope: string, m: DescriptorProto): void {
    const name = `${scope}${m.name}`;
    this.addSymbol(name, file);
    this.messages.add(name);
    for (const f of m.field) this.addSymbol(`${name}.${f.name}`, file);
    for (const o of m.oneofDecl) this.addSymbol(`${name}.${o.name}`, file);
    for (const n of m.nestedType) this.addMessage(file, `${name}.`, n);
    for (const e of m.enumType) this.addEnum(file, `${name}.`, e);
    for (const x of m.extension) this.addExtension(file, `${name}.`, x);
  }

  private addEnum(file: string, scope: string, e: EnumDescriptorProto): void {
    this.addSymbol(`${scope}${e.name}`, file);
    // Enum values live in the scope that encloses the enum (C++ scoping rules).
    for (const v of e.value) this.addSymbol(`${scope}${v.name}`, file);
  }

  private addExtension(file: string, scope: string, x: FieldDescriptorProto): void {
    this.addSymbol(`${scope}${x.name}`, file);
    const extendee = x.extendee.replace(/^\./, "");
    let byNumber = this.extensions.get(extendee);
    if (!byNumber) this.extensions.set(extendee, (byNumber = new Map()));
    if (!byNumber.has(x.number)) byNumber.set(x.number, file);
  }

  /** The file's bytes first, then those of all its transitive imports (each once). */
  private withDependencies(name: string): Uint8Array[] {
    const out: Uint8Array[] = [];
    const seen = new Set<string>([name]);
    const queue = [name];
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      const f = this.files.get(next);
      if (!f) continue;
      out.push(f.bytes);
      for (const dep of f.dependency) {
        if (!seen.has(dep)) {
          seen.add(dep);
          queue.push(dep);
        }
      }
    }
    return out;
  }

  private filesResponse(name: string): ReflectionResponseMessage {
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: this.withDependencies(name) } };
  }

  respond(req: { host: string; message: ReflectionRequestMessage; raw?: Uint8Array }): ReflectionResponse {
    const res = (message: ReflectionResponseMessage): ReflectionResponse => ({
      validHost: req.host,
      ...(req.raw ? { originalRequest: req.raw } : {}),
      message,
    });
    const notFound = (what: string): ReflectionResponse =>
      res({ case: "errorResponse", value: errorAnswer(new SecretdError("NOT_FOUND", `${what} not found`)) });
    const m = req.message;
    switch (m.case) {
      case "fileByFilename":
        return this.files.has(m.value) ? res(this.filesResponse(m.value)) : notFound(`file ${JSON.stringify(m.value)}`);
      case "fileContainingSymbol": {
        const file = this.symbols.get(m.value.replace(/^\./, ""));
        return file !== undefined ? res(this.filesResponse(file)) : notFound(`symbol ${JSON.stringify(m.value)}`);
      }
      case "fileContainingExtension": {
        const type = m.value.containingType.replace(/^\./, "");
        const file = this.extensions.get(type)?.get(m.value.extensionNumber);
        return file !== undefined
          ? res(this.filesResponse(file))
          : notFound(`extension ${m.value.extensionNumber} of ${JSON.stringify(m.value.containingType)}`);
      }
      case "allExtensionNumbersOfType": {
        const type = m.value.replace(/^\./, "");
        if (!this.messages.has(type)) return notFound(`message type ${JSON.stringify(m.value)}`);
        const numbers = [...(this.extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b);
        return res({ case: "allExtensionNumbersResponse", value: { baseTypeName: type, extensionNumber: numbers } });
      }
      case "listServices":
        return res({ case: "listServicesResponse", value: { service: this.services.map((name) => ({ name })) } });
      case undefined:
        return res({
          case: "errorResponse",
          value: errorAnswer(new SecretdError("INVALID_ARGUMENT", "ServerReflectionRequest has no message_request set")),
        });
    }
  }
}

// ---------------------------------------------------------------------------------------
// Service registration
// ---------------------------------------------------------------------------------------

export const REFLECTION_SERVICE_V1 = "grpc.reflection.v1.ServerReflection";
export const REFLECTION_SERVICE_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection";

type ReflectionImplementation = {
  ServerReflectionInfo: grpc.handleBidiStreamingCall<ReflectionRequest, ReflectionResponse>;
};

/** The grpc-js service definition of `<service>/ServerReflectionInfo` with the codec above. */
export function reflectionServiceDefinition(
  service: typeof REFLECTION_SERVICE_V1 | typeof REFLECTION_SERVICE_V1ALPHA,
): grpc.ServiceDefinition<ReflectionImplementation> {
  return {
    ServerReflectionInfo: {
      path: `/${service}/ServerReflectionInfo`,
      requestStream: true,
      responseStream: true,
      originalName: "serverReflectionInfo",
      requestSerialize: (req: ReflectionRequest) => Buffer.from(encodeReflectionRequest(req)),
      requestDeserialize: (buf: Buffer) => decodeReflectionRequest(buf),
      responseSerialize: (res: ReflectionResponse) => Buffer.from(encodeReflectionResponse(res)),
      responseDeserialize: (buf: Buffer) => decodeReflectionResponse(buf),
    },
  };
}

/** Registers grpc.reflection.v1 and v1alpha ServerReflection on `server`. */
export function addReflection(server: grpc.Server, opts: ReflectionOptions): void {
  const index = new ReflectionIndex(opts);
  const impl: ReflectionImplementation = {
    ServerReflectionInfo: (call) => {
      call.on("data", (req: ReflectionRequest) => {
        call.write(index.respond(req));
      });
      call.on("end", () => call.end());
      call.on("error", () => undefined);
    },
  };
  server.addService(reflectionServiceDefinition(REFLECTION_SERVICE_V1), impl);
  server.addService(reflectionServiceDefinition(REFLECTION_SERVICE_V1ALPHA), impl);
}

// ---------------------------------------------------------------------------------------
// The reflection protos themselves, so `grpcurl describe` of every listed service works
// ---------------------------------------------------------------------------------------

interface FieldExtra {
  label?: Label;
  type?: Type;
  typeName?: string;
  oneofIndex?: number;
}

function field(name: string, number: number, type: Type, extra: FieldExtra = {}) {
  const jsonName = name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  return { name, number, label: Label.OPTIONAL, type, jsonName, ...extra };
}

function reflectionFile(pkg: "v1" | "v1alpha"): FileDescriptorProto {
  const p = `.grpc.reflection.${pkg}.`;
  const msg = (name: string) => ({ type: Type.MESSAGE, typeName: `${p}${name}` });
  const repeated = { label: Label.REPEATED };
  const options =
    pkg === "v1"
      ? {
          goPackage: "google.golang.org/grpc/reflection/grpc_reflection_v1",
          javaMultipleFiles: true,
          javaPackage: "io.grpc.reflection.v1",
          javaOuterClassname: "ServerReflectionProto",
        }
      : {
          goPackage: "google.golang.org/grpc/reflection/grpc_reflection_v1alpha",
          javaMultipleFiles: true,
          javaPackage: "io.grpc.reflection.v1alpha",
          javaOuterClassname: "ServerReflectionProto",
          deprecated: true,
        };
  return create(FileDescriptorProtoSchema, {
    name: `grpc/reflection/${pkg}/reflection.proto`,
    package: `grpc.reflection.${pkg}`,
    syntax: "proto3",
    options,
    messageType: [
      {
        name: "ServerReflectionRequest",
        field: [
          field("host", 1, Type.STRING),
          field("file_by_filename", 3, Type.STRING, { oneofIndex: 0 }),
          field("file_containing_symbol", 4, Type.STRING, { oneofIndex: 0 }),
          field("file_containing_extension", 5, Type.MESSAGE, { ...msg("ExtensionRequest"), oneofIndex: 0 }),
          field("all_extension_numbers_of_type", 6, Type.STRING, { oneofIndex: 0 }),
          field("list_services", 7, Type.STRING, { oneofIndex: 0 }),
        ],
        oneofDecl: [{ name: "message_request" }],
      },
      {
        name: "ExtensionRequest",
        field: [field("containing_type", 1, Type.STRING), field("extension_number", 2, Type.INT32)],
      },
      {
        name: "ServerReflectionResponse",
        field: [
          field("valid_host", 1, Type.STRING),
          field("original_request", 2, Type.MESSAGE, msg("ServerReflectionRequest")),
          field("file_descriptor_response", 4, Type.MESSAGE, { ...msg("FileDescriptorResponse"), oneofIndex: 0 }),
          field("all_extension_numbers_response", 5, Type.MESSAGE, { ...msg("ExtensionNumberResponse"), oneofIndex: 0 }),
          field("list_services_response", 6, Type.MESSAGE, { ...msg("ListServiceResponse"), oneofIndex: 0 }),
          field("error_response", 7, Type.MESSAGE, { ...msg("ErrorResponse"), oneofIndex: 0 }),
        ],
        oneofDecl: [{ name: "message_response" }],
      },
      { name: "FileDescriptorResponse", field: [field("file_descriptor_proto", 1, Type.BYTES, repeated)] },
      {
        name: "ExtensionNumberResponse",
        field: [field("base_type_name", 1, Type.STRING), field("extension_number", 2, Type.INT32, repeated)],
      },
      { name: "ListServiceResponse", field: [field("service", 1, Type.MESSAGE, { ...msg("ServiceResponse"), ...repeated })] },
      { name: "ServiceResponse", field: [field("name", 1, Type.STRING)] },
      { name: "ErrorResponse", field: [field("error_code", 1, Type.INT32), field("error_message", 2, Type.STRING)] },
    ],
    service: [
      {
        name: "ServerReflection",
        method: [
          {
            name: "ServerReflectionInfo",
            inputType: `${p}ServerReflectionRequest`,
            outputType: `${p}ServerReflectionResponse`,
            clientStreaming: true,
            serverStreaming: true,
          },
        ],
      },
    ],
  });
}

let reflectionFiles: Uint8Array[] | undefined;

/** Serialized FileDescriptorProtos of grpc/reflection/{v1,v1alpha}/reflection.proto. */
export function reflectionFileDescriptors(): Uint8Array[] {
  reflectionFiles ??= [toBinary(FileDescriptorProtoSchema, reflectionFile("v1")), toBinary(FileDescriptorProtoSchema, reflectionFile("v1alpha"))];
  return reflectionFiles.map((b) => copy(b));
}
