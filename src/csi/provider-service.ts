/**
 * The handlers of `v1alpha1.CSIDriverProvider` (Version, Mount) for `secretd
 * csi-provider`. Mount: attributes → one ProjectSecrets call with the pod's own
 * service-account token → files and object versions (mount-files.ts); failures as the
 * driver reads them (mount-refusal.ts).
 *
 * An unchanged projection (the driver's current_object_version equals the versions this
 * answer would carry, the files HMAC included) is answered with the versions and no
 * files: MountContent then writes nothing and the values do not cross the socket again.
 * The ProjectSecrets call is still made, so a token that expired or lost its grant is
 * refused at once, as on any Mount.
 *
 * Contract: the token goes into the call's metadata and nowhere else; a log line names
 * the pod, the sources and versions, the code and reason of a refusal, never a value.
 */
import { createRequire } from "node:module";
import { Metadata, status, type ChannelCredentials, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import type { Logger } from "../logger.js";
import { MountResponse, VersionResponse, type CSIDriverProviderServer, type MountRequest, type VersionRequest } from "../gen/csi/provider/v1alpha1/service.js";
import { SecretServiceClient, type Projection, type ProjectSecretsRequest } from "../gen/secrets/v1/secrets.js";
import { explainCallError } from "../client/client.js";
import type { Dialled } from "../client/connection-failure.js";
import type { ServerAddress } from "../client/server-address.js";
import { checkProjectionPaths } from "../sidecar/projected-files.js";
import { parseAttributes, parsePermission, podOf } from "./mount-attributes.js";
import { mountFiles, mountResponse, objectVersions, sameVersions } from "./mount-files.js";
import { mountFailure, step } from "./mount-refusal.js";

export const PROVIDER_NAME = "secretd";
const API_VERSION = "v1alpha1";
const RUNTIME_VERSION = (createRequire(import.meta.url)("../../package.json") as { version: string }).version;

/** Channels kept open, one per server address (a SecretProviderClass may name its own). */
const MAX_CHANNELS = 16;

export interface ProviderOptions {
  /** --server: where a SecretProviderClass without serverAddress is served from. */
  readonly server: ServerAddress;
  readonly credentials: ChannelCredentials;
  readonly dialled: Omit<Dialled, "address">;
  readonly timeoutMs: number;
  readonly log: Logger;
}

export interface ProviderService {
  readonly implementation: CSIDriverProviderServer;
  close(): void;
}

/** A projection may carry up to 8 MiB of values: more than grpc-js's 4 MiB default. */
const CHANNEL_OPTIONS = { "grpc.max_receive_message_length": 16 * 1024 * 1024 };

export function providerService(opts: ProviderOptions): ProviderService {
  const channels = new Map<string, SecretServiceClient>();

  function clientFor(address: ServerAddress): SecretServiceClient {
    let client = channels.get(address.target);
    if (client === undefined) {
      if (channels.size >= MAX_CHANNELS) {
        const [oldest, c] = channels.entries().next().value as [string, SecretServiceClient];
        c.close();
        channels.delete(oldest);
      }
      client = new SecretServiceClient(address.target, opts.credentials, CHANNEL_OPTIONS);
      channels.set(address.target, client);
    }
    return client;
  }

  /** `driverDeadline`: the driver's own deadline for the Mount (ms since epoch; Infinity when none). */
  function project(address: ServerAddress, request: ProjectSecretsRequest, token: string, driverDeadline: number): Promise<Projection> {
    const md = new Metadata();
    md.set("authorization", `Bearer ${token}`);
    const client = clientFor(address);
    return new Promise((resolve, reject) => {
      client.projectSecrets(request, md, { deadline: Math.min(Date.now() + opts.timeoutMs, driverDeadline) }, (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  async function mount(req: MountRequest, driverDeadline: number): Promise<{ response: MountResponse; changed: boolean; sources: string[] }> {
    const attrs = step("InvalidAttributes", () => parseAttributes(req.attributes));
    const permission = step("InvalidAttributes", () => parsePermission(req.permission));
    step("InvalidPath", () => checkProjectionPaths(attrs.projection, "attributes.objects"));
    const address = attrs.server ?? opts.server;
    let projection: Projection;
    try {
      projection = await project(address, attrs.projection, attrs.token, driverDeadline);
    } catch (err) {
      throw await explainCallError(err, { ...opts.dialled, address });
    }
    const files = step("InvalidPath", () => mountFiles(attrs.projection, projection, permission));
    const versions = objectVersions(projection, files);
    const sources = versions.map((v) => `${v.id}@${v.version}`);
    if (sameVersions(req.currentObjectVersion, versions)) return { response: MountResponse.fromPartial({ objectVersion: versions }), changed: false, sources };
    return { response: step("ResponseTooLarge", () => mountResponse(versions, files)), changed: true, sources };
  }

  const implementation: CSIDriverProviderServer = {
    version(call: ServerUnaryCall<VersionRequest, VersionResponse>, callback: sendUnaryData<VersionResponse>) {
      callback(null, VersionResponse.fromPartial({ version: API_VERSION, runtimeName: PROVIDER_NAME, runtimeVersion: RUNTIME_VERSION }));
    },
    mount(call: ServerUnaryCall<MountRequest, MountResponse>, callback: sendUnaryData<MountResponse>) {
      const pod = podOf(call.request.attributes);
      const who = { pod: `${pod.namespace}/${pod.name}`, podUid: pod.uid, serviceAccount: pod.serviceAccount };
      const deadline = call.getDeadline();
      mount(call.request, deadline instanceof Date ? deadline.getTime() : deadline).then(
        ({ response, changed, sources }) => {
          opts.log.info({ ...who, files: response.files.length, sources, changed }, changed ? "mounted" : "mounted: unchanged, no files sent");
          callback(null, response);
        },
        (err: unknown) => {
          const failure = mountFailure(err);
          if (failure.kind === "refusal") {
            opts.log.warn({ ...who, code: failure.code, reason: failure.message }, "mount refused");
            callback(null, MountResponse.fromPartial({ error: { code: failure.code } }));
          } else {
            opts.log.error({ ...who, code: status[failure.code], reason: failure.message, ...(failure.code === status.INTERNAL ? { err } : {}) }, "mount failed");
            callback({ code: failure.code, details: failure.message });
          }
        },
      );
    },
  };

  return {
    implementation,
    close() {
      for (const c of channels.values()) c.close();
      channels.clear();
    },
  };
}
