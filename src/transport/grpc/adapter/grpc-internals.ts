/**
 * What secretd reads of grpc-js beyond its public API, in one place: the node:http2
 * servers a bound Server made (`http2Servers`, a private field) and the spelling of a
 * peer address (`call.getPeer()`). Each reader throws at start when a grpc-js upgrade
 * removes what it needs, rather than silently doing nothing. These reads were checked
 * against @grpc/grpc-js 1.14.7, which package.json pins exactly (not a caret range). This
 * folder (adapter/) holds every tie to grpc-js and node:http2 internals.
 */
import type http2 from "node:http2";
import type net from "node:net";
import type { Server } from "@grpc/grpc-js";

/** The node:http2 servers of a bound grpc-js Server; `who` names the caller in the error. */
export function http2ServersOf(server: Server, who: string): http2.Http2Server[] {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) {
    throw new Error(`grpc-js no longer exposes its HTTP/2 servers (Server.http2Servers): ${who} cannot attach`);
  }
  return [...(servers.keys() as IterableIterator<http2.Http2Server>)];
}

/** A connection's peer as grpc-js's call.getPeer() spells it, or undefined. */
export function peerKey(socket: net.Socket | undefined): string | undefined {
  if (!socket?.remoteAddress) return undefined;
  return socket.remotePort ? `${socket.remoteAddress}:${socket.remotePort}` : socket.remoteAddress;
}

/**
 * The node:http2 stream a call runs on: the stream router's call says it (`http2Stream`);
 * a grpc-js call (no interceptors) keeps it at `call.stream` (private). Throws when a
 * grpc-js upgrade moved it, rather than leaving answers uncharged.
 */
export function http2StreamOf(call: object): http2.ServerHttp2Stream {
  const c = call as { http2Stream?: http2.ServerHttp2Stream; call?: { stream?: http2.ServerHttp2Stream } };
  const s = c.http2Stream ?? c.call?.stream;
  if (s === undefined || typeof s.writableLength !== "number") throw new Error("grpc-js no longer keeps a call's HTTP/2 stream at call.call.stream: answers cannot be charged to the resource ledger");
  return s;
}
