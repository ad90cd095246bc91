/**
 * Serves chosen RPCs on grpc-js's own HTTP/2 connections with node:http2 directly.
 *
 * An idle grpc-js stream costs ~10 KB of server memory (its intercepting call, Metadata,
 * decoder, Readable/Writable state and a dozen closures); node:http2's own stream ~5 KB.
 * WatchProjection holds a stream open for as long as a workload runs, so 10,000 idle
 * watches cost more in grpc-js than SPEC §9 allows (docs/BENCHMARKS.md, "Watches").
 *
 * The router replaces the "stream" listener grpc-js put on each of its node:http2
 * servers. A stream whose `:path` has a route and whose headers are the plain case
 * (POST, content-type application/grpc…, identity encoding; a `grpc-timeout` is served by
 * the route, grpc-timeout.ts) goes to the route; every other stream goes to grpc-js
 * unchanged, so a compressed request is still served, by grpc-js. Sessions stay grpc-js's: keepalive, idle and age
 * limits, max streams and the connection guard apply to routed streams too, and each
 * routed stream is counted in grpc-js's idle accounting (`onStreamOpened`, private,
 * checked at start like `http2Servers`).
 *
 * The router is also where every stream, routed or not, is handed to the resource ledger
 * before grpc-js or a route reads a byte of it: its request body is charged from the first
 * DATA frame, and reset when over budget or past its deadline (resource-ledger.ts).
 */
import type http2 from "node:http2";
import type { Server } from "@grpc/grpc-js";
import { http2ServersOf } from "./grpc-internals.js";
import { CHUNK_COST, type ResourceLedger } from "../resource-ledger.js";

/**
 * Serves the streams of one path: `open` takes each new stream; `closed` is told when it
 * closes (one shared listener a route, which also tells the ledger: a third "close"
 * listener would cost each idle watch a 19-slot listener array).
 */
export interface StreamRoute {
  open(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void;
  closed(stream: http2.ServerHttp2Stream): void;
}

type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => void;

const ignore = (): void => undefined;

/** Streams handed to a route and to grpc-js, by every router of this process (tests read which one served). */
export const routerCounts = { routed: 0, grpcJs: 0 };

/** True when grpc-js would do nothing for this stream that the route does not. */
function plainCall(headers: http2.IncomingHttpHeaders): boolean {
  const type = headers["content-type"];
  const encoding = headers["grpc-encoding"];
  return (
    headers[":method"] === "POST" &&
    typeof type === "string" &&
    type.startsWith("application/grpc") &&
    (encoding === undefined || encoding === "identity")
  );
}

/** Where streams are charged: the ledger, and the paths whose request is a stream (no body deadline). */
export interface StreamAccounting {
  readonly ledger: ResourceLedger;
  readonly openRequestPaths: ReadonlySet<string>;
}

/**
 * Hooks `routes` (by gRPC path) into every node:http2 server of a bound grpc-js Server,
 * and every stream into `accounting`'s ledger when given.
 */
export function routeStreams(server: Server, routes: ReadonlyMap<string, StreamRoute>, accounting?: StreamAccounting): void {
  const opened = (server as unknown as { onStreamOpened?: unknown }).onStreamOpened;
  if (typeof opened !== "function") throw new Error("grpc-js no longer has Server.onStreamOpened: the stream router cannot attach");
  const ledger = accounting?.ledger;
  const onClose = new Map(
    [...routes].map(([path, route]) => [
      path,
      function (this: http2.ServerHttp2Stream): void {
        ledger?.closed(this);
        route.closed(this);
      },
    ]),
  );
  for (const h of http2ServersOf(server, "the stream router")) {
    const grpc = h.listeners("stream") as StreamListener[];
    if (grpc.length !== 1) throw new Error(`the stream router expects one grpc-js stream listener, found ${grpc.length}`);
    const next = grpc[0]!;
    h.removeAllListeners("stream");
    h.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
      const path = headers[":path"] ?? "";
      let route = routes.get(path);
      if (route !== undefined && !plainCall(headers)) route = undefined;
      // grpc-js keeps each chunk of a message (a Buffer object apiece); a route copies its
      // body into one buffer, so only the bytes cost.
      accounting?.ledger.track(stream.session ?? undefined, stream, route === undefined ? CHUNK_COST : 0, accounting.openRequestPaths.has(path), route === undefined);
      if (route === undefined) {
        routerCounts.grpcJs++;
        next.call(h, stream, headers, ...rest);
        return;
      }
      routerCounts.routed++;
      // As grpc-js does: an error always comes with a close, which the route handles.
      stream.on("error", ignore);
      stream.on("close", onClose.get(path)!);
      opened.call(server, stream);
      route.open(stream, headers);
    });
  }
}
