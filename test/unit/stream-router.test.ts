/**
 * The stream router on a bare grpc-js Server: a routed path reaches the route, every other
 * path (and a routed one with a deadline) still reaches grpc-js on the same connection,
 * and a connection whose only stream is routed is not taken for idle by grpc-js's
 * max_connection_idle_ms (the route counts in grpc-js's idle accounting).
 */
import { connectivityState, credentials, Metadata, Server, ServerCredentials, status, type ServiceError } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { GetSecretRequest, ProjectSecretsRequest, SecretServiceClient, SecretServiceService, type Projection } from "../../src/gen/secrets/v1/secrets.js";
import { serverStreamRoute, type ServerStreamCall } from "../../src/transport/grpc/adapter/h2-server-stream.js";
import { routeStreams } from "../../src/transport/grpc/adapter/stream-router.js";

const IDLE_MS = 300;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const projection = (from: string): Projection => ({ values: [{ secret: "s", key: "k", env: "K", path: "s/k", mode: 0o400, value: Buffer.from(from) }], sources: [], revision: from, consumerId: "" });

let server: Server | undefined;
let client: SecretServiceClient | undefined;

afterEach(() => {
  client?.close();
  server?.forceShutdown();
});

async function start(): Promise<{ routed: Array<ServerStreamCall<ProjectSecretsRequest, Projection>> }> {
  const routed: Array<ServerStreamCall<ProjectSecretsRequest, Projection>> = [];
  server = new Server({ "grpc.max_connection_idle_ms": IDLE_MS });
  const handlers = Object.fromEntries(Object.keys(SecretServiceService).map((k) => [k, (_c: unknown, cb: (e: Partial<ServiceError>) => void) => cb({ code: status.UNIMPLEMENTED, details: "grpc-js" })]));
  handlers.watchProjection = ((call: { write(m: Projection): void }) => call.write(projection("grpc-js"))) as never;
  server.addService(SecretServiceService, handlers);
  const port = await new Promise<number>((resolve, reject) => server!.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const method = SecretServiceService.watchProjection;
  routeStreams(server, new Map([[method.path, serverStreamRoute(method, { maxReceive: 1024, maxSend: 1024 }, (call) => {
    routed.push(call);
    call.write(projection(`route:${call.request.mesh}:${call.metadata.get("x-who")[0]}`));
  })]]));
  client = new SecretServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  return { routed };
}

function firstMessage(opts: { deadline?: number } = {}): Promise<string> {
  const md = new Metadata();
  md.set("x-who", "tester");
  const call = client!.watchProjection(ProjectSecretsRequest.fromPartial({ mesh: "m" }), md, opts);
  return new Promise((resolve, reject) => {
    call.once("data", (p: Projection) => resolve(p.revision));
    call.once("error", reject);
  });
}

describe("routeStreams", () => {
  it("when a routed path comes, then the route serves it with the request and metadata; a deadline is routed too (the route enforces it); other paths go to grpc-js", async () => {
    const { routed } = await start();
    expect(await firstMessage()).toBe("route:m:tester");
    expect(routed).toHaveLength(1);
    // The metadata is the handler's while it runs, not for the stream's life (it holds the token).
    expect(routed[0]!.metadata.get("x-who")).toEqual([]);
    expect(await firstMessage({ deadline: Date.now() + 5_000 })).toBe("route:m:tester");
    expect(routed).toHaveLength(2);
    const err = await new Promise<ServiceError>((resolve) => client!.getSecret(GetSecretRequest.fromPartial({ mesh: "m", name: "n" }), (e) => resolve(e!)));
    expect([err.code, err.details]).toEqual([status.UNIMPLEMENTED, "grpc-js"]);
  });

  it("when a connection's only stream is routed, then grpc-js does not close it for idle; without a stream it does", async () => {
    await start();
    const md = new Metadata();
    const call = client!.watchProjection(ProjectSecretsRequest.fromPartial({ mesh: "m" }), md);
    await new Promise((resolve) => call.once("data", resolve));
    await sleep(IDLE_MS * 3);
    expect(client!.getChannel().getConnectivityState(false)).toBe(connectivityState.READY);
    call.cancel();
    call.on("error", () => undefined);
    // The control: the same connection with no stream is closed by grpc-js (GOAWAY → IDLE).
    await sleep(IDLE_MS * 3);
    expect(client!.getChannel().getConnectivityState(false)).toBe(connectivityState.IDLE);
  });
});
