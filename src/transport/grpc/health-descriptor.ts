/**
 * The FileDescriptorProto of `grpc/health/v1/health.proto`, built by hand so that server
 * reflection can describe `grpc.health.v1.Health` (served by grpc-health-check, which
 * ships only the .proto source, not a descriptor). It mirrors the upstream file:
 * Check (unary), Watch (server streaming) and List (unary, map<string, HealthCheckResponse>).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";

export const HEALTH_PROTO_FILE = "grpc/health/v1/health.proto";

let cached: Uint8Array | undefined;

/** Serialized `google.protobuf.FileDescriptorProto` of grpc/health/v1/health.proto. */
export function healthFileDescriptor(): Uint8Array {
  cached ??= toBinary(
    FileDescriptorProtoSchema,
    create(FileDescriptorProtoSchema, {
      name: HEALTH_PROTO_FILE,
      package: "grpc.health.v1",
      syntax: "proto3",
      options: {
        csharpNamespace: "Grpc.Health.V1",
        goPackage: "google.golang.org/grpc/health/grpc_health_v1",
        javaMultipleFiles: true,
        javaOuterClassname: "HealthProto",
        javaPackage: "io.grpc.health.v1",
      },
      messageType: [
        { name: "HealthListRequest" },
        {
          name: "HealthListResponse",
          field: [
            {
              name: "statuses",
              number: 1,
              label: Label.REPEATED,
              type: Type.MESSAGE,
              typeName: ".grpc.health.v1.HealthListResponse.StatusesEntry",
              jsonName: "statuses",
            },
          ],
          nestedType: [
            {
              name: "StatusesEntry",
              field: [
                { name: "key", number: 1, label: Label.OPTIONAL, type: Type.STRING, jsonName: "key" },
                {
                  name: "value",
                  number: 2,
                  label: Label.OPTIONAL,
                  type: Type.MESSAGE,
                  typeName: ".grpc.health.v1.HealthCheckResponse",
                  jsonName: "value",
                },
              ],
              options: { mapEntry: true },
            },
          ],
        },
        {
          name: "HealthCheckRequest",
          field: [{ name: "service", number: 1, label: Label.OPTIONAL, type: Type.STRING, jsonName: "service" }],
        },
        {
          name: "HealthCheckResponse",
          field: [
            {
              name: "status",
              number: 1,
              label: Label.OPTIONAL,
              type: Type.ENUM,
              typeName: ".grpc.health.v1.HealthCheckResponse.ServingStatus",
              jsonName: "status",
            },
          ],
          enumType: [
            {
              name: "ServingStatus",
              value: [
                { name: "UNKNOWN", number: 0 },
                { name: "SERVING", number: 1 },
                { name: "NOT_SERVING", number: 2 },
                { name: "SERVICE_UNKNOWN", number: 3 },
              ],
            },
          ],
        },
      ],
      service: [
        {
          name: "Health",
          method: [
            {
              name: "Check",
              inputType: ".grpc.health.v1.HealthCheckRequest",
              outputType: ".grpc.health.v1.HealthCheckResponse",
            },
            {
              name: "Watch",
              inputType: ".grpc.health.v1.HealthCheckRequest",
              outputType: ".grpc.health.v1.HealthCheckResponse",
              serverStreaming: true,
            },
            {
              name: "List",
              inputType: ".grpc.health.v1.HealthListRequest",
              outputType: ".grpc.health.v1.HealthListResponse",
            },
          ],
        },
      ],
    }),
  );
  return cached.slice();
}
