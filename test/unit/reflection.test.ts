import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { createFileRegistry, fromBinary, type FileRegistry } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { service as healthLoaderService } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { descriptorSetBase64 } from "../../src/gen/descriptor-set.js";
import { protobufFileName as HEALTH_PROTO_FILE } from "../../src/gen/grpc/health/v1/health.js";
import {
  ServerReflectionRequest,
  ServerReflectionResponse,
} from "../../src/gen/grpc/reflection/v1/reflection.js";
import {
  addReflection,
  REFLECTION_SERVICE_V1,
  REFLECTION_SERVICE_V1ALPHA,
  ReflectionIndex,
  splitFileDescriptorSet,
} from "../../src/transport/grpc/reflection.js";

/** A request's oneof as a tagged value, to keep the tests short. */
type ReflectionRequestMessage =
  | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } };

/** A response with its oneof as a tagged value (decoded by the generated codec). */
interface ReflectionResponse {
  validHost: string;
  originalRequest: ServerReflectionRequest | undefined;
  message:
    | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
    | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
    | { case: "listServicesResponse"; value: { service: { name: string }[] } }
    | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } }
    | { case: undefined; value?: undefined };
}

function tagged(res: ServerReflectionResponse): ReflectionResponse {
  const { validHost, originalRequest } = res;
  const message: ReflectionResponse["message"] = res.fileDescriptorResponse
    ? { case: "fileDescriptorResponse", value: res.fileDescriptorResponse }
    : res.allExtensionNumbersResponse
      ? { case: "allExtensionNumbersResponse", value: res.allExtensionNumbersResponse }
      : res.listServicesResponse
        ? { case: "listServicesResponse", value: res.listServicesResponse }
        : res.errorResponse
          ? { case: "errorResponse", value: res.errorResponse }
          : { case: undefined };
  return { validHost, originalRequest, message };
}

function request(message: ReflectionRequestMessage, host = ""): ServerReflectionRequest {
  return ServerReflectionRequest.fromPartial({ host, [message.case]: message.value });
}

const DESCRIPTOR_SET = Buffer.from(descriptorSetBase64, "base64");
const SERVICES = ["secrets.v1.SecretService", "grpc.health.v1.Health", REFLECTION_SERVICE_V1, REFLECTION_SERVICE_V1ALPHA];
const SECRETS_PROTO = "secrets/v1/secrets.proto";
const TIMESTAMP_PROTO = "google/protobuf/timestamp.proto";

/** One ServerReflectionInfo stream: ask() sends a request and resolves with its answer. */
interface ReflectionStream {
  ask(message: ReflectionRequestMessage, host?: string): Promise<ReflectionResponse>;
  close(): void;
}

function openStream(client: grpc.Client, service: string): ReflectionStream {
  const call = client.makeBidiStreamRequest(
    `/${service}/ServerReflectionInfo`,
    (req: ServerReflectionRequest) => Buffer.from(ServerReflectionRequest.encode(req).finish()),
    (buf: Buffer) => tagged(ServerReflectionResponse.decode(buf)),
  );
  const waiting: { resolve: (r: ReflectionResponse) => void; reject: (e: Error) => void }[] = [];
  call.on("data", (res: ReflectionResponse) => waiting.shift()?.resolve(res));
  call.on("error", (err: Error) => {
    for (const w of waiting.splice(0)) w.reject(err);
  });
  return {
    ask(message, host) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        call.write(request(message, host));
      });
    },
    close() {
      call.end();
    },
  };
}

function files(res: ReflectionResponse): FileDescriptorProto[] {
  if (res.message.case !== "fileDescriptorResponse") {
    throw new Error(`expected file_descriptor_response, got ${JSON.stringify(res.message)}`);
  }
  return res.message.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

/**
 * What grpcurl does: take the file that holds a symbol, then fetch each import it does
 * not have yet by file_by_filename (never trusting the extra files of the first answer),
 * and build a registry from that.
 */
async function resolveLikeGrpcurl(stream: ReflectionStream, symbol: string): Promise<FileRegistry> {
  const first = files(await stream.ask({ case: "fileContainingSymbol", value: symbol }))[0];
  if (!first) throw new Error(`no file for ${symbol}`);
  const byName = new Map<string, FileDescriptorProto>([[first.name, first]]);
  const pending = [...first.dependency];
  for (let dep = pending.shift(); dep !== undefined; dep = pending.shift()) {
    if (byName.has(dep)) continue;
    const got = files(await stream.ask({ case: "fileByFilename", value: dep }))[0];
    if (!got) throw new Error(`no file for ${dep}`);
    expect(got.name).toBe(dep);
    byName.set(dep, got);
    pending.push(...got.dependency);
  }
  return createFileRegistry(first, (name) => byName.get(name));
}

let server: grpc.Server;
let port: number;
let client: grpc.Client;

beforeAll(async () => {
  server = new grpc.Server();
  addReflection(server, { descriptorSet: DESCRIPTOR_SET, services: SERVICES });
  port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client.close();
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
});

describe("server reflection", () => {
  it("when list_services is asked, then it answers with the configured service names", async () => {
    const stream = openStream(client, REFLECTION_SERVICE_V1);
    const res = await stream.ask({ case: "listServices", value: "" });
    stream.close();
    expect(res.message).toEqual({ case: "listServicesResponse", value: { service: SERVICES.map((name) => ({ name })) } });
  });

  it("when a request is answered, then it echoes the host and the original request", async () => {
    const stream = openStream(client, REFLECTION_SERVICE_V1);
    const res = await stream.ask({ case: "fileContainingSymbol", value: "secrets.v1.Secret" }, "localhost:50051");
    stream.close();
    expect(res.validHost).toBe("localhost:50051");
    expect(res.originalRequest).toEqual(request({ case: "fileContainingSymbol", value: "secrets.v1.Secret" }, "localhost:50051"));
  });

  it("when file_containing_symbol names the service, then secrets.proto comes first with its dependency list, then its imports", async () => {
    const stream = openStream(client, REFLECTION_SERVICE_V1);
    const res = await stream.ask({ case: "fileContainingSymbol", value: "secrets.v1.SecretService" });
    stream.close();
    const got = files(res);
    expect(got[0]?.name).toBe(SECRETS_PROTO);
    expect(got[0]?.dependency).toContain(TIMESTAMP_PROTO);
    expect(got[0]?.dependency).toContain("google/protobuf/field_mask.proto");
    // Exactly the file and every import it declares, each once.
    expect(got.map((f) => f.name).sort()).toEqual([SECRETS_PROTO, ...(got[0]?.dependency ?? [])].sort());
  });

  it("when files are served, then they are the exact bytes of buf's descriptor set", async () => {
    const stream = openStream(client, REFLECTION_SERVICE_V1);
    const res = await stream.ask({ case: "fileContainingSymbol", value: "secrets.v1.SecretService" });
    stream.close();
    expect(res.message.case).toBe("fileDescriptorResponse");
    const served = res.message.case === "fileDescriptorResponse" ? res.message.value.fileDescriptorProto : [];
    const original = splitFileDescriptorSet(DESCRIPTOR_SET).map((b) => Buffer.from(b).toString("base64"));
    for (const b of served) expect(original).toContain(Buffer.from(b).toString("base64"));
    // Comments survive, so `grpcurl describe` shows them.
    expect(files(res)[0]?.sourceCodeInfo?.location.length ?? 0).toBeGreaterThan(0);
  });

  it("when every dependency is resolved by file name, then every type resolves, Timestamp included", async () => {
    const stream = openStream(client, REFLECTION_SERVICE_V1);
    const registry = await resolveLikeGrpcurl(stream, "secrets.v1.SecretService");
    stream.close();
    const svc = registry.getService("secrets.v1.SecretService");
    expect(svc?.methods.map((m) => m.name)).toContain("GetSecret");
    for (const m of svc?.methods ?? []) {
      expect(m.input.typeName).toMatch(/^secrets\.v1\./);
      expect(m.output.typeName).not.toBe("");
    }
    const createTime = registry.getMessage("secrets.v1.Secret")?.fields.find((f) => f.name === "create_time");
    expect(createTime?.message?.typeName).toBe("google.protobuf.Timestamp");
    expect(registry.getMessage("google.protobuf.Timestamp")?.fields.map((f) => f.name)).toEqual(["seconds", "nanos"]);
    expect(registry.getMessage("google.protobuf.FieldMask")).toBeDefined();
  });

  it("when symbols of a method, a message, an enum or an enum value are asked, then secrets.proto answers", async () => {
    const stream = openStream(client, REFLECTION_SERVICE_V1);
    for (const symbol of [
      "secrets.v1.SecretService.GetSecret",
      "secrets.v1.Secret",
      ".secrets.v1.Secret",
      "secrets.v1.Permission",
      "secrets.v1.PERMISSION_READ",
      "google.protobuf.Timestamp",
    ]) {
      const got = files(await stream.ask({ case: "fileContainingSymbol", value: symbol }));
      expect(got[0]?.name, symbol).toBe(symbol === "google.protobuf.Timestamp" ? TIMESTAMP_PROTO : SECRETS_PROTO);
    }
    stream.close();
  });

  it("when an unknown symbol or file is asked, then error 5 comes back and the stream keeps answering", async () => {
    const stream = openStream(client, REFLECTION_SERVICE_V1);
    const bad = await stream.ask({ case: "fileContainingSymbol", value: "secrets.v1.Nope" });
    expect(bad.message.case).toBe("errorResponse");
    expect(bad.message.case === "errorResponse" && bad.message.value.errorCode).toBe(5);
    expect(bad.message.case === "errorResponse" && bad.message.value.errorMessage).toContain("secrets.v1.Nope");
    const badFile = await stream.ask({ case: "fileByFilename", value: "nope.proto" });
    expect(badFile.message.case === "errorResponse" && badFile.message.value.errorCode).toBe(5);
    const after = await stream.ask({ case: "listServices", value: "*" });
    expect(after.message.case).toBe("listServicesResponse");
    const file = files(await stream.ask({ case: "fileByFilename", value: TIMESTAMP_PROTO }));
    expect(file.map((f) => f.name)).toEqual([TIMESTAMP_PROTO]);
    stream.close();
  });

  it("when extensions are asked, then known messages have none and the rest is NOT_FOUND", async () => {
    const stream = openStream(client, REFLECTION_SERVICE_V1);
    const known = await stream.ask({ case: "allExtensionNumbersOfType", value: "secrets.v1.Secret" });
    expect(known.message).toEqual({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "secrets.v1.Secret", extensionNumber: [] },
    });
    const unknown = await stream.ask({ case: "allExtensionNumbersOfType", value: "secrets.v1.Nope" });
    expect(unknown.message.case === "errorResponse" && unknown.message.value.errorCode).toBe(5);
    const ext = await stream.ask({
      case: "fileContainingExtension",
      value: { containingType: "secrets.v1.Secret", extensionNumber: 1000 },
    });
    expect(ext.message.case === "errorResponse" && ext.message.value.errorCode).toBe(5);
    stream.close();
  });

  it("when v1alpha is used, then it answers like v1", async () => {
    const stream = openStream(client, REFLECTION_SERVICE_V1ALPHA);
    const list = await stream.ask({ case: "listServices", value: "" });
    expect(list.message.case === "listServicesResponse" && list.message.value.service.map((s) => s.name)).toEqual(SERVICES);
    const registry = await resolveLikeGrpcurl(stream, "secrets.v1.Secret");
    expect(registry.getMessage("secrets.v1.Secret")?.fields.find((f) => f.name === "create_time")?.message?.typeName).toBe(
      "google.protobuf.Timestamp",
    );
    stream.close();
  });

  it("when the health service is described, then Check, Watch and List resolve with their messages", async () => {
    const stream = openStream(client, REFLECTION_SERVICE_V1);
    const registry = await resolveLikeGrpcurl(stream, "grpc.health.v1.Health");
    stream.close();
    const health = registry.getService("grpc.health.v1.Health");
    expect(health?.file.proto.name).toBe(HEALTH_PROTO_FILE);
    expect(health?.methods.map((m) => [m.name, m.methodKind, m.input.typeName, m.output.typeName])).toEqual([
      ["Check", "unary", "grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse"],
      ["Watch", "server_streaming", "grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse"],
      ["List", "unary", "grpc.health.v1.HealthListRequest", "grpc.health.v1.HealthListResponse"],
    ]);
    const status = registry.getMessage("grpc.health.v1.HealthCheckResponse")?.fields[0];
    expect(status?.enum?.values.map((v) => [v.name, v.number])).toEqual([
      ["UNKNOWN", 0],
      ["SERVING", 1],
      ["NOT_SERVING", 2],
      ["SERVICE_UNKNOWN", 3],
    ]);
    const statuses = registry.getMessage("grpc.health.v1.HealthListResponse")?.fields[0];
    expect(statuses?.fieldKind).toBe("map");
    expect(statuses?.fieldKind === "map" && statuses.message?.typeName).toBe("grpc.health.v1.HealthCheckResponse");
  });

  it("when the generated health descriptor is compared with grpc-health-check's health.proto, then they match", () => {
    const mine = splitFileDescriptorSet(DESCRIPTOR_SET)
      .map((b) => fromBinary(FileDescriptorProtoSchema, b))
      .find((f) => f.name === HEALTH_PROTO_FILE);
    if (!mine) throw new Error(`${HEALTH_PROTO_FILE} is not in the descriptor set`);
    const check = healthLoaderService["Check"];
    const theirsBytes = check && "fileDescriptorProtos" in check.requestType ? check.requestType.fileDescriptorProtos[0] : undefined;
    expect(theirsBytes).toBeDefined();
    const theirs = fromBinary(FileDescriptorProtoSchema, theirsBytes ?? new Uint8Array());
    const shape = (f: FileDescriptorProto) => ({
      pkg: f.package,
      messages: f.messageType.map((m) => ({
        name: m.name,
        fields: m.field.map((x) => [x.name, x.number, x.label, x.type]),
        enums: m.enumType.map((e) => [e.name, e.value.map((v) => [v.name, v.number])]),
        nested: m.nestedType.map((n) => n.options?.mapEntry ?? false),
      })),
      methods: f.service.flatMap((s) =>
        s.method.map((m) => [s.name, m.name, m.inputType, m.outputType, m.clientStreaming, m.serverStreaming]),
      ),
    });
    expect(shape(mine)).toEqual(shape(theirs));
  });

  it("when a reflection service is described, then its own descriptor resolves", async () => {
    for (const svcName of [REFLECTION_SERVICE_V1, REFLECTION_SERVICE_V1ALPHA]) {
      const stream = openStream(client, REFLECTION_SERVICE_V1);
      const registry = await resolveLikeGrpcurl(stream, svcName);
      stream.close();
      const method = registry.getService(svcName)?.methods[0];
      expect(method?.name).toBe("ServerReflectionInfo");
      expect(method?.methodKind).toBe("bidi_streaming");
      const req = registry.getMessage(method?.input.typeName ?? "");
      expect(req?.oneofs[0]?.fields.map((f) => [f.name, f.number])).toEqual([
        ["file_by_filename", 3],
        ["file_containing_symbol", 4],
        ["file_containing_extension", 5],
        ["all_extension_numbers_of_type", 6],
        ["list_services", 7],
      ]);
    }
  });

  it("when a file imports one the set does not hold, then building the index throws", () => {
    const secretsOnly = splitFileDescriptorSet(DESCRIPTOR_SET).filter(
      (b) => fromBinary(FileDescriptorProtoSchema, b).name === SECRETS_PROTO,
    );
    const w = new BinaryWriter();
    for (const b of secretsOnly) w.tag(1, WireType.LengthDelimited).bytes(b);
    expect(() => new ReflectionIndex({ descriptorSet: w.finish(), services: [] })).toThrow(/google\/protobuf\/.*not in the descriptor set/);
  });
});

function hasGrpcurl(): boolean {
  try {
    execFileSync("grpcurl", ["-version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe("grpcurl against the reflection service", () => {
  const run = promisify(execFile);
  const grpcurl = async (...args: string[]) =>
    (await run("grpcurl", ["-plaintext", `127.0.0.1:${port}`, ...args], { timeout: 15_000 })).stdout;

  it.skipIf(!hasGrpcurl())("when grpcurl lists and describes, then services, methods and Timestamp fields show", async () => {
    const list = await grpcurl("list");
    for (const s of SERVICES) expect(list).toContain(s);
    const svc = await grpcurl("describe", "secrets.v1.SecretService");
    expect(svc).toContain("secrets.v1.SecretService is a service");
    expect(svc).toMatch(/rpc GetSecret \( \.secrets\.v1\.GetSecretRequest \) returns \( \.secrets\.v1\.Secret \)/);
    const msg = await grpcurl("describe", "secrets.v1.Secret");
    expect(msg).toContain("secrets.v1.Secret is a message");
    expect(msg).toMatch(/\.google\.protobuf\.Timestamp create_time = \d+;/);
    const all = await grpcurl("describe");
    expect(all).toContain("grpc.health.v1.Health is a service");
  });
});
