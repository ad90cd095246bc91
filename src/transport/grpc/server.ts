/**
 * The grpc-js server: SecretService, grpc.health.v1 and reflection, with explicit
 * limits (grpc-js defaults allow 4 MiB messages, unbounded streams and no idle or age
 * limits), optional TLS / mTLS, and a draining shutdown. WatchProjection streams are
 * served by node:http2 directly on grpc-js's connections (stream-router.ts).
 */
import { Server, ServerCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import type { Config } from "../../config.js";
import { descriptorSetBase64 } from "../../gen/descriptor-set.js";
import { SecretServiceService } from "../../gen/secrets/v1/secrets.js";
import { ConnectionGuard } from "./adapter/connection-guard.js";
import { ResourceLedger } from "./resource-ledger.js";
import { checkedService } from "./decoded-request.js";
import { serverStreamRoute } from "./adapter/h2-server-stream.js";
import { withFastResponses } from "./response-encoding.js";
import { routeStreams } from "./adapter/stream-router.js";
import { watchProjectionHandler } from "./watch-projection.js";
import { addReflection } from "./reflection.js";
import { checkCaBundle, checkCertKeyPair, readFlagFile } from "../../tls-material.js";
import { listenRefused } from "../listen-refused.js";
import { secretServiceHandlers, type SecretServiceDeps } from "./secret-service.js";

export const SERVER_OPTIONS: ChannelOptions = {
  // 1 MiB of data plus labels, annotations and framing.
  "grpc.max_receive_message_length": 2 * 1024 * 1024,
  "grpc.max_send_message_length": 16 * 1024 * 1024,
  "grpc.max_concurrent_streams": 256,
  "grpc.keepalive_time_ms": 60_000,
  "grpc.keepalive_timeout_ms": 20_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.http2.min_ping_interval_without_data_ms": 10_000,
  "grpc.max_connection_idle_ms": 15 * 60_000,
  "grpc.max_connection_age_ms": 60 * 60_000,
  "grpc.max_connection_age_grace_ms": 5 * 60_000,
};

/** The same limits for the streams node:http2 serves directly (stream-router.ts). */
export const STREAM_LIMITS = {
  maxReceive: SERVER_OPTIONS["grpc.max_receive_message_length"] as number,
  maxSend: SERVER_OPTIONS["grpc.max_send_message_length"] as number,
};

/**
 * A stream's buffered request bytes (chunk costs included): one message of the largest
 * size in frames of 1 KiB or more, with room to spare; smaller frames are reset sooner.
 */
export const REQUEST_BYTES_PER_STREAM = 2 * STREAM_LIMITS.maxReceive;

/** Requests that are streams (reflection): their bodies have no deadline, only the byte bounds. */
const OPEN_REQUEST_PATHS = new Set(["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"]);

/** The resource ledger of one server process, from the configuration. */
export function ledgerOf(config: Config): ResourceLedger {
  const r = config.resources;
  return new ResourceLedger({
    inboundPerStream: REQUEST_BYTES_PER_STREAM,
    inboundPerConnection: r.requestBytesPerConnection,
    inboundPerPeer: r.requestBytesPerPeer,
    bodyTimeoutMs: r.requestBodyTimeoutMs,
    outboundPerTenant: r.unreadBytesPerTenant,
    outboundPerConnection: r.unreadBytesPerConnection,
    minDrainRate: r.minDrainRate,
    stallMs: config.connections.writeStallMs,
  });
}

const SECRET_SERVICE = "secrets.v1.SecretService";
const HEALTH_SERVICE = "grpc.health.v1.Health";

export interface RunningServer {
  readonly port: number;
  readonly health: HealthImplementation;
  /** Health of the whole server and of SecretService (false: NOT_SERVING). */
  setServing(ok: boolean): void;
  /** Stops accepting calls, lets in-flight ones finish (up to graceMs), then stops. */
  shutdown(graceMs: number): Promise<void>;
}

/** Files read and checked first: a mismatched pair or a bad CA bundle refuses the start. */
export function serverCredentials(config: Config): ServerCredentials {
  if (!config.tls) return ServerCredentials.createInsecure();
  const ca = config.tls.clientCa ? readFlagFile(config.tls.clientCa, "--tls-client-ca") : null;
  const cert = readFlagFile(config.tls.cert, "--tls-cert");
  const key = readFlagFile(config.tls.key, "--tls-key");
  checkCertKeyPair(cert, key, "--tls-cert", "--tls-key");
  if (ca !== null) checkCaBundle(ca, "--tls-client-ca");
  return ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], ca !== null);
}

export async function startGrpcServer(config: Config, deps: SecretServiceDeps): Promise<RunningServer> {
  const server = new Server(SERVER_OPTIONS);
  const ledger = ledgerOf(config);
  const guard = new ConnectionGuard({ maxConnections: config.connections.max, maxConnectionsPerPeer: config.connections.maxPerPeer }, ledger);
  const service = withFastResponses(checkedService(SecretServiceService));
  const callDeps = { ...deps, ledger };
  const watch = watchProjectionHandler(callDeps, deps.watches);
  server.addService(service, secretServiceHandlers(callDeps, watch));
  const health = new HealthImplementation({ "": "SERVING", [SECRET_SERVICE]: "SERVING" });
  health.addToServer(server);
  addReflection(server, {
    descriptorSet: Buffer.from(descriptorSetBase64, "base64"),
    services: [SECRET_SERVICE, HEALTH_SERVICE, "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"],
  });

  const host = config.listen.host.includes(":") ? `[${config.listen.host}]` : config.listen.host;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${config.listen.port}`, serverCredentials(config), (err, p) => (err ? reject(listenRefused("--listen", config.listen.host, config.listen.port, err)) : resolve(p)));
  });
  guard.attach(server);
  routeStreams(server, new Map([[service.watchProjection.path, serverStreamRoute(service.watchProjection, STREAM_LIMITS, watch)]]), { ledger, openRequestPaths: OPEN_REQUEST_PATHS });

  const setServing = (ok: boolean): void => {
    health.setStatus("", ok ? "SERVING" : "NOT_SERVING");
    health.setStatus(SECRET_SERVICE, ok ? "SERVING" : "NOT_SERVING");
  };
  return {
    port,
    health,
    setServing,
    shutdown(graceMs: number) {
      setServing(false);
      guard.close();
      return new Promise<void>((resolve) => {
        // tryShutdown's callback also waits for TCP connections whose client never sent the
        // HTTP/2 preface (connects and stays silent); forceShutdown does not close those, so
        // resolve here too, or one silent connection would hold shutdown forever.
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
